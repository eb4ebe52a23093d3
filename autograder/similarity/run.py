"""``python -m autograder similarity SUBMISSIONS --out DIR``: the steps in order."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from autograder.similarity.deductions import load_deductions
from autograder.similarity.extract import (SimilarityError, StudentFile, analyse_students, find_students,
                                           load_boilerplate)
from autograder.similarity.fingerprint import TokenIds, boilerplate_hashes, fingerprint, kit_streams
from autograder.similarity.score import PairScore, score_pairs


@dataclass
class SimilarityReport:
    students: list[StudentFile]
    pairs: list[PairScore]           # highest score first
    files: list[Path]                # similarity.csv, .md, .png
    warnings: list[str] = field(default_factory=list)   # about the --grades run, for the console too

    @property
    def listed(self) -> list[StudentFile]:
        return [s for s in self.students if not s.compared]


def _prepare_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise SimilarityError(f"cannot write to {out}: {exc.strerror or exc}") from None


def _progress(enabled: bool):
    from tqdm import tqdm

    def wrap(iterable, **kwargs):
        return tqdm(iterable, file=sys.stderr, disable=not enabled, leave=False, **kwargs)
    return wrap


def similarity_report(path: Path, out: Path, grades: Path | None = None, top: int = 10, jobs: int = 2,
                      progress: bool = False) -> SimilarityReport:
    """Compare every submission under ``path`` with every other; write the report into ``out``."""
    path, out = Path(path), Path(out)
    if not path.exists():
        raise SimilarityError(f"{path} does not exist")
    if grades is not None and not Path(grades).is_dir():
        raise SimilarityError(f"--grades {grades} is not a folder (give the --out folder of a grade run)")
    _prepare_out(out)
    boilerplate = load_boilerplate()
    bar = _progress(progress)

    students = find_students(path, skip=(out,))
    deductions, warnings = None, []
    if grades is not None:
        from autograder.grade.outputs import clean_text
        run = load_deductions(Path(grades), {clean_text(s.student): s.raw for s in students if s.raw is not None})
        deductions = run.deductions
    analyse_students(students, boilerplate, jobs=jobs, progress=bar)
    compared = [s for s in students if s.compared]
    if grades is not None:
        warnings = grade_run_warnings(run, len(compared))

    token_ids = TokenIds()
    kit = boilerplate_hashes(boilerplate.sources, boilerplate.vocab, token_ids)
    streams = kit_streams(boilerplate.sources[:2], boilerplate.vocab)      # the skeleton, the solution
    prints = [fingerprint(s.tokens, token_ids, kit, kit=streams) for s in compared]
    pairs = score_pairs(compared, prints, deductions, progress=bar)

    from autograder.similarity.report import write_csv, write_heatmap, write_markdown
    try:
        files = [write_csv(out, pairs),
                 write_markdown(out, students, pairs, top, graded=set(deductions) if deductions is not None else None,
                                warnings=warnings),
                 write_heatmap(out, students, pairs)]
    except OSError as exc:
        raise SimilarityError(f"cannot write the report into {out}: {exc.strerror or exc}") from None
    return SimilarityReport(students, pairs, files, warnings)


def grade_run_warnings(run, compared: int) -> list[str]:
    """What the instructor must know before trusting the deduction evidence."""
    warnings = []
    if run.stale:
        shown = ", ".join(run.stale[:10]) + (" ..." if len(run.stale) > 10 else "")
        warnings.append(f"{len(run.stale)} grade result(s) ignored: the file changed since the grade run "
                        f"(or the grader did; rerun grade): {shown}")
    if compared and len(run.deductions) < compared / 2:
        warnings.append(f"only {len(run.deductions)} of the {compared} compared students were graded normally "
                        "in the --grades run: shared deductions are little evidence here")
    return warnings
