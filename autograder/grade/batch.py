"""Grade a batch: find the submissions, run each in the sandbox, write results.

``python -m autograder grade PATH --out DIR`` lands here. Resumable: a student
whose results file exists (for the same file, rubric, reference solution, spec
and grader code) is not graded again unless ``force``; each result is written
atomically as soon as it is done. One student never stops the batch: whatever
goes wrong while grading or writing them becomes their ``crashed`` row.
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import autograder
from autograder.spec import RUBRIC_PATH, load_rubric
from autograder.grade import outputs
from autograder.grade.outputs import clean_text
from autograder.grade.scoring import GradedSubmission, failed, grade_report

STUDENT_FILE = "resnet50_skeleton.py"
MAX_SOURCE_BYTES = 1024 * 1024   # the skeleton is ~10 KB; the parent never reads more than this
PACKAGE_DIR = Path(autograder.__file__).resolve().parent
REFERENCE_SOLUTION = PACKAGE_DIR.parent / "solutions" / STUDENT_FILE
SPEC_DIR = PACKAGE_DIR / "spec"
# A change to any of these regrades everything on the next run (the grader's "version").
GRADER_SOURCE_DIRS = (PACKAGE_DIR / "grade", PACKAGE_DIR / "check", PACKAGE_DIR / "spec")
MISSING = f"no {STUDENT_FILE} in the submission folder"


class BatchError(Exception):
    """A problem with the grader's own input (bad path, unwritable output)."""


class Refused(Exception):
    """The trusted process will not read this file (a link out of the folder, a FIFO, too big)."""


@dataclass(frozen=True)
class Submission:
    student: str                    # the name as handed in (an LMS folder name, spaces and all)
    file: Path | None               # what to grade; None when nothing gradable was found
    folder: Path | None = None      # the student's own folder: links may not leave it
    problem: str = ""               # why ``file`` is None, for the student
    problem_status: str = "missing"   # the status that goes with ``problem``
    notes: tuple[str, ...] = ()     # said in feedback (e.g. which file was graded)
    file_id: str = ""               # a safe, unique name for results/ and feedback/
    trusted_link: bool = False      # the instructor named this file: following its link is fine


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


def _skeleton_like(name: str) -> bool:
    """``resnet50_skeleton (1).py``, ``ResNet50_Skeleton-2.py``, ``resnet50 skeleton.py``..."""
    return re.sub(r"[^a-z0-9]", "", name.lower()).startswith("resnet50skeleton")


def _entries(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return sorted((e for e in it if not e.name.startswith(".") and e.name != "__MACOSX"),
                      key=lambda e: e.name)


def _find_in_folder(folder: Path) -> tuple[Path | None, str, tuple[str, ...]]:
    """The file to grade in a student's folder: (file, problem, notes). Nothing here
    follows a link; whether a link may be read is decided when the file is read."""
    entries = _entries(folder)
    by_name = {e.name: e for e in entries}
    if STUDENT_FILE in by_name:
        return folder / STUDENT_FILE, "", ()
    # LMS downloads sometimes add a level: alice/submission/resnet50_skeleton.py
    nested = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            for inner in _entries(Path(entry.path)):
                if inner.name == STUDENT_FILE:
                    nested.append(Path(entry.path) / STUDENT_FILE)
    if len(nested) == 1:
        shown = nested[0].relative_to(folder).as_posix()
        return nested[0], "", (f"graded {shown} (no {STUDENT_FILE} at the top of the folder)",)
    # vgg.py is the handout's own file, never the answer
    python = [e.name for e in entries if e.name.endswith(".py") and e.name != "vgg.py"]
    similar = [n for n in python if _skeleton_like(n)]
    for group in (similar, python):
        if len(group) == 1:
            return folder / group[0], "", (f"graded {group[0]}: there is no {STUDENT_FILE}; "
                                           f"name your file {STUDENT_FILE} next time",)
        if len(group) > 1 or len(nested) > 1:
            names = [p.relative_to(folder).as_posix() for p in nested] or group
            return None, (f"no {STUDENT_FILE} in the submission folder, and {len(names)} other "
                          f"candidates ({', '.join(names[:6])}): could not tell which one to grade; "
                          f"the file to grade must be named {STUDENT_FILE}"), ()
    held = ", ".join(e.name for e in entries[:5]) + (", ..." if len(entries) > 5 else "")
    return None, MISSING + (f" (it holds: {held})" if entries else " (it is empty)"), ()


def _looks_like_output(folder: Path) -> bool:
    """A folder this grader wrote (grades.csv beside results/): never a student."""
    return (folder / "grades.csv").is_file() and (folder / "results").is_dir()


def discover(path: Path, skip: tuple[Path, ...] = (), log=print) -> list[Submission]:
    """One .py file, or a folder with one sub-folder per student (loose .py files
    in it count as students too, named by their stem). Folders in ``skip`` (the
    output folder) and grader output folders are passed over."""
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
                if full.resolve() in skipped or _looks_like_output(full):
                    log(clean_text(f"skipping {full}: it is a grader output folder, not a student"))
                    continue
                try:
                    file, problem, notes = _find_in_folder(full)
                except OSError as exc:   # an unreadable folder is that student's problem only
                    file, problem, notes = None, f"the submission folder could not be read ({exc.strerror or exc})", ()
                found.append(Submission(entry.name, file, full, problem=problem, notes=notes))
            elif entry.name.endswith(".py"):
                loose.append(full)
        folders = {s.student for s in found}
        for file in loose:
            # alice.py beside alice/: two students, so the file keeps its extension in its name
            found.append(Submission(file.name if file.stem in folders else file.stem, file))
        if not found:
            raise BatchError(f"{path} holds no submissions (expected one folder per student "
                             f"with {STUDENT_FILE} inside)")
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

def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_source(sub: Submission) -> bytes:
    """The bytes of ``sub.file``, read without trusting it: a link may not lead out of
    the student's folder, only a regular file is opened, and at most MAX_SOURCE_BYTES."""
    file = sub.file
    shown = file.relative_to(sub.folder).as_posix() if sub.folder else file.name
    if not sub.trusted_link:
        real = Path(os.path.realpath(file))
        if sub.folder is not None:
            inside = real.is_relative_to(os.path.realpath(sub.folder))
        else:   # a loose file in the submissions folder: no link at all
            inside = real == Path(os.path.realpath(file.parent)) / file.name
        if not inside:
            where = "outside the student's folder" if sub.folder else "elsewhere"
            raise Refused(f"{shown} is a symbolic link to a file {where}; "
                          "only the student's own file is graded")
        file = real
    try:
        before = os.stat(file, follow_symlinks=sub.trusted_link)
        if not stat.S_ISREG(before.st_mode):
            raise Refused(f"{shown} is {_kind(before.st_mode)}, not a Python file")
        if before.st_size > MAX_SOURCE_BYTES:
            raise Refused(f"{shown} is {before.st_size:,} bytes; the grader reads files of at most "
                          f"{MAX_SOURCE_BYTES:,} bytes")
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if sub.trusted_link else os.O_NOFOLLOW)
        fd = os.open(file, flags)
    except OSError as exc:
        link = " (a symbolic link)" if os.path.islink(sub.file) else ""
        raise Refused(f"{shown}{link} could not be opened ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as f:
        now = os.fstat(f.fileno())
        if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino) or not stat.S_ISREG(now.st_mode):
            raise Refused(f"{shown} changed while it was being read")
        data = f.read(MAX_SOURCE_BYTES + 1)
    if len(data) > MAX_SOURCE_BYTES:
        raise Refused(f"{shown} is larger than {MAX_SOURCE_BYTES:,} bytes, the most the grader reads")
    return data


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


def _grade_in_sandbox(todo, out, rubric, jobs, timeout_s, memory_mb, progress, log, done,
                      isolation="auto", submissions=None) -> None:
    from tqdm import tqdm

    from autograder.grade.expectations import build_expectations
    from autograder.grade.sandbox import Limits, Sandbox

    expectations = build_expectations(load_reference_solution())
    limits = Limits(timeout_s=timeout_s, memory_bytes=memory_mb * 1024 * 1024)
    hidden = [out.resolve()] + ([submissions.resolve()] if submissions else [])   # no child sees another's file
    # The checked bytes go to the sandbox from a private copy inside ``out`` (hidden from
    # every child), never from the student's path, which could be swapped for a link.
    sources = Path(tempfile.mkdtemp(prefix=".sources-", dir=out))
    with Sandbox(job="autograder.grade.probe:run_probe", limits=limits, hidden_paths=hidden,
                 isolation=isolation) as sandbox:
        if sandbox.warning:
            log(f"WARNING: {sandbox.warning}")

        def grade_one(item):
            sub, fp = item
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
            return sub, _save(out, sub, graded, fp, rubric)

        bar = tqdm(total=len(todo), desc="grading", unit="submission", disable=not progress,
                   file=sys.stderr)
        try:
            with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
                for future in as_completed([pool.submit(grade_one, item) for item in todo]):
                    sub, done[sub.file_id] = future.result()
                    bar.set_postfix_str(clean_text(f"{sub.student}: {done[sub.file_id]['score']:g}"),
                                        refresh=False)
                    bar.update()
        finally:
            bar.close()
            shutil.rmtree(sources, ignore_errors=True)
