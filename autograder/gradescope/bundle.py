"""The zip for Gradescope's "Configure Autograder" page (staff to Gradescope, never to students).

At its root: ``setup.sh`` and ``run_autograder`` (Gradescope's two required
files), ``gradescope.json`` (the options chosen when it was built), and the
parts of the kit that grading reads: the ``autograder`` package without the
release and similarity tools, the spec with the full table and the rubric,
and the reference solution. No student file.

Reproducible: entries sorted, fixed timestamps and modes, so the same
sources give the same bytes (Gradescope's own checksum, or a TA's diff, can
tell whether anything changed).
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

from autograder.gradescope.results import VISIBILITIES
from autograder.gradescope.run import CONFIG_NAME, DEFAULTS

KIT_ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TOP_FILES = ("autograder/__init__.py", "autograder/__main__.py", "autograder/cli.py",
             "solutions/resnet50_skeleton.py")
# What grading imports or reads: batch -> outputs/scoring/parts -> check, spec; the sandbox.
PACKAGES = ("autograder/grade", "autograder/check", "autograder/spec", "autograder/gradescope")
SUFFIXES = (".py", ".toml", ".json")
# Grading one file with pytest is a local convenience; leaving it out keeps pytest out of setup.sh.
LEFT_OUT = ("autograder/grade/conftest.py", "autograder/grade/pytest_entry.py")
SCRIPTS = {"setup.sh": HERE / "setup.sh", "run_autograder": HERE / "run_autograder"}
FIXED_TIME = (2025, 1, 1, 0, 0, 0)


class GradescopeBundleError(Exception):
    pass


def zip_members(root: Path = KIT_ROOT, rubric: Path | None = None, visibility: str = "visible",
                timeout_s: float = DEFAULTS["timeout_s"],
                memory_mb: int = DEFAULTS["memory_mb"]) -> dict[str, bytes]:
    """Name in the zip -> bytes, for everything the zip holds."""
    if visibility not in VISIBILITIES:
        raise GradescopeBundleError(f"visibility must be one of {', '.join(VISIBILITIES)}")
    members: dict[str, bytes] = {}
    for name in TOP_FILES:
        members[name] = (root / name).read_bytes()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*")):
            name = path.relative_to(root).as_posix()
            if (path.is_file() and path.suffix in SUFFIXES and "__pycache__" not in path.parts
                    and name not in LEFT_OUT):
                members[name] = path.read_bytes()
    if rubric is not None:
        from autograder.spec import RubricError, load_rubric
        try:
            load_rubric(rubric)   # refuse a rubric the grader would refuse, now rather than per student
        except (RubricError, OSError) as exc:
            raise GradescopeBundleError(f"rubric {rubric}: {exc}") from None
        members["autograder/spec/rubric.toml"] = rubric.read_bytes()
    for name, path in SCRIPTS.items():
        members[name] = path.read_bytes()
    config = {"visibility": visibility, "timeout_s": timeout_s, "memory_mb": memory_mb}
    members[CONFIG_NAME] = (json.dumps(config, indent=1, sort_keys=True) + "\n").encode()
    return members


def build_zip(out: Path, **options) -> tuple[Path, list[str]]:
    """Write the zip to ``out``; returns (path, notes for the user)."""
    try:
        members = zip_members(**options)
    except OSError as exc:
        raise GradescopeBundleError(f"the kit is incomplete: {exc.filename} ({exc.strerror})") from None
    if out.is_dir():
        out = out / "autograder.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w") as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3   # unix, so the modes below mean the same everywhere
            info.external_attr = (0o100755 if name in SCRIPTS else 0o100644) << 16
            zf.writestr(info, members[name], compresslevel=9)
    size = out.stat().st_size
    return out, [f"wrote {out} ({len(members)} files, {size / 1024:.0f} KiB): upload it on Gradescope's "
                 f"Configure Autograder page (Ubuntu 24.04 base image)"]
