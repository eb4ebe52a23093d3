"""A whole ResNet50_layer4 against the public slide table, as text.

Reads only the public table (``autograder.spec.public``): what the slides give,
no paddings and no block arguments. One row per stage, per stem layer the slide
names and per block, each with the output size the slide's strides and channels
imply, so a block that downsamples in the wrong position shows a ✗ on its own
row even when the stage's output size is right.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch.nn as nn

from autograder.check.describe import count_parameters, key_diff, observe_calls
from autograder.spec.public import PublicStage, PublicTable, load_public_table

OK, BAD = "\u2713", "\u2717"   # check mark, ballot x
KIT_ROOT = Path(__file__).resolve().parents[2]
REFERENCE_CHECKPOINT = "resnet50_epoch285.ckpt"


def size_text(size) -> str:
    return "not reached" if size is None else " x ".join(str(n) for n in size)


@dataclass(frozen=True)
class Row:
    label: str                         # where in the model, e.g. "layer3[0]"
    what: str                          # what the slide table says for it
    expected: tuple[int, ...] | None   # None: the table has nothing here (an extra block)
    found: tuple[int, ...] | None      # None: never reached, or not in the model
    missing_text: str = "not reached"  # what "found" says when there is nothing
    input_ok: bool = True              # False: what came into it already had the wrong size

    @property
    def ok(self) -> bool:
        return self.expected is not None and self.found == self.expected

    def found_text(self) -> str:
        return self.missing_text if self.found is None else size_text(self.found)

    def expected_text(self) -> str:
        return "(none)" if self.expected is None else size_text(self.expected)

    def problem(self) -> str:
        if self.expected is None:
            return f"{self.label.strip()} is one block more than the table has"
        if self.found is None:
            return f"{self.label.strip()}: {self.missing_text}, the table implies {size_text(self.expected)}"
        return f"{self.label.strip()} gives {size_text(self.found)} where the table implies {size_text(self.expected)}"


@dataclass
class CheckReport:
    """Lines to print, one short phrase per mismatch (each ✗), and the blanks still
    open (a model that cannot be built cannot be trained, flag or not)."""
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    # The problems that only follow from an earlier wrong size (a row whose input was
    # already wrong, a forward pass stopped by it): not places to fix of their own.
    follow_on: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def places_to_fix(self) -> list[str]:
        """The problems to fix, in the order the image goes through the model."""
        return [p for p in self.problems if p not in self.follow_on] or self.problems[:1]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def __str__(self) -> str:
        return self.text


def _layer_text(layer: dict) -> str:
    k = layer.get("kernel_size")
    kind = {"Conv2d": "conv", "MaxPool2d": "max pool"}.get(layer["type"], layer["type"])
    parts = [f"{k}x{k} {kind}" if k else kind]
    if "out_channels" in layer:
        parts.append(f"channel = {layer['out_channels']}")
    if layer.get("stride", 1) != 1:
        parts.append(f"stride = {layer['stride']}")
    return ", ".join(parts)


def _stage_blocks(stage_module: nn.Module) -> list[nn.Module]:
    if isinstance(stage_module, (nn.Sequential, nn.ModuleList)):
        return list(stage_module)
    return [stage_module]


def _stem_layers(stage: PublicStage, stage_module: nn.Module | None):
    """(public layer, module or None) for each layer the slide names in the stem,
    found by type in order (the table holds no index into the student's stem)."""
    modules = list(stage_module.modules())[1:] if stage_module is not None else []
    pairs, used = [], {}
    for layer in stage.layers:
        of_type = [m for m in modules if type(m).__name__ == layer["type"]]
        nth = used.get(layer["type"], 0)
        used[layer["type"]] = nth + 1
        pairs.append((layer, of_type[nth] if nth < len(of_type) else None))
    return pairs


def model_rows(model: nn.Module, table: PublicTable | None = None) -> tuple[list[Row], Exception | None]:
    """One row per stage, stem layer and block, with the size found by one forward pass."""
    table = table or load_public_table()
    plan: list[tuple[str, str, tuple | None, nn.Module | None, str]] = []
    for stage in table.stages:
        stage_module = getattr(model, stage.name, None)
        if not isinstance(stage_module, nn.Module):
            stage_module = None
        plan.append((stage.name, stage.slide_row, stage.output_size, stage_module,
                     "not in your model"))
        if stage.groups:
            expected = stage.block_output_sizes(table.stage_input_size(stage.name))
            texts = [g.slide_text().rsplit(" x ", 1)[0] for g in stage.groups for _ in range(g.repeat)]
            blocks = _stage_blocks(stage_module) if stage_module is not None else []
            for i in range(max(len(expected), len(blocks))):
                plan.append((f"  {stage.name}[{i}]", texts[i] if i < len(texts) else "",
                             expected[i] if i < len(expected) else None,
                             blocks[i] if i < len(blocks) else None,
                             f"no block {i} in your {stage.name}"))
        elif any("kernel_size" in layer for layer in stage.layers):   # the stem (head layers are the stage)
            for layer, module in _stem_layers(stage, stage_module):
                plan.append((f"  {layer['type']}", _layer_text(layer), tuple(layer["output_size"]), module,
                             f"no {layer['type']} in your {stage.name}"))
    probes = [(label, module) for label, _, _, module, _ in plan if module is not None]
    sizes, error = observe_calls(model, probes, table.input_size)
    for stage in table.block_stages:   # a ModuleList is never called itself: its last block speaks for it
        stage_module = getattr(model, stage.name, None)
        if stage.name not in sizes and isinstance(stage_module, nn.ModuleList) and len(stage_module):
            last = f"  {stage.name}[{len(stage_module) - 1}]"
            if last in sizes:
                sizes[stage.name] = sizes[last]
    rows = []
    for label, what, expected, module, absent in plan:
        missing_text = absent if module is None else "not reached"
        rows.append(Row(label, what, expected, sizes.get(label), missing_text))
    return _with_inputs_checked(rows), error


def _with_inputs_checked(rows: list[Row]) -> list[Row]:
    """Mark each row whose input already had the wrong size. The image flows through the
    stages in order and, inside a stage, through its indented rows (stem layers, blocks)
    one after the other; a stage's own row only sums up its indented rows, so a ✗ among
    them already explains it."""
    checked: list[Row] = []
    flow_ok, i = True, 0
    while i < len(rows):
        stage, inner = rows[i], []
        i += 1
        while i < len(rows) and rows[i].label.startswith(" "):
            inner.append(rows[i])
            i += 1
        came_in_ok = flow_ok
        for row in inner:
            inner_checked = replace(row, input_ok=came_in_ok)
            came_in_ok = row.ok
            checked.append(inner_checked)
        checked.insert(len(checked) - len(inner), replace(stage, input_ok=flow_ok and all(r.ok for r in inner)))
        flow_ok = stage.ok
    return checked


def _flow_order(rows: list[Row]) -> list[Row]:
    """The rows in the order the image reaches them: a stage's inner rows before its own."""
    ordered, stage = [], None
    for row in rows:
        if row.label.startswith(" "):
            ordered.append(row)
            continue
        if stage is not None:
            ordered.append(stage)
        stage = row
    return ordered + ([stage] if stage is not None else [])


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


def check_model(model: nn.Module, checkpoint_state_dict=None, table: PublicTable | None = None) -> CheckReport:
    """Every stage, stem layer and block of ``model`` next to the slide table, ✓ or ✗;
    the parameter and key counts; the key diff against a checkpoint when given."""
    table = table or load_public_table()
    rows, error = model_rows(model, table)
    report = CheckReport()
    label_width = max(len(r.label) for r in rows)
    what_width = min(max(len(r.what) for r in rows), 48)
    report.lines += [
        f"{table.class_name} against the slide table, for one {size_text(table.input_size)} image",
        f"{'module':<{label_width}}  {'slide table':<{what_width}}  {'expected':>14}  {'found':>14}",
        "-" * (label_width + what_width + 36),
    ]
    for row in rows:
        what = row.what if len(row.what) <= what_width else row.what[:what_width - 3] + "..."
        report.lines.append(f"{row.label:<{label_width}}  {what:<{what_width}}  {row.expected_text():>14}"
                            f"  {row.found_text():>14}  {OK if row.ok else BAD}")
    for row in _flow_order(rows):
        if not row.ok:
            report.problems.append(row.problem())
            if not row.input_ok:
                report.follow_on.append(row.problem())
    if error is not None:
        report.lines.append(f"{BAD} the forward pass stopped: {type(error).__name__}: {error}")
        stopped = f"the forward pass stopped with {type(error).__name__}"
        report.problems.append(stopped)
        # The row where it stopped (the first one not reached) already counts this place.
        if any(r.found is None and r.expected is not None and r.missing_text == "not reached" for r in rows):
            report.follow_on.append(stopped)
    row_problems = len(report.problems)
    params = count_parameters(model)
    mark = OK if params == table.parameters else BAD
    report.lines.append(f"parameters: {params:,} (table: {table.parameters:,}) {mark}")
    if params != table.parameters:
        report.problems.append(f"{params:,} parameters where the table's model has {table.parameters:,}")
    keys = len(model.state_dict())
    mark = OK if keys == table.state_dict_keys else BAD
    report.lines.append(f"state_dict keys: {keys} (table: {table.state_dict_keys}) {mark}")
    if keys != table.state_dict_keys:
        report.problems.append(f"{keys} state_dict keys where the table's model has {table.state_dict_keys}")
    if checkpoint_state_dict is not None:
        missing, unexpected, mismatched = key_diff(model, checkpoint_state_dict)
        report.lines.append(format_key_diff(missing, unexpected, mismatched))
        if missing or unexpected or mismatched:
            report.problems.append(f"the checkpoint's keys do not fit ({len(missing)} missing, "
                                   f"{len(unexpected)} unexpected, {len(mismatched)} wrong shape)")
    # The counts are totals that point nowhere: where a row is wrong, that row is the place to
    # fix (a wrong channel count changes the sizes and the counts alike).
    row_places = [p for p in report.problems[:row_problems] if p not in report.follow_on]
    if row_places:
        report.follow_on += report.problems[row_problems:]
    if report.problems:
        report.lines.append(f"{BAD} {mismatch_summary('the model', [report])}")
    else:
        report.lines.append(f"{OK} every row matches the slide table")
    return report


def places(count: int) -> str:
    return f"{count} place{'s' if count != 1 else ''}"


def mismatch_summary(subject: str, reports, table: str = "the table") -> str:
    """One sentence for the ✗ of several reports: the honest count, the first place to fix,
    and how many of the others only follow from a wrong size before them."""
    problems = [p for report in reports for p in report.problems]
    to_fix = [p for report in reports if report.problems for p in report.places_to_fix]
    if not problems:
        return f"{subject} matches {table}"
    sentence = f"{subject} does not match {table} in {places(len(problems))}"
    if len(problems) == 1:
        return f"{sentence}: {problems[0]}"
    sentence += f"; start with the first, {to_fix[0]}"
    follow = len(problems) - len(to_fix)
    if len(to_fix) == 1:
        return f"{sentence}; the other {follow} only follow from it"
    if follow:
        return f"{sentence}; {len(to_fix)} are places to fix, the other {follow} follow from those"
    return sentence


def sanity_report(model: nn.Module, checkpoint_state_dict=None, table: PublicTable | None = None) -> str:
    """:func:`check_model` as text."""
    return check_model(model, checkpoint_state_dict, table).text


# ---- python -m autograder table (TA side: needs solutions/) ------------------------------------

def _load_reference_class(kit_root: Path):
    """The reference ResNet50_layer4, imported from its file (works from any directory)."""
    import importlib.util
    path = kit_root / "solutions" / "resnet50_skeleton.py"
    spec = importlib.util.spec_from_file_location("kit_reference_resnet50", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ResNet50_layer4


def print_reference_table(kit_root: Path | None = None) -> int:
    """``python -m autograder table``: the reference model against the slide table, and
    against ``checkpoints/resnet50_epoch285.ckpt`` when it is there. Returns the exit status:
    1 when the reference does not match the table or the checkpoint does not fit it."""
    import torch
    kit_root = Path(kit_root or KIT_ROOT)
    model = _load_reference_class(kit_root)()
    print("Reference ResNet50_layer4 (solutions/resnet50_skeleton.py) against the slide table")
    report = check_model(model)
    print(report.text)
    status = 0 if report.ok else 1
    checkpoint = kit_root / "checkpoints" / REFERENCE_CHECKPOINT
    if not checkpoint.is_file():
        print(f"no checkpoint to compare with: {checkpoint} does not exist "
              f"(put the course's {REFERENCE_CHECKPOINT} there to check that it loads into the reference)")
        return status
    print(f"against {checkpoint}:")
    try:
        state_dict = torch.load(checkpoint, weights_only=True, map_location="cpu")
    except Exception as exc:   # a truncated or foreign file: say so in one line
        reason = (str(exc).strip().splitlines() or [""])[0]   # torch's messages run over many lines
        print(f"{BAD} {checkpoint} is not a readable checkpoint ({type(exc).__name__}: {reason})")
        return 1
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        print(f"{BAD} {checkpoint} does not hold a state_dict (a dict of tensors)")
        return 1
    missing, unexpected, mismatched = key_diff(model, state_dict)
    print(format_key_diff(missing, unexpected, mismatched))
    return 1 if (missing or unexpected or mismatched) else status
