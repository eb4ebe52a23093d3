"""Speed of the similarity report on a generated class, and its ranking beside
plain MOSS-style winnowing on the same files.

    python benchmarks/similarity_speed.py [--count 500] [--jobs 2] [--seed 0]

Generates ``--count`` submissions from the released skeleton (tests/similarity_class.py:
equivalent forms mixed at random, common mistakes, the students' own comments,
a few untouched, empty and broken files) with one disguised copy planted per
50 students, then

* times the real command, ``python -m autograder similarity DIR --out OUT --jobs N``
  (a fresh interpreter: imports included), wall clock and CPU;
* ranks the same files with plain winnowing (``autograder/similarity/baseline.py``);
* prints, for both rankings, the rank of every planted copy and the top pairs,
  marking which are planted. (The planted students' own helpers are random
  statements from a small pool of templates, so two unrelated planted students
  can share a few template lines: such "not planted" pairs do share unusual code.)

The target is 500 submissions in at most 30 s on 2 cores. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import csv
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder.similarity.baseline import plain_winnowing  # noqa: E402
from tests.similarity_class import generated_class, write_class  # noqa: E402

TARGET_S = 30.0


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def show(title: str, ranked: list[tuple[str, str, float]], planted: set[tuple[str, str]], top: int) -> None:
    rank = {(a, b): i + 1 for i, (a, b, _) in enumerate(ranked)}
    found = sorted(rank[p] for p in planted)
    print(f"\n{title}")
    print(f"  ranks of the {len(planted)} planted copies: {found}")
    print(f"  planted copies in the top {len(planted)}: {sum(r <= len(planted) for r in found)} of {len(planted)}")
    for i, (a, b, score) in enumerate(ranked[:top], 1):
        print(f"  {i:3d}. {score:.3f}  {a} {b}  {'planted copy' if (a, b) in planted else 'not planted'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top", type=int, default=12, help="pairs printed per ranking")
    args = parser.parse_args()

    files, planted_pairs = generated_class(args.count, seed=args.seed)
    planted = set(planted_pairs)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_class(Path(tmp) / "submissions", files)
        out = Path(tmp) / "out"
        cpu_before = children_cpu_s()
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "autograder", "similarity", str(folder), "--out", str(out),
                               "--jobs", str(args.jobs), "--quiet"], cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        cpu = children_cpu_s() - cpu_before
        if done.returncode != 0:
            print(done.stdout + done.stderr)
            return 1
        with (out / "similarity.csv").open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))[1:]
        ours = [(a, b, float(score)) for a, b, score, *_ in rows]
        print(done.stdout.strip().splitlines()[0])

    start = time.perf_counter()
    plain = plain_winnowing({name: text for name, text in files.items() if text.strip()})
    plain_wall = time.perf_counter() - start

    print(f"\nsimilarity command, {args.count} submissions, --jobs {args.jobs}: "
          f"{wall:.1f} s wall ({wall / args.count * 1000:.0f} ms per submission), {cpu:.1f} s CPU; "
          f"target {TARGET_S:.0f} s: {'met' if wall <= TARGET_S else 'MISSED'}")
    print(f"plain winnowing (in this process, comparison only): {plain_wall:.1f} s wall")
    show("this command (kit boilerplate, rewrites, class rarity):", ours, planted, args.top)
    show("plain MOSS-style winnowing (no boilerplate):", plain, planted, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
