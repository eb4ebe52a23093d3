"""Stop the notebook before training when a check found a ✗, with one sentence.

Training a model that does not match the table costs minutes and gives numbers
that mean nothing; "Run all" should stop at the check instead, and say what to
fix. A student who wants to train anyway sets ``TRAIN_ANYWAY = True``.
"""
from __future__ import annotations

from autograder.check.report import mismatch_summary

FLAG = "TRAIN_ANYWAY"


class FixBeforeTraining(Exception):
    """Stops "Run all" at a check cell. Jupyter shows only the sentence, no stack
    trace (IPython prints what ``_render_traceback_`` returns instead of one)."""

    def _render_traceback_(self) -> list[str]:
        return [f"\u2717 {self}"]


def places(count: int) -> str:
    return f"{count} place{'s' if count != 1 else ''}"


def stop_before_training(report, subject: str, what_to_fix: str, train_anyway: bool = False) -> None:
    """Raise :class:`FixBeforeTraining` when ``report`` (a :class:`CheckReport`) found a
    problem. With ``train_anyway`` a mismatch only prints a warning; an unfilled blank
    always stops (nothing can be trained without it)."""
    if report.unfinished:
        raise FixBeforeTraining(f"resnet50_skeleton.py is not finished: {report.unfinished[0]}; "
                                "fill it in, save the file and run this cell again.")
    if not report.problems:
        return
    count = len(report.problems)
    if train_anyway:
        print(f"{FLAG} is True, so the notebook goes on although {subject} does not match the "
              f"slide table in {places(count)}: its accuracy is not that of the table's model.")
        return
    raise FixBeforeTraining(
        f"{mismatch_summary(subject, [report], 'the slide table')}; "
        f"{what_to_fix}, save resnet50_skeleton.py and run this cell again, "
        f"or set {FLAG} = True in the Setup cell to train it as it is.")
