"""What the notebook's hidden test cells run under ``nbgrader autograde``.

Each of the five test cells ends with ``score_part("Q1a")`` (and so on): its last
value is the part's points, which nbgrader records as partial credit. The student's
folder is graded as ``python -m autograder grade`` grades a student folder: the files
``batch.discover`` looks at are copied into a one-student folder and ``grade_batch``
finds and grades the file there (a misnamed ``resnet50_skeleton (1).py`` included,
with its note); student code is never imported here. It is graded once per kernel:
the result is kept in this module, keyed by the SHA-256 of the copied files, so five
test cells cost one sandbox run. The cache lives in the kernel's
memory rather than in a file in the working folder because that folder is the
student's submission: a file there could be handed in.

Which folder: under ``nbgrader autograde`` with the kit's ``configure_autograde``, the
kit's exporter (in nbgrader's own process, before the kernel starts) puts the student's
``submitted/<student>/<assignment>/`` folder in :data:`SUBMITTED_ENV`, so the test cells
grade exactly the files ``verify`` and the CLI grade: whatever the student's cells did
to the working folder (``%cd plots``, ``os.chdir``, deleting a file) and whatever
nbgrader's ``CourseDirectory.ignore`` kept out of ``autograded/`` (``submission.zip``,
``results/``). Without it (the notebook run by hand), the kernel's working folder.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import shutil
import tempfile
from pathlib import Path

from autograder.nbgrader import STUDENT_FILE

_graded: dict[str, dict] = {}   # SHA-256 of the staged files -> the grader's result for them
STAGED_STUDENT = "submission"    # the one student of the staged folder
GRADABLE_SUFFIXES = (".py", ".zip")   # what discover can grade at the top of a folder
SUBMITTED_ENV = "KIT_NBGRADER_SUBMITTED"   # set by autograde.SubmissionExporter for the kernel
WORKDIR_ENV = "KIT_NBGRADER_WORKDIR"   # likewise: the autograded notebook's folder (the test cells' imports)


def _copy_entry(entry: os.DirEntry, target: Path) -> None:
    """A file as handed in; a link stays a link (the grader decides whether it may be read)."""
    if entry.is_symlink():
        os.symlink(os.readlink(entry.path), target)
    elif entry.is_file(follow_symlinks=False):
        shutil.copyfile(entry.path, target)


def stage_student_folder(folder: Path, staged: Path) -> None:
    """Copy into ``staged`` what ``batch.discover`` looks at in a student's ``folder``: the
    top-level ``.py`` and ``.zip`` files and any ``resnet50_skeleton.py`` one level down.
    The notebook, data and results stay behind (they are never graded)."""
    staged.mkdir(parents=True, exist_ok=True)
    if not Path(folder).is_dir():
        return
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") or entry.name == "__MACOSX":
                continue
            if entry.name.lower().endswith(GRADABLE_SUFFIXES):
                _copy_entry(entry, staged / entry.name)
            elif entry.is_dir(follow_symlinks=False):
                inner = Path(entry.path) / STUDENT_FILE
                if inner.is_file() or inner.is_symlink():
                    (staged / entry.name).mkdir(exist_ok=True)
                    with os.scandir(entry.path) as found:
                        for item in found:
                            if item.name == STUDENT_FILE:
                                _copy_entry(item, staged / entry.name / STUDENT_FILE)


def _staged_key(staged: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(staged.rglob("*")):
        digest.update(path.relative_to(staged).as_posix().encode("utf-8", "surrogateescape") + b"\0")
        if path.is_symlink():
            digest.update(b"link:" + os.readlink(path).encode("utf-8", "surrogateescape"))
        elif path.is_file():
            digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


@contextlib.contextmanager
def _stderr_to_stdout():
    """Anything a test cell writes to stderr makes nbgrader give it 0 points: while grading,
    the grader's notes and warnings (Python's and those of its worker processes, which
    write to file descriptor 2) go to stdout instead."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        saved = os.dup(2)
        os.dup2(1, 2)
    except OSError:
        saved = None
    try:
        with contextlib.redirect_stderr(sys.stdout):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)


def grade_folder(folder: Path | str | None = None) -> dict:
    """The grader's result (its ``results/<id>.json`` content) for the student's folder
    (by default the handed-in folder autograde named, else the working folder), graded once per kernel."""
    if folder is None:
        folder = os.environ.get(SUBMITTED_ENV) or os.getcwd()
    folder = Path(folder).absolute()
    with tempfile.TemporaryDirectory(prefix="kit-nbgrader-") as out:
        submissions = Path(out) / "submissions"
        stage_student_folder(folder, submissions / STAGED_STUDENT)
        key = _staged_key(submissions / STAGED_STUDENT)
        if key not in _graded:
            with _stderr_to_stdout():
                from autograder.grade.batch import grade_batch
                results = grade_batch(submissions, Path(out) / "grading", jobs=1, progress=False, log=print)
            _graded[key] = results[0]
    return _graded[key]


def part_feedback(result: dict, part_id: str) -> str:
    """The CLI's per-check messages for one part, as the feedback shows them."""
    extra = result.get("extra_data", {})
    lines = [f"note: {note}" for note in extra.get("notes", [])]
    if extra.get("status", "ok") != "ok":
        lines.append(f"status: {extra.get('status')}: {extra.get('message', '')}".rstrip(": "))
    for test in result.get("tests", []):
        if test.get("name", "").split(" ", 1)[0] != part_id:
            continue
        lines.append(f"{test['name']}: {test.get('score', 0):g}/{test.get('max_score', 0):g}")
        output = test.get("output", "")
        if output:
            lines.append("  " + output.replace("\n", "\n  "))
    return "\n".join(lines)


def score_part(part_id: str, folder: Path | str | None = None) -> float:
    """Print the part's per-check messages and return its points (the test cell's last value)."""
    result = grade_folder(folder)
    print(part_feedback(result, part_id) or f"{part_id}: no checks ran")
    return float(result.get("extra_data", {}).get("parts", {}).get(part_id, 0.0))
