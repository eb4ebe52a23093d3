"""Both notebooks pass nbgrader's own metadata validation, and the release refuses
a notebook that would not (with nbgrader installed or without it)."""
import sys

import nbformat
import pytest
from nbgrader.nbgraderformat import MetadataValidator, ValidationError

from autograder.release.kit import KIT_ROOT
from autograder.release.markers import ReleaseError
from autograder.release.notebook import build_student_notebook_node, nbgrader_metadata_problem

NOTEBOOKS = ("solutions/CNN_Implementation.ipynb", "CNN_Implementation.ipynb")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_nbgrader_validates_the_kit_notebooks(name):
    nb = nbformat.read(KIT_ROOT / name, as_version=4)
    graded = [c for c in nb.cells if "nbgrader" in c.metadata]
    assert graded, "the notebook is expected to carry nbgrader metadata"
    MetadataValidator().validate_nb(nb)   # raises ValidationError on what `nbgrader validate` rejects


def test_report_notes_cell_is_a_zero_point_manually_graded_answer():
    nb = nbformat.read(KIT_ROOT / "CNN_Implementation.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "report-notes"]
    meta = cell.metadata["nbgrader"]
    assert cell.cell_type == "markdown"
    assert (meta["solution"], meta["grade"], meta["points"]) == (True, True, 0)   # the rubric's 105 stays
    assert "TA notes" not in cell.source


def _notebook_with(meta: dict, cell_type: str = "markdown"):
    nb = nbformat.v4.new_notebook()
    make = nbformat.v4.new_markdown_cell if cell_type == "markdown" else nbformat.v4.new_code_cell
    nb.cells = [make("intro"), make("answer here", metadata={"nbgrader": {"schema_version": 3, **meta}})]
    return nb


BROKEN = [
    # the case: a Markdown solution cell that is not a grade cell
    ({"grade": False, "solution": True, "locked": False, "task": False, "grade_id": "notes"}, "markdown"),
    # the reverse: a Markdown grade cell that is not a solution cell
    ({"grade": True, "solution": False, "locked": False, "task": False, "grade_id": "notes", "points": 1},
     "markdown"),
    # a grade cell without points
    ({"grade": True, "solution": True, "locked": False, "task": False, "grade_id": "q"}, "code"),
    # a solution cell without an id
    ({"grade": False, "solution": True, "locked": False, "task": False}, "code"),
]


@pytest.mark.parametrize("meta,cell_type", BROKEN)
def test_release_refuses_what_nbgrader_rejects(meta, cell_type):
    nb = _notebook_with(meta, cell_type)
    with pytest.raises(ValidationError):
        MetadataValidator().validate_nb(nb)
    with pytest.raises(ReleaseError, match="nb.ipynb, cell 1: nbgrader metadata"):
        build_student_notebook_node(nb, name="nb.ipynb")


@pytest.mark.parametrize("meta,cell_type", BROKEN)
def test_release_refuses_it_without_nbgrader_installed(meta, cell_type, monkeypatch):
    monkeypatch.setitem(sys.modules, "nbgrader.nbgraderformat", None)   # import fails
    assert nbgrader_metadata_problem(_notebook_with(meta, cell_type).cells[1])
    with pytest.raises(ReleaseError, match="cell 1: nbgrader metadata"):
        build_student_notebook_node(_notebook_with(meta, cell_type), name="nb.ipynb")


def test_release_refuses_a_duplicate_grade_id():
    nb = _notebook_with({"grade": True, "solution": True, "locked": False, "task": False,
                         "grade_id": "notes", "points": 0})
    nb.cells.append(nbformat.v4.new_markdown_cell("again", metadata=nb.cells[1].metadata))
    with pytest.raises(ReleaseError, match="cell 2: nbgrader metadata: grade_id 'notes' is also used by cell 1"):
        build_student_notebook_node(nb, name="nb.ipynb")


def test_valid_metadata_releases_and_still_validates():
    nb = _notebook_with({"grade": True, "solution": True, "locked": False, "task": False,
                         "grade_id": "notes", "points": 0})
    released = build_student_notebook_node(nb, name="nb.ipynb")
    MetadataValidator().validate_nb(released)
    assert released.cells[1].metadata["nbgrader"]["grade_id"] == "notes"
