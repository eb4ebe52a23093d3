"""autograder/grade/pytest_entry.py: one pytest test per rubric check, run as an
instructor would run it (a separate pytest process)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY = "autograder/grade/pytest_entry.py"
PARTS = ("Q1a", "Q1b", "Q2a", "Q2b", "Q2c")


def run_entry(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", ENTRY, "-p", "no:cacheprovider", "-q", "-rfE",
                           "--rootdir", str(ROOT), *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def outcome_counts(stdout: str) -> dict[str, int]:
    last = stdout.strip().splitlines()[-1]
    return {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|error)", last)}


def failed_checks(stdout: str) -> list[str]:
    return re.findall(r"^FAILED \S*::test_check\[(.*)\]", stdout, flags=re.M)


def test_solution_passes_every_check(tmp_path):
    run = run_entry("--submission", ROOT / "solutions" / "resnet50_skeleton.py", "--grading-out", tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    counts = outcome_counts(run.stdout)
    assert counts.get("failed", 0) == 0 and counts["passed"] >= 15
    # the collected tests are the rubric's checks, each named after its part
    listed = subprocess.run([sys.executable, "-m", "pytest", ENTRY, "-p", "no:cacheprovider", "--collect-only",
                             "-q", "--submission", ROOT / "solutions" / "resnet50_skeleton.py"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300).stdout
    names = re.findall(r"::test_check\[(.*)\]", listed)
    assert len(names) == counts["passed"]
    assert all(name.split()[0] in PARTS for name in names), names
    assert {name.split()[0] for name in names} == set(PARTS)
    assert (tmp_path / "results" / "resnet50_skeleton.json").is_file()


def test_wrong_variant_fails_the_right_checks(tmp_path):
    source = (ROOT / "solutions" / "resnet50_skeleton.py").read_text()
    layer3_last = "            ResidualBlock(512, 128, 512, True),\n"
    assert source.count(layer3_last) == 1
    wrong = source.replace(layer3_last, "")                     # layer3 with 3 blocks
    wrong = wrong.replace("nn.MaxPool2d(3, 2, 1)", "nn.MaxPool2d(3, 2, 0)")
    assert wrong.count("nn.MaxPool2d(3, 2, 0)") == 1
    student = tmp_path / "student" / "resnet50_skeleton.py"
    student.parent.mkdir()
    student.write_text(wrong)
    run = run_entry("--submission", student)
    assert run.returncode == 1, run.stdout + run.stderr
    failed = failed_checks(run.stdout)
    assert failed, run.stdout
    assert {name.split()[0] for name in failed} == {"Q2a", "Q2b"}, failed
    assert any("MaxPool2d" in name for name in failed)
    assert not any(name.startswith(("Q1a", "Q1b", "Q2c")) for name in failed)
    # the failure message is the deduction text, naming the module and what the table expects
    assert "layer1[3].padding: the table expects 1, found 0" in run.stdout
    assert "layer3" in run.stdout and "the table expects" in run.stdout


def test_without_submission_is_a_usage_error():
    run = subprocess.run([sys.executable, "-m", "pytest", ENTRY, "-p", "no:cacheprovider", "-q"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode in (2, 4) and "pass --submission" in run.stdout + run.stderr
