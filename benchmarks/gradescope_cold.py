"""Seconds per submission: the Gradescope zip's ``run_autograder``, cold, next to ``python -m autograder grade``.

    python benchmarks/gradescope_cold.py [--runs 3] [--sandbox-uid 64990]

Builds the zip (``python -m autograder gradescope --out``), unpacks it into a temporary
folder and grades the correct example submission ``--runs`` times, each in a fresh
``run_autograder`` process with a fresh ``AUTOGRADER_ROOT`` (as Gradescope runs it: the
interpreter starts, imports torch and starts the sandbox every time). The kit's own
Python (``sys.executable``, the .venv) stands in for the .venv that ``setup.sh`` makes.
In the same run, as the baseline, ``python -m autograder grade --jobs 1`` grades the
same file, also ``--runs`` times, each a fresh process.

Prints wall seconds and CPU seconds (user+sys of the process and its children) per
submission for both, and their ratio, with the load average. No timing is asserted.
Run as root to measure what Gradescope runs (uid drop and sweep); as another user,
run_autograder grades without them and says so.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORRECT = ROOT / "examples" / "submissions" / "correct" / "resnet50_skeleton.py"


def timed(command: list[str], cwd: Path, env: dict) -> tuple[float, float, str]:
    """(wall s, CPU s of the children, output) of one fresh process; exits on failure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command[:3])} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return wall, cpu, result.stdout


def unpack(zip_path: Path, into: Path) -> None:
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(into)
        for info in zf.infolist():   # extractall drops modes; Gradescope keeps them
            (into / info.filename).chmod((info.external_attr >> 16) & 0o777)


def summary(label: str, figures: list[tuple[float, float]]) -> tuple[float, float]:
    walls, cpus = [w for w, _ in figures], [c for _, c in figures]
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(f"{label}: {wall:.1f} s wall per submission (median of {len(walls)}: "
          f"{', '.join(f'{w:.1f}' for w in walls)}), {cpu:.1f} s CPU (user+sys: "
          f"{', '.join(f'{c:.1f}' for c in cpus)})")
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="cold runs of each (default 3)")
    parser.add_argument("--sandbox-uid", type=int, default=64990,
                        help="uid for student code (default 64990): every process of it is killed "
                             "after each run, so give concurrent benchmarks different ones")
    args = parser.parse_args()
    python = sys.executable
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    with tempfile.TemporaryDirectory(prefix="gs-bench-") as tmp:
        tmp = Path(tmp)
        tmp.chmod(0o755)   # the sandbox uid must reach the unpacked kit's Python files
        build_s, _, _ = timed([python, "-m", "autograder", "gradescope", "--out", str(tmp / "autograder.zip")],
                              ROOT, {**base_env})
        kit = tmp / "kit"
        unpack(tmp / "autograder.zip", kit)
        kit.chmod(0o755)
        print(f"zip built in {build_s:.1f} s; load average before: "
              + " ".join(f"{x:.2f}" for x in os.getloadavg()))

        cold, cli, scores = [], [], set()
        for index in range(args.runs):
            # Alternate the two, so a change in the machine's load hits both alike.
            root = tmp / f"root{index}"
            (root / "submission").mkdir(parents=True)
            root.chmod(0o755)
            shutil.copy(CORRECT, root / "submission" / "resnet50_skeleton.py")
            env = {**base_env, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": python}
            wall, cpu, out = timed([str(kit / "run_autograder"), "--sandbox-uid", str(args.sandbox_uid)],
                                   root, env)
            cold.append((wall, cpu))
            scores.add(json.loads((root / "results" / "results.json").read_text())["score"])
            if index == 0:
                said = [line for line in out.splitlines()
                        if line.startswith(("graded ", "sandbox started", "sweep of uid", "wrote "))]
                print("run_autograder says: " + " | ".join(said))

            students = tmp / f"cli{index}" / "correct"
            students.mkdir(parents=True)
            shutil.copy(CORRECT, students / "resnet50_skeleton.py")
            wall, cpu, _ = timed([python, "-m", "autograder", "grade", str(students.parent), "--out",
                                  str(tmp / f"cli-out{index}"), "--jobs", "1"], ROOT, {**base_env})
            cli.append((wall, cpu))

        print(f"load average after: " + " ".join(f"{x:.2f}" for x in os.getloadavg())
              + f"; cores: {os.cpu_count()}; score(s): {sorted(scores)}")
        cold_wall, cold_cpu = summary("run_autograder, cold", cold)
        cli_wall, cli_cpu = summary("autograder grade --jobs 1 (baseline)", cli)
        print(f"ratio run_autograder / grade: {cold_wall / cli_wall:.2f}x wall, {cold_cpu / cli_cpu:.2f}x CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
