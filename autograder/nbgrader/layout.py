"""``python -m autograder nbgrader init COURSE_DIR``: an nbgrader course from the kit's sources.

The course folder gets ``nbgrader_config.py`` and ``source/<assignment>/`` with the
nbgrader source notebook, the *student* ``resnet50_skeleton.py`` (generated from
``solutions/`` as ``release`` does: nbgrader copies ``.py`` files unchanged, so the
solved file must never go there), ``vgg.py``, and what the notebook's checks need from
the student zip (``release --bundle``): its public ``autograder/`` folder, so that
nbgrader releases it too (not the checkpoints: the config ignores ``*.ckpt`` so that
submissions stay small, so nbgrader would not release them). The hidden test cells
import the grader from the installed kit, never that folder.
"""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from autograder.nbgrader import DEFAULT_ASSIGNMENT, NOTEBOOK_NAME, STUDENT_FILE
from autograder.release.kit import KIT_ROOT, TARGETS, render
from autograder.spec import RUBRIC_PATH

ASSIGNMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
CONFIG_NAME = "nbgrader_config.py"
CELL_TIMEOUT_S = 300   # one test cell grades the file in the sandbox (60 s limit per submission)

CONFIG_TEMPLATE = '''\
# nbgrader configuration written by `python -m autograder nbgrader init` (cnn-assignment-kit).
# `init --force` rewrites the part above the marked line: keep course-specific settings below it.
c = get_config()  # noqa: F821 (nbgrader provides it)

c.CourseDirectory.course_id = {course_id!r}

# Students hand in their own resnet50_skeleton.py: autograde must grade that file, not
# replace it with the copy in source/ (nbgrader overwrites every other source file).
c.Autograde.exclude_overwriting = {{{assignment!r}: [{student_file!r}]}}

# The first test cell grades the file in the kit's sandbox (one run for all five cells).
c.Execute.timeout = {timeout}

# A submission whose notebook is missing, not valid JSON, or lost its test cells or their
# nbgrader metadata is graded from its .py with the released notebook standing in, with a
# note at its top and the notebook flagged in the gradebook. Needs the kit installed here.
try:
    from autograder.nbgrader.autograde import configure_autograde
except ImportError:
    import sys
    print("nbgrader_config.py: the cnn-assignment-kit is not installed in this environment; "
          "autograde cannot grade this course here", file=sys.stderr)
else:
    configure_autograde(c, {assignment!r})

# Folders the notebook may write while a student works in it; never part of the assignment.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback",
                            "data", "results", "submission.zip", "*.ckpt"]

{marker}
'''
CONFIG_MARKER = "# ---- course-specific settings below this line are yours (init --force keeps them)"
# Earlier kits wrote this marker; what follows it is kept too.
OLD_CONFIG_MARKERS = ("# ---- course-specific settings below this line are yours",)


def _course_settings(config: Path) -> str:
    """What the TA wrote below the marker of an existing config ('' when none)."""
    try:
        text = config.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.startswith(OLD_CONFIG_MARKERS):
            return "".join(lines[index + 1:])
    return ""


# init --force keeps every file it changes here (never in source/: nbgrader would release it).
BACKUP_FOLDER = "init-backup-%Y%m%d-%H%M%S"
KIT_CONFIG_FIRST_LINE = "# nbgrader configuration written by `python -m autograder nbgrader init`"


def _is_kit_config(config: Path) -> bool:
    try:
        return config.read_text(encoding="utf-8").startswith(KIT_CONFIG_FIRST_LINE)
    except (OSError, UnicodeDecodeError):
        return False


def _foreign_settings(config: Path) -> str:
    """A course's own nbgrader_config.py (adopting the kit): all of it, kept below the marker so
    that its course_id, exchange and TA settings stay in force."""
    try:
        text = config.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CourseError(f"cannot read {config}: {exc}") from None
    return ("# Kept from the course's own nbgrader_config.py when `init --force` adopted the kit:\n"
            + text + ("" if text.endswith("\n") else "\n"))


def _back_up(target: Path, backup: Path) -> Path:
    backup.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(target, backup)
    return backup


class CourseError(ValueError):
    """A course folder that cannot be written as asked."""


def kit_files(assignment: str) -> dict[str, str | bytes]:
    """Every file ``init`` writes, relative to the course folder, with its text."""
    from autograder.release.bundle import bundle_contents
    from autograder.nbgrader.source_notebook import render_source_notebook
    skeleton = next(t for t in TARGETS if t.student == STUDENT_FILE)
    source = f"source/{assignment}"
    public = {f"{source}/{name}": data for name, data in bundle_contents()
              if name.startswith("autograder/")}
    return {
        **public,
        CONFIG_NAME: "",   # filled in by init_course (needs the course id)
        f"{source}/{NOTEBOOK_NAME}": render_source_notebook(KIT_ROOT / "solutions" / NOTEBOOK_NAME, RUBRIC_PATH),
        f"{source}/{STUDENT_FILE}": render(skeleton),
        f"{source}/vgg.py": (KIT_ROOT / "vgg.py").read_text(encoding="utf-8"),
    }


def init_course(course_dir: Path, assignment: str = DEFAULT_ASSIGNMENT, force: bool = False) -> list[str]:
    """Write the course's kit files; returns one line per file. Refuses an existing course
    unless ``force``, which rewrites only the kit's own files (gradebook, submissions and
    anything else in the folder stay; the config keeps everything below its marker line, or
    all of a config the kit did not write) and first copies each file it changes into
    ``init-backup-<time>/`` in the course folder."""
    course_dir = Path(course_dir)
    if not ASSIGNMENT_RE.match(assignment):
        raise CourseError(f"assignment name {assignment!r} must be letters, digits, '_', '-' or '.'")
    if course_dir.exists() and not course_dir.is_dir():
        raise CourseError(f"{course_dir} exists and is not a folder")
    files = kit_files(assignment)
    existing = [name for name in files if (course_dir / name).exists()]
    if existing and not force:
        raise CourseError(f"{course_dir} already holds an nbgrader course ({existing[0]}); "
                          "use --force to rewrite the kit's files in it (each file it changes is "
                          "copied to init-backup-<time>/ first)")
    files[CONFIG_NAME] = CONFIG_TEMPLATE.format(course_id=course_dir.resolve().name or "course",
                                                assignment=assignment, student_file=STUDENT_FILE,
                                                timeout=CELL_TIMEOUT_S, marker=CONFIG_MARKER)
    config = course_dir / CONFIG_NAME
    foreign = config.is_file() and not _course_settings(config) and not _is_kit_config(config)
    files[CONFIG_NAME] += _foreign_settings(config) if foreign else _course_settings(config)
    notes = []
    backup = course_dir / time.strftime(BACKUP_FOLDER)
    for name, text in files.items():
        target = course_dir / name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            before = target.read_bytes() if target.exists() else None
            data = text if isinstance(text, bytes) else text.encode("utf-8")
            saved = _back_up(target, backup / name) if before is not None and before != data else None
            target.write_bytes(data)
        except OSError as exc:
            raise CourseError(f"cannot write {target}: {exc.strerror or exc}") from None
        state = "created" if before is None else ("unchanged" if before == data else "rewritten")
        notes.append(f"{state} {target}" + (f" (the previous one: {saved})" if saved else ""))
        if name == CONFIG_NAME and foreign and saved:
            notes.append(f"note: {target} was not written by the kit: its settings now follow the kit's, below "
                         "the marker line (yours win where both set the same thing); check them")
    return notes
