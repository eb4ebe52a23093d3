"""Stage-by-stage comparison of a model with the slide table, as text."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from autograder.check.describe import count_parameters, key_diff, observe_sizes
from autograder.spec import Table, load_table

OK, BAD = "\u2713", "\u2717"   # check mark, ballot x


@dataclass(frozen=True)
class StageRow:
    path: str            # module path in the model, e.g. "layer1[0]" shown as layer1.0
    what: str            # what the slide table says for it
    expected: tuple[int, ...]
    found: tuple[int, ...] | None   # None: never reached

    @property
    def ok(self) -> bool:
        return self.found == self.expected


def size_text(size) -> str:
    return "not reached" if size is None else " x ".join(str(n) for n in size)


def expected_sizes(table: Table) -> list[tuple[str, str, tuple[int, ...]]]:
    """(module path, description, output size) for every row the table fixes."""
    rows = []
    for stage in table.stages:
        for module in stage.modules:   # inside the stem: a wrong padding can still end at 8x8
            rows.append((f"{stage.name}.{module['index']}", f"  {module['type']}", module["output_size"]))
        rows.append((stage.name, stage.slide_row, stage.output_size))
    return rows


def stage_rows(model: nn.Module, table: Table | None = None) -> tuple[list[StageRow], Exception | None]:
    table = table or load_table()
    wanted = expected_sizes(table)
    sizes, error = observe_sizes(model, [path for path, _, _ in wanted], table.input_size)
    rows = [StageRow(path, what, expected, sizes.get(path)) for path, what, expected in wanted]
    return rows, error


def format_key_diff(missing, unexpected, mismatched, limit: int = 12) -> str:
    """The three lists of a failed strict load, readable, each cut after ``limit`` entries."""
    def listing(title, items):
        if not items:
            return []
        shown = [f"    {item}" for item in items[:limit]]
        if len(items) > limit:
            shown.append(f"    ... and {len(items) - limit} more")
        return [f"  {title} ({len(items)}):", *shown]

    if not (missing or unexpected or mismatched):
        return "state_dict keys: all match the checkpoint (strict load will work)"
    lines = ["state_dict keys do not match the checkpoint:"]
    lines += listing("missing in your model", list(missing))
    lines += listing("unexpected (your model has them, the checkpoint does not)", list(unexpected))
    lines += listing("wrong shape (checkpoint vs your model)",
                     [f"{k}: {size_text(a)} vs {size_text(b)}" for k, a, b in mismatched])
    return "\n".join(lines)


def sanity_report(model: nn.Module, checkpoint_state_dict=None, table: Table | None = None) -> str:
    """Text report: each stage's output size next to the slide table, ✓ or ✗,
    the parameter count, and the key diff against a checkpoint when given."""
    table = table or load_table()
    rows, error = stage_rows(model, table)
    width = max(len(r.path) for r in rows)
    what_width = max(len(r.what) for r in rows)
    lines = [f"{'module':<{width}}  {'slide table':<{what_width}}  {'expected':>14}  {'found':>14}",
             "-" * (width + what_width + 36)]
    for row in rows:
        mark = OK if row.ok else BAD
        lines.append(f"{row.path:<{width}}  {row.what:<{what_width}}  {size_text(row.expected):>14}"
                     f"  {size_text(row.found):>14}  {mark}")
    if error is not None:
        lines.append(f"{BAD} the forward pass stopped: {type(error).__name__}: {error}")
    params = count_parameters(model)
    mark = OK if params == table.parameters else BAD
    lines.append(f"parameters: {params:,} (table: {table.parameters:,}) {mark}")
    keys = len(model.state_dict())
    mark = OK if keys == table.state_dict_keys else BAD
    lines.append(f"state_dict keys: {keys} (table: {table.state_dict_keys}) {mark}")
    if checkpoint_state_dict is not None:
        lines.append(format_key_diff(*key_diff(model, checkpoint_state_dict)))
    return "\n".join(lines)


def print_reference_table() -> None:
    """``python -m autograder table``: the reference model against the slide table."""
    from solutions.resnet50_skeleton import ResNet50_layer4
    model = ResNet50_layer4()
    print("Reference ResNet50_layer4 (solutions/resnet50_skeleton.py) against the slide table")
    print(sanity_report(model, model.state_dict()))
