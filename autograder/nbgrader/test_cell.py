"""What the notebook's hidden test cells run under ``nbgrader autograde``.

Each of the five test cells ends with ``score_part("Q1a")`` (and so on): its last
value is the part's points, which nbgrader records as partial credit. The student's
file is graded by the kit's sandboxed grader (``grade_batch``), never imported here.
It is graded once per kernel: the result is kept in this module, keyed by the file's
SHA-256, so five test cells cost one sandbox run. The cache lives in the kernel's
memory rather than in a file in the working folder because that folder is the
student's submission: a file there could be handed in.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
from pathlib import Path

from autograder.nbgrader import STUDENT_FILE

_graded: dict[str, dict] = {}   # SHA-256 of the file -> the grader's result for it


def _file_key(path: Path) -> str:
    try:
        data = path.read_bytes() if path.is_file() else b""
    except OSError:
        data = b""
    return hashlib.sha256(data).hexdigest() + ("" if path.is_file() else ":missing")


@contextlib.contextmanager
def _stderr_to_stdout():
    """Anything a test cell writes to stderr makes nbgrader give it 0 points: while grading,
    the grader's notes and warnings (Python's and those of its worker processes, which
    write to file descriptor 2) go to stdout instead."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        saved = os.dup(2)
        os.dup2(1, 2)
    except OSError:
        saved = None
    try:
        with contextlib.redirect_stderr(sys.stdout):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)


def grade_file(path: Path | str = STUDENT_FILE) -> dict:
    """The grader's result (its ``results/<id>.json`` content) for ``path``, graded once."""
    path = Path(path).absolute()
    key = _file_key(path)
    if key not in _graded:
        if not path.is_file():
            _graded[key] = {"extra_data": {"status": "missing", "parts": {},
                                           "message": f"{path.name} is not in the submission"}, "tests": []}
            return _graded[key]
        with tempfile.TemporaryDirectory(prefix="kit-nbgrader-") as out, _stderr_to_stdout():
            from autograder.grade.batch import grade_batch
            results = grade_batch(path, Path(out) / "grading", jobs=1, progress=False, log=print)
        _graded[key] = results[0]
    return _graded[key]


def part_feedback(result: dict, part_id: str) -> str:
    """The CLI's per-check messages for one part, as the feedback shows them."""
    extra = result.get("extra_data", {})
    lines = []
    if extra.get("status", "ok") != "ok":
        lines.append(f"status: {extra.get('status')}: {extra.get('message', '')}".rstrip(": "))
    for test in result.get("tests", []):
        if test.get("name", "").split(" ", 1)[0] != part_id:
            continue
        lines.append(f"{test['name']}: {test.get('score', 0):g}/{test.get('max_score', 0):g}")
        output = test.get("output", "")
        if output:
            lines.append("  " + output.replace("\n", "\n  "))
    return "\n".join(lines)


def score_part(part_id: str, path: Path | str = STUDENT_FILE) -> float:
    """Print the part's per-check messages and return its points (the test cell's last value)."""
    result = grade_file(path)
    print(part_feedback(result, part_id) or f"{part_id}: no checks ran")
    return float(result.get("extra_data", {}).get("parts", {}).get(part_id, 0.0))
