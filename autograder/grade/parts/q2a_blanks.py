"""Q2a: the 25 one-point blanks of ResNet50_layer4 (num_classes default, the stem,
layer2's blocks, fc, avgpool), what the stem computes, and how forward() wires
the stages. Graded with stand-in blocks, so Q1 does not matter; layer3 and
layer4 (Q2b, Q2c) do not either: forward() is checked with a stand-in of the
table's sizes in place of every stage."""
from __future__ import annotations

from autograder.grade.observations import error_text, field
from autograder.grade.parts import CheckResult, proportional
from autograder.grade.parts.q1_residual_block import compare_outputs
from autograder.grade.parts.q2_common import (grade_blocks, init_stopped_text, open_blank_of, q2_model_error,
                                              stage_blocker, stage_function)
from autograder.spec import Part, Table

STEM_DETAILS = ("dilation", "groups", "bias")
BATCHNORM_SETTINGS = ("eps", "momentum", "affine", "track_running_stats")
# forward() is given code: its points come once Q2a's own stages are in place.
Q2A_STAGES = ("layer1", "layer2", "avgpool", "fc")


def _first(children: list, kind: str) -> tuple[int, dict] | tuple[None, None]:
    for i, child in enumerate(children):
        if isinstance(child, dict) and child.get("type") == kind:
            return i, child
    return None, None


def _arg_checks(result: CheckResult, where: str, found: dict | None, wanted: dict, kind: str) -> None:
    """One point-share per argument; a deduction sentence per wrong one."""
    if found is None:
        result.deductions.append(f"{where}: the table expects a {kind}; found none")
        return
    if open_blank_of(found):
        result.deductions.append(f"not checked: {open_blank_of(found)}")
        return
    good = 0
    for name, value in wanted.items():
        got = found.get(name)
        if got == value:
            good += 1
        else:
            result.deductions.append(f"{where}.{name}: the table expects {_short(value)}, found {_short(got)}")
    result.score = proportional(result.max_score, good, len(wanted))


def _short(value):
    if isinstance(value, list) and len(value) == 2 and value[0] == value[1]:
        return value[0]
    return value


def grade_q2a(part: Part, student: dict, reference: dict, table: Table) -> list[CheckResult]:
    c = part.checks
    results = {
        "num_classes_default": CheckResult(part.id, "num_classes_default", "default num_classes", 0, c["num_classes_default"]),
        "stem_conv": CheckResult(part.id, "stem_conv", "layer1 Conv2d arguments", 0, c["stem_conv"]),
        "stem_maxpool": CheckResult(part.id, "stem_maxpool", "layer1 MaxPool2d arguments", 0, c["stem_maxpool"]),
        "stem_function": CheckResult(part.id, "stem_function", "layer1 output on a correct image, "
                                     "reference weights, eval and train mode", 0, c["stem_function"]),
        "layer2_blocks": CheckResult(part.id, "layer2_blocks", "layer2 ResidualBlock arguments", 0, c["layer2_blocks"]),
        "fc": CheckResult(part.id, "fc", "fc Linear arguments", 0, c["fc"]),
        "avgpool": CheckResult(part.id, "avgpool", "avgpool AvgPool2d arguments", 0, c["avgpool"]),
        "forward": CheckResult(part.id, "forward", "forward(): the stages in order, avgpool, flatten, fc",
                               0, c["forward"]),
    }
    problem = q2_model_error(student)
    q2 = field(student, "q2", dict, {}) or {}
    # The default is read from the signature, even when the model cannot be built.
    default = q2.get("num_classes_default")
    nc = results["num_classes_default"]
    if isinstance(q2.get("num_classes_default_blank"), str):
        nc.deductions.append(f"not checked: {q2['num_classes_default_blank'][:300]}")
    elif default == table.num_classes and not isinstance(default, bool):
        nc.score = nc.max_score
    else:
        nc.deductions.append(f"ResNet50_layer4(num_classes=...): the default should be "
                             f"{table.num_classes} (CIFAR-10 classes), found {default}")
    if problem:
        for key, r in results.items():
            if key != "num_classes_default":
                r.deductions.append(problem)
        return list(results.values())

    stage_children = field(q2, "stage_children", dict, {})
    stem = table.stage("layer1")
    stem_blocker = stage_blocker(q2, "layer1")
    if stem_blocker:
        results["stem_conv"].deductions.append(stem_blocker)
        results["stem_maxpool"].deductions.append(stem_blocker)
    else:
        children = field(stage_children, "layer1", list, [])
        conv_spec = next(m for m in stem.modules if m["type"] == "Conv2d")
        pool_spec = next(m for m in stem.modules if m["type"] == "MaxPool2d")
        i, conv = _first(children, "Conv2d")
        _arg_checks(results["stem_conv"], f"layer1[{i}]", conv, {
            "in_channels": conv_spec["in_channels"], "out_channels": conv_spec["out_channels"],
            "kernel_size": [conv_spec["kernel_size"]] * 2, "stride": [conv_spec["stride"]] * 2,
            "padding": [conv_spec["padding"]] * 2}, "Conv2d")
        i, pool = _first(children, "MaxPool2d")
        _arg_checks(results["stem_maxpool"], f"layer1[{i}]", pool, {
            "kernel_size": [pool_spec["kernel_size"]] * 2, "stride": [pool_spec["stride"]] * 2,
            "padding": [pool_spec["padding"]] * 2}, "MaxPool2d")
    grade_stem_function(results["stem_function"], q2, reference["q2"])

    layer2_blocker = stage_blocker(q2, "layer2")
    if layer2_blocker:
        results["layer2_blocks"].deductions.append(layer2_blocker)
    else:
        layer2 = field(stage_children, "layer2", list, [])
        good, total, deductions, notes = grade_blocks(table.stage("layer2"), layer2)
        results["layer2_blocks"].score = proportional(results["layer2_blocks"].max_score, good, total)
        results["layer2_blocks"].deductions += deductions
        results["layer2_blocks"].notes += notes

    modules = field(q2, "modules", dict, {})
    fc_spec = table.stage("fc").layer
    fc_blocker = stage_blocker(q2, "fc")
    if fc_blocker:
        results["fc"].deductions.append(fc_blocker)
    else:
        fc = modules.get("fc") if isinstance(modules.get("fc"), dict) else None
        if fc is not None and fc.get("type") != "Linear":
            fc = None
        _arg_checks(results["fc"], "fc", fc, {"in_features": fc_spec["in_features"],
                                              "out_features": fc_spec["out_features"]}, "Linear")

    grade_avgpool(results["avgpool"], q2, reference, table)
    grade_forward(results["forward"], q2, reference["q2"])
    return list(results.values())


def grade_avgpool(avg: CheckResult, q2: dict, reference: dict, table: Table) -> None:
    blocker = stage_blocker(q2, "avgpool")
    if blocker:
        avg.deductions.append(blocker)
        return
    modules = field(q2, "modules", dict, {})
    pool_spec = table.stage("avgpool").layer
    found = modules.get("avgpool") if isinstance(modules.get("avgpool"), dict) else None
    wanted = {"kernel_size": [pool_spec["kernel_size"]] * 2, "stride": [pool_spec["stride"]] * 2}
    if found is not None and found.get("type") == "AvgPool2d" and \
            all(found.get(k) == v for k, v in wanted.items()):
        avg.score = avg.max_score
    elif found is not None and not stage_function(q2, reference["q2"], "avgpool"):
        # The table fixes only the 1x1 result: on a 2x2 map other choices compute the same.
        avg.score = avg.max_score
        avg.notes.append(f"avgpool: {found.get('type')} with {_describe_pool(found)} gives the same "
                         f"1x1 average on the 2x2 map as the table's AvgPool2d(2, 2): full credit")
    else:
        _arg_checks(avg, "avgpool", found if found and found.get("type") == "AvgPool2d" else None,
                    wanted, "AvgPool2d")


def grade_stem_function(result: CheckResult, q2: dict, reference_q2: dict) -> None:
    """layer1 on a correct image under the reference's layer1 weights: sees what
    the argument checks cannot (dilation, a missing BatchNorm or ReLU, bias)."""
    problems = stage_function(q2, reference_q2, "layer1")
    if problems and problems[0].startswith("not checked"):
        result.deductions += problems
        return
    result.score = proportional(result.max_score, 2 - len(problems), 2)
    result.deductions += problems
    if problems:
        result.deductions += stem_differences(q2, reference_q2)


def stem_differences(q2: dict, reference_q2: dict) -> list[str]:
    """What in the stem differs from the reference's, to explain wrong outputs."""
    got = [c for c in field(field(q2, "stage_children", dict, {}), "layer1", list, []) if isinstance(c, dict)]
    want = reference_q2["stage_children"]["layer1"]
    found = []
    got_types, want_types = [str(c.get("type"))[:40] for c in got], [c.get("type") for c in want]
    if got_types != want_types:
        shown = ", ".join(got_types[:8]) + (", ..." if len(got_types) > 8 else "")
        found.append(f"layer1 holds {shown or 'nothing'}; the table's stem is {', '.join(want_types)}")
    for kind, keys in (("Conv2d", STEM_DETAILS), ("BatchNorm2d", BATCHNORM_SETTINGS)):
        _, mine = _first(got, kind)
        _, theirs = _first(want, kind)
        if mine and theirs:
            changed = [f"{k}={str(_short(mine.get(k)))[:40]}" for k in keys if mine.get(k) != theirs.get(k)]
            if changed:
                found.append(f"layer1's {kind} has {', '.join(changed)} (the reference: "
                             f"{', '.join(f'{k}={_short(theirs.get(k))}' for k in keys)})")
    return found


def grade_forward(result: CheckResult, q2: dict, reference_q2: dict) -> None:
    """The student's forward() with a stand-in of the table's sizes in place of
    each stage, against the reference's forward() run the same way. A forward()
    written differently that computes the same whole model (stand-in blocks,
    reference layer1/fc weights) gets full credit with a note."""
    for stage in Q2A_STAGES:
        blocker = stage_blocker(q2, stage, any_child=True)
        if blocker:
            result.deductions.append(f"{blocker} (forward() is graded once layer1, layer2, avgpool "
                                     f"and fc are in place)")
            return
    stopped = init_stopped_text(q2)
    if stopped:
        # Every stage was built, yet ResNet50_layer4() raises: the model cannot run.
        result.deductions.append(f"not checked: {stopped}, so the model cannot be built and forward() "
                                 f"cannot run")
        return
    wiring = field(q2, "wiring", dict, None)
    if wiring is None:
        result.deductions.append("forward() was not run (the report has no result for it)")
        return
    problem = compare_outputs(field(wiring, "eval", dict), reference_q2["wiring"]["eval"])
    if problem is None:
        result.score = result.max_score
        return
    whole = field(field(q2, "stage_outputs", dict, {}), "model", dict, {})
    if not whole.get("missing") and all(
            compare_outputs(field(whole, mode, dict), reference_q2["stage_outputs"]["model"][mode]) is None
            for mode in ("eval", "train")):
        result.score = result.max_score
        result.notes.append("forward() does not call the stages the way the given forward() does, yet the "
                            "whole model computes the reference's output: full credit")
        return
    result.deductions.append(f"with a stand-in of the table's sizes in place of each stage (layer1 ... fc), "
                             f"your forward() and the reference's disagree: {problem}")
    result.deductions.append("forward() should run layer1, layer2, layer3, layer4, self.avgpool, flatten, "
                             "then fc, and return fc's output")


def _describe_pool(found: dict) -> str:
    keys = [k for k in ("kernel_size", "stride", "padding", "output_size") if k in found]
    return ", ".join(f"{k}={_short(found[k])}" for k in keys)
