"""``python -m autograder nbgrader verify COURSE_DIR``: the gradebook against the sandboxed CLI.

Under ``nbgrader autograde`` student code can run in the notebook kernel, so a student
could change what a test cell returns. ``verify`` regrades every student's handed-in
folder with the kit's grader (the file found as ``python -m autograder grade`` finds it
in a student folder, ``resnet50_skeleton (1).py`` included, each in its sandbox) and
compares each part with the gradebook's score for that part's test cell. Every
submitted student is either compared or listed with the reason; a student whose notebook
autograde replaced with the released one (:mod:`.autograde`) is compared and also listed,
as a note.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from autograder.nbgrader import NOTEBOOK_NAME, grade_id_for_part
from autograder.nbgrader.autograde import notebook_problem
from autograder.nbgrader.test_cell import stage_student_folder
from autograder.spec import PART_IDS

TOLERANCE = 0.005   # the grader rounds points to 2 decimals
VERIFY_OUT = "autograder_verify"   # the CLI's output folder inside the course (resumes across runs)


class VerifyError(ValueError):
    """A course folder that cannot be verified (no gradebook, no submissions)."""


@dataclass(frozen=True)
class Difference:
    student: str
    problem: str   # one sentence
    differs: bool = True   # False: a note (the gradebook agrees, but the TA should know why)


def gradebook_scores(course_dir: Path, assignment: str) -> dict[str, dict[str, float | None]]:
    """Per student, the gradebook's score of each part's test cell: the manual score where a TA
    set one, else the autograded one; None when neither was recorded (autograde failed for the
    student, e.g. a kernel that died: nbgrader's ``Grade.score`` would read that as 0)."""
    from nbgrader.api import Gradebook, MissingEntry
    db = Path(course_dir) / "gradebook.db"
    if not db.is_file():
        raise VerifyError(f"{db} does not exist: run nbgrader autograde in {course_dir} first")
    notebook_id = Path(NOTEBOOK_NAME).stem
    scores: dict[str, dict[str, float | None]] = {}
    with Gradebook(f"sqlite:///{db.resolve()}") as gb:
        try:
            submissions = gb.find_assignment(assignment).submissions
        except MissingEntry:
            raise VerifyError(f"the gradebook has no assignment {assignment!r}") from None
        for submission in submissions:
            parts: dict[str, float | None] = {part: None for part in PART_IDS}
            try:
                notebook = gb.find_submission_notebook(notebook_id, assignment, submission.student.id)
            except MissingEntry:
                scores[submission.student.id] = parts
                continue
            by_cell = {grade.name: grade for grade in notebook.grades}
            for part in PART_IDS:
                grade = by_cell.get(grade_id_for_part(part))
                score = None if grade is None else (
                    grade.manual_score if grade.manual_score is not None else grade.auto_score)
                parts[part] = None if score is None else float(score)
            scores[submission.student.id] = parts
    return scores


def verify_course(course_dir: Path, assignment: str, jobs: int = 2,
                  progress: bool = False) -> tuple[list[Difference], int]:
    """(one line per student whose gradebook differs from the CLI, or whose notebook autograde had to
    replace (``differs`` False), how many students were compared)."""
    from autograder.grade.batch import grade_batch
    course_dir = Path(course_dir)
    submitted = course_dir / "submitted"
    if not submitted.is_dir():
        raise VerifyError(f"{submitted} does not exist: nothing was handed in")
    in_gradebook = gradebook_scores(course_dir, assignment)
    students = sorted(p.name for p in submitted.iterdir() if (p / assignment).is_dir())
    if not students:
        raise VerifyError(f"no submission of {assignment!r} under {submitted}")
    # One folder per student with what the test cells grade (the same staging), as grade_batch expects;
    # rebuilt every run so that a file removed from a submission is not graded from an earlier copy.
    staging = course_dir / VERIFY_OUT / "submissions"
    shutil.rmtree(staging, ignore_errors=True)
    for student in students:
        stage_student_folder(submitted / student / assignment, staging / student)
    results = grade_batch(staging, course_dir / VERIFY_OUT / "grading", jobs=jobs, progress=progress,
                          log=lambda *_: None)
    by_student = {r["extra_data"]["student"]: r for r in results}
    differences = []
    for student in students:
        if student not in by_student:
            differences.append(Difference(student, "the CLI returned no result for this student "
                                                   f"(see {course_dir / VERIFY_OUT / 'grading'})"))
            continue
        cli = by_student[student].get("extra_data", {})
        cli_parts = cli.get("parts", {})
        book = in_gradebook.get(student)
        cli_total = (f"the CLI gives {sum(map(float, cli_parts.values())):g}"
                     f" ({', '.join(f'{p} {float(v):g}' for p, v in cli_parts.items())})")
        if book is None:
            differences.append(Difference(student, f"handed in but not autograded (no gradebook score; run "
                                                   f"nbgrader autograde {assignment}); {cli_total}"))
            continue
        if all(score is None for score in book.values()):
            differences.append(Difference(student, "autograde failed for this student (no part has a score: "
                                                   "see nbgrader's log, e.g. the kernel died or timed out); "
                                                   f"give each part a manual grade in formgrader: {cli_total}"))
            continue
        problem = notebook_problem(submitted / student / assignment / NOTEBOOK_NAME)
        if problem:
            # autograde graded the .py with the released notebook in its place (flagged in the gradebook)
            differences.append(Difference(student, f"note: {problem}; autograde graded the .py with the released "
                                                   "notebook in its place (flagged in the gradebook)", differs=False))
        wrong = []
        for part in PART_IDS:
            expected = float(cli_parts.get(part, 0.0))
            got = book.get(part)
            if got is None:
                wrong.append(f"{part}: no gradebook score (needs a manual grade), the CLI gives {expected:g}")
            elif abs(got - expected) > TOLERANCE:
                wrong.append(f"{part}: gradebook {got:g}, the CLI {expected:g}")
        if wrong:
            status = cli.get("status", "ok")
            differences.append(Difference(student, "; ".join(wrong)
                                          + ("" if status == "ok" else f" (CLI status: {status})")))
    return differences, len(students)
