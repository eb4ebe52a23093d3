"""Run one job per student submission in an isolated, disposable child process.

Threat model
------------
A student's ``resnet50_skeleton.py`` is untrusted code.  It may try to read the
reference solution (``solutions/``), the grader's code or output, other
students' files or anything else on the machine, the grading process's
memory/environment; to forge its result; to hang, eat memory or disk, flood
output, fork daemons, or crash.  The grading *parent* holds the reference
solution and must never import or be forked for student code.

Process layout (one file per part)
----------------------------------
``parent.py``  Sandbox: starts the zygote, sends requests, waits for results.
``zygote.py``  a fresh interpreter that imported torch and the job once (never
               ``solutions``); forks C1 per request, enforces the timeout.
``child.py``   C1 unshares namespaces and supervises C2, pid 1 of the new PID
               namespace, which applies the layers below and runs
               ``job(workdir, request) -> bytes`` (the job imports the student
               file from its temp dir).

Layers (each applied when available; ``Sandbox.isolation`` lists those that
held, ``Sandbox.warning`` says which did not)
  * ``namespaces.py``: PID + mount + network + IPC namespaces: everything the
    job spawns dies with it, ``/proc`` shows only its processes, no network.
  * ``filesystem.py``: an allow-list root (pivot_root into a tmpfs holding only
    read-only binds of the Python prefixes, /usr, /lib*, /bin, a few /etc
    entries and /dev nodes, a fresh /proc) with a scratch tmpfs of
    ``Limits.scratch_bytes`` as the temp dir: the disk quota.  The repo, the
    grading output and the submissions folder (``hidden_paths``) do not exist.
  * ``landlock.py``: read-only to the Python prefixes, /usr, /lib*, /etc,
    /proc; read-write to the temp dir only; no TCP; scoped signals.
  * ``privileges.py``: uid/gid nobody (when root), no capabilities, no_new_privs.
  * ``limits.py``: rlimits (address space = VmSize at start + memory limit,
    NPROC, FSIZE, CORE=0); one torch thread; CUDA hidden.
Output (fd 1 and 2) goes through a pipe kept up to a cap.  The result travels
on a separate pipe framed with a per-run random nonce (``framing.py``), so
nothing printed can pass as a result.  Limitation: the job and the student's
code share one process, so a determined student can tamper with the job's own
result; the parent must validate payloads as untrusted data.

The filesystem view is an allow-list when Landlock or a mount namespace (root)
is available.  Without both, the sandbox warns that student code can read what
the grader can, and ``isolation="strict"`` refuses to start; without a mount
namespace it also warns that there is no disk quota.
"""
from __future__ import annotations

from .landlock import landlock_abi
from .limits import Limits
from .parent import DEFAULT_PRELOAD, DISABLEABLE, REPO_ROOT, STATUSES, ChildResult, IsolationError, Sandbox

__all__ = ["ChildResult", "DEFAULT_PRELOAD", "DISABLEABLE", "IsolationError", "Limits", "REPO_ROOT",
           "STATUSES", "Sandbox", "landlock_abi"]
