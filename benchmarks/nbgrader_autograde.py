"""Seconds per submission: ``nbgrader autograde`` of the kit's course next to ``python -m autograder grade``.

    python benchmarks/nbgrader_autograde.py [--count 4] [--jobs 1]

Lays out a course with ``python -m autograder nbgrader init`` in a temporary folder,
runs ``nbgrader generate_assignment``, hands in ``--count`` submissions (the example
submissions in turn, each with the released notebook), then times, in the same run:

* ``nbgrader autograde`` over all of them (one kernel per notebook, kernel start
  included; the five test cells grade the file once in the sandbox), and
* ``python -m autograder grade`` over the same files with ``--jobs`` (default 1, as
  nbgrader grades one student at a time).

Prints both as seconds per submission. No timing is asserted anywhere.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ("correct", "stride_on_3x3", "relu_after_add", "layer3_downsample_first", "avgpool_2_1",
            "maxpool_padding_0")
ASSIGNMENT = "cnn_implementation"
BIN = Path(sys.executable).parent


def run(args: list[str], cwd: Path) -> float:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}   # nbgrader needs alembic
    start = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(args[:3])} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4, help="submissions (default 4)")
    parser.add_argument("--jobs", type=int, default=1, help="--jobs of the CLI run (default 1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nbgrader-bench-") as tmp:
        tmp = Path(tmp)
        course = tmp / "course"
        run([sys.executable, "-m", "autograder", "nbgrader", "init", str(course)], tmp)
        run([str(BIN / "nbgrader"), "generate_assignment", ASSIGNMENT], course)
        released = course / "release" / ASSIGNMENT
        cli_folder = tmp / "cli"
        for index in range(args.count):
            student = f"student{index:02d}"
            source = ROOT / "examples" / "submissions" / EXAMPLES[index % len(EXAMPLES)] / "resnet50_skeleton.py"
            folder = course / "submitted" / student / ASSIGNMENT
            folder.mkdir(parents=True)
            for name in ("CNN_Implementation.ipynb", "vgg.py"):
                shutil.copy(released / name, folder / name)
            shutil.copy(source, folder / "resnet50_skeleton.py")
            (cli_folder / student).mkdir(parents=True)
            shutil.copy(source, cli_folder / student / "resnet50_skeleton.py")
        nbgrader_s = run([str(BIN / "nbgrader"), "autograde", ASSIGNMENT], course)
        cli_s = run([sys.executable, "-m", "autograder", "grade", str(cli_folder), "--out", str(tmp / "out"),
                     "--jobs", str(args.jobs), "--quiet"], tmp)
    print(f"{args.count} submissions on {os.cpu_count()} CPUs")
    print(f"nbgrader autograde: {nbgrader_s:7.1f} s in all, {nbgrader_s / args.count:5.1f} s per submission")
    print(f"autograder grade (--jobs {args.jobs}): {cli_s:7.1f} s in all, {cli_s / args.count:5.1f} s per submission")
    return 0


if __name__ == "__main__":
    sys.exit(main())
