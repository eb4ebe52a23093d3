"""Run one job per student submission in an isolated, disposable child process.

Threat model
------------
A student's ``resnet50_skeleton.py`` is untrusted code.  It may try to read the
reference solution (``solutions/``), the grader's code or output, other
students' files, or the grading process's memory/environment; to forge its
result; to hang, eat memory, flood output, fork daemons, or crash.  The
grading *parent* holds the reference solution and must never import or be
forked for student code.

Process layout
--------------
parent (trusted, has reference) --pipes--> ZYGOTE: a fresh interpreter started
with a clean environment and cwd outside the repo; it imports the preload
modules (torch, ...) and the job module once, never ``solutions``.  Per
request it forks C1 (supervisor), which unshares namespaces and forks C2 (the
job, pid 1 of a new PID namespace).  C2 applies the remaining layers, imports
nothing from the repo itself, and runs ``job(workdir, request) -> bytes``,
which imports the student file from its private temp dir.

Layers (each applied when available, reported in ``Sandbox.isolation``)
  * PID + mount + network + IPC namespaces: everything the job spawns dies
    with it; ``/proc`` only shows the job's processes; no network at all.
  * tmpfs over the repo root, ``hidden_paths`` (e.g. grading output), /root,
    /home, /tmp ... with only the Python prefixes and the run's temp dir
    bind-mounted back.
  * Landlock: read-only to the Python prefixes, site-packages, /usr, /lib*,
    /etc, /proc, a few /dev and /sys files; read-write to the temp dir only;
    no TCP bind/connect; no signals / abstract sockets outside the sandbox.
  * uid/gid nobody (when root), empty capability bounding set, no_new_privs.
  * rlimits: address space (VmSize at start + memory limit), NPROC, FSIZE,
    CORE=0; one torch thread; CUDA hidden; wall-clock timeout with SIGKILL of
    the whole PID namespace (process group + subreaper sweep without it).
Output (fd 1 and 2) goes through a pipe kept up to a cap.  The result travels
on a separate pipe framed with a per-run random nonce, so nothing printed can
pass as a result.  Limitation: the job and the student's code share one
process, so a determined student can tamper with the job's own result; the
parent must validate payloads as untrusted data.  Without root or Landlock
there is no filesystem isolation: the Sandbox then warns (``.warning``).
"""
from __future__ import annotations

import ctypes
import dataclasses
import itertools
import json
import os
import selectors
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534
STUDENT_FILE = "resnet50_skeleton.py"
DEFAULT_PRELOAD = ("torch", "torch.nn", "torch.nn.functional", "numpy")
STATUSES = ("ok", "timeout", "memory", "exited", "crashed")


@dataclasses.dataclass(frozen=True)
class Limits:
    timeout_s: float = 60.0
    memory_bytes: int = 4 << 30
    output_bytes: int = 8192
    payload_bytes: int = 64 << 20
    nproc: int = 256
    fsize_bytes: int = 64 << 20


@dataclasses.dataclass
class ChildResult:
    status: str              # one of STATUSES
    payload: bytes | None    # the job's return value (status "ok" only)
    output: str              # captured stdout+stderr, capped
    message: str             # human-readable reason
    elapsed_s: float
    exit_code: int | None    # like Popen.returncode: -N for signal N
    isolation: tuple = ()    # layers this run actually got

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# ---------------------------------------------------------------- framing
def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        b = os.read(fd, min(n - got, 1 << 20))
        if not b:
            return None
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def _send(fd: int, header: dict, blobs=()) -> None:
    h = json.dumps(header).encode()
    parts = [struct.pack("<II", len(h), len(blobs)), h]
    for b in blobs:
        parts += [struct.pack("<Q", len(b)), bytes(b)]
    body = b"".join(parts)
    _write_all(fd, struct.pack("<Q", len(body)) + body)


def _recv(fd: int):
    head = _read_exact(fd, 8)
    if head is None:
        return None
    body = _read_exact(fd, struct.unpack("<Q", head)[0])
    if body is None:
        return None
    hlen, nblobs = struct.unpack_from("<II", body, 0)
    pos = 8 + hlen
    header = json.loads(body[8:pos])
    blobs = []
    for _ in range(nblobs):
        (n,) = struct.unpack_from("<Q", body, pos)
        blobs.append(body[pos + 8:pos + 8 + n])
        pos += 8 + n
    return header, blobs


# ---------------------------------------------------------------- libc
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWPID = 0x20000, 0x08000000, 0x40000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
PR_SET_CHILD_SUBREAPER, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 36, 47, 4


def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _prctl(option: int, arg: int = 0) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0),
                       ctypes.c_ulong(0)), f"prctl({option})")


def _mount(src, target, fstype, flags, data=None) -> None:
    enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
    _check(_libc.mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {target}")


# ---------------------------------------------------------------- landlock
_LL_CREATE, _LL_ADD, _LL_RESTRICT = 444, 445, 446
_FS_EXEC, _FS_WRITE, _FS_READ, _FS_READDIR = 1, 2, 4, 8
_FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 14, 1 << 15
_FILE_RIGHTS = _FS_EXEC | _FS_WRITE | _FS_READ | _FS_TRUNCATE | _FS_IOCTL_DEV


def landlock_abi() -> int:
    try:
        return max(0, _libc.syscall(ctypes.c_long(_LL_CREATE), None, ctypes.c_size_t(0),
                                    ctypes.c_uint32(1)))
    except Exception:
        return 0


def _landlock(read_paths, write_paths, rw_files) -> int:
    abi = landlock_abi()
    if abi < 1:
        raise OSError("Landlock unavailable")
    handled = (1 << 13) - 1
    if abi >= 2:
        handled |= 1 << 13
    if abi >= 3:
        handled |= _FS_TRUNCATE
    if abi >= 5:
        handled |= _FS_IOCTL_DEV
    attr = struct.pack("<Q", handled)
    if abi >= 4:
        attr += struct.pack("<Q", 3)          # deny TCP bind + connect
    if abi >= 6:
        attr += struct.pack("<Q", 3)          # scope abstract unix sockets + signals
    buf = ctypes.create_string_buffer(attr, len(attr))
    rfd = _libc.syscall(ctypes.c_long(_LL_CREATE), buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if rfd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    try:
        def add(path, access):
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                return
            try:
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    access &= _FILE_RIGHTS
                rule = ctypes.create_string_buffer(struct.pack("<Qi", access & handled, fd), 12)
                _check(_libc.syscall(ctypes.c_long(_LL_ADD), ctypes.c_int(rfd), ctypes.c_int(1), rule,
                                     ctypes.c_uint32(0)), f"landlock_add_rule {path}")
            finally:
                os.close(fd)
        for p in read_paths:
            add(p, _FS_EXEC | _FS_READ | _FS_READDIR)
        for p in rw_files:
            add(p, _FS_READ | _FS_WRITE | _FS_TRUNCATE | _FS_IOCTL_DEV)
        for p in write_paths:
            add(p, handled)
        _check(_libc.syscall(ctypes.c_long(_LL_RESTRICT), ctypes.c_int(rfd), ctypes.c_uint32(0)),
               "landlock_restrict_self")
    finally:
        os.close(rfd)
    return abi


# ---------------------------------------------------------------- child side
_MAGIC = b"SBXR"
_FRAME = struct.Struct("<4s16scQ")


def _frame(nonce: bytes, kind: bytes, data: bytes) -> bytes:
    return _FRAME.pack(_MAGIC, nonce, kind, len(data)) + data


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _python_dirs() -> list[str]:
    import site
    dirs = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                          sys.base_exec_prefix)}
    for p in list(site.getsitepackages()) + [p for p in sys.path if p]:
        rp = os.path.realpath(p)
        if os.path.isdir(rp) and not _under(rp, str(REPO_ROOT)) or any(_under(rp, d) for d in dirs):
            dirs.add(rp)
    rp = os.path.realpath(str(REPO_ROOT))
    return sorted(d for d in dirs if os.path.isdir(d) and d != rp)


def _status_caps() -> dict:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def _hide(hidden: list[str], keeps: list[str]) -> list[str]:
    done: list[str] = []
    keeps = sorted({os.path.realpath(k) for k in keeps})
    keeps = [k for k in keeps if not any(k != o and _under(k, o) for o in keeps)]
    for h in sorted({os.path.realpath(h) for h in hidden}, key=len):
        if not os.path.isdir(h) or h == "/" or any(_under(h, d) for d in done):
            continue
        inner = [k for k in keeps if k != h and _under(k, h) and os.path.exists(k)]
        if any(_under(h, k) for k in keeps):
            continue                          # hiding inside something that must stay visible
        fds = [(k, os.open(k, os.O_PATH | os.O_CLOEXEC)) for k in inner]
        _mount("tmpfs", h, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=256k,nr_inodes=4096")
        for k, fd in fds:
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.makedirs(k, 0o755, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(k), 0o755, exist_ok=True)
                open(k, "w").close()
            _mount(f"/proc/self/fd/{fd}", k, None, MS_BIND | MS_REC)
            os.close(fd)
        _mount(None, h, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        done.append(h)
    return done


def _readable_by_nobody(path: str) -> bool:
    p = Path(path)
    for q in [p, *p.parents]:
        try:
            m = q.stat().st_mode
        except OSError:
            return False
        if not m & stat.S_IXOTH:
            return False
    return bool(p.stat().st_mode & stat.S_IROTH)


def _c2_setup(cfg: dict, run: dict, ns: set) -> list[str]:
    """Everything privileged, then drop.  Runs as pid 1 of the new namespace."""
    layers: list[str] = []
    if ns:
        layers.append("+".join(sorted(ns)) + " namespaces")
    rundir = run["rundir"]
    strict = cfg["isolation"] != "none"      # "auto"/"strict": apply every available layer
    hidden_ok = False
    pydirs = _python_dirs()
    if strict and "mount" in ns:
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        if "pid" in ns:
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            layers.append("fresh /proc (own pid namespace only)")
        hidden = [cfg["repo_root"], *cfg["hidden_paths"], "/root", "/home", "/tmp", "/var/tmp",
                  "/dev/shm", "/mnt", "/srv", "/work"]
        done = _hide([h for h in hidden if os.path.isdir(h)], pydirs + [rundir])
        if done:
            hidden_ok = True
            layers.append("tmpfs over " + ", ".join(done) + " (python prefixes + temp dir re-bound)")
    lim = run["limits"]
    import resource
    for res, val in ((resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, lim["fsize_bytes"]),
                     (resource.RLIMIT_NPROC, lim["nproc"])):
        resource.setrlimit(res, (val, val))
    os.chdir(rundir)
    os.environ.update(HOME=rundir, TMPDIR=rundir, CUDA_VISIBLE_DEVICES="")
    if strict and os.geteuid() == 0:
        if hidden_ok or all(_readable_by_nobody(d) for d in pydirs):
            last = int(open("/proc/sys/kernel/cap_last_cap").read())
            for c in range(last + 1):
                _prctl(PR_CAPBSET_DROP, c)
            try:
                _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
            except OSError:
                pass
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            st = _status_caps()
            if os.getuid() != NOBODY or any(int(st[k], 16) for k in ("CapEff", "CapPrm", "CapBnd")):
                raise RuntimeError("privilege drop failed")
            layers += ["uid nobody", "capabilities dropped"]
    if strict:
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        layers.append("no_new_privs")
        if landlock_abi() >= 1:
            sysdirs = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/proc",
                       "/sys/devices/system/cpu", "/sys/fs/cgroup"]
            abi = _landlock(pydirs + sysdirs, [rundir],
                            ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/dev/full"])
            layers.append(f"landlock abi {abi} (read: python prefixes, site-packages, /usr, /lib*, "
                          f"/etc, /proc, /dev/null,/dev/urandom; write: temp dir; no TCP"
                          f"{'; scoped signals+abstract sockets' if abi >= 6 else ''})")
    # sys.path / sys.modules hygiene: nothing from the repo except what the zygote already holds.
    root = cfg["repo_root"]
    sys.path[:] = [rundir] + [p for p in sys.path if p and not (
        _under(os.path.realpath(p), root) and not any(_under(os.path.realpath(p), d) for d in pydirs))]
    sys.modules.pop(STUDENT_FILE[:-3], None)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    vm = int(_status_caps()["VmSize"].split()[0]) * 1024
    cap = vm + lim["memory_bytes"]
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    layers.append(f"RLIMIT_AS = VmSize {vm >> 20} MiB + {lim['memory_bytes'] >> 20} MiB")
    return layers


def _is_memory_error(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in str(exc)
                                              or "not enough memory" in str(exc))


def _c2_main(cfg, run, ns, res_w, nonce, job, request) -> None:
    try:
        layers = _c2_setup(cfg, run, ns)
        _write_all(res_w, _frame(nonce, b"L", json.dumps(layers).encode()))
    except BaseException:
        _write_all(res_w, _frame(nonce, b"F", traceback.format_exc().encode()))
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
        _write_all(res_w, _frame(nonce, kind, data))
    os._exit(code & 0xFF)


def _close_except(keep) -> None:
    lo = 3
    for fd in sorted(k for k in keep if k >= 3):
        if fd > lo:
            os.closerange(lo, fd)
        lo = fd + 1
    os.closerange(lo, 1 << 20)


def _kill_descendants() -> None:
    """Without a PID namespace: SIGKILL every (re-parented) descendant and reap."""
    for _ in range(50):
        kids = set()
        for task in os.listdir("/proc/self/task"):
            try:
                kids.update(int(x) for x in open(f"/proc/self/task/{task}/children").read().split())
            except OSError:
                pass
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            if not kids:
                return
        time.sleep(0.01)


def _c1_main(cfg, run, out_w, res_w, st_w, nonce, job, request, zygote_pid) -> None:
    os.setsid()
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != zygote_pid:
        os._exit(1)
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    _close_except({res_w, st_w})
    ns: set = set()
    if cfg["isolation"] != "none":
        for flag, name in ((CLONE_NEWNS, "mount"), (CLONE_NEWNET, "net"), (CLONE_NEWIPC, "ipc"),
                           (CLONE_NEWPID, "pid")):
            if _libc.unshare(ctypes.c_int(flag)) == 0:
                ns.add(name)
    if "pid" not in ns:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(st_w)
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            _c2_main(cfg, run, ns, res_w, nonce, job, request)
        finally:
            os._exit(71)
    os.close(res_w)
    _write_all(st_w, (json.dumps({"c2": pid}) + "\n").encode())
    while True:
        try:
            _, status, ru = os.wait4(pid, 0)
            break
        except InterruptedError:
            continue
    _write_all(st_w, (json.dumps({"status": status, "maxrss": ru.ru_maxrss * 1024}) + "\n").encode())
    if "pid" not in ns:
        _kill_descendants()
    os._exit(0)


# ---------------------------------------------------------------- zygote
class _Run:
    def __init__(self, rid, limits, rundir, nonce):
        self.id, self.limits, self.rundir, self.nonce = rid, limits, rundir, nonce
        self.t0 = time.monotonic()
        self.deadline = self.t0 + limits["timeout_s"]
        self.hard_deadline = None
        self.out = bytearray()
        self.out_dropped = 0
        self.res = bytearray()
        self.res_overflow = False
        self.st = bytearray()
        self.c1 = self.c2 = None
        self.reason = None
        self.fds: dict = {}


def _drain(fd: int, run: _Run, which: str) -> bool:
    """Read what is available; False on EOF."""
    while True:
        try:
            b = os.read(fd, 1 << 16)
        except BlockingIOError:
            return True
        if not b:
            return False
        if which == "out":
            room = run.limits["output_bytes"] - len(run.out)
            run.out += b[:max(room, 0)]
            run.out_dropped += max(len(b) - max(room, 0), 0)
        elif which == "res":
            if len(run.res) + len(b) > run.limits["payload_bytes"] + 4096:
                run.res_overflow = True
            else:
                run.res += b
        else:
            run.st += b
            for line in bytes(run.st).split(b"\n")[:-1]:
                msg = json.loads(line)
                if "c2" in msg:
                    run.c2 = msg["c2"]


def _finish(run: _Run) -> tuple[dict, bytes | None]:
    elapsed = time.monotonic() - run.t0
    info: dict = {}
    for line in bytes(run.st).split(b"\n"):
        if line.strip():
            info.update(json.loads(line))
    frames, pos, corrupt = {}, 0, run.res_overflow
    while pos < len(run.res):
        if len(run.res) - pos < _FRAME.size:
            corrupt = True
            break
        magic, nonce, kind, n = _FRAME.unpack_from(run.res, pos)
        if magic != _MAGIC or nonce != run.nonce or pos + _FRAME.size + n > len(run.res):
            corrupt = True
            break
        frames[kind] = bytes(run.res[pos + _FRAME.size:pos + _FRAME.size + n])
        pos += _FRAME.size + n
    status_word = info.get("status")
    exit_code = None
    if status_word is not None:
        exit_code = (-os.WTERMSIG(status_word) if os.WIFSIGNALED(status_word)
                     else os.WEXITSTATUS(status_word))
    layers = json.loads(frames[b"L"]) if b"L" in frames else []
    payload, msg = None, ""
    if run.reason == "timeout":
        status, msg = "timeout", f"killed after the wall-clock limit of {run.limits['timeout_s']:g} s"
    elif corrupt:
        status, msg = "crashed", "corrupt or oversized result channel"
    elif b"F" in frames:
        status, msg = "crashed", "sandbox setup failed: " + frames[b"F"].decode(errors="replace")[-800:]
    elif b"O" in frames:
        status, payload, msg = "ok", frames[b"O"], "job returned"
    elif b"M" in frames:
        status, msg = "memory", "memory limit: " + frames[b"M"].decode(errors="replace")
    elif b"E" in frames:
        status, msg = "crashed", "job raised " + frames[b"E"].decode(errors="replace")
    elif exit_code is None:
        status, msg = "crashed", "sandbox supervisor died without a status"
    elif exit_code < 0:
        name = signal.Signals(-exit_code).name if -exit_code in signal.valid_signals() else str(-exit_code)
        status, msg = "crashed", f"killed by signal {name}"
        if name == "SIGKILL":
            msg += " (not by the sandbox: possibly the system OOM killer)"
    else:
        status, msg = "exited", f"exited with code {exit_code} before the job returned"
    out = bytes(run.out).decode("utf-8", errors="replace")
    if run.out_dropped:
        out += f"\n[... {run.out_dropped} bytes truncated]"
    return {"id": run.id, "status": status, "message": msg, "output": out, "elapsed_s": elapsed,
            "exit_code": exit_code, "isolation": layers, "has_payload": payload is not None}, payload


def _zygote_main(cfg_json: str) -> None:
    import importlib
    cfg = json.loads(cfg_json)
    sys.dont_write_bytecode = True
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != cfg["parent_pid"]:
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cin, cout = cfg["fd_in"], cfg["fd_out"]
    zpid = os.getpid()
    try:
        for m in cfg["preload"]:
            importlib.import_module(m)
        mod_name, _, fn_name = cfg["job"].partition(":")
        job_module = importlib.import_module(mod_name)
        job = getattr(job_module, fn_name or "run")
        # Lazy imports and first-call set-up paid once here, not in every child.
        warm_up = getattr(job_module, "warm_up", None)
        if callable(warm_up):
            warm_up()
        bad = [m for m in sys.modules if m == "solutions" or m.startswith("solutions.")]
        if bad:
            raise RuntimeError(f"zygote imported the reference solution: {bad}")
        sys.modules.pop(STUDENT_FILE[:-3], None)
    except BaseException:
        _send(cout, {"type": "fatal", "message": traceback.format_exc()})
        os._exit(2)
    _send(cout, {"type": "ready", "pid": zpid})
    sel = selectors.DefaultSelector()
    sel.register(cin, selectors.EVENT_READ, None)
    runs: dict[int, _Run] = {}

    def close_run(run: _Run):
        for fd in list(run.fds):
            try:
                sel.unregister(fd)
            except (KeyError, ValueError):
                pass
            os.close(fd)
        run.fds.clear()

    def start(header, blobs):
        lim = header["limits"]
        rundir = tempfile.mkdtemp(prefix="run-", dir=cfg["base_dir"])
        run = _Run(header["id"], lim, rundir, os.urandom(16))
        if header.get("selftest"):
            runjob = None
        else:
            runjob = job
            with open(os.path.join(rundir, STUDENT_FILE), "wb") as f:
                f.write(blobs[0])
        if os.geteuid() == 0 and cfg["isolation"] != "none":
            for p in (rundir, *(os.path.join(rundir, n) for n in os.listdir(rundir))):
                os.chown(p, NOBODY, NOBODY)
        pipes = [os.pipe() for _ in range(3)]
        pid = os.fork()
        if pid == 0:
            try:
                for r, _ in pipes:
                    os.close(r)
                _c1_main(cfg, {"rundir": rundir, "limits": lim}, pipes[0][1], pipes[1][1], pipes[2][1],
                         run.nonce, runjob, blobs[1] if len(blobs) > 1 else b"", zpid)
            finally:
                os._exit(72)
        run.c1 = pid
        for (r, w), which in zip(pipes, ("out", "res", "st")):
            os.close(w)
            os.set_blocking(r, False)
            run.fds[r] = which
            sel.register(r, selectors.EVENT_READ, (run, which))
        runs[run.id] = run

    def complete(run: _Run):
        try:
            os.waitpid(run.c1, 0)
        except ChildProcessError:
            pass
        for fd, which in list(run.fds.items()):
            if which != "st":
                _drain(fd, run, which)
        close_run(run)
        shutil.rmtree(run.rundir, ignore_errors=True)
        del runs[run.id]
        header, payload = _finish(run)
        try:
            _send(cout, header, [payload] if payload is not None else [])
        except OSError:
            pass                              # parent gone: PDEATHSIG follows

    def kill(run: _Run, hard=False):
        targets = [run.c2] if run.c2 and not hard else []
        if hard or not targets:
            targets.append(run.c1)
        for p in targets:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        if hard:
            try:
                os.killpg(run.c1, signal.SIGKILL)
            except OSError:
                pass

    quitting = False
    while True:
        now = time.monotonic()
        for run in list(runs.values()):
            if run.reason is None and now >= run.deadline:
                run.reason = "timeout"
                kill(run)
                run.hard_deadline = now + 3
            elif run.hard_deadline and now >= run.hard_deadline:
                kill(run, hard=True)
                run.hard_deadline = now + 3
        if quitting and not runs:
            break
        waits = [r.hard_deadline or r.deadline for r in runs.values()]
        timeout = max(0.0, min(waits) - now) if waits else None
        for key, _ in sel.select(timeout):
            if key.data is None:
                msg = _recv(cin)
                if msg is None or msg[0].get("op") == "quit":
                    quitting = True
                    sel.unregister(cin)
                    for run in runs.values():
                        run.reason = run.reason or "closed"
                        kill(run, hard=True)
                    continue
                try:
                    start(*msg)
                except Exception:
                    _send(cout, {"id": msg[0].get("id"), "status": "crashed", "output": "",
                                 "message": "zygote could not start the run: " + traceback.format_exc(),
                                 "elapsed_s": 0.0, "exit_code": None, "isolation": []})
                continue
            run, which = key.data
            if run.id not in runs or key.fd not in run.fds:
                continue
            if not _drain(key.fd, run, which):
                if which == "st":
                    complete(run)
                else:
                    sel.unregister(key.fd)
                    os.close(key.fd)
                    del run.fds[key.fd]
    shutil.rmtree(cfg["base_dir"], ignore_errors=True)
    os._exit(0)


# ---------------------------------------------------------------- parent side
_BOOT = ("import sys; sys.path[:] = [p for p in sys.path if p]; sys.path.insert(0, sys.argv[1]); "
         "from autograder.grade.sandbox import _zygote_main; _zygote_main(sys.argv[2])")


class _Pending:
    def __init__(self):
        self.event = threading.Event()
        self.result: ChildResult | None = None


class _Zygote:
    def __init__(self, sb: "Sandbox"):
        self.base = tempfile.mkdtemp(prefix="sandbox-")
        os.chmod(self.base, 0o711)
        p2z_r, self.w = os.pipe()
        self.r, z2p_w = os.pipe()
        cfg = {"fd_in": p2z_r, "fd_out": z2p_w, "parent_pid": os.getpid(), "job": sb.job,
               "preload": list(sb.preload), "repo_root": str(REPO_ROOT), "isolation": sb.isolation_mode,
               "hidden_paths": [str(Path(p).resolve()) for p in sb.hidden_paths], "base_dir": self.base}
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1", "CUDA_VISIBLE_DEVICES": ""}
        flags = ["-s", "-B"] + (["-P"] if sys.version_info >= (3, 11) else [])
        self.proc = subprocess.Popen(
            [sb.python, *flags, "-c", _BOOT, str(sb.import_root), json.dumps(cfg)],
            env=env, cwd=self.base, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            pass_fds=(p2z_r, z2p_w), start_new_session=True)
        os.close(p2z_r)
        os.close(z2p_w)
        self.pending: dict[int, _Pending] = {}
        self.lock = threading.Lock()         # pending + dead
        self.wlock = threading.Lock()        # writes to the zygote (never held with .lock)
        self.dead = False
        msg = _recv(self.r)
        if msg is None or msg[0].get("type") != "ready":
            self.proc.kill()
            self.proc.wait()
            self._cleanup(close_r=True)
            detail = msg[0].get("message", "") if msg else "zygote exited during start-up"
            raise RuntimeError(f"sandbox zygote failed to start: {detail}")
        self.pid = msg[0]["pid"]
        self.reader = threading.Thread(target=self._read_loop, daemon=True, name="sandbox-reader")
        self.reader.start()

    def _cleanup(self, close_r: bool = False):
        with self.wlock:                      # a blocked writer got EPIPE: the zygote is dead
            fds, self.w = [self.w] + ([self.r] if close_r else []), -1
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.base, ignore_errors=True)

    def _read_loop(self):
        while True:
            try:
                msg = _recv(self.r)
            except (OSError, ValueError, struct.error):
                msg = None
            if msg is None:
                break
            h, blobs = msg
            with self.lock:
                p = self.pending.pop(h.get("id"), None)
            if p is not None:
                p.result = ChildResult(h["status"], blobs[0] if blobs else None, h["output"],
                                       h["message"], h["elapsed_s"], h["exit_code"],
                                       tuple(h.get("isolation", ())))
                p.event.set()
        self.mark_dead()
        os.close(self.r)

    def mark_dead(self, why: str = "sandbox zygote died"):
        with self.lock:
            if self.dead:
                return
            self.dead = True
            pend, self.pending = self.pending, {}
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        for p in pend.values():
            p.result = ChildResult("crashed", None, "", f"{why} (exit code {code}) during this run; "
                                   "it is restarted for the next one", 0.0, None)
            p.event.set()
        time.sleep(0.05)                      # let SIGKILLed runs release their temp dirs
        self._cleanup()

    def submit(self, rid: int, header: dict, blobs) -> _Pending:
        p = _Pending()
        with self.lock:
            if self.dead:
                raise BrokenPipeError
            self.pending[rid] = p
        with self.wlock:
            _send(self.w, header, blobs)
        return p

    def close(self, timeout=10.0):
        with self.wlock:
            if not self.dead:
                try:
                    _send(self.w, {"op": "quit"})
                except OSError:
                    pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.mark_dead("sandbox closed")


class Sandbox:
    """Fork server for untrusted submissions; thread-safe ``run``."""

    def __init__(self, job: str = "autograder.grade.probe:run_probe", preload=DEFAULT_PRELOAD,
                 limits: Limits | None = None, isolation: str = "auto", hidden_paths=(),
                 python: str | None = None, import_root: Path | str = REPO_ROOT):
        if isolation not in ("auto", "strict", "none"):
            raise ValueError("isolation must be 'auto', 'strict' or 'none'")
        self.job, self.preload, self.limits = job, tuple(preload), limits or Limits()
        self.isolation_mode, self.hidden_paths = isolation, tuple(hidden_paths)
        self.python, self.import_root = python or sys.executable, Path(import_root)
        self.warning: str | None = None
        self.isolation: list[str] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._closed = False
        self._zyg: _Zygote | None = _Zygote(self)
        probe = self._run(None, b"", Limits(timeout_s=30), selftest=True)
        if probe.status != "ok":
            self.close()
            raise RuntimeError(f"sandbox self-test failed: {probe.message}\n{probe.output}")
        self.isolation = list(probe.isolation)
        fs = any(s.startswith(("landlock", "tmpfs")) for s in self.isolation)
        if not fs:
            why = "isolation='none'" if isolation == "none" else "needs root or Landlock"
            self.warning = (f"sandbox: no filesystem isolation ({why}); "
                            "student code can read every file the grader can")
            if isolation == "strict":
                self.close()
                raise RuntimeError(self.warning)
            warnings.warn(self.warning, RuntimeWarning, stacklevel=2)

    @property
    def zygote_pid(self) -> int | None:
        z = self._zyg
        return z.pid if z and not z.dead else None

    def _zygote(self) -> _Zygote:
        with self._lock:
            if self._closed:
                raise RuntimeError("sandbox is closed")
            if self._zyg is None or self._zyg.dead:
                self._zyg = _Zygote(self)
            return self._zyg

    def run(self, student_file: Path | str, request: bytes, limits: Limits | None = None) -> ChildResult:
        source = Path(student_file).read_bytes()
        return self._run(source, request, limits or self.limits)

    def _run(self, source, request, limits, selftest=False) -> ChildResult:
        rid = next(self._ids)
        header = {"op": "run", "id": rid, "limits": dataclasses.asdict(limits), "selftest": selftest}
        t0 = time.monotonic()
        try:
            zyg = self._zygote()
            pending = zyg.submit(rid, header, [source or b"", request])
        except (BrokenPipeError, OSError) as e:
            return ChildResult("crashed", None, "", f"sandbox zygote unavailable: {e}",
                               time.monotonic() - t0, None)
        if not pending.event.wait(limits.timeout_s + 60):
            zyg.mark_dead("sandbox zygote unresponsive")
            pending.event.wait(5)
        return pending.result or ChildResult("crashed", None, "", "no result from the sandbox",
                                             time.monotonic() - t0, None)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            z, self._zyg = self._zyg, None
        if z is not None:
            z.close()

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass
