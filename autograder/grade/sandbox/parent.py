"""The trusted side: ``Sandbox`` starts the zygote, sends it requests and waits for results."""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from .framing import recv, send
from .limits import Limits
from .privileges import NOBODY

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_PRELOAD = ("torch", "torch.nn", "torch.nn.functional", "numpy")
STATUSES = ("ok", "timeout", "memory", "exited", "crashed")
# Layers a test (or a curious instructor) can switch off to see the fallback on a machine that has them.
DISABLEABLE = ("landlock", "mount", "pivot_root")
_REFUSED = "sandbox refused to run: "


class IsolationError(RuntimeError):
    """isolation="strict" and this machine cannot give student code an allow-list view."""


@dataclasses.dataclass
class ChildResult:
    status: str              # one of STATUSES
    payload: bytes | None    # the job's return value (status "ok" only)
    output: str              # captured stdout+stderr, capped
    message: str             # human-readable reason
    elapsed_s: float
    exit_code: int | None    # like Popen.returncode: -N for signal N
    isolation: tuple = ()    # layers this run actually got
    warnings: tuple = ()     # layers it did not get, in words

    @property
    def ok(self) -> bool:
        return self.status == "ok"


_BOOT = ("import sys; sys.path[:] = [p for p in sys.path if p]; sys.path.insert(0, sys.argv[1]); "
         "from autograder.grade.sandbox.zygote import zygote_main; zygote_main(sys.argv[2])")


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
               "hidden_paths": [str(Path(p).resolve()) for p in sb.hidden_paths], "base_dir": self.base,
               "disable": sorted(sb.disable), "uid": sb.uid, "never_root": sb.never_root}
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
        msg = recv(self.r)
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
                msg = recv(self.r)
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
                                       tuple(h.get("isolation", ())), tuple(h.get("warnings", ())))
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
            send(self.w, header, blobs)
        return p

    def close(self, timeout=10.0):
        with self.wlock:
            if not self.dead:
                try:
                    send(self.w, {"op": "quit"})
                except OSError:
                    pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.mark_dead("sandbox closed")


class Sandbox:
    """Fork server for untrusted submissions; thread-safe ``run``.

    ``isolation``: "auto" applies every layer the machine offers and warns
    (``.warning``) about those it lacks; "strict" refuses to start unless the
    filesystem view is an allow-list (Landlock or the allow-list root) that hides
    every ``hidden_paths`` entry; "none" applies none.  ``disable`` switches named
    layers off (see DISABLEABLE), to exercise the fallbacks on a capable machine.
    ``uid``: who student code runs as when the grader is root; ``never_root``: refuse
    (IsolationError) rather than keep uid 0 when that uid cannot read Python.
    """

    def __init__(self, job: str = "autograder.grade.probe:run_probe", preload=DEFAULT_PRELOAD,
                 limits: Limits | None = None, isolation: str = "auto", hidden_paths=(),
                 python: str | None = None, import_root: Path | str = REPO_ROOT, disable=(),
                 uid: int = NOBODY, never_root: bool = False):
        if isolation not in ("auto", "strict", "none"):
            raise ValueError("isolation must be 'auto', 'strict' or 'none'")
        unknown = set(disable) - set(DISABLEABLE)
        if unknown:
            raise ValueError(f"cannot disable {sorted(unknown)}: only {', '.join(DISABLEABLE)}")
        self.job, self.preload, self.limits = job, tuple(preload), limits or Limits()
        self.isolation_mode, self.hidden_paths = isolation, tuple(hidden_paths)
        self.disable = frozenset(disable)
        self.uid, self.never_root = int(uid), bool(never_root)
        self.python, self.import_root = python or sys.executable, Path(import_root)
        self.warning: str | None = None
        self.isolation: list[str] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._closed = False
        self._zyg: _Zygote | None = _Zygote(self)
        # The self-test runs no student code, so the layers it reports can be trusted.
        probe = self._run(None, b"", Limits(timeout_s=30), selftest=True)
        if probe.status != "ok":
            self.close()
            if probe.message.startswith(_REFUSED):
                raise IsolationError("sandbox: " + probe.message[len(_REFUSED):])
            raise RuntimeError(f"sandbox self-test failed: {probe.message}\n{probe.output}")
        self.isolation = list(probe.isolation)
        if probe.warnings:
            self.warning = "sandbox: " + "; ".join(probe.warnings)
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
