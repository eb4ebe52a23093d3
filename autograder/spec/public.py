"""The public slide table: only what the handout's table gives, for students.

The student bundle ships ``resnet50_layer4_public.toml`` and this module, never
the full ``resnet50_layer4.toml`` (which also holds the paddings, every block's
argument list and the downsample flags -- the answer key). The public file is
generated from the full one by ``python -m autograder release`` (one source)
and drift-checked by ``release --check``.

What the public table holds, as the slides write it: each stage's output size,
the channels, kernel sizes and strides of the conv units, how many blocks of
each kind a stage has in slide order, the stem's layers with the sizes their
strides imply, the parameter count and the state_dict key count. No padding,
no per-block argument lists, no per-position downsample flags.

This module must stay importable without the full table (it is what students
get), so it reads only the public file; :func:`render_public_toml` takes a full
table object from the caller.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:   # Python 3.10 (a student's laptop): the same parser from PyPI
    import tomli as tomllib

PUBLIC_TABLE_PATH = Path(__file__).with_name("resnet50_layer4_public.toml")
FULL_TABLE_NAME = "resnet50_layer4.toml"   # named in the generated file's header only

# The keys a stem/head layer may carry in the public table: what the slide names
# (type, kernel size, channels, stride) and the size its strides imply. Anything
# else in the full table (padding above all) stays on the instructor's side.
PUBLIC_LAYER_KEYS = ("index", "type", "kernel_size", "out_channels", "stride", "output_size")
# The stem layers the slide names (BatchNorm2d and ReLU are the skeleton's, not the slide's).
SLIDE_LAYER_TYPES = ("Conv2d", "MaxPool2d")


@dataclass(frozen=True)
class PublicUnit:
    """One conv of a bottleneck block as the slide writes it: ``3x3, 64`` or ``1x1, 64, stride 2``."""
    kernel_size: int
    channels: int
    stride: int = 1   # 1 where the slide names no stride

    def slide_text(self) -> str:
        k = self.kernel_size
        text = f"{k}x{k}, {self.channels}"
        return text + (f", stride {self.stride}" if self.stride != 1 else "")


@dataclass(frozen=True)
class PublicGroup:
    """``[units] x repeat``: ``repeat`` consecutive blocks of the same kind."""
    units: tuple[PublicUnit, ...]
    repeat: int

    def slide_text(self) -> str:
        return "[" + "; ".join(u.slide_text() for u in self.units) + f"] x {self.repeat}"

    def block_output_size(self, input_size: tuple[int, ...]) -> tuple[int, ...]:
        """The size one block of this group turns ``input_size`` into, from strides and channels."""
        stride = 1
        for unit in self.units:
            stride *= unit.stride
        return (self.units[-1].channels, *(-(-side // stride) for side in input_size[1:]))


@dataclass(frozen=True)
class PublicStage:
    name: str
    slide_row: str
    slide_text: str
    output_size: tuple[int, ...]
    groups: tuple[PublicGroup, ...] = ()           # bottleneck stages, in slide order
    layers: tuple[dict[str, Any], ...] = ()        # stem and head, as the slide names them

    @property
    def num_blocks(self) -> int:
        return sum(group.repeat for group in self.groups)

    def block_output_sizes(self, input_size: tuple[int, ...]) -> list[tuple[int, ...]]:
        """One size per block, in order, implied by the slide's strides and channels."""
        sizes = []
        size = tuple(input_size)
        for group in self.groups:
            for _ in range(group.repeat):
                size = group.block_output_size(size)
                sizes.append(size)
        return sizes


class StageLookup:
    """Finding stages by name, shared by the full table and the public one
    (the public one ships alone in the student zip, so it lives here)."""
    input_size: tuple[int, ...]
    stages: tuple

    def stage(self, name: str):
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage named {name!r} in the table")

    def stage_input_size(self, name: str) -> tuple[int, ...]:
        """The size a stage receives: the previous stage's output (or the image)."""
        previous = self.input_size
        for stage in self.stages:
            if stage.name == name:
                return previous
            previous = stage.output_size
        raise KeyError(f"no stage named {name!r} in the table")


@dataclass(frozen=True)
class TableHeader(StageLookup):
    """The ``[model]`` fields of both tables (read by ``model_header``); each table adds its stages."""
    class_name: str
    block_class_name: str
    input_size: tuple[int, ...]
    num_classes: int
    parameters: int
    state_dict_keys: int


@dataclass(frozen=True)
class PublicTable(TableHeader):
    stages: tuple[PublicStage, ...]

    @property
    def block_stages(self) -> tuple[PublicStage, ...]:
        return tuple(s for s in self.stages if s.groups)


# --------------------------------------------------------------------------- loading
def _layer(raw: dict[str, Any]) -> dict[str, Any]:
    unknown = set(raw) - set(PUBLIC_LAYER_KEYS)
    if unknown:
        raise ValueError(f"the public table's layer {raw.get('type', '?')} has keys it must not have: "
                         f"{', '.join(sorted(unknown))}")
    layer = dict(raw)
    layer["output_size"] = tuple(layer["output_size"])
    return layer


def _public_stage(raw: dict[str, Any]) -> PublicStage:
    groups = tuple(
        PublicGroup(tuple(PublicUnit(u["kernel_size"], u["channels"], u.get("stride", 1)) for u in g["units"]),
                    int(g["repeat"]))
        for g in raw.get("groups", ())
    )
    return PublicStage(name=raw["name"], slide_row=raw["slide_row"], slide_text=raw["slide_text"],
                       output_size=tuple(raw["output_size"]), groups=groups,
                       layers=tuple(_layer(layer) for layer in raw.get("layers", ())))


def model_header(model: dict[str, Any]) -> dict[str, Any]:
    """The ``[model]`` fields that the full and the public table share."""
    return {"class_name": model["class_name"], "block_class_name": model["block_class_name"],
            "input_size": tuple(model["input_size"]), "num_classes": model["num_classes"],
            "parameters": model["parameters"], "state_dict_keys": model["state_dict_keys"]}


@functools.lru_cache(maxsize=None)
def load_public_table(path: Path = PUBLIC_TABLE_PATH) -> PublicTable:
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    return PublicTable(
        **model_header(raw["model"]),
        stages=tuple(_public_stage(s) for s in raw["stages"]),
    )


# --------------------------------------------------------------------------- from the full table
def groups_of(table, stage) -> tuple[PublicGroup, ...]:
    """A full-table stage's blocks as the slide groups them: consecutive blocks with the
    same units (kernel, channels, stride) form one ``[...] x n`` group."""
    groups: list[PublicGroup] = []
    for block in stage.blocks:
        units = tuple(PublicUnit(u["kernel_size"], u["out_channels"], u["stride"])
                      for u in table.unit_specs(block))
        if groups and groups[-1].units == units:
            groups[-1] = PublicGroup(units, groups[-1].repeat + 1)
        else:
            groups.append(PublicGroup(units, 1))
    return tuple(groups)


def _public_layers(stage) -> tuple[dict[str, Any], ...]:
    if stage.modules:   # the stem: the layers the slide names, with what the slide says of them
        chosen = [m for m in stage.modules if m["type"] in SLIDE_LAYER_TYPES]
    elif stage.layer:   # avgpool / fc: the slide gives the layer and its output size only
        chosen = [{"type": stage.layer["type"], "output_size": stage.output_size}]
    else:
        return ()
    return tuple({k: (tuple(m[k]) if k == "output_size" else m[k]) for k in PUBLIC_LAYER_KEYS if k in m}
                 for m in chosen)


def public_table_from(table) -> PublicTable:
    """The public part of a full :class:`autograder.spec.Table`.

    Raises ValueError when the full table's blocks do not read back as the
    slide text it stores (the two would disagree about the slides)."""
    stages = []
    for stage in table.stages:
        groups = groups_of(table, stage)
        if groups:
            written = ", then ".join(g.slide_text() for g in groups)
            if written != stage.slide_text:
                raise ValueError(f"{stage.name}: the blocks read as {written!r}, "
                                 f"but the table's slide_text is {stage.slide_text!r}")
        stages.append(PublicStage(stage.name, stage.slide_row, stage.slide_text, tuple(stage.output_size),
                                  groups, _public_layers(stage)))
    return PublicTable(table.class_name, table.block_class_name, tuple(table.input_size), table.num_classes,
                       table.parameters, table.state_dict_keys, tuple(stages))


# --------------------------------------------------------------------------- writing TOML
def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to the public table")


def _unit_dict(unit: PublicUnit) -> dict[str, int]:
    return {"kernel_size": unit.kernel_size, "channels": unit.channels, "stride": unit.stride}


def dump_public_toml(public: PublicTable) -> str:
    lines = [
        f"# GENERATED by `python -m autograder release` from {FULL_TABLE_NAME}; do not edit by hand.",
        "# The slide table of ResNet50_layer4 (assignment handout, pages 13-14), as data:",
        "# only what the slides give. Sizes are [channels, height, width] for one",
        "# 3x32x32 CIFAR-10 image. A group is `[unit; unit; unit] x repeat`: `repeat`",
        "# consecutive bottleneck blocks whose convs have these kernel sizes, output",
        "# channels and strides (stride 1 where the slide names none), in slide order.",
        "",
        "[model]",
    ]
    for key in ("class_name", "block_class_name", "input_size", "num_classes", "parameters", "state_dict_keys"):
        lines.append(f"{key} = {_value(getattr(public, key))}")
    for stage in public.stages:
        lines += ["", "[[stages]]"]
        for key in ("name", "slide_row", "slide_text", "output_size"):
            lines.append(f"{key} = {_value(getattr(stage, key))}")
        if stage.layers:
            lines.append("layers = [")
            lines += [f"  {_value(layer)}," for layer in stage.layers]
            lines.append("]")
        if stage.groups:
            lines.append("groups = [")
            for group in stage.groups:
                units = ", ".join(_value(_unit_dict(u)) for u in group.units)
                lines.append(f"  {{ repeat = {group.repeat}, units = [{units}] }},")
            lines.append("]")
    return "\n".join(lines) + "\n"


def render_public_toml(table) -> str:
    """The public TOML text of a full :class:`autograder.spec.Table`."""
    return dump_public_toml(public_table_from(table))
