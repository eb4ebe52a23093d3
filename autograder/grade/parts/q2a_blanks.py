"""Q2a: the 25 one-point blanks of ResNet50_layer4 (num_classes default, the stem,
layer2's blocks, fc, avgpool), what the stem and layer2 compute, and how forward()
wires the stages. Graded with stand-in blocks, so Q1 does not matter; layer3 and
layer4 (Q2b, Q2c) do not either: forward() is checked with a stand-in of the
table's sizes in place of every stage. avgpool and fc are checked by their
arguments and by their outputs (fc under the reference's fc weights), fc also
in a model built with another num_classes."""
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
        "layer2_function": CheckResult(part.id, "layer2_function", "layer2 output on a correct layer2 input "
                                       "(stand-in blocks), eval and train mode", 0, c["layer2_function"]),
        "fc": CheckResult(part.id, "fc", "fc Linear arguments and output (reference fc weights; "
                          "also built with num_classes=7)", 0, c["fc"]),
        "avgpool": CheckResult(part.id, "avgpool", "avgpool AvgPool2d arguments and output", 0, c["avgpool"]),
        "forward": CheckResult(part.id, "forward", "forward(): the stages in order, avgpool, flatten, fc "
                               "(a batch of 2 and a batch of 1)", 0, c["forward"]),
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
    grade_function(results["layer2_function"], q2, reference["q2"], "layer2")

    grade_fc(results["fc"], q2, reference, table)
    grade_avgpool(results["avgpool"], q2, reference, table)
    grade_forward(results["forward"], q2, reference["q2"])
    return list(results.values())


def _stage_module(q2: dict, stage: str, kind: str) -> dict | None:
    modules = field(q2, "modules", dict, {})
    found = modules.get(stage) if isinstance(modules.get(stage), dict) else None
    return found if found is not None and found.get("type") == kind else None


def grade_fc(result: CheckResult, q2: dict, reference: dict, table: Table) -> None:
    """fc's two arguments, its output on a correct input under the reference's fc
    weights (a missing bias, a softmax inside a subclass), and its output size in
    a model built with num_classes=7 (a hard-coded 10): one share each."""
    blocker = stage_blocker(q2, "fc")
    if blocker:
        result.deductions.append(blocker)
        return
    fc_spec = table.stage("fc").layer
    scratch = CheckResult(result.part, result.check, result.title, 0, 2)
    _arg_checks(scratch, "fc", _stage_module(q2, "fc", "Linear"),
                {"in_features": fc_spec["in_features"], "out_features": fc_spec["out_features"]}, "Linear")
    good = round(scratch.score)
    result.deductions += scratch.deductions
    problems = stage_function(q2, reference["q2"], "fc")
    if problems:
        result.deductions += [p.replace("fc on a correct fc input", "fc on a correct fc input with the "
                                        "reference's fc weights") for p in problems]
    else:
        good += 1
    other = field(q2, "other_num_classes", dict, {})
    n = field(other, "num_classes", int, 7)
    size = field(other, "output_size", list, None)
    other_fc = field(other, "fc", dict, {})
    total = 4
    if size == [n] or (other_fc.get("type") == "Linear" and other_fc.get("out_features") == n):
        good += 1   # a Linear of the right size that fails on the input lost the output share above
    elif "error" in other and init_stopped_text(q2):
        total = 3   # the same stop as the num_classes=10 model, reported there
    elif "error" in other:
        result.deductions.append(f"ResNet50_layer4(num_classes={n}) could not be built or its fc not run: "
                                 f"{error_text(field(other, 'error', dict))}")
    else:
        result.deductions.append(f"ResNet50_layer4(num_classes={n}): fc gives {size} outputs per image, not "
                                 f"[{n}]; fc must use the num_classes argument")
    result.score = proportional(result.max_score, good, total)


def grade_avgpool(avg: CheckResult, q2: dict, reference: dict, table: Table) -> None:
    """The arguments and the output on a correct avgpool input together: other
    arguments that compute the table's 1x1 average get full credit with a note;
    a pool that computes something else (a max inside an AvgPool2d subclass)
    loses the output's share however its arguments read."""
    blocker = stage_blocker(q2, "avgpool")
    if blocker:
        avg.deductions.append(blocker)
        return
    modules = field(q2, "modules", dict, {})
    pool_spec = table.stage("avgpool").layer
    found = modules.get("avgpool") if isinstance(modules.get("avgpool"), dict) else None
    wanted = {"kernel_size": [pool_spec["kernel_size"]] * 2, "stride": [pool_spec["stride"]] * 2}
    problems = stage_function(q2, reference["q2"], "avgpool")
    args_ok = found is not None and found.get("type") == "AvgPool2d" and \
        all(found.get(k) == v for k, v in wanted.items())
    if not problems:
        avg.score = avg.max_score
        if not args_ok and found is not None:
            # The table fixes only the 1x1 result: on a 2x2 map other choices compute the same.
            avg.notes.append(f"avgpool: {found.get('type')} with {_describe_pool(found)} gives the same "
                             f"1x1 average on the 2x2 map as the table's AvgPool2d(2, 2): full credit")
        return
    scratch = CheckResult(avg.part, avg.check, avg.title, 0, 2)
    _arg_checks(scratch, "avgpool", found if found and found.get("type") == "AvgPool2d" else None,
                wanted, "AvgPool2d")
    avg.deductions += scratch.deductions + problems
    avg.score = proportional(avg.max_score, round(scratch.score), 3)


def grade_function(result: CheckResult, q2: dict, reference_q2: dict, stage: str) -> None:
    """A stage on a correct input of its own (layer1 under the reference's
    weights; layer2 with stand-in blocks), eval and train mode."""
    problems = stage_function(q2, reference_q2, stage)
    if problems and problems[0].startswith("not checked"):
        result.deductions += problems
        return
    result.score = proportional(result.max_score, 2 - len(problems), 2)
    result.deductions += problems


def grade_stem_function(result: CheckResult, q2: dict, reference_q2: dict) -> None:
    """layer1 on a correct image under the reference's layer1 weights: sees what
    the argument checks cannot (dilation, a missing BatchNorm or ReLU, bias)."""
    grade_function(result, q2, reference_q2, "layer1")
    if result.score < result.max_score and not any(d.startswith("not checked") for d in result.deductions):
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
    each stage, against the reference's forward() run the same way, on a batch
    of 2 and a batch of 1 (``out.squeeze()`` is wrong only there). A forward()
    written differently that computes the same whole model (stand-in blocks,
    reference layer1/fc weights) on both batches gets full credit with a note."""
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
    for stage in ("layer3", "layer4"):
        blocker = stage_blocker(q2, stage, any_child=True)
        if blocker:
            result.notes.append(f"forward() was checked with a stand-in for {stage}, which is not filled in yet"
                                if "not filled in" in blocker else
                                f"forward() was checked with a stand-in for {stage} ({blocker})")
    problems = []
    for key, words in (("eval", "a batch of 2"), ("single", "a batch of 1")):
        problem = compare_outputs(field(wiring, key, dict, {}), reference_q2["wiring"][key])
        if problem:
            problems.append((key, words, problem))
    if not problems:
        result.score = result.max_score
        return
    whole = field(field(q2, "stage_outputs", dict, {}), "model", dict, {})
    if not whole.get("missing") and all(
            compare_outputs(field(whole, mode, dict, {}), reference_q2["stage_outputs"]["model"][mode]) is None
            for mode in ("eval", "train", "single")):
        result.score = result.max_score
        result.notes.append("forward() does not call the stages the way the given forward() does, yet the "
                            "whole model computes the reference's output: full credit")
        return
    for _, words, problem in problems:
        result.deductions.append(f"with a stand-in of the table's sizes in place of each stage (layer1 ... fc), "
                                 f"on {words}, your forward() and the reference's disagree: {problem}")
    if [key for key, _, _ in problems] == ["single"]:
        result.deductions.append("forward() must keep the batch dimension for a batch of one image too: "
                                 "flatten with out.view(out.size(0), -1) or torch.flatten(out, 1), not squeeze()")
    else:
        result.deductions.append("forward() should run layer1, layer2, layer3, layer4, self.avgpool, flatten, "
                                 "then fc, and return fc's output")


def _describe_pool(found: dict) -> str:
    keys = [k for k in ("kernel_size", "stride", "padding", "output_size") if k in found]
    return ", ".join(f"{k}={_short(found[k])}" for k in keys)
