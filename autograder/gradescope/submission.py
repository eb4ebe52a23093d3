"""Find the file to grade in what the student uploaded to Gradescope.

Gradescope puts the upload under ``$AUTOGRADER_ROOT/submission``: that folder is
one student's folder for the CLI's own finder (:mod:`autograder.grade.finder`),
so an upload gets the same file, notes, statuses and messages on Gradescope as
with ``python -m autograder grade``. This module only turns the finder's answer
into :class:`Found`: the bytes to grade (read capped, links never followed, a
zip's member read in memory) or why there are none.

Nothing here imports torch: run_autograder finds the file before it loads the grader.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autograder.grade.finder import (MAX_SOURCE_BYTES, STUDENT_FILE, Refused, Submission,  # noqa: F401
                                     find_in_folder, read_source)


@dataclass(frozen=True)
class Found:
    source: bytes | None   # what to grade; None when nothing is graded
    shown: str = ""        # which file, for people: "hw3/resnet50_skeleton.py", "hw3.zip: hw3/resnet50_skeleton.py"
    notes: tuple[str, ...] = ()
    problem: str = ""      # why nothing is graded, for the student
    status: str = "missing"


def find_submission(folder: Path, student: str = "submission") -> Found:
    """The file to grade under ``folder`` (Gradescope's submission/), or why there is none."""
    if not folder.is_dir():
        return Found(None, problem=f"nothing was uploaded (no {folder.name}/ folder); upload {STUDENT_FILE}")
    try:
        file, problem, notes, member = find_in_folder(folder)
    except OSError as exc:
        return Found(None, problem=f"the submission folder could not be read ({exc.strerror or exc})")
    if file is None:
        return Found(None, problem=problem, notes=notes)
    shown = f"{file.name}: {member}" if member else file.relative_to(folder).as_posix()
    try:
        source = read_source(Submission(student, file, folder, member=member))
    except Refused as exc:   # the CLI's status for a file it will not read
        return Found(None, shown, notes, str(exc), "refused")
    return Found(source, shown, notes, status="ok")
