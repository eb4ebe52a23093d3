"""Q2a: the 25 one-point blanks of ResNet50_layer4 (num_classes default, the stem,
layer2's blocks, fc, avgpool). Graded with stand-in blocks, so Q1 does not matter."""
from __future__ import annotations

from autograder.grade.observations import field
from autograder.grade.parts import CheckResult, proportional
from autograder.grade.parts.q2_common import grade_blocks, q2_model_error, stage_function
from autograder.spec import Part, Table


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
        "layer2_blocks": CheckResult(part.id, "layer2_blocks", "layer2 ResidualBlock arguments", 0, c["layer2_blocks"]),
        "fc": CheckResult(part.id, "fc", "fc Linear arguments", 0, c["fc"]),
        "avgpool": CheckResult(part.id, "avgpool", "avgpool AvgPool2d arguments", 0, c["avgpool"]),
    }
    problem = q2_model_error(student)
    q2 = field(student, "q2", dict, {}) or {}
    # The default is read from the signature, even when the model cannot be built.
    default = q2.get("num_classes_default")
    nc = results["num_classes_default"]
    if default == table.num_classes and not isinstance(default, bool):
        nc.score = nc.max_score
    else:
        nc.deductions.append(f"ResNet50_layer4(num_classes=...): the default should be "
                             f"{table.num_classes} (CIFAR-10 classes), found {default}")
    if problem:
        for key, r in results.items():
            if key != "num_classes_default":
                r.deductions.append(problem)
        return list(results.values())

    stem = table.stage("layer1")
    children = field(field(q2, "stage_children", dict, {}), "layer1", list, [])
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

    layer2 = field(field(q2, "stage_children", dict, {}), "layer2", list, [])
    good, total, deductions = grade_blocks(table.stage("layer2"), layer2)
    results["layer2_blocks"].score = proportional(results["layer2_blocks"].max_score, good, total)
    results["layer2_blocks"].deductions += deductions

    modules = field(q2, "modules", dict, {})
    fc_spec = table.stage("fc").layer
    fc = modules.get("fc") if isinstance(modules.get("fc"), dict) else None
    if fc is not None and fc.get("type") != "Linear":
        fc = None
    _arg_checks(results["fc"], "fc", fc, {"in_features": fc_spec["in_features"],
                                          "out_features": fc_spec["out_features"]}, "Linear")

    pool_spec = table.stage("avgpool").layer
    avg = results["avgpool"]
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
    return list(results.values())


def _describe_pool(found: dict) -> str:
    keys = [k for k in ("kernel_size", "stride", "padding", "output_size") if k in found]
    return ", ".join(f"{k}={_short(found[k])}" for k in keys)
