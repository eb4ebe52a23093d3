"""Which files of this kit are released where, and the two verbs on them.

:func:`release_kit` writes the student files and the public slide table;
:func:`check_kit` regenerates them in memory and reports each one that differs
from the committed copy (drift) or holds solution text (a leak), then scans
every file of the student zip for the answer key. Generation is deterministic, so "differs" means
someone edited the solved source without releasing, or edited the copy by hand.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autograder.release.leaks import find_leaks
from autograder.release.python_file import build_student_source

KIT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Target:
    solved: str    # path of the solved source, relative to the kit root
    student: str   # path of the released student file, relative to the kit root
    optional: bool = False   # skipped (with a note) while the solved file does not exist


TARGETS = (
    Target("solutions/resnet50_skeleton.py", "resnet50_skeleton.py"),
    Target("solutions/CNN_Implementation.ipynb", "CNN_Implementation.ipynb", optional=True),
)


def render(target: Target, root: Path | None = None) -> str:
    """The student file's text, generated from the solved source."""
    src = (root or KIT_ROOT) / target.solved
    if src.suffix == ".ipynb":
        from autograder.release.notebook import render_student_notebook
        return render_student_notebook(src)
    return build_student_source(src.read_text(encoding="utf-8"), filename=str(src),
                                source_label=target.solved, student_name=Path(target.student).name)


# The public slide table students get, generated from the full one (the answer key).
PUBLIC_TABLE = "autograder/spec/resnet50_layer4_public.toml"
FULL_TABLE = "autograder/spec/resnet50_layer4.toml"


def render_public_table(root: Path | None = None) -> str:
    """The public table's text, generated from the kit's full table."""
    from autograder.spec import load_table
    from autograder.spec.public import render_public_toml
    # Read afresh (not load_table's cache): the TA may have just edited the full table.
    return render_public_toml(load_table.__wrapped__((root or KIT_ROOT) / FULL_TABLE))


def _write(dst: Path, text: str) -> str:
    before = dst.read_bytes() if dst.exists() else None
    data = text.encode("utf-8")
    dst.write_bytes(data)
    return "unchanged" if before == data else ("updated" if before is not None else "created")


def release_kit(root: Path | None = None, targets: tuple[Target, ...] = TARGETS) -> list[str]:
    """Write every student file; returns one line per target saying what happened."""
    root = root or KIT_ROOT
    notes = []
    if (root / FULL_TABLE).exists():   # absent only in partial copies of the kit (tests)
        state = _write(root / PUBLIC_TABLE, render_public_table(root))
        notes.append(f"wrote {PUBLIC_TABLE} from {FULL_TABLE} ({state})")
    for target in targets:
        if not (root / target.solved).exists():
            if target.optional:
                notes.append(f"skipped {target.student}: {target.solved} does not exist yet")
                continue
            raise FileNotFoundError(root / target.solved)
        state = _write(root / target.student, render(target, root))
        notes.append(f"wrote {target.student} from {target.solved} ({state})")
    return notes


def _leak_lines(target: Target, root: Path, committed: str) -> list[str]:
    if target.solved.endswith(".ipynb"):
        import nbformat

        from autograder.release.notebook import notebook_leaks
        solved = nbformat.read(root / target.solved, as_version=4)
        return notebook_leaks(nbformat.reads(committed, as_version=4), solved)
    solved_text = (root / target.solved).read_text(encoding="utf-8")
    return [str(leak) for leak in find_leaks(committed, solved_text, target.solved)]


def check_kit(root: Path | None = None, targets: tuple[Target, ...] = TARGETS) -> list[str]:
    """One line per student file that is missing, out of date or leaking; empty when all is well."""
    root = root or KIT_ROOT
    problems = []
    public = root / PUBLIC_TABLE
    if not (root / FULL_TABLE).exists():
        pass
    elif not public.exists():
        problems.append(f"{PUBLIC_TABLE}: missing; run `python -m autograder release`")
    elif public.read_bytes() != render_public_table(root).encode("utf-8"):
        problems.append(f"{PUBLIC_TABLE}: out of date with {FULL_TABLE} (run `python -m autograder release`)")
    for target in targets:
        if not (root / target.solved).exists():
            if target.optional:
                continue
            problems.append(f"{target.solved}: missing (the solved source of {target.student})")
            continue
        dst = root / target.student
        if not dst.exists():
            problems.append(f"{target.student}: missing; run `python -m autograder release`")
            continue
        data = dst.read_bytes()
        committed = data.decode("utf-8", errors="replace")
        reasons = []
        if data != render(target, root).encode("utf-8"):
            reasons.append(f"out of date with {target.solved} (run `python -m autograder release`)")
        leaks = _leak_lines(target, root, committed)
        if leaks:
            reasons.append(f"leaks {len(leaks)} solution line(s), first at {leaks[0]}")
        if reasons:
            problems.append(f"{target.student}: " + "; ".join(reasons))
    if (root / FULL_TABLE).exists():   # a whole kit (not a partial copy): scan what the zip would hold
        from autograder.release.bundle import bundle_problems
        problems += bundle_problems(root)
    return problems
