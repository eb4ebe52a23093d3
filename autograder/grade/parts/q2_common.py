"""Shared reading of the Q2 report (the model built with stand-in blocks).

A check that cannot run -- its stage is a blank still open, or ``__init__``
stopped before building it -- says "not checked: ..." with the blocker, and
never grades the placeholder as if the student had written it.
"""
from __future__ import annotations

from autograder.grade.observations import error_text, field, text
from autograder.grade.parts.q1_residual_block import compare_outputs
from autograder.spec import BlockSpec, StageSpec

ARGS = ("in_channels", "middle_channels", "out_channels", "downsample")


def q2_model_error(student: dict) -> str | None:
    """Why the Q2 model could not be examined at all, or None."""
    q2 = field(student, "q2", dict, None)
    if q2 is None:
        return "resnet50_skeleton.py defines no ResNet50_layer4 class"
    if "error" in q2:
        return f"ResNet50_layer4() could not be built{stand_in_words(q2)}: {error_text(field(q2, 'error', dict))}"
    return None


def stand_in_words(q2: dict) -> str:
    """Said when the model builds with the student's own blocks and fails only
    with the grader's stand-ins (which record arguments and have no layers)."""
    if field(q2, "stand_in_only", bool, False):
        return (" with the grader's stand-in blocks in place of your ResidualBlock (with your own blocks "
                "it builds; the stand-ins carry your block's attributes but none of its methods)")
    return ""


def init_stopped_text(q2: dict) -> str | None:
    """'ResNet50_layer4.__init__ stopped at line 142 (NameError: ...)', or None."""
    error = field(q2, "init_error", dict, None)
    if error is None:
        return None
    line = field(error, "line", (int, type(None)), None)
    message = text(error, "message")
    kind = text(error, "type", "Error") or "Error"
    at = f" at line {line}" if line is not None else ""
    at += stand_in_words(q2)
    return f"ResNet50_layer4.__init__ stopped{at} ({kind}: {message})" if message else \
        f"ResNet50_layer4.__init__ stopped{at} ({kind})"


def open_blank_of(info) -> str | None:
    if isinstance(info, dict) and isinstance(info.get("open_blank"), str):
        return info["open_blank"][:300]
    return None


def stage_blocker(q2: dict, stage: str, any_child: bool = False) -> str | None:
    """Why a stage cannot be graded: "not checked: ..." -- or None when it can
    (a stage that is simply absent, with no error to blame, is the student's).
    With ``any_child``, a blank left open in any of its modules blocks it too
    (its function cannot be right); without, only a stage that is a blank."""
    modules = field(q2, "modules", dict, {})
    if stage not in modules:
        stopped = init_stopped_text(q2)
        return f"not checked: {stopped} before {stage} was built" if stopped else None
    blank = open_blank_of(modules.get(stage))
    if blank:
        return f"not checked: {blank}"
    children = field(field(q2, "stage_children", dict, {}), stage, list, []) if stage.startswith("layer") else []
    for child in children:
        if isinstance(child, dict) and (any_child or child.get("type") == "OpenBlank") and open_blank_of(child):
            return f"not checked: {open_blank_of(child)}"
    return None


def found_block_text(child: dict) -> str:
    if child.get("type") != "RecordingBlock":
        return f"a {child.get('type')} module"
    args = field(child, "args", dict)
    shown = [f"{args.get(n)!s}" for n in ARGS[:3]]
    return f"ResidualBlock({', '.join(shown)}, downsample={args.get('downsample')})"


def same_value(got, want) -> bool:
    """A flag counts by its value (downsample=1 is True, 0 is False: ``if
    downsample:`` reads them alike); a channel count must be an int (nn.Conv2d
    refuses 64.0)."""
    if isinstance(want, bool):
        return isinstance(got, (bool, int, float)) and got == want
    return isinstance(got, int) and not isinstance(got, bool) and got == want


def grade_blocks(stage: StageSpec, children: list) -> tuple[int, int, list[str], list[str]]:
    """Arguments of a stage's blocks against the table, position by position.

    Returns (correct arguments, arguments in the table, deductions, notes). A
    block too many costs as much as a wrong block; so does a position filled
    with a block object already used at another position.
    """
    total = 4 * len(stage.blocks)
    correct, deductions, notes = 0, [], []
    repeats: dict[int, list[int]] = {}
    for i, child in enumerate(children):
        first = child.get("same_as") if isinstance(child, dict) else None
        if isinstance(first, int) and not isinstance(first, bool) and 0 <= first < i:
            repeats.setdefault(first, [first]).append(i)
    repeated = {i for positions in repeats.values() for i in positions[1:]}
    retyped: dict[str, list[str]] = {}   # "downsample=1 counts as True" -> where
    for first, positions in repeats.items():
        shown = ", ".join(f"{stage.name}[{i}]" for i in positions)
        deductions.append(f"{stage.name}: the same block object is used {len(positions)} times ({shown}); "
                          f"each position needs a ResidualBlock(...) of its own, or those blocks share "
                          f"their weights")
    for i, want in enumerate(stage.blocks):
        where = f"{stage.name}[{i}]"
        if i >= len(children):
            deductions.append(f"{where}: the table expects {want.describe()}; your {stage.name} "
                              f"has only {len(children)} block(s)")
            continue
        if i in repeated:
            continue
        child = children[i]
        if not isinstance(child, dict) or child.get("type") != "RecordingBlock":
            deductions.append(f"{where}: the table expects {want.describe()}; found "
                              f"{found_block_text(child) if isinstance(child, dict) else 'something else'}")
            continue
        if open_blank_of(child):
            deductions.append(f"not checked: {open_blank_of(child)}")
            continue
        args = field(child, "args", dict)
        wrong = [n for n, v in zip(ARGS, want.args) if not same_value(args.get(n), v)]
        correct += 4 - len(wrong)
        if wrong:
            deductions.append(f"{where}: the table expects {want.describe()} ({slide_hint(stage, want)}); "
                              f"found {found_block_text(child)} -- wrong: {', '.join(wrong)}")
        for n, v in zip(ARGS, want.args):
            if n not in wrong and type(args.get(n)) is not type(v):
                retyped.setdefault(f"{n}={repr(args.get(n))[:60]} counts as {v!r}", []).append(where)
    notes += [f"{', '.join(places)}: {text}, the value the table gives: full credit"
              for text, places in retyped.items()]
    extra = len(children) - len(stage.blocks)
    if extra > 0:
        correct -= 4 * extra
        deductions.append(f"{stage.name}: {extra} block(s) more than the table's {len(stage.blocks)}")
    return max(0, correct), total, deductions, notes


def slide_hint(stage: StageSpec, block: BlockSpec) -> str:
    stride = ", stride 2 on the first 1x1" if block.downsample else ""
    return (f"{stage.slide_row}: 1x1 conv {block.middle_channels}{stride}, 3x3 conv "
            f"{block.middle_channels}, 1x1 conv {block.out_channels}")


def stage_function(q2: dict, reference_q2: dict, stage: str) -> list[str]:
    """Problems with one stage's outputs on its own correct-shaped input."""
    blocker = stage_blocker(q2, stage, any_child=True)
    if blocker:
        return [blocker]
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
