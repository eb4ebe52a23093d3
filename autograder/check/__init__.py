"""Public checks of a ResNet50_layer4 against the slide table.

Safe to ship to students (no solution inside) and used in three places: the
notebook's sanity-check cell, ``python -m autograder table``, and -- for the
observation half only (``describe``) -- the grader's sandboxed probe.
"""
from autograder.check.describe import count_parameters, key_diff, observe_sizes
from autograder.check.report import format_key_diff, sanity_report, stage_rows

__all__ = [
    "count_parameters", "key_diff", "observe_sizes",
    "format_key_diff", "sanity_report", "stage_rows",
]
