"""The Gradescope zip: built once, unpacked, and its run_autograder run as Gradescope
runs it (a fresh process, as root, AUTOGRADER_ROOT pointing at a folder of our own)
on submissions the way students upload them; every results.json is checked against
the schema written from Gradescope's documentation, against the rubric and against
grade_batch.

Some runs happen in a simulated container: a wrapper (CONTAINER below) gives
run_autograder a private mount namespace for its own set-up, then drops every
capability Docker drops, CAP_SYS_ADMIN included, before it execs run_autograder. The
sandbox then gets no PID, mount or network namespace, exactly as in a container
that does not allow them; Landlock is switched off with --disable-layer.

run_autograder finds Python through AUTOGRADER_PYTHON here (this test's own
interpreter); on Gradescope it uses the .venv that setup.sh makes. Each run gets a
sandbox uid of its own (--sandbox-uid): the sweep after grading kills every
process of that uid, so two runs at once must not share one, not even two runs
of this file in two pytest processes on one machine (a shared CI runner, or two
people's full suites): each uid is reserved with a lock file (``sandbox_uids``).
"""
from __future__ import annotations

import ast
import fcntl
import importlib.metadata
import io
import json
import os
import re
import signal
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import pytest

from autograder.cli import main as cli_main
from autograder.grade.batch import grade_batch
from autograder.gradescope.results import SCHEMA_PATH
from autograder.gradescope.run import live_processes_of, sweep_sandbox_uid
from autograder.gradescope.submission import find_submission
from autograder.spec import PART_IDS, load_rubric

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "submissions"
CORRECT = (EXAMPLES / "correct" / "resnet50_skeleton.py").read_bytes()
WRONG_Q2B = (EXAMPLES / "layer3_downsample_first" / "resnet50_skeleton.py").read_bytes()   # 99: Q2b only
SECRET = "gs-secret-7f3a9c"          # in run_autograder's environment; must never reach results.json
META_SECRET = "gs-roster-51d0e2"     # in submission_metadata.json (Gradescope's roster data)
FORGED = "FORGED-BY-STUDENT"
TIMEOUT = "3"                        # seconds for student code: keeps the hanging case short
NO_LANDLOCK = ("--disable-layer", "landlock")
UID_LOCKS = Path(tempfile.gettempdir()) / "autograder-test-sandbox-uids"

# Gradescope runs run_autograder as root, and these tests check what root does there: the drop
# to a sandbox uid, the sweep of that uid's processes, the guard owner of results/.
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root, as Gradescope's container runs "
                               "run_autograder (uid drop, process sweep, results/ ownership)")
pytestmark = ROOT_ONLY


def sandbox_uids(first: int = 61001, last: int = 61999):
    """Sandbox uids that no other process on this machine is using: the sweep kills all of
    a uid's processes, so a uid shared with a concurrent run would lose its planted process
    to the other run's sweep (0 killed here) or add the other run's (2 killed). Each uid is
    locked (flock, released when this process ends, even by SIGKILL) and must have no
    process left from before."""
    UID_LOCKS.mkdir(mode=0o700, exist_ok=True)
    held = []   # open, locked descriptors: the reservations last as long as this process
    for uid in range(first, last + 1):
        fd = os.open(UID_LOCKS / f"{uid}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if live_processes_of(uid):
            os.close(fd)
            continue
        held.append(fd)
        yield uid
    raise RuntimeError(f"no free sandbox uid between {first} and {last}")


_UIDS = sandbox_uids()
_UIDS_LOCK = threading.Lock()   # runs start from two threads; a generator is not thread-safe


def next_uid() -> int:
    with _UIDS_LOCK:
        return next(_UIDS)


# Docker's default capabilities: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
# NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP. No CAP_SYS_ADMIN: no namespaces, no mounts.
DOCKER_CAPS = (0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31)

# argv: REPO MODE COMMAND...; MODE "open" makes the Python installation reachable by other users
# (as setup.sh's chmod does on Gradescope) by covering a closed folder above it (/root, say) with an
# open tmpfs that holds only a bind of it, in this process's mount namespace; "closed" runs the same
# interpreter through a bind of its venv inside a 0700 folder, so no other user can read it.
CONTAINER = r'''
import os, stat, sys, tempfile
sys.path.insert(0, sys.argv[1])
from autograder.grade.sandbox.syscalls import (CLONE_NEWNS, MS_BIND, MS_PRIVATE, MS_REC, PR_CAPBSET_DROP,
                                               mount, prctl, unshare)
mode, command = sys.argv[2], sys.argv[3:]
assert unshare(CLONE_NEWNS), "the test needs a mount namespace for its own set-up"
mount(None, "/", None, MS_REC | MS_PRIVATE)
if mode == "open":
    for prefix in {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)}:
        parts = prefix.split("/")
        for i in range(2, len(parts)):
            above, inner = "/".join(parts[:i]) or "/", "/".join(parts[:i + 1])
            if not os.stat(above).st_mode & stat.S_IXOTH:
                stash = tempfile.mkdtemp(prefix="gs-stash-", dir=os.environ["GS_CLOSED_DIR"])   # the test removes it
                mount(inner, stash, None, MS_BIND | MS_REC)
                mount("tmpfs", above, "tmpfs", 0, "mode=0755,size=64k")
                os.mkdir(inner)
                mount(stash, inner, None, MS_BIND | MS_REC)
else:
    venv = os.environ["AUTOGRADER_PYTHON"].rsplit("/bin/", 1)[0]
    closed = os.environ["GS_CLOSED_DIR"]   # mode 0700, made by the test
    os.mkdir(closed + "/venv")
    mount(venv, closed + "/venv", None, MS_BIND | MS_REC)
    os.environ["AUTOGRADER_PYTHON"] = closed + "/venv/bin/" + os.environ["AUTOGRADER_PYTHON"].rsplit("/", 1)[1]
keep = {int(c) for c in os.environ.pop("GS_KEEP_CAPS").split(",")}
for cap in range(int(open("/proc/sys/kernel/cap_last_cap").read()) + 1):
    if cap not in keep:
        prctl(PR_CAPBSET_DROP, cap)   # root's next exec gets the bounding set: no CAP_SYS_ADMIN
os.execvp(command[0], command)
'''


def hostile_source(results_paths: list[str], then: str, secrets_at: list[str] = ()) -> bytes:
    """Prints fake results JSON and the environment, reads what it should not, tries to write
    results.json and to kill its supervisor, then ``then``."""
    return f'''
import json, os, signal, sys
print(json.dumps({{"score": 1000, "tests": [], "output": "{FORGED}"}}))
print("ENV", dict(os.environ))
for pid in (1, os.getppid()):
    try:
        print("PROC", pid, open(f"/proc/{{pid}}/environ", "rb").read())
    except OSError as exc:
        print("no /proc environ", pid, exc)
for path in {list(secrets_at)!r}:
    try:
        print("READ", path, open(path).read()[:300])
    except OSError as exc:
        print("could not read", path, exc)
if os.getppid() > 1:   # 0 when it is pid 1 of its own PID namespace
    try:
        os.kill(os.getppid(), signal.SIGKILL)
        print("KILLED the supervisor")
    except OSError as exc:
        print("could not kill the supervisor", exc)
for target in {results_paths!r}:
    folder = os.path.dirname(target)
    try:   # rename results/ away and plant a new one
        os.rename(folder, folder + "-moved")
        os.mkdir(folder)
        print("WROTE", folder)
    except OSError as exc:
        print("could not move", folder, exc)
    for attempt in (lambda: open(target, "w").write('{{"score": 1000, "output": "{FORGED}"}}'),
                    lambda: os.replace(__file__, target)):
        try:
            attempt()
            print("WROTE", target)
        except OSError as exc:
            print("could not write", target, exc)
sys.stdout.flush()
{then}
'''.encode()


def daemon_source(results_paths: list[str]) -> bytes:
    """A correct submission that leaves a detached daemon behind (double fork, setsid, then
    hopping to new pids so a supervisor's list of its children is always stale). For 60 s it
    tries to replace results.json with a score of 999 and to kill every process of another
    user it sees (the grader, the supervisor). If any of it outlived grading, results.json
    would say 999, or the run would die."""
    return CORRECT + f'''

def _leave_a_daemon():
    import os, signal, time
    if os.fork():
        return                   # the student's own process goes on to be graded
    try:
        os.setsid()
        print("DAEMON STARTED", flush=True)
        for _ in range(30):
            if os.fork():
                os._exit(0)
        me, end = os.getuid(), time.time() + 60
        while time.time() < end:
            for target in {results_paths!r}:
                try:
                    with open(target + ".tmp", "w") as f:
                        f.write('{{"score": 999, "output": "{FORGED}"}}')
                    os.replace(target + ".tmp", target)
                except OSError:
                    pass
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    if os.stat("/proc/" + pid).st_uid != me:
                        os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.05)
    finally:
        os._exit(0)

_leave_a_daemon()
'''.encode()


def zip_bytes(entries: dict[str, bytes], links: dict[str, str] = {}) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, target in links.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buffer.getvalue()


def world_readable_dir(prefix: str) -> Path:
    """A temp folder the sandbox's user (nobody) can enter, so file modes alone keep results/ safe."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def kit():
    """One zip build for the module (built twice to check it is reproducible), unpacked."""
    work = world_readable_dir("gs-kit-")
    try:
        assert cli_main(["gradescope", "--out", str(work / "a.zip"), "--timeout", "30"]) == 0
        assert cli_main(["gradescope", "--out", str(work / "b.zip"), "--timeout", "30"]) == 0
        unpacked = work / "kit"
        with zipfile.ZipFile(work / "a.zip") as zf:
            zf.extractall(unpacked)
            for info in zf.infolist():   # extractall drops modes; Gradescope keeps them
                (unpacked / info.filename).chmod((info.external_attr >> 16) & 0o777)
        unpacked.chmod(0o755)
        yield {"zip": work / "a.zip", "again": work / "b.zip", "dir": unpacked, "work": work}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_autograder(kit_dir: Path, case: str, *options: str, container: str | None = None,
                   plant: bool = False) -> dict:
    """Run the unpacked zip's run_autograder, as root, on the uploads of ``case`` in a fresh
    process; ``container``: "open" or "closed" (see CONTAINER); ``plant``: a process of the
    sandbox uid already running, as one that escaped an earlier step would be."""
    uid = next_uid()
    root = world_readable_dir("gs-root-")
    submission = root / "submission"
    submission.mkdir()
    for name, data in cases(str(root), str(kit_dir))[case].items():
        (submission / name).parent.mkdir(parents=True, exist_ok=True)
        (submission / name).write_bytes(data)
    (root / "submission_metadata.json").write_text(json.dumps({"users": [{"email": META_SECRET}]}))
    (root / "submission_metadata.json").chmod(0o644)   # run_autograder makes it root-only
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AUTOGRADER_ROOT": str(root),
           "AUTOGRADER_PYTHON": sys.executable, "GRADESCOPE_TOKEN": SECRET}
    command = [str(kit_dir / "run_autograder"), "--sandbox-uid", str(uid), *options]
    closed = None
    if container:
        closed = Path(tempfile.mkdtemp(prefix="gs-closed-"))   # 0700
        env.update(GS_KEEP_CAPS=",".join(map(str, DOCKER_CAPS)), GS_CLOSED_DIR=str(closed))
        command = [sys.executable, "-c", CONTAINER, str(REPO), container, *command, *NO_LANDLOCK]
    planted = None
    if plant:
        planted = subprocess.Popen(["sleep", "600"], user=uid, group=uid, extra_groups=[],
                                   start_new_session=True, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.monotonic()
    try:
        proc = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True, timeout=300)
        seconds = time.monotonic() - start
        # Before this test's own sweep below: killed by run_autograder's sweep, or still running.
        planted_after_run = planted.poll() if planted is not None else None
        results_dir = root / "results"
        text = (results_dir / "results.json").read_text(encoding="utf-8")
        time.sleep(1.0)   # a daemon that outlived grading would rewrite it by now
        text_later = (results_dir / "results.json").read_text(encoding="utf-8")
        survivors = live_processes_of(uid)
        leftovers = sorted(p.name for p in results_dir.iterdir() if p.name != "results.json")
        leftovers += sorted(p.name for p in root.iterdir()
                            if p.name not in ("results", "submission", "submission_metadata.json"))
    finally:
        sweep_sandbox_uid(uid)   # whatever the outcome, nothing of this run stays behind
        if planted is not None:
            planted.wait(10)
        shutil.rmtree(root, ignore_errors=True)
        if closed is not None:
            shutil.rmtree(closed, ignore_errors=True)
    return {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr, "text": text,
            "text_later": text_later, "results": json.loads(text), "seconds": seconds,
            "leftovers": leftovers, "root": str(root), "uid": uid, "survivors": survivors,
            "planted": planted_after_run}


def cases(root_hint: str, kit_hint: str = "/autograder/source") -> dict[str, dict[str, bytes]]:
    """Uploads by case name. Hostile files aim at every results.json they could know of, and
    at the reference solution and Gradescope's roster data."""
    targets = ["/autograder/results/results.json", f"{root_hint}/results/results.json"]
    secrets = [f"{kit_hint}/solutions/resnet50_skeleton.py", f"{root_hint}/submission_metadata.json",
               "/autograder/submission_metadata.json"]
    return {
        "correct": {"resnet50_skeleton.py": CORRECT},
        "wrong_q2b": {"resnet50_skeleton.py": WRONG_Q2B},
        "hostile_exit": {"resnet50_skeleton.py": hostile_source(targets, "os._exit(0)", secrets)},
        "hostile_hang": {"resnet50_skeleton.py": hostile_source(targets, "while True:\n    pass", secrets)},
        "daemon": {"resnet50_skeleton.py": daemon_source(targets)},
        "misnamed": {"resnet50_skeleton (1).py": CORRECT, "notes.txt": b"my notes"},
        "nested": {"hw3/resnet50_skeleton.py": CORRECT, "hw3/vgg.py": b"# the handout's file"},
        "zipped": {"hw3.zip": zip_bytes({"hw3/resnet50_skeleton.py": WRONG_Q2B,
                                         "../../results/results.json": FORGED.encode(),
                                         "__MACOSX/hw3/._resnet50_skeleton.py": b"junk"},
                                        links={"hw3/evil.py": "/etc/passwd"})},
        "missing": {"CNN_Implementation.ipynb": b"{}", "README.txt": b"hi"},
        "several": {"a.py": CORRECT, "b.py": WRONG_Q2B},
    }


SANDBOXED = ("correct", "wrong_q2b", "hostile_exit", "hostile_hang")
HOSTILE = ("hostile_exit", "hostile_hang", "hostile_exit@container", "hostile_hang@container")
# The simulated container: no namespaces, no Landlock, Python readable by other users (as setup.sh leaves it).
IN_CONTAINER = ("correct", "hostile_exit", "hostile_hang", "daemon")


@pytest.fixture(scope="module")
def runs(kit):
    """Every case once; the sandboxed and hostile ones again in the simulated container; a
    correct one there with a process of the sandbox uid already running; and one where the
    sandbox uid cannot read Python. (Cold speed is measured by benchmarks/gradescope_cold.py.)"""
    jobs = {name: (name, {}) for name in cases("")}
    jobs.update({f"{name}@container": (name, {"container": "open"}) for name in IN_CONTAINER})
    jobs["planted@container"] = ("correct", {"container": "open", "plant": True})
    jobs["hostile_exit@closed"] = ("hostile_exit", {"container": "closed"})
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_autograder, kit["dir"], case, "--timeout", TIMEOUT, **how)
                   for name, (case, how) in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="module")
def batch_results(tmp_path_factory):
    """The CLI's grader on the same files, for the scores to compare with."""
    base = tmp_path_factory.mktemp("batch")
    uploads = cases(str(base), str(REPO))
    for name in SANDBOXED:
        (base / "in" / name).mkdir(parents=True)
        (base / "in" / name / "resnet50_skeleton.py").write_bytes(uploads[name]["resnet50_skeleton.py"])
    results = grade_batch(base / "in", base / "out", jobs=2, timeout_s=float(TIMEOUT), progress=False,
                          log=lambda *_: None)
    return {r["extra_data"]["student"]: r for r in results}


# ---------------------------------------------------------------- the zip

def test_zip_is_reproducible_and_holds_what_grading_needs(kit):
    assert kit["zip"].read_bytes() == kit["again"].read_bytes()
    with zipfile.ZipFile(kit["zip"]) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert {i.date_time for i in infos} == {(2025, 1, 1, 0, 0, 0)}
    for required in ("setup.sh", "run_autograder", "gradescope.json", "solutions/resnet50_skeleton.py",
                     "autograder/spec/rubric.toml", "autograder/spec/resnet50_layer4.toml",
                     "autograder/grade/batch.py", "autograder/grade/sandbox/zygote.py",
                     "autograder/gradescope/run.py"):
        assert required in names, required
    modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in infos}
    assert modes["run_autograder"] == modes["setup.sh"] == 0o755
    # No student file, and nothing of the student-facing or other tools.
    assert "resnet50_skeleton.py" not in names and "vgg.py" not in names
    assert not [n for n in names if n.startswith(("autograder/release/", "autograder/similarity/",
                                                  "tests/", "examples/", "checkpoints/"))]
    assert json.loads((kit["dir"] / "gradescope.json").read_text())["timeout_s"] == 30


def test_visibility_option_goes_into_the_zip(kit, tmp_path):
    out = tmp_path / "after.zip"
    assert cli_main(["gradescope", "--out", str(out), "--visibility", "after_published"]) == 0
    with zipfile.ZipFile(out) as zf:
        assert json.loads(zf.read("gradescope.json"))["visibility"] == "after_published"
    with pytest.raises(SystemExit):
        cli_main(["gradescope", "--out", str(out), "--visibility", "sometimes"])


def test_setup_sh_parses_and_pins_cpu_torch_and_what_the_grader_imports(kit):
    setup = kit["dir"] / "setup.sh"
    assert subprocess.run(["bash", "-n", str(setup)]).returncode == 0
    text = setup.read_text()
    pins = dict(re.findall(r'"([A-Za-z0-9_.-]+)==([^"\s;]+)', text))
    torch_version = re.search(r'^TORCH_VERSION="([^"]+)"', text, re.M).group(1)
    assert re.search(r'^TORCH_REQUIREMENT="torch==\$\{TORCH_VERSION\}\+cpu"', text, re.M)
    assert re.search(r'--index-url "\$TORCH_CPU_INDEX" "\$TORCH_REQUIREMENT"', text)
    assert re.search(r'^TORCH_CPU_INDEX="https://download.pytorch.org/whl/cpu"', text, re.M)
    # The dry-run overrides change the two only when set (never on Gradescope).
    assert 'TORCH_CPU_INDEX="${TORCH_INDEX:-$TORCH_CPU_INDEX}"' in text
    assert 'TORCH_REQUIREMENT="${TORCH_WHEEL:-$TORCH_REQUIREMENT}"' in text
    # The pins are the versions this kit is tested with.
    pins["torch"] = torch_version
    for name, version in pins.items():
        assert importlib.metadata.version(name) == version, name
    # Every third-party module the zipped code imports is installed by setup.sh.
    imported = set()
    for path in kit["dir"].rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    # tomli stands in for tomllib before Python 3.11, which setup.sh refuses.
    assert "sys.version_info < (3, 11)" in text
    third_party = imported - set(sys.stdlib_module_names) - {"autograder", "solutions", "tomli"}
    assert third_party and third_party <= {n.lower() for n in pins}, third_party
    # Idempotent by construction: the venv and apt steps are guarded.
    assert 'if [[ ! -x "$venv/bin/python" ]]' in text


# ---------------------------------------------------------------- finding the file (no sandbox)

def test_find_submission_family(tmp_path):
    def upload(files: dict[str, bytes]) -> Path:
        folder = tmp_path / f"s{len(list(tmp_path.iterdir()))}"
        for name, data in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        folder.mkdir(exist_ok=True)
        return folder

    top_wins = find_submission(upload({"resnet50_skeleton.py": CORRECT, "old/resnet50_skeleton.py": WRONG_Q2B}))
    assert top_wins.source == CORRECT and top_wins.notes == ()
    # Two nested copies, identical or not: the finder shared with the CLI refuses both.
    for second in (CORRECT, WRONG_Q2B):
        two_nested = find_submission(upload({"a/resnet50_skeleton.py": CORRECT, "b/resnet50_skeleton.py": second}))
        assert two_nested.source is None and "2 other candidates" in two_nested.problem
    browser = find_submission(upload({"ResNet50_Skeleton-2.py": CORRECT, "helper.py": b"x = 1"}))
    assert browser.source == CORRECT and "ResNet50_Skeleton-2.py" in browser.notes[0]
    only_vgg = find_submission(upload({"vgg.py": CORRECT}))
    assert only_vgg.source is None and only_vgg.status == "missing"
    empty = find_submission(upload({}))
    assert empty.source is None and "empty" in empty.problem
    # A zip holding only a path-traversal member and a link: nothing to grade, nothing written.
    bad_zip = upload({"sub.zip": zip_bytes({"../resnet50_skeleton.py": CORRECT},
                                           links={"resnet50_skeleton.py": "/etc/passwd"})})
    bad = find_submission(bad_zip)
    assert bad.source is None and sorted(p.name for p in bad_zip.iterdir()) == ["sub.zip"]
    big = find_submission(upload({"resnet50_skeleton.py": b"#" * (2 * 1024 * 1024)}))
    assert big.source is None and big.status == "refused" and "reads files of at most" in big.problem
    corrupt = find_submission(upload({"hw.zip": b"PK\x03\x04 not really a zip"}))
    assert corrupt.source is None and "is not a readable zip file" in corrupt.problem
    # submission.py keeps the batch grader's file name and read cap without importing it (torch).
    from autograder.gradescope import submission
    from autograder.grade import batch
    assert (submission.STUDENT_FILE, submission.MAX_SOURCE_BYTES) == (batch.STUDENT_FILE, batch.MAX_SOURCE_BYTES)
    link_folder = upload({"real.txt": b""})
    (link_folder / "resnet50_skeleton.py").symlink_to(REPO / "solutions" / "resnet50_skeleton.py")
    linked = find_submission(link_folder)
    assert linked.source is None and "symbolic link" in linked.problem


# ---------------------------------------------------------------- run_autograder end to end

def _tests(results: dict) -> dict[str, float]:
    return {t["name"]: t["score"] for t in results["tests"]}


def test_every_results_json_follows_the_schema(runs):
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    rubric = load_rubric()
    every_check = [(part.id, check, points) for part in rubric.values() for check, points in part.checks.items()]
    for name, run in runs.items():
        assert run["rc"] == 0, (name, run["stdout"][-2000:], run["stderr"][-2000:])
        errors = sorted(e.message for e in validator.iter_errors(run["results"]))
        assert not errors, (name, errors)
        results = run["results"]
        assert results["stdout_visibility"] == "hidden"
        assert {t["visibility"] for t in results["tests"]} == {"visible"}
        # Exactly one test per rubric check, in the rubric's order, each named after its part.
        got = [(t["extra_data"]["part"], t["extra_data"]["check"], t["max_score"]) for t in results["tests"]]
        assert got == every_check, (name, got)
        assert all(t["name"].startswith(t["extra_data"]["part"] + " ") for t in results["tests"]), name
        assert sum(t["score"] for t in results["tests"]) == pytest.approx(results["score"]), name
        assert run["leftovers"] == [], (name, run["leftovers"])
        # Nothing of the student's outlived grading or changed the file afterwards.
        assert run["text_later"] == run["text"] and run["survivors"] == [], name
    # A schema that accepts anything would make the loop above worthless.
    assert list(validator.iter_errors({"score": 1, "tests": [{"visibility": "sometimes"}]}))
    assert list(validator.iter_errors({"tests": [{"name": "no score"}]}))
    good = runs["correct"]["results"]
    unnamed = {**good, "tests": [{**good["tests"][0], "name": "structure"}]}
    assert list(validator.iter_errors(unnamed))
    assert list(validator.iter_errors({**good, "tests": []}))


def test_scores_equal_the_cli_grader(runs, batch_results):
    for name in SANDBOXED:
        cli = batch_results[name]
        for run_name in (name, f"{name}@container"):
            if run_name not in runs:
                continue
            got = runs[run_name]["results"]
            assert got["score"] == cli["score"], run_name
            assert got["extra_data"]["status"] == cli["extra_data"]["status"], run_name
            assert got["extra_data"]["parts"] == cli["extra_data"]["parts"], run_name
            if cli["extra_data"]["status"] == "ok":   # one test per rubric check, adding up to the CLI's parts
                per_part = {p: 0.0 for p in cli["extra_data"]["parts"]}
                for test in got["tests"]:
                    per_part[test["extra_data"]["part"]] += test["score"]
                assert per_part == pytest.approx(cli["extra_data"]["parts"]), run_name
            else:   # the CLI has one test per part; here each check scores 0 with its reason
                assert {t["score"] for t in got["tests"]} == {0}, run_name
                assert all(cli["extra_data"]["message"] in t["output"] for t in got["tests"]), run_name
    rubric = load_rubric()
    full = {p: rubric[p].points for p in PART_IDS}
    assert runs["correct"]["results"]["extra_data"]["parts"] == full
    wrong = runs["wrong_q2b"]["results"]["extra_data"]["parts"]
    assert {p: v for p, v in wrong.items() if p != "Q2b"} == {p: v for p, v in full.items() if p != "Q2b"}
    assert 0 < wrong["Q2b"] < full["Q2b"]


def test_upload_shapes_are_found_like_a_ta_would(runs):
    # The same files as "correct" and "wrong_q2b", found elsewhere: the same scores.
    correct, wrong = runs["correct"]["results"]["score"], runs["wrong_q2b"]["results"]["score"]
    expect = {"misnamed": (correct, "resnet50_skeleton (1).py"), "nested": (correct, "hw3/resnet50_skeleton.py"),
              "zipped": (wrong, ("hw3/resnet50_skeleton.py", "hw3.zip"))}
    for name, (score, shown) in expect.items():
        results = runs[name]["results"]
        assert results["score"] == score and results["extra_data"]["status"] == "ok", name
        for piece in (shown,) if isinstance(shown, str) else shown:   # a zip's member, and the zip
            assert piece in results["extra_data"]["submitted_file"], (name, piece)
            assert piece in results["output"] and piece in results["extra_data"]["notes"][0], (name, piece)
    assert "name your file resnet50_skeleton.py" in runs["misnamed"]["results"]["output"]
    assert FORGED not in runs["zipped"]["text"]


def test_missing_or_ambiguous_scores_zero_with_a_clear_message(runs):
    missing = runs["missing"]["results"]
    assert missing["score"] == 0 and missing["extra_data"]["status"] == "missing"
    assert "no resnet50_skeleton.py in the submission folder" in missing["output"]
    assert "a notebook is not graded" in missing["output"]
    several = runs["several"]["results"]
    assert several["score"] == 0 and several["extra_data"]["status"] == "missing"
    assert "2 other candidates (a.py, b.py)" in several["output"]


def test_hostile_code_cannot_forge_write_read_or_kill(runs):
    for name in HOSTILE:
        run = runs[name]
        results = run["results"]
        expected = "exited" if "exit" in name else "timeout"
        assert results["extra_data"]["status"] == expected, (name, results["extra_data"]["message"])
        assert results["score"] == 0, name
        # What it printed is shown to the student as their own output, never as results.
        shown_as_results = results["output"].split("## What your code printed")[0] + json.dumps(results["tests"])
        assert FORGED not in shown_as_results, name
        assert FORGED in results["output"].split("## What your code printed")[1], name
        printed = results["extra_data"]["student_output"]
        for never in ("WROTE", "READ ", "KILLED", SECRET, META_SECRET, "class ResNet50_layer4"):
            assert never not in printed and never not in run["text"], (name, never, printed[-1500:])
        assert "could not write" in printed and "could not read" in printed, (name, printed[-1500:])
        # The sandbox layers are reported to the staff, on stdout only; never uid 0.
        assert "sandbox layers that held:" in run["stdout"], name
        layers = results["extra_data"]["sandbox_layers"]
        assert f"uid {run['uid']} (unprivileged)" in layers and not any("uid 0" in x for x in layers), name
        assert f"student code ran as uid {run['uid']}, never as root" in run["stdout"], name
        assert "none left" in run["stdout"], name
    for name in ("hostile_exit@container", "hostile_hang@container"):
        # No namespace, no mount, no Landlock there: file modes and the uid alone held.
        layers = runs[name]["results"]["extra_data"]["sandbox_layers"]
        assert not any(x.endswith("namespaces") or x.startswith(("landlock", "allow-list root")) for x in layers)
        assert "could not kill the supervisor" in runs[name]["results"]["extra_data"]["student_output"], name


def test_detached_daemon_does_not_outlive_grading(runs):
    full = sum(load_rubric()[p].points for p in PART_IDS)
    for name in ("daemon", "daemon@container"):
        run = runs[name]
        results = run["results"]
        assert results["extra_data"]["status"] == "ok" and results["score"] == full, (name, run["stdout"])
        assert "DAEMON STARTED" in results["extra_data"]["student_output"], name
        assert FORGED not in run["text"] and run["text_later"] == run["text"], name
        assert run["survivors"] == [], name
        assert re.search(r"sweep of uid \d+ after grading: \d+ process\(es\) found running and killed; none left",
                         run["stdout"]), (name, run["stdout"])


def test_sweep_kills_a_process_of_the_sandbox_uid_left_running(runs):
    run = runs["planted@container"]
    # Dead when run_autograder ended (not only after the test's own clean-up sweep).
    assert run["planted"] == -signal.SIGKILL and run["survivors"] == [], run["stdout"]
    # Exactly the planted one: its uid is this run's alone (see sandbox_uids).
    assert "1 process(es) found running and killed; none left" in run["stdout"], run["stdout"]
    assert run["results"]["score"] == runs["correct"]["results"]["score"]


def test_sandbox_starts_before_the_grader_imports_torch(runs):
    """The zygote's torch import overlaps the grader's: run_autograder imports nothing that
    imports torch before it starts the sandbox, and grade_batch gets that sandbox."""
    code = ("import sys, autograder.gradescope.run; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy')))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout[:500]
    for name in ("correct", "correct@container", "hostile_exit", "daemon@container"):
        assert "sandbox started before the grader was loaded" in runs[name]["stdout"], (name, runs[name]["stdout"])


def test_refuses_to_run_student_code_as_root(runs):
    """The sandbox uid cannot read Python and there is no mount namespace: score 0 and a message
    for the staff, and the hostile file never ran (it would have printed)."""
    run = runs["hostile_exit@closed"]
    results = run["results"]
    assert results["score"] == 0 and results["extra_data"]["status"] == "crashed"
    assert "your code was not run" in results["output"] and "run setup.sh" in results["output"]
    assert f"uid {run['uid']} cannot read the Python installation" in results["output"]
    assert "REFUSED, no student code ran" in run["stdout"]
    assert results["extra_data"]["student_output"] == "" and results["extra_data"]["sandbox_layers"] == []


# ---------------------------------------------------------------- the student zip's README

def test_student_bundle_readme_says_how_to_work_and_leaks_nothing():
    from autograder.release.answer_key import kit_answer_key, scan_file
    from autograder.release.bundle import bundle_contents, bundle_problems

    contents = dict(bundle_contents())
    readme = contents["README.md"].decode("utf-8")
    for needed in ("Colab", "MOUNT_DRIVE", "resnet50_epoch285.ckpt", "vgg16_epoch250.ckpt",
                   "keep exactly this file name", "report (PDF)", "How it is graded"):
        assert needed in readme, needed
    assert bundle_problems(contents=list(contents.items())) == []
    # The scan reads the README: a blank's answer pasted into it would be caught.
    key = kit_answer_key(REPO)
    assert scan_file("README.md", (readme + "\nnn.MaxPool2d(3, 2, 1)\n").encode(), key)
