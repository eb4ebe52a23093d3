"""From the batch grader's per-student results to Gradescope's results.json.

The batch grader already writes Gradescope's fields (score, execution_time,
tests with name/score/max_score/output/visibility, extra_data); this adds what
only Gradescope needs: the chosen visibility, the student's feedback as the
top-level markdown output, stdout hidden from students (it holds the sandbox's
report for the staff), how the file was found, and exactly one test per rubric
check, named after its part.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


SCHEMA_PATH = Path(__file__).with_name("results.schema.json")
# Gradescope's documented values (gradescope-autograders.readthedocs.io, "Autograder Specifications"):
# hidden (staff only), after_due_date, after_published (once grades are published), visible.
VISIBILITIES = ("visible", "after_published", "after_due_date", "hidden")


def settings_problems(settings: dict) -> list[str]:
    """What is wrong with run_autograder's settings (gradescope.json and its options), one
    sentence each; [] when they are fine. Checked before results/ is touched."""
    problems = []
    visibility = settings.get("visibility")
    if visibility not in VISIBILITIES:
        problems.append(f"visibility is {visibility!r}; it must be one of {', '.join(VISIBILITIES)}")
    timeout = settings.get("timeout_s")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
        problems.append(f"timeout_s is {timeout!r}; it must be a number of seconds above 0 and at most 3600")
    memory = settings.get("memory_mb")
    if isinstance(memory, bool) or not isinstance(memory, int) or not 256 <= memory <= 1024 * 1024:
        problems.append(f"memory_mb is {memory!r}; it must be a whole number of MiB, at least 256")
    return problems


def tests_per_rubric_check(tests: list[dict], rubric: dict) -> list[dict]:
    """One test per rubric check, in the rubric's order, from the batch grader's tests.

    Each is named "<part> <check>" (the rubric's own names, "Q1a structure") whatever
    happened, so a check keeps its name from one submission to the next. A graded part's
    checks come first among its tests, in the rubric's order; the grader's description of
    the check heads its output (the 0-point informational checks the grader adds after
    them are left out here: the feedback, Gradescope's top-level output, has them). A
    submission that was not graded normally has one 0-point test per part; each of its
    checks then gets 0 with that test's reason."""
    out = []
    for part in rubric.values():
        mine = [t for t in tests if t["name"].split(" ", 1)[0] == part.id]
        checks = list(part.checks.items())
        scored = mine[:len(checks)]
        if [t["max_score"] for t in scored] == [points for _, points in checks]:
            for test, (check, _) in zip(scored, checks):
                described = test["name"].split(" ", 1)[1] if " " in test["name"] else ""
                output = f"{described}\n\n{test['output']}" if described and test["output"] else (
                    described or test["output"])
                out.append({**test, "name": f"{part.id} {check}", "output": output,
                            "extra_data": {**test.get("extra_data", {}), "part": part.id, "check": check}})
        elif len(mine) == 1 and mine[0]["score"] == 0 and mine[0]["max_score"] == part.points:
            out += [{"name": f"{part.id} {check}", "score": 0, "max_score": points,
                     "output": mine[0]["output"], "extra_data": {"part": part.id, "check": check}}
                    for check, points in checks]
        else:
            raise ValueError(f"the grader's tests for {part.id} do not match the rubric's checks "
                             f"({[t['name'] for t in mine]})")
    return out


def gradescope_results(batch_result: dict, feedback: str, notes=(), visibility: str = "visible",
                       execution_time: float | None = None, isolation=(), submitted: str = "",
                       rubric: dict | None = None) -> dict:
    """``batch_result`` (what ``grade_batch`` wrote for the student) made ready for Gradescope."""
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility must be one of {', '.join(VISIBILITIES)}, got {visibility!r}")
    said = "".join(f"**Note:** {n}\n\n" for n in notes)
    extra = dict(batch_result["extra_data"])
    extra["notes"] = [*notes, *extra.get("notes", [])]
    extra["submitted_file"] = submitted
    extra["sandbox_layers"] = list(isolation)
    from autograder.grade.outputs import clean_data   # imports torch: not before the sandbox starts

    tests = batch_result["tests"] if rubric is None else tests_per_rubric_check(batch_result["tests"], rubric)
    return clean_data({
        "score": batch_result["score"],
        "execution_time": round(execution_time if execution_time is not None
                                else batch_result["execution_time"], 2),
        "output": said + feedback,
        "output_format": "md",
        "visibility": visibility,
        "stdout_visibility": "hidden",
        "tests": [{**test, "visibility": visibility} for test in tests],
        "extra_data": extra,
    })


def write_results(results_dir: Path, results: dict) -> Path:
    """Write results.json atomically: a file planted there before is replaced, never appended to."""
    results_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=1, allow_nan=False)
    fd, tmp = tempfile.mkstemp(dir=results_dir, prefix=".results.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        target = results_dir / "results.json"
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
