"""What a ``grade`` run found wrong in each submission (``--grades DIR``).

``grade`` writes one Gradescope ``results/<id>.json`` per student; each test's
``output`` lists its deductions as ``- ...`` lines (``- note: ...`` lines are
remarks, not mistakes). Two students with the same rare mistake is evidence;
the same check failing with the same text means the same mistake, down to the numbers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from autograder.similarity.extract import SimilarityError


def _deduction_blocks(output: str) -> list[str]:
    """Each ``- `` line with the indented detail lines under it, as one text (numbers kept):
    "state_dict keys do not match the checkpoint:" alone says nothing about which keys."""
    blocks: list[list[str]] = []
    for line in output.splitlines():
        if line.startswith("- "):
            blocks.append([line[2:].strip()])
        elif blocks and line[:1].isspace() and line.strip():
            blocks[-1].append(line.strip())
        elif not line.strip():
            continue
        elif blocks:
            blocks.append([])             # a line that is neither ends the detail
    return [" ".join(block) for block in blocks if block and not block[0].startswith("note:")]


def _deductions(result: dict) -> set[str]:
    """One entry per check that lost points: its name and its deductions in full, so
    that one mistake reported by three checks counts three times, not once per line.
    Checks worth 0 points (a remark, the checkpoint check) are no mistake to share."""
    found = set()
    for test in result.get("tests") or []:
        if not isinstance(test, dict) or not isinstance(test.get("output"), str):
            continue
        if not isinstance(test.get("max_score"), (int, float)) or test["max_score"] <= 0:
            continue
        blocks = sorted(set(_deduction_blocks(test["output"])))
        if blocks:
            found.add(f"{test.get('name', '')}: " + " / ".join(blocks))
    return found


@dataclass
class GradeRun:
    deductions: dict[str, set[str]]     # student -> deductions, for results that match the file on disk
    stale: list[str]                    # students whose file changed since the grade run
    not_ok: int                         # results graded other than normally


def load_deductions(grades: Path, sources: dict[str, bytes] | None = None) -> GradeRun:
    """student -> the deductions of their graded submission. Students the grader
    could not grade normally (status other than ok) are left out: a syntax error
    is not a mistake two students can share by copying. With ``sources`` (student ->
    the bytes on disk now), a result whose ``extra_data.fingerprint`` is not that of
    the file on disk (computed as ``grade`` computes it) is left out too: an older run's grade."""
    results = grades / "results"
    if not results.is_dir():
        raise SimilarityError(f"{grades} is not the output of a grade run (no results/ folder inside)")
    grader = None
    if sources is not None:
        from autograder.grade.batch import RUBRIC_PATH, fingerprint, grader_fingerprint
        grader = grader_fingerprint(RUBRIC_PATH.read_bytes())
    found: dict[str, set[str]] = {}
    stale: list[str] = []
    not_ok, seen = 0, 0
    for path in sorted(results.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            extra = data["extra_data"]
            student, status = extra["student"], extra["status"]
        except (OSError, ValueError, KeyError, TypeError):
            continue        # a half-written or foreign file: that student simply has no grades
        seen += 1
        if status != "ok" or not isinstance(student, str):
            not_ok += 1
            continue
        if sources is not None:
            source = sources.get(student)
            if source is None or extra.get("fingerprint") != fingerprint(grader, source):
                stale.append(student)
                continue
        found[student] = _deductions(data)
    if not seen:
        raise SimilarityError(f"{results} holds no graded results")
    return GradeRun(found, stale, not_ok)
