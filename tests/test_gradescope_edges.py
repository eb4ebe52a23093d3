"""Edge cases of the Gradescope autograder that a reviewer found: what student code can read
in a container without namespaces, the finder shared with the CLI, a zip built to exhaust
memory, a sweep helper that a student process kills or stops, bad settings, stable test
names, and what stdout tells the staff. Mostly unit-level; two real run_autograder runs
(helpers and the zip fixture come from test_gradescope.py)."""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

import test_gradescope as gs
from test_gradescope import kit  # noqa: F401 -- the module-scoped fixture: the zip, built and unpacked

from autograder.grade.batch import discover, read_source
from autograder.grade.finder import MAX_ZIP_MEMBERS, Refused
from autograder.gradescope import run as gs_run
from autograder.gradescope.permissions import CHILD_DATA, child_readable, restrict_kit
from autograder.gradescope.results import VISIBILITIES, gradescope_results, settings_problems
from autograder.gradescope.submission import find_submission
from autograder.spec import load_rubric

pytestmark = gs.ROOT_ONLY   # the kit fixture and the sweep tests need root, as on Gradescope

REPO = gs.REPO
CORRECT, WRONG_Q2B = gs.CORRECT, gs.WRONG_Q2B
# What student code has no need to read; each must be root-only in the unpacked zip.
SECRETS = ("autograder/spec/resnet50_layer4.toml", "autograder/spec/rubric.toml",
           "autograder/grade/expectations.py", "autograder/grade/parts/q1_residual_block.py",
           "solutions/resnet50_skeleton.py", "gradescope.json")


def put(folder: Path, files: dict[str, bytes | None]) -> Path:
    """Files by relative path (None: a folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = folder / name
        if data is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return folder


# ================================================================ 1. what student code can read

def test_the_child_readable_list_is_what_the_sandbox_really_imports():
    code = ("import sys, autograder.grade.sandbox.zygote, autograder.grade.probe; "
            "print('\\n'.join(sorted(m.__file__ for n, m in sys.modules.items() "
            "if n.split('.')[0] == 'autograder' and getattr(m, '__file__', None))))")
    imported = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.split()
    readable = child_readable(REPO)
    assert imported and {Path(f) for f in imported} <= readable, sorted(set(map(Path, imported)) - readable)
    for secret in SECRETS:
        assert REPO / secret not in readable, secret
    assert {p.relative_to(REPO).as_posix() for p in readable if p.suffix == ".toml"} == set(CHILD_DATA)


def test_restrict_kit_makes_all_but_the_childs_imports_root_only(kit):  # noqa: F811
    unpacked = kit["work"] / "modes"
    with zipfile.ZipFile(kit["zip"]) as zf:
        zf.extractall(unpacked)
        for info in zf.infolist():   # extractall drops modes; Gradescope keeps them
            (unpacked / info.filename).chmod((info.external_attr >> 16) & 0o777)
    put(unpacked, {".venv/bin/python": b"", "autograder/grade/__pycache__/expectations.cpython-312.pyc": b"x",
                   "autograder/grade/__pycache__/probe.cpython-312.pyc": b"x"})
    (unpacked / ".venv/bin/python").chmod(0o755)
    counts = restrict_kit(unpacked)
    mode = lambda name: stat.S_IMODE((unpacked / name).stat().st_mode)  # noqa: E731
    for secret in (*SECRETS, "autograder/grade/__pycache__/expectations.cpython-312.pyc"):
        assert mode(secret) == 0o600, secret
    assert mode("solutions") == mode("autograder/gradescope") == mode("autograder/grade/parts") == 0o700
    assert mode("run_autograder") == mode("setup.sh") == 0o700
    for readable in ("autograder/grade/probe.py", "autograder/grade/sandbox/zygote.py", "autograder/__init__.py",
                     "autograder/grade/__pycache__/probe.cpython-312.pyc", *CHILD_DATA):
        assert mode(readable) == 0o644, readable
    assert mode(".") == mode("autograder/grade") == mode("autograder/grade/sandbox") == 0o755
    assert mode(".venv/bin/python") == 0o755   # left as setup.sh made it
    assert counts["closed"] > counts["readable"] > 10


def hostile_reader(kit_dir: Path) -> bytes:
    """A correct submission that, at import, prints what it can read of the kit."""
    paths = [str(kit_dir / s) for s in SECRETS] + [str(kit_dir / "autograder/grade/__pycache__")]
    return CORRECT + f'''

def _peek():
    import os
    for path in {paths!r}:
        try:
            if os.path.isdir(path):
                names = [n for n in os.listdir(path) if "expectations" in n]
                print("LEAK", path, open(os.path.join(path, names[0]), "rb").read()[:80] if names else "none")
            else:
                print("LEAK", path, open(path, "rb").read()[:80])
        except OSError as exc:
            print("DENIED", path, exc.strerror)

_peek()
'''.encode()


@pytest.fixture(scope="module")
def reader_run(kit):  # noqa: F811
    """The one real run here: in the simulated container (no namespaces, no Landlock)."""
    original = gs.cases
    gs.cases = lambda root, kit_hint="": {**original(root, kit_hint), "reader": {
        "resnet50_skeleton.py": hostile_reader(Path(kit_hint))}}
    try:
        return gs.run_autograder(kit["dir"], "reader", "--timeout", "30", container="open")
    finally:
        gs.cases = original


def test_student_code_cannot_read_the_answers_in_a_container(reader_run):
    results = reader_run["results"]
    said = results["extra_data"]["student_output"]
    assert results["score"] == 105 and results["extra_data"]["status"] == "ok", reader_run["stdout"]
    assert "LEAK" not in said and said.count("DENIED") == len(SECRETS) + 1, said
    assert "Permission denied" in said
    assert "block_cases" not in reader_run["text"].lower() and "[[" not in said


# ================================================================ 2, 8. one finder, the CLI's

UPLOADS = {
    "browser copy beside a zip": {"resnet50_skeleton (1).py": CORRECT,
                                  "hw.zip": gs.zip_bytes({"resnet50_skeleton.py": WRONG_Q2B})},
    "top and deep": {"resnet50_skeleton.py": CORRECT, "a/b/c/d/resnet50_skeleton.py": WRONG_Q2B},
    "only deep": {"a/b/c/resnet50_skeleton.py": CORRECT},
    "one level down": {"hw3/resnet50_skeleton.py": CORRECT},
    "two nested copies": {"a/resnet50_skeleton.py": CORRECT, "b/resnet50_skeleton.py": CORRECT},
    "zip and a py": {"model.py": CORRECT, "hw.zip": gs.zip_bytes({"resnet50_skeleton.py": WRONG_Q2B})},
    "zip only": {"hw.zip": gs.zip_bytes({"hw/resnet50_skeleton.py": WRONG_Q2B})},
    "zip too deep": {"hw.zip": gs.zip_bytes({"a/b/resnet50_skeleton.py": WRONG_Q2B})},
    "folder named like the file": {"resnet50_skeleton.py": None},
    "hidden file": {".resnet50_skeleton.py": CORRECT},
    "upper-case suffix": {"resnet50_skeleton.PY": CORRECT},
    "notebook": {"CNN_Implementation.ipynb": b"{}"},
    "empty": {},
    "two misnamed": {"a.py": CORRECT, "b.py": WRONG_Q2B},
}


@pytest.mark.parametrize("case", sorted(UPLOADS))
def test_gradescope_finds_what_the_cli_finds(tmp_path, case):
    folder = put(tmp_path / "subs" / "stu", UPLOADS[case])
    [sub] = discover(tmp_path / "subs", log=lambda *_: None)
    found = find_submission(folder)
    if sub.file is None:
        assert found.source is None and found.status == sub.problem_status and found.problem == sub.problem
        return
    try:
        cli_source, cli_status = read_source(sub), "ok"
    except Refused as exc:
        cli_source, cli_status, found_problem = None, "refused", str(exc)
        assert found.problem == found_problem
    assert found.source == cli_source and found.status == cli_status and found.notes == sub.notes


def test_the_reviewers_cases_grade_the_file_a_ta_would(tmp_path):
    browser = find_submission(put(tmp_path / "a", UPLOADS["browser copy beside a zip"]))
    assert browser.source == CORRECT and browser.shown == "resnet50_skeleton (1).py"
    top = find_submission(put(tmp_path / "b", UPLOADS["top and deep"]))
    assert top.source == CORRECT and top.notes == ()
    zipped = find_submission(put(tmp_path / "c", UPLOADS["zip only"]))
    assert zipped.source == WRONG_Q2B and zipped.shown == "hw.zip: hw/resnet50_skeleton.py"


@pytest.mark.parametrize("case, status, says", [
    ("folder named like the file", "refused", "resnet50_skeleton.py is a folder, not a Python file"),
    ("hidden file", "missing", "hidden files, which are not graded: .resnet50_skeleton.py"),
    ("only deep", "missing", "a/b/c/resnet50_skeleton.py is too deep: the grader looks at the top "
                             "of the submission and one folder down only"),
    ("zip too deep", "missing", "a/b/resnet50_skeleton.py is too deep"),
    ("notebook", "missing", "a notebook is not graded"),
    ("empty", "missing", "(it is empty)"),
    ("two misnamed", "missing", "could not tell which one to grade"),
])
def test_nothing_graded_says_why_in_one_sentence(tmp_path, case, status, says):
    found = find_submission(put(tmp_path / "up", UPLOADS[case]))
    assert found.source is None and found.status == status and says in found.problem, found.problem
    assert "\n" not in found.problem and "Traceback" not in found.problem


def test_upper_case_suffix_is_graded_with_a_note(tmp_path):
    found = find_submission(put(tmp_path / "up", UPLOADS["upper-case suffix"]))
    assert found.source == CORRECT and "name your file resnet50_skeleton.py" in found.notes[0]


# ================================================================ 3. memory

def test_a_zip_of_many_large_members_is_not_read_into_memory(tmp_path):
    """2,000 members of 1 MiB each (2 GB unpacked, a few MB packed): the finder reads the
    central directory only; its peak memory stays small."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(2000):
            zf.writestr(f"d{i}/resnet50_skeleton.py", b"#" * (1024 * 1024))
    put(tmp_path / "up", {"many.zip": buffer.getvalue()})
    # VmHWM: this process's own peak (ru_maxrss would carry pytest's over exec).
    code = ("import sys; from pathlib import Path; "
            "from autograder.gradescope.submission import find_submission; "
            "f = find_submission(Path(sys.argv[1])); "
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]); "
            "print(f.problem)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "up")], cwd=REPO, capture_output=True,
                         text=True, check=True, timeout=120).stdout.splitlines()
    peak_kib, problem = int(out[0]), out[1]
    assert peak_kib < 150 * 1024, f"{peak_kib / 1024:.0f} MiB"
    assert "holds 2000 files named resnet50_skeleton.py" in problem and "could not tell" in problem


def test_a_zip_with_too_many_members_is_refused_before_it_is_parsed(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for i in range(MAX_ZIP_MEMBERS + 1):
            zf.writestr(f"f{i}", b"")
    found = find_submission(put(tmp_path / "up", {"hw.zip": buffer.getvalue()}))
    assert found.source is None and f"holds {MAX_ZIP_MEMBERS + 1:,} files" in found.problem, found.problem


# ================================================================ 4. the sweep's helper under attack

def _kill_and_reap(pids) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _loop_as(uid: int, signum: int) -> int:
    """A process of ``uid`` that sends ``signum`` to every process it may signal, forever
    (forked, not exec'd: the sandbox uid may not be able to read this test's Python)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            while True:
                try:
                    os.kill(-1, signum)   # never itself
                except OSError:
                    pass
        finally:
            os._exit(1)
    return pid


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGSTOP], ids=["killer", "stopper"])
def test_the_sweep_survives_a_process_that_kills_or_stops_its_helper(signum):
    uid = gs.next_uid()
    # Two stoppers stop each other too; one killer (two would kill each other first).
    pids = [_loop_as(uid, signum) for _ in range(2 if signum == signal.SIGSTOP else 1)]
    try:
        time.sleep(0.3)
        start = time.monotonic()
        count, left = gs_run.sweep_sandbox_uid(uid, helper_timeout_s=1.0)
        seconds = time.monotonic() - start
        assert seconds < 30, seconds   # bounded: never a waitpid forever
        assert left == gs_run.live_processes_of(uid)
        assert count == len(pids) and left == [], (count, left)
    finally:
        _kill_and_reap(pids)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGSTOP], ids=["killer", "stopper"])
def test_the_helper_alone_is_bounded_when_it_is_killed_or_stopped(monkeypatch, signum):
    """Without root's kill by pid, the helper meets the loops head on: it may be killed or
    stopped each time; the sweep still returns within its bound and tells the truth."""
    monkeypatch.setattr(gs_run, "_kill_listed", lambda uid: None)
    uid = gs.next_uid()
    pids = [_loop_as(uid, signum) for _ in range(2 if signum == signal.SIGSTOP else 1)]
    try:
        time.sleep(0.3)
        start = time.monotonic()
        count, left = gs_run.sweep_sandbox_uid(uid, attempts=5, helper_timeout_s=0.5)
        assert time.monotonic() - start < 5 * (0.5 + 5) + 5
        assert count == len(pids) and left == gs_run.live_processes_of(uid)
    finally:
        _kill_and_reap(pids)


def test_survivors_are_reported_to_the_staff():
    lines = gs_run.layer_report({"layers": ["uid 61000 (setresuid)"], "warning": None}, (3, [1234]), 61000,
                                True)
    assert any("STILL ALIVE after every attempt: [1234]" in line for line in lines), lines


# ================================================================ 5. settings

def test_gradescopes_four_visibilities_are_accepted_and_nothing_else():
    assert set(VISIBILITIES) == {"hidden", "after_due_date", "after_published", "visible"}
    good = {"visibility": "hidden", "timeout_s": 60, "memory_mb": 4096}
    assert settings_problems(good) == []
    for bad, says in (({"visibility": "sometimes"}, "visibility"), ({"timeout_s": 0}, "timeout_s"),
                      ({"timeout_s": "60"}, "timeout_s"), ({"timeout_s": float("nan")}, "timeout_s"),
                      ({"memory_mb": 0}, "memory_mb"), ({"memory_mb": True}, "memory_mb")):
        [problem] = settings_problems({**good, **bad})
        assert problem.startswith(says), problem


@pytest.mark.parametrize("config, argv, says", [
    ({"visibility": "secret"}, [], "visibility is 'secret'"),
    ({}, ["--timeout", "0"], "timeout_s is 0.0"),
    ({"timeout_s": "soon"}, [], "timeout_s is 'soon'"),
    (None, [], "gradescope.json could not be read"),
])
def test_a_bad_setting_writes_a_misconfigured_result_before_anything_runs(tmp_path, monkeypatch, config, argv,
                                                                          says, capsys):
    kit_dir = put(tmp_path / "kit", {})
    (kit_dir / "gradescope.json").write_text("{not json" if config is None else json.dumps(config))
    root = put(tmp_path / "root", {"submission/resnet50_skeleton.py": CORRECT, "results/results.json": b"old"})
    monkeypatch.setattr(gs_run, "KIT_ROOT", kit_dir)
    monkeypatch.setenv("AUTOGRADER_ROOT", str(root))
    monkeypatch.setattr(gs_run, "grade_submission", lambda *a, **k: pytest.fail("student code must not run"))
    assert gs_run.main(argv) == 0
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 0 and results["extra_data"]["status"] == "crashed"
    assert "the autograder is misconfigured" in results["output"] and says in results["output"]
    assert len(results["tests"]) == sum(len(p.checks) for p in load_rubric().values())
    assert "MISCONFIGURED, no student code ran" in capsys.readouterr().out


# ================================================================ 6. stable test names

def test_a_check_has_one_name_whatever_the_outcome():
    rubric = load_rubric()
    expected = [f"{part.id} {check}" for part in rubric.values() for check in part.checks]
    from autograder.grade.outputs import results_json
    from autograder.grade.scoring import failed
    missing = results_json(failed("s", "missing", "no file", rubric), "", ())
    names_missing = [t["name"] for t in gradescope_results(missing, "", rubric=rubric)["tests"]]
    assert names_missing == expected
    # A graded run: the batch grader's descriptive names become "<part> <check>", the
    # description heads the output.
    tests = [{"name": f"{part.id} described {check}", "score": points, "max_score": points, "output": "fine"}
             for part in rubric.values() for check, points in part.checks.items()]
    graded = {**missing, "tests": tests, "score": sum(t["score"] for t in tests)}
    out = gradescope_results(graded, "", rubric=rubric)["tests"]
    assert [t["name"] for t in out] == expected
    assert out[0]["output"].startswith("described ") and out[0]["output"].endswith("fine")


def test_the_container_wrapper_leaves_no_folder_behind(tmp_path):
    """The simulated container's folders go into the run's own GS_CLOSED_DIR (removed by the
    test), never the shared temp folder (TMPDIR here: a private one, so other people's
    concurrent runs cannot disturb the count)."""
    shared, closed = tmp_path / "tmp", tmp_path / "closed"
    shared.mkdir()
    closed.mkdir(mode=0o700)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": str(shared), "GS_CLOSED_DIR": str(closed),
           "GS_KEEP_CAPS": ",".join(map(str, gs.DOCKER_CAPS)), "AUTOGRADER_PYTHON": sys.executable}
    done = subprocess.run([sys.executable, "-c", gs.CONTAINER, str(REPO), "open", "true"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert list(shared.iterdir()) == []


def test_the_real_run_uses_the_same_names(reader_run):
    rubric = load_rubric()
    expected = [f"{part.id} {check}" for part in rubric.values() for check in part.checks]
    assert [t["name"] for t in reader_run["results"]["tests"]] == expected


# ================================================================ 7. what stdout tells the staff

def test_stdout_of_a_graded_run_says_what_ran(reader_run):
    out = reader_run["stdout"]
    assert "graded resnet50_skeleton.py: 105/105, status ok" in out, out
    assert "no student code ran" not in out and "while student code ran" in out
    assert "root-only" in out and "readable by uid" in out


def test_stdout_when_nothing_ran_does_not_claim_it_did():
    lines = gs_run.layer_report({"layers": [], "warning": None}, (0, []), 61000, True, ran=False)
    assert lines[0] == "no student code ran" and not any("while student code ran" in line for line in lines)


def test_after_a_grader_crash_the_found_file_is_still_named(tmp_path, monkeypatch, capsys):
    root = put(tmp_path / "root", {"submission/hw3/resnet50_skeleton.py": CORRECT})
    monkeypatch.setenv("AUTOGRADER_ROOT", str(root))

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(gs_run, "grade_submission", crash)
    assert gs_run.main(["--sandbox-uid", str(gs.next_uid())]) == 0
    out = capsys.readouterr().out
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["extra_data"]["submitted_file"] == "hw3/resnet50_skeleton.py"
    assert "graded hw3/resnet50_skeleton.py: 0/105, status crashed (the grader crashed)" in out, out
    assert "the autograder itself failed (RuntimeError: disk full)" in results["output"]


# ================================================================ 10. setup.sh's folder modes

def test_setup_sh_opens_the_kit_and_its_venv_but_no_folder_above(kit, tmp_path):  # noqa: F811
    """Step 4 of setup.sh (the permissions) on an unpacked zip inside a 0700 folder: the
    venv and the kit's folder are opened, the closed folder above is left closed and
    named in a warning, and the answers become root-only."""
    closed = tmp_path / "home"
    closed.mkdir(mode=0o700)
    kit_dir = closed / "kit"
    with zipfile.ZipFile(kit["zip"]) as zf:
        zf.extractall(kit_dir)
    (kit_dir / ".venv" / "bin").mkdir(parents=True)
    (kit_dir / ".venv" / "bin" / "python").symlink_to(sys.executable)
    script = (kit_dir / "setup.sh").read_text()
    step4 = script[script.index("# --- 4. permissions"):]
    done = subprocess.run(["bash", "-c", f'set -euo pipefail\nkit="{kit_dir}"\nvenv="$kit/.venv"\n{step4}'],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(closed.stat().st_mode) == 0o700
    assert f"WARNING: {closed} is not searchable by other users" in done.stderr
    assert stat.S_IMODE(kit_dir.stat().st_mode) & 0o001
    assert stat.S_IMODE((kit_dir / "autograder/spec/resnet50_layer4.toml").stat().st_mode) == 0o600
    assert stat.S_IMODE((kit_dir / "solutions").stat().st_mode) == 0o700
    assert "root-only" in done.stdout
