"""Public checks of a ResNet50_layer4 and its ResidualBlock against the slide table.

Safe to ship to students (no solution inside, and only the public table
``autograder.spec.public`` is read). Used by the notebook's check cells, by
``python -m autograder table``, and -- for the observation half only
(``describe``) -- by the grader's sandboxed probe.

* :mod:`describe`       -- observe a model: output sizes, parameter counts, key diffs;
* :mod:`residual_block` -- Q1: ResidualBlock in both modes, unit by unit;
* :mod:`report`         -- Q2: the whole model, stage by stage and block by block;
* :mod:`gate`           -- stop the notebook before training when something does not match.
"""
from autograder.check.describe import count_parameters, key_diff, observe_sizes
from autograder.check.gate import FixBeforeTraining, stop_before_training
from autograder.check.report import CheckReport, check_model, format_key_diff, mismatch_summary, sanity_report
from autograder.check.residual_block import check_residual_block

__all__ = [
    "count_parameters", "key_diff", "observe_sizes",
    "FixBeforeTraining", "stop_before_training",
    "CheckReport", "check_model", "format_key_diff", "mismatch_summary", "sanity_report",
    "check_residual_block",
]
