"""The reference models against the slide table (autograder/spec/resnet50_layer4.toml).

Every expected number is read from the table through ``load_table()``; the only
literals here are the handout's VGG-16 counts, which the table does not hold.
"""
import pytest
import torch
import torch.nn as nn

from autograder.spec import load_table
from solutions.resnet50_skeleton import ResidualBlock, ResNet50_layer4
from vgg import vgg16

torch.set_num_threads(1)

TABLE = load_table()


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def reference() -> nn.Module:
    torch.manual_seed(0)
    return ResNet50_layer4()


def batch(n: int = 2) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(n, *TABLE.input_size)


def test_vgg16_matches_the_handout():
    model = vgg16()
    assert len(model.state_dict()) == 35
    assert n_params(model) == 14_983_498


def test_reference_counts_equal_the_table(reference):
    assert TABLE.class_name == type(reference).__name__
    assert len(reference.state_dict()) == TABLE.state_dict_keys == 373
    assert n_params(reference) == TABLE.parameters == 14_750_730


def test_default_num_classes_is_the_tables(reference):
    assert reference.fc.out_features == TABLE.num_classes


def _record_sizes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Run one batch and record the per-image output size of every table stage and part."""
    sizes: dict[str, tuple[int, ...]] = {}
    handles = []

    def watch(name: str, module: nn.Module) -> None:
        def hook(_module, _inputs, output):
            sizes[name] = tuple(output.shape[1:])
        handles.append(module.register_forward_hook(hook))

    for stage in TABLE.stages:
        stage_module = getattr(model, stage.name)
        watch(stage.name, stage_module)
        for spec in stage.modules:
            watch(f"{stage.name}[{spec['index']}]", stage_module[spec["index"]])
        for i, _block in enumerate(stage.blocks):
            watch(f"{stage.name}[{i}]", stage_module[i])
    model.eval()
    with torch.no_grad():
        model(batch())
    for handle in handles:
        handle.remove()
    return sizes


def test_every_stage_output_size_equals_the_table(reference):
    sizes = _record_sizes(reference)
    expected = {}
    for stage in TABLE.stages:
        expected[stage.name] = stage.output_size
        for spec in stage.modules:
            expected[f"{stage.name}[{spec['index']}]"] = spec["output_size"]
        for i, block in enumerate(stage.blocks):
            expected[f"{stage.name}[{i}]"] = block.output_size
    assert sizes == expected
    # The two sizes the slides state for the stem, spelled out for a reader.
    assert sizes["layer1[0]"][1:] == (16, 16)
    assert sizes["layer1[3]"][1:] == (8, 8)


def test_stem_modules_are_the_tables(reference):
    for spec in TABLE.stage("layer1").modules:
        module = reference.layer1[spec["index"]]
        assert type(module).__name__ == spec["type"]
        for field in ("in_channels", "out_channels", "num_features"):
            if field in spec:
                assert getattr(module, field) == spec[field], (spec["index"], field)
        for field in ("kernel_size", "stride", "padding"):
            if field in spec:
                value = getattr(module, field)
                value = value[0] if isinstance(value, tuple) else value
                assert value == spec[field], (spec["index"], field)


def _block_args(block: ResidualBlock) -> tuple[int, int, int, bool]:
    first, last = block.layer[0][0], block.layer[2][0]
    return (first.in_channels, first.out_channels, last.out_channels, block.downsample)


@pytest.mark.parametrize("stage_name", [s.name for s in TABLE.block_stages])
def test_block_arguments_equal_the_table(reference, stage_name):
    stage = TABLE.stage(stage_name)
    blocks = list(getattr(reference, stage_name))
    assert [type(b) for b in blocks] == [ResidualBlock] * len(stage.blocks)
    assert [_block_args(b) for b in blocks] == [spec.args for spec in stage.blocks]


@pytest.mark.parametrize("stage_name", [s.name for s in TABLE.block_stages])
def test_block_convs_and_shortcuts_equal_the_table(reference, stage_name):
    for block, spec in zip(getattr(reference, stage_name), TABLE.stage(stage_name).blocks):
        for unit, expected in zip(block.layer, TABLE.unit_specs(spec)):
            conv = unit[0]
            assert (conv.in_channels, conv.out_channels) == (expected["in_channels"], expected["out_channels"])
            assert conv.kernel_size[0] == expected["kernel_size"]
            assert conv.stride[0] == expected["stride"]
            assert conv.padding[0] == expected["padding"]
        shortcut = TABLE.shortcut_spec(spec)
        conv = getattr(block, shortcut["name"])[0]
        assert conv.stride[0] == shortcut["stride"]
        assert (conv.in_channels, conv.out_channels) == (shortcut["in_channels"], shortcut["out_channels"])


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_forward_gives_one_score_per_class(reference, train):
    reference.train(train)
    with torch.no_grad():
        out = reference(batch())
    assert out.shape == (2, TABLE.num_classes)
    assert torch.isfinite(out).all()


def test_plain_blocks_project_even_when_channels_agree(reference):
    equal = [b for stage in TABLE.block_stages for b, spec in zip(getattr(reference, stage.name), stage.blocks)
             if not spec.downsample and spec.in_channels == spec.out_channels]
    assert equal, "the table should have plain blocks with in == out channels"
    calls = []
    for block in equal:
        assert isinstance(block.make_equal_channel, nn.Sequential)
        assert not hasattr(block, "downsize")
        block.make_equal_channel.register_forward_hook(lambda *_: calls.append(1))
    reference.eval()
    with torch.no_grad():
        reference(batch(1))
    assert len(calls) == len(equal)


@pytest.mark.parametrize("downsample", [False, True])
def test_no_relu_after_the_addition(downsample):
    # Both branches end in conv1x1's ReLU, so a real block's output is never
    # negative; swap them for identities to see what forward does with the sum.
    block = ResidualBlock(4, 2, 4, downsample)
    block.layer = nn.Identity()
    setattr(block, "downsize" if downsample else "make_equal_channel", nn.Identity())
    x = -torch.ones(1, 4, 2, 2)
    assert torch.equal(block(x), 2 * x)   # a ReLU after the addition would give zeros


def test_block_output_is_branch_plus_shortcut():
    torch.manual_seed(2)
    block = ResidualBlock(8, 4, 16, True).eval()
    x = torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        assert torch.equal(block(x), block.layer(x) + block.downsize(x))
