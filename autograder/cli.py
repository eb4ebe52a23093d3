"""Command line: a thin layer over plain functions, one sub-command per verb."""
from __future__ import annotations

import argparse
import sys


def _cmd_table(args: argparse.Namespace) -> int:
    from autograder.check.report import print_reference_table
    print_reference_table()
    return 0


def _cmd_release(args: argparse.Namespace) -> int:
    from autograder.release.kit import check_kit, release_kit
    if args.check:
        problems = check_kit()
        for problem in problems:
            print(problem)
        if not problems:
            print("student files are up to date and leak no solution text")
        return 1 if problems else 0
    for note in release_kit():
        print(note)
    return 0


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
    release.set_defaults(func=_cmd_release)

    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
