"""File modes for the unpacked Gradescope zip: student code reads only what it imports.

Student code runs as an unprivileged uid. Where the container allows no mount
namespace or Landlock, file modes are all that keep it from the kit's folder, so
everything it has no need to read is made root-only (files 0600, folders 0700):
the full spec table, the rubric, the reference solution, gradescope.json and the
grader's own sources (their expectations embed answers). What the sandboxed
child imports (the sandbox, the probe and what it imports, the public table the
student's bundle holds anyway) stays readable, with the folders on its way. The
Python environment (.venv) is left alone: setup.sh opens it to that uid.

setup.sh runs this once while Gradescope builds the image; run_autograder runs
it again before any student code (an image built another way, or a .pyc written
since, is covered too).
"""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

# Modules the sandboxed child imports (the zygote: autograder.grade.sandbox; its job:
# autograder.grade.probe). tests/test_gradescope_edges.py checks this list against
# what a fresh interpreter really imports.
CHILD_MODULES = (
    "autograder/__init__.py",
    "autograder/check/__init__.py",
    "autograder/check/describe.py",
    "autograder/check/gate.py",
    "autograder/check/report.py",
    "autograder/check/residual_block.py",
    "autograder/grade/__init__.py",
    "autograder/grade/probe.py",
    "autograder/grade/stub_block.py",
    "autograder/grade/sandbox/*.py",
    "autograder/spec/__init__.py",
    "autograder/spec/public.py",
)
# Data the child may read: the public table, as shipped to every student.
CHILD_DATA = ("autograder/spec/resnet50_layer4_public.toml",)
LEFT_ALONE = (".venv",)   # setup.sh makes it readable; its modes are not this module's business


def child_readable(kit: Path) -> set[Path]:
    """Every file the sandboxed child may read (with its compiled .pyc files)."""
    files: set[Path] = set()
    for pattern in (*CHILD_MODULES, *CHILD_DATA):
        for path in kit.glob(pattern):
            files.add(path)
            if path.suffix == ".py":
                files.update(path.parent.glob(f"__pycache__/{path.stem}.*.pyc"))
    return files


def restrict_kit(kit: Path) -> dict[str, int]:
    """Make ``kit`` root-only except what the child reads; returns counts for the staff's log."""
    kit = kit.resolve()
    readable = child_readable(kit)
    open_dirs = {kit}
    for path in readable:
        open_dirs.update(p for p in path.parents if p.is_relative_to(kit))
    counts = {"readable": 0, "closed": 0}
    for current, dirs, files in os.walk(kit):
        here = Path(current)
        if here == kit:
            dirs[:] = [d for d in dirs if d not in LEFT_ALONE]
            files = [f for f in files if f not in LEFT_ALONE]
        os.chmod(here, 0o755 if here in open_dirs else 0o700)
        for name in files:
            path = here / name
            mode = os.lstat(path).st_mode
            if not stat.S_ISREG(mode):
                continue   # the zip holds none; never follow a link
            executable = mode & stat.S_IXUSR
            if path in readable:
                os.chmod(path, 0o755 if executable else 0o644)
                counts["readable"] += 1
            else:
                os.chmod(path, 0o700 if executable else 0o600)
                counts["closed"] += 1
    return counts


def main(argv: list[str]) -> int:
    kit = Path(argv[0] if argv else Path(__file__).resolve().parents[2])
    counts = restrict_kit(kit)
    print(f"{kit}: {counts['closed']} files root-only, {counts['readable']} readable by the sandbox's "
          f"user (what student code imports)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
