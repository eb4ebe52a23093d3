"""What a ``grade`` run found wrong in each submission (``--grades DIR``).

``grade`` writes one Gradescope ``results/<id>.json`` per student; each test's
``output`` lists its deductions as ``- ...`` lines (``- note: ...`` lines are
remarks, not mistakes). Two students with the same rare mistake is evidence;
the same check failing with the same text means the same mistake, down to the numbers.
"""
from __future__ import annotations

import json
from pathlib import Path

from autograder.similarity.extract import SimilarityError


def _deductions(result: dict) -> set[str]:
    """One entry per check that lost points: its name and its deduction lines, so
    that one mistake reported by three checks counts three times, not once per line."""
    found = set()
    for test in result.get("tests") or []:
        if not isinstance(test, dict) or not isinstance(test.get("output"), str):
            continue
        lines = sorted({line[2:].strip() for line in test["output"].splitlines()
                        if line.startswith("- ") and not line.startswith("- note:")})
        if lines:
            found.add(f"{test.get('name', '')}: " + " / ".join(lines))
    return found


def load_deductions(grades: Path) -> dict[str, set[str]]:
    """student -> the deductions of their graded submission. Students the grader
    could not grade normally (status other than ok) are left out: a syntax error
    is not a mistake two students can share by copying."""
    results = grades / "results"
    if not results.is_dir():
        raise SimilarityError(f"{grades} is not the output of a grade run (no results/ folder inside)")
    found: dict[str, set[str]] = {}
    for path in sorted(results.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            extra = data["extra_data"]
            student, status = extra["student"], extra["status"]
        except (OSError, ValueError, KeyError, TypeError):
            continue        # a half-written or foreign file: that student simply has no grades
        if status == "ok" and isinstance(student, str):
            found[student] = _deductions(data)
    if not found:
        raise SimilarityError(f"{results} holds no graded results")
    return found
