"""Training speed of the checkpoint trainer: images/s and seconds per epoch, per model, recipe and mode.

Every line names the device. The modes are eager fp32, eager bf16 (where the device has it
natively) and, on CUDA, the whole step captured as one CUDA graph in each precision. On a
GPU the same run also times the handout's way (DataLoader + PIL transforms, fp32, batch 100,
plain Adam), the baseline of the issue's table. The trainer is autograder/checkpoints/train.py;
the data path and the handout's loader come from the notebook's cells, not from copies here.

    .venv/bin/python benchmarks/train_speed.py                     # GPU: 50,000 synthetic images, one epoch each
    # CPU: about 4 minutes on 2 shared cores (1,024 images, 2 steps per measurement)
    .venv/bin/python benchmarks/train_speed.py --n-train 1024 --n-test 200 --steps 2 --threads 1 --handout yes

The data is the notebook's synthetic CIFAR-10 (write_synthetic_cifar10), 50,000 training
images by default: the work per image does not depend on the pixels. With --steps the
seconds per epoch are extrapolated from the images/s of those steps, and say so.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from autograder.checkpoints.models import MODEL_NAMES, build_model  # noqa: E402
from autograder.checkpoints.notebook_cells import notebook_namespace  # noqa: E402
from autograder.checkpoints.recipes import RECIPES, get_recipe  # noqa: E402

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")   # a CPU's native bf16 instructions


def cpu_flags() -> set:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def device_name(device) -> str:
    import torch
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = "CPU"
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    threads = torch.get_num_threads()
    return f"{model}, {threads} thread{'' if threads == 1 else 's'}"


def bf16_supported(device) -> bool:
    import torch
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(cpu_flags() & set(CPU_BF16_FLAGS))


def modes(device, precisions) -> list:
    """(cuda_graph, precision) for every mode this device can run."""
    graph_options = (False, True) if device.type == "cuda" else (False,)
    return [(graph, precision) for graph in graph_options for precision in precisions]


def time_handout_loop(model_name, dataset, ns, device, steps) -> float:
    """Images/s of the handout's loop: DataLoader + PIL transforms, batch 100, fp32, Adam at 1e-3."""
    import torch
    torch.manual_seed(0)
    model = build_model(model_name).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = torch.nn.CrossEntropyLoss()
    loader = ns["reference_loader"](dataset, train=True)
    seen, start = 0, None
    for step, (images, labels) in enumerate(loader):
        if step == 1:                       # the first step (cuDNN autotuning, allocations) is not timed
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        if steps is not None and step > steps:
            break
        images, labels = images.to(device), labels.to(device)
        loss = criterion(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= 1:
            seen += len(labels)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=list(MODEL_NAMES))
    parser.add_argument("--recipes", nargs="+", choices=sorted(RECIPES), default=["original", "fast"])
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=None,
                        help="default: fp32, and bf16 where the device has it natively")
    parser.add_argument("--n-train", type=int, default=50000, help="synthetic training images (default 50000)")
    parser.add_argument("--n-test", type=int, default=1000, help="synthetic test images (default 1000)")
    parser.add_argument("--steps", type=int, default=None,
                        help="optimiser steps timed per measurement (default: one whole epoch)")
    parser.add_argument("--handout", choices=("auto", "yes", "no"), default="auto",
                        help="also time the handout's DataLoader + PIL loop (auto: on CUDA only)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: each recipe's (original 100, fast 512)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    args = parser.parse_args(argv)
    if args.handout != "no" and args.n_train < 200:
        parser.error("--n-train must be at least 200: the handout loop's first batch of 100 is not timed")

    import torch
    from autograder.checkpoints.train import train
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    name = device_name(device)
    precisions = args.precisions or (["fp32", "bf16"] if bf16_supported(device) else ["fp32"])
    if "bf16" not in precisions and args.precisions is None:
        why = ("this GPU has no bf16" if device.type == "cuda" else
               f"this CPU has neither {' nor '.join(CPU_BF16_FLAGS)}, so bf16 would be emulated")
        print(f"[{name}] bf16 not timed: {why} (--precisions fp32 bf16 times it anyway)")

    ns = notebook_namespace()
    with tempfile.TemporaryDirectory(prefix="train-speed-") as root:
        ns["write_synthetic_cifar10"](root, n_train=args.n_train, n_test=args.n_test)
        dataset_class = ns["cifar10_class"](root)
        train_set, test_set = dataset_class(root, train=True), dataset_class(root, train=False)
        print(f"[{name}] synthetic CIFAR-10: {len(train_set):,} train / {len(test_set):,} test images; "
              f"torch {torch.__version__}; "
              + (f"{args.steps} steps per measurement, s/epoch extrapolated" if args.steps else "one epoch per measurement"))

        def epoch_seconds(images_per_s: float) -> str:
            return f"{len(train_set) / images_per_s:8.2f} s/epoch of {len(train_set):,}"

        for model_name in args.models:
            if args.handout == "yes" or (args.handout == "auto" and device.type == "cuda"):
                handout_set = dataset_class(root, train=True, transform=ns["transform_train"])
                rate = time_handout_loop(model_name, handout_set, ns, device, args.steps)
                print(f"[{name}] {model_name:8s} handout  fp32 DataLoader+PIL batch 100: "
                      f"{rate:10,.0f} images/s  {epoch_seconds(rate)}", flush=True)
            for recipe_name in args.recipes:
                batch = args.batch_size or get_recipe(recipe_name).batch_size
                for graph, precision in modes(device, precisions):
                    start = time.perf_counter()
                    result = train(model_name, train_set, test_set, recipe=recipe_name, epochs=1,
                                   max_steps=args.steps, seed=0, device=str(device), out_dir=None,
                                   progress=False, cuda_graph=graph, precision=precision, batch_size=batch)
                    wall = time.perf_counter() - start
                    mode = f"{result.precision} {'cuda-graph' if result.cuda_graph else 'eager'}"
                    print(f"[{name}] {model_name:8s} {recipe_name:8s} {mode:15s} batch {batch:3d}: "
                          f"{result.images_per_s:10,.0f} images/s  {epoch_seconds(result.images_per_s)}  "
                          f"({result.steps} steps in {result.seconds:.1f} s{', graph capture included' if result.cuda_graph else ''}; "
                          f"{wall:.1f} s with set-up and test)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
