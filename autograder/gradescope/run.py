"""What ``run_autograder`` runs inside Gradescope's container, once per submission.

1. Find the file under ``$AUTOGRADER_ROOT/submission`` (:mod:`.submission`).
2. Copy it into a private folder (mode 0700, outside results/) and grade that
   folder with ``grade_batch``: the CLI's own code, rubric, feedback and statuses.
3. Write ``$AUTOGRADER_ROOT/results/results.json`` ourselves, atomically, after
   every student process is gone. While student code runs, results/ belongs to
   a guard uid that the sandboxed child (nobody, or uid 0 without capabilities)
   can neither write nor chmod.

Stdout is for the staff (Gradescope keeps it in results/stdout): it says which
sandbox layers held. Exit 0 whenever results.json was written.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import stat
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

from autograder.grade.batch import STUDENT_FILE, grade_batch
from autograder.grade.outputs import feedback_markdown, results_json
from autograder.grade.scoring import failed
from autograder.gradescope.results import VISIBILITIES, gradescope_results, write_results
from autograder.gradescope.submission import find_submission
from autograder.spec import RUBRIC_PATH, load_rubric

CONFIG_NAME = "gradescope.json"   # written into the zip by ``python -m autograder gradescope``
KIT_ROOT = Path(__file__).resolve().parents[2]
STUDENT = "submission"            # one student per container: the name only shows in extra_data
DEFAULTS = {"visibility": "visible", "timeout_s": 60.0, "memory_mb": 4096}
# Owner of results/ while student code runs: neither root nor the sandbox's nobody (65534).
GUARD_UID = 65533


def load_config(kit_root: Path = KIT_ROOT) -> dict:
    path = kit_root / CONFIG_NAME
    config = dict(DEFAULTS)
    if path.is_file():
        config.update(json.loads(path.read_text(encoding="utf-8")))
    return config


@contextlib.contextmanager
def recording_sandbox(disable=()):
    """grade_batch builds its own Sandbox; swap in one that remembers the layers it got
    (and, for tests, starts with some layers switched off) for this run only."""
    import autograder.grade.sandbox as sandbox_pkg

    original = sandbox_pkg.Sandbox
    seen: dict = {"layers": [], "warning": None}

    class RecordingSandbox(original):
        def __init__(self, *args, **kwargs):
            if disable:
                kwargs["disable"] = tuple(disable)
            with warnings.catch_warnings():   # grade_batch prints the same warning on stdout
                warnings.simplefilter("ignore", RuntimeWarning)
                super().__init__(*args, **kwargs)
            seen["layers"], seen["warning"] = list(self.isolation), self.warning

    sandbox_pkg.Sandbox = RecordingSandbox
    try:
        yield seen
    finally:
        sandbox_pkg.Sandbox = original


def _not_graded(status: str, message: str, notes=()) -> tuple[dict, str]:
    """Results for a submission the sandbox never ran: the batch grader's own functions."""
    graded = failed(STUDENT, status, message, load_rubric(RUBRIC_PATH))
    return results_json(graded, "", notes), feedback_markdown(graded, notes)


def grade_submission(root: Path, timeout_s: float, memory_mb: int, disable=()) -> tuple[dict, str, dict, object]:
    """(batch results, feedback markdown, sandbox record, what was found) for ``root``/submission."""
    found = find_submission(root / "submission")
    seen: dict = {"layers": [], "warning": None}
    if found.source is None:
        results, feedback = _not_graded(found.status, found.problem)
        return results, feedback, seen, found
    private = Path(tempfile.mkdtemp(prefix="gradescope-"))   # 0700: only this user reads it
    try:
        students = private / "submissions"
        (students / STUDENT).mkdir(parents=True)
        (students / STUDENT / STUDENT_FILE).write_bytes(found.source)
        out = private / "out"
        with recording_sandbox(disable) as seen:
            [results] = grade_batch(students, out, jobs=1, timeout_s=timeout_s, memory_mb=memory_mb,
                                    force=True, progress=False, isolation="auto")
        feedback_file = out / "feedback" / f"{STUDENT}.md"
        feedback = feedback_file.read_text(encoding="utf-8") if feedback_file.is_file() else ""
        return results, feedback, seen, found
    finally:
        shutil.rmtree(private, ignore_errors=True)


@contextlib.contextmanager
def results_dir_locked(results_dir: Path):
    """While student code runs, results/ (and the folder holding it, so it cannot be
    renamed away and replaced) is writable by no one but root with its capabilities.

    The sandbox drops the child to nobody, or (when nobody cannot read Python)
    keeps uid 0 without capabilities. Owned by GUARD_UID, the folders are then
    neither writable nor chmod-able by the child, whichever of the two it is.
    A results.json left from before is removed first, so a crash never leaves
    a stale (or planted) file behind.
    """
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "results.json").unlink(missing_ok=True)
    os.chmod(results_dir, 0o755)
    locked = []
    try:
        if os.geteuid() == 0:
            for folder in (results_dir.parent, results_dir):
                before = os.stat(folder)
                os.chown(folder, GUARD_UID, GUARD_UID)
                locked.append((folder, before))
                os.chmod(folder, before.st_mode & 0o755)   # chown may clear nothing, but no group/other write
        yield
    finally:
        for folder, before in reversed(locked):
            os.chown(folder, before.st_uid, before.st_gid)
            os.chmod(folder, stat.S_IMODE(before.st_mode))


def main(argv: list[str] | None = None) -> int:
    config = load_config()
    parser = argparse.ArgumentParser(prog="run_autograder",
                                     description="Grade $AUTOGRADER_ROOT/submission into results/results.json.")
    parser.add_argument("--timeout", type=float, default=float(config["timeout_s"]),
                        help=f"wall-clock seconds for the student's code (default {config['timeout_s']:g})")
    parser.add_argument("--memory-mb", type=int, default=int(config["memory_mb"]),
                        help=f"memory for the student's code in MiB (default {config['memory_mb']})")
    parser.add_argument("--visibility", choices=VISIBILITIES, default=config["visibility"],
                        help=f"who sees the tests when (default {config['visibility']})")
    parser.add_argument("--disable-layer", action="append", default=[], metavar="LAYER",
                        help="for tests: switch a sandbox layer off (landlock, mount, pivot_root) "
                             "to see how the grader does in a container without it")
    args = parser.parse_args(argv)
    root = Path(os.environ.get("AUTOGRADER_ROOT") or "/autograder")
    results_dir = root / "results"
    start = time.monotonic()
    try:
        with results_dir_locked(results_dir):
            results, feedback, seen, found = grade_submission(root, args.timeout, args.memory_mb,
                                                              args.disable_layer)
    except Exception as exc:   # noqa: BLE001 -- the student still gets a results file that says so
        traceback.print_exc(file=sys.stdout)
        message = (f"the autograder itself failed ({type(exc).__name__}: {exc}); this is not your "
                   f"fault: tell the course staff")
        results, feedback = _not_graded("crashed", message)
        seen, found = {"layers": [], "warning": None}, None

    notes = found.notes if found is not None else ()
    final = gradescope_results(results, feedback, notes, args.visibility, time.monotonic() - start,
                               seen["layers"], found.shown if found is not None else "")
    path = write_results(results_dir, final)

    extra = final["extra_data"]
    print(f"graded {found.shown if found and found.shown else '(nothing)'}: "
          f"{final['score']:g}/{extra['max_total']:g}, status {extra['status']}")
    for note in notes:
        print(f"note: {note}")
    if seen["layers"]:
        print("sandbox layers that held: " + "; ".join(seen["layers"]))
    print(f"wrote {path} in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
