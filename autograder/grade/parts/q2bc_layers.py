"""Q2b (layer3) and Q2c (layer4): the blocks a stage is built from, and the
stage's output on its own correct-shaped input. Graded with stand-in blocks, so
a wrong Q1 or a wrong stem does not sink these parts."""
from __future__ import annotations

from autograder.grade.observations import field
from autograder.grade.parts import CheckResult, proportional
from autograder.grade.parts.q2_common import grade_blocks, q2_model_error, stage_blocker, stage_function
from autograder.spec import Part, Table

STAGE_OF_PART = {"Q2b": "layer3", "Q2c": "layer4"}


def grade_stage(part: Part, student: dict, reference: dict, table: Table) -> list[CheckResult]:
    stage = table.stage(STAGE_OF_PART[part.id])
    blocks = CheckResult(part.id, "blocks", f"{stage.name}: ResidualBlock arguments, in order",
                         0, part.checks["blocks"])
    function = CheckResult(part.id, "function", f"{stage.name}: output on a correct input "
                           f"({' x '.join(map(str, table.stage_input_size(stage.name)))})",
                           0, part.checks["function"])
    problem = q2_model_error(student) or stage_blocker(student["q2"], stage.name)
    if problem:
        blocks.deductions.append(problem)
        function.deductions.append(problem)
        return [blocks, function]
    q2 = student["q2"]
    children = field(field(q2, "stage_children", dict, {}), stage.name, list, [])
    good, total, deductions, notes = grade_blocks(stage, children)
    blocks.score = proportional(blocks.max_score, good, total)
    blocks.deductions += deductions
    blocks.notes += notes
    problems = stage_function(q2, reference["q2"], stage.name)
    blocked = bool(problems) and problems[0].startswith("not checked")
    function.score = 0 if blocked else proportional(function.max_score, 2 - len(problems), 2)
    function.deductions += problems
    return [blocks, function]
