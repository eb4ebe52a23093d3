"""The reference table for ResNet50_layer4, loaded from ``resnet50_layer4.toml``.

One place for the facts of the slide table; the tests, the grader, the notebook's
sanity check and the release all read it through :func:`load_table`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder.spec.public import TableHeader, model_header

try:
    import tomllib
except ModuleNotFoundError:   # Python 3.10 (a student's laptop): the same parser from PyPI
    import tomli as tomllib


TABLE_PATH = Path(__file__).with_name("resnet50_layer4.toml")


@dataclass(frozen=True)
class BlockSpec:
    """One ResidualBlock(in_channels, middle_channels, out_channels, downsample)."""
    in_channels: int
    middle_channels: int
    out_channels: int
    downsample: bool
    output_size: tuple[int, ...]

    @property
    def args(self) -> tuple[int, int, int, bool]:
        return (self.in_channels, self.middle_channels, self.out_channels, self.downsample)

    def describe(self) -> str:
        a, m, o, d = self.args
        return f"ResidualBlock({a}, {m}, {o}, downsample={d})"


@dataclass(frozen=True)
class StageSpec:
    name: str
    slide_row: str
    slide_text: str
    output_size: tuple[int, ...]
    blocks: tuple[BlockSpec, ...] = ()
    modules: tuple[dict[str, Any], ...] = ()   # the stem's layers, in order
    layer: dict[str, Any] | None = None        # avgpool / fc: the single layer


@dataclass(frozen=True)
class Table(TableHeader):
    stages: tuple[StageSpec, ...]
    block_units: tuple[dict[str, Any], ...]
    shortcut_plain: dict[str, Any]
    shortcut_downsample: dict[str, Any]

    @property
    def block_stages(self) -> tuple[StageSpec, ...]:
        return tuple(s for s in self.stages if s.blocks)

    def unit_specs(self, block: BlockSpec) -> list[dict[str, Any]]:
        """The three conv units of a block's `layer`, with numbers filled in."""
        channels = {"in": block.in_channels, "middle": block.middle_channels,
                    "out": block.out_channels}
        units = []
        for unit in self.block_units:
            units.append({
                "kernel_size": unit["kernel_size"],
                "in_channels": channels[unit["in_channels"]],
                "out_channels": channels[unit["out_channels"]],
                "stride": unit["stride_downsample" if block.downsample else "stride_plain"],
                "padding": unit["padding"],
            })
        return units

    def shortcut_spec(self, block: BlockSpec) -> dict[str, Any]:
        spec = dict(self.shortcut_downsample if block.downsample else self.shortcut_plain)
        spec.update(in_channels=block.in_channels, out_channels=block.out_channels)
        return spec


def _stage(raw: dict[str, Any]) -> StageSpec:
    raw = dict(raw)
    blocks = tuple(
        BlockSpec(b["in_channels"], b["middle_channels"], b["out_channels"],
                  bool(b["downsample"]), tuple(b["output_size"]))
        for b in raw.pop("blocks", ())
    )
    modules = tuple(
        {**m, "output_size": tuple(m["output_size"])} for m in raw.pop("modules", ())
    )
    common = {k: raw.pop(k) for k in ("name", "slide_row", "slide_text")}
    output_size = tuple(raw.pop("output_size"))
    layer = raw or None   # what is left describes the single layer (avgpool, fc)
    return StageSpec(output_size=output_size, blocks=blocks, modules=modules, layer=layer, **common)


@functools.lru_cache(maxsize=None)
def load_table(path: Path = TABLE_PATH) -> Table:
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    return Table(
        **model_header(raw["model"]),
        stages=tuple(_stage(s) for s in raw["stages"]),
        block_units=tuple(raw["block"]["units"]),
        shortcut_plain=raw["block"]["shortcut_plain"],
        shortcut_downsample=raw["block"]["shortcut_downsample"],
    )


# ---- rubric --------------------------------------------------------------------
RUBRIC_PATH = Path(__file__).with_name("rubric.toml")
PART_IDS = ("Q1a", "Q1b", "Q2a", "Q2b", "Q2c")
# The checks the grader knows for each part; the rubric gives their points.
PART_CHECKS = {
    "Q1a": ("structure", "state_dict", "function"),
    "Q1b": ("structure", "state_dict", "function"),
    "Q2a": ("num_classes_default", "stem_conv", "stem_maxpool", "stem_function", "layer2_blocks",
            "layer2_function", "fc", "avgpool", "forward"),
    "Q2b": ("blocks", "function"),
    "Q2c": ("blocks", "function"),
}


@dataclass(frozen=True)
class Part:
    id: str
    title: str
    points: float
    checks: dict[str, float]


class RubricError(ValueError):
    pass


def load_rubric(path: Path = RUBRIC_PATH) -> dict[str, Part]:
    """The rubric, checked: every part present and its checks adding up to its points."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RubricError(f"cannot read the rubric {path}: {exc}") from None
    parts = {}
    for part_id in PART_IDS:
        entry = raw.get("parts", {}).get(part_id)
        if entry is None:
            raise RubricError(f"rubric {path} has no [parts.{part_id}]")
        checks = {k: float(v) for k, v in entry.get("checks", {}).items()}
        if set(checks) != set(PART_CHECKS[part_id]):
            raise RubricError(f"rubric {path}: {part_id} must give points to exactly these checks: "
                              f"{', '.join(PART_CHECKS[part_id])}")
        if any(v < 0 for v in checks.values()):
            raise RubricError(f"rubric {path}: {part_id} has a negative number of points")
        points = float(entry["points"])
        if abs(sum(checks.values()) - points) > 1e-9:
            raise RubricError(f"rubric {path}: the checks of {part_id} add up to "
                              f"{sum(checks.values()):g}, not its {points:g} points")
        parts[part_id] = Part(part_id, entry.get("title", part_id), points, checks)
    return parts
