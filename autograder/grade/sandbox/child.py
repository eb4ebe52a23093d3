"""The two processes of one run, forked from the zygote.

C1, the supervisor, unshares the namespaces and waits for C2.  C2 is pid 1 of
the new PID namespace; before any student code runs it applies the layers in
this order and reports which held (and warns about those that did not):

  1. filesystem view: the allow-list root with a scratch tmpfs as temp dir
     (needs a mount namespace), else the host's view and a plain temp dir;
  2. rlimits (core, file size, processes), cwd and environment;
  3. uid/gid nobody and an empty capability bounding set (when root);
  4. no_new_privs;  5. Landlock;  6. sys.path hygiene;
  7. the address-space limit, last, since the steps above allocate.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path

from . import filesystem
from .framing import frame, write_all
from .landlock import landlock_abi, restrict
from .limits import apply_memory_limit, apply_process_limits
from .namespaces import enter_new_namespaces, kill_descendants
from .privileges import NOBODY, drop_capabilities_keep_root, drop_to_nobody, no_new_privs
from .syscalls import PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG, prctl

STUDENT_FILE = "resnet50_skeleton.py"
LANDLOCK_READ = (*filesystem.SYSTEM_DIRS, *(f"/etc/{name}" for name in filesystem.ETC_ENTRIES + ("passwd", "group")),
                 "/proc", *filesystem.SYS_DIRS)
LANDLOCK_DEVICES = tuple(f"/dev/{name}" for name in filesystem.DEV_NODES)


class Refused(Exception):
    """isolation='strict' and the filesystem view would not be an allow-list."""


def _write_student_file(rundir: str, source: bytes | None, owner: int) -> None:
    if source is None:
        return
    path = os.path.join(rundir, STUDENT_FILE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(source)
    if owner != os.geteuid():
        os.chown(path, owner, owner)


def c2_setup(cfg: dict, run: dict, ns: set) -> tuple[list[str], list[str]]:
    """Everything privileged, then drop; returns (layers that held, warnings)."""
    layers: list[str] = []
    warns: list[str] = []
    if ns:
        layers.append("+".join(sorted(ns)) + " namespaces")
    rundir, lim = run["rundir"], run["limits"]
    isolate = cfg["isolation"] != "none"      # "auto"/"strict": apply every available layer
    disable = set(cfg["disable"])
    pydirs = filesystem.python_dirs(cfg["repo_root"])
    hidden = [cfg["repo_root"], *cfg["hidden_paths"]]
    may_drop = isolate and os.geteuid() == 0
    uid = cfg.get("uid", NOBODY)
    owner = uid if may_drop else os.geteuid()     # who the job will run as, owning the temp dir
    root_ok = scratch_ok = False
    exposed: list[str] = []
    if isolate and "mount" in ns:
        try:
            exposed, got = filesystem.build_allow_list_root(
                rundir, pydirs, hidden, lim, owner, fresh_proc="pid" in ns,
                use_pivot_root="pivot_root" not in disable)
            layers += got
            root_ok = scratch_ok = True
        except Exception as exc:              # noqa: BLE001 - degrade to the layers left, and say so
            filesystem.undo_root(rundir)
            warns.append(f"the allow-list root could not be built ({exc})")
            try:
                layers.append(filesystem.mount_scratch(rundir, lim, owner))
                scratch_ok = True
            except OSError:
                pass
    nobody_ok = root_ok or all(filesystem.readable_by_nobody(d) for d in pydirs)
    if may_drop and not nobody_ok and cfg.get("never_root"):
        raise Refused(f"student code was not run: uid {uid} cannot read the Python installation "
                      f"({', '.join(d for d in pydirs if not filesystem.readable_by_nobody(d))}) and there "
                      f"is no mount namespace to expose it, and never_root forbids keeping uid 0")
    if may_drop and not root_ok:
        owner = uid if nobody_ok else 0
        os.chown(rundir, owner, owner)
    _write_student_file(rundir, run["source"], owner)
    apply_process_limits(lim)
    os.chdir(rundir)
    os.environ.update(HOME=rundir, TMPDIR=rundir, CUDA_VISIBLE_DEVICES="")
    if may_drop:
        if nobody_ok:
            drop_to_nobody(uid)
            layers += ["uid nobody" if uid == NOBODY else f"uid {uid} (unprivileged)", "capabilities dropped"]
        else:
            # capset acts on one thread; after fork this child has only one.
            drop_capabilities_keep_root()
            layers.append("capabilities dropped (uid 0 kept)")
            warns.append("the child keeps uid 0 (without capabilities): user nobody cannot read the "
                         "Python installation and there is no mount namespace to expose it")
    landlock_ok = False
    if isolate:
        no_new_privs()
        layers.append("no_new_privs")
        if "landlock" not in disable and landlock_abi() >= 1:
            abi = restrict(pydirs + list(LANDLOCK_READ), [rundir], LANDLOCK_DEVICES)
            landlock_ok = True
            layers.append(f"landlock abi {abi} (read: python prefixes, site-packages, /usr, /lib*, "
                          f"a few /etc files, /proc, /dev/null,/dev/urandom; write: temp dir; no TCP"
                          f"{'; scoped signals+abstract sockets' if abi >= 6 else ''})")
            if not root_ok:
                reads = pydirs + list(LANDLOCK_READ)
                exposed = [h for h in map(os.path.realpath, hidden)
                           if any(filesystem.under(h, r) for r in reads)]
        if not (root_ok or landlock_ok):
            warns.insert(0, "no filesystem isolation (no Landlock, no mount namespace): student code "
                            "can read every file the grader's user can, other submissions included")
        if exposed:
            warns.append("cannot hide " + ", ".join(exposed) + ": it lies inside a folder the child must read")
        if not scratch_ok:
            warns.append(f"no disk quota (no mount namespace): the temp dir is on the host disk, "
                         f"each file capped at {lim['fsize_bytes'] >> 20} MiB but not their total")
        if cfg["isolation"] == "strict" and (exposed or not (root_ok or landlock_ok)):
            raise Refused("isolation='strict' refused: " + "; ".join(
                w for w in warns if not w.startswith("no disk quota")))
    else:
        warns.append("isolation='none': no filesystem isolation, no namespaces, no disk quota; "
                     "student code can read every file the grader can")
    # sys.path / sys.modules hygiene: nothing from the repo except what the zygote already holds.
    root = cfg["repo_root"]
    sys.path[:] = [rundir] + [p for p in sys.path if p and not (
        filesystem.under(os.path.realpath(p), root)
        and not any(filesystem.under(os.path.realpath(p), d) for d in pydirs))]
    sys.modules.pop(STUDENT_FILE[:-3], None)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    layers.append(apply_memory_limit(lim))
    return layers, warns


def _is_memory_error(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in str(exc)
                                              or "not enough memory" in str(exc))


def c2_main(cfg, run, ns, res_w, nonce, job, request) -> None:
    try:
        layers, warns = c2_setup(cfg, run, ns)
        write_all(res_w, frame(nonce, b"L", json.dumps({"layers": layers, "warnings": warns}).encode()))
    except Refused as exc:
        write_all(res_w, frame(nonce, b"R", str(exc).encode()))
        os._exit(70)
    except BaseException:
        write_all(res_w, frame(nonce, b"F", traceback.format_exc().encode()))
        os._exit(70)
    code, kind, data = 0, b"O", b""
    try:
        out = job(Path(run["rundir"]), request) if job is not None else b""
        if isinstance(out, (bytes, bytearray, memoryview)):
            data = bytes(out)
        else:
            kind, data = b"E", f"job returned {type(out).__name__}, not bytes".encode()
    except SystemExit as e:
        c = e.code
        if c is not None and not isinstance(c, int):
            print(c, file=sys.stderr)
        code, kind = (c if isinstance(c, int) else (0 if c is None else 1)), None
    except BaseException as e:  # noqa: BLE001 - report everything
        try:
            traceback.print_exc()
        except BaseException:
            pass
        kind = b"M" if _is_memory_error(e) else b"E"
        data = f"{type(e).__name__}: {str(e)[:500]}".encode(errors="replace")
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except BaseException:
            pass
    if kind is not None:
        write_all(res_w, frame(nonce, kind, data))
    os._exit(code & 0xFF)


def _close_except(keep) -> None:
    lo = 3
    for fd in sorted(k for k in keep if k >= 3):
        if fd > lo:
            os.closerange(lo, fd)
        lo = fd + 1
    os.closerange(lo, 1 << 20)


def c1_main(cfg, run, out_w, res_w, st_w, nonce, job, request, zygote_pid) -> None:
    os.setsid()
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != zygote_pid:
        os._exit(1)
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    _close_except({res_w, st_w})
    ns: set = set()
    if cfg["isolation"] != "none":
        ns = enter_new_namespaces(skip={"mount"} & set(cfg["disable"]))
    if "pid" not in ns:
        prctl(PR_SET_CHILD_SUBREAPER, 1)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(st_w)
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            c2_main(cfg, run, ns, res_w, nonce, job, request)
        finally:
            os._exit(71)
    os.close(res_w)
    write_all(st_w, (json.dumps({"c2": pid}) + "\n").encode())
    while True:
        try:
            _, status, ru = os.wait4(pid, 0)
            break
        except InterruptedError:
            continue
    write_all(st_w, (json.dumps({"status": status, "maxrss": ru.ru_maxrss * 1024}) + "\n").encode())
    if "pid" not in ns:
        kill_descendants()
    os._exit(0)
