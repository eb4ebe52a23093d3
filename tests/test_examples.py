"""The bundled example submissions, graded through the real command line.

``make grade`` runs exactly this command on ``examples/submissions``; the scores
asserted here are the ones ``examples/README.md`` promises.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "submissions"
PARTS = ["Q1a", "Q1b", "Q2a", "Q2b", "Q2c"]
FULL = {"Q1a": 20, "Q1b": 20, "Q2a": 25, "Q2b": 20, "Q2c": 20}
STUDENTS = ["avgpool_2_1", "correct", "layer3_downsample_first", "maxpool_padding_0", "missing_file",
            "relu_after_add", "stride_on_3x3", "syntax_error", "untouched_skeleton"]


def grade(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "grade", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def snapshot(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted((out / "results").glob("*.json"))}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    out = tmp_path_factory.mktemp("examples") / "out"
    first = grade(EXAMPLES, "--out", out, "--jobs", "2", "--quiet", "--print-gradebook")
    return out, first


def results(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (out / "results").glob("*.json")}


def parts_of(data: dict) -> dict[str, float]:
    return data["extra_data"]["parts"]


def test_exit_code_zero_even_with_failing_students(graded):
    out, run = graded
    assert run.returncode == 0, run.stderr
    assert "resuming" not in run.stdout
    assert "submissions: mean" in run.stdout
    assert run.stdout.startswith("student,Q1a,Q1b,Q2a,Q2b,Q2c,total,max_total,status\n")
    assert "\ncorrect,20,20,25,20,20,105,105,ok\n" in run.stdout


def test_statuses(graded):
    out, _ = graded
    got = {s: d["extra_data"]["status"] for s, d in results(out).items()}
    want = {s: "ok" for s in STUDENTS}
    want.update(syntax_error="syntax_error", missing_file="missing")
    assert got == want


@pytest.mark.parametrize("student", ["correct", "avgpool_2_1", "relu_after_add"])
def test_full_credit(graded, student):
    data = results(graded[0])[student]
    assert data["score"] == 105 and parts_of(data) == FULL


@pytest.mark.parametrize("student", ["untouched_skeleton", "syntax_error", "missing_file"])
def test_zero(graded, student):
    data = results(graded[0])[student]
    assert data["score"] == 0 and set(parts_of(data).values()) == {0}
    assert data["extra_data"]["max_total"] == 105


@pytest.mark.parametrize("student, losing", [
    ("stride_on_3x3", "Q1a"),
    ("layer3_downsample_first", "Q2b"),
    ("maxpool_padding_0", "Q2a"),
])
def test_mistake_loses_points_in_its_part_only(graded, student, losing):
    parts = parts_of(results(graded[0])[student])
    assert 0 < parts[losing] < FULL[losing]
    assert {p: v for p, v in parts.items() if p != losing} == {p: v for p, v in FULL.items() if p != losing}


def test_exact_scores_where_the_rule_is_clear(graded):
    data = results(graded[0])
    # The padding's share of the MaxPool2d arguments (2 points / 3), and the stem's
    # function (2 points): its map is 7x7, not 8x8.
    assert parts_of(data["maxpool_padding_0"])["Q2a"] == pytest.approx(25 - 2 / 3 - 2, abs=0.01)
    # Two wrong downsample flags (one point each of the 16 argument points) and the outputs (4).
    assert parts_of(data["layer3_downsample_first"])["Q2b"] == 14
    by_check = {t["name"]: t for t in data["stride_on_3x3"]["tests"]}
    state = next(t for n, t in by_check.items() if n.startswith("Q1a") and "state_dict" in n)
    function = next(t for n, t in by_check.items() if n.startswith("Q1a") and "outputs" in n)
    assert state["score"] == state["max_score"] == 4      # same parameters, only the stride moved
    assert function["score"] == 0


def test_gradebook_csv(graded):
    out, _ = graded
    lines = (out / "grades.csv").read_text().splitlines()
    assert lines[0] == "student,Q1a,Q1b,Q2a,Q2b,Q2c,total,max_total,status"
    rows = list(csv.DictReader(lines))
    assert [r["student"] for r in rows] == sorted(STUDENTS)
    by_student = {r["student"]: r for r in rows}
    assert by_student["correct"]["total"] == "105" and by_student["correct"]["status"] == "ok"
    assert by_student["syntax_error"]["status"] == "syntax_error"
    assert by_student["missing_file"]["status"] == "missing"
    for row in rows:
        assert float(row["total"]) == pytest.approx(sum(float(row[p]) for p in PARTS), abs=0.02)
        assert row["max_total"] == "105"


def test_results_follow_gradescope_schema(graded):
    out, _ = graded
    for student, data in results(out).items():
        assert isinstance(data["score"], (int, float)), student
        assert isinstance(data["execution_time"], (int, float)) and data["execution_time"] >= 0
        assert isinstance(data["output"], str) and data["output"]
        assert data["tests"], student
        for test in data["tests"]:
            assert set(test) >= {"name", "score", "max_score", "output", "visibility"}, test
            assert test["name"].split()[0] in PARTS, test["name"]
            assert test["visibility"] in ("visible", "hidden", "after_due_date", "after_published")
            assert 0 <= test["score"] <= test["max_score"] or test["max_score"] == 0
            assert isinstance(test["output"], str)
        assert sum(t["max_score"] for t in data["tests"]) == 105
        assert data["score"] == pytest.approx(sum(t["score"] for t in data["tests"]), abs=0.02)


def test_feedback_names_the_module_and_what_the_table_expects(graded):
    out, _ = graded
    assert sorted(p.stem for p in (out / "feedback").glob("*.md")) == sorted(STUDENTS)
    text = (out / "feedback" / "layer3_downsample_first.md").read_text()
    assert "layer3[0]: the table expects ResidualBlock(256, 128, 512, downsample=False)" in text
    assert "layer3[3]: the table expects ResidualBlock(512, 128, 512, downsample=True)" in text
    text = (out / "feedback" / "stride_on_3x3.md").read_text()
    assert "a block built as the table describes has layer[1] = 3x3 conv" in text and "stride 2" in text
    text = (out / "feedback" / "maxpool_padding_0.md").read_text()
    assert "layer1[3].padding: the table expects 1, found 0" in text
    text = (out / "feedback" / "untouched_skeleton.md").read_text()
    assert "is not filled in" in text
    assert "syntax" in (out / "feedback" / "syntax_error.md").read_text()
    assert "no resnet50_skeleton.py" in (out / "feedback" / "missing_file.md").read_text()


def test_second_run_resumes_and_force_regrades(graded):
    out, first = graded
    before = snapshot(out)
    scores = {s: (d["score"], parts_of(d), [x["score"] for x in d["tests"]]) for s, d in results(out).items()}
    again = grade(EXAMPLES, "--out", out, "--jobs", "2", "--quiet")
    assert again.returncode == 0, again.stderr
    assert f"resuming: {len(STUDENTS)} already graded, 0 to grade" in again.stdout
    assert snapshot(out) == before                      # nothing rewritten
    forced = grade(EXAMPLES, "--out", out, "--jobs", "2", "--quiet", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "resuming" not in forced.stdout
    after = snapshot(out)
    assert after.keys() == before.keys()
    assert all(after[name] != before[name] for name in before)   # every student written again
    regraded = {s: (d["score"], parts_of(d), [x["score"] for x in d["tests"]]) for s, d in results(out).items()}
    assert regraded == scores                            # identical scores, check by check


def test_folder_without_submissions_is_exit_2(tmp_path):
    # missing_file/ holds only a README.txt: as the batch's PATH it holds no submissions
    run = grade(EXAMPLES / "missing_file", "--out", tmp_path / "o", "--quiet")
    assert run.returncode == 2 and run.stderr.startswith("error:")
    assert run.stderr.strip().count("\n") == 0


def test_nonexistent_path_is_exit_2(tmp_path):
    run = grade(tmp_path / "nope", "--out", tmp_path / "o")
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "does not exist" in run.stderr
    assert "Traceback" not in run.stderr


def test_unwritable_out_is_exit_2(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    run = grade(EXAMPLES / "correct" / "resnet50_skeleton.py", "--out", blocker / "out")
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "cannot write" in run.stderr
    assert "Traceback" not in run.stderr
