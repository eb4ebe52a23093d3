"""Check a released file for solution text that should not be there.

What counts as solution text comes from the solved source's own markers:
every code line inside a ``### BEGIN SOLUTION`` span, and the call written on
each ``### BLANKS`` line (its callee with the original arguments). A snippet
that also appears in the solved source *outside* every marker is not secret
(the student file keeps it on purpose) and is not looked for. Comparison
ignores whitespace, so re-indented or re-spaced copies are still found.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

from autograder.release.markers import MARKER_TEXT_RE, Markers, find_markers


@dataclass(frozen=True)
class Leak:
    line: int          # 1-based line in the released text
    reason: str        # "solution line" or "marker text"
    text: str          # what was found

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}: {self.text}"


def _squash(text: str) -> str:
    return "".join(text.split()).rstrip(",")


def _code_part(line: str) -> str:
    """A line without its trailing comment (a ``#`` outside quotes, roughly)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


def solution_snippets(solved_text: str, filename: str = "<source>", markers: Markers | None = None) -> list[str]:
    """The whitespace-free code snippets a student file must not contain."""
    markers = markers or find_markers(solved_text, filename)
    lines = solved_text.splitlines()
    secret_lines: set[int] = set()
    snippets: list[str] = []
    for span in markers.spans:
        secret_lines.update(range(span.begin, span.end + 1))
        for number in span.body:
            code = lines[number - 1].strip()
            if code and not code.startswith("#"):
                snippets.append(_squash(_code_part(code)))
    tree = None
    for blank in markers.blanks:
        secret_lines.add(blank.line)
        code = lines[blank.line - 1][:blank.comment_col]
        if tree is None:
            tree = ast.parse(solved_text)
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.lineno == blank.line
                 and n.end_lineno == blank.line]
        defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                and n.lineno == blank.line]
        raw = code.encode("utf-8")
        if defs and defs[0].args.defaults:
            # `name=default` of the blanked parameter
            default = defs[0].args.defaults[-1]
            name = (defs[0].args.posonlyargs + defs[0].args.args)[-1].arg
            snippets.append(_squash(f"{name}={raw[default.col_offset:default.end_col_offset].decode()}"))
        elif calls:
            call = min(calls, key=lambda c: (c.col_offset, -c.end_col_offset))
            snippets.append(_squash(raw[call.col_offset:call.end_col_offset].decode()))
    public = {_squash(_code_part(line)) for number, line in enumerate(lines, 1) if number not in secret_lines}
    unique = []
    for snippet in snippets:
        if snippet and snippet not in unique and not any(snippet in p for p in public):
            unique.append(snippet)
    return unique


def find_leaks(released_text: str, solved_text: str, filename: str = "<source>") -> list[Leak]:
    """Every line of ``released_text`` holding a solution snippet or marker text."""
    snippets = solution_snippets(solved_text, filename)
    leaks: list[Leak] = []
    for number, line in enumerate(released_text.splitlines(), 1):
        if MARKER_TEXT_RE.search(line):
            leaks.append(Leak(number, "marker text", line.strip()))
            continue
        squashed = _squash(_code_part(line))
        for snippet in snippets:
            if snippet in squashed:
                leaks.append(Leak(number, "solution line", line.strip()))
                break
    return leaks
