"""The steps that turn solved Python source into student source.

Each step is a plain function ``text -> text`` that finds what it needs in the
text it is given, so each can be run and tested alone and the order of
composition does not matter for the marker steps. ``only`` (a set of marker
labels) restricts a marker step to some markers -- the tests use it to build a
file with exactly one part left blank.
"""
from __future__ import annotations

import ast
import json
import re
from collections.abc import Collection

from autograder.release.markers import BlanksLine, Markers, ReleaseError, find_markers

# A notebook cell may hold IPython syntax that is not Python; such lines are
# masked (same line count, same columns elsewhere) before tokenizing/parsing.
_MAGIC_RE = re.compile(r"^\s*[%!]")


def python_literal(text: str) -> str:
    """``text`` as a double-quoted Python string literal."""
    return json.dumps(text, ensure_ascii=False)


def mask_magics(text: str) -> str:
    return "\n".join("#" if _MAGIC_RE.match(line) else line for line in text.split("\n"))


def _selected(label: str, only: Collection[str] | None) -> bool:
    return only is None or label in only


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


# --------------------------------------------------------------------------- spans
def solution_span_replacement(indent: str, label: str, in_brackets: bool, style: str) -> list[str]:
    """What a BEGIN/END span becomes.

    ``style="blank"``: one ``blank("Qn: what")`` line (with a trailing comma when
    the span is an item of an open call or list). ``style="raise"``: nbgrader's
    ``# YOUR CODE HERE`` + ``raise NotImplementedError(...)``, which is only valid
    as a statement, so inside brackets it falls back to ``blank(...)``.
    """
    if style == "raise" and not in_brackets:
        message = python_literal(f"{label} is not filled in")
        return [f"{indent}# YOUR CODE HERE\n", f"{indent}raise NotImplementedError({message})\n"]
    if style not in ("blank", "raise"):
        raise ValueError(f"unknown span style {style!r}")
    comma = "," if in_brackets else ""
    return [f"{indent}blank({python_literal(label)}){comma}\n"]


def replace_solution_spans(text: str, *, filename: str = "<source>", only: Collection[str] | None = None,
                           style: str = "blank") -> str:
    """Replace every ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` span (markers included)."""
    markers = find_markers(mask_magics(text), filename)
    lines = _lines(text)
    for span in sorted(markers.spans, key=lambda s: s.begin, reverse=True):
        if _selected(span.label, only):
            lines[span.begin - 1:span.end] = solution_span_replacement(
                span.indent, span.label, span.in_brackets, style)
    return "".join(lines)


# --------------------------------------------------------------------------- BLANKS
def _outermost_call_on(tree: ast.AST, line: int) -> ast.Call | None:
    calls = [node for node in ast.walk(tree)
             if isinstance(node, ast.Call) and node.lineno == line and node.end_lineno == line]
    if not calls:
        return None
    return min(calls, key=lambda c: (c.col_offset, -c.end_col_offset))


def _def_on(tree: ast.AST, line: int) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.lineno == line:
            return node
    return None


def _splice(line: str, start: int, end: int, new: str) -> str:
    """Replace byte columns ``start:end`` (ast counts UTF-8 bytes) of ``line``."""
    raw = line.encode("utf-8")
    return (raw[:start].decode("utf-8") + new + raw[end:].decode("utf-8"))


def _strip_marker_comment(line: str, marker: BlanksLine) -> str:
    code = line[:marker.comment_col].rstrip()
    ending = "\n" if line.endswith("\n") else ""
    return code + ending


def blanked_call_line(line: str, call: ast.Call, label: str, filename: str, lineno: int) -> str:
    """``f(a, b, c)`` -> ``f(*blanks(3, "label"))`` on one line of source."""
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        raise ReleaseError(filename, lineno, "'### BLANKS' cannot blank a call that uses *args or **kwargs")
    count = len(call.args) + len(call.keywords)
    if count == 0:
        raise ReleaseError(filename, lineno, "'### BLANKS' on a call without arguments: nothing to blank")
    return _splice(line, call.func.end_col_offset, call.end_col_offset,
                   f"(*blanks({count}, {python_literal(label)}))")


def _reject_line_position(func: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """The 0-based line index before which the ``reject_blank_defaults`` line goes."""
    body = func.body
    first = body[0]
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str) and len(body) > 1):
        first = body[1]   # keep a docstring first
    for stmt in body:
        if (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
                and isinstance(stmt.value.func, ast.Attribute) and stmt.value.func.attr == "__init__"
                and isinstance(stmt.value.func.value, ast.Call)
                and isinstance(stmt.value.func.value.func, ast.Name)
                and stmt.value.func.value.func.id == "super"):
            return stmt.end_lineno   # right after the super().__init__(...) call
    return first.lineno - 1


REJECT_COMMENT = "# delete this line once the default is filled in"


def replace_blanks_lines(text: str, *, filename: str = "<source>", only: Collection[str] | None = None) -> str:
    """Blank out the call (or the last default of the ``def``) on every ``### BLANKS`` line."""
    masked = mask_magics(text)
    markers: Markers = find_markers(masked, filename)
    selected = [b for b in markers.blanks if _selected(b.label, only)]
    if not selected:
        return text
    try:
        tree = ast.parse(masked, filename=filename)
    except SyntaxError as exc:
        raise ReleaseError(filename, exc.lineno, f"not valid Python: {exc.msg}") from None
    lines = _lines(text)
    inserts: list[tuple[int, str]] = []   # (0-based index to insert before, line)
    for marker in selected:
        index = marker.line - 1
        line = _strip_marker_comment(lines[index], marker)
        func = _def_on(tree, marker.line)
        if func is not None:
            args = func.args
            positional = args.posonlyargs + args.args
            if args.defaults and args.defaults[-1].lineno == marker.line == args.defaults[-1].end_lineno:
                default, name = args.defaults[-1], positional[-1].arg
            else:
                raise ReleaseError(filename, marker.line, "'### BLANKS' on a def: its last positional "
                                                          "parameter needs a default on this line to blank")
            if func.body[0].lineno == func.lineno:
                raise ReleaseError(filename, marker.line, "'### BLANKS' on a def whose body is on the same line")
            line = _splice(line, default.col_offset, default.end_col_offset,
                           f"blank_default({python_literal(marker.label)})")
            position = _reject_line_position(func)
            body_line = lines[func.body[0].lineno - 1]
            indent = body_line[:len(body_line) - len(body_line.lstrip())]
            inserts.append((position, f"{indent}reject_blank_defaults({name})  {REJECT_COMMENT}\n"))
        else:
            call = _outermost_call_on(tree, marker.line)
            if call is None:
                raise ReleaseError(filename, marker.line, "'### BLANKS' on a line with no call "
                                                          "(nothing whose arguments can be blanked)")
            line = blanked_call_line(line, call, marker.label, filename, marker.line)
        lines[index] = line
    for position, new_line in sorted(inserts, reverse=True):
        lines.insert(position, new_line)
    return "".join(lines)


# --------------------------------------------------------------------------- module layout
def split_module_docstring(text: str) -> tuple[str | None, str]:
    """(the module docstring's source text or None, everything after it)."""
    tree = ast.parse(text)
    if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant) \
            and isinstance(tree.body[0].value.value, str):
        end = tree.body[0].end_lineno
        lines = _lines(text)
        return "".join(lines[:end]), "".join(lines[end:])
    return None, text


def replace_module_docstring(text: str, docstring: str) -> str:
    """Swap the module docstring (or add one) for ``docstring`` (the text, without quotes)."""
    if '"""' in docstring:
        raise ValueError("a student docstring cannot contain triple double quotes")
    _, rest = split_module_docstring(text)
    return f'"""{docstring}"""\n' + rest


def insert_after_imports(text: str, block: str) -> str:
    """Insert ``block`` after the imports that open the module (after its docstring)."""
    tree = ast.parse(text)
    body = list(tree.body)
    end = 0
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        end = body.pop(0).end_lineno
    for stmt in body:
        if not isinstance(stmt, (ast.Import, ast.ImportFrom)):
            break
        end = stmt.end_lineno
    lines = _lines(text)
    head, tail = "".join(lines[:end]), "".join(lines[end:]).lstrip("\n")
    return f"{head}\n\n{block.strip(chr(10))}\n\n\n{tail}"


def prepend_notice(text: str, notice: str) -> str:
    """Put a comment block (``notice``, one comment per line) at the very top."""
    comment = "".join(f"# {line}".rstrip() + "\n" for line in notice.strip("\n").split("\n"))
    return comment + text
