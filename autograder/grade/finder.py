"""Which file of a student's upload is graded, and reading it without trusting it.

One finder for every way the kit grades: ``python -m autograder grade`` (batch.py,
one folder per student) and Gradescope's run_autograder (one upload folder) both
call :func:`find_in_folder` and :func:`read_source`, so the same upload gets the
same file, notes and statuses everywhere. Nothing here imports torch (run_autograder
finds the file before it loads the grader) and nothing follows a link or unpacks a
zip to disk: a zip's central directory is read (its member count and size capped
first) and then the one member that is graded.
"""
from __future__ import annotations

import os
import re
import stat
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

STUDENT_FILE = "resnet50_skeleton.py"
MAX_SOURCE_BYTES = 1024 * 1024   # the skeleton is ~10 KB; the parent never reads more than this
# The notebook's submission.zip; only its central directory and one member are read.
MAX_ZIP_BYTES = 512 * 1024 * 1024
# A zip's central directory is read whole by zipfile: capped before it is parsed, so an
# upload of a few MB listing millions of members cannot take the grader's memory.
MAX_ZIP_MEMBERS = 10_000
MAX_ZIP_DIRECTORY_BYTES = 16 * 1024 * 1024
# Only for the message when nothing is found: how far a misplaced file is looked for.
HINT_DEPTH, HINT_ENTRIES = 6, 2000

MISSING = f"no {STUDENT_FILE} in the submission folder"


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


# ---------------------------------------------------------------- finding the file

def _skeleton_like(name: str) -> bool:
    """``resnet50_skeleton (1).py``, ``ResNet50_Skeleton-2.py``, ``resnet50 skeleton.py``..."""
    return re.sub(r"[^a-z0-9]", "", name.lower()).startswith("resnet50skeleton")


def _entries(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return sorted((e for e in it if not e.name.startswith(".") and e.name != "__MACOSX"),
                      key=lambda e: e.name)


def _is_python(name: str) -> bool:
    """``.py`` in any case: ``resnet50_skeleton.PY`` from a case-insensitive disk is a candidate."""
    return name.lower().endswith(".py")


def find_in_folder(folder: Path, list_entries=None) -> tuple[Path | None, str, tuple[str, ...], str]:
    """The file to grade in one student's folder: (file, problem, notes, zip member).
    In order: ``resnet50_skeleton.py`` at the top; the only one one folder down; the only
    ``.py`` that looks like the skeleton (``resnet50_skeleton (1).py``), else the only
    ``.py`` (``vgg.py``, the handout's own, never counts); the one member of the only zip.
    Nothing here follows a link; whether a link may be read is decided when the file is
    read. ``list_entries``: the folder lister (tests replace batch's)."""
    list_entries = list_entries or _entries
    entries = list_entries(folder)
    by_name = {e.name: e for e in entries}
    if STUDENT_FILE in by_name:
        return folder / STUDENT_FILE, "", (), ""
    # LMS downloads sometimes add a level: alice/submission/resnet50_skeleton.py
    nested = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            for inner in list_entries(Path(entry.path)):
                if inner.name == STUDENT_FILE:
                    nested.append(Path(entry.path) / STUDENT_FILE)
    if len(nested) == 1:
        shown = nested[0].relative_to(folder).as_posix()
        return nested[0], "", (f"graded {shown} (no {STUDENT_FILE} at the top of the folder)",), ""
    # vgg.py is the handout's own file, never the answer
    python = [e.name for e in entries if _is_python(e.name) and e.name != "vgg.py"]
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
    return None, MISSING + _what_is_there(folder, entries), (), ""


_find_in_folder = find_in_folder   # the name batch.py used


def _what_is_there(folder: Path, entries: list[os.DirEntry]) -> str:
    """The end of the missing message: what the folder holds, and why none of it counts."""
    if entries:
        held = ", ".join(e.name for e in entries[:5]) + (", ..." if len(entries) > 5 else "")
        said = f" (it holds: {held})"
    else:
        try:
            hidden = sorted(e.name for e in os.scandir(folder))
        except OSError:
            hidden = []
        if not hidden:
            return " (it is empty)"
        said = (f" (it is empty but for hidden files, which are not graded: {', '.join(hidden[:5])}"
                f"{', ...' if len(hidden) > 5 else ''})")
    if any(e.name.endswith(".ipynb") for e in entries):
        said += f"; a notebook is not graded: hand in the {STUDENT_FILE} you completed"
    deep = _too_deep(folder)
    if deep:
        said += (f"; {deep} is too deep: the grader looks at the top of the submission and one "
                 f"folder down only")
    elif any(e.name.lower() == STUDENT_FILE for e in entries):
        said += f"; the name must be {STUDENT_FILE} exactly"
    return said


def _too_deep(folder: Path) -> str:
    """The shallowest ``resnet50_skeleton.py`` two or more folders down (bounded search), or ""."""
    pending, budget = [(folder, 0)], HINT_ENTRIES
    while pending:
        current, depth = pending.pop(0)
        try:
            entries = _entries(current)
        except OSError:
            continue
        for entry in entries:
            budget -= 1
            if budget < 0:
                return ""
            if entry.name == STUDENT_FILE and depth >= 2 and entry.is_file(follow_symlinks=False):
                return Path(entry.path).relative_to(folder).as_posix()
            if entry.is_dir(follow_symlinks=False) and depth < HINT_DEPTH:
                pending.append((Path(entry.path), depth + 1))
    return ""


def _zip_directory_problem(f) -> str:
    """Why a zip's central directory is too large to parse, from its end record alone
    (zipfile would read every entry into memory first); "" when it is fine or not a zip."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - 65_557))   # the end record (22 bytes) and a comment of at most 64 KiB
    tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return ""
    _, _, _, _, members, directory_bytes, _, _ = struct.unpack("<4s4H2LH", tail[at:at + 22])
    if members == 0xFFFF or directory_bytes == 0xFFFFFFFF:
        return f"it is a ZIP64 archive with too many members (the grader opens at most {MAX_ZIP_MEMBERS:,})"
    if members > MAX_ZIP_MEMBERS:
        return f"it holds {members:,} files (the grader opens zips of at most {MAX_ZIP_MEMBERS:,})"
    if directory_bytes > MAX_ZIP_DIRECTORY_BYTES:
        return (f"its list of files takes {directory_bytes:,} bytes (the grader reads at most "
                f"{MAX_ZIP_DIRECTORY_BYTES:,})")
    return ""


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
        crowded = _zip_directory_problem(f)
        if crowded:
            raise Refused(f"{shown} was not opened: {crowded}; hand in the .py file itself")
        f.seek(0)
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
            deep = [n for n in archive.namelist() if n.split("/")[-1] == STUDENT_FILE and not any(
                p in ("..", "") or p.startswith(".") or p == "__MACOSX" for p in n.split("/"))][:1]
    except Refused as exc:
        return None, f"{MISSING}, and {exc}", (), ""
    if len(members) == 1:
        return Path(entry.path), "", (f"graded {members[0]} from inside {entry.name}: hand in "
                                      f"the .py file itself next time",), members[0]
    if not members:
        deep = f" ({deep[0]} is too deep: the zip's top or one folder down only)" if deep else ""
        return None, (f"{MISSING}; the only file, {entry.name}, holds no {STUDENT_FILE}{deep} "
                      "(hand in the .py file itself)"), (), ""
    return None, (f"{MISSING}; the only file, {entry.name}, holds {len(members)} files named "
                  f"{STUDENT_FILE} ({', '.join(members[:6])}): could not tell which one to grade; "
                  "hand in the .py file itself"), (), ""


# ---------------------------------------------------------------- reading it

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
