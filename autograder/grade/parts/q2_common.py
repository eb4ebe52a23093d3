"""Shared reading of the Q2 report (the model built with stand-in blocks)."""
from __future__ import annotations

from autograder.grade.observations import error_text, field
from autograder.grade.parts.q1_residual_block import compare_outputs
from autograder.spec import BlockSpec, StageSpec

ARGS = ("in_channels", "middle_channels", "out_channels", "downsample")


def q2_model_error(student: dict) -> str | None:
    """Why the Q2 model could not be examined, or None."""
    q2 = field(student, "q2", dict, None)
    if q2 is None:
        return "resnet50_skeleton.py defines no ResNet50_layer4 class"
    if "error" in q2:
        return f"ResNet50_layer4() could not be built: {error_text(q2['error'])}"
    return None


def found_block_text(child: dict) -> str:
    if child.get("type") != "RecordingBlock":
        return f"a {child.get('type')} module"
    args = field(child, "args", dict)
    shown = [f"{args.get(n)!s}" for n in ARGS[:3]]
    return f"ResidualBlock({', '.join(shown)}, downsample={args.get('downsample')})"


def grade_blocks(stage: StageSpec, children: list) -> tuple[int, int, list[str]]:
    """Arguments of a stage's blocks against the table, position by position.

    Returns (correct arguments, arguments in the table, deductions). A block too
    many costs as much as a wrong block.
    """
    total = 4 * len(stage.blocks)
    correct, deductions = 0, []
    for i, want in enumerate(stage.blocks):
        where = f"{stage.name}[{i}]"
        if i >= len(children):
            deductions.append(f"{where}: the table expects {want.describe()}; your {stage.name} "
                              f"has only {len(children)} block(s)")
            continue
        child = children[i]
        if not isinstance(child, dict) or child.get("type") != "RecordingBlock":
            deductions.append(f"{where}: the table expects {want.describe()}; found "
                              f"{found_block_text(child) if isinstance(child, dict) else 'something else'}")
            continue
        args = field(child, "args", dict)
        wrong = [n for n, v in zip(ARGS, want.args) if args.get(n) != v or type(args.get(n)) is not type(v)]
        correct += 4 - len(wrong)
        if wrong:
            deductions.append(f"{where}: the table expects {want.describe()} ({slide_hint(stage, want)}); "
                              f"found {found_block_text(child)} -- wrong: {', '.join(wrong)}")
    extra = len(children) - len(stage.blocks)
    if extra > 0:
        correct -= 4 * extra
        deductions.append(f"{stage.name}: {extra} block(s) more than the table's {len(stage.blocks)}")
    return max(0, correct), total, deductions


def slide_hint(stage: StageSpec, block: BlockSpec) -> str:
    stride = ", stride 2 on the first 1x1" if block.downsample else ""
    return (f"{stage.slide_row}: 1x1 conv {block.middle_channels}{stride}, 3x3 conv "
            f"{block.middle_channels}, 1x1 conv {block.out_channels}")


def stage_function(q2: dict, reference_q2: dict, stage: str) -> list[str]:
    """Problems with one stage's outputs on its own correct-shaped input."""
    outputs = field(q2, "stage_outputs", dict, {})
    got = field(outputs, stage, dict, {"missing": True})
    if got.get("missing"):
        return [f"{stage}: the model has no module named {stage}"]
    problems = []
    for mode in ("eval", "train"):
        problem = compare_outputs(field(got, mode, dict), reference_q2["stage_outputs"][stage][mode])
        if problem:
            problems.append(f"{stage} on a correct {stage} input, {mode} mode: {problem}")
    return problems
