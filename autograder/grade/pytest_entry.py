"""Grade one submission with pytest: one test per rubric check.

    python -m pytest autograder/grade/pytest_entry.py --submission path/to/resnet50_skeleton.py

The file is graded exactly as ``python -m autograder grade`` grades it (the same
sandbox, probe, scoring and rubric, through ``grade_batch``); each check of the
results becomes a test named after it ("Q1a downsample branch: ...", "Q2b layer3:
..."), which fails with the deduction text when the check lost points. Checks
worth 0 points (informational) pass and show their remarks with ``-rA``.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from autograder.grade.batch import BatchError, grade_batch

_CACHE_KEY = "_autograder_pytest_entry_result"


def _graded(config) -> dict:
    """Grade the --submission once per pytest session; the results.json dict."""
    cached = getattr(config, _CACHE_KEY, None)
    if cached is not None:
        return cached
    submission = config.getoption("--submission")
    if not submission:
        raise pytest.UsageError("pass --submission path/to/resnet50_skeleton.py")
    path = Path(submission)
    if path.is_dir():
        path = path / "resnet50_skeleton.py"
    out = Path(config.getoption("--grading-out") or tempfile.mkdtemp(prefix="autograder-pytest-"))
    try:
        results = grade_batch(path, out, jobs=1, timeout_s=config.getoption("--grading-timeout"),
                              memory_mb=config.getoption("--grading-memory-mb"), force=True,
                              progress=False, log=lambda *_: None)
    except BatchError as exc:
        raise pytest.UsageError(str(exc)) from None
    setattr(config, _CACHE_KEY, results[0])
    return results[0]


def pytest_generate_tests(metafunc):
    if "check" in metafunc.fixturenames:
        result = _graded(metafunc.config)
        tests = result["tests"]
        metafunc.parametrize("check", tests, ids=[t["name"] for t in tests])


def test_check(check, request):
    """One rubric check: passes with full marks, fails with the deduction text otherwise."""
    result = _graded(request.config)
    status = result["extra_data"]["status"]
    head = f"{check['name']}: {check['score']:g} / {check['max_score']:g}"
    if check["score"] < check["max_score"]:
        why = check["output"]
        if status != "ok":
            why = f"status {status}: {result['extra_data']['message']}\n{why}"
        pytest.fail(f"{head}\n{why}", pytrace=False)
    if check["output"] != "correct":
        print(f"{head}\n{check['output']}")   # notes and 0-point remarks, shown with -rA
