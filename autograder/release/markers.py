"""Find and validate the release markers in a solved Python source.

Two kinds of marker, both written as comments so the solved source still runs:

* a span, each marker on a line of its own::

      ### BEGIN SOLUTION Q1: the downsample branch of ResidualBlock
      ...solved lines...
      ### END SOLUTION

* a single line ending with ``### BLANKS Q2: the MaxPool2d arguments in layer1``:
  the call on that line (or the last default of the ``def`` on that line) is
  the part the student fills in.

Markers are found with :mod:`tokenize`, so text that merely looks like a marker
inside a string literal is not one. Anything that starts like a marker but does
not follow the grammar above is an error, never silently ignored.
"""
from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass


class ReleaseError(ValueError):
    """A solved source whose markers cannot be released as written."""

    def __init__(self, filename: str, line: int | None, message: str):
        self.filename = filename
        self.line = line
        self.message = message
        where = f"{filename}, line {line}" if line is not None else filename
        super().__init__(f"{where}: {message}")


# `Qn: what` -- the label every marker carries; it is also what the student's
# error message names, so it must say which question and which part.
_LABEL = r"(?P<label>Q\d+[a-z]?: \S.*?)"
BEGIN_RE = re.compile(r"^###\s+BEGIN SOLUTION\s+" + _LABEL + r"\s*$")
END_RE = re.compile(r"^###\s+END SOLUTION\s*$")
BLANKS_RE = re.compile(r"^###\s+BLANKS\s+" + _LABEL + r"\s*$")
# Anything that looks like an attempt at a marker (a typo, a missing label).
LOOKS_LIKE_MARKER_RE = re.compile(r"^###\s*(BEGIN|END|BLANK)", re.IGNORECASE)
# Marker text that must never reach a student (used by the leak check).
MARKER_TEXT_RE = re.compile(
    r"#+\s*(BEGIN|END) SOLUTION|#+\s*BLANKS\b|<!--\s*(BEGIN|END) SOLUTION\s*-->"
)


@dataclass(frozen=True)
class SolutionSpan:
    """Lines ``begin``..``end`` (1-based, the marker lines included)."""
    begin: int
    end: int
    label: str
    indent: str
    in_brackets: bool   # the span sits inside an open (, [ or { -- e.g. nn.Sequential(

    @property
    def body(self) -> range:
        """The solved lines between the two marker lines."""
        return range(self.begin + 1, self.end)


@dataclass(frozen=True)
class BlanksLine:
    """A line whose call arguments (or last default) are blanked out."""
    line: int
    label: str
    comment_col: int    # where the ``### BLANKS`` comment starts on the line


@dataclass(frozen=True)
class Markers:
    spans: tuple[SolutionSpan, ...]
    blanks: tuple[BlanksLine, ...]

    @property
    def labels(self) -> list[str]:
        found = [(s.begin, s.label) for s in self.spans] + [(b.line, b.label) for b in self.blanks]
        return [label for _, label in sorted(found)]


def _comments(text: str, filename: str):
    """(line, col, comment text, bracket depth, code before it on the line)."""
    depth = 0
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError) as exc:
        line = getattr(exc, "lineno", None)
        if line is None and len(exc.args) > 1:
            line = exc.args[1][0]
        raise ReleaseError(filename, line, f"cannot tokenize the source: {exc}") from None
    lines = text.splitlines()
    for tok in tokens:
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        elif tok.type == tokenize.COMMENT:
            row, col = tok.start
            yield row, col, tok.string, depth, lines[row - 1][:col]


def find_markers(text: str, filename: str = "<source>") -> Markers:
    """All markers of ``text``, checked; raises :class:`ReleaseError` on the first problem."""
    spans: list[SolutionSpan] = []
    blanks: list[BlanksLine] = []
    open_span: tuple[int, str, str, bool] | None = None
    seen: dict[str, int] = {}

    def remember(label: str, line: int) -> None:
        if label in seen:
            raise ReleaseError(filename, line, f"marker label {label!r} is already used on line {seen[label]}; "
                                               "labels must be unique (they name the blank in the student's error)")
        seen[label] = line

    for line, col, comment, depth, before in _comments(text, filename):
        if not LOOKS_LIKE_MARKER_RE.match(comment):
            continue
        own_line = before.strip() == ""
        if m := BEGIN_RE.match(comment):
            if not own_line:
                raise ReleaseError(filename, line, "'### BEGIN SOLUTION' must be on a line of its own")
            if open_span is not None:
                raise ReleaseError(filename, line, f"nested '### BEGIN SOLUTION': the span opened on line "
                                                   f"{open_span[0]} has no '### END SOLUTION' yet")
            remember(m["label"], line)
            open_span = (line, m["label"], before, depth > 0)
        elif END_RE.match(comment):
            if not own_line:
                raise ReleaseError(filename, line, "'### END SOLUTION' must be on a line of its own")
            if open_span is None:
                raise ReleaseError(filename, line, "'### END SOLUTION' without a '### BEGIN SOLUTION' before it")
            begin, label, indent, in_brackets = open_span
            spans.append(SolutionSpan(begin, line, label, indent, in_brackets))
            open_span = None
        elif m := BLANKS_RE.match(comment):
            if own_line:
                raise ReleaseError(filename, line, "'### BLANKS' must end a line of code (the call to blank out)")
            if open_span is not None:
                raise ReleaseError(filename, line, f"'### BLANKS' inside the solution span opened on line "
                                                   f"{open_span[0]}")
            remember(m["label"], line)
            blanks.append(BlanksLine(line, m["label"], col))
        else:
            raise ReleaseError(filename, line, f"unknown or malformed marker {comment.strip()!r}; expected "
                                               "'### BEGIN SOLUTION Qn: what', '### END SOLUTION' "
                                               "or '### BLANKS Qn: what'")
    if open_span is not None:
        raise ReleaseError(filename, open_span[0], "'### BEGIN SOLUTION' without a matching '### END SOLUTION'")
    return Markers(tuple(spans), tuple(blanks))
