"""Step 4: what the instructor reads: similarity.csv, similarity.md, similarity.png."""
from __future__ import annotations

import csv
import html
import io
from pathlib import Path

import numpy as np

from autograder.grade.outputs import clean_text, write_atomic
from autograder.similarity.extract import MAX_SOURCE_CHARS, StudentFile
from autograder.similarity.score import (COMMENT_CAP, DEDUCTION_CAP, DEVIATION_CAP, LAYOUT_CAP, SCALE, Fragment,
                                         PairScore)

CSV_HEADER = ["student_a", "student_b", "score", "shared_fragments", "shared_rare_deductions"]
FRAGMENTS_SHOWN = 6          # per pair in similarity.md
LINES_SHOWN = 30             # per side of a fragment
DEDUCTION_SHOWN = 240       # characters of each shared deduction in similarity.md
COLUMN_WIDTH = 72            # characters per side in the side-by-side view
NAMED_AXES_UP_TO = 60        # students named on the heatmap's axes up to this class size


def _csv_cell(text: str) -> str:
    """A student's name made inert for spreadsheets: a leading = + - @ would start a formula."""
    text = clean_text(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def evident_fragments(pair: PairScore) -> list[Fragment]:
    """The fragments worth showing: their rarity-weighted own tokens round to at least 1."""
    return [f for f in pair.fragments if round(f.weighted) > 0]


def has_evidence(pair: PairScore) -> bool:
    """Whether a pair shares enough to show (its evidence rounds to at least 1 own token)."""
    return round(pair.evidence) > 0


def write_csv(out: Path, pairs: list[PairScore]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for pair in pairs:
        writer.writerow([_csv_cell(pair.a), _csv_cell(pair.b), f"{pair.score:.3f}", len(evident_fragments(pair)),
                         len(pair.shared_deductions)])
    path = out / "similarity.csv"
    write_atomic(path, buffer.getvalue())
    path.chmod(0o644)           # readable like the png (write_atomic makes private files)
    return path


def _shown(line: str, width: int) -> str:
    """A student's line, safe inside a fenced block and cut to ``width``."""
    text = "".join(ch if ch.isprintable() else " " for ch in clean_text(line.rstrip().replace("\t", "    ")))
    return text if len(text) <= width else text[:width - 1] + "~"


def _paired_lines(a: StudentFile, b: StudentFile, fragment: Fragment) -> list[tuple[int | None, int | None]]:
    """(line in a, line in b) rows: lines that hold matched tokens side by side (the fragment's
    tokens match one to one along its diagonal), a line with no partner beside a blank."""
    rows: list[tuple[int | None, int | None]] = []
    last_a, last_b = fragment.a_lines[0] - 1, fragment.b_lines[0] - 1
    count = min(fragment.a_tokens[1] - fragment.a_tokens[0], fragment.b_tokens[1] - fragment.b_tokens[0])
    for offset in range(count):
        line_a = a.tokens.first[fragment.a_tokens[0] + offset]
        line_b = b.tokens.first[fragment.b_tokens[0] + offset]
        if not (fragment.a_lines[0] <= line_a <= fragment.a_lines[1]
                and fragment.b_lines[0] <= line_b <= fragment.b_lines[1]):
            continue
        if line_a <= last_a and line_b <= last_b:
            continue
        # lines in between (comments, blank lines, a line only one side has) on their own rows
        rows += [(n, None) for n in range(last_a + 1, line_a)]
        rows += [(None, n) for n in range(last_b + 1, line_b)]
        rows.append((line_a if line_a > last_a else None, line_b if line_b > last_b else None))
        last_a, last_b = max(last_a, line_a), max(last_b, line_b)
    rows += [(n, None) for n in range(last_a + 1, fragment.a_lines[1] + 1)]
    rows += [(None, n) for n in range(last_b + 1, fragment.b_lines[1] + 1)]
    return rows[:LINES_SHOWN]


def _side_by_side(a: StudentFile, b: StudentFile, fragment: Fragment) -> list[str]:
    """The two stretches in two columns of one fenced block, each line with its number,
    the lines that match beside each other."""
    a_lines, b_lines = a.source.split("\n"), b.source.split("\n")
    width = COLUMN_WIDTH

    def column(number: int | None, lines: list[str]) -> str:
        if number is None or number > len(lines):
            return ""
        return f"{number:>4} {_shown(lines[number - 1], width - 5)}"

    rows = ["~~~text",
            f"{_shown(a.shown_path, width - 12) + ' ' + _span(fragment.a_lines):<{width}} | "
            f"{_shown(b.shown_path, width - 12)} {_span(fragment.b_lines)}",
            f"{'-' * width} | {'-' * width}"]
    for left, right in _paired_lines(a, b, fragment):
        rows.append(f"{column(left, a_lines):<{width}} | {column(right, b_lines)}".rstrip())
    return rows + ["~~~"]


def _span(lines: tuple[int, int]) -> str:
    return f"line {lines[0]}" if lines[0] == lines[1] else f"lines {lines[0]}-{lines[1]}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _md(text: str) -> str:
    """Student-controlled text made safe for a Markdown table cell."""
    return html.escape(clean_text(text), quote=False).replace("|", "&#124;").replace("\n", " ")


def _tokens(texts) -> str:
    return "`" + _md(" ".join(texts)).replace("`", "'") + "`" if texts else "nothing"


def _evidence_lines(a: StudentFile, b: StudentFile, pair: PairScore) -> list[str]:
    """Every contribution to the pair's score, in own tokens of evidence, so that the score can be checked."""
    comments, deviations, layout, deductions = pair.capped
    fragments = evident_fragments(pair)
    lines = [f"- evidence: {pair.evidence:.1f} own tokens in all, score = 1 - exp(-{pair.evidence:.1f} / {SCALE:g})",
             f"- own code shared: {pair.code_evidence:.1f} tokens (rarity-weighted) in "
             f"{_count(len(fragments), 'fragment')} shown below"
             + ("" if a.tokens.parsed and b.tokens.parsed
                else "; one of the files does not parse: its broken part is compared as text")]
    if pair.shared_deviations:
        lines.append(f"- the same rare changes from the reference answer: +{deviations:.1f} (at most {DEVIATION_CAP:g})")
        for (a_lines, b_lines, reference_line, reference, written), weight in pair.shared_deviations:
            lines.append(f"  - {_md(a.shown_path)} {_span(a_lines)} and {_md(b.shown_path)} {_span(b_lines)}: "
                         f"both wrote {_tokens(written)} where the reference answer (its line {reference_line}) has "
                         f"{_tokens(reference)} (+{weight:.1f})")
    if pair.shared_comments:
        lines.append(f"- the same rare comments: +{comments:.1f} (at most {COMMENT_CAP:g})")
        lines += [f"  - \"{_md(c)}\" (+{weight:.1f})" for c, weight in pair.shared_comments]
    if pair.shared_layout:
        lines.append(f"- the same rare layout habits: +{layout:.1f} (at most {LAYOUT_CAP:g}): "
                     + ", ".join(f"{habit} (+{weight:.1f})" for habit, weight in pair.shared_layout))
    if pair.shared_deductions:
        lines.append(f"- the same rare deductions (grade run): +{deductions:.1f} (at most {DEDUCTION_CAP:g})")
        lines += [f"  - {_md(_shown(d, DEDUCTION_SHOWN))} (+{weight:.1f})" for d, weight in pair.shared_deductions]
    return lines


def markdown(students: list[StudentFile], pairs: list[PairScore], top: int, graded: set[str] | None,
             warnings: list[str] = ()) -> str:
    """``graded``: the students a ``--grades`` run graded normally (None without ``--grades``)."""
    grades_used = graded is not None
    compared = [s for s in students if s.compared]
    listed = [s for s in students if not s.compared]
    by_name = {s.student: s for s in compared}
    lines = ["# Similarity report", "",
             f"{_count(len(students), 'submission')}: {len(compared)} compared ({len(pairs)} pairs), "
             f"{len(listed)} listed below and not compared.", "",
             "A score (0 to 1) measures how much two files share that the assignment did not make "
             "everyone write: the student's own code (after renaming is undone), weighted by how rare "
             "it is in this class, then the same rare changes from the reference answer, shared rare "
             "comments and layout habits"
             + (", and the same rare deductions in the grade run" if grades_used else "")
             + f". About {SCALE:g} shared own tokens give 0.63. **A high score is a reason to look at "
             "the two files, not a verdict.**", ""]
    if grades_used:
        lines += [f"Deductions of the grade run: {sum(s.student in graded for s in compared)} of the "
                  f"{len(compared)} compared students were graded normally there; the others add no "
                  "deduction evidence.", ""]
        lines += [f"**Warning:** {_md(w)}" for w in warnings] + ([""] if warnings else [])
    shown = [p for p in pairs if has_evidence(p)][:top]
    if not compared or len(compared) == 1:
        lines += ["Nothing to compare: fewer than two submissions hold code of their own.", ""]
    elif not shown:
        lines += ["No pair shares anything rare (no pair has 1 own token of evidence).", ""]
    else:
        lines += [f"## Top {len(shown)} pairs", "",
                  "| # | student_a | student_b | score | shared fragments | shared rare deductions |",
                  "|---|---|---|---|---|---|"]
        for rank, pair in enumerate(shown, 1):
            lines.append(f"| {rank} | {_md(pair.a)} | {_md(pair.b)} | {pair.score:.3f} | {len(evident_fragments(pair))} "
                         f"| {len(pair.shared_deductions)} |")
        lines.append("")
        for rank, pair in enumerate(shown, 1):
            a, b = by_name[pair.a], by_name[pair.b]
            lines += [f"## {rank}. {_md(pair.a)} and {_md(pair.b)}: {pair.score:.3f}", ""]
            lines += _evidence_lines(a, b, pair)
            lines.append("")
            fragments = evident_fragments(pair)
            for number, fragment in enumerate(fragments[:FRAGMENTS_SHOWN], 1):
                lines += [f"### Fragment {number}: {_md(a.shown_path)} {_span(fragment.a_lines)}, "
                          f"{_md(b.shown_path)} {_span(fragment.b_lines)} ({_count(fragment.own_tokens, 'own token')}, "
                          f"{fragment.weighted:.1f} rarity-weighted)", ""]
                lines += _side_by_side(a, b, fragment)
                lines.append("")
            if len(fragments) > FRAGMENTS_SHOWN:
                lines += [f"... and {len(fragments) - FRAGMENTS_SHOWN} more fragment(s).", ""]
    if heatmap_names_students(len(compared)):
        numbered = {n: label for n, label in heatmap_labels([s.student for s in compared]).items()
                    if label != clean_text(n)}
        if numbered:
            lines += ["## Labels on similarity.png", "",
                      "The plot's font cannot draw these names, so the heatmap shows a number instead:", "",
                      "| label | student |", "|---|---|"]
            lines += [f"| {label} | {_md(name)} |"
                      for name, label in sorted(numbered.items(), key=lambda item: int(item[1][1:]))]
            lines.append("")
    cut = [s for s in compared if s.truncated]
    if cut:
        lines += ["## Compared in part", "", f"These files are very long: only their first {MAX_SOURCE_CHARS:,} characters "
                  "were compared.", ""]
        lines += [f"- {_md(s.shown_path)}" for s in cut]
        lines.append("")
    as_text = [s for s in compared if not s.tokens.parsed]
    if as_text:
        lines += ["## Compared as text", "",
                  "These files have a syntax error: the part that does not parse is compared as text "
                  "(its names still normalised), the rest as code.", ""]
        lines += [f"- {_md(s.shown_path)}" for s in as_text]
        lines.append("")
    if listed:
        lines += ["## Listed, not compared", "", "| student | why |", "|---|---|"]
        lines += [f"| {_md(s.student)} | {s.skipped}: {_md(s.detail)} |" for s in listed]
        lines.append("")
    return "\n".join(lines)


def write_markdown(out: Path, students, pairs, top: int, graded: set[str] | None, warnings: list[str] = ()) -> Path:
    path = out / "similarity.md"
    write_atomic(path, markdown(students, pairs, top, graded, warnings))
    path.chmod(0o644)
    return path


def cluster_order(names: list[str], pairs: list[PairScore]) -> list[str]:
    """Names ordered so that students linked by high scores sit together: clusters
    merged from the highest score down (single linkage), each kept contiguous."""
    cluster = {name: [name] for name in names}
    owner = {name: name for name in names}
    for pair in pairs:                    # highest first
        if pair.score <= 0:
            break
        a, b = owner[pair.a], owner[pair.b]
        if a != b:
            cluster[a] += cluster.pop(b)
            for name in cluster[a]:
                owner[name] = a
    groups = sorted(cluster.values(), key=lambda g: (-len(g), g[0]))
    return [name for group in groups for name in group]


def _plot_font_charmap() -> set[int]:
    """The code points the font matplotlib picks for the heatmap's labels can draw."""
    from matplotlib import font_manager, rcParams
    from matplotlib.ft2font import FT2Font
    path = font_manager.findfont(font_manager.FontProperties(family=rcParams["font.family"]))
    return set(FT2Font(path).get_charmap())


def heatmap_labels(names: list[str]) -> dict[str, str]:
    """Each student's label on the heatmap: the name where the plot's font can draw every
    character of it, otherwise "#n", n its place among the names sorted (the same for the
    same class, whatever the scores); similarity.md lists what each "#n" stands for."""
    charmap = _plot_font_charmap()
    labels = {}
    for number, name in enumerate(sorted(names), 1):
        shown = clean_text(name)
        labels[name] = shown if shown and all(ord(ch) in charmap for ch in shown) else f"#{number}"
    return labels


def heatmap_names_students(count: int) -> bool:
    return 2 <= count <= NAMED_AXES_UP_TO


def write_heatmap(out: Path, students: list[StudentFile], pairs: list[PairScore]) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [s.student for s in students if s.compared]
    order = cluster_order(names, pairs)
    index = {name: i for i, name in enumerate(order)}
    matrix = np.full((len(order), len(order)), np.nan)
    for pair in pairs:
        i, j = index[pair.a], index[pair.b]
        matrix[i, j] = matrix[j, i] = pair.score
    side = min(12.0, 4.0 + 0.18 * len(order))
    figure = Figure(figsize=(side + 1.5, side))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if len(order) < 2:
        axes.text(0.5, 0.5, "fewer than two submissions to compare", ha="center", va="center")
        axes.set_axis_off()
    else:
        image = axes.imshow(matrix, vmin=0, vmax=1, cmap="magma_r", interpolation="nearest")
        figure.colorbar(image, ax=axes, label="similarity score")
        if heatmap_names_students(len(order)):
            shown = heatmap_labels(order)   # no name in glyphs the font lacks (empty boxes)
            labels = [shown[n] for n in order]
            axes.set_xticks(range(len(order)), labels, rotation=90, fontsize=7)
            axes.set_yticks(range(len(order)), labels, fontsize=7)
        else:
            axes.set_xticks([])
            axes.set_yticks([])
            axes.set_xlabel(f"{len(order)} students, ordered so that clusters sit together")
    axes.set_title("Similarity between submissions (clusters together)")
    figure.tight_layout()
    path = out / "similarity.png"
    tmp = out / ".similarity.png.tmp"
    figure.savefig(tmp, format="png", dpi=100)
    tmp.replace(path)
    return path
