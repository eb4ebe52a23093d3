"""The zygote: a fresh interpreter that imported torch and the job once, then
forks one supervised child per request and reports each outcome to the parent.

It starts with a clean environment and its cwd outside the repo, and never
imports the reference solution.  Per request it makes a temp dir, forks C1
(see child.py), and watches three pipes: output (kept up to a cap), result
frames (with the run's nonce) and C1's status; it enforces the wall-clock
deadline by SIGKILL.
"""
from __future__ import annotations

import importlib
import json
import os
import selectors
import shutil
import signal
import sys
import tempfile
import time
import traceback

from .child import STUDENT_FILE, c1_main
from .framing import parse_frames, recv, send
from .syscalls import PR_SET_PDEATHSIG, prctl


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
    frames, corrupt = parse_frames(bytes(run.res), run.nonce)
    corrupt = corrupt or run.res_overflow
    status_word = info.get("status")
    exit_code = None
    if status_word is not None:
        exit_code = (-os.WTERMSIG(status_word) if os.WIFSIGNALED(status_word)
                     else os.WEXITSTATUS(status_word))
    try:
        setup = json.loads(frames[b"L"]) if b"L" in frames else {}
        layers, warns = list(setup.get("layers", [])), list(setup.get("warnings", []))
    except (ValueError, AttributeError):
        layers, warns, corrupt = [], [], True
    payload, msg = None, ""
    if run.reason == "timeout":
        status, msg = "timeout", f"killed after the wall-clock limit of {run.limits['timeout_s']:g} s"
    elif corrupt:
        status, msg = "crashed", "corrupt or oversized result channel"
    elif b"R" in frames:
        status, msg = "crashed", "sandbox refused to run: " + frames[b"R"].decode(errors="replace")
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
            "exit_code": exit_code, "isolation": layers, "warnings": warns,
            "has_payload": payload is not None}, payload


def zygote_main(cfg_json: str) -> None:
    cfg = json.loads(cfg_json)
    sys.dont_write_bytecode = True
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
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
        send(cout, {"type": "fatal", "message": traceback.format_exc()})
        os._exit(2)
    send(cout, {"type": "ready", "pid": zpid})
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
        # The child writes the student file itself, into its scratch tmpfs where it has one.
        source, runjob = (None, None) if header.get("selftest") else (blobs[0], job)
        pipes = [os.pipe() for _ in range(3)]
        pid = os.fork()
        if pid == 0:
            try:
                for r, _ in pipes:
                    os.close(r)
                c1_main(cfg, {"rundir": rundir, "limits": lim, "source": source}, pipes[0][1],
                        pipes[1][1], pipes[2][1], run.nonce, runjob, blobs[1] if len(blobs) > 1 else b"",
                        zpid)
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
            send(cout, header, [payload] if payload is not None else [])
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
                msg = recv(cin)
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
                    send(cout, {"id": msg[0].get("id"), "status": "crashed", "output": "",
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
