"""The public checks (autograder/check) see mistakes that keep every shape.

* Q1 (:func:`check_residual_block`): ResidualBlock alone, conv by conv, in both modes;
* Q2 (:func:`check_model`): every stage, stem layer and block of the whole model;
* the gate that stops the notebook before training;
* ``python -m autograder table``: the reference against the table and the real checkpoint.

Every mistake below is written the way a student would, as a variant of the
reference solution's text; the expected sizes come from the public table.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from autograder.check import (FixBeforeTraining, check_model, check_residual_block, count_parameters,
                              mismatch_summary, stop_before_training)
from autograder.check.report import CheckReport, print_reference_table
from autograder.spec.public import load_public_table

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_SOURCE = (ROOT / "solutions" / "resnet50_skeleton.py").read_text()
TABLE = load_public_table()

DOWNSAMPLE_BRANCH = ("conv1x1(in_channels, middle_channels, 2, 0),\n"
                     "                conv3x3(middle_channels, middle_channels, 1, 1),\n"
                     "                conv1x1(middle_channels, out_channels, 1, 0),")
PLAIN_BRANCH = ("conv1x1(in_channels, middle_channels, 1, 0),\n"
                "                conv3x3(middle_channels, middle_channels, 1, 1),\n"
                "                conv1x1(middle_channels, out_channels, 1, 0),\n"
                "                ### END SOLUTION\n"
                "            )\n"
                "            self.make_equal_channel")


def module_from(source: str):
    """The classes of a variant of the reference file (trusted test code, run in-process)."""
    namespace: dict = {"__name__": "variant"}
    exec(compile(source, "variant_resnet50_skeleton.py", "exec"), namespace)
    return namespace


def variant(old: str, new: str, source: str = REFERENCE_SOURCE) -> str:
    assert source.count(old) == 1, old
    return source.replace(old, new)


def downsample_branch(units: str) -> str:
    return variant(DOWNSAMPLE_BRANCH, units)


def plain_branch(units: str) -> str:
    return variant(PLAIN_BRANCH, units + "\n                ### END SOLUTION\n            )\n"
                   "            self.make_equal_channel")


@pytest.fixture(scope="module")
def reference():
    return module_from(REFERENCE_SOURCE)


# ---- Q1: ResidualBlock alone ---------------------------------------------------------------------

def unit_rows(report: CheckReport, downsample: bool) -> list[str]:
    """The report's conv rows of one mode, in order."""
    text = report.text.split(f"downsample={downsample})")[1]
    return [line for line in text.splitlines() if line.strip().startswith("conv ")][:3]


def marks(rows: list[str]) -> str:
    return "".join(row.rstrip()[-1] for row in rows)


def test_the_reference_block_matches_in_both_modes(reference):
    report = check_residual_block(reference["ResidualBlock"])
    assert report.ok and not report.unfinished, report.text
    assert marks(unit_rows(report, True)) == marks(unit_rows(report, False)) == "✓✓✓"
    # The table implies the halving at the first 1x1 of the downsampling block.
    assert "1x1 conv -> 8 x 4 x 4" in unit_rows(report, True)[0]
    assert "1x1 conv -> 8 x 8 x 8" in unit_rows(report, False)[0]


@pytest.mark.parametrize("units, expected_marks, block_output_ok", [
    # the stride on the 3x3 instead of the first 1x1 (torchvision's ResNet-50 v1.5 habit)
    ("conv1x1(in_channels, middle_channels, 1, 0),\n conv3x3(middle_channels, middle_channels, 2, 1),\n"
     " conv1x1(middle_channels, out_channels, 1, 0),", "✗✓✓", True),
    # the stride on the last 1x1
    ("conv1x1(in_channels, middle_channels, 1, 0),\n conv3x3(middle_channels, middle_channels, 1, 1),\n"
     " conv1x1(middle_channels, out_channels, 2, 0),", "✗✗✓", True),
    # a 3x3 where the slide has the first 1x1 (sizes stay, the kernel does not)
    ("conv3x3(in_channels, middle_channels, 2, 1),\n conv3x3(middle_channels, middle_channels, 1, 1),\n"
     " conv1x1(middle_channels, out_channels, 1, 0),", "✗✓✓", True),
    # the 3x3 without padding
    ("conv1x1(in_channels, middle_channels, 2, 0),\n conv3x3(middle_channels, middle_channels, 1, 0),\n"
     " conv1x1(middle_channels, out_channels, 1, 0),", "✓✗✗", False),
    # out channels already on the first 1x1
    ("conv1x1(in_channels, out_channels, 2, 0),\n conv3x3(out_channels, middle_channels, 1, 1),\n"
     " conv1x1(middle_channels, out_channels, 1, 0),", "✗✓✓", True),
])
def test_downsample_branch_mistakes_show_at_the_unit(units, expected_marks, block_output_ok):
    report = check_residual_block(module_from(downsample_branch(units))["ResidualBlock"])
    assert marks(unit_rows(report, True)) == expected_marks, report.text
    assert marks(unit_rows(report, False)) == "✓✓✓"
    assert not report.ok and not report.unfinished
    assert all(p.startswith("downsample=True") for p in report.problems), report.problems
    block_row = next(line for line in report.text.split("downsample=True)")[1].splitlines() if "block output" in line)
    assert block_row.rstrip().endswith("✓") == block_output_ok, block_row


def test_a_stride_in_the_plain_branch_shows_at_the_unit_and_names_the_failed_forward():
    source = plain_branch("conv1x1(in_channels, middle_channels, 2, 0),\n"
                          "                conv3x3(middle_channels, middle_channels, 1, 1),\n"
                          "                conv1x1(middle_channels, out_channels, 1, 0),")
    report = check_residual_block(module_from(source)["ResidualBlock"])
    assert marks(unit_rows(report, False)) == "✗✗✗"
    assert marks(unit_rows(report, True)) == "✓✓✓"
    assert any("forward pass stopped with RuntimeError" in p for p in report.problems), report.problems


def test_a_missing_unit_shows_as_not_reached():
    source = downsample_branch("conv1x1(in_channels, middle_channels, 2, 0),\n"
                               " conv1x1(middle_channels, out_channels, 1, 0),")
    report = check_residual_block(module_from(source)["ResidualBlock"])
    rows = unit_rows(report, True)
    assert "not reached" in rows[2] and marks(rows) == "✓✗✗"


def test_blank_branches_are_reported_as_unfinished_not_as_mismatches():
    student = module_from((ROOT / "resnet50_skeleton.py").read_text())
    report = check_residual_block(student["ResidualBlock"])
    assert report.problems == []
    assert [u.split(" is not")[0] for u in report.unfinished] == [
        "Q1: the downsample branch of ResidualBlock", "Q1: the plain (downsample=False) branch of ResidualBlock"]


def test_a_block_that_cannot_be_built_is_one_problem_with_its_error():
    class NeedsMoreArguments(nn.Module):
        def __init__(self, in_channels, middle_channels, out_channels, downsample, stride):
            super().__init__()

    report = check_residual_block(NeedsMoreArguments)
    assert len(report.problems) == 2 and all("TypeError" in p for p in report.problems)


def test_the_q1_check_uses_sizes_that_are_no_answer_of_the_table():
    """The block's arguments in the check must not be any block's arguments of Q2."""
    from autograder.check.residual_block import IN_CHANNELS, MIDDLE_CHANNELS, OUT_CHANNELS
    slide_channels = {u.channels for s in TABLE.block_stages for g in s.groups for u in g.units}
    slide_channels |= {TABLE.stage(s.name).output_size[0] for s in TABLE.stages}
    assert not {IN_CHANNELS, MIDDLE_CHANNELS, OUT_CHANNELS} & slide_channels


# ---- Q2: the whole model, block by block --------------------------------------------------------

def rows_by_label(report: CheckReport) -> dict[str, str]:
    rows = {}
    for line in report.text.splitlines():
        if line.rstrip().endswith(("✓", "✗")) and not line.startswith(("parameters", "state_dict")):
            rows[line.split()[0]] = line.rstrip()
    return rows


def bad_rows(report: CheckReport) -> list[str]:
    return [label for label, line in rows_by_label(report).items() if line.endswith("✗")]


def test_the_reference_model_has_a_row_per_stage_stem_layer_and_block(reference):
    model = reference["ResNet50_layer4"]()
    report = check_model(model, model.state_dict())
    assert report.ok, report.problems
    rows = rows_by_label(report)
    for stage in TABLE.block_stages:
        for i in range(stage.num_blocks):
            assert f"{stage.name}[{i}]" in rows
        assert f"{stage.name}[{stage.num_blocks}]" not in rows
    assert {"layer1", "Conv2d", "MaxPool2d", "avgpool", "fc"} <= set(rows)
    assert "all match the checkpoint (strict load will work)" in report.text


LAYER3 = ("            ResidualBlock(256, 128, 512, False),\n"
          "            ResidualBlock(512, 128, 512, False),\n"
          "            ResidualBlock(512, 128, 512, False),\n"
          "            ResidualBlock(512, 128, 512, True),\n")


def blocks_text(*args: tuple) -> str:
    return "".join(f"            ResidualBlock({a}, {m}, {o}, {d}),\n" for a, m, o, d in args)


@pytest.mark.parametrize("old, new, bad", [
    # layer3 with its downsampling block first (the original ResNet's order)
    (LAYER3, blocks_text((256, 128, 512, True), (512, 128, 512, False), (512, 128, 512, False),
                         (512, 128, 512, False)), ["layer3[0]", "layer3[1]", "layer3[2]"]),
    # ... or second
    (LAYER3, blocks_text((256, 128, 512, False), (512, 128, 512, True), (512, 128, 512, False),
                         (512, 128, 512, False)), ["layer3[1]", "layer3[2]"]),
    # layer2 with its downsampling block first
    ("            ResidualBlock(64, 64, 256, False),  ### BLANKS Q2: the arguments of layer2's first ResidualBlock\n"
     "            ResidualBlock(256, 64, 256, False),  ### BLANKS Q2: the arguments of layer2's second ResidualBlock\n"
     "            ResidualBlock(256, 64, 256, True),  ### BLANKS Q2: the arguments of layer2's third ResidualBlock\n",
     blocks_text((64, 64, 256, True), (256, 64, 256, False), (256, 64, 256, False)),
     ["layer2[0]", "layer2[1]"]),
    # the stem's conv without padding: 13x13, and the max pool after it 6x6
    ("nn.Conv2d(3, 64, 7, 2, 3),", "nn.Conv2d(3, 64, 7, 2, 0),", None),
])
def test_shape_keeping_q2_mistakes_show_at_their_block(old, new, bad):
    model = module_from(variant(old, new))["ResNet50_layer4"]()
    report = check_model(model)
    if bad is None:   # the stem: its own rows, then every row after it
        assert bad_rows(report)[:3] == ["layer1", "Conv2d", "MaxPool2d"]
    else:
        assert bad_rows(report) == bad, report.text
        stage = bad[0].split("[")[0]
        assert rows_by_label(report)[stage].endswith("✓")   # the stage's output alone cannot see it
        assert report.problems[0].startswith(f"{bad[0]} gives ")


LAYER4_FIRST = "            ResidualBlock(512, 256, 1024, False),\n"
LAYER2 = ("            ResidualBlock(64, 64, 256, False),  ### BLANKS Q2: the arguments of layer2's first ResidualBlock\n"
          "            ResidualBlock(256, 64, 256, False),  ### BLANKS Q2: the arguments of layer2's second ResidualBlock\n"
          "            ResidualBlock(256, 64, 256, True),  ### BLANKS Q2: the arguments of layer2's third ResidualBlock\n")


def labels(problems: list[str]) -> list[str]:
    return [p.split()[0].rstrip(":") for p in problems]


def test_one_wrong_block_is_the_one_place_to_fix_and_the_rest_follow_from_it():
    """layer4[0] halving the map: every later row is ✗ and the forward pass stops, but only
    layer4[0] had an input of the expected size."""
    model = module_from(variant(LAYER4_FIRST, "            ResidualBlock(512, 256, 1024, True),\n"))["ResNet50_layer4"]()
    report = check_model(model)
    assert len(report.problems) == 10                        # the honest count: every ✗ and the stop
    assert labels(report.places_to_fix) == ["layer4[0]"]
    assert labels(report.follow_on) == [f"layer4[{i}]" for i in range(1, 6)] + ["layer4", "avgpool", "fc", "the"]
    summary = report.lines[-1]
    assert summary.startswith("✗ the model does not match the table in 10 places; start with the first, "
                              "layer4[0] gives 1024 x 1 x 1 where the table implies 1024 x 2 x 2")
    assert summary.endswith("the other 9 only follow from it")
    with pytest.raises(FixBeforeTraining) as caught:
        stop_before_training(report, "Your ResNet50_layer4", "fix it")
    assert "in 10 places; start with the first, layer4[0] gives" in str(caught.value)


@pytest.mark.parametrize("old, new, to_fix, follow", [
    # layer2 downsamples first: layer2[1] only got a small map; layer2[2] (plain now) gives the right size
    (LAYER2, blocks_text((64, 64, 256, True), (256, 64, 256, False), (256, 64, 256, False)),
     ["layer2[0]"], ["layer2[1]"]),
    # the stem's conv without padding: everything after it follows
    ("nn.Conv2d(3, 64, 7, 2, 3),", "nn.Conv2d(3, 64, 7, 2, 0),", ["Conv2d"], None),
    # a max pool without stride: from there on every size is off
    ("nn.MaxPool2d(3, 2, 1),", "nn.MaxPool2d(3, 1, 1),", ["MaxPool2d"], None),
    # fc with the wrong input size: the forward pass stops at fc, which is the place itself
    ("self.fc = nn.Linear(1024, num_classes)", "self.fc = nn.Linear(512, num_classes)",
     ["fc"], ["the", "14,745,610"]),   # the parameter count changes with the same mistake
])
def test_the_places_to_fix_are_rows_whose_own_input_was_right(old, new, to_fix, follow):
    report = check_model(module_from(variant(old, new))["ResNet50_layer4"]())
    assert labels(report.places_to_fix) == to_fix, report.problems
    if follow is not None:
        assert labels(report.follow_on) == follow
    else:
        assert len(report.follow_on) == len(report.problems) - 1 >= 3
    assert set(report.places_to_fix) | set(report.follow_on) == set(report.problems)


def test_two_separate_mistakes_are_two_places_to_fix(reference):
    source = variant(LAYER2, blocks_text((64, 64, 256, True), (256, 64, 256, False), (256, 64, 256, False)))
    source = variant(LAYER4_FIRST, "            ResidualBlock(512, 256, 1024, True),\n", source)
    report = check_model(module_from(source)["ResNet50_layer4"]())
    assert labels(report.places_to_fix) == ["layer2[0]", "layer4[0]"]
    assert report.lines[-1].endswith(f"start with the first, {report.places_to_fix[0]}; 2 are places to fix, "
                                     f"the other {len(report.problems) - 2} follow from those")


def test_a_parameter_count_of_its_own_is_a_place_to_fix(reference):
    model = reference["ResNet50_layer4"]()
    model.layer1[1] = nn.Sequential(nn.BatchNorm2d(64), nn.Conv2d(64, 64, 1))   # keeps every size
    report = check_model(model)
    assert [p for p in report.places_to_fix if "parameters" in p] and not report.follow_on


def test_the_submission_summary_adds_q1_and_the_model(reference):
    q1 = CheckReport(problems=["downsample=False, conv 2 of layer: 3x3 conv -> 8 x 4 x 4 where the table implies 3x3 conv -> 8 x 8 x 8"])
    model = module_from(variant(LAYER4_FIRST, "            ResidualBlock(512, 256, 1024, True),\n"))["ResNet50_layer4"]()
    sentence = mismatch_summary("Your model", [q1, check_model(model)])
    assert sentence.startswith("Your model does not match the table in 11 places; start with the first, "
                               "downsample=False, conv 2")
    assert "2 are places to fix, the other 9 follow from those" in sentence
    assert mismatch_summary("Your model", [CheckReport(), CheckReport()]) == "Your model matches the table"


def test_missing_and_extra_blocks_get_rows_of_their_own(reference):
    model = reference["ResNet50_layer4"]()
    model.layer4 = nn.Sequential(*list(model.layer4)[:5])
    report = check_model(model)
    assert "no block 5 in your layer4" in rows_by_label(report)["layer4[5]"]
    model = reference["ResNet50_layer4"]()
    model.layer2 = nn.Sequential(*model.layer2, reference["ResidualBlock"](256, 64, 256, False))
    report = check_model(model)
    assert "layer2[3] is one block more than the table has" in report.problems


def test_a_block_object_used_twice_is_seen_at_each_position(reference):
    block = reference["ResidualBlock"]
    model = reference["ResNet50_layer4"]()
    shared = block(1024, 256, 1024, False)
    model.layer4 = nn.Sequential(block(512, 256, 1024, False), *[shared] * 5)
    report = check_model(model)
    rows = rows_by_label(report)
    assert all(rows[f"layer4[{i}]"].endswith("✓") for i in range(6))
    # state_dict() lists a shared block under each of its names; parameters() counts it once.
    assert report.problems == [f"{count_parameters(model):,} parameters where the table's model has "
                               f"{TABLE.parameters:,}"]


def test_a_stage_held_in_a_module_list_is_checked_block_by_block(reference):
    class LoopedLayer3(reference["ResNet50_layer4"]):
        def __init__(self):
            super().__init__()
            self.layer3 = nn.ModuleList(self.layer3)

        def forward(self, x):
            out = self.layer2(self.layer1(x))
            for block in self.layer3:
                out = block(out)
            out = self.avgpool(self.layer4(out))
            return self.fc(out.flatten(1))

    report = check_model(LoopedLayer3())
    assert report.ok, report.problems
    assert rows_by_label(report)["layer3[3]"].endswith("✓")


def test_a_forward_that_raises_is_one_problem_and_leaves_rows_unreached(reference):
    model = reference["ResNet50_layer4"]()
    model.fc = nn.Linear(512, 10)
    report = check_model(model)
    assert "the forward pass stopped with RuntimeError" in report.problems
    assert "not reached" in rows_by_label(report)["fc"]


def test_a_checkpoint_with_a_renamed_key_is_a_problem(reference):
    model = reference["ResNet50_layer4"]()
    state = model.state_dict()
    state["layer3.0.layer.0.0.weights"] = state.pop("layer3.0.layer.0.0.weight")
    report = check_model(model, state)
    assert "the checkpoint's keys do not fit (1 missing, 1 unexpected, 0 wrong shape)" in report.problems
    assert "layer3.0.layer.0.0.weights" in report.text


def test_the_checks_need_only_the_public_table(tmp_path):
    """A student's copy holds no resnet50_layer4.toml: the checks must work without it."""
    from autograder.release.bundle import bundle_contents
    for name, data in bundle_contents():
        if name.startswith("autograder/"):   # what the student zip holds of the kit's code
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes(data)
    assert not (tmp_path / "autograder" / "spec" / "resnet50_layer4.toml").exists()
    shutil.copy(ROOT / "solutions" / "resnet50_skeleton.py", tmp_path / "reference.py")
    code = ("import os, autograder.spec, reference\n"
            "assert autograder.spec.__file__.startswith(os.getcwd())\n"
            "from autograder.check import check_model, check_residual_block\n"
            "m = reference.ResNet50_layer4()\n"
            "print(check_model(m, m.state_dict()).ok, check_residual_block(reference.ResidualBlock).ok)\n")
    run = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, '.')\n{code}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "True"]


# ---- the gate -------------------------------------------------------------------------------------

def test_no_problem_lets_the_notebook_go_on():
    assert stop_before_training(CheckReport(), "Your ResNet50_layer4", "fix it") is None


def test_a_mismatch_stops_with_one_sentence_and_no_stack_trace():
    follower = "layer3[1] gives 512 x 2 x 2 where the table implies 512 x 4 x 4"
    report = CheckReport(problems=["layer3[0] gives 512 x 2 x 2 where the table implies 512 x 4 x 4", follower],
                         follow_on=[follower])
    with pytest.raises(FixBeforeTraining) as caught:
        stop_before_training(report, "Your ResNet50_layer4", "fix the rows marked ✗")
    sentence = str(caught.value)
    assert sentence.startswith("Your ResNet50_layer4 does not match the slide table in 2 places; "
                               "start with the first, layer3[0] gives")
    assert "the other 1 only follow from it" in sentence
    assert "TRAIN_ANYWAY = True" in sentence and sentence.count(". ") == 0 and sentence.endswith(".")
    assert caught.value._render_traceback_() == [f"✗ {sentence}"]


def test_train_anyway_turns_a_mismatch_into_a_warning(capsys):
    report = CheckReport(problems=["something"])
    stop_before_training(report, "ResidualBlock (Question 1)", "fix it", train_anyway=True)
    assert "TRAIN_ANYWAY is True, so the notebook goes on" in capsys.readouterr().out


def test_an_unfilled_blank_stops_even_with_train_anyway():
    report = CheckReport(unfinished=["Q1: the downsample branch of ResidualBlock is not filled in"])
    with pytest.raises(FixBeforeTraining, match="not finished: Q1: the downsample branch"):
        stop_before_training(report, "ResidualBlock (Question 1)", "fix it", train_anyway=True)


# ---- python -m autograder table -------------------------------------------------------------------

@pytest.fixture()
def kit(tmp_path):
    """A kit folder with the reference solution and an empty checkpoints/."""
    (tmp_path / "solutions").mkdir()
    shutil.copy(ROOT / "solutions" / "resnet50_skeleton.py", tmp_path / "solutions")
    (tmp_path / "checkpoints").mkdir()
    return tmp_path


def reference_state(kit) -> dict:
    from autograder.check.report import _load_reference_class
    return _load_reference_class(kit)().state_dict()


def test_table_without_a_checkpoint_says_there_is_none_and_where_it_goes(kit, capsys):
    assert print_reference_table(kit) == 0
    out = capsys.readouterr().out
    assert "all match the checkpoint" not in out
    assert f"no checkpoint to compare with: {kit / 'checkpoints' / 'resnet50_epoch285.ckpt'} does not exist" in out


def test_table_compares_the_reference_with_a_real_checkpoint(kit, capsys):
    torch.save(reference_state(kit), kit / "checkpoints" / "resnet50_epoch285.ckpt")
    assert print_reference_table(kit) == 0
    out = capsys.readouterr().out
    assert f"against {kit / 'checkpoints' / 'resnet50_epoch285.ckpt'}:" in out
    assert "state_dict keys: all match the checkpoint (strict load will work)" in out


@pytest.mark.parametrize("change, listed", [
    (lambda s: s.__setitem__("fc.weights", s.pop("fc.weight")), ["missing in your model (1)", "fc.weights",
                                                                  "unexpected (your model has them", "fc.weight"]),
    (lambda s: s.__setitem__("fc.weight", torch.zeros(100, 1024)), ["wrong shape", "fc.weight: 100 x 1024 vs 10 x 1024"]),
    (lambda s: s.pop("layer4.5.make_equal_channel.1.num_batches_tracked"),
     ["unexpected (your model has them, the checkpoint does not) (1)"]),
])
def test_table_lists_what_does_not_fit_in_the_checkpoint(kit, capsys, change, listed):
    state = reference_state(kit)
    change(state)
    torch.save(state, kit / "checkpoints" / "resnet50_epoch285.ckpt")
    assert print_reference_table(kit) == 1
    out = capsys.readouterr().out
    assert "state_dict keys do not match the checkpoint:" in out
    for text in listed:
        assert text in out


@pytest.mark.parametrize("content", [b"not a checkpoint", None])
def test_table_says_in_one_line_when_the_checkpoint_is_unreadable(kit, capsys, content):
    path = kit / "checkpoints" / "resnet50_epoch285.ckpt"
    if content is None:
        torch.save([1, 2, 3], path)   # loads, but is no state_dict
    else:
        path.write_bytes(content)
    assert print_reference_table(kit) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"✗ {path}") and "Traceback" not in last


def test_table_command_exit_status_follows_the_kits_checkpoint(tmp_path):
    run = subprocess.run([sys.executable, "-m", "autograder", "table"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert "every row matches the slide table" in run.stdout, run.stdout + run.stderr
    checkpoint = ROOT / "checkpoints" / "resnet50_epoch285.ckpt"
    if checkpoint.is_file():   # a TA's kit: the course's checkpoint must fit the reference
        assert "all match the checkpoint (strict load will work)" in run.stdout and run.returncode == 0
    else:
        assert "no checkpoint to compare with" in run.stdout and run.returncode == 0
        assert "all match the checkpoint" not in run.stdout
