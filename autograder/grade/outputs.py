"""What the grader writes: Gradescope results.json, feedback for the student,
the gradebook CSV, and the end-of-batch summary. All writes are atomic."""
from __future__ import annotations

import collections
import csv
import io
import json
import os
import statistics
import tempfile
from pathlib import Path

from autograder.grade.scoring import GradedSubmission
from autograder.spec import PART_IDS

CSV_HEADER = ["student", *PART_IDS, "total", "max_total", "status"]
OUTPUT_SHOWN = 4000   # characters of the student's own output kept in feedback
# What one student's files may hold: a tampered report can carry thousands of
# deductions, and nobody reads past the first few dozen of one check anyway.
LINES_PER_CHECK = 30
LINE_CHARS = 1000
MAX_FEEDBACK_CHARS = 256 * 1024
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Every status a student's row can carry (the README lists the same).
STATUSES = ("ok", "missing", "refused", "syntax_error", "import_error", "timeout", "memory",
            "exited", "crashed")


def clean_text(text: str) -> str:
    """``text`` with lone surrogates (an undecodable file name, a student's string)
    spelled as ``\\udcXX``: every writer and terminal can encode the result."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def one_line(text: str) -> str:
    """``clean_text`` with newlines and other control characters spelled as escapes
    (``\\n``, ``\\x1b``): a name a student chose cannot break a CSV row, a
    heading or a log line, nor send escape sequences to the terminal."""
    text = clean_text(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def csv_cell(text: str) -> str:
    """``one_line(text)``, with a leading ``'`` where a spreadsheet would read it
    as a formula (``=HYPERLINK(...)``, ``+``, ``-``, ``@``)."""
    text = one_line(text)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _capped(lines: list[str], limit: int = LINES_PER_CHECK) -> list[str]:
    """The first ``limit`` lines, each at most LINE_CHARS, and how many were left out."""
    shown = [line if len(line) <= LINE_CHARS else line[:LINE_CHARS] + " [...]" for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"... and {len(lines) - limit} more")
    return shown


def clean_data(value):
    """``clean_text`` applied to every string inside a JSON-shaped value."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_data(k): clean_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_data(v) for v in value]
    return value


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path`` and rename: a killed batch never
    leaves half a file behind. Text a student controls may hold lone surrogates;
    they are written as backslash escapes instead of stopping the batch."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fmt(x: float) -> str:
    return f"{x:g}"


def check_output(check) -> str:
    lines = [f"- {d}" for d in _capped(list(dict.fromkeys(check.deductions)))]   # same sentence once
    lines += [f"- note: {n}" for n in _capped(list(dict.fromkeys(check.notes)))]
    return "\n".join(lines) if lines else "correct"


def results_json(sub: GradedSubmission, fingerprint: str, notes=()) -> dict:
    """Gradescope's results.json schema, plus our own fields under extra_data.
    Every string is cleaned, so the file is plain UTF-8 JSON whatever the student wrote."""
    return clean_data({
        "score": sub.total,
        "execution_time": round(sub.elapsed_s, 2),
        "output": summary_line(sub, notes),
        "tests": [{"name": c.name, "score": c.score, "max_score": c.max_score,
                   "output": check_output(c), "visibility": "visible"} for c in sub.checks],
        "extra_data": {
            "student": sub.student, "status": sub.status, "message": sub.message,
            "notes": list(notes),
            "parts": {p: sub.part_score(p) for p in PART_IDS},
            "max_total": sub.max_total, "fingerprint": fingerprint,
            "student_output": sub.output[:OUTPUT_SHOWN],
        },
    })


def summary_line(sub: GradedSubmission, notes=()) -> str:
    parts = ", ".join(f"{p} {_fmt(sub.part_score(p))}/{_fmt(sub.rubric[p].points)}" for p in PART_IDS)
    head = f"{_fmt(sub.total)}/{_fmt(sub.max_total)} ({parts})"
    if sub.status != "ok":
        head += f"; status {sub.status}: {sub.message}"
    return "; ".join([head, *(f"note: {n}" for n in notes)])


def feedback_markdown(sub: GradedSubmission, notes=()) -> str:
    lines = [f"# Feedback for {one_line(sub.student)}: {_fmt(sub.total)} / {_fmt(sub.max_total)}", ""]
    lines += [f"**Note:** {n}" for n in notes] + ([""] if notes else [])
    if sub.status != "ok":
        lines += [f"**Not graded normally ({sub.status}):** {sub.message}", ""]
    for part_id in PART_IDS:
        part = sub.rubric[part_id]
        checks = [c for c in sub.checks if c.part == part_id]
        lines.append(f"## {part_id} {part.title}: {_fmt(sub.part_score(part_id))} / {_fmt(part.points)}")
        # A cause shared by several checks (say, the block cannot be built) is said once.
        counts = collections.Counter(d for c in checks for d in dict.fromkeys(c.deductions))
        # The reason a submission was not graded is said once, at the top, not in every part.
        said_above = {sub.message} if sub.status != "ok" and sub.message else set()
        shared = {d: None for d, n in counts.items() if n > 1 and d not in said_above}   # a dict: linear lookups
        for d in _capped(list(shared)):
            lines.append("- " + d.replace("\n", "\n  "))
        for check in checks:
            if check.max_score == 0 and not check.deductions and not check.notes:
                continue
            own = [d for d in dict.fromkeys(check.deductions) if d not in shared and d not in said_above]
            if check.max_score == 0:
                mark = "for information, no points"
            elif check.score == check.max_score and not check.deductions:
                mark = "full marks"
            else:
                mark = f"{_fmt(check.score)} / {_fmt(check.max_score)}"
            lines.append(f"- **{check.title}** ({mark})")
            for d in _capped(own):
                lines.append("  - " + d.replace("\n", "\n    "))
            for n in _capped(list(dict.fromkeys(check.notes))):
                lines.append(f"  - note: {n}")
        lines.append("")
    if sub.output.strip():
        shown = sub.output[:OUTPUT_SHOWN].replace("~~~", "~ ~ ~")
        lines += ["## What your code printed", "", "~~~text", shown, "~~~", ""]
    text = "\n".join(lines)
    if len(text) > MAX_FEEDBACK_CHARS:
        text = text[:MAX_FEEDBACK_CHARS] + "\n\n[... feedback cut here: it was too long to show in full]\n"
    return text


def write_submission(out: Path, sub: GradedSubmission, fingerprint: str, file_id: str,
                     notes=()) -> dict:
    """Write the student's feedback and results under ``file_id`` (a safe file name
    for ``sub.student``); returns the results dict."""
    # Feedback first, results last: results/<file_id>.json marks the student as done.
    write_atomic(out / "feedback" / f"{file_id}.md", feedback_markdown(sub, notes))
    results = results_json(sub, fingerprint, notes)
    # allow_nan=False: a score that is not a number must fail here, not reach Gradescope.
    write_atomic(out / "results" / f"{file_id}.json", json.dumps(results, indent=1, allow_nan=False))
    return results


def read_result(out: Path, file_id: str) -> dict | None:
    path = out / "results" / f"{file_id}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["extra_data"]["parts"]   # noqa: B018 -- a file from an older layout is not "done"
        return data
    except (OSError, ValueError, KeyError, TypeError):
        return None


def gradebook_rows(results: list[dict]) -> list[list[str]]:
    rows = []
    for data in sorted(results, key=lambda d: d["extra_data"]["student"]):
        extra = data["extra_data"]
        rows.append([csv_cell(extra["student"]), *(_fmt(extra["parts"][p]) for p in PART_IDS),
                     _fmt(data["score"]), _fmt(extra["max_total"]), extra["status"]])
    return rows


def write_gradebook(out: Path, results: list[dict]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(gradebook_rows(results))
    path = out / "grades.csv"
    write_atomic(path, buffer.getvalue())
    return path


def _shorten(text: str, width: int = 70) -> str:
    """``text`` cut at a word boundary to at most ``width`` characters."""
    text = one_line(text)
    if len(text) <= width:
        return text
    cut = text[:width - 3].rsplit(" ", 1)[0] if " " in text[:width - 3] else text[:width - 3]
    return cut.rstrip(" ,;:") + "..."


NAMES_PER_STATUS = 10


def summary_text(results: list[dict], top: int = 10) -> str:
    if not results:
        return "no submissions graded"
    totals = [d["score"] for d in results]
    max_total = results[0]["extra_data"]["max_total"]
    statuses = collections.Counter(d["extra_data"]["status"] for d in results)
    lines = [f"{len(results)} submissions: mean {statistics.mean(totals):.1f}, median "
             f"{statistics.median(totals):g} of {max_total:g}; status "
             + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))]
    width = max_total / 5 if max_total else 1
    bins = collections.Counter(min(4, int(t // width)) for t in totals)
    biggest = max(bins.values())
    for i in range(5):
        low, high = i * width, (i + 1) * width
        bar = "#" * round(30 * bins.get(i, 0) / biggest)
        label = f"{low:5.0f}-{high:<5.0f}" if i < 4 else f"{low:5.0f}-{max_total:<5.0f}"
        lines.append(f"  {label} {bins.get(i, 0):4d} {bar}")
    # One count per student per failed check: a mistake that fails a check with
    # many deduction lines still counts once. Ties: by name, so the list is stable.
    failed_checks = collections.Counter()
    for data in results:
        if data["extra_data"]["status"] != "ok":
            continue   # named by status below
        failed_checks.update({t["name"] for t in data["tests"] if t["score"] < t["max_score"]})
    if failed_checks:
        lines.append("most frequent lost points (submissions losing points on the check):")
        ranked = sorted(failed_checks.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        lines += [f"  {n:4d}  {_shorten(name)}" for name, n in ranked]
    for status in STATUSES[1:]:
        names = sorted(one_line(d["extra_data"]["student"]) for d in results
                       if d["extra_data"]["status"] == status)
        if names:
            more = f", ... and {len(names) - NAMES_PER_STATUS} more" if len(names) > NAMES_PER_STATUS else ""
            lines.append(f"{status} ({len(names)}): {', '.join(names[:NAMES_PER_STATUS])}{more}")
    return clean_text("\n".join(lines))
