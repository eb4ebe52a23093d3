"""nbgrader course: release and autograde the assignment with nbgrader's own commands.

One small module per step a TA takes:

* :mod:`.source_notebook` -- the nbgrader source notebook, built from the solved
  notebook: nbgrader's solution markers, outputs cleared, and five hidden,
  autograded test cells (one per rubric part, points from ``rubric.toml``);
* :mod:`.layout`   -- ``python -m autograder nbgrader init COURSE_DIR``: the
  course folder (``nbgrader_config.py``, ``source/<assignment>/``);
* :mod:`.test_cell` -- what a test cell runs under ``nbgrader autograde``: the
  sandboxed grader on the student's ``resnet50_skeleton.py``, once per notebook run;
* :mod:`.autograde` -- what the course's ``nbgrader_config.py`` sets up: a submission whose
  notebook is missing or broken is graded from its ``.py`` with the released notebook in its place;
* :mod:`.verify`   -- ``python -m autograder nbgrader verify COURSE_DIR``: regrade
  every submitted file with the CLI and list gradebook scores that differ.
"""
DEFAULT_ASSIGNMENT = "cnn_implementation"
NOTEBOOK_NAME = "CNN_Implementation.ipynb"
STUDENT_FILE = "resnet50_skeleton.py"


def grade_id_for_part(part_id: str) -> str:
    """The nbgrader grade_id of the test cell that scores ``part_id`` (e.g. ``test_Q1a``)."""
    return f"test_{part_id}"
