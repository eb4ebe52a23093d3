"""One module per question: each turns (student report, reference report,
table, rubric) into scored checks. ``grade_report`` runs them all."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CheckResult:
    part: str                 # "Q1a" ... "Q2c"
    check: str                # the rubric's check name, e.g. "structure"
    title: str                # what is checked, for people
    score: float
    max_score: float
    deductions: list[str] = field(default_factory=list)   # what lost points, one per line
    notes: list[str] = field(default_factory=list)        # full-credit remarks

    @property
    def name(self) -> str:
        return f"{self.part} {self.title}"


def proportional(points: float, good: int, total: int) -> float:
    """``points`` scaled by good/total, rounded to hundredths (stable across runs)."""
    if total <= 0:
        return 0.0
    return round(points * max(0, good) / total, 2)
