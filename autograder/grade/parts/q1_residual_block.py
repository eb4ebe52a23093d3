"""Q1a (downsample branch) and Q1b (plain branch) of ResidualBlock.

Each branch is built for two cases (one from the table, one with other widths),
and checked three ways: the conv units of ``self.layer`` against the table's
bottleneck (structure), the block's state_dict against the reference (keys,
shapes, parameter count), and its outputs with the reference weights loaded,
in eval and train mode (function -- the only check that sees a stride on the
3x3 instead of the first 1x1, or a shortcut left out of the sum). A ReLU after
the addition changes nothing (both branches end in a ReLU) and scores in full.
"""
from __future__ import annotations

import numpy as np

from autograder.check.report import format_key_diff
from autograder.grade.expectations import BLOCK_CASES, BlockCase
from autograder.check.describe import shape_diff
from autograder.grade.observations import decode_array, error_text, field, shapes_field, text
from autograder.grade.parts import CheckResult, proportional
from autograder.spec import BlockSpec, Part, Table

RTOL, ATOL = 1e-4, 1e-5
BRANCH = {"Q1a": "downsample branch", "Q1b": "plain branch"}


def block_name(case: BlockCase) -> str:
    a, m, o, d = case.args
    return f"ResidualBlock({a}, {m}, {o}, downsample={d})"


def table_position(table: Table, case: BlockCase) -> str | None:
    """'layer2[2]' when the table has a block with the case's arguments."""
    for stage in table.block_stages:
        for i, block in enumerate(stage.blocks):
            if block.args == case.args:
                return f"{stage.name}[{i}]"
    return None


def case_intro(table: Table, case: BlockCase) -> str:
    """Which block a finding is about, in words a student can place: a block of
    the table, or the grader's own test sizes (not a block of the table)."""
    where = table_position(table, case)
    if where:
        return f"In {block_name(case)} (the table's {where})"
    return f"With the grader's test sizes {block_name(case)}"


def case_label(table: Table, case: BlockCase) -> str:
    """'ResidualBlock(48, 16, 96, downsample=True) (the grader's test sizes)'."""
    where = table_position(table, case)
    return f"{block_name(case)} (the table's {where})" if where else \
        f"{block_name(case)} (the grader's test sizes)"


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


BATCHNORM_SETTINGS = ("eps", "momentum", "affine", "track_running_stats")
# momentum changes only how training updates the running statistics: the block
# computes the same function and loads the same checkpoint, so it earns a note.
# The others change the outputs (eps) or the state_dict too (affine, running stats).
TRAINING_ONLY_SETTINGS = ("momentum",)


def batchnorm_settings(report: dict) -> dict:
    """The settings of the first BatchNorm2d in a (reference) block report."""
    for leaf in field(report, "leaves", list, []):
        if isinstance(leaf, dict) and leaf.get("type") == "BatchNorm2d":
            return {k: leaf.get(k) for k in BATCHNORM_SETTINGS}
    return {}


def settings_differ(leaf: dict, wanted: dict) -> list[str]:
    """'eps=0.001' for each BatchNorm setting that differs from ``wanted``."""
    return [f"{k}={leaf.get(k)}" for k in wanted if leaf.get(k) != wanted[k]]


def settings_text(wanted: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in wanted.items())


def structure_findings(table: Table, case: BlockCase, report: dict, bn_wanted: dict | None = None,
                       notes: list[str] | None = None) -> list[str | None]:
    """One entry per conv unit: None when it matches the table, else a sentence
    (full-credit remarks go to ``notes``)."""
    bn_wanted = bn_wanted or {}
    intro = case_intro(table, case)
    leaves = [leaf for leaf in field(report, "leaves", list)
              if isinstance(leaf, dict) and str(leaf.get("path", "")).startswith("layer.")]
    findings: list[str | None] = []
    training_only: list[str] = []
    conv_positions = [i for i, leaf in enumerate(leaves) if leaf.get("type") == "Conv2d"]
    for n, want in enumerate(expected_units(table, case)):
        if n >= len(conv_positions):
            findings.append(f"{intro}, a block built as the table describes has layer[{n}] = "
                            f"{conv_text(want)}; yours has no conv number {n + 1} in self.layer "
                            f"({len(conv_positions)} in all)")
            continue
        i = conv_positions[n]
        got = leaves[i]
        where = unit_path(got["path"])
        wrong = [k for k in want if got.get(k) != want[k]]
        if wrong:
            findings.append(f"{intro}, a block built as the table describes has {where} = "
                            f"{conv_text(want)}; yours has {conv_text(got)}")
            continue
        after = [leaf.get("type") for leaf in leaves[i + 1:i + 3]]
        bn_ok = len(after) == 2 and after[0] == "BatchNorm2d" and \
            leaves[i + 1].get("num_features") == want["out_channels"] and after[1] == "ReLU"
        if not bn_ok:
            findings.append(f"{intro}: {where}'s conv must be followed by BatchNorm2d({want['out_channels']}) "
                            f"and ReLU (use conv1x1/conv3x3); found {', '.join(map(str, after)) or 'nothing'}")
            continue
        changed = settings_differ(leaves[i + 1], bn_wanted)
        charged = [c for c in changed if c.split("=")[0] not in TRAINING_ONLY_SETTINGS]
        if charged:
            findings.append(f"{intro}: the BatchNorm2d in {where} has {', '.join(changed)}; "
                            f"conv1x1/conv3x3 build it with {settings_text(bn_wanted)}")
            continue
        if changed:
            training_only.append(f"{where} has {', '.join(changed)}")
        findings.append(None)
    if training_only and notes is not None:
        notes.append(f"{intro}: the BatchNorm2d in {'; in '.join(training_only)} (conv1x1/conv3x3 use "
                     f"{settings_text(bn_wanted)}); this changes training only: full credit")
    extra = len(conv_positions) - len(expected_units(table, case))
    if extra > 0:
        findings.append(f"{intro}: self.layer has {extra} conv(s) more than the table's three "
                        f"(1x1, 3x3, 1x1)")
    return findings


def other_batchnorm_changes(report: dict, bn_wanted: dict) -> list[str]:
    """BatchNorm layers outside self.layer (the shortcut) with changed settings."""
    found = []
    for leaf in field(report, "leaves", list, []):
        if isinstance(leaf, dict) and leaf.get("type") == "BatchNorm2d" \
                and not str(leaf.get("path", "")).startswith("layer."):
            changed = settings_differ(leaf, bn_wanted)
            if changed:
                found.append(f"the BatchNorm2d at {leaf.get('path')} has {', '.join(changed)}")
    return found


MAX_LINES_PER_CHECK = 30   # deductions shown per check; the rest are counted


def open_blank_texts(report: dict) -> list[str]:
    """What the student left blank, from a report's ``open_blanks`` list (the
    probe keeps the first 50 distinct ones and counts the calls)."""
    texts: dict[str, None] = {}
    for entry in field(report, "open_blanks", list, [])[:MAX_LINES_PER_CHECK * 4]:
        if isinstance(entry, dict):
            line = field(entry, "line", (int, type(None)), None)
            texts.setdefault(text(entry, "text") + (f" (resnet50_skeleton.py line {line})" if line else ""), None)
    return list(texts)


def add_lines(lines: list[str], new: list[str]) -> None:
    """Append ``new`` to a check's lines, each once, at most MAX_LINES_PER_CHECK."""
    seen = set(lines)
    for line in new:
        if line not in seen:
            seen.add(line)
            lines.append(line)


def cap_lines(lines: list[str]) -> list[str]:
    """The first MAX_LINES_PER_CHECK lines and how many more (grade_report caps every check)."""
    if len(lines) <= MAX_LINES_PER_CHECK:
        return lines
    return lines[:MAX_LINES_PER_CHECK] + [f"... and {len(lines) - MAX_LINES_PER_CHECK} more"]


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
    other_bn: list[str] = []
    foreign: dict[str, None] = {}   # modules in self.layer that no conv unit has (a Dropout, say)
    for case in cases:
        got = field(q1, case.name, dict, {})
        want = reference["q1"][case.name]
        bn_wanted = batchnorm_settings(want)
        units_total += 3
        outputs_total += 2
        blanks = open_blank_texts(got)
        if blanks:
            for r in results:
                add_lines(r.deductions, [f"not checked: {blank}" for blank in blanks])
            continue
        if "error" in got:
            message = f"{case_label(table, case)} could not be built: {error_text(got['error'])}"
            for r in results:
                r.deductions.append(message)
            continue
        findings = structure_findings(table, case, got, bn_wanted, structure.notes)
        for leaf in field(got, "leaves", list):
            if isinstance(leaf, dict) and str(leaf.get("path", "")).startswith("layer.") and \
                    leaf.get("type") not in ("Conv2d", "BatchNorm2d", "ReLU"):
                foreign[f"self.{text(leaf, 'path')[:80]} is a {text(leaf, 'type')[:60]}"] = None
        units_ok += sum(1 for f in findings[:3] if f is None)
        structure.deductions += [f for f in findings if f]
        if len(findings) > 3 and findings[3]:
            units_ok -= 1   # an extra conv costs a unit
        other_bn += [f"{case_label(table, case)}: {c}" for c in other_batchnorm_changes(got, bn_wanted)]

        missing, unexpected, mismatched = shape_diff(shapes_field(got), want["state_dict"])
        params = field(got, "parameters", int)
        if missing or unexpected or mismatched or params != want["parameters"]:
            keys.deductions.append(
                f"{case_label(table, case)}: {params:,} parameters (reference {want['parameters']:,}); "
                + format_key_diff(missing, unexpected, mismatched, limit=6).replace("checkpoint", "reference"))
        else:
            keys_ok += 1

        # The outputs are compared however the weights loaded: an unused extra
        # module, or a layer of another shape, shows up in the values or not at all.
        load = field(got, "load", dict)
        how = field(load, "how", str)
        if how in ("by_position", "by_position_extra"):
            function.notes.append(f"{case_label(table, case)}: the weights whose keys differ from the "
                                  f"reference's loaded by position among tensors of the same shape")
        if how in ("by_key_extra", "by_position_extra"):
            function.notes.append(f"{case_label(table, case)}: the reference weights loaded; your block has "
                                  f"entries of its own on top, left as built (see the state_dict check)")
        outputs = field(got, "outputs", dict)
        for mode in ("eval", "train"):
            problem = compare_outputs(field(outputs, mode, dict), want["outputs"][mode])
            if problem:
                if how in ("partial", "failed"):
                    problem += " (the reference weights fit this block only partly: see the state_dict check)"
                else:
                    outputs_differ = True
                function.deductions.append(f"{case_label(table, case)} in {mode} mode: {problem}")
            else:
                outputs_ok += 1

    structure.score = proportional(structure.max_score, units_ok, units_total)
    keys.score = proportional(keys.max_score, keys_ok, len(cases))
    function.score = proportional(function.max_score, outputs_ok, outputs_total)
    if other_bn:
        function.notes += [f"{c} (conv1x1/conv3x3 use the defaults)" for c in other_bn]
    elif outputs_differ and foreign:
        function.notes.append("self.layer holds modules the table's bottleneck does not have ("
                              + "; ".join(list(foreign)[:4]) + "): they change the outputs")
    elif outputs_differ and not structure.deductions:
        function.notes.append("the conv units match the table, so look at forward() and the shortcut: "
                              "forward() adds the shortcut (downsize(x) for downsample=True, make_equal_channel(x) "
                              "for every plain block) to self.layer's output and returns the sum")
    return results
