"""Compose the steps into a student ``.py`` file."""
from __future__ import annotations

import ast
from collections.abc import Collection
from pathlib import Path

from autograder.release import steps
from autograder.release.markers import find_markers
from autograder.release.student_text import GENERATED_NOTICE, render_helpers, render_student_docstring

def count_blank_values(student_code: str) -> int:
    """How many one-point values a released source asks for: the ``n`` of every
    ``blanks(n, ...)`` call plus one per ``blank_default(...)`` call."""
    total = 0
    for node in ast.walk(ast.parse(student_code)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "blanks" and node.args and isinstance(node.args[0], ast.Constant):
                total += node.args[0].value
            elif node.func.id == "blank_default":
                total += 1
    return total


def build_student_source(text: str, *, filename: str = "<source>", source_label: str | None = None,
                         only: Collection[str] | None = None, docstring: str | None = None,
                         student_name: str = "resnet50_skeleton.py") -> str:
    """The student version of the solved source ``text``.

    ``only``: release just the markers with these labels and leave the others
    solved (the markers of those stay, as comments). ``docstring``: the
    student-facing module docstring; by default the ResNet50_layer4 one, with
    the counts taken from the markers. ``student_name``: the file the student
    edits, named in the placeholders' error messages.
    """
    markers = find_markers(text, filename)   # fail early, before any step runs
    code = steps.replace_blanks_lines(text, filename=filename, only=only)
    code = steps.replace_solution_spans(code, filename=filename, only=only, style="blank")
    if docstring is None:
        q1_parts = sum(1 for s in markers.spans if s.label.startswith("Q1:"))
        docstring = render_student_docstring(q2_blanks=count_blank_values(code), q1_parts=q1_parts)
    code = steps.replace_module_docstring(code, docstring)
    code = steps.insert_after_imports(code, render_helpers(student_name))
    return steps.prepend_notice(code, GENERATED_NOTICE.format(source=source_label or filename))


def build_student_file(src: Path, dst: Path, *, only: Collection[str] | None = None) -> Path:
    """Write the student version of the solved file ``src`` to ``dst``; returns ``dst``."""
    src, dst = Path(src), Path(dst)
    text = src.read_text(encoding="utf-8")
    code = build_student_source(text, filename=str(src), source_label=f"{src.parent.name}/{src.name}",
                                only=only, student_name=dst.name)
    dst.write_bytes(code.encode("utf-8"))
    return dst
