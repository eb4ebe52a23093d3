"""Images per second: the handout's DataLoader + PIL transforms vs. the notebook's tensor path.

Both are measured in the same run on the same data. The fast path's code is not copied
here: it is executed from the notebook cells tagged ``kit:synthetic-cifar10`` and
``kit:data-pipeline`` in ``solutions/CNN_Implementation.ipynb`` (the one place it lives).

    .venv/bin/python benchmarks/data_pipeline.py                # 2 threads, synthetic 50k images
    .venv/bin/python benchmarks/data_pipeline.py --workers 2    # the baseline with 2 worker processes

With a real CIFAR-10 in $CIFAR10_ROOT it uses that; otherwise it writes a synthetic one
(same files, same sizes, random pixels) to a temporary folder. The work per image does
not depend on the pixel values.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from autograder.checkpoints.notebook_cells import notebook_namespace  # noqa: E402


def throughput(batches, limit: int, sync=lambda: None) -> float:
    """Images per second over the first `limit` images (after one warm-up batch)."""
    iterator = iter(batches)
    next(iterator)
    seen, start = 0, time.perf_counter()
    for images, labels in iterator:
        seen += len(labels)
        if seen >= limit:
            break
    sync()
    rate = seen / (time.perf_counter() - start)
    del iterator   # shuts DataLoader worker processes down before the next measurement
    return rate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2, like Colab)")
    parser.add_argument("--workers", type=int, default=0,
                        help="DataLoader worker processes for the baseline (the handout's default: 0)")
    parser.add_argument("--images", type=int, default=10000, help="images timed per path (default 10000)")
    parser.add_argument("--fast-epochs", type=int, default=3, help="epochs timed for the fast path")
    parser.add_argument("--device", default=None, help="device of the fast path (default: cuda if available)")
    args = parser.parse_args(argv)

    ns = notebook_namespace()
    import torch
    torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    root = os.environ.get("CIFAR10_ROOT", "./data")
    tmp = None
    real_folder = Path(root) / "cifar-10-batches-py"
    if not real_folder.is_dir():
        tmp = tempfile.TemporaryDirectory(prefix="cifar10-bench-")
        root = tmp.name
        print(f"no CIFAR-10 in $CIFAR10_ROOT; writing a synthetic one (50,000 + 10,000 images) to {root}")
        ns["write_synthetic_cifar10"](root, n_train=50000, n_test=10000)
    dataset = ns["cifar10_class"](root)(root, train=True, transform=ns["transform_train"])
    print(f"data: {'synthetic' if ns['is_synthetic_cifar10'](root) else 'CIFAR-10'} in {root}, "
          f"{len(dataset)} training images; torch threads: {args.threads}; "
          f"python {sys.version.split()[0]}, torch {torch.__version__}")

    reference = ns["reference_loader"](dataset, train=True, num_workers=args.workers)
    ref = throughput(reference, args.images)
    print(f"handout DataLoader + PIL transforms (num_workers={args.workers}): {ref:,.0f} images/s")

    start = time.perf_counter()
    fast_loader = ns["TensorCIFAR10"](dataset, train=True, device=device)
    setup = time.perf_counter() - start
    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)

    def epochs():
        for _ in range(args.fast_epochs + 1):
            yield from fast_loader
    fast = throughput(epochs(), args.fast_epochs * len(dataset), sync)
    print(f"notebook tensor path on {device} (crop + flip + normalize per batch): {fast:,.0f} images/s "
          f"(one-off setup {setup:.1f} s)")
    print(f"ratio: {fast / ref:.1f}x")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
