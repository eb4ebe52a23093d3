"""Command line: a thin layer over plain functions, one sub-command per verb."""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from autograder.spec import RUBRIC_PATH


def _kit_root_on_path() -> None:
    """``solutions/`` sits beside the package, not inside it: make it importable from
    any working directory (the grader itself loads it by file path)."""
    kit_root = str(Path(__file__).resolve().parent.parent)
    if kit_root not in sys.path:
        sys.path.insert(0, kit_root)


def _cmd_table(args: argparse.Namespace) -> int:
    _kit_root_on_path()
    from autograder.check.report import print_reference_table
    return print_reference_table()


def _cmd_release(args: argparse.Namespace) -> int:
    from autograder.release.kit import check_kit, release_kit
    if args.check:
        problems = check_kit()
        for problem in problems:
            print(problem)
        if not problems:
            print("student files are up to date and leak no solution text; the student zip holds no answer key")
        return 1 if problems else 0
    for note in release_kit():
        print(note)
    if args.bundle:
        from autograder.release.bundle import BundleError, build_bundle
        try:
            _, notes = build_bundle(args.bundle)
        except BundleError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        for note in notes:
            print(note)
    return 0


def _cmd_grade(args: argparse.Namespace) -> int:
    from autograder.grade.batch import BatchError, grade_batch
    from autograder.grade.outputs import summary_text
    from autograder.grade.sandbox import IsolationError
    from autograder.spec import RubricError
    try:
        results = grade_batch(args.path, args.out, jobs=args.jobs, timeout_s=args.timeout,
                              memory_mb=args.memory_mb, force=args.force, rubric_path=args.rubric,
                              progress=not args.quiet, isolation=args.isolation)
    except (BatchError, RubricError, IsolationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_gradebook:
        print((args.out / "grades.csv").read_text(encoding="utf-8"), end="")
    print(summary_text(results))
    print(f"wrote {args.out / 'grades.csv'}, {args.out / 'results'}/, {args.out / 'feedback'}/")
    return 0


def _cmd_similarity(args: argparse.Namespace) -> int:
    from autograder.similarity.extract import SimilarityError
    from autograder.similarity.run import similarity_report
    try:
        report = similarity_report(args.path, args.out, grades=args.grades, top=args.top, jobs=args.jobs,
                                   progress=not args.quiet)
    except SimilarityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for warning in report.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    compared = len(report.students) - len(report.listed)
    print(f"{len(report.students)} submission{'' if len(report.students) == 1 else 's'}: {compared} compared, {len(report.listed)} listed and not compared")
    for pair in [p for p in report.pairs[:5] if p.score > 0]:
        print(f"  {pair.score:.3f}  {pair.a}  {pair.b}")
    print("wrote " + ", ".join(str(f) for f in report.files))
    return 0


def _cmd_gradescope(args: argparse.Namespace) -> int:
    from autograder.gradescope.bundle import GradescopeBundleError, build_zip
    try:
        _, notes = build_zip(args.out, rubric=args.rubric, visibility=args.visibility,
                             timeout_s=args.timeout, memory_mb=args.memory_mb)
    except GradescopeBundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(note)
    return 0


def _cmd_nbgrader_init(args: argparse.Namespace) -> int:
    from autograder.nbgrader.layout import CourseError, init_course
    from autograder.release.markers import ReleaseError
    try:
        notes = init_course(args.course_dir, args.assignment, force=args.force)
    except (CourseError, ReleaseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(note)
    print(f"next: cd {args.course_dir} && nbgrader generate_assignment {args.assignment}")
    return 0


def _cmd_nbgrader_verify(args: argparse.Namespace) -> int:
    from autograder.nbgrader.verify import VerifyError, verify_course
    try:
        differences, compared = verify_course(args.course_dir, args.assignment, jobs=args.jobs,
                                              progress=not args.quiet)
    except VerifyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for difference in differences:
        print(f"{difference.student}: {difference.problem}")
    differing = [d for d in differences if d.differs]   # the others are notes
    print(f"{compared} submission{'' if compared == 1 else 's'} regraded with the sandboxed grader: "
          + (f"{len(differing)} differ{'s' if len(differing) == 1 else ''} from the gradebook"
             if differing else "the gradebook agrees"))
    return 1 if differing else 0


def _cmd_checkpoints_train(args: argparse.Namespace) -> int:
    from autograder.checkpoints.train import run_train
    return run_train(args)


def _cmd_checkpoints_verify(args: argparse.Namespace) -> int:
    from autograder.checkpoints.verify import run_verify
    return run_verify(args)


def _cmd_checkpoints_record(args: argparse.Namespace) -> int:
    from autograder.checkpoints.verify import run_record
    return run_record(args)


def _percent(text):
    value = float(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text} is not a percentage between 0 and 100")
    return value


def _positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m autograder",
        description="CIFAR-10 CNN assignment kit: check, release and grade ResNet50_layer4.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    table = sub.add_parser("table", help="show the reference model stage by stage against the slide table")
    table.set_defaults(func=_cmd_table)

    release = sub.add_parser("release", help="regenerate the student files from solutions/")
    release.add_argument("--check", action="store_true",
                         help="write nothing; exit 1 if a student file is out of date or leaks solution text")
    release.add_argument("--bundle", type=Path, metavar="DIR",
                         help="also write the student zip (notebook, vgg.py, skeleton, public checks, "
                              "checkpoints if present) into DIR")
    release.set_defaults(func=_cmd_release)

    grade = sub.add_parser("grade", help="grade resnet50_skeleton.py submissions in isolated processes")
    grade.add_argument("path", type=Path,
                       help="one .py file, or a folder with one sub-folder per student holding resnet50_skeleton.py")
    grade.add_argument("--out", type=Path, required=True, help="output folder (grades.csv, results/, feedback/)")
    grade.add_argument("--jobs", type=_positive(int), default=os.cpu_count() or 1,
                       help="submissions graded at once (default: number of CPUs)")
    grade.add_argument("--timeout", type=_positive(float), default=60.0,
                       help="wall-clock seconds allowed per submission (default 60)")
    grade.add_argument("--memory-mb", type=_positive(int), default=4096,
                       help="memory allowed per submission in MiB (default 4096)")
    grade.add_argument("--force", action="store_true", help="regrade students that already have results")
    grade.add_argument("--rubric", type=Path, default=RUBRIC_PATH, help="rubric TOML (default: the kit's)")
    grade.add_argument("--print-gradebook", action="store_true", help="print grades.csv when done")
    grade.add_argument("--quiet", action="store_true", help="no progress bar")
    grade.add_argument("--isolation", choices=("auto", "strict", "none"), default="auto",
                       help="auto: every sandbox layer the machine offers, warn about missing ones; "
                            "strict: refuse unless student code sees an allow-listed filesystem only; "
                            "none: no sandbox layers (trusted code only)")
    grade.set_defaults(func=_cmd_grade)

    similarity = sub.add_parser("similarity", help="rank pairs of submissions by what they share beyond the "
                                                   "assignment's own code (a reason to look, not a verdict)")
    similarity.add_argument("path", type=Path, help="the submissions, in the same layout as for grade")
    similarity.add_argument("--out", type=Path, required=True,
                            help="output folder (similarity.csv, similarity.md, similarity.png)")
    similarity.add_argument("--grades", type=Path, metavar="GRADING_OUT",
                            help="the --out folder of a grade run: the same rare deductions raise a pair's score")
    similarity.add_argument("--top", type=_positive(int), default=10,
                            help="pairs shown with their shared code in similarity.md (default 10)")
    similarity.add_argument("--jobs", type=_positive(int), default=min(2, os.cpu_count() or 1),
                            help="processes reading the files (default 2)")
    similarity.add_argument("--quiet", action="store_true", help="no progress bar")
    similarity.set_defaults(func=_cmd_similarity)

    gradescope = sub.add_parser("gradescope", help="build the zip for Gradescope's Configure Autograder page "
                                                   "(grader, spec, rubric, reference; no student file)")
    gradescope.add_argument("--out", type=Path, required=True, help="the zip to write (e.g. autograder.zip)")
    gradescope.add_argument("--visibility", choices=("visible", "after_published", "after_due_date", "hidden"),
                            default="visible",
                            help="when students see the tests (Gradescope's values): at once, once grades "
                                 "are published, after the due date, or never (default visible)")
    gradescope.add_argument("--timeout", type=_positive(float), default=60.0,
                            help="wall-clock seconds allowed per submission (default 60)")
    gradescope.add_argument("--memory-mb", type=_positive(int), default=4096,
                            help="memory allowed per submission in MiB (default 4096)")
    gradescope.add_argument("--rubric", type=Path, default=None,
                            help="rubric TOML to grade with (default: the kit's)")
    gradescope.set_defaults(func=_cmd_gradescope)

    nbgrader = sub.add_parser("nbgrader", help="run the assignment as an nbgrader course (init, verify)")
    nbgrader_sub = nbgrader.add_subparsers(dest="nbgrader_command", required=True, metavar="STEP")
    nb_init = nbgrader_sub.add_parser("init", help="lay out an nbgrader course from the kit's sources")
    nb_init.add_argument("course_dir", type=Path, metavar="COURSE_DIR", help="the course folder (created)")
    nb_init.add_argument("--assignment", default="cnn_implementation", help="assignment name (default cnn_implementation)")
    nb_init.add_argument("--force", action="store_true", help="rewrite the kit's files in an existing course")
    nb_init.set_defaults(func=_cmd_nbgrader_init)
    nb_verify = nbgrader_sub.add_parser("verify", help="regrade every submitted file with the sandboxed grader; "
                                                       "exit 1 if a gradebook score differs")
    nb_verify.add_argument("course_dir", type=Path, metavar="COURSE_DIR", help="the course folder")
    nb_verify.add_argument("--assignment", default="cnn_implementation", help="assignment name (default cnn_implementation)")
    nb_verify.add_argument("--jobs", type=_positive(int), default=os.cpu_count() or 1,
                           help="submissions graded at once (default: number of CPUs)")
    nb_verify.add_argument("--quiet", action="store_true", help="no progress bar")
    nb_verify.set_defaults(func=_cmd_nbgrader_verify)

    checkpoints = sub.add_parser("checkpoints", help="train, describe and verify the two checkpoints the notebook "
                                                     "starts from (train, verify)")
    checkpoints_sub = checkpoints.add_subparsers(dest="checkpoints_command", required=True, metavar="STEP")
    ck_train = checkpoints_sub.add_parser("train", help="train vgg16 or resnet50 and write the handout's checkpoint "
                                                        "file plus its manifest entry")
    ck_train.add_argument("--model", choices=("vgg16", "resnet50"), required=True, help="which model to train")
    ck_train.add_argument("--data", type=Path, required=True, metavar="DIR",
                          help="CIFAR-10 folder (holds cifar-10-batches-py/; downloaded there where the network allows)")
    ck_train.add_argument("--out", type=Path, required=True, metavar="DIR",
                          help="where the checkpoint and manifest.json go (e.g. checkpoints/)")
    ck_train.add_argument("--epochs", type=_positive(int), default=None,
                          help="epochs to train (default: the recipe's; original: 250 for vgg16, 285 for resnet50)")
    ck_train.add_argument("--max-steps", type=_positive(int), default=None,
                          help="stop after this many optimiser steps in all (smoke runs)")
    ck_train.add_argument("--recipe", choices=("original", "fast"), default="fast",
                          help="original: the handout's schedule; fast: one-cycle, bf16, CUDA graph (default fast)")
    ck_train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ck_train.add_argument("--no-cuda-graph", action="store_true",
                          help="run every training step eagerly on the GPU (default: one CUDA graph per step)")
    ck_train.set_defaults(func=_cmd_checkpoints_train)
    ck_verify = checkpoints_sub.add_parser("verify", help="check checkpoint files against manifest.json: sha256, "
                                                          "weights_only load, strict load, accuracy")
    ck_verify.add_argument("dir", type=Path, nargs="?", default=Path("checkpoints"), metavar="DIR",
                           help="folder with the .ckpt files and manifest.json (default checkpoints/)")
    ck_verify.add_argument("--fix-prefixes", action="store_true",
                           help="strip 'module.' (DataParallel) and '_orig_mod.' (torch.compile) from the keys: "
                                "rewrites the file and its manifest entry's sha256 and size")
    ck_verify.add_argument("--data", type=Path, default=None, metavar="DIR",
                           help="CIFAR-10 folder for the accuracy check (default $CIFAR10_ROOT; skipped when "
                                "neither is given). torchvision unpickles it: use only a folder you trust")
    ck_verify.add_argument("--trust-synthetic", action="store_true",
                           help="read a synthetic-format CIFAR-10 in --data (its checksums come from the folder "
                                "itself: only one you made)")
    ck_verify.add_argument("--allow-synthetic", action="store_true",
                           help="accept checkpoints manifest.json marks synthetic (smoke tests; never publish them)")
    ck_verify.add_argument("--model", choices=("vgg16", "resnet50"), default=None,
                           help="check only this model's checkpoint (default: both of the handout's)")
    ck_verify.set_defaults(func=_cmd_checkpoints_verify)
    ck_record = checkpoints_sub.add_parser("record", help="check checkpoint files a course already has (weights-only, "
                                                          "strict load) and write their manifest.json entries")
    ck_record.add_argument("files", type=Path, nargs="+", metavar="FILE", help="the .ckpt files (manifest.json goes "
                                                                               "beside each)")
    ck_record.add_argument("--model", choices=("vgg16", "resnet50"), default=None,
                           help="which model (default: from the handout file name)")
    ck_record.add_argument("--epochs", type=_positive(int), default=None, help="epochs it was trained (recorded)")
    ck_record.add_argument("--recipe", default=None, metavar="NAME", help="how it was trained (recorded; default unknown)")
    ck_record.add_argument("--test-accuracy", type=_percent, default=None, metavar="PCT",
                           help="its test accuracy on the real CIFAR-10, in percent (recorded)")
    ck_record.set_defaults(func=_cmd_checkpoints_record)

    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler's stop): unwound like Ctrl-C, so every
    ``finally`` removes its temporary folders (sandbox-*, out/.sources-*)."""


def _raise_terminated(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for stream in (sys.stdout, sys.stderr):
        # A student's text (or an undecodable file name) must never stop a print.
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:   # not the main thread (main() called from a test's thread)
        previous = None
    try:
        return args.func(args)
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
