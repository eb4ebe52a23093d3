"""Edges of a real course's batch: broken results, stale resumes, links, LMS folders.

* one student never stops a batch: whatever their file or report holds, every
  student gets a row and every file the grader writes is clean UTF-8;
* a resume regrades when the reference, the spec or the grader changed;
* the trusted process never follows a link out of a student's folder, never
  opens a FIFO or device, never reads more than MAX_SOURCE_BYTES;
* the command works from any directory; LMS folder names, misnamed files, the
  output folder inside the submissions and ``alice/`` beside ``alice.py``.

Student files run in the real sandbox; report-level breakage is fed to
``grade_report`` directly.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autograder.grade import batch as batch_module
from autograder.grade import outputs
from autograder.grade.batch import (MAX_SOURCE_BYTES, Refused, Submission, discover, grade_batch,
                                    grader_fingerprint, load_reference_solution, read_source)
from autograder.grade.expectations import build_expectations
from autograder.grade.observations import MalformedReport, parse_report
from autograder.grade.outputs import STATUSES
from autograder.grade.scoring import GradedSubmission, failed, grade_report
from autograder.grade.parts import CheckResult
from autograder.spec import RUBRIC_PATH, load_rubric

ROOT = Path(__file__).resolve().parents[1]
SOLUTION_PATH = ROOT / "solutions" / "resnet50_skeleton.py"
SOLUTION = SOLUTION_PATH.read_text()
STUDENT_FILE = "resnet50_skeleton.py"
SAFE_FILE_NAME = re.compile(r"^[\w.@+-]+$")


def put(folder: Path, files: dict[str, str | bytes]) -> Path:
    """``{"alice/resnet50_skeleton.py": text}`` written under ``folder``."""
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


def run_with_deadline(fn, seconds: float = 420):
    """``fn()`` in a daemon thread: a grader that hangs (on a FIFO, say) fails the
    test instead of hanging the suite."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:   # noqa: BLE001 -- handed to the test below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the batch did not finish within {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def gradebook(out: Path) -> list[dict[str, str]]:
    text = (out / "grades.csv").read_bytes().decode("utf-8")   # strict: the file is clean UTF-8
    lines = text.splitlines()
    assert lines[0] == "student,Q1a,Q1b,Q2a,Q2b,Q2c,total,max_total,status"
    return list(csv.DictReader(lines))


def assert_clean_outputs(out: Path) -> None:
    """Every file written is strict UTF-8 without lone surrogates; every results
    file is standard JSON (no NaN, no surrogate escapes)."""
    for path in [*out.glob("results/*.json"), *out.glob("feedback/*.md"), out / "grades.csv"]:
        text = path.read_bytes().decode("utf-8")
        assert not re.search(r"[\ud800-\udfff]", text), path
        if path.suffix == ".json":
            data = json.loads(text, parse_constant=lambda c: pytest.fail(f"{path}: {c} in results"))
            assert not re.search(r"[\ud800-\udfff]", json.dumps(data, ensure_ascii=False)), path


def by_student(results: list[dict]) -> dict[str, dict]:
    return {r["extra_data"]["student"]: r for r in results}


def feedback_of(out: Path, result: dict) -> str:
    matches = [p for p in (out / "feedback").glob("*.md")
               if json.loads((out / "results" / f"{p.stem}.json").read_text())["extra_data"]["student"]
               == result["extra_data"]["student"]]
    assert len(matches) == 1, result["extra_data"]["student"]
    return matches[0].read_text(encoding="utf-8")


@pytest.fixture(scope="module", autouse=True)
def frozen_inputs(tmp_path_factory):
    """What the grader fingerprint hashes, frozen in copies for this module: others
    editing the kit while the tests run must not turn a resume into a regrade."""
    tmp = tmp_path_factory.mktemp("frozen")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(batch_module, "GRADER_SOURCE_DIRS", tuple(
            _copy_tree(d, tmp / d.name) for d in batch_module.GRADER_SOURCE_DIRS))
        patch.setattr(batch_module, "SPEC_DIR", _copy_tree(batch_module.SPEC_DIR, tmp / "spec-only"))
        reference = tmp / STUDENT_FILE
        reference.write_bytes(batch_module.REFERENCE_SOLUTION.read_bytes())
        patch.setattr(batch_module, "REFERENCE_SOLUTION", reference)
        yield


def _copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


# ================================================================ 7: one student never stops a batch

def tampering(report_text: str) -> str:
    """A file that replaces the probe's JSON encoder, so the report the grader gets is ``report_text``."""
    return SOLUTION + f"\nimport json as _json\n_json.dumps = lambda *a, **k: {report_text!r}\n"


DEEP = '{"import": {"status": "ok"}, "q1": ' + "[" * 100_000 + "]" * 100_000 + "}"
MEDIUM_DEEP = '{"import": {"status": "ok"}, "q1": ' + "[" * 600 + "]" * 600 + "}"

BROKEN_FILES: dict[str, str | bytes] = {
    # A lone surrogate (what a bad file-name decode leaves) in the import-time exception.
    "surrogate_import_error/" + STUDENT_FILE: SOLUTION + '\nraise ValueError("caf\\udce9 not found")\n',
    # ... in what an exception of the student's own class says about itself
    "surrogate_exception_str/" + STUDENT_FILE: SOLUTION + (
        '\nclass Oops(Exception):\n    def __str__(self):\n        return "Err\\udce9" * 3\n'
        'raise Oops()\n'),
    # ... raised while the block is built, so it lands in every check's deductions
    "surrogate_in_block/" + STUDENT_FILE: SOLUTION.replace(
        "class ResidualBlock(nn.Module):",
        "class ResidualBlock(nn.Module):\n    def __new__(cls, *a, **k):\n"
        "        raise RuntimeError('bad \\udce9 block')\n", 1),
    # ... printed: to stderr (backslash-escaped by Python) and as raw invalid UTF-8 bytes
    "surrogate_printed/" + STUDENT_FILE: SOLUTION + (
        '\nimport sys\nprint("caf\\udce9", file=sys.stderr)\n'
        'sys.stdout.buffer.write(b"caf\\xe9 \\xff\\xfe\\n"); sys.stdout.flush()\n'),
    # Not valid UTF-8 source (a Latin-1 editor), and a file that declares Latin-1 properly.
    "latin1_undeclared/" + STUDENT_FILE: (SOLUTION + 'AUTHOR = "r\xe9sum\xe9"\n').encode("latin-1"),
    # Python's import accepts bytes that are not UTF-8 inside a comment: so does the grader.
    "latin1_comment/" + STUDENT_FILE: ("# r\xe9sum\xe9 of my work\n" + SOLUTION).encode("latin-1"),
    "latin1_declared/" + STUDENT_FILE: ("# -*- coding: latin-1 -*-\n# r\xe9sum\xe9\n" + SOLUTION).encode("latin-1"),
    "utf16/" + STUDENT_FILE: SOLUTION.encode("utf-16"),
    "null_bytes/" + STUDENT_FILE: SOLUTION.encode() + b"\n\x00\x00\n",
    # Reports that are broken on purpose (the student replaced the probe's encoder).
    "report_deep/" + STUDENT_FILE: tampering(DEEP),
    "report_medium_deep/" + STUDENT_FILE: tampering(MEDIUM_DEEP),
    "report_nan/" + STUDENT_FILE: tampering('{"import": {"status": "ok"}, "full": {"parameters": NaN}}'),
    "report_infinity/" + STUDENT_FILE: tampering('{"import": {"status": "ok"}, "q1": Infinity}'),
    "report_huge_int/" + STUDENT_FILE: tampering('{"import": {"status": "ok"}, "full": {"parameters": 1'
                                                 + "0" * 5000 + "}}"),
    "report_wrong_types/" + STUDENT_FILE: tampering('{"import": {"status": ["ok"]}, "q1": "yes"}'),
    "report_surrogate/" + STUDENT_FILE: tampering(
        '{"import": {"status": "import_error", "error": {"type": "E\\udce9", "message": "\\udcff"}}}'),
    "report_not_json/" + STUDENT_FILE: tampering("this is not json"),
    "report_unencodable/" + STUDENT_FILE: tampering("\udce9 cannot even be encoded"),
    # Nothing wrong: the class is not all broken, and the good one keeps its 105.
    "correct/" + STUDENT_FILE: SOLUTION,
    "scorer_raises/" + STUDENT_FILE: SOLUTION,
    "writer_raises/" + STUDENT_FILE: SOLUTION,
}


@pytest.fixture(scope="module")
def broken_class(tmp_path_factory):
    folder = put(tmp_path_factory.mktemp("broken") / "submissions", BROKEN_FILES)
    os.mkdir(os.fsencode(folder) + b"/caf\xe9_undecodable_name")   # a folder name that is not UTF-8
    (folder / os.fsdecode(b"caf\xe9_undecodable_name") / STUDENT_FILE).write_text(SOLUTION)
    out = folder.parent / "out"
    real_grade_report, real_feedback = batch_module.grade_report, outputs.feedback_markdown

    def grade_report_failing_for_one(student, *args, **kwargs):
        if student == "scorer_raises":
            raise RecursionError("maximum recursion depth exceeded (made up by the test)")
        return real_grade_report(student, *args, **kwargs)

    def feedback_failing_for_one(sub, *args, **kwargs):
        if sub.student == "writer_raises" and sub.status == "ok":
            raise OSError(28, "No space left on device (made up by the test)")
        return real_feedback(sub, *args, **kwargs)

    log: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(batch_module, "grade_report", grade_report_failing_for_one)
        patch.setattr(outputs, "feedback_markdown", feedback_failing_for_one)
        results = run_with_deadline(lambda: grade_batch(folder, out, jobs=2, progress=False,
                                                        log=log.append))
    return folder, out, results


def test_every_broken_student_gets_a_row(broken_class):
    folder, out, results = broken_class
    rows = gradebook(out)
    assert len(rows) == len(results) == len(BROKEN_FILES) + 1
    assert {r["status"] for r in rows} <= set(STATUSES)
    for row in rows:
        assert float(row["total"]) == pytest.approx(sum(float(row[p]) for p in
                                                        ("Q1a", "Q1b", "Q2a", "Q2b", "Q2c")), abs=0.02)
    assert_clean_outputs(out)


def test_surrogates_are_written_as_escapes(broken_class):
    _, out, results = broken_class
    got = by_student(results)
    data = got["surrogate_import_error"]
    assert data["extra_data"]["status"] == "import_error"
    assert "caf\\udce9 not found" in data["extra_data"]["message"]
    assert "caf\\udce9 not found" in feedback_of(out, data)
    assert got["surrogate_exception_str"]["extra_data"]["status"] == "import_error"
    assert "Oops: Err\\udce9Err\\udce9" in got["surrogate_exception_str"]["extra_data"]["message"]
    block = got["surrogate_in_block"]
    assert block["extra_data"]["status"] == "ok" and block["score"] < 105
    assert "bad \\udce9 block" in feedback_of(out, block)
    printed = got["surrogate_printed"]
    assert printed["score"] == 105
    assert "caf\\udce9" in printed["extra_data"]["student_output"]
    assert "## What your code printed" in feedback_of(out, printed)
    # The undecodable folder name: graded, and its name spelled with an escape.
    rows = {r["student"]: r for r in gradebook(out)}
    assert rows["caf\\udce9_undecodable_name"]["total"] == "105"


def test_source_encodings(broken_class):
    got = by_student(broken_class[2])
    assert got["latin1_declared"]["score"] == 105
    assert got["latin1_comment"]["score"] == 105
    assert got["latin1_undeclared"]["extra_data"]["status"] == "syntax_error"
    assert "utf-8" in got["latin1_undeclared"]["extra_data"]["message"].lower()
    for student in ("utf16", "null_bytes"):
        assert got[student]["extra_data"]["status"] in ("syntax_error", "import_error"), student
        assert got[student]["score"] == 0


@pytest.mark.parametrize("student", ["report_deep", "report_medium_deep", "report_huge_int",
                                     "report_wrong_types", "report_not_json", "report_infinity"])
def test_broken_reports_are_crashed(broken_class, student):
    data = by_student(broken_class[2])[student]
    assert data["extra_data"]["status"] == "crashed" and data["score"] == 0
    assert "report" in data["extra_data"]["message"]


def test_other_tampered_reports_score_nothing(broken_class):
    got = by_student(broken_class[2])
    assert got["report_nan"]["score"] == 0
    assert got["report_unencodable"]["extra_data"]["status"] == "crashed"
    assert got["report_unencodable"]["score"] == 0
    forged = got["report_surrogate"]
    assert forged["extra_data"]["status"] == "import_error" and forged["score"] == 0
    assert "E\\udce9" in forged["extra_data"]["message"]


def test_any_failure_while_scoring_or_writing_is_that_students_crashed(broken_class):
    _, out, results = broken_class
    got = by_student(results)
    assert got["correct"]["score"] == 105 and got["correct"]["extra_data"]["status"] == "ok"
    scorer = got["scorer_raises"]
    assert scorer["extra_data"]["status"] == "crashed" and scorer["score"] == 0
    assert "RecursionError" in scorer["extra_data"]["message"]
    writer = got["writer_raises"]
    assert writer["extra_data"]["status"] == "crashed" and writer["score"] == 0
    assert "No space left on device" in writer["extra_data"]["message"]
    assert "could not write" in feedback_of(out, writer)


def test_the_batch_resumes_after_the_broken_class(broken_class, tmp_path):
    """Nothing in the class makes a rerun crash: it resumes (nothing regraded) and
    writes the same gradebook."""
    folder, out, _ = broken_class
    before = (out / "grades.csv").read_bytes()
    log: list[str] = []
    results = run_with_deadline(lambda: grade_batch(folder, out, jobs=2, progress=False, log=log.append))
    assert len(results) == len(BROKEN_FILES) + 1
    assert any(line.startswith(f"resuming: {len(results)} already graded, 0 to grade") for line in log), log
    assert (out / "grades.csv").read_bytes() == before


def test_summary_and_cli_print_surrogates_safely(broken_class):
    _, out, results = broken_class
    text = outputs.summary_text(results)
    text.encode("utf-8")   # strict: no lone surrogate left
    run = subprocess.run([sys.executable, "-m", "autograder", "grade", str(broken_class[0]),
                          "--out", str(out), "--quiet", "--print-gradebook"],
                         cwd=ROOT, capture_output=True, timeout=600,
                         env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    assert b"caf\\udce9_undecodable_name" in run.stdout


# ---- report-level breakage, fed to grade_report directly

@pytest.fixture(scope="module")
def expectations():
    return build_expectations(load_reference_solution())


def mutated(reference: dict, path: tuple, value) -> dict:
    report = json.loads(json.dumps(reference))
    target = report
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return report


def nested(depth: int):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


REPORTS = {
    "deep_bytes": lambda ref: DEEP.encode(),
    "deep_object": lambda ref: ('{"import": {"status": "ok"}, "x": ' + '{"a": ' * 50_000 + "1"
                                + "}" * 50_000 + "}").encode(),
    "deep_within_recursion_limit": lambda ref: json.dumps(mutated(ref, ("q1",), nested(900))).encode(),
    "nan_in_numbers": lambda ref: json.dumps(mutated(ref, ("full", "parameters"), float("nan"))).encode(),
    "inf_in_numbers": lambda ref: json.dumps(mutated(ref, ("full", "parameters"), float("inf"))).encode(),
    "huge_int": lambda ref: json.dumps(mutated(ref, ("full", "parameters"), 10 ** 4000)).encode(),
    "huge_float": lambda ref: json.dumps(mutated(ref, ("full", "parameters"), 1e308)).encode(),
    "wrong_type_status": lambda ref: json.dumps(mutated(ref, ("import", "status"), 7)).encode(),
    "wrong_type_q1": lambda ref: json.dumps(mutated(ref, ("q1",), {"a": 1})).encode(),
    "wrong_type_full": lambda ref: json.dumps(mutated(ref, ("full",), [1, 2, 3])).encode(),
    "list_report": lambda ref: b"[1, 2, 3]",
    "empty": lambda ref: b"",
    "invalid_utf8": lambda ref: b'{"import": {"status": "\xff"}}',
    "surrogate_error": lambda ref: json.dumps({"import": {"status": "import_error", "error": {
        "type": "\udce9", "message": "bad \udcff name", "line": 3}}}).encode(),
    "surrogate_everywhere": lambda ref: json.dumps(mutated(ref, ("full",), {
        "error": {"type": "E\udce9", "message": "\udce9" * 3000}})).encode(),
}


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_broken_report_gives_a_row_and_clean_files(expectations, tmp_path, name):
    rubric = load_rubric(RUBRIC_PATH)
    payload = REPORTS[name](expectations.reference)
    graded = grade_report(f"student_{name}", payload, expectations, rubric,
                          output="printed \udce9\udcff text", elapsed_s=0.1)
    assert graded.status in STATUSES
    assert all(math.isfinite(c.score) for c in graded.checks)
    data = outputs.write_submission(tmp_path, graded, "fp", f"student_{name}")
    outputs.write_gradebook(tmp_path, [data])
    assert_clean_outputs(tmp_path)
    assert "printed \\udce9\\udcff text" in (tmp_path / "feedback" / f"student_{name}.md").read_text()
    if name.startswith("deep") or name in ("list_report", "empty", "invalid_utf8", "wrong_type_status"):
        assert graded.status == "crashed" and graded.total == 0


@pytest.mark.parametrize("depth, ok", [(10, True), (31, True), (40, False), (999, False), (200_000, False)])
def test_parse_report_bounds_nesting(depth, ok):
    payload = ('{"a": ' + "[" * depth + "]" * depth + "}").encode()
    if ok:
        assert parse_report(payload)["a"] == (nested(depth - 1) if depth else None)
    else:
        with pytest.raises(MalformedReport, match="nests deeper|values, more than"):
            parse_report(payload)


def test_a_score_that_is_not_a_number_is_crashed(tmp_path):
    rubric = load_rubric(RUBRIC_PATH)
    checks = [CheckResult(p.id, "x", p.title, p.points, p.points) for p in rubric.values()]
    checks[0] = CheckResult(checks[0].part, "x", "broken", float("nan"), 20)
    graded = GradedSubmission("nan_score", "ok", "", checks, "", 0.0, rubric)
    sub = Submission("nan_score", None, file_id="nan_score")
    data = batch_module._save(tmp_path, sub, graded, "fp", rubric)
    assert data["extra_data"]["status"] == "crashed" and data["score"] == 0
    assert "not a number" in data["extra_data"]["message"]
    outputs.write_gradebook(tmp_path, [data])
    assert_clean_outputs(tmp_path)


# ================================================================ 8: resume regrades when the grader changed

def _change_reference(tmp: Path, patch: pytest.MonkeyPatch) -> None:
    copy = tmp / "reference.py"
    copy.write_text(SOLUTION + "\n# fixed a comment in the reference\n")
    patch.setattr(batch_module, "REFERENCE_SOLUTION", copy)


def _change_spec(tmp: Path, patch: pytest.MonkeyPatch) -> None:
    copy = _copy_tree(batch_module.SPEC_DIR, tmp / "spec")
    table = copy / "resnet50_layer4.toml"
    table.write_text(table.read_text() + "\n# a corrected slide row\n")
    patch.setattr(batch_module, "SPEC_DIR", copy)


def _change_grader(tmp: Path, patch: pytest.MonkeyPatch) -> None:
    dirs = list(batch_module.GRADER_SOURCE_DIRS)
    copy = _copy_tree(dirs[0], tmp / "grade")
    (copy / "parts" / "q2a_blanks.py").write_text((copy / "parts" / "q2a_blanks.py").read_text()
                                                 + "\n# a scoring fix\n")
    patch.setattr(batch_module, "GRADER_SOURCE_DIRS", (copy, *dirs[1:]))


def _change_rubric(tmp: Path, patch: pytest.MonkeyPatch) -> dict:
    copy = tmp / "rubric.toml"
    copy.write_text(RUBRIC_PATH.read_text() + "\n# reworded\n")
    return {"rubric_path": copy}


@pytest.mark.parametrize("change", [_change_reference, _change_spec, _change_grader, _change_rubric])
def test_rerun_regrades_when_what_decides_a_grade_changed(tmp_path, monkeypatch, change):
    tmp = tmp_path
    folder = put(tmp / "submissions", {"alice/" + STUDENT_FILE: SOLUTION})
    out = tmp / "out"
    first = grade_batch(folder, out, jobs=1, progress=False, log=lambda *_: None)
    assert first[0]["score"] == 105
    log: list[str] = []
    grade_batch(folder, out, jobs=1, progress=False, log=log.append)
    assert log == ["resuming: 1 already graded, 0 to grade (use --force to regrade all)"]
    stamp = (out / "results" / "alice.json").stat().st_mtime_ns

    log.clear()
    kwargs = change(tmp, monkeypatch) or {}
    again = grade_batch(folder, out, jobs=1, progress=False, log=log.append, **kwargs)
    assert not any(line.startswith("resuming") for line in log), log
    assert again[0]["extra_data"]["fingerprint"] != first[0]["extra_data"]["fingerprint"]
    assert (out / "results" / "alice.json").stat().st_mtime_ns != stamp
    assert again[0]["score"] == 105


def test_grader_fingerprint_is_stable_and_covers_every_input(tmp_path, monkeypatch):
    rubric = RUBRIC_PATH.read_bytes()
    base = grader_fingerprint(rubric)
    assert grader_fingerprint(rubric) == base
    assert grader_fingerprint(rubric + b"\n") != base
    seen = {base}
    for change in (_change_reference, _change_spec, _change_grader):
        scratch = tmp_path / change.__name__
        scratch.mkdir()
        with pytest.MonkeyPatch.context() as patch:
            change(scratch, patch)
            seen.add(grader_fingerprint(rubric))
        assert grader_fingerprint(rubric) == base   # and back when the change is undone
    assert len(seen) == 4


# ================================================================ 9: links, FIFOs, devices, size

@pytest.fixture(scope="module")
def link_class(tmp_path_factory):
    folder = tmp_path_factory.mktemp("links") / "submissions"
    put(folder, {
        "alice/" + STUDENT_FILE: SOLUTION,
        "same_folder_link/my_work.py": SOLUTION,
        "big/" + STUDENT_FILE: SOLUTION + "#" * (MAX_SOURCE_BYTES + 10) + "\n",
        "nested_link/submission/.keep": "",
    })
    links = {
        "abs_to_solution": SOLUTION_PATH,
        "rel_to_solution": Path(os.path.relpath(SOLUTION_PATH, folder / "rel_to_solution")),
        "to_etc_passwd": Path("/etc/passwd"),
        "to_classmate": Path("../alice") / STUDENT_FILE,
        "to_dev_zero": Path("/dev/zero"),
        "dangling": Path("nowhere.py"),
    }
    for student, target in links.items():
        (folder / student).mkdir()
        (folder / student / STUDENT_FILE).symlink_to(target)
    (folder / "same_folder_link" / STUDENT_FILE).symlink_to("my_work.py")
    (folder / "nested_link" / "submission" / STUDENT_FILE).symlink_to(SOLUTION_PATH)
    (folder / "folder_link_to_classmate").symlink_to("alice", target_is_directory=True)
    (folder / "folder_link_to_solutions").symlink_to(SOLUTION_PATH.parent, target_is_directory=True)
    (folder / "loose_link.py").symlink_to(SOLUTION_PATH)
    (folder / "fifo").mkdir()
    os.mkfifo(folder / "fifo" / STUDENT_FILE)
    os.mkfifo(folder / "loose_fifo.py")
    (folder / "folder_named_like_the_file" / STUDENT_FILE).mkdir(parents=True)
    if os.geteuid() == 0:   # only root can make a device node; elsewhere the /dev/zero link stands in
        (folder / "char_device").mkdir()
        os.mknod(folder / "char_device" / STUDENT_FILE, 0o600 | 0o020000, os.makedev(1, 5))
    out = folder.parent / "out"
    results = run_with_deadline(lambda: grade_batch(folder, out, jobs=2, progress=False, log=lambda *_: None),
                                seconds=300)
    return folder, out, by_student(results)


REFUSED_LINKS = ["abs_to_solution", "rel_to_solution", "to_etc_passwd", "to_classmate", "to_dev_zero",
                 "dangling", "nested_link", "folder_link_to_classmate", "folder_link_to_solutions",
                 "loose_link"]


@pytest.mark.parametrize("student", REFUSED_LINKS)
def test_links_out_of_the_folder_are_refused(link_class, student):
    _, out, got = link_class
    data = got[student]
    assert data["extra_data"]["status"] == "refused", data["extra_data"]
    assert data["score"] == 0
    assert "symbolic link" in data["extra_data"]["message"]
    assert "symbolic link" in feedback_of(out, data)


@pytest.mark.parametrize("student, kind", [("fifo", "named pipe"), ("loose_fifo", "named pipe"),
                                           ("folder_named_like_the_file", "folder"),
                                           ("char_device", "character device"),
                                           ("big", "bytes")])
def test_what_is_not_a_small_regular_file_is_refused(link_class, student, kind):
    if student == "char_device" and os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    data = link_class[2][student]
    assert data["extra_data"]["status"] == "refused" and data["score"] == 0
    assert kind in data["extra_data"]["message"]


def test_own_files_and_links_inside_the_folder_are_graded(link_class):
    got = link_class[2]
    assert got["alice"]["score"] == 105
    assert got["same_folder_link"]["score"] == 105


def test_nothing_outside_a_students_folder_reaches_the_outputs(link_class):
    _, out, got = link_class
    written = "".join(p.read_text(encoding="utf-8") for p in out.rglob("*") if p.is_file())
    assert "root:x:0:0" not in written
    assert "BEGIN SOLUTION" not in written
    assert {r["status"] for r in gradebook(out)} <= set(STATUSES)


def test_read_source_never_opens_a_fifo_and_caps_the_size(tmp_path):
    os.mkfifo(tmp_path / STUDENT_FILE)
    sub = Submission("x", tmp_path / STUDENT_FILE, tmp_path)
    with pytest.raises(Refused, match="named pipe"):
        run_with_deadline(lambda: read_source(sub), seconds=20)
    big = tmp_path / "big" / STUDENT_FILE
    big.parent.mkdir()
    big.write_bytes(b"#" * (MAX_SOURCE_BYTES + 1))
    with pytest.raises(Refused, match="at most"):
        read_source(Submission("big", big, big.parent))
    big.write_bytes(b"#" * MAX_SOURCE_BYTES)
    assert len(read_source(Submission("big", big, big.parent))) == MAX_SOURCE_BYTES


def test_statuses_in_readme_match_the_grader():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("- **Status** per student"):]
    section = section[:section.index("\n- **", 5)]
    listed = re.findall(r"`([a-z_]+)`", section)
    assert listed[:len(STATUSES)] == list(STATUSES)


# ================================================================ 12: CLI edges of a real course

@pytest.mark.parametrize("command", [["table"], ["grade", "SUBMISSION", "--out", "out", "--quiet",
                                                 "--print-gradebook"]])
def test_cli_works_from_any_directory(tmp_path, command):
    command = [str(ROOT / "examples" / "submissions" / "correct" / STUDENT_FILE) if c == "SUBMISSION" else c
               for c in command]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-m", "autograder", *command], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "ModuleNotFoundError" not in run.stderr and "Traceback" not in run.stderr
    if command[0] == "grade":
        assert "\nresnet50_skeleton,20,20,25,20,20,105,105,ok\n" in run.stdout
        assert (tmp_path / "out" / "grades.csv").is_file()


LMS_NAMES = ["Jane Doe_123_456_resnet50_skeleton", "Jane Doe - 12345", "김철수_2024", "Jane Doe",
             "Jane_Doe", "jane_doe", "O'Brien, Pat \"PJ\"", "café"]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    folder = tmp_path_factory.mktemp("course") / "submissions"
    files = {f"{name}/{STUDENT_FILE}": SOLUTION for name in LMS_NAMES}
    files.update({
        "alice/" + STUDENT_FILE: SOLUTION,
        "alice.py": SOLUTION.replace("ResidualBlock(512, 128, 512, True)", "ResidualBlock(512, 128, 512, False)"),
        "my_resnet/my_resnet.py": SOLUTION,
        "copy_suffix/resnet50_skeleton (1).py": SOLUTION,
        "upper_case/ResNet50_Skeleton.py": SOLUTION,
        "with_vgg/vgg.py": "# the handout's file\n",
        "with_vgg/model.py": SOLUTION,
        "nested/submission/" + STUDENT_FILE: SOLUTION,
        "two_candidates/a.py": SOLUTION,
        "two_candidates/b.py": SOLUTION,
        "two_copies/resnet50_skeleton (1).py": SOLUTION,
        "two_copies/resnet50_skeleton (2).py": SOLUTION,
        "empty/.keep": "",
        "notebook_only/CNN_Implementation.ipynb": "{}",
        "only_vgg/vgg.py": "# the handout's file\n",
    })
    put(folder, files)
    out = folder / "grades"   # the instructor put --out inside the submissions folder
    first = grade_batch(folder, out, jobs=2, progress=False, log=lambda *_: None)
    log: list[str] = []
    second = grade_batch(folder, out, jobs=2, progress=False, log=log.append)
    return folder, out, by_student(first), by_student(second), log


def test_lms_names_are_graded_and_kept_in_the_gradebook(course):
    _, out, got, _, _ = course
    rows = {r["student"]: r for r in gradebook(out)}
    for name in LMS_NAMES:
        assert rows[name]["total"] == "105", name
        assert got[name]["extra_data"]["student"] == name
    files = sorted(p.stem for p in (out / "results").glob("*.json"))
    assert len(files) == len(rows) == len(set(f.casefold() for f in files))
    assert all(SAFE_FILE_NAME.match(f) and not f.startswith(".") for f in files), files
    assert "김철수_2024" in files   # a Unicode name that is already a safe file name is kept as is


def test_alice_folder_and_alice_py_are_two_rows(course):
    _, out, got, _, _ = course
    rows = [r["student"] for r in gradebook(out)]
    assert rows.count("alice") == 1 and rows.count("alice.py") == 1
    assert got["alice"]["score"] == 105
    assert 0 < got["alice.py"]["score"] < 105   # its own file, not the folder's


def test_out_inside_the_submissions_is_not_a_student(course):
    folder, out, first, second, log = course
    assert "grades" not in first and "grades" not in second
    assert first.keys() == second.keys()
    assert log[-1].startswith(f"resuming: {len(first)} already graded, 0 to grade")
    assert any("skipping" in line and "grades" in line for line in log)


def test_a_grader_output_folder_left_in_the_submissions_is_a_visible_row(tmp_path):
    """Only the real --out is skipped: a folder that merely looks like grader output is
    a student (graded when it holds a file, a missing row with a note when not)."""
    folder = put(tmp_path / "subs", {"bob/" + STUDENT_FILE: SOLUTION, "old-grades/grades.csv": "x\n",
                                     "old-grades/results/bob.json": "{}",
                                     # a student hiding from the gradebook behind an output layout
                                     "mallory/" + STUDENT_FILE: SOLUTION, "mallory/grades.csv": "x\n",
                                     "mallory/results/mallory.json": "{}",
                                     "nested_mallory/grades.csv": "x\n", "nested_mallory/results/.keep": "",
                                     "nested_mallory/work/" + STUDENT_FILE: SOLUTION})
    log: list[str] = []
    found = {s.student: s for s in discover(folder, log=log.append)}
    assert sorted(found) == ["bob", "mallory", "nested_mallory", "old-grades"]
    assert found["mallory"].file == folder / "mallory" / STUDENT_FILE
    assert found["nested_mallory"].file == folder / "nested_mallory" / "work" / STUDENT_FILE
    assert found["old-grades"].file is None
    assert any("grades.csv and results/" in note for note in found["old-grades"].notes)
    assert any("old-grades" in line and "missing" in line for line in log)
    # the real --out is still skipped, whatever it holds
    out = folder / "out"
    put(out, {"grades.csv": "x\n", "results/a.json": "{}", STUDENT_FILE: SOLUTION})
    assert "out" not in {s.student for s in discover(folder, skip=(out,), log=lambda *_: None)}


@pytest.mark.parametrize("student, graded_file", [("my_resnet", "my_resnet.py"),
                                                  ("copy_suffix", "resnet50_skeleton (1).py"),
                                                  ("upper_case", "ResNet50_Skeleton.py"),
                                                  ("with_vgg", "model.py"),
                                                  ("nested", "submission/resnet50_skeleton.py")])
def test_a_misnamed_file_is_graded_with_a_note(course, student, graded_file):
    _, out, got, _, _ = course
    data = got[student]
    assert data["score"] == 105 and data["extra_data"]["status"] == "ok"
    assert any(f"graded {graded_file}" in note for note in data["extra_data"]["notes"])
    assert f"graded {graded_file}" in feedback_of(out, data)


@pytest.mark.parametrize("student, says", [("two_candidates", "could not tell which one to grade"),
                                           ("two_copies", "could not tell which one to grade"),
                                           ("empty", "it is empty"),
                                           ("notebook_only", "CNN_Implementation.ipynb"),
                                           ("only_vgg", "vgg.py")])
def test_really_missing_says_so_once(course, student, says):
    _, out, got, _, _ = course
    data = got[student]
    assert data["extra_data"]["status"] == "missing" and data["score"] == 0
    assert says in data["extra_data"]["message"]
    text = feedback_of(out, data)
    assert text.count(f"no {STUDENT_FILE}") == 1, text


def test_file_ids_never_collide():
    names = ["Jane Doe", "Jane_Doe", "Jane__Doe", "jane doe", "JANE_DOE", "a/b", "a_b", "x" * 300,
             "x" * 301, "..", "...", "\udce9", "\udce8"]
    subs = batch_module._with_file_ids([Submission(n, None) for n in names])
    ids = [s.file_id for s in subs]
    assert len({i.casefold() for i in ids}) == len(names), ids
    for file_id in ids:
        assert SAFE_FILE_NAME.match(file_id) and not file_id.startswith(".") and len(file_id) < 120
        file_id.encode("utf-8")


def test_an_unreadable_folder_is_that_students_problem(tmp_path, monkeypatch):
    """A folder the grader may not list (a tar with mode 000; root reads anyway, so the
    refusal is simulated) is one student's missing row, not the batch's error."""
    folder = put(tmp_path / "subs", {"bob/" + STUDENT_FILE: SOLUTION, "locked/" + STUDENT_FILE: SOLUTION})
    real_entries = batch_module._entries

    def entries(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied")
        return real_entries(path)

    monkeypatch.setattr(batch_module, "_entries", entries)
    found = {s.student: s for s in discover(folder)}
    assert found["bob"].file == folder / "bob" / STUDENT_FILE
    assert found["locked"].file is None and "Permission denied" in found["locked"].problem


def test_path_that_is_neither_file_nor_folder_is_a_batch_error(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(batch_module.BatchError, match="not a .py file or a folder"):
        run_with_deadline(lambda: discover(tmp_path / "pipe"), seconds=20)


# ================================================================ attacks on the trusted process

def test_reference_sized_reports_pass_and_bloated_ones_are_refused_cheaply():
    # about what the reference's report holds (~850 KB, ~2,200 values): accepted
    fine = json.dumps({"import": {"status": "ok"}, "q1": [{"a": [1, 2, 3]}] * 500,
                       "blob": "A" * 800_000, "text": ", [ {" * 50_000}).encode()
    assert parse_report(fine)["import"] == {"status": "ok"}
    for payload in (b'{"a": [' + b"{}," * 200_000 + b"{}]}",        # many small objects
                    b'{"a": [' + b"[]," * 200_000 + b"[]]}",        # many empty lists
                    b'{"a": [' + b"0," * 200_000 + b"0]}",          # many numbers
                    b'{"a": [' + b'"\\\\",' * 200_000 + b'""]}'):   # strings that end in an escape
        start = time.monotonic()
        with pytest.raises(MalformedReport, match="values, more than"):
            parse_report(payload)
        assert time.monotonic() - start < 5
    with pytest.raises(MalformedReport, match="larger than"):
        parse_report(b'{"a": "' + b"A" * (9 * 1024 * 1024) + b'"}')


def _many_deductions(rubric, per_check: int) -> GradedSubmission:
    checks = [CheckResult(p.id, check, p.title, 0.0, p.points / 2,
                          [f"{p.id} {check} blank {i} is still open" for i in range(per_check)]
                          + ["shared cause in every check"]) for p in rubric.values() for check in "xy"]
    return GradedSubmission("many", "ok", "", checks, "", 0.0, rubric)


def test_feedback_of_thousands_of_deductions_is_fast_and_capped(tmp_path):
    rubric = load_rubric(RUBRIC_PATH)
    graded = _many_deductions(rubric, 20_000)
    start = time.monotonic()
    data = outputs.write_submission(tmp_path, graded, "fp", "many")
    assert time.monotonic() - start < 10   # was quadratic: list lookups per line
    feedback = (tmp_path / "feedback" / "many.md").read_text()
    assert len(feedback) <= outputs.MAX_FEEDBACK_CHARS + 200
    assert "... and 19970 more" in feedback
    assert feedback.count("shared cause in every check") == len(rubric)   # once per part
    for test in data["tests"]:
        assert len(test["output"].splitlines()) <= outputs.LINES_PER_CHECK + 2
    assert (tmp_path / "results" / "many.json").stat().st_size < 200_000


def test_out_equal_to_or_holding_path_is_refused(tmp_path, capsys):
    from autograder.cli import main
    folder = put(tmp_path / "subs", {"alice/" + STUDENT_FILE: SOLUTION})
    for out in (folder, tmp_path, folder / ".." / "subs"):
        assert main(["grade", str(folder), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --out") and err.count("\n") == 1, err
    assert main(["grade", str(folder / "alice" / STUDENT_FILE), "--out", str(folder), "--quiet"]) == 2
    assert sorted(p.name for p in folder.iterdir()) == ["alice"]   # nothing written into PATH


def test_every_student_id_is_unique(tmp_path):
    folder = put(tmp_path / "subs", {"alice/" + STUDENT_FILE: SOLUTION, "alice.py": SOLUTION,
                                     "alice.py.py": SOLUTION, "bob.py": SOLUTION, "bob.py (2)/x.py": SOLUTION,
                                     "carol.py.py": SOLUTION, "carol.py": SOLUTION})
    names = [s.student for s in discover(folder, log=lambda *_: None)]
    assert len(names) == len(set(names)) == 7, names
    assert {"alice", "alice.py", "bob", "carol.py", "carol"} <= set(names)


@pytest.mark.parametrize("name", ['=HYPERLINK("http://x","click")', "+1+1", "-2+3", "@SUM(A1)",
                                  "-alice", "=1\n=2"])
def test_formula_like_names_are_quoted_in_the_gradebook(tmp_path, name):
    rubric = load_rubric(RUBRIC_PATH)
    data = outputs.results_json(failed(name, "missing", "none", rubric), "fp")
    outputs.write_gradebook(tmp_path, [data])
    [row] = gradebook(tmp_path)
    assert row["student"].startswith("'") and row["student"][1:] == outputs.one_line(name)
    assert data["extra_data"]["student"] == name   # results.json keeps the name as it is


@pytest.mark.parametrize("name", ["eve\n# Full marks", "a\rb", "red\x1b[31mRED", "bell\x07", "nul\x00x",
                                  "line\u2028sep", "tab\tin"])
def test_control_characters_in_names_are_escaped(tmp_path, name):
    rubric = load_rubric(RUBRIC_PATH)
    graded = failed(name, "missing", "none", rubric)
    data = outputs.write_submission(tmp_path, graded, "fp", "x")
    outputs.write_gradebook(tmp_path, [data])
    text = (tmp_path / "grades.csv").read_text()
    assert len(text.splitlines()) == 2 and "\x1b" not in text and "\x07" not in text
    heading = (tmp_path / "feedback" / "x.md").read_text().splitlines()[0]
    assert heading.startswith("# Feedback for ") and outputs.one_line(name) in heading
    assert all(c.isprintable() for c in heading)
    summary = outputs.summary_text([data])
    assert all(c.isprintable() for line in summary.splitlines() for c in line)


@pytest.mark.parametrize("data, says", [
    (SOLUTION.encode("utf-16"), "saved as UTF-16"),
    (SOLUTION.encode("utf-16-be"), "UTF-16"),                      # no byte-order mark
    (SOLUTION.encode("utf-16-le"), "UTF-16"),
    (b"\xfe\xff" + SOLUTION.encode("utf-16-be"), "saved as UTF-16"),
    (SOLUTION.encode("utf-32"), "saved as UTF-32"),
    (SOLUTION.encode() + b"\n\x00\x00\n", "NUL bytes"),
    (b"\x00" + SOLUTION.encode(), "NUL bytes"),
])
def test_utf16_and_nul_bytes_are_explained_before_the_sandbox(tmp_path, data, says):
    assert says in batch_module.encoding_problem(data)
    folder = put(tmp_path / "subs", {"stu/" + STUDENT_FILE: data})
    # no sandbox starts for such a file: grading it must not reach it
    [result] = grade_batch(folder, tmp_path / "out", progress=False, log=lambda *_: None)
    extra = result["extra_data"]
    assert extra["status"] == "syntax_error" and result["score"] == 0
    assert says in extra["message"] and "UTF-8" in extra["message"]


@pytest.mark.parametrize("data", [SOLUTION.encode(), b"\xef\xbb\xbf" + SOLUTION.encode(),
                                  ("# r\xe9sum\xe9\n" + SOLUTION).encode("latin-1")])
def test_utf8_and_latin1_are_not_mistaken_for_utf16(data):
    assert batch_module.encoding_problem(data) == ""


def _zip(path: Path, members: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    import zipfile
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in links:
                info.external_attr = (0o120777 << 16)
            archive.writestr(info, data)
    return path


def _zip_submission(tmp_path, members, links=()):
    folder = tmp_path / "subs"
    _zip(folder / "stu" / "submission.zip", members, links)
    put(folder, {"ok/" + STUDENT_FILE: SOLUTION})
    return {s.student: s for s in discover(folder, log=lambda *_: None)}["stu"]


@pytest.mark.parametrize("member", [STUDENT_FILE, "submission/" + STUDENT_FILE])
def test_the_notebooks_zip_is_graded_from_its_member(tmp_path, member):
    sub = _zip_submission(tmp_path, {member: SOLUTION.encode(), "CNN_Implementation.ipynb": b"{}",
                                     "__MACOSX/._" + STUDENT_FILE: b"junk"})
    assert sub.member == member and any("submission.zip" in n for n in sub.notes)
    assert read_source(sub) == SOLUTION.encode()
    assert not any(p.name == STUDENT_FILE for p in (tmp_path / "subs" / "stu").rglob("*"))   # nothing extracted


@pytest.mark.parametrize("members, says", [
    ({"a/" + STUDENT_FILE: b"x", "b/" + STUDENT_FILE: b"y"}, "holds 2 files named"),
    ({"notes.txt": b"x"}, "holds no resnet50_skeleton.py"),
    ({"a/b/" + STUDENT_FILE: b"x"}, "holds no resnet50_skeleton.py"),   # too deep
])
def test_a_zip_without_exactly_one_member_is_missing(tmp_path, members, says):
    sub = _zip_submission(tmp_path, members)
    assert sub.file is None and sub.problem_status == "missing" and says in sub.problem


def test_a_file_that_is_not_a_zip_is_missing_with_a_reason(tmp_path):
    folder = put(tmp_path / "subs", {"stu/submission.zip": b"PK not really"})
    [sub] = discover(folder)
    assert sub.file is None and "not a readable zip" in sub.problem


@pytest.mark.parametrize("member, links", [("/" + STUDENT_FILE, ()), (STUDENT_FILE, (STUDENT_FILE,))])
def test_zip_members_that_leave_the_zip_or_are_links_are_refused(tmp_path, member, links):
    sub = _zip_submission(tmp_path, {member: b"/etc/passwd"}, links)
    with pytest.raises(Refused):
        read_source(sub)


def test_a_zip_member_above_the_zip_is_never_a_candidate(tmp_path):
    sub = _zip_submission(tmp_path, {"../" + STUDENT_FILE: SOLUTION.encode()})
    assert sub.file is None and "holds no resnet50_skeleton.py" in sub.problem
    sub = batch_module.Submission("stu", sub.folder / "submission.zip", sub.folder, member="../" + STUDENT_FILE)
    with pytest.raises(Refused, match="leaves the zip"):   # named directly, it is still refused
        read_source(sub)


def test_zip_bombs_are_refused_by_declared_and_by_actual_size(tmp_path):
    big = b"# " + b"0" * (MAX_SOURCE_BYTES + 10)
    sub = _zip_submission(tmp_path, {STUDENT_FILE: big})
    with pytest.raises(Refused, match="unpacked"):
        read_source(sub)
    # a member that lies about its size: the declared size is small, the data is not
    path = tmp_path / "subs" / "stu" / "submission.zip"
    _zip(path, {STUDENT_FILE: big})
    raw = bytearray(path.read_bytes())
    declared = len(big).to_bytes(4, "little")
    assert raw.count(declared) == 2   # the local header and the central directory
    path.write_bytes(bytes(raw).replace(declared, (100).to_bytes(4, "little")))
    with pytest.raises(Refused):
        read_source(sub)


def test_a_zip_beside_a_py_file_is_not_used(tmp_path):
    folder = tmp_path / "subs"
    _zip(folder / "stu" / "submission.zip", {STUDENT_FILE: b"wrong"})
    put(folder, {"stu/my_model.py": SOLUTION})
    [sub] = discover(folder)
    assert sub.file == folder / "stu" / "my_model.py" and not sub.member


def _result(student, status, failed_tests=(), lines=1):
    tests = [{"name": f"Q1a check {i}", "score": 0 if i in failed_tests else 1, "max_score": 1,
              "output": "\n".join(f"- mistake {j}" for j in range(lines))} for i in range(4)]
    tests.append({"name": "Q2a " + "a rather long title that has to be cut somewhere sensible " * 2,
                  "score": 0, "max_score": 1, "output": "- x"})
    return {"score": 1, "tests": tests, "extra_data": {"student": student, "status": status, "max_total": 5}}


def test_summary_counts_each_failed_check_once_per_student_and_names_non_ok_students():
    results = [_result("a", "ok", {0}, lines=25), _result("b", "ok", {0, 1}), _result("c", "ok", {2}),
               *[_result(f"m{i:02d}", "missing") for i in range(12)], _result("t", "timeout")]
    text = outputs.summary_text(results)
    lines = text.splitlines()
    ranked = lines[lines.index(next(l for l in lines if l.startswith("most frequent"))) + 1:][:4]
    assert [l.split(None, 1) for l in ranked[:3]] == [["3", ranked[0].split(None, 1)[1]],
                                                      ["2", "Q1a check 0"], ["1", "Q1a check 1"]]
    assert ranked[0].endswith("...") and len(ranked[0].split(None, 1)[1]) <= 70
    assert not ranked[0].split(None, 1)[1][:-3].endswith((" ", "sensibl"))   # a word boundary
    assert "missing (12): m00, m01" in text and "m09, ... and 2 more" in text and "m10" not in text
    assert "timeout (1): t" in text
    assert outputs.summary_text(list(reversed(results))) == text   # ties in a fixed order


def test_sigterm_cleans_up_like_ctrl_c(tmp_path):
    slow = SOLUTION + "\nimport time\ntime.sleep(60)\n"
    folder = put(tmp_path / "subs", {"slow/" + STUDENT_FILE: slow, "slow2/" + STUDENT_FILE: slow})
    temp, out = tmp_path / "tmp", tmp_path / "out"
    temp.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "autograder", "grade", str(folder), "--out", str(out),
                             "--quiet", "--jobs", "1", "--timeout", "90"], cwd=ROOT,
                            env={**os.environ, "TMPDIR": str(temp)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob(".sources-*")) or not list(temp.glob("sandbox-*")):   # grading has begun
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        time.sleep(2)
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert list(temp.iterdir()) == [] and list(out.glob(".*")) == []
    assert list((out / "results").iterdir()) == []   # a cut-short run is not recorded as a result
