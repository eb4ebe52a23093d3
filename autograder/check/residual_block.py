"""Q1 on its own: a ResidualBlock class in both modes, unit by unit, against the table.

Needs only the block class, so it works while Q2 is still blank. The block is
built with small sizes of this check's own (not the table's: those are Q2's
answers) and run on a small map; each conv unit's output size is printed next
to what the slide's block implies -- in a downsampling block the first 1x1
conv has stride 2, so it already halves the map. A stride on the 3x3 instead
keeps the block's output size but shows a ✗ at the first unit.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from autograder.check.report import BAD, OK, CheckReport, size_text
from autograder.spec.public import PublicGroup, PublicTable, load_public_table

# Small sizes of this check (a bottleneck: middle < in < out), on an 8x8 map.
IN_CHANNELS, MIDDLE_CHANNELS, OUT_CHANNELS, SIDE = 16, 8, 32, 8


def slide_blocks(table: PublicTable) -> dict[bool, PublicGroup]:
    """The slide's plain block (no stride) and downsampling block (a stride 2), by mode."""
    kinds: dict[bool, PublicGroup] = {}
    for stage in table.block_stages:
        for group in stage.groups:
            kinds.setdefault(any(u.stride != 1 for u in group.units), group)
    return kinds


def implied_units(group: PublicGroup, in_size: tuple[int, int, int]) -> list[tuple[int, tuple[int, ...]]]:
    """(kernel size, output size) of each unit of a block built like ``group`` with this
    check's channels: the last unit gives the block's out channels, the others the middle."""
    units, (side_h, side_w) = [], in_size[1:]
    for i, unit in enumerate(group.units):
        channels = OUT_CHANNELS if i == len(group.units) - 1 else MIDDLE_CHANNELS
        side_h, side_w = -(-side_h // unit.stride), -(-side_w // unit.stride)
        units.append((unit.kernel_size, (channels, side_h, side_w)))
    return units


def _conv_calls(block: nn.Module, x: torch.Tensor):
    """Run ``block`` on ``x``; (kernel size, output size) of each conv in its ``layer``, in call
    order, the block's output size, and the exception that stopped it (or None)."""
    stack = getattr(block, "layer", None)
    stack = stack if isinstance(stack, nn.Module) else block
    calls: list[tuple[int, tuple[int, ...]]] = []
    handles = [m.register_forward_hook(
        lambda mod, _inp, out: calls.append((mod.kernel_size[0], tuple(out.shape[1:]))))
        for m in stack.modules() if isinstance(m, nn.Conv2d)]
    output, error = None, None
    block.eval()   # running statistics: no batch-size requirement
    try:
        with torch.no_grad():
            output = tuple(block(x).shape[1:])
    except Exception as exc:   # reported in the table below the rows
        error = exc
    finally:
        for handle in handles:
            handle.remove()
    return calls, output, error


def check_residual_block(block_class, table: PublicTable | None = None) -> CheckReport:
    """Build ``block_class(in, middle, out, downsample)`` in both modes and compare each conv
    unit's output size (and the block's) with what the slide table implies."""
    table = table or load_public_table()
    in_size = (IN_CHANNELS, SIDE, SIDE)
    report = CheckReport(lines=[
        f"Q1: ResidualBlock({IN_CHANNELS}, {MIDDLE_CHANNELS}, {OUT_CHANNELS}, downsample) on a "
        f"{size_text(in_size)} input (small sizes of this check, not the table's)"])
    for downsample, group in sorted(slide_blocks(table).items(), reverse=True):
        call = f"ResidualBlock({IN_CHANNELS}, {MIDDLE_CHANNELS}, {OUT_CHANNELS}, downsample={downsample})"
        units = "; ".join(f"{u.kernel_size}x{u.kernel_size}" + (f" stride {u.stride}" if u.stride != 1 else "")
                          for u in group.units)
        report.lines += ["", f"{call}, the slide's [{units}] block:"]
        try:
            torch.manual_seed(0)
            block = block_class(IN_CHANNELS, MIDDLE_CHANNELS, OUT_CHANNELS, downsample)
        except NotImplementedError as err:   # a blank still open: it names itself
            report.lines.append(f"  {BAD} not filled in yet: {err}")
            report.unfinished.append(str(err))
            continue
        except Exception as err:
            report.lines.append(f"  {BAD} {call} cannot be built: {type(err).__name__}: {err}")
            report.problems.append(f"{call} cannot be built ({type(err).__name__}: {err})")
            continue
        calls, output, error = _conv_calls(block, torch.randn(2, *in_size))
        expected = implied_units(group, in_size)
        report.lines.append(f"  {'unit':<14}  {'the table implies':>24}  {'found':>24}")
        for i in range(max(len(expected), len(calls))):
            want = f"{expected[i][0]}x{expected[i][0]} conv -> {size_text(expected[i][1])}" if i < len(expected) else "(no unit)"
            got = f"{calls[i][0]}x{calls[i][0]} conv -> {size_text(calls[i][1])}" if i < len(calls) else "not reached"
            ok = i < len(expected) and i < len(calls) and calls[i] == expected[i]
            report.lines.append(f"  {f'conv {i + 1} of layer':<14}  {want:>24}  {got:>24}  {OK if ok else BAD}")
            if not ok:
                report.problems.append(f"downsample={downsample}, conv {i + 1} of layer: {got} "
                                       f"where the table implies {want}")
        want_out = (OUT_CHANNELS, *expected[-1][1][1:])
        ok = output == want_out
        report.lines.append(f"  {'block output':<14}  {size_text(want_out):>24}  "
                            f"{size_text(output):>24}  {OK if ok else BAD}")
        if error is not None:
            report.lines.append(f"  {BAD} the forward pass stopped: {type(error).__name__}: {error}")
            report.problems.append(f"downsample={downsample}: the forward pass stopped with {type(error).__name__}")
        elif not ok:
            report.problems.append(f"downsample={downsample}: the block gives {size_text(output)} "
                                   f"where the table implies {size_text(want_out)}")
    report.lines.append("")
    if report.unfinished:
        report.lines.append(f"{BAD} Q1 is not finished")
    elif report.problems:
        count = len(report.problems)
        report.lines.append(f"{BAD} ResidualBlock does not match the table in {count} place{'s' if count != 1 else ''}")
    else:
        report.lines.append(f"{OK} ResidualBlock matches the table in both modes")
    return report
