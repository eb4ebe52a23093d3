"""The public slide table: generated from the full one, agreeing with it, and holding
only what the handout's table gives (no padding, no block arguments, no flags)."""
import dataclasses
import shutil
import subprocess
import sys

import pytest

from autograder.release.kit import KIT_ROOT, render_public_table
from autograder.spec import load_table
from autograder.spec.public import (
    PUBLIC_TABLE_PATH, PublicGroup, PublicUnit, load_public_table, public_table_from, tomllib,
)


@pytest.fixture(scope="module")
def full():
    return load_table()


@pytest.fixture(scope="module")
def public():
    return load_public_table()


def test_committed_public_table_is_generated_from_the_full_one():
    assert PUBLIC_TABLE_PATH.read_text(encoding="utf-8") == render_public_table()


def test_model_facts_match_the_full_table(full, public):
    for field in ("class_name", "block_class_name", "input_size", "num_classes", "parameters", "state_dict_keys"):
        assert getattr(public, field) == getattr(full, field), field
    assert [s.name for s in public.stages] == [s.name for s in full.stages]
    for stage in public.stages:
        assert stage.output_size == full.stage(stage.name).output_size
        assert public.stage_input_size(stage.name) == full.stage_input_size(stage.name)


def test_block_sizes_and_counts_follow_from_the_slide_strides(full, public):
    assert [s.name for s in public.block_stages] == ["layer2", "layer3", "layer4"]
    for stage in public.block_stages:
        reference = full.stage(stage.name)
        assert stage.num_blocks == len(reference.blocks)
        sizes = stage.block_output_sizes(public.stage_input_size(stage.name))
        assert sizes == [b.output_size for b in reference.blocks]
        assert sizes[-1] == stage.output_size
        assert ", then ".join(g.slide_text() for g in stage.groups) == stage.slide_text


def test_groups_read_as_the_slides_write_them(public):
    layer3 = public.stage("layer3")
    assert layer3.groups == (
        PublicGroup((PublicUnit(1, 128), PublicUnit(3, 128), PublicUnit(1, 512)), 3),
        PublicGroup((PublicUnit(1, 128, 2), PublicUnit(3, 128), PublicUnit(1, 512)), 1),
    )
    assert public.stage("layer4").groups == (
        PublicGroup((PublicUnit(1, 256), PublicUnit(3, 256), PublicUnit(1, 1024)), 6),)


def test_stem_and_head_layers_carry_no_padding(public):
    conv, pool = public.stage("layer1").layers
    assert conv == {"index": 0, "type": "Conv2d", "kernel_size": 7, "out_channels": 64, "stride": 2,
                    "output_size": (64, 16, 16)}
    assert pool == {"index": 3, "type": "MaxPool2d", "kernel_size": 3, "stride": 2, "output_size": (64, 8, 8)}
    assert public.stage("avgpool").layers == ({"type": "AvgPool2d", "output_size": (1024, 1, 1)},)
    assert public.stage("fc").layers == ({"type": "Linear", "output_size": (10,)},)


def _keys(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            found.add(key)
            _keys(value, found)
    elif isinstance(node, list):
        for item in node:
            _keys(item, found)
    return found


def test_public_file_holds_no_answer_key_fields():
    raw = tomllib.loads(PUBLIC_TABLE_PATH.read_text(encoding="utf-8"))
    keys = _keys(raw, set())
    for secret in ("padding", "blocks", "downsample", "in_channels", "middle_channels", "block",
                   "stride_plain", "stride_downsample", "shortcut_plain", "shortcut_downsample", "modules"):
        assert secret not in keys, secret
    text = PUBLIC_TABLE_PATH.read_text(encoding="utf-8")
    assert "padding" not in text and "downsample" not in text


def test_loader_refuses_a_layer_with_a_padding(tmp_path):
    text = PUBLIC_TABLE_PATH.read_text(encoding="utf-8").replace(
        "kernel_size = 7, out_channels = 64, stride = 2,", "kernel_size = 7, out_channels = 64, stride = 2, padding = 3,")
    path = tmp_path / "public.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="padding"):
        load_public_table(path)


def test_a_full_table_that_disagrees_with_its_slide_text_is_refused(full):
    layer3 = full.stage("layer3")
    swapped = (layer3.blocks[-1], *layer3.blocks[:-1])   # the downsampling block first
    stages = tuple(dataclasses.replace(s, blocks=swapped) if s.name == "layer3" else s for s in full.stages)
    with pytest.raises(ValueError, match="layer3"):
        public_table_from(dataclasses.replace(full, stages=stages))


def test_public_module_works_without_the_full_table(tmp_path):
    # What the student bundle holds: the public module and file, no full table, no loader of it.
    spec = tmp_path / "autograder" / "spec"
    spec.mkdir(parents=True)
    (tmp_path / "autograder" / "__init__.py").write_text("")
    (spec / "__init__.py").write_text('"""The public slide table."""\n')
    for name in ("public.py", "resnet50_layer4_public.toml"):
        shutil.copy(KIT_ROOT / "autograder" / "spec" / name, spec / name)
    code = ("import autograder.spec.public as p; t = p.load_public_table(); print(p.__file__); "
            "print(t.stage('layer2').block_output_sizes(t.stage_input_size('layer2')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    module_file, sizes = result.stdout.strip().splitlines()
    assert module_file.startswith(str(tmp_path))   # the copy, not the kit's own
    assert sizes == "[(256, 8, 8), (256, 8, 8), (256, 4, 4)]"


def test_release_writes_the_public_table_and_check_reports_drift(tmp_path):
    from autograder.release.kit import FULL_TABLE, PUBLIC_TABLE, check_kit, release_kit
    (tmp_path / "autograder" / "spec").mkdir(parents=True)
    shutil.copy(KIT_ROOT / FULL_TABLE, tmp_path / FULL_TABLE)
    assert check_kit(tmp_path, targets=()) == [f"{PUBLIC_TABLE}: missing; run `python -m autograder release`"]
    assert release_kit(tmp_path, targets=()) == [f"wrote {PUBLIC_TABLE} from {FULL_TABLE} (created)"]
    assert (tmp_path / PUBLIC_TABLE).read_bytes() == PUBLIC_TABLE_PATH.read_bytes()
    assert check_kit(tmp_path, targets=()) == []
    full = tmp_path / FULL_TABLE
    full.write_text(full.read_text().replace("parameters = 14750730", "parameters = 14750731"))
    problems = check_kit(tmp_path, targets=())
    assert problems == [f"{PUBLIC_TABLE}: out of date with {FULL_TABLE} (run `python -m autograder release`)"]
