"""Release: make the student files from the solved sources in ``solutions/``.

Small steps, each a plain function that can be tested alone (like nbgrader's
preprocessors): :mod:`.markers` finds and checks the markers, :mod:`.steps`
rewrites Python text, :mod:`.notebook` rewrites notebooks, :mod:`.leaks` checks
a released file for solution text. :func:`build_student_file` and
:func:`build_student_notebook` compose them; :mod:`.kit` knows which files of
this kit are released where (``python -m autograder release [--check]``).
"""
from autograder.release.leaks import Leak, find_leaks
from autograder.release.markers import ReleaseError, find_markers
from autograder.release.notebook import build_student_notebook
from autograder.release.python_file import build_student_file, build_student_source

__all__ = [
    "Leak", "ReleaseError", "build_student_file", "build_student_notebook",
    "build_student_source", "find_leaks", "find_markers",
]
