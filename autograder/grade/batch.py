"""Grade a batch: find the submissions, run each in the sandbox, write results.

``python -m autograder grade PATH --out DIR`` lands here. Resumable: a student
whose results file exists (for the same file, rubric, reference solution, spec
and grader code) is not graded again unless ``force``; each result is written
atomically as soon as it is done. One student never stops the batch: whatever
goes wrong while grading or writing them becomes their ``crashed`` row.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import autograder
from autograder.spec import RUBRIC_PATH, load_rubric
from autograder.grade import outputs
# The finder is shared with Gradescope's run_autograder (it must not import torch); its names
# stay importable from here.
from autograder.grade.finder import (MAX_SOURCE_BYTES, MAX_ZIP_BYTES, MISSING, STUDENT_FILE,  # noqa: F401
                                     Refused, Submission, _entries, _find_in_zip, _kind, _open_zip,
                                     _read_member, _skeleton_like, _zip_candidates, find_in_folder,
                                     read_source)
from autograder.grade.outputs import clean_text, one_line
from autograder.grade.scoring import GradedSubmission, failed, grade_report

PACKAGE_DIR = Path(autograder.__file__).resolve().parent
REFERENCE_SOLUTION = PACKAGE_DIR.parent / "solutions" / STUDENT_FILE
SPEC_DIR = PACKAGE_DIR / "spec"
# A change to any of these regrades everything on the next run (the grader's "version").
GRADER_SOURCE_DIRS = (PACKAGE_DIR / "grade", PACKAGE_DIR / "check", PACKAGE_DIR / "spec")


class BatchError(Exception):
    """A problem with the grader's own input (bad path, unwritable output)."""


# ---------------------------------------------------------------- discovery

def _file_id(student: str) -> str:
    """A file name for ``student``: letters (any script), digits and ``._@+-`` kept,
    anything else made ``_``; a changed name gets a hash of the original, so
    ``Jane Doe`` and ``Jane_Doe`` never share a file."""
    name = unicodedata.normalize("NFC", student)
    safe = re.sub(r"[^\w.@+-]+", "_", name).strip("._")[:80] or "student"
    if safe != student:
        raw = student.encode("utf-8", "surrogateescape")
        safe += "-" + hashlib.sha256(raw).hexdigest()[:8]
    return safe


def _looks_like_output(folder: Path) -> bool:
    """A folder laid out as this grader writes its output (grades.csv beside results/)."""
    return (folder / "grades.csv").is_file() and (folder / "results").is_dir()


def _unique_names(found: list[Submission]) -> list[Submission]:
    """Every student id in the gradebook is unique: alice/, alice.py and alice.py.py
    are three rows (``alice``, ``alice.py``, ``alice.py (2)``), never two ``alice.py``."""
    taken: set[str] = set()
    unique = []
    for sub in found:
        name, n = sub.student, 1
        while name in taken:
            n += 1
            name = f"{sub.student} ({n})"
        taken.add(name)
        unique.append(sub if name == sub.student else Submission(**{**sub.__dict__, "student": name}))
    return unique


def discover(path: Path, skip: tuple[Path, ...] = (), log=print) -> list[Submission]:
    """One .py file, or a folder with one sub-folder per student (loose .py files
    in it count as students too, named by their stem). Folders in ``skip`` (the
    output folder) are passed over; every other folder is a student."""
    if not path.exists():
        raise BatchError(f"{path} does not exist")
    if path.is_file():
        if path.suffix != ".py":
            raise BatchError(f"{path} is not a .py file or a folder of submissions")
        found = [Submission(path.stem, path, trusted_link=True)]
    elif not path.is_dir():
        raise BatchError(f"{path} is not a .py file or a folder of submissions")
    else:
        skipped = {p.resolve() for p in skip}
        found, loose = [], []
        for entry in _entries(path):
            full = Path(entry.path)
            if entry.is_symlink():
                if entry.name.endswith(".py") or entry.is_dir():
                    name = entry.name[:-3] if entry.name.endswith(".py") else entry.name
                    found.append(Submission(name, None, problem_status="refused", problem=(
                        f"{entry.name} is a symbolic link; only files and folders handed in "
                        "themselves are graded")))
                continue
            if entry.is_dir(follow_symlinks=False):
                if full.resolve() in skipped:
                    log(one_line(f"skipping {full}: it is the output folder"))
                    continue
                try:
                    # _entries looked up here, at call time: tests replace batch's own
                    file, problem, notes, member = find_in_folder(full, _entries)
                except OSError as exc:   # an unreadable folder is that student's problem only
                    file, problem, notes, member = None, f"the submission folder could not be read ({exc.strerror or exc})", (), ""
                if _looks_like_output(full) and file is None:
                    # Only the real --out is skipped: a student cannot leave the gradebook by
                    # adding grades.csv and results/; an old output folder becomes a visible row.
                    notes = (*notes, "this folder holds grades.csv and results/ like a grader output "
                                     "folder; if it is one, move it out of the submissions folder")
                    log(one_line(f"{full} looks like a grader output folder: listed as missing"))
                found.append(Submission(entry.name, file, full, problem=problem, notes=notes, member=member))
            elif entry.name.endswith(".py"):
                loose.append(full)
        folders = {s.student for s in found}
        for file in loose:
            # alice.py beside alice/: two students, so the file keeps its extension in its name
            found.append(Submission(file.name if file.stem in folders else file.stem, file))
        if not found:
            raise BatchError(f"{path} holds no submissions (expected one folder per student "
                             f"with {STUDENT_FILE} inside)")
        found = _unique_names(found)
        found.sort(key=lambda s: s.student)
    return _with_file_ids(found)


def _with_file_ids(found: list[Submission]) -> list[Submission]:
    ids = [_file_id(s.student) for s in found]
    seen: dict[str, int] = {}
    unique = []
    for sub, file_id in zip(found, ids):
        key = file_id.casefold()   # a case-insensitive disk must not merge two students either
        while key in seen:
            seen[key] += 1
            file_id = f"{_file_id(sub.student)}-{seen[key]}"
            key = file_id.casefold()
        seen[key] = 1
        unique.append(Submission(**{**sub.__dict__, "file_id": file_id}))
    return unique


# ---------------------------------------------------------------- reading student files

def encoding_problem(source: bytes) -> str:
    """Why ``source`` cannot be Python source as saved, in the student's terms: UTF-16
    or UTF-32 (Notepad's "Unicode"), or NUL bytes; "" when it may be fine."""
    for bom, name in ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
                      (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16")):
        if source.startswith(bom):
            return (f"the file is saved as {name}; save it as UTF-8 (in your editor's "
                    "\"Save with encoding\" or \"Save as\" dialog) and hand it in again")
    if b"\x00" in source:
        # ASCII text saved as UTF-16 without a byte-order mark: every other byte is NUL
        if source.count(b"\x00") * 3 >= len(source):
            return ("the file looks saved as UTF-16 (every other byte is NUL); save it as UTF-8 "
                    "and hand it in again")
        first = source.index(b"\x00")
        return (f"the file holds NUL bytes (the first at byte {first:,}), which Python "
                "source cannot contain; save it as plain UTF-8 text and hand it in again")
    return ""


# ---------------------------------------------------------------- fingerprints

def grader_fingerprint(rubric_bytes: bytes) -> str:
    """Everything besides the submission that decides a grade: the rubric, the
    reference solution, the spec and the grader's own code."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode("utf-8", "surrogateescape") + data)

    add("rubric", rubric_bytes)
    add("reference", REFERENCE_SOLUTION.read_bytes())
    for folder in (SPEC_DIR, *GRADER_SOURCE_DIRS):
        for file in sorted(folder.rglob("*")):
            if file.suffix in (".py", ".toml") and "__pycache__" not in file.parts and file.is_file():
                add(f"{folder.name}/{file.relative_to(folder).as_posix()}", file.read_bytes())
    return digest.hexdigest()


def fingerprint(grader: str, source: bytes | None, problem: str = "") -> str:
    digest = hashlib.sha256(grader.encode())
    digest.update(source if source is not None else b"<not graded>" + problem.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16]


def load_reference_solution():
    """The reference solution, loaded by its file path: works from any directory."""
    spec = importlib.util.spec_from_file_location("_kit_reference_resnet50_skeleton", REFERENCE_SOLUTION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- the batch

def prepare_out(out: Path) -> None:
    try:
        for sub in ("results", "feedback"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise BatchError(f"cannot write to {out}: {exc.strerror or exc}") from None


def _describe(exc: BaseException) -> str:
    return clean_text(f"{type(exc).__name__}: {exc}")[:500]


def _save(out: Path, sub: Submission, graded: GradedSubmission, fp: str, rubric) -> dict:
    """Write one student's files; if that fails, their row says why instead."""
    bad = [c.name for c in graded.checks if not math.isfinite(c.score)]
    if bad:
        graded = failed(sub.student, "crashed", f"the grader computed a score that is not a number "
                        f"for {bad[0]}; please report this", rubric, graded.output, graded.elapsed_s)
    try:
        return outputs.write_submission(out, graded, fp, sub.file_id, sub.notes)
    except Exception as exc:   # noqa: BLE001 -- one student's files never stop the batch
        graded = failed(sub.student, "crashed", f"the grader could not write this student's results "
                        f"({_describe(exc)})", rubric, "", graded.elapsed_s)
        try:
            return outputs.write_submission(out, graded, fp, sub.file_id, sub.notes)
        except Exception:   # noqa: BLE001 -- keep the row; no file, so the next run retries
            return outputs.results_json(graded, "", sub.notes)


def grade_batch(path: Path, out: Path, jobs: int = 2, timeout_s: float = 60.0,
                memory_mb: int = 4096, force: bool = False, rubric_path: Path = RUBRIC_PATH,
                progress: bool = True, log=print, isolation: str = "auto") -> list[dict]:
    """Grade everything under ``path`` into ``out``; returns every student's results."""
    where, into = path.resolve(), out.resolve()
    if into == where or where.is_relative_to(into):
        # The next run would take results/ and feedback/ for students (or grade its own output).
        raise BatchError(f"--out {out} must not be the submissions folder {path} or a folder holding it")
    submissions = discover(path, skip=(out,), log=log)
    rubric = load_rubric(rubric_path)
    grader = grader_fingerprint(rubric_path.read_bytes())
    prepare_out(out)

    todo, not_gradable, done = [], [], {}
    for sub in submissions:
        problem, status, source = sub.problem, sub.problem_status, None
        if sub.file is not None:
            try:
                source = read_source(sub)
            except Refused as exc:
                problem, status = str(exc), "refused"
            else:
                if encoding_problem(source):   # told before the sandbox: Python's own message is obscure
                    problem, status, source = encoding_problem(source), "syntax_error", None
        fp = fingerprint(grader, source, problem)
        previous = None if force else outputs.read_result(out, sub.file_id)
        if (previous is not None and previous["extra_data"].get("fingerprint") == fp
                and previous["extra_data"].get("student") == clean_text(sub.student)):
            done[sub.file_id] = previous
        elif source is None:
            not_gradable.append((sub, fp, status, problem or MISSING))
        else:
            todo.append((sub, fp))   # read again when graded: the class is never all in memory
    if done:
        log(f"resuming: {len(done)} already graded, {len(todo) + len(not_gradable)} to grade "
            "(use --force to regrade all)")

    for sub, fp, status, problem in not_gradable:
        done[sub.file_id] = _save(out, sub, failed(sub.student, status, problem, rubric), fp, rubric)
    if todo:
        _grade_in_sandbox(todo, out, rubric, jobs, timeout_s, memory_mb, progress, log, done,
                          isolation, path)
    results = [done[s.file_id] for s in submissions]
    try:
        outputs.write_gradebook(out, results)
    except OSError as exc:
        raise BatchError(f"cannot write {out / 'grades.csv'}: {exc.strerror or exc}") from None
    return results


@contextlib.contextmanager
def _signals_deferred():
    """Ctrl-C or SIGTERM that arrives inside this block is acted on when it ends: while the
    sandbox starts (so that leaving ``with Sandbox`` can stop it and remove its folder) and
    while code that may swallow the exception runs. Only the main thread can set handlers;
    elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            handler = previous[caught[0]]
            if callable(handler):
                handler(caught[0], None)   # raises KeyboardInterrupt (or the CLI's Terminated)
            elif handler != signal.SIG_IGN:
                os.kill(os.getpid(), caught[0])


def _grade_in_sandbox(todo, out, rubric, jobs, timeout_s, memory_mb, progress, log, done,
                      isolation="auto", submissions=None) -> None:
    from tqdm import tqdm

    from autograder.grade.expectations import build_expectations
    from autograder.grade.sandbox import Limits, Sandbox

    with _signals_deferred():   # the reference's code may catch any exception, KeyboardInterrupt too
        expectations = build_expectations(load_reference_solution())
    limits = Limits(timeout_s=timeout_s, memory_bytes=memory_mb * 1024 * 1024)
    hidden = [out.resolve()] + ([submissions.resolve()] if submissions else [])   # no child sees another's file
    stopping = threading.Event()   # interrupted: what is still running is not saved
    # The checked bytes go to the sandbox from a private copy inside ``out`` (hidden from
    # every child), never from the student's path, which could be swapped for a link.
    sources = Path(tempfile.mkdtemp(prefix=".sources-", dir=out))
    try:
        with _signals_deferred():
            sandbox = Sandbox(job="autograder.grade.probe:run_probe", limits=limits, hidden_paths=hidden,
                              isolation=isolation)
        with sandbox:
            if sandbox.warning:
                log(f"WARNING: {sandbox.warning}")

            def grade_one(item):
                sub, fp = item
                if stopping.is_set():
                    return sub, None
                start = time.monotonic()
                try:
                    copy = sources / f"{sub.file_id}.py"
                    copy.write_bytes(read_source(sub))
                    try:
                        child = sandbox.run(copy, expectations.request_bytes)
                    finally:
                        copy.unlink(missing_ok=True)
                    elapsed = time.monotonic() - start
                    if child.status == "ok" and child.payload is not None:
                        graded = grade_report(sub.student, child.payload, expectations, rubric,
                                              child.output, elapsed)
                    else:
                        graded = failed(sub.student, child.status, child.message, rubric, child.output, elapsed)
                except Refused as exc:
                    graded = failed(sub.student, "refused", str(exc), rubric)
                except Exception as exc:   # noqa: BLE001 -- one student never stops the batch
                    graded = failed(sub.student, "crashed", f"the grader failed on this submission "
                                    f"({_describe(exc)}); please report this", rubric,
                                    elapsed_s=time.monotonic() - start)
                if stopping.is_set():   # its run was cut short: no row, so the next run grades it
                    return sub, None
                return sub, _save(out, sub, graded, fp, rubric)

            # Counts every submission (those refused or resumed before the sandbox as done) so that
            # its total is the class size the summary gives.
            bar = tqdm(total=len(todo) + len(done), initial=len(done), desc="grading", unit="submission",
                       disable=not progress, file=sys.stderr)
            pool = ThreadPoolExecutor(max_workers=max(1, jobs))
            try:
                for future in as_completed([pool.submit(grade_one, item) for item in todo]):
                    sub, done[sub.file_id] = future.result()
                    bar.set_postfix_str(one_line(f"{sub.student}: {done[sub.file_id]['score']:g}"),
                                        refresh=False)
                    bar.update()
            except BaseException:
                stopping.set()
                sandbox.close()   # ends the running children now instead of at their timeout
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
                bar.close()
    finally:
        shutil.rmtree(sources, ignore_errors=True)
