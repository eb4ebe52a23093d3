"""The sandbox fork server: results, isolation, limits, clean-up, concurrency."""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from autograder.grade.sandbox import REPO_ROOT, ChildResult, Limits, Sandbox, landlock_abi

JOB = "tests.sandbox_jobs:call_main"
LIMITS = Limits(timeout_s=3, memory_bytes=512 << 20)


@pytest.fixture(scope="module")
def fake_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("fake-repo")
    (root / "solutions").mkdir()
    (root / "solutions" / "resnet50_skeleton.py").write_text("SECRET_SOLUTION = 42\n")
    (root / "secret.txt").write_text("top secret\n")
    return root


@pytest.fixture(scope="module")
def sb(fake_repo):
    with Sandbox(job=JOB, preload=("torch", "torch.nn"), limits=LIMITS,
                 hidden_paths=[fake_repo]) as s:
        yield s


@pytest.fixture
def student(tmp_path):
    def write(code: str) -> Path:
        p = tmp_path / f"sub_{uuid.uuid4().hex[:8]}.py"
        p.write_text(code)
        return p
    return write


def procs_with(marker: str) -> list[int]:
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{d}/cmdline").read_bytes():
                    found.append(int(d))
            except OSError:
                pass
    return found


def wait_gone(marker: str, seconds: float = 3.0) -> list[int]:
    end = time.monotonic() + seconds
    while (left := procs_with(marker)) and time.monotonic() < end:
        time.sleep(0.05)
    return left


PROBE_PATHS = """
import json, os
def main(req):
    out = {}
    for p in json.loads(req):
        try:
            if os.path.isdir(p):
                os.listdir(p)
            else:
                open(p, 'rb').read(16)
            out[p] = 'READ'
        except OSError as e:
            out[p] = type(e).__name__
    return json.dumps(out).encode()
"""


def test_ok_returns_payload_and_output(sb, student):
    f = student("import os\ndef main(req):\n    print('py line')\n    os.write(2, b'c level\\n')\n"
                "    return b'got:' + req\n")
    r = sb.run(f, b"abc")
    assert isinstance(r, ChildResult)
    assert (r.status, r.payload, r.exit_code) == ("ok", b"got:abc", 0)
    assert "py line" in r.output and "c level" in r.output
    assert r.elapsed_s < 2


def test_isolation_layers_reported(sb):
    assert sb.isolation, "no layer reported"
    if os.geteuid() == 0:
        joined = " ".join(sb.isolation)
        for layer in ("pid", "mount", "net", "uid nobody", "no_new_privs"):
            assert layer in joined
        assert sb.warning is None
    if landlock_abi() >= 1:
        assert any(layer.startswith("landlock") for layer in sb.isolation)


def test_environment_inside_child(sb, student):
    f = student("import os, sys, json\ndef main(req):\n"
                "    import torch\n"
                "    y = torch.nn.Conv2d(3, 4, 3)(torch.ones(1, 3, 8, 8))\n"
                "    return json.dumps({'cwd': os.getcwd(), 'files': os.listdir('.'), 'path0': sys.path[0],"
                " 'uid': os.getuid(), 'threads': torch.get_num_threads(), 'shape': list(y.shape),"
                " 'cuda': os.environ.get('CUDA_VISIBLE_DEVICES'), 'sol': [m for m in sys.modules"
                " if m.startswith('solutions')], 'path': sys.path}).encode()\n")
    r = sb.run(f, b"")
    assert r.status == "ok", r.message + r.output
    info = json.loads(r.payload)
    assert info["files"] == ["resnet50_skeleton.py"]
    assert info["path0"] == info["cwd"]
    assert info["shape"] == [1, 4, 6, 6] and info["threads"] == 1 and info["cuda"] == ""
    assert info["sol"] == []
    assert str(REPO_ROOT) not in info["path"]
    if os.geteuid() == 0:
        assert info["uid"] == 65534
    assert not Path(info["cwd"]).exists(), "temp dir left behind"


def test_cannot_read_secrets(sb, student, fake_repo):
    outside = Path("/run") / f"sbx-secret-{uuid.uuid4().hex[:8]}"
    outside.write_text("not for students")
    try:
        paths = [str(fake_repo / "secret.txt"), str(fake_repo / "solutions" / "resnet50_skeleton.py"),
                 str(fake_repo), str(REPO_ROOT), str(REPO_ROOT / "solutions" / "resnet50_skeleton.py"),
                 str(REPO_ROOT / "autograder"), str(outside), "/root", "/etc/shadow"]
        r = sb.run(student(PROBE_PATHS), json.dumps(paths).encode())
    finally:
        outside.unlink()
    assert r.status == "ok", r.message + r.output
    seen = json.loads(r.payload)
    leaked = {p: v for p, v in seen.items() if v == "READ"}
    assert not leaked, leaked


def test_cannot_see_parent_or_zygote_proc(sb, student):
    pids = [os.getpid(), sb.zygote_pid]
    paths = [f"/proc/{p}/{x}" for p in pids for x in ("environ", "mem", "cmdline")] + [f"/proc/{p}" for p in pids]
    r = sb.run(student(PROBE_PATHS), json.dumps(paths).encode())
    assert r.status == "ok", r.message + r.output
    leaked = {p: v for p, v in json.loads(r.payload).items() if v == "READ"}
    assert not leaked, leaked


def test_no_network(sb, student):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    try:
        f = student("import socket\ndef main(req):\n    s = socket.socket(); s.settimeout(1)\n"
                    "    try:\n        s.connect(('127.0.0.1', int(req)))\n        return b'CONNECTED'\n"
                    "    except OSError as e:\n        return type(e).__name__.encode()\n")
        r = sb.run(f, str(port).encode())
    finally:
        srv.close()
    assert r.status == "ok", r.message + r.output
    assert r.payload != b"CONNECTED"


def test_hang_is_a_timeout_and_leaves_no_process(sb, student):
    marker = f"sbxhang{uuid.uuid4().hex[:8]}"
    f = student(f"import subprocess, time\nsubprocess.Popen(['{marker}', '1000'], executable='sleep')\n"
                "def main(req):\n    time.sleep(100)\n")
    t0 = time.monotonic()
    r = sb.run(f, b"", Limits(timeout_s=1.5, memory_bytes=512 << 20))
    assert r.status == "timeout" and r.payload is None
    assert time.monotonic() - t0 < 6
    assert wait_gone(marker) == []


@pytest.mark.parametrize("code,exit_code", [("import sys\nsys.exit(3)\n", 3),
                                            ("import os\nos._exit(0)\n", 0)])
def test_exit_at_import(sb, student, code, exit_code):
    r = sb.run(student(code + "def main(req):\n    return b'never'\n"), b"")
    assert (r.status, r.exit_code, r.payload) == ("exited", exit_code, None)
    assert str(exit_code) in r.message


@pytest.mark.parametrize("hog", [
    "bytearray(10**10)",
    "__import__('torch').empty(10**10, dtype=__import__('torch').uint8)",
    "[bytearray(64 << 20) for _ in range(100)]",
])
def test_memory_hog(sb, student, hog):
    r = sb.run(student(f"def main(req):\n    x = {hog}\n    return b'survived'\n"), b"")
    assert r.status == "memory", (r.status, r.message, r.output[-500:])
    assert r.payload is None


def test_segfault_is_crashed(sb, student):
    r = sb.run(student("import ctypes\ndef main(req):\n    ctypes.string_at(0)\n"), b"")
    assert r.status == "crashed" and r.exit_code == -signal.SIGSEGV
    assert "SIGSEGV" in r.message


def test_job_exception_and_bad_return(sb, student):
    r = sb.run(student("def main(req):\n    raise ValueError('boom')\n"), b"")
    assert r.status == "crashed" and "ValueError: boom" in r.message and "Traceback" in r.output


def test_output_flood_is_truncated(sb, student):
    f = student("import sys, os\ndef main(req):\n    chunk = 'x' * (1 << 20)\n"
                "    for _ in range(100):\n        sys.stdout.write(chunk)\n"
                "    os.write(1, b'y' * (1 << 20))\n    return b'done'\n")
    t0 = time.monotonic()
    r = sb.run(f, b"")
    assert (r.status, r.payload) == ("ok", b"done")
    assert len(r.output) < 9000 and "bytes truncated]" in r.output
    assert str(101 * (1 << 20) - 8192) in r.output
    assert time.monotonic() - t0 < 10


def test_printed_fake_frame_is_not_a_result(sb, student):
    f = student("import os, struct, sys\ndef main(req):\n"
                "    fake = b'SBXR' + bytes(16) + b'O' + struct.pack('<Q', 6) + b'forged'\n"
                "    os.write(1, fake); sys.stdout.buffer.write(fake); os.write(2, fake)\n"
                "    return b'real'\n")
    r = sb.run(f, b"")
    assert (r.status, r.payload) == ("ok", b"real")
    r = sb.run(student("import os, struct\n"
                       "os.write(1, b'SBXR' + bytes(16) + b'O' + struct.pack('<Q', 6) + b'forged')\n"
                       "os._exit(0)\n"), b"")
    assert r.status == "exited" and r.payload is None


def test_grandchildren_and_daemons_are_killed(sb, student):
    marker = f"sbxdaemon{uuid.uuid4().hex[:8]}"
    f = student(f"""import os, subprocess
def main(req):
    subprocess.Popen(['{marker}', '1000'], executable='sleep', start_new_session=True)
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvp('sleep', ['{marker}', '1000'])
        os._exit(0)
    os.wait()
    return b'spawned'
""")
    r = sb.run(f, b"")
    assert (r.status, r.payload) == ("ok", b"spawned"), r.message + r.output
    assert wait_gone(marker) == []


def test_temp_dirs_removed(sb, student):
    base = Path(sb._zyg.base)
    sb.run(student("def main(req):\n    open('junk', 'w').write('x')\n    return b''\n"), b"")
    sb.run(student("import os\nos._exit(1)\n"), b"")
    assert list(base.iterdir()) == []


def test_concurrent_runs(sb, student):
    f = student("import time\ndef main(req):\n    t0 = time.time()\n    time.sleep(0.4)\n"
                "    return req[::-1] + b'|%r|%r' % (t0, time.time())\n")
    reqs = [f"req-{i}".encode() for i in range(4)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda q: sb.run(f, q), reqs))
    parts = [r.payload.split(b"|") for r in results]
    assert [p[0] for p in parts] == [q[::-1] for q in reqs]
    spans = sorted((float(p[1]), float(p[2])) for p in parts)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:])), f"runs never overlapped: {spans}"


def test_zygote_death_is_crashed_then_recovers(student):
    marker = f"sbxzyg{uuid.uuid4().hex[:8]}"
    with Sandbox(job=JOB, preload=(), limits=LIMITS) as s:
        old = s.zygote_pid
        hang = student(f"import subprocess, time\n"
                       f"subprocess.Popen(['{marker}', '1000'], executable='sleep')\n"
                       "def main(req):\n    time.sleep(100)\n")
        box: list = []
        t = threading.Thread(target=lambda: box.append(s.run(hang, b"")))
        t.start()
        end = time.monotonic() + 5
        while not procs_with(marker) and time.monotonic() < end:
            time.sleep(0.05)
        os.kill(old, signal.SIGKILL)
        t.join(10)
        assert box and box[0].status == "crashed" and "zygote" in box[0].message
        r = s.run(student("def main(req):\n    return b'again'\n"), b"")
        assert (r.status, r.payload) == ("ok", b"again")
        assert s.zygote_pid not in (None, old)
        assert wait_gone(marker) == []
    assert s.zygote_pid is None


def test_job_must_return_bytes(student):
    with Sandbox(job="tests.sandbox_jobs:returns_str", preload=(), limits=LIMITS) as s:
        r = s.run(student("def main(req):\n    return b''\n"), b"")
    assert r.status == "crashed" and "not bytes" in r.message


def test_without_isolation_warns_and_still_cleans_up(student):
    """The fallback path (no namespaces): subreaper sweep + timeout still hold."""
    marker = f"sbxnone{uuid.uuid4().hex[:8]}"
    f = student(f"""import os, subprocess, time
def main(req):
    subprocess.Popen(['{marker}', '1000'], executable='sleep', start_new_session=True)
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvp('sleep', ['{marker}', '1000'])
        os._exit(0)
    if req:
        time.sleep(100)
    return b'spawned'
""")
    with pytest.warns(RuntimeWarning, match="no filesystem isolation"):
        s = Sandbox(job=JOB, preload=(), limits=Limits(timeout_s=1.5, memory_bytes=512 << 20),
                    isolation="none")
    with s:
        assert s.warning
        assert s.run(f, b"").payload == b"spawned"
        assert wait_gone(marker) == []
        assert s.run(f, b"hang").status == "timeout"
        assert wait_gone(marker) == []
