"""Find the file to grade in what the student uploaded, the way a TA would.

Gradescope puts the upload under ``$AUTOGRADER_ROOT/submission``. In order:
``resnet50_skeleton.py`` (the shallowest one wins, a zip's members count one
level below the zip), then the only ``.py`` that looks like the skeleton
(``resnet50_skeleton (1).py``), then the only ``.py`` at all. Several
candidates with different contents, or none, mean nothing is graded.

Nothing here follows a link or writes to disk: a ``.zip`` is read in memory,
member by member, so a member named ``../../results/results.json`` or a link
cannot land anywhere; members with such names are skipped, and every read is
capped.
"""
from __future__ import annotations

import io
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

# The batch grader's file name and read cap (tests check they stay equal), written here rather
# than imported: autograder.grade.batch imports torch, which run_autograder imports only once
# the sandbox has started, so that the two imports overlap.
STUDENT_FILE = "resnet50_skeleton.py"
MAX_SOURCE_BYTES = 1024 * 1024

MAX_DEPTH = 4                         # folders below submission/ that are looked into
MAX_ENTRIES = 2000                    # files and folders looked at, in all
MAX_ZIP_BYTES = 64 * 1024 * 1024      # an uploaded zip larger than this is not opened
MAX_ZIP_MEMBERS = 2000
IGNORED_DIRS = ("__MACOSX", "__pycache__", ".ipynb_checkpoints")
HANDOUT_FILES = ("vgg.py",)           # the handout's own code, never the answer


@dataclass(frozen=True)
class Candidate:
    shown: str        # where it is, for people: "hw3/resnet50_skeleton.py", "hw3.zip: a/b.py"
    name: str         # the file name alone
    depth: int        # 0 = at the top of submission/
    source: bytes | None   # None: refused (too big, not a regular file); ``problem`` says why
    problem: str = ""


@dataclass(frozen=True)
class Found:
    source: bytes | None   # what to grade; None when nothing is graded
    shown: str = ""
    notes: tuple[str, ...] = ()
    problem: str = ""
    status: str = "missing"


def _skeleton_like(name: str) -> bool:
    """``resnet50_skeleton (1).py``, ``ResNet50-Skeleton.py``: the skeleton under a browser's name."""
    letters = "".join(ch for ch in name.lower() if ch.isalnum())
    return letters.startswith("resnet50skeleton")


def _read_capped(path: Path, shown: str) -> tuple[bytes | None, str]:
    """A regular file's bytes without following a link, at most MAX_SOURCE_BYTES."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return None, f"{shown} could not be opened ({exc.strerror or exc})"
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None, f"{shown} is not a regular file"
        data = f.read(MAX_SOURCE_BYTES + 1)
    if len(data) > MAX_SOURCE_BYTES:
        return None, f"{shown} is larger than {MAX_SOURCE_BYTES:,} bytes, the most the grader reads"
    return data, ""


def _safe_member_name(name: str) -> PurePosixPath | None:
    """The member's path when it stays inside the zip's own folder; None for
    absolute paths, ``..``, drive letters and other tricks."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or not path.parts or any(p in ("..", "") or ":" in p for p in path.parts):
        return None
    return path


def _zip_candidates(path: Path, shown: str, depth: int, skipped: list[str]) -> list[Candidate]:
    try:
        if path.stat(follow_symlinks=False).st_size > MAX_ZIP_BYTES:
            skipped.append(f"{shown} is larger than {MAX_ZIP_BYTES >> 20} MiB and was not opened")
            return []
        with open(path, "rb") as f:
            data = f.read(MAX_ZIP_BYTES + 1)
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        skipped.append(f"{shown} could not be read as a zip ({exc})")
        return []
    found = []
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            skipped.append(f"{shown} holds {len(members)} files; only the first {MAX_ZIP_MEMBERS} were looked at")
        for info in members[:MAX_ZIP_MEMBERS]:
            inner = _safe_member_name(info.filename)
            mode = info.external_attr >> 16
            if info.is_dir() or inner is None or not inner.name.endswith(".py"):
                continue
            if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                continue   # a link (or anything but a file) stored in the zip: never followed
            if any(p.startswith(".") or p in IGNORED_DIRS for p in inner.parts):
                continue
            where = f"{shown}: {inner.as_posix()}"
            if info.file_size > MAX_SOURCE_BYTES:
                found.append(Candidate(where, inner.name, depth + len(inner.parts), None,
                                       f"{where} is larger than {MAX_SOURCE_BYTES:,} bytes"))
                continue
            try:
                with archive.open(info) as member:
                    source = member.read(MAX_SOURCE_BYTES + 1)   # the header's size may lie
            except (OSError, zipfile.BadZipFile, ValueError, NotImplementedError) as exc:
                skipped.append(f"{where} could not be unpacked ({exc})")
                continue
            problem = "" if len(source) <= MAX_SOURCE_BYTES else f"{where} is larger than {MAX_SOURCE_BYTES:,} bytes"
            found.append(Candidate(where, inner.name, depth + len(inner.parts),
                                   None if problem else source, problem))
    return found


def _walk(folder: Path) -> tuple[list[Candidate], list[str], list[str]]:
    """(candidate .py files, names of everything else seen at the top, notes on what was skipped)."""
    candidates: list[Candidate] = []
    top_names: list[str] = []
    skipped: list[str] = []
    budget = MAX_ENTRIES
    pending = [(folder, 0)]
    while pending:
        current, depth = pending.pop(0)
        try:
            with os.scandir(current) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            skipped.append(f"{current.relative_to(folder).as_posix() or '.'} could not be read ({exc.strerror})")
            continue
        for entry in entries:
            budget -= 1
            if budget < 0:
                skipped.append(f"more than {MAX_ENTRIES} files: the rest were not looked at")
                return candidates, top_names, skipped
            if entry.name.startswith(".") or entry.name in IGNORED_DIRS:
                continue
            path = Path(entry.path)
            shown = path.relative_to(folder).as_posix()
            if depth == 0:
                top_names.append(entry.name)
            if entry.is_symlink():
                skipped.append(f"{shown} is a symbolic link and was not followed")
            elif entry.is_dir(follow_symlinks=False):
                if depth < MAX_DEPTH:
                    pending.append((path, depth + 1))
            elif entry.name.lower().endswith(".zip"):
                candidates += _zip_candidates(path, shown, depth, skipped)
            elif entry.name.endswith(".py"):
                source, problem = _read_capped(path, shown)
                candidates.append(Candidate(shown, entry.name, depth, source, problem))
    return candidates, top_names, skipped


def _several(group: list[Candidate]) -> str:
    names = ", ".join(c.shown for c in group[:6]) + (", ..." if len(group) > 6 else "")
    return (f"your submission holds {len(group)} candidate files ({names}) and the grader could not "
            f"tell which one to grade; upload only {STUDENT_FILE}")


def _pick(group: list[Candidate], note: str = "") -> Found:
    """One file from a group of equally good candidates: the shallowest, unless
    several at that depth differ."""
    shallowest = min(c.depth for c in group)
    best = [c for c in group if c.depth == shallowest]
    if len({c.source for c in best}) > 1 or any(c.source is None for c in best[1:]):
        return Found(None, problem=_several(best))
    chosen = best[0]
    if chosen.source is None:
        return Found(None, chosen.shown, problem=chosen.problem, status="refused")
    notes = []
    if note:
        notes.append(note.format(shown=chosen.shown))
    elif chosen.shown != STUDENT_FILE:
        notes.append(f"graded {chosen.shown} (no {STUDENT_FILE} at the top of the submission)")
    if len(best) > 1:
        notes.append(f"{len(best)} identical copies were uploaded ({', '.join(c.shown for c in best[:6])})")
    return Found(chosen.source, chosen.shown, tuple(notes))


def find_submission(folder: Path) -> Found:
    """The file to grade under ``folder`` (Gradescope's submission/), or why there is none."""
    if not folder.is_dir():
        return Found(None, problem=f"nothing was uploaded (no {folder.name}/ folder); upload {STUDENT_FILE}")
    candidates, top_names, skipped = _walk(folder)
    exact = [c for c in candidates if c.name == STUDENT_FILE]
    if exact:
        found = _pick(exact)
    else:
        python = [c for c in candidates if c.name not in HANDOUT_FILES]
        similar = [c for c in python if _skeleton_like(c.name)]
        rename = f"graded {{shown}}: there is no {STUDENT_FILE}; name your file {STUDENT_FILE} next time"
        if similar:
            found = _pick(similar, rename)
        elif python:
            found = _pick(python, rename)
        else:
            held = ", ".join(top_names[:6]) + (", ..." if len(top_names) > 6 else "")
            hint = ""
            if any(n.endswith(".ipynb") for n in top_names):
                hint = f" (a notebook is not graded: upload the {STUDENT_FILE} you completed)"
            what = f"it holds: {held}" if top_names else "the upload is empty"
            found = Found(None, problem=f"no {STUDENT_FILE} in your submission ({what}){hint}; "
                                        f"upload {STUDENT_FILE}")
    if skipped and found.source is None:
        return Found(None, found.shown, found.notes, f"{found.problem} (also: {'; '.join(skipped[:3])})",
                     found.status)
    return found
