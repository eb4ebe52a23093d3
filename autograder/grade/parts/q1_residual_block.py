"""Q1a (downsample branch) and Q1b (plain branch) of ResidualBlock.

Each branch is built for two cases (one from the table, one with other widths),
and checked three ways: the conv units of ``self.layer`` against the table's
bottleneck (structure), the block's state_dict against the reference (keys,
shapes, parameter count), and its outputs with the reference weights loaded,
in eval and train mode (function -- the only check that sees a stride on the
3x3 instead of the first 1x1, or a ReLU after the addition).
"""
from __future__ import annotations

import numpy as np

from autograder.check.report import format_key_diff
from autograder.grade.expectations import BLOCK_CASES, BlockCase
from autograder.check.describe import shape_diff
from autograder.grade.observations import decode_array, error_text, field, shapes_field
from autograder.grade.parts import CheckResult, proportional
from autograder.spec import BlockSpec, Part, Table

RTOL, ATOL = 1e-4, 1e-5
BRANCH = {"Q1a": "downsample branch", "Q1b": "plain branch"}


def block_name(case: BlockCase) -> str:
    a, m, o, d = case.args
    return f"ResidualBlock({a}, {m}, {o}, downsample={d})"


def conv_text(conv: dict) -> str:
    def one(v):
        return v[0] if isinstance(v, list) and len(v) == 2 and v[0] == v[1] else v
    return (f"{one(conv.get('kernel_size'))}x{one(conv.get('kernel_size'))} conv "
            f"{conv.get('in_channels')}->{conv.get('out_channels')}, stride {one(conv.get('stride'))}, "
            f"padding {one(conv.get('padding'))}")


def expected_units(table: Table, case: BlockCase) -> list[dict]:
    spec = BlockSpec(*case.args, output_size=())
    return [{"kernel_size": [u["kernel_size"]] * 2, "stride": [u["stride"]] * 2,
             "padding": [u["padding"]] * 2, "in_channels": u["in_channels"],
             "out_channels": u["out_channels"]} for u in table.unit_specs(spec)]


def unit_path(path: str) -> str:
    """'layer.0.0' -> 'layer[0]' (the conv unit the student wrote)."""
    parts = path.split(".")
    return f"{parts[0]}[{parts[1]}]" if len(parts) > 1 else path


def structure_findings(table: Table, case: BlockCase, report: dict) -> list[str | None]:
    """One entry per conv unit: None when it matches the table, else a sentence."""
    leaves = [leaf for leaf in field(report, "leaves", list)
              if isinstance(leaf, dict) and str(leaf.get("path", "")).startswith("layer.")]
    findings: list[str | None] = []
    conv_positions = [i for i, leaf in enumerate(leaves) if leaf.get("type") == "Conv2d"]
    for n, want in enumerate(expected_units(table, case)):
        where = f"{block_name(case)}.layer[{n}]"
        if n >= len(conv_positions):
            findings.append(f"{where}: the table expects a {conv_text(want)}; found no {n + 1}th conv "
                            f"in self.layer ({len(conv_positions)} in all)")
            continue
        i = conv_positions[n]
        got = leaves[i]
        where = f"{block_name(case)}.{unit_path(got['path'])}"
        wrong = [k for k in want if got.get(k) != want[k]]
        if wrong:
            findings.append(f"{where}: the table expects a {conv_text(want)}; found a {conv_text(got)}")
            continue
        after = [leaf.get("type") for leaf in leaves[i + 1:i + 3]]
        bn_ok = len(after) == 2 and after[0] == "BatchNorm2d" and \
            leaves[i + 1].get("num_features") == want["out_channels"] and after[1] == "ReLU"
        if not bn_ok:
            findings.append(f"{where}: each conv must be followed by BatchNorm2d({want['out_channels']}) "
                            f"and ReLU (use conv1x1/conv3x3); found {', '.join(map(str, after)) or 'nothing'}")
            continue
        findings.append(None)
    extra = len(conv_positions) - len(expected_units(table, case))
    if extra > 0:
        findings.append(f"{block_name(case)}.layer: {extra} conv(s) more than the table's three "
                        f"(1x1, 3x3, 1x1)")
    return findings


def compare_outputs(student_out: dict, reference_out: dict) -> str | None:
    """None when the two outputs agree, else what differs."""
    if "b64" not in student_out:
        return f"forward raised {error_text(student_out)}"
    got, want = decode_array(student_out), decode_array(reference_out)
    if got.shape != want.shape:
        return f"output size {list(got.shape[1:])}, the reference gives {list(want.shape[1:])}"
    if not np.all(np.isfinite(got)):
        return "output holds NaN or inf"
    if not np.allclose(got, want, rtol=RTOL, atol=ATOL):
        return f"output values differ from the reference (largest difference {float(np.max(np.abs(got - want))):.3g})"
    return None


def grade_q1(part: Part, student: dict, reference: dict, table: Table) -> list[CheckResult]:
    cases = [c for c in BLOCK_CASES if c.part == part.id]
    branch = BRANCH[part.id]
    structure = CheckResult(part.id, "structure", f"{branch}: 1x1 / 3x3 / 1x1 conv units of self.layer",
                            0, part.checks["structure"])
    keys = CheckResult(part.id, "state_dict", f"{branch}: state_dict keys, shapes and parameter count",
                       0, part.checks["state_dict"])
    function = CheckResult(part.id, "function", f"{branch}: outputs with the reference weights, eval and train mode",
                           0, part.checks["function"])
    results = [structure, keys, function]
    q1 = field(student, "q1", dict, None)
    if q1 is None:
        for r in results:
            r.deductions.append("resnet50_skeleton.py defines no ResidualBlock class")
        return results

    units_ok, units_total, keys_ok, outputs_ok, outputs_total = 0, 0, 0, 0, 0
    outputs_differ = False   # weights loaded, yet the outputs are wrong
    for case in cases:
        got = field(q1, case.name, dict, {})
        want = reference["q1"][case.name]
        units_total += 3
        outputs_total += 2
        if "error" in got:
            message = f"{block_name(case)} could not be built: {error_text(got['error'])}"
            for r in results:
                r.deductions.append(message)
            continue
        findings = structure_findings(table, case, got)
        units_ok += sum(1 for f in findings[:3] if f is None)
        structure.deductions += [f for f in findings if f]
        if len(findings) > 3 and findings[3]:
            units_ok -= 1   # an extra conv costs a unit

        missing, unexpected, mismatched = shape_diff(shapes_field(got), want["state_dict"])
        params = field(got, "parameters", int)
        if missing or unexpected or mismatched or params != want["parameters"]:
            keys.deductions.append(
                f"{block_name(case)}: {params:,} parameters (reference {want['parameters']:,}); "
                + format_key_diff(missing, unexpected, mismatched, limit=6).replace("checkpoint", "reference"))
        else:
            keys_ok += 1

        load = field(got, "load", dict)
        if field(load, "how", str) == "partial":
            function.deductions.append(f"{block_name(case)}: the reference weights do not fit this block "
                                       f"(see the state_dict check), so its outputs cannot match")
            continue
        if field(load, "how", str) == "by_position":
            function.notes.append(f"{block_name(case)}: weights loaded by position (your keys differ "
                                  f"from the checkpoint's)")
        outputs = field(got, "outputs", dict)
        for mode in ("eval", "train"):
            problem = compare_outputs(field(outputs, mode, dict), want["outputs"][mode])
            if problem:
                outputs_differ = True
                function.deductions.append(f"{block_name(case)} in {mode} mode: {problem}")
            else:
                outputs_ok += 1

    structure.score = proportional(structure.max_score, units_ok, units_total)
    keys.score = proportional(keys.max_score, keys_ok, len(cases))
    function.score = proportional(function.max_score, outputs_ok, outputs_total)
    if outputs_differ and not structure.deductions:
        function.notes.append("the conv units match the table, so look at forward() and the shortcut: "
                              "no ReLU after the addition, and plain blocks always use make_equal_channel")
    return results
