"""What the grader sends to each sandbox, and the reference observations.

Built once per batch in the trusted process: fixed inputs, seeded reference
weights, and the reference solution's own probe report on the very same request.
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from autograder.grade.probe import probe_module
from autograder.spec import Table, load_table

SEED = 20261125


@dataclass(frozen=True)
class BlockCase:
    name: str
    part: str                      # Q1a (downsample) or Q1b (plain)
    args: tuple[int, int, int, bool]
    input_size: tuple[int, ...]    # one sample; the batch holds two


# Two cases per branch: one from the table, one with channels the table never
# uses (catches hard-coded numbers) and odd-sized maps.
BLOCK_CASES = (
    BlockCase("downsample_table", "Q1a", (256, 64, 256, True), (256, 8, 8)),
    BlockCase("downsample_small", "Q1a", (48, 16, 96, True), (48, 6, 6)),
    BlockCase("plain_table", "Q1b", (64, 64, 256, False), (64, 8, 8)),
    BlockCase("plain_same_width", "Q1b", (96, 32, 96, False), (96, 5, 5)),
)


def _randomize_batchnorm(module: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial BatchNorm statistics, so eval mode is not a near identity."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = 0.5 + torch.rand(n, generator=generator)
            m.bias.data = 0.1 * torch.randn(n, generator=generator)
            m.running_mean = 0.1 * torch.randn(n, generator=generator)
            m.running_var = 0.5 + torch.rand(n, generator=generator)


def _stage_inputs(table: Table, generator: torch.Generator) -> dict[str, torch.Tensor]:
    inputs = {"model": torch.randn(2, *table.input_size, generator=generator)}
    for stage in table.stages:
        inputs[stage.name] = torch.randn(2, *table.stage_input_size(stage.name), generator=generator)
    inputs["fc"] = inputs["fc"].flatten(1)
    return inputs


def _stage_sizes(table: Table) -> dict[str, dict[str, list[int]]]:
    """Each stage's input and output size, for the stand-in stages that check how
    forward() wires them (fc receives the flattened avgpool output)."""
    sizes = {}
    for stage in table.stages:
        given = list(table.stage_input_size(stage.name))
        sizes[stage.name] = {"in": [math.prod(given)] if stage.name == "fc" else given,
                             "out": list(stage.output_size)}
    return sizes


@dataclass
class Expectations:
    table: Table
    request: dict
    request_bytes: bytes
    reference: dict     # the reference solution's probe report (JSON-shaped)


def build_expectations(reference_module=None, table: Table | None = None) -> Expectations:
    table = table or load_table()
    if reference_module is None:
        import solutions.resnet50_skeleton as reference_module
    generator = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    q1 = []
    for case in BLOCK_CASES:
        block = reference_module.ResidualBlock(*case.args)
        _randomize_batchnorm(block, generator)
        q1.append({"name": case.name, "args": list(case.args),
                   "input": torch.randn(2, *case.input_size, generator=generator),
                   "state_dict": {k: v.clone() for k, v in block.state_dict().items()}})
    model = reference_module.ResNet50_layer4()
    _randomize_batchnorm(model.layer1, generator)
    weights = {k: v.clone() for k, v in model.state_dict().items()
               if k.startswith(("layer1.", "fc."))}
    request = {"q1": q1, "q2": {"state_dict": weights, "inputs": _stage_inputs(table, generator),
                                "stage_sizes": _stage_sizes(table)}}
    buffer = io.BytesIO()
    torch.save(request, buffer)
    request_bytes = buffer.getvalue()
    # Round-trip through JSON so the reference looks exactly like a student's report.
    reference = json.loads(json.dumps(probe_module(reference_module, request)))
    return Expectations(table, request, request_bytes, reference)
