"""The nbgrader source notebook, built from the kit's solved notebook.

Steps on the solved notebook (``solutions/CNN_Implementation.ipynb``):

* outputs cleared (the release's :func:`clear_outputs`);
* solution regions keep their ``BEGIN SOLUTION`` / ``END SOLUTION`` lines: nbgrader's
  ``ClearSolutions`` recognises those markers itself (in Markdown too), so
  ``generate_assignment`` removes the regions;
* :func:`skip_under_autograde` -- every code cell of the solved notebook gets nbclient's
  ``skip-execution`` tag: ``nbgrader autograde`` (which executes through nbclient) passes
  over them, so it downloads nothing, trains nothing, runs student code only in the
  grader's sandbox, and the feedback shows no output of the TA's run (missing
  checkpoints, the TA's paths);
* :func:`plain_report_notes` -- the 0-point report-notes cell becomes plain Markdown (no
  nbgrader metadata, TA notes removed): the report is a PDF, so nothing waits for a
  manual grade when a student types in it;
* :func:`say_nbgrader_submission` -- the submission text says what nbgrader students hand in;
* :func:`add_test_cells` -- one hidden, locked, autograded test cell per rubric part.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from autograder.nbgrader import grade_id_for_part
from autograder.nbgrader.test_cell import SUBMITTED_ENV, WORKDIR_ENV
from autograder.spec import RUBRIC_PATH, load_rubric

SKIP_TAG = "skip-execution"   # nbclient's NotebookClient.skip_cells_with_tag
REPORT_NOTES_ID = "report-notes"
SUBMISSION_HEADING = "## 6. Submission"
NBGRADER_SUBMISSION = (
    "**In this course (nbgrader): submit the whole assignment folder** -- this notebook together with "
    "`resnet50_skeleton.py` next to it (the Assignments tab's *Submit* button, or `nbgrader submit`, "
    "does this). The autograder grades the `.py` file; hand in the PDF report as your course says.")
TESTS_HEADING_ID = "nbgrader-tests-heading"
HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"


def _nbformat():
    import nbformat
    return nbformat


def read_solved_notebook(path: Path):
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    for index, cell in enumerate(raw.get("cells", [])):
        cell.setdefault("id", f"cell-{index}")   # fixed ids: the same source twice is the same bytes
    return _nbformat().reads(json.dumps(raw), as_version=4)


def skip_under_autograde(nb):
    """Tag every code cell: the test cells (added after) are the only ones autograde runs."""
    for cell in nb.cells:
        cell_tags = cell.metadata.get("tags", [])
        if cell.cell_type == "code" and SKIP_TAG not in cell_tags:
            cell.metadata["tags"] = [*cell_tags, SKIP_TAG]
    return nb


def plain_report_notes(nb):
    from autograder.release.notebook import drop_markdown_solutions
    for index, cell in enumerate(nb.cells):
        if cell.metadata.get("nbgrader", {}).get("grade_id") == REPORT_NOTES_ID:
            cell.metadata.pop("nbgrader")
            cell.source = drop_markdown_solutions(cell.source, f"cell {index}").rstrip() + "\n"
    return nb


def say_nbgrader_submission(nb):
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith(SUBMISSION_HEADING):
            cell.source = cell.source.rstrip() + "\n\n" + NBGRADER_SUBMISSION + "\n"
            return nb
    raise ValueError(f"the solved notebook has no {SUBMISSION_HEADING!r} cell")


# The first lines of each hidden test cell: the installed kit's grader, never an autograder/
# folder or autograder.py from the submission (nbgrader copies the released autograder/ next to
# the notebook), even when a cell above imported it (`from autograder.check import ...`, as the
# notebook's own checks do), put it on sys.path or changed the working folder. sys.path keeps
# absolute entries outside the notebook's folders; every autograder module not loaded from the
# kit that those entries find is dropped from sys.modules, so the import below loads the kit's.
KIT_IMPORT = """\
import os, sys
_theirs = [os.path.realpath(f) for f in (os.getcwd(), os.environ.get("{workdir}"),
                                         os.environ.get("{submitted}")) if f]
def _outside(path):
    path = os.path.realpath(path)
    return not any(path == f or path.startswith(f + os.sep) for f in _theirs)
sys.path[:] = [p for p in sys.path if os.path.isabs(p) and _outside(p)]
_kit = next((s for s in (getattr(f, "find_spec", lambda *a: None)("autograder", sys.path)
                         for f in sys.meta_path) if s and s.origin), None)
for _name in [n for n in sys.modules if n == "autograder" or n.startswith("autograder.")]:
    _file = getattr(sys.modules[_name], "__file__", None)
    if _kit is None or not _file or not os.path.realpath(_file).startswith(
            os.path.realpath(os.path.dirname(_kit.origin)) + os.sep):
        del sys.modules[_name]
""".format(workdir=WORKDIR_ENV, submitted=SUBMITTED_ENV)


def test_cell_source(part_id: str, title: str, points: float) -> str:
    return (f"# Autograder test for {part_id} ({points:g} points): {title}.\n"
            "# It runs when the course staff grade your submission; your resnet50_skeleton.py is\n"
            "# graded in a sandbox and this cell shows what each check found.\n"
            f"{HIDDEN_BEGIN}\n"
            f"{KIT_IMPORT}"
            "from autograder.nbgrader.test_cell import score_part\n"
            f"score_part({part_id!r})\n"
            f"{HIDDEN_END}\n")


def add_test_cells(nb, rubric_path: Path = RUBRIC_PATH):
    """Append a heading and one autograded test cell per rubric part (points from the rubric)."""
    v4 = _nbformat().v4
    heading = v4.new_markdown_cell(
        "## Autograder tests\n\nThe cells below are filled in and run by the course staff's autograder: "
        "each gives the points of one part of the rubric for your `resnet50_skeleton.py`.")
    heading["id"] = TESTS_HEADING_ID
    nb.cells.append(heading)
    for part in load_rubric(rubric_path).values():
        grade_id = grade_id_for_part(part.id)
        cell = v4.new_code_cell(test_cell_source(part.id, part.title, part.points))
        cell["id"] = grade_id.replace("_", "-")
        cell.metadata["nbgrader"] = {"grade": True, "grade_id": grade_id, "locked": True,
                                     "points": part.points, "schema_version": 3,
                                     "solution": False, "task": False}
        nb.cells.append(cell)
    return nb


def build_source_notebook(solved_path: Path, rubric_path: Path = RUBRIC_PATH):
    from autograder.release.notebook import check_nbgrader_metadata, clear_outputs
    nb = copy.deepcopy(read_solved_notebook(solved_path))
    nb = say_nbgrader_submission(plain_report_notes(skip_under_autograde(clear_outputs(nb))))
    nb = add_test_cells(nb, rubric_path)
    return check_nbgrader_metadata(nb, "nbgrader source notebook")


def render_source_notebook(solved_path: Path, rubric_path: Path = RUBRIC_PATH) -> str:
    from autograder.release.notebook import notebook_text
    return notebook_text(build_source_notebook(solved_path, rubric_path))
