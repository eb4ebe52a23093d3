"""Release a solved notebook: the same markers, cell by cell, plus clearing outputs.

Steps, each a function on one cell or one notebook:

* :func:`release_code_cell`   -- BEGIN/END spans become nbgrader's
  ``# YOUR CODE HERE`` / ``raise NotImplementedError(...)`` (or ``blank(...)``
  inside an open call), ``### BLANKS`` lines as in ``.py`` files;
* :func:`drop_markdown_solutions` -- ``<!-- BEGIN SOLUTION -->`` ...
  ``<!-- END SOLUTION -->`` lines go;
* :func:`clear_outputs` -- outputs, execution counts and run timings go;
  the rest of the metadata (tags included) stays;
* :func:`add_helpers_cell` -- when a cell uses ``blank``/``blanks``, their
  definitions go into a cell of their own just before it;
* :func:`check_nbgrader_metadata` -- the released notebook's nbgrader cell
  metadata must be what ``nbgrader validate`` accepts (checked, not repaired).
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from autograder.release import steps
from autograder.release.markers import MARKER_TEXT_RE, ReleaseError
from autograder.release.student_text import render_helpers

if TYPE_CHECKING:
    from nbformat import NotebookNode

MD_BEGIN_RE = re.compile(r"^\s*<!--\s*BEGIN SOLUTION\s*-->\s*$")
MD_END_RE = re.compile(r"^\s*<!--\s*END SOLUTION\s*-->\s*$")
HELPERS_CELL_ID = "release-helpers"
HELPERS_TAG = "release-helpers"
_USES_HELPERS_RE = re.compile(r"\b(blank|blanks|blank_default)\(")


def _nbformat():
    # Imported on use: nbformat is a development dependency of the kit, and
    # releasing the .py file must not need it.
    import nbformat
    return nbformat


def release_code_cell(source: str, where: str) -> str:
    source = steps.replace_blanks_lines(source, filename=where)
    return steps.replace_solution_spans(source, filename=where, style="raise")


def drop_markdown_solutions(source: str, where: str) -> str:
    kept: list[str] = []
    begin: int | None = None
    for number, line in enumerate(source.splitlines(keepends=True), 1):
        if MD_BEGIN_RE.match(line):
            if begin is not None:
                raise ReleaseError(where, number, f"nested <!-- BEGIN SOLUTION --> (one is open since line {begin})")
            begin = number
        elif MD_END_RE.match(line):
            if begin is None:
                raise ReleaseError(where, number, "<!-- END SOLUTION --> without a <!-- BEGIN SOLUTION -->")
            begin = None
        elif MARKER_TEXT_RE.search(line):
            raise ReleaseError(where, number, "a solution marker must be on a line of its own")
        elif begin is None:
            kept.append(line)
    if begin is not None:
        raise ReleaseError(where, begin, "<!-- BEGIN SOLUTION --> without a matching <!-- END SOLUTION -->")
    return "".join(kept)


def clear_outputs(nb: NotebookNode) -> NotebookNode:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)   # run timestamps: differ on every run
    return nb


def add_helpers_cell(nb: NotebookNode) -> NotebookNode:
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and _USES_HELPERS_RE.search(cell.source):
            helpers = _nbformat().v4.new_code_cell(render_helpers("this notebook").rstrip("\n"),
                                                metadata={"tags": [HELPERS_TAG]})
            if nb.get("nbformat_minor", 0) >= 5:
                helpers["id"] = HELPERS_CELL_ID
            else:
                helpers.pop("id", None)
            nb.cells.insert(index, helpers)
            break
    return nb


def nbgrader_metadata_problem(cell: NotebookNode) -> str | None:
    """Why nbgrader would reject this cell's metadata, or None.

    nbgrader's own validator when it is installed (it is a development
    dependency); otherwise the rules it enforces that a hand edit breaks most
    often: an id on every graded/solution/locked cell, points on a grade cell,
    and a Markdown cell that is a solution cell exactly when it is a grade cell.
    """
    meta = cell.get("metadata", {}).get("nbgrader")
    if meta is None:
        return None
    try:
        from nbgrader.nbgraderformat import MetadataValidator, ValidationError
    except ImportError:
        MetadataValidator = None
    if MetadataValidator is not None:
        try:
            MetadataValidator().validate_cell(copy.deepcopy(cell))
        except ValidationError as exc:
            return str(exc).splitlines()[0]
        except Exception as exc:   # jsonschema's error for a wrongly typed field
            return f"invalid nbgrader metadata: {str(exc).splitlines()[0]}"
        return None
    grade, solution = meta.get("grade", False), meta.get("solution", False)
    if (grade or solution or meta.get("locked", False)) and not meta.get("grade_id"):
        return "nbgrader cell does not have a grade_id"
    if grade and "points" not in meta:
        return f"nbgrader cell {meta['grade_id']!r} does not have points"
    if cell.cell_type == "markdown" and not meta.get("task", False) and grade != solution:
        return (f"Markdown cell {meta.get('grade_id')!r} must be both a grade and a solution cell "
                f"(grade={grade}, solution={solution})")
    return None


def check_nbgrader_metadata(nb: NotebookNode, name: str = "<notebook>") -> NotebookNode:
    """Refuse to release a notebook whose nbgrader metadata ``nbgrader validate`` would reject."""
    seen: dict[str, int] = {}
    for index, cell in enumerate(nb.cells):
        problem = nbgrader_metadata_problem(cell)
        if problem:
            raise ReleaseError(f"{name}, cell {index}", None, f"nbgrader metadata: {problem}")
        meta = cell.get("metadata", {}).get("nbgrader") or {}
        if meta.get("grade") or meta.get("solution") or meta.get("locked"):
            grade_id = meta.get("grade_id")
            if grade_id in seen:
                raise ReleaseError(f"{name}, cell {index}", None,
                                   f"nbgrader metadata: grade_id {grade_id!r} is also used by cell {seen[grade_id]}")
            seen[grade_id] = index
    return nb


def build_student_notebook_node(nb: NotebookNode, name: str = "<notebook>") -> NotebookNode:
    """A released copy of the solved notebook ``nb`` (``nb`` itself is not changed)."""
    nb = copy.deepcopy(nb)
    for index, cell in enumerate(nb.cells):
        where = f"{name}, cell {index}"
        if cell.cell_type == "code":
            cell.source = release_code_cell(cell.source, where)
        elif cell.cell_type == "markdown":
            cell.source = drop_markdown_solutions(cell.source, where)
    return check_nbgrader_metadata(add_helpers_cell(clear_outputs(nb)), name)


def notebook_text(nb: NotebookNode) -> str:
    """Serialized the way Jupyter writes it (sorted keys, one-space indent, final newline)."""
    text = _nbformat().writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def render_student_notebook(src: Path) -> str:
    src = Path(src)
    raw = json.loads(src.read_text(encoding="utf-8"))
    if raw.get("nbformat") == 4 and raw.get("nbformat_minor", 0) >= 5:
        # nbformat would invent random ids for cells without one: give them
        # fixed ones so that releasing twice gives the same bytes.
        for index, cell in enumerate(raw.get("cells", [])):
            cell.setdefault("id", f"cell-{index}")
    nb = _nbformat().reads(json.dumps(raw), as_version=4)
    return notebook_text(build_student_notebook_node(nb, name=str(src)))


def build_student_notebook(src: Path, dst: Path) -> Path:
    """Write the student version of the solved notebook ``src`` to ``dst``; returns ``dst``."""
    dst = Path(dst)
    dst.write_bytes(render_student_notebook(src).encode("utf-8"))
    return dst


def notebook_leaks(student_nb: NotebookNode, solved_nb: NotebookNode) -> list[str]:
    """Solution text, marker text or outputs left in a released notebook."""
    from autograder.release.leaks import find_leaks

    solved_code = "\n".join(c.source for c in solved_nb.cells if c.cell_type == "code")
    solved_md = [line.strip() for c in solved_nb.cells if c.cell_type == "markdown"
                 for line in markdown_solution_lines(c.source)]
    problems: list[str] = []
    for index, cell in enumerate(student_nb.cells):
        if cell.cell_type == "code":
            if cell.get("outputs") or cell.get("execution_count") is not None:
                problems.append(f"cell {index}: outputs or execution count not cleared")
            leaks = find_leaks(cell.source, steps.mask_magics(solved_code), "solved notebook code")
            problems += [f"cell {index}, {leak}" for leak in leaks]
        else:
            for number, line in enumerate(cell.source.splitlines(), 1):
                if MARKER_TEXT_RE.search(line):
                    problems.append(f"cell {index}, line {number}: marker text: {line.strip()}")
                elif line.strip() and line.strip() in solved_md:
                    problems.append(f"cell {index}, line {number}: solution text: {line.strip()}")
    return problems


def markdown_solution_lines(source: str) -> list[str]:
    inside, lines = False, []
    for line in source.splitlines():
        if MD_BEGIN_RE.match(line):
            inside = True
        elif MD_END_RE.match(line):
            inside = False
        elif inside:
            lines.append(line)
    return lines
