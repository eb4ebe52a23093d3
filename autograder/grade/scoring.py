"""From a sandbox outcome to a graded submission: status, checks, scores.

Runs in the trusted process. Nothing here imports student code; it reads the
probe's report through ``observations`` and compares it with the reference.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from autograder.check.describe import shape_diff
from autograder.check.report import format_key_diff, size_text
from autograder.grade.expectations import Expectations
from autograder.grade.observations import (MalformedReport, error_text, field as report_field,
                                           parse_report, shapes_field)
from autograder.grade.parts import CheckResult
from autograder.grade.parts.q1_residual_block import cap_lines, grade_q1, open_blank_texts
from autograder.grade.parts.q2a_blanks import grade_q2a
from autograder.grade.parts.q2bc_layers import grade_stage
from autograder.spec import PART_IDS, Part

GRADERS = {"Q1a": grade_q1, "Q1b": grade_q1, "Q2a": grade_q2a, "Q2b": grade_stage, "Q2c": grade_stage}


@dataclass
class GradedSubmission:
    student: str
    status: str
    message: str = ""                 # why it was not graded normally, for people
    checks: list[CheckResult] = field(default_factory=list)
    output: str = ""                  # what the student's code printed (untrusted text)
    elapsed_s: float = 0.0
    rubric: dict[str, Part] = field(default_factory=dict)

    def part_score(self, part_id: str) -> float:
        return round(sum(c.score for c in self.checks if c.part == part_id), 2)

    @property
    def total(self) -> float:
        return round(sum(self.part_score(p) for p in PART_IDS), 2)

    @property
    def max_total(self) -> float:
        return round(sum(p.points for p in self.rubric.values()), 2)


def failed(student: str, status: str, message: str, rubric: dict[str, Part], output: str = "",
           elapsed_s: float = 0.0) -> GradedSubmission:
    """A submission that could not be graded normally: every part scores 0 with the reason."""
    checks = [CheckResult(p.id, "all", p.title, 0.0, p.points, [message]) for p in rubric.values()]
    return GradedSubmission(student, status, message, checks, output, elapsed_s, rubric)


def informational_checks(student: dict, reference: dict, table) -> list[CheckResult]:
    """Worth 0 points: what a student needs to know to use the checkpoint."""
    checks = []
    sizes = CheckResult("Q2a", "sizes", "(0 points) output sizes against the slide table", 0, 0)
    q2 = report_field(student, "q2", dict, None)
    q2_blanks = open_blank_texts(q2) if q2 else []
    if q2_blanks:   # worth no points: a note, not a "not checked" line among the scored ones
        sizes.notes.append(f"output sizes are measured once the model is complete; "
                           f"{blanks_summary(q2_blanks).removeprefix('not checked: ')}")
    elif q2 and "sizes" in q2:
        got = report_field(q2, "sizes", dict)
        for path, want in reference["q2"]["sizes"].items():
            found = got.get(path)
            if found != want:
                sizes.deductions.append(f"{path}: the table gives {size_text(want)}, found "
                                        f"{size_text(found) if isinstance(found, list) else 'not reached'}")
        if q2.get("sizes_error"):
            sizes.deductions.append(f"the forward pass stopped: {error_text(q2['sizes_error'])}")
    checks.append(sizes)

    ckpt = CheckResult("Q2a", "checkpoint", "(0 points) the provided checkpoint loads with strict=True", 0, 0)
    full = report_field(student, "full", dict, None)
    full_blanks = open_blank_texts(full) if full else []
    if full_blanks:
        ckpt.notes.append(f"the checkpoint is tried once the model is complete; "
                          f"{blanks_summary(full_blanks).removeprefix('not checked: ')}")
    elif full is None or "error" in full:
        ckpt.deductions.append("ResNet50_layer4() with your ResidualBlock could not be built"
                               + (f": {error_text(full['error'])}" if full else ""))
    else:
        missing, unexpected, mismatched = shape_diff(shapes_field(full),
                                                     reference["full"]["state_dict"])
        if missing or unexpected or mismatched:
            ckpt.deductions.append(format_key_diff(missing, unexpected, mismatched, limit=8))
        params = report_field(full, "parameters", int)
        if params != table.parameters:
            ckpt.deductions.append(f"{params:,} parameters; the table's model has {table.parameters:,}")
            stage_params = report_field(full, "stage_parameters", dict, {})
            for name, count in reference["full"]["stage_parameters"].items():
                found = stage_params.get(name)
                if found != count:
                    shown = f"{found:,}" if isinstance(found, int) else "no"
                    ckpt.deductions.append(f"  {name}: {shown} parameters, reference {count:,}")
    checks.append(ckpt)
    return checks


def blanks_summary(blanks: list[str]) -> str:
    more = f" and {len(blanks) - 1} more" if len(blanks) > 1 else ""
    return f"not checked: {blanks[0]}{more}"


def grade_report(student_id: str, payload: bytes, expectations: Expectations, rubric: dict[str, Part],
                 output: str = "", elapsed_s: float = 0.0) -> GradedSubmission:
    """Score the probe's JSON report of one submission."""
    try:
        report = parse_report(payload)
        imported = report_field(report, "import", dict)
        status = report_field(imported, "status", str)
        if status != "ok":
            if status not in ("syntax_error", "import_error", "exited"):
                raise MalformedReport(f"unknown import status {status!r}")
            reason = {"syntax_error": "resnet50_skeleton.py has a syntax error",
                      "import_error": "importing resnet50_skeleton.py failed",
                      "exited": "resnet50_skeleton.py called exit() while being imported"}[status]
            message = f"{reason}: {error_text(report_field(imported, 'error', dict))}"
            return failed(student_id, status, message, rubric, output, elapsed_s)
        checks: list[CheckResult] = []
        for part_id in PART_IDS:
            checks += GRADERS[part_id](rubric[part_id], report, expectations.reference, expectations.table)
        checks += informational_checks(report, expectations.reference, expectations.table)
        for check in checks:   # each line once, and a bounded number of them
            check.deductions = cap_lines(list(dict.fromkeys(check.deductions)))
            check.notes = cap_lines(list(dict.fromkeys(check.notes)))
    except (MalformedReport, KeyError, TypeError, ValueError, AttributeError) as exc:
        message = f"the grading process could not read the submission's report ({exc}); was the grader tampered with?"
        return failed(student_id, "crashed", message, rubric, output, elapsed_s)
    return GradedSubmission(student_id, "ok", "", checks, output, elapsed_s, rubric)
