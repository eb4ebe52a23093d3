"""The bundle's leak scan: no answer key in any file students download.

The answer key is what the full table (``autograder/spec/resnet50_layer4.toml``)
and the solved sources hold beyond the public table: paddings, every block's
argument list, the downsample flags per position, the full table's own field
names, the solution lines and the blanks' original arguments, and the release
markers. :class:`AnswerKey` gathers those facts from the kit's sources;
:func:`scan_text` and :func:`scan_file` look for them in any text -- Python,
TOML, JSON, Markdown, notebooks cell by cell -- in whatever spelling a file
might use: keyword or positional arguments, ``=`` or ``:``, any order of the
block arguments, any whitespace, comments included.

A fact the public table itself spells out is never looked for (the generated
public file passes the scan by construction; a test holds it to that).
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from autograder.release.leaks import solution_snippets
from autograder.release.markers import MARKER_TEXT_RE, find_markers
from autograder.release.notebook import markdown_solution_lines
from autograder.release.steps import mask_magics
from autograder.spec.public import public_table_from

# ---------------------------------------------------------------------------- what a leak is
# A number standing alone: `3`, not the `1` of `conv1x1` or the `3x3` of a kernel size.
_NUMBER_RE = re.compile(r"(?<![\w.])\d+(?![\w.])")
# What may sit between two arguments of one argument list, in any format: commas,
# brackets, quotes, whitespace, table rules (`|`), `;`, `/`, arrows (`->`), and at most
# one `name =` / `"name":` / `name:` label. A kernel size (`3x3`) or other words end the list.
_ARGUMENT_GAP_RE = re.compile(r"""[\s,;/|()\[\]{}'"`<>-]*(?:[A-Za-z_]\w*['"`]?\s*[=:]\s*)?""")
# A padding given as a number: `padding = 3`, `"padding": 1`, `padding=(3, 3)`, "padding 1".
_PADDING_RE = re.compile(r"""\bpadding\b['"]?\s*(?:[=:]\s*)?[(\[]?\s*(\d+)""")
# A block argument bound to a number: `middle_channels = 128`, `"in_channels": 256`.
_BLOCK_ARGUMENT_RE = re.compile(r"""\b(in_channels|middle_channels)\b['"]?\s*[=:]\s*(\d+)""")
# Files the handout itself gives students (VGG-16: 3x3 convs with padding 1, its
# own channel counts): paddings written there are the handout's, not the key's.
HANDOUT_FILES = ("vgg.py",)
# A downsample flag written as data (TOML/JSON spell booleans in lower case; the
# skeleton's Python default `downsample=False` is public and not matched).
_DOWNSAMPLE_FLAG_RE = re.compile(r"""\bdownsample\b['"]?\s*[=:]\s*\[?\s*(true|false)\b""")
# Field names only the full table has (they exist to hold answer-key values).
FULL_TABLE_NAMES = ("stride_downsample", "stride_plain", "shortcut_plain", "shortcut_downsample")
_FULL_TABLE_NAME_RE = re.compile(r"\b(" + "|".join(FULL_TABLE_NAMES) + r")\b")
# A secret value of a head/stem layer (e.g. AvgPool2d's kernel_size) counts when it
# is written within this many lines after the layer's type name.
LAYER_CONTEXT_LINES = 6


@dataclass(frozen=True)
class BundleLeak:
    file: str       # name in the bundle
    line: int       # 1-based, in the file or in the notebook cell
    what: str       # which kind of answer key
    text: str       # the offending line, shortened
    cell: int | None = None

    def __str__(self) -> str:
        where = f"cell {self.cell}, line {self.line}" if self.cell is not None else f"line {self.line}"
        return f"{self.file}, {where}: {self.what}: {self.text}"


@dataclass(frozen=True)
class SecretCall:
    """A blanked call and the argument values the student must find, e.g. MaxPool2d(3, 2, 1)."""
    callee: str                 # the name after the last dot: "MaxPool2d"
    values: tuple[str, ...]     # each argument's value, whitespace removed, keyword names dropped

    def describe(self) -> str:
        return f"{self.callee}({', '.join(self.values)})"


@dataclass
class AnswerKey:
    block_arguments: set[tuple[int, ...]] = field(default_factory=set)   # sorted (in, middle, out)
    block_in_channels: set[int] = field(default_factory=set)   # in_channels of some block
    paddings: set[int] = field(default_factory=set)            # every padding of the full table
    layer_values: list[tuple[str, str, object]] = field(default_factory=list)   # (type, key, value)
    calls: list[SecretCall] = field(default_factory=list)
    snippets: list[str] = field(default_factory=list)        # whitespace-free solution code
    markdown_lines: set[str] = field(default_factory=set)    # solution lines of notebook Markdown


# ---------------------------------------------------------------------------- gathering the key
def _number_windows(text: str, size: int) -> set[tuple[int, ...]]:
    """Every run of ``size`` numbers that reads as one argument list, sorted."""
    found = set()
    for run in _argument_runs(text):
        for i in range(len(run) - size + 1):
            found.add(tuple(sorted(n for n, _ in run[i:i + size])))
    return found


def _argument_runs(text: str) -> list[list[tuple[int, int]]]:
    """Runs of numbers (value, offset) separated only by argument-list punctuation."""
    runs: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    last_end = None
    for match in _NUMBER_RE.finditer(text):
        gap = text[last_end:match.start()] if last_end is not None else None
        if gap is not None and _ARGUMENT_GAP_RE.fullmatch(gap) is None:
            runs.append(current)
            current = []
        current.append((int(match.group()), match.start()))
        last_end = match.end()
    runs.append(current)
    return [run for run in runs if run]


def _secret_calls(solved_text: str, filename: str) -> list[SecretCall]:
    markers = find_markers(solved_text, filename)
    tree = ast.parse(solved_text)
    lines = solved_text.splitlines()
    calls = []
    for blank in markers.blanks:
        found = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.lineno == blank.line == n.end_lineno]
        if not found:
            continue   # a blanked default (num_classes=10): the value is public
        call = min(found, key=lambda c: (c.col_offset, -c.end_col_offset))
        callee = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
        raw = lines[blank.line - 1].encode("utf-8")
        values = [raw[a.col_offset:a.end_col_offset].decode() for a in call.args]
        values += [raw[k.value.col_offset:k.value.end_col_offset].decode() for k in call.keywords]
        calls.append(SecretCall(callee, tuple("".join(v.split()) for v in values)))
    return calls


def build_answer_key(table, public_text: str, solved_sources: dict[str, str],
                     solved_notebooks: tuple = ()) -> AnswerKey:
    """The facts to look for. ``table``: the full table; ``public_text``: the public
    TOML (its own facts are exempt); ``solved_sources``: {name: text} of solved
    ``.py`` files; ``solved_notebooks``: solved notebook nodes."""
    key = AnswerKey()
    public_windows = _number_windows(public_text, 3)
    for stage in table.stages:
        for block in stage.blocks:
            triple = tuple(sorted((block.in_channels, block.middle_channels, block.out_channels)))
            if triple not in public_windows:
                key.block_arguments.add(triple)
            key.block_in_channels.add(block.in_channels)
    key.paddings = {m["padding"] for s in table.stages for m in s.modules if "padding" in m}
    key.paddings |= {u["padding"] for u in table.block_units}
    key.paddings |= {table.shortcut_plain["padding"], table.shortcut_downsample["padding"]}
    public = public_table_from(table)
    for stage in table.stages:
        public_layers = public.stage(stage.name).layers
        layers = list(stage.modules) + ([stage.layer] if stage.layer else [])
        for layer in layers:
            shown = next((p for p in public_layers if p["type"] == layer["type"]), {})
            for name, value in layer.items():
                if name in ("type", "index", "output_size", "padding") or name in shown:
                    continue   # padding has a rule of its own, for every layer
                if name in ("in_channels", "num_features", "in_features", "out_features"):
                    continue   # sizes the public stage sizes already give
                if isinstance(value, int) and not isinstance(value, bool):
                    key.layer_values.append((layer["type"], name, value))
    for name, text in solved_sources.items():
        key.calls += _secret_calls(text, name)
        key.snippets += solution_snippets(text, name)
    for nb in solved_notebooks:
        code = mask_magics("\n".join(c.source for c in nb.cells if c.cell_type == "code"))
        key.snippets += solution_snippets(code, "solved notebook")
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                key.markdown_lines.update(line.strip() for line in markdown_solution_lines(cell.source)
                                          if line.strip())
    public_lines = ["".join(line.split()) for line in public_text.splitlines()]
    key.snippets = [s for s in dict.fromkeys(key.snippets)
                    if s and not any(s in line for line in public_lines)]   # e.g. num_classes=10
    return key


# ---------------------------------------------------------------------------- scanning
def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _short(line: str, limit: int = 100) -> str:
    line = line.strip()
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _call_arguments(text: str, open_paren: int) -> tuple[list[str], int] | None:
    """The top-level arguments of the call whose ``(`` is at ``open_paren``."""
    depth, start, args = 0, open_paren + 1, []
    for i in range(open_paren, min(len(text), open_paren + 400)):
        ch = text[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                args.append(text[start:i])
                return args, i
        elif ch == "," and depth == 1:
            args.append(text[start:i])
            start = i + 1
    return None


def _argument_value(arg: str) -> str:
    squashed = "".join(arg.split())
    value = re.sub(r"^[A-Za-z_]\w*=(?!=)", "", squashed)   # keyword name dropped
    if m := re.fullmatch(r"[(\[](\d+),(\d+)[)\]]", value):   # (3, 3) is 3 for a square kernel
        if m.group(1) == m.group(2):
            return m.group(1)
    return value


def scan_text(text: str, key: AnswerKey, file: str, cell: int | None = None,
              markdown: bool = False) -> list[BundleLeak]:
    """Every place in ``text`` that holds part of the answer key (one leak per line and kind)."""
    lines = text.splitlines()
    handout = file in HANDOUT_FILES
    leaks: dict[tuple[int, str], BundleLeak] = {}

    def add(line: int, what: str) -> None:
        if (line, what) not in leaks and 1 <= line <= max(len(lines), 1):
            leaks[(line, what)] = BundleLeak(file, line, what, _short(lines[line - 1] if lines else ""), cell)

    for number, line in enumerate(lines, 1):
        if MARKER_TEXT_RE.search(line):
            add(number, "release marker")
        if not handout and any(int(m.group(1)) in key.paddings for m in _PADDING_RE.finditer(line)):
            add(number, "a padding value (the slide table gives none)")
        for m in _BLOCK_ARGUMENT_RE.finditer(line):
            if m.group(1) == "middle_channels" or int(m.group(2)) in key.block_in_channels:
                add(number, f"a block argument ({m.group(1)} = {m.group(2)})")
        if _DOWNSAMPLE_FLAG_RE.search(line):
            add(number, "a per-block downsample flag")
        if m := _FULL_TABLE_NAME_RE.search(line):
            add(number, f"a field of the full table ({m.group(1)})")
        squashed = "".join(line.split())
        if any(snippet in squashed for snippet in key.snippets):
            add(number, "a solution line")
        if markdown and line.strip() in key.markdown_lines:
            add(number, "a solution line of the solved notebook's Markdown")
    # Block arguments in any order and format, possibly across lines.
    for run in _argument_runs(text):
        for i in range(len(run) - 2):
            if tuple(sorted(n for n, _ in run[i:i + 3])) in key.block_arguments:
                numbers = ", ".join(str(n) for n, _ in run[i:i + 3])
                add(_line_of(text, run[i][1]), f"a block's argument list ({numbers})")
    # The blanked calls with their original values, positional or keyword.
    for call in key.calls:
        for m in re.finditer(r"\b" + re.escape(call.callee) + r"\s*\(", text):
            parsed = _call_arguments(text, m.end() - 1)
            if parsed and tuple(_argument_value(a) for a in parsed[0] if a.strip()) == call.values:
                add(_line_of(text, m.start()), f"a blank's answer ({call.describe()})")
    # Layer values the slide does not give (AvgPool2d's kernel_size, ...), near the layer's name.
    for layer_type, name, value in key.layer_values:
        value_re = re.compile(r"\b" + re.escape(name) + r"""\b['"]?\s*[=:]\s*[(\[]?\s*""" + str(value) + r"(?!\d)")
        for number, line in enumerate(lines, 1):
            if re.search(r"\b" + re.escape(layer_type) + r"\b", line):
                window = "\n".join(lines[number - 1:number - 1 + LAYER_CONTEXT_LINES + 1])
                if m := value_re.search(window):
                    add(number + window.count("\n", 0, m.start()), f"{layer_type}'s {name} = {value}")
    return sorted(leaks.values(), key=lambda leak: (leak.cell or 0, leak.line, leak.what))


def _is_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def scan_notebook(name: str, text: str, key: AnswerKey) -> list[BundleLeak]:
    try:
        nb = json.loads(text)
        cells = nb["cells"]
    except (ValueError, KeyError, TypeError):
        return [BundleLeak(name, 1, "not a readable notebook (cannot be checked for leaks)", "")]
    leaks: list[BundleLeak] = []
    for index, cell in enumerate(cells):
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        leaks += scan_text(source, key, name, cell=index, markdown=cell.get("cell_type") == "markdown")
        if cell.get("outputs") or cell.get("execution_count") is not None:
            leaks.append(BundleLeak(name, 1, "outputs or an execution count (a run's results)", "", index))
        attachments = cell.get("attachments")
        metadata = json.dumps({"metadata": cell.get("metadata", {}), "attachments": attachments},
                              indent=1, sort_keys=True)
        leaks += [BundleLeak(name, leak.line, leak.what + " (in the cell's metadata)", leak.text, index)
                  for leak in scan_text(metadata, key, name, cell=index)]
    leaks += [BundleLeak(name, leak.line, leak.what + " (in the notebook's metadata)", leak.text)
              for leak in scan_text(json.dumps(nb.get("metadata", {}), indent=1, sort_keys=True), key, name)]
    return leaks


def scan_file(name: str, data: bytes, key: AnswerKey) -> list[BundleLeak]:
    """The leaks of one bundle member; binary files (checkpoints) are not text and are skipped."""
    if not _is_text(data):
        return []
    text = data.decode("utf-8")
    if name.endswith(".ipynb"):
        return scan_notebook(name, text, key)
    return scan_text(text, key, name, markdown=name.endswith(".md"))


def kit_answer_key(root: Path) -> AnswerKey:
    """The answer key of the kit at ``root``: full table, public table, solved sources."""
    import nbformat

    from autograder.release.kit import FULL_TABLE, PUBLIC_TABLE, TARGETS, render_public_table
    from autograder.spec import load_table

    table = load_table.__wrapped__(root / FULL_TABLE)
    public_path = root / PUBLIC_TABLE
    public_text = public_path.read_text(encoding="utf-8") if public_path.exists() else render_public_table(root)
    sources, notebooks = {}, []
    for target in TARGETS:
        path = root / target.solved
        if not path.exists():
            continue
        if path.suffix == ".ipynb":
            notebooks.append(nbformat.read(path, as_version=4))
        else:
            sources[target.solved] = path.read_text(encoding="utf-8")
    return build_answer_key(table, public_text, sources, tuple(notebooks))
