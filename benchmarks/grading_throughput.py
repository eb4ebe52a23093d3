"""Throughput of the batch grader against a naive one-process-per-submission grader.

    python benchmarks/grading_throughput.py [--count 100] [--jobs 2] [--baseline-sample 20]

Generates ``--count`` submissions into a temporary folder -- 60% correct or
equivalently written, 30% with typical mistakes, 10% failing (syntax error,
exit at import, exception in ``__init__``) -- then times

* the real path: ``grade_batch`` (sandbox fork server, ``--jobs`` workers), and
* a naive baseline: for each submission a fresh ``python`` that imports torch,
  builds the reference expectations, imports the student file in-process, runs
  the probe and scores it -- what nbgrader-style grading (one kernel per
  notebook) costs. Run sequentially; to keep the benchmark short it is timed on
  ``--baseline-sample`` submissions spread over the mix and extrapolated.

Prints both wall times and the ratio. No timing is asserted anywhere.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SOLUTION = (ROOT / "solutions" / "resnet50_skeleton.py").read_text()


def _sub(text: str, old: str, new: str) -> str:
    assert old in text, f"substitution did not apply: {old!r}"
    return text.replace(old, new, 1)


CORRECT = [
    SOLUTION,
    _sub(SOLUTION, "nn.AvgPool2d(2, 2)", "nn.AvgPool2d(2, 1)"),
    _sub(SOLUTION, "nn.AvgPool2d(2, 2)", "nn.AdaptiveAvgPool2d(1)"),
    _sub(SOLUTION, "super(ResidualBlock, self).__init__()", "super().__init__()"),
    _sub(_sub(SOLUTION, "import torch.nn as nn\n", "import torch\nimport torch.nn as nn\n"),
         "out = out.view(out.size(0), -1)", "out = torch.flatten(out, 1)"),
    _sub(SOLUTION, "return out + identity", "return nn.functional.relu(out + identity)"),
]
MISTAKES = [
    _sub(_sub(SOLUTION, "conv1x1(in_channels, middle_channels, 2, 0),", "conv1x1(in_channels, middle_channels, 1, 0),"),
         "conv3x3(middle_channels, middle_channels, 1, 1),", "conv3x3(middle_channels, middle_channels, 2, 1),"),
    _sub(SOLUTION, "nn.MaxPool2d(3, 2, 1)", "nn.MaxPool2d(3, 2, 0)"),
    _sub(SOLUTION, "nn.Conv2d(3, 64, 7, 2, 3)", "nn.Conv2d(3, 64, 5, 2, 3)"),
    _sub(SOLUTION, "            ResidualBlock(512, 128, 512, True),\n", ""),
    _sub(SOLUTION, "            ResidualBlock(1024, 256, 1024, False),\n", ""),
    _sub(SOLUTION, "nn.Linear(1024, num_classes)", "nn.Linear(512, num_classes)"),
]
FAILING = [
    _sub(SOLUTION, "            ResidualBlock(256, 64, 256, True),", "            ResidualBlock(256, 64, 256, True,"),
    "import sys\nsys.exit(3)\n" + SOLUTION,
    _sub(SOLUTION, "        super(ResNet50_layer4, self).__init__()\n",
         "        super(ResNet50_layer4, self).__init__()\n        raise ValueError('not finished')\n"),
]


def generate(folder: Path, count: int) -> list[Path]:
    n_correct, n_wrong = round(count * 0.6), round(count * 0.3)
    files = []
    for i in range(count):
        if i < n_correct:
            kind, pool = "correct", CORRECT
        elif i < n_correct + n_wrong:
            kind, pool = "wrong", MISTAKES
        else:
            kind, pool = "failing", FAILING
        path = folder / f"s{i:03d}_{kind}" / "resnet50_skeleton.py"
        path.parent.mkdir(parents=True)
        path.write_text(f"# student {i}\n" + pool[i % len(pool)])
        files.append(path)
    return files


NAIVE = r"""
import io, json, sys, time
import torch
from autograder.spec import RUBRIC_PATH, load_rubric
from autograder.grade.expectations import build_expectations
from autograder.grade.probe import import_student, probe_module
from autograder.grade.scoring import failed, grade_report
path = sys.argv[1]
rubric = load_rubric(RUBRIC_PATH)
exp = build_expectations()
request = torch.load(io.BytesIO(exp.request_bytes), weights_only=True)
try:
    student = import_student(path)
    report = probe_module(student, request)
    graded = grade_report("s", json.dumps(report).encode(), exp, rubric)
except BaseException as exc:
    graded = failed("s", "import_error", repr(exc), rubric)
print(graded.total)
"""


def naive_one(path: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", NAIVE, str(path)], cwd=ROOT, capture_output=True, text=True,
                   timeout=300)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--baseline-sample", type=int, default=20,
                        help="time the naive baseline on this many submissions and extrapolate (0: skip)")
    args = parser.parse_args(argv)

    from autograder.grade.batch import grade_batch

    with tempfile.TemporaryDirectory(prefix="grading-bench-") as tmp:
        folder = Path(tmp) / "submissions"
        files = generate(folder, args.count)
        start = time.perf_counter()
        results = grade_batch(folder, Path(tmp) / "out", jobs=args.jobs, progress=False, log=lambda *_: None)
        batch_s = time.perf_counter() - start
        statuses = {}
        for r in results:
            statuses[r["extra_data"]["status"]] = statuses.get(r["extra_data"]["status"], 0) + 1
        print(f"grade_batch: {len(results)} submissions, jobs={args.jobs}: {batch_s:.1f} s "
              f"({batch_s / len(results):.2f} s each; statuses {statuses})")

        if args.baseline_sample <= 0:
            return 0
        n = min(args.baseline_sample, len(files))
        sample = [files[round(i * (len(files) - 1) / max(1, n - 1))] for i in range(n)]
        naive_s = sum(naive_one(path) for path in sample)
        total = naive_s * len(files) / n
        how = f"extrapolated from {n} timed" if n < len(files) else "all timed"
        print(f"naive baseline (fresh python per submission, sequential): {total:.1f} s for {len(files)} "
              f"({how}; {naive_s / n:.2f} s each)")
        print(f"ratio batch / baseline: {batch_s / total:.3f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
