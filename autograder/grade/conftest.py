"""pytest options for ``autograder/grade/pytest_entry.py`` (grading one file with pytest).

Kept here, not at the repository root, so the kit's own test suite is unaffected:
this conftest is only loaded when pytest is pointed at this folder or a file in it.
"""
from __future__ import annotations


def pytest_addoption(parser):
    group = parser.getgroup("autograder", "grade one resnet50_skeleton.py with the kit's rubric")
    group.addoption("--submission", action="store", default=None, metavar="PATH",
                    help="the student's resnet50_skeleton.py to grade")
    group.addoption("--grading-out", action="store", default=None, metavar="DIR",
                    help="where to write results/feedback (default: a fresh temporary folder)")
    group.addoption("--grading-timeout", action="store", type=float, default=60.0,
                    help="wall-clock seconds allowed for the submission (default 60)")
    group.addoption("--grading-memory-mb", action="store", type=int, default=4096,
                    help="memory allowed for the submission in MiB (default 4096)")
