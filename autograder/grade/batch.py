"""Grade a batch: find the submissions, run each in the sandbox, write results.

``python -m autograder grade PATH --out DIR`` lands here. Resumable: a student
whose results file exists (for the same file and rubric) is not graded again
unless ``force``; each result is written atomically as soon as it is done.
"""
from __future__ import annotations

import hashlib
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from autograder.spec import RUBRIC_PATH, load_rubric
from autograder.grade import outputs
from autograder.grade.scoring import failed, grade_report

STUDENT_FILE = "resnet50_skeleton.py"
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")


class BatchError(Exception):
    """A problem with the grader's own input (bad path, unwritable output)."""


@dataclass(frozen=True)
class Submission:
    student: str
    file: Path | None      # None: the student's folder has no resnet50_skeleton.py


def discover(path: Path) -> list[Submission]:
    """One .py file, or a folder with one sub-folder per student (loose .py files
    in it count as students too, named by their stem)."""
    if not path.exists():
        raise BatchError(f"{path} does not exist")
    if path.is_file():
        if path.suffix != ".py":
            raise BatchError(f"{path} is not a .py file or a folder of submissions")
        found = [Submission(path.stem, path)]
    else:
        found = []
        for entry in sorted(path.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                file = entry / STUDENT_FILE
                found.append(Submission(entry.name, file if file.is_file() else None))
            elif entry.suffix == ".py":
                found.append(Submission(entry.stem, entry))
        if not found:
            raise BatchError(f"{path} holds no submissions (expected one folder per student "
                             f"with {STUDENT_FILE} inside)")
    bad = [s.student for s in found if not SAFE_ID.match(s.student)]
    if bad:
        raise BatchError(f"student ids must be plain file names; rename: {', '.join(bad[:5])}")
    return found


def fingerprint(sub: Submission, rubric_bytes: bytes) -> str:
    digest = hashlib.sha256(rubric_bytes)
    digest.update(sub.file.read_bytes() if sub.file else b"<missing>")
    return digest.hexdigest()[:16]


def prepare_out(out: Path) -> None:
    try:
        for sub in ("results", "feedback"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise BatchError(f"cannot write to {out}: {exc.strerror or exc}") from None


def grade_batch(path: Path, out: Path, jobs: int = 2, timeout_s: float = 60.0,
                memory_mb: int = 4096, force: bool = False, rubric_path: Path = RUBRIC_PATH,
                progress: bool = True, log=print) -> list[dict]:
    """Grade everything under ``path`` into ``out``; returns every student's results."""
    submissions = discover(path)
    rubric = load_rubric(rubric_path)
    rubric_bytes = rubric_path.read_bytes()
    prepare_out(out)

    todo, done = [], {}
    for sub in submissions:
        fp = fingerprint(sub, rubric_bytes)
        previous = None if force else outputs.read_result(out, sub.student)
        if previous is not None and previous["extra_data"].get("fingerprint") == fp:
            done[sub.student] = previous
        else:
            todo.append((sub, fp))
    if done:
        log(f"resuming: {len(done)} already graded, {len(todo)} to grade (use --force to regrade all)")

    for sub, fp in [t for t in todo if t[0].file is None]:
        graded = failed(sub.student, "missing", f"no {STUDENT_FILE} in the submission folder", rubric)
        done[sub.student] = outputs.write_submission(out, graded, fp)
    todo = [t for t in todo if t[0].file is not None]

    if todo:
        _grade_in_sandbox(todo, out, rubric, jobs, timeout_s, memory_mb, progress, log, done)
    results = [done[s.student] for s in submissions]
    outputs.write_gradebook(out, results)
    return results


def _grade_in_sandbox(todo, out, rubric, jobs, timeout_s, memory_mb, progress, log, done) -> None:
    from tqdm import tqdm

    from autograder.grade.expectations import build_expectations
    from autograder.grade.sandbox import Limits, Sandbox

    expectations = build_expectations()
    limits = Limits(timeout_s=timeout_s, memory_bytes=memory_mb * 1024 * 1024)
    hidden = [out.resolve()]
    with Sandbox(job="autograder.grade.probe:run_probe", limits=limits, hidden_paths=hidden) as sandbox:
        if sandbox.warning:
            log(f"WARNING: {sandbox.warning}")

        def grade_one(item):
            sub, fp = item
            start = time.monotonic()
            child = sandbox.run(sub.file, expectations.request_bytes)
            elapsed = time.monotonic() - start
            if child.status == "ok" and child.payload is not None:
                graded = grade_report(sub.student, child.payload, expectations, rubric,
                                      child.output, elapsed)
            else:
                graded = failed(sub.student, child.status, child.message, rubric, child.output, elapsed)
            return sub.student, outputs.write_submission(out, graded, fp)

        bar = tqdm(total=len(todo), desc="grading", unit="submission", disable=not progress,
                   file=sys.stderr)
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for future in as_completed([pool.submit(grade_one, item) for item in todo]):
                student, done[student] = future.result()
                bar.set_postfix_str(f"{student}: {done[student]['score']:g}", refresh=False)
                bar.update()
        bar.close()
