"""The sandbox fork server: results, isolation, limits, clean-up, concurrency."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import threading
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from autograder.grade.sandbox import REPO_ROOT, ChildResult, IsolationError, Limits, Sandbox, landlock_abi

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


# ---------------------------------------------------------------- filesystem view, hiding, disk quota
# Each mode switches layers off on a machine that has them, so every fallback runs here too.
MODES = {
    "auto": (),
    "root-without-landlock": ("landlock",),        # Gradescope-like: root, no Landlock
    "landlock-without-mount": ("mount",),          # no mount namespace: Landlock alone
    "chroot-without-landlock": ("landlock", "pivot_root"),
    "neither": ("landlock", "mount"),              # no allow-list possible: warn (auto), refuse (strict)
}


def can_unshare_mount() -> bool:
    from autograder.grade.sandbox.syscalls import CLONE_NEWNS, unshare
    pid = os.fork()
    if pid == 0:
        os._exit(0 if unshare(CLONE_NEWNS) else 1)
    return os.waitpid(pid, 0)[1] == 0


def expects_allow_list(disable) -> bool:
    return ("mount" not in disable and can_unshare_mount()) or ("landlock" not in disable and landlock_abi() >= 1)


@pytest.fixture(scope="module")
def planted(fake_repo):
    """World-readable secrets where no fixed deny-list looks (/opt), and a class's submissions
    twice: in an ordinary folder, and inside /usr where the child must be able to read."""
    if os.geteuid() != 0:
        pytest.skip("planting world-readable files under /opt and /usr/local needs root")
    tag = uuid.uuid4().hex[:8]
    opt, usr = Path(f"/opt/kit-test-{tag}"), Path(f"/usr/local/share/kit-test-{tag}")
    for root in (opt, usr):
        (root / "submissions" / "bob").mkdir(parents=True)
        (root / "submissions" / "bob" / "resnet50_skeleton.py").write_text(f"BOB_{tag} = 1\n")
        (root / "submissions" / "alice.py").write_text(f"ALICE_{tag} = 1\n")
    (opt / "secret").write_text(f"OPT_SECRET_{tag}\n")
    for p in [opt, usr, *opt.rglob("*"), *usr.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    yield {"tag": tag, "opt": opt, "subs": opt / "submissions", "usr_subs": usr / "submissions",
           "hidden": [fake_repo, opt / "submissions", usr / "submissions"]}
    shutil.rmtree(opt)
    shutil.rmtree(usr)


@pytest.fixture(scope="module", params=list(MODES), ids=list(MODES))
def mode_sb(request, planted):
    disable = MODES[request.param]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        s = Sandbox(job=JOB, preload=(), limits=LIMITS, hidden_paths=planted["hidden"], disable=disable)
    with s:
        yield request.param, disable, s


PROBE_ACCESS = """
import json, os
def main(req):
    paths = json.loads(req)
    seen = {}
    for p in paths['read']:
        try:
            if os.path.isdir(p):
                os.listdir(p)
            else:
                open(p, 'rb').read(64)
            seen[p] = 'READ'
        except OSError as e:
            seen[p] = type(e).__name__
    for d in paths['write']:
        p = os.path.join(d, 'kit-test-written')
        try:
            with open(p, 'w') as f:
                f.write('x')
            os.unlink(p)
            seen[p] = 'WROTE'
        except OSError as e:
            seen[p] = type(e).__name__
    return json.dumps(seen).encode()
"""


def test_filesystem_view_is_an_allow_list_in_every_mode(mode_sb, planted, student):
    name, disable, s = mode_sb
    subs, usr_subs = planted["subs"], planted["usr_subs"]
    reads = [str(planted["opt"] / "secret"), str(planted["opt"]), str(subs), str(subs / "alice.py"),
             str(subs / "bob" / "resnet50_skeleton.py"), str(usr_subs), str(usr_subs / "alice.py"),
             str(usr_subs / "bob" / "resnet50_skeleton.py"), str(REPO_ROOT / "solutions" / "resnet50_skeleton.py"),
             str(REPO_ROOT / "autograder"), "/root", "/home", "/var/log", "/etc/shadow", "/etc/hostname"]
    writes = [str(planted["opt"]), "/tmp", "/var/tmp", "/dev/shm", str(REPO_ROOT)]
    r = s.run(student(PROBE_ACCESS), json.dumps({"read": reads, "write": writes}).encode())
    assert r.status == "ok", r.message + r.output
    seen = json.loads(r.payload)
    leaked = {p for p, v in seen.items() if v in ("READ", "WROTE")}
    if not expects_allow_list(disable):
        # The fallback is honest: it says so, and what it says is true.
        assert s.warning and "no filesystem isolation" in s.warning
        assert str(planted["opt"] / "secret") in leaked
        return
    usr_visible = {p for p in leaked if p.startswith(str(usr_subs))}
    assert leaked == usr_visible, leaked
    if any(layer.startswith("allow-list root") for layer in s.isolation):
        assert not usr_visible                # covered inside the new root
        assert "scratch tmpfs" in " ".join(s.isolation)
    else:
        # Landlock alone cannot carve a hole in /usr: the sandbox must say the folder is visible.
        assert usr_visible and s.warning and f"cannot hide {usr_subs}" in s.warning
    assert s.warning is None or "no filesystem isolation" not in s.warning


def test_layers_reported_per_mode(mode_sb):
    name, disable, s = mode_sb
    joined = " ".join(s.isolation)
    if "landlock" in disable:
        assert "landlock" not in joined
    if "mount" in disable:
        assert "allow-list root" not in joined and "mount" not in joined
        assert s.warning and "no disk quota" in s.warning
    elif can_unshare_mount():
        how = "chroot" if "pivot_root" in disable else "pivot_root"
        assert f"allow-list root ({how})" in joined
        assert "uid nobody" in joined and "no disk quota" not in (s.warning or "")


def test_strict_refuses_without_an_allow_list(planted):
    with pytest.raises(IsolationError, match="strict.*no filesystem isolation"):
        Sandbox(job=JOB, preload=(), limits=LIMITS, isolation="strict", disable=("landlock", "mount"))


def test_strict_refuses_when_a_hidden_folder_stays_visible(planted):
    if landlock_abi() < 1:
        pytest.skip("needs Landlock (the view without a mount namespace)")
    with pytest.raises(IsolationError, match=f"cannot hide {planted['usr_subs']}"):
        Sandbox(job=JOB, preload=(), limits=LIMITS, isolation="strict", disable=("mount",),
                hidden_paths=planted["hidden"])


@pytest.mark.parametrize("disable", [(), ("landlock",), ("mount",)], ids=["auto", "no-landlock", "no-mount"])
def test_strict_starts_with_an_allow_list(disable, student):
    if not expects_allow_list(disable):
        pytest.skip("this machine offers no allow-list in this mode (test_strict_refuses... covers it)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # e.g. no disk quota without a mount namespace
        s = Sandbox(job=JOB, preload=(), limits=LIMITS, isolation="strict", disable=disable)
    with s:
        assert s.run(student("def main(req):\n    return b'strict ok'\n"), b"").payload == b"strict ok"
        assert "no filesystem isolation" not in (s.warning or "")


# Ways students fill a disk: the big files, appends, preallocation, many tiny files,
# deep folders, and a shell command writing on the student's behalf.
FILL_DISK = """
import json, os, subprocess, time
def fill(how):
    if how == 'big-files':
        for i in range(12):
            with open(f'chunk{i}.bin', 'wb') as f:
                f.write(b'x' * (4 << 20))
    elif how == 'append':
        with open('log.txt', 'a') as f:
            for _ in range(50000):
                f.write('y' * 1000)
                f.flush()
    elif how == 'fallocate':
        fd = os.open('pre.bin', os.O_CREAT | os.O_WRONLY)
        os.posix_fallocate(fd, 0, 48 << 20)
    elif how == 'tiny-files':
        for i in range(20000):
            open(f't{i}', 'w').close()
    elif how == 'deep-folders':
        for i in range(200):
            os.makedirs(f'd{i}/a/b', exist_ok=True)
            with open(f'd{i}/a/b/w.bin', 'wb') as f:
                f.write(b'z' * (256 << 10))
    elif how == 'shell':
        p = subprocess.run(['sh', '-c', 'head -c 50000000 /dev/zero > out.bin'], capture_output=True)
        if b'No space left' in p.stderr:
            raise OSError(28, p.stderr.decode())
        return p.returncode
def main(req):
    try:
        fill(req.decode())
        err = None
    except OSError as e:
        err = e.errno
    used = 0
    for d, _, files in os.walk('.'):
        for f in files:
            used += os.lstat(os.path.join(d, f)).st_blocks * 512
    st = os.statvfs('.')
    time.sleep(0.3)   # the grader looks at its own disk meanwhile
    return json.dumps({'errno': err, 'used': used, 'size': st.f_blocks * st.f_frsize,
                       'files': len(os.listdir('.'))}).encode()
"""


@pytest.mark.parametrize("how", ["big-files", "append", "fallocate", "tiny-files", "deep-folders", "shell"])
def test_disk_quota(sb, student, how):
    if not any(layer.startswith("scratch tmpfs") for layer in sb.isolation):
        assert sb.warning and "no disk quota" in sb.warning
        pytest.skip("no mount namespace on this machine: no quota (warned, as asserted)")
    cap = 16 << 20
    base = Path(sb._zyg.base)
    peak, stop = [0], threading.Event()

    def watch_host_disk():
        while not stop.is_set():
            total = 0
            for d, _, files in os.walk(base):
                for f in files:
                    try:
                        total += os.lstat(os.path.join(d, f)).st_blocks * 512
                    except OSError:
                        pass
            peak[0] = max(peak[0], total)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch_host_disk)
    watcher.start()
    try:
        r = sb.run(student(FILL_DISK), how.encode(),
                   Limits(timeout_s=20, memory_bytes=512 << 20, scratch_bytes=cap))
    finally:
        stop.set()
        watcher.join()
    assert r.status == "ok", r.message + r.output
    got = json.loads(r.payload)
    assert got["errno"] == errno.ENOSPC, got
    assert got["size"] == cap and got["used"] <= cap, got
    assert peak[0] < 64 << 10, f"the grader's /tmp grew by {peak[0]} bytes"
    assert list(base.iterdir()) == []


def test_student_file_is_in_the_scratch_and_readable(sb, student):
    f = student("import os, json\nSOURCE = open(__file__).read()\n"
                "def main(req):\n    st = os.statvfs('.')\n"
                "    return json.dumps({'len': len(SOURCE), 'size': st.f_blocks * st.f_frsize,"
                " 'mine': os.stat('resnet50_skeleton.py').st_uid == os.getuid()}).encode()\n")
    r = sb.run(f, b"", Limits(timeout_s=5, memory_bytes=512 << 20, scratch_bytes=8 << 20))
    assert r.status == "ok", r.message + r.output
    got = json.loads(r.payload)
    assert got["len"] == len(f.read_text()) and got["mine"]
    if any(layer.startswith("scratch tmpfs") for layer in sb.isolation):
        assert got["size"] == 8 << 20


def test_batch_hides_other_submissions_from_each_student(planted, tmp_path):
    """Through the real batch: eve's code reads bob's file and the /opt secret and prints
    what it got into her own feedback."""
    from autograder.grade.batch import grade_batch
    subs, tag = planted["subs"], planted["tag"]
    eve = subs / "eve"
    eve.mkdir()
    try:
        (eve / "resnet50_skeleton.py").write_text(
            "import os\n"
            f"for p in [{str(subs / 'bob' / 'resnet50_skeleton.py')!r}, {str(subs / 'alice.py')!r},\n"
            f"          {str(planted['opt'] / 'secret')!r}, {str(subs)!r}]:\n"
            "    try:\n"
            "        print('GOT', p, os.listdir(p) if os.path.isdir(p) else open(p).read())\n"
            "    except OSError as e:\n"
            "        print('DENIED', p, type(e).__name__)\n")
        eve.chmod(0o755)
        (eve / "resnet50_skeleton.py").chmod(0o644)
        out = tmp_path / "out"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            grade_batch(subs, out, jobs=1, timeout_s=60, progress=False, log=lambda *a: None)
    finally:
        shutil.rmtree(eve)
    written = "\n".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    assert "DENIED" in written                # eve's output does reach her feedback ...
    for marker in (f"BOB_{tag}", f"ALICE_{tag}", f"OPT_SECRET_{tag}", "GOT"):
        assert marker not in written          # ... but nothing she should not see


@pytest.mark.parametrize("field", ["scratch_bytes", "fsize_bytes", "timeout_s"])
def test_limits_must_be_positive(field):
    with pytest.raises(ValueError, match=field):
        Limits(**{field: 0})


def test_cli_strict_refusal_is_one_line(monkeypatch, tmp_path, capsys):
    """A machine with neither Landlock nor a mount namespace, simulated: `grade --isolation strict`
    says why in one line and grades nothing."""
    import functools

    import autograder.grade.sandbox as sandbox_pkg
    from autograder.cli import main
    monkeypatch.setattr(sandbox_pkg, "Sandbox", functools.partial(Sandbox, disable=("landlock", "mount")))
    (tmp_path / "subs" / "bob").mkdir(parents=True)
    (tmp_path / "subs" / "bob" / "resnet50_skeleton.py").write_text("x = 1\n")
    code = main(["grade", str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--isolation", "strict",
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.startswith("error: sandbox: isolation='strict' refused: no filesystem isolation")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "grades.csv").exists()


def test_cli_passes_isolation():
    from autograder.cli import build_parser
    args = build_parser().parse_args(["grade", "subs", "--out", "o", "--isolation", "strict"])
    assert args.isolation == "strict"
    assert build_parser().parse_args(["grade", "subs", "--out", "o"]).isolation == "auto"


# The ways different students reach for a file they may not read.
SNEAK = """
import json, os, subprocess
def attempts(p):
    yield 'open', lambda: open(p).read()
    yield 'proc-self-root', lambda: open('/proc/self/root' + p).read()
    yield 'proc-1-root', lambda: open('/proc/1/root' + p).read()
    def via_link():
        os.symlink(p, 'link')
        try:
            return open('link').read()
        finally:
            os.unlink('link')
    yield 'symlink', via_link
    def via_hardlink():
        os.link(p, 'hard')
        return open('hard').read()
    yield 'hardlink', via_hardlink
    def via_cat():
        r = subprocess.run(['cat', p], capture_output=True)
        if r.returncode:
            raise OSError(r.stderr.decode()[:80])
        return r.stdout.decode()
    yield 'cat', via_cat
def main(req):
    got = {}
    for p in json.loads(req):
        for how, fn in attempts(p):
            try:
                got[f'{how} {p}'] = fn()
            except Exception as e:
                got[f'{how} {p}'] = 'DENIED ' + type(e).__name__
    return json.dumps(got).encode()
"""


def test_no_way_around_the_allow_list(mode_sb, planted, student):
    name, disable, s = mode_sb
    targets = [str(planted["opt"] / "secret"), str(planted["subs"] / "bob" / "resnet50_skeleton.py")]
    r = s.run(student(SNEAK), json.dumps(targets).encode())
    assert r.status == "ok", r.message + r.output
    got = json.loads(r.payload)
    leaked = {k: v for k, v in got.items() if planted["tag"] in v}
    if expects_allow_list(disable):
        assert not leaked, leaked
    else:
        assert f"open {targets[0]}" in leaked   # the control: without an allow-list, it is readable
