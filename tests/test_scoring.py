"""The trusted half of the grader on hand-made reports: rubric loading, strict
report validation, and scoring -- no sandbox, no student code."""
import base64
import copy
import json

import numpy as np
import pytest

from autograder.grade.expectations import build_expectations
from autograder.grade.observations import MalformedReport, decode_array, parse_report
from autograder.grade.scoring import grade_report
from autograder.spec import PART_IDS, RubricError, load_rubric


@pytest.fixture(scope="module")
def expectations():
    return build_expectations()


@pytest.fixture(scope="module")
def rubric():
    return load_rubric()


def graded(report, expectations, rubric):
    return grade_report("s", json.dumps(report).encode(), expectations, rubric)


def test_rubric_defaults_add_up_to_105(rubric):
    assert [p for p in rubric] == list(PART_IDS)
    assert sum(p.points for p in rubric.values()) == 105
    # Q2a: 19 points on the 25 blanks, 6 on what the stem, layer2 and forward() compute (rubric.toml says why)
    assert rubric["Q2a"].points == 25 and rubric["Q2a"].checks["layer2_blocks"] == 8
    assert rubric["Q2a"].checks["layer2_function"] == 2
    assert rubric["Q2a"].checks["stem_function"] == 2 and rubric["Q2a"].checks["forward"] == 2


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("points = 25", "points = 26"), "add up to"),
    (lambda t: t.replace("avgpool = 2,", "avg_pool = 2,"), "exactly these checks"),
    (lambda t: t.replace("[parts.Q2c]", "[parts.Q2x]"), r"no \[parts\.Q2c\]"),
    (lambda t: t + "\n[[[", "cannot read"),
])
def test_rubric_errors_are_sentences(tmp_path, edit, message):
    from autograder.spec import RUBRIC_PATH
    bad = tmp_path / "rubric.toml"
    bad.write_text(edit(RUBRIC_PATH.read_text()))
    with pytest.raises(RubricError, match=message):
        load_rubric(bad)


def test_reference_report_scores_full_marks(expectations, rubric):
    result = graded(expectations.reference, expectations, rubric)
    assert result.status == "ok"
    assert result.total == 105
    assert all(c.score == c.max_score for c in result.checks)


def test_scores_come_from_comparison_not_from_the_report(expectations, rubric):
    """A report claiming perfection it cannot show (a wrong output) loses the function points."""
    report = copy.deepcopy(expectations.reference)
    out = report["q1"]["downsample_table"]["outputs"]["eval"]
    values = decode_array(out).copy()
    values[0, 0, 0, 0] += 1.0
    out["b64"] = base64.b64encode(values.astype(np.float32).tobytes()).decode()
    result = graded(report, expectations, rubric)
    assert result.part_score("Q1a") < 20
    assert result.part_score("Q1b") == 20
    function = next(c for c in result.checks if c.part == "Q1a" and c.check == "function")
    assert any("eval mode" in d and "differ" in d for d in function.deductions)


def test_wrong_layer3_block_names_path_and_expectation(expectations, rubric):
    report = copy.deepcopy(expectations.reference)
    report["q2"]["stage_children"]["layer3"][3]["args"]["downsample"] = False
    result = graded(report, expectations, rubric)
    assert result.part_score("Q2b") == 19
    assert {p: result.part_score(p) for p in ("Q1a", "Q1b", "Q2a", "Q2c")} == \
        {"Q1a": 20, "Q1b": 20, "Q2a": 25, "Q2c": 20}
    blocks = next(c for c in result.checks if c.part == "Q2b" and c.check == "blocks")
    assert blocks.deductions[0].startswith("layer3[3]: the table expects ResidualBlock(512, 128, 512, downsample=True)")


@pytest.mark.parametrize("mangle", [
    lambda r: r.pop("import"),
    lambda r: r["import"].update(status="graded_fine"),
    lambda r: r["q1"]["plain_table"].update(parameters="many"),
    lambda r: r["q1"]["plain_table"]["outputs"]["eval"].update(b64="!!notbase64"),
    lambda r: r["q1"]["plain_table"]["outputs"]["eval"].update(shape=[2, 10**6, 10**6]),
    lambda r: r["q2"].update(stage_children="layer3"),
])
def test_malformed_reports_are_crashed_not_trusted(expectations, rubric, mangle):
    report = copy.deepcopy(expectations.reference)
    mangle(report)
    result = graded(report, expectations, rubric)
    assert result.status == "crashed"
    assert result.total == 0
    assert "could not read" in result.message


def test_parse_report_rejects_non_json_and_non_objects():
    with pytest.raises(MalformedReport):
        parse_report(b"\xff\xfe")
    with pytest.raises(MalformedReport):
        parse_report(b"[1, 2]")


def test_import_failures_become_statuses(expectations, rubric):
    report = {"version": 1, "import": {"status": "syntax_error",
                                      "error": {"type": "SyntaxError", "message": "invalid syntax", "line": 7}}}
    result = graded(report, expectations, rubric)
    assert result.status == "syntax_error"
    assert result.total == 0
    assert "line 7" in result.message


def test_forward_hint_only_when_loaded_weights_give_wrong_outputs(expectations, rubric):
    """Weights that do not fit are a state_dict problem, not a forward() problem;
    the outputs are still compared (a partial load that computes the reference's
    values keeps the function points)."""
    report = copy.deepcopy(expectations.reference)
    for case in ("plain_table", "plain_same_width"):
        report["q1"][case]["load"] = {"how": "partial", "loaded": 0}
    function = next(c for c in graded(report, expectations, rubric).checks
                    if c.part == "Q1b" and c.check == "function")
    assert function.score == function.max_score

    for case in ("plain_table", "plain_same_width"):
        out = report["q1"][case]["outputs"]["eval"]
        out["b64"] = base64.b64encode((decode_array(out) * 2).astype(np.float32).tobytes()).decode()
    function = next(c for c in graded(report, expectations, rubric).checks
                    if c.part == "Q1b" and c.check == "function")
    assert function.score == 4
    assert all("fit this block only partly" in d for d in function.deductions)
    assert not any("forward()" in n for n in function.notes)

    report = copy.deepcopy(expectations.reference)
    out = report["q1"]["plain_table"]["outputs"]["train"]
    values = decode_array(out).copy() * 2
    out["b64"] = base64.b64encode(values.astype(np.float32).tobytes()).decode()
    function = next(c for c in graded(report, expectations, rubric).checks
                    if c.part == "Q1b" and c.check == "function")
    assert function.score == 6
    assert any("forward()" in n for n in function.notes)


def test_key_diff_lists_from_the_models_point_of_view():
    """format_key_diff says "missing in your model" for keys only the checkpoint has."""
    import torch
    import torch.nn as nn
    from autograder.check import format_key_diff, key_diff
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2, bias=False))
    checkpoint = {"0.weight": torch.zeros(3, 5), "0.bias": torch.zeros(3), "1.bias": torch.zeros(2)}
    missing, unexpected, mismatched = key_diff(model, checkpoint)
    assert missing == ["1.bias"]
    assert unexpected == ["1.weight"]
    assert mismatched == [("0.weight", (3, 5), (3, 4))]
    text = format_key_diff(missing, unexpected, mismatched)
    assert "missing in your model (1):\n    1.bias" in text
    assert "unexpected (your model has them, the checkpoint does not) (1):\n    1.weight" in text
    assert "0.weight: 3 x 5 vs 3 x 4" in text


def test_odd_values_in_the_new_report_fields_gain_nothing_and_crash_nothing(expectations, rubric):
    report = copy.deepcopy(expectations.reference)
    layer4 = report["q2"]["stage_children"]["layer4"]
    layer4[1]["same_as"] = "0"          # not an index: ignored
    layer4[2]["same_as"] = 7            # not an earlier position: ignored
    layer4[3]["open_blank"] = 5         # not text: ignored
    report["q2"]["num_classes_default_blank"] = ["x"]
    result = graded(report, expectations, rubric)
    assert result.status == "ok" and result.total == 105


def test_an_open_blank_is_not_checked_and_scores_nothing(expectations, rubric):
    report = copy.deepcopy(expectations.reference)
    report["q2"]["modules"]["fc"]["open_blank"] = "the Linear arguments of fc are not filled in"
    result = graded(report, expectations, rubric)
    by_check = {c.check: c for c in result.checks if c.part == "Q2a"}
    assert by_check["fc"].score == 0 and by_check["forward"].score == 0
    assert by_check["fc"].deductions == ["not checked: the Linear arguments of fc are not filled in"]
    assert result.part_score("Q2a") == 21 and result.total == 101


def test_a_reused_block_object_is_named_not_counted_short(expectations, rubric):
    report = copy.deepcopy(expectations.reference)
    layer4 = report["q2"]["stage_children"]["layer4"]
    for i in range(2, 6):
        layer4[i]["same_as"] = 1
    blocks = next(c for c in graded(report, expectations, rubric).checks if c.part == "Q2c" and c.check == "blocks")
    assert blocks.deductions[0].startswith("layer4: the same block object is used 5 times (layer4[1], layer4[2]")
    assert blocks.score == round(16 * 8 / 24, 2)


@pytest.mark.parametrize("field_name, value, right", [
    ("downsample", 1, True), ("downsample", 1.0, True), ("downsample", "True", False), ("downsample", 2, False),
    ("in_channels", 512.0, False), ("in_channels", True, False), ("in_channels", 512, True),
])
def test_block_arguments_count_by_value_where_the_block_reads_them_so(expectations, rubric, field_name, value, right):
    report = copy.deepcopy(expectations.reference)
    report["q2"]["stage_children"]["layer3"][3]["args"][field_name] = value
    blocks = next(c for c in graded(report, expectations, rubric).checks if c.part == "Q2b" and c.check == "blocks")
    assert (blocks.score == blocks.max_score) is right, blocks.deductions
    if right and type(value) is not int:
        assert any("counts as" in n for n in blocks.notes)


def test_a_report_with_25k_open_blanks_grades_in_seconds(expectations, rubric):
    """A tampered list of open blanks (the probe sends at most 50) costs linear
    time and bounded feedback."""
    import time
    report = copy.deepcopy(expectations.reference)
    blanks = [{"text": f"part {i} is not filled in", "line": 48} for i in range(25_000)]
    report["q1"]["downsample_table"] = {"open_blanks": blanks}
    start = time.perf_counter()
    result = graded(report, expectations, rubric)
    assert time.perf_counter() - start < 5
    structure = next(c for c in result.checks if c.part == "Q1a" and c.check == "structure")
    assert structure.score == 4 and len(structure.deductions) == 31   # the other case is right
    assert structure.deductions[0].startswith("not checked: part 0 is not filled in")
    assert structure.deductions[-1].startswith("... and ")
