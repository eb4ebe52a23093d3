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
import stat
import sys
import tempfile
import threading
import time
import unicodedata
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import autograder
from autograder.spec import RUBRIC_PATH, load_rubric
from autograder.grade import outputs
from autograder.grade.outputs import clean_text, one_line
from autograder.grade.scoring import GradedSubmission, failed, grade_report

STUDENT_FILE = "resnet50_skeleton.py"
MAX_SOURCE_BYTES = 1024 * 1024   # the skeleton is ~10 KB; the parent never reads more than this
# The notebook's submission.zip; only its central directory and one member are read.
MAX_ZIP_BYTES = 512 * 1024 * 1024
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
    member: str = ""                # ``file`` is a zip: grade this member of it (read in memory)


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


def _find_in_folder(folder: Path) -> tuple[Path | None, str, tuple[str, ...], str]:
    """The file to grade in a student's folder: (file, problem, notes, zip member). Nothing here
    follows a link; whether a link may be read is decided when the file is read."""
    entries = _entries(folder)
    by_name = {e.name: e for e in entries}
    if STUDENT_FILE in by_name:
        return folder / STUDENT_FILE, "", (), ""
    # LMS downloads sometimes add a level: alice/submission/resnet50_skeleton.py
    nested = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            for inner in _entries(Path(entry.path)):
                if inner.name == STUDENT_FILE:
                    nested.append(Path(entry.path) / STUDENT_FILE)
    if len(nested) == 1:
        shown = nested[0].relative_to(folder).as_posix()
        return nested[0], "", (f"graded {shown} (no {STUDENT_FILE} at the top of the folder)",), ""
    # vgg.py is the handout's own file, never the answer
    python = [e.name for e in entries if e.name.endswith(".py") and e.name != "vgg.py"]
    similar = [n for n in python if _skeleton_like(n)]
    for group in (similar, python):
        if len(group) == 1:
            return folder / group[0], "", (f"graded {group[0]}: there is no {STUDENT_FILE}; "
                                           f"name your file {STUDENT_FILE} next time",), ""
        if len(group) > 1 or len(nested) > 1:
            names = [p.relative_to(folder).as_posix() for p in nested] or group
            return None, (f"no {STUDENT_FILE} in the submission folder, and {len(names)} other "
                          f"candidates ({', '.join(names[:6])}): could not tell which one to grade; "
                          f"the file to grade must be named {STUDENT_FILE}"), (), ""
    zips = [e for e in entries if e.name.lower().endswith(".zip")]
    if len(zips) == 1 and not python:
        return _find_in_zip(folder, zips[0])
    held = ", ".join(e.name for e in entries[:5]) + (", ..." if len(entries) > 5 else "")
    return None, MISSING + (f" (it holds: {held})" if entries else " (it is empty)"), (), ""


def _open_zip(path: Path, shown: str) -> zipfile.ZipFile:
    """``path`` opened as a zip without following a link, only if it is a regular file
    of at most MAX_ZIP_BYTES; zipfile reads the central directory, not the whole file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        raise Refused(f"{shown} could not be opened ({exc.strerror or exc})") from None
    f = os.fdopen(fd, "rb")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"{shown} is {_kind(info.st_mode)}, not a zip file")
        if info.st_size > MAX_ZIP_BYTES:
            raise Refused(f"{shown} is {info.st_size:,} bytes; the grader opens zip files of at most "
                          f"{MAX_ZIP_BYTES:,} bytes")
        return zipfile.ZipFile(f)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError):
        f.close()
        raise Refused(f"{shown} is not a readable zip file") from None
    except BaseException:
        f.close()
        raise


def _zip_candidates(archive: zipfile.ZipFile) -> list[str]:
    """Members named resnet50_skeleton.py at the top of the zip or one folder down."""
    found = []
    for name in archive.namelist():
        parts = name.split("/")
        if parts[-1] == STUDENT_FILE and len(parts) <= 2 and not any(
                part.startswith(".") or part == "__MACOSX" for part in parts):
            found.append(name)
    return found


def _find_in_zip(folder: Path, entry: os.DirEntry) -> tuple[Path | None, str, tuple[str, ...], str]:
    """The notebook's submission.zip handed in instead of the .py: grade its one
    resnet50_skeleton.py. The member is checked again when it is read."""
    if not entry.is_file(follow_symlinks=False):
        return None, f"{MISSING} (it holds {entry.name}, which is not a regular file)", (), ""
    try:
        with _open_zip(Path(entry.path), entry.name) as archive:
            members = _zip_candidates(archive)
    except Refused as exc:
        return None, f"{MISSING}, and {exc}", (), ""
    if len(members) == 1:
        return Path(entry.path), "", (f"graded {members[0]} from inside {entry.name}: hand in "
                                      f"the .py file itself next time",), members[0]
    if not members:
        return None, (f"{MISSING}; the only file, {entry.name}, holds no {STUDENT_FILE} "
                      "(hand in the .py file itself)"), (), ""
    return None, (f"{MISSING}; the only file, {entry.name}, holds {len(members)} files named "
                  f"{STUDENT_FILE} ({', '.join(members[:6])}): could not tell which one to grade; "
                  "hand in the .py file itself"), (), ""


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
                    file, problem, notes, member = _find_in_folder(full)
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
    if sub.member:
        return _read_member(sub)
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


def _read_member(sub: Submission) -> bytes:
    """``sub.member`` of the zip ``sub.file``, read in memory (nothing is extracted):
    a plain member path, no link, at most MAX_SOURCE_BYTES declared and read."""
    shown = f"{sub.file.name}:{sub.member}"
    with _open_zip(sub.file, sub.file.name) as archive:
        try:
            info = archive.getinfo(sub.member)
        except KeyError:
            raise Refused(f"{shown} is no longer in the zip") from None
        parts = info.filename.split("/")
        if info.filename.startswith("/") or "\\" in info.filename or ".." in parts or ":" in parts[0]:
            raise Refused(f"{shown} has a path that leaves the zip's folder")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise Refused(f"{shown} is a symbolic link inside the zip; only a plain file is graded")
        if info.flag_bits & 0x1:
            raise Refused(f"{shown} is encrypted")
        if info.file_size > MAX_SOURCE_BYTES:
            raise Refused(f"{shown} is {info.file_size:,} bytes unpacked; the grader reads files of "
                          f"at most {MAX_SOURCE_BYTES:,} bytes")
        try:
            with archive.open(info) as member:
                data = member.read(MAX_SOURCE_BYTES + 1)   # the declared size may lie: read no more
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, OSError, EOFError) as exc:
            raise Refused(f"{shown} could not be unpacked ({exc})") from None
    if len(data) > MAX_SOURCE_BYTES or len(data) != info.file_size:
        raise Refused(f"{shown} unpacks to more bytes than the zip declares")
    return data


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
