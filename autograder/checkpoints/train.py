"""python -m autograder checkpoints train: train VGG-16 or ResNet50_layer4 on CIFAR-10 and write
the handout's checkpoint file and its manifest entry.

  train()         the loop; a plain function the benchmarks call too (out_dir=None writes nothing)
  TrainStep       one optimiser step: forward (bf16 autocast if asked), loss, backward, AdamW
  CudaGraphStep   the same TrainStep captured once as a CUDA graph and replayed
  run_train()     the command: data, training, a one-line summary; errors as one sentence

The data never leaves the device: batches come from the notebook's TensorCIFAR10. A resume
file in --out keeps the state after every completed epoch (model, optimiser, step, random
generators), so running the same command again continues where it stopped.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from autograder.checkpoints.data import DataError, data_cells, evaluate, load_cifar10
from autograder.checkpoints.models import CHECKPOINT_NAMES, MODEL_NAMES, ModelSourceError, build_model
from autograder.checkpoints.recipes import Recipe, get_recipe

RESUME_FORMAT = 2      # 2: the training set is recorded (synthetic, n_train, data_fingerprint)
EVAL_BATCH_SIZE = 500


class TrainError(Exception):
    """Training cannot start or its files cannot be written (one sentence, shown to the TA)."""


@dataclass
class TrainResult:
    model_name: str
    model: object
    checkpoint: Path | None
    epochs_done: int          # completed epochs (a run cut short by max_steps ends inside one)
    steps: int                # optimiser steps in all, including those before a resume
    test_accuracy: float | None
    seconds: float            # training time of this call: steps and graph capture, not evaluation
    images_per_s: float       # training images per second of this call (the same time)
    cuda_graph: bool
    precision: str
    device: str
    resumed_from_epoch: int = 0


def resume_path(out_dir: Path, model_name: str) -> Path:
    return Path(out_dir) / f"{model_name}.resume.pt"


# ---------------------------------------------------------------- one optimiser step

class TrainStep:
    """Forward, loss, backward and optimiser step on one batch; returns the loss (a 0-d tensor).

    Called directly this is the eager step (CPU, or CUDA without a graph); CudaGraphStep
    captures this very call, so both run the same code.
    """

    def __init__(self, model, optimizer, criterion, precision: str, device):
        import torch
        self.model, self.optimizer, self.criterion = model, optimizer, criterion
        # Autocast's weight cache cannot live across a CUDA graph capture; it buys nothing here.
        self.autocast = torch.autocast(torch.device(device).type, dtype=torch.bfloat16,
                                       enabled=precision == "bf16", cache_enabled=False)

    def __call__(self, images, labels):
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast:
            logits = self.model(images)
        loss = self.criterion(logits.float(), labels)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


class CudaGraphStep:
    """A TrainStep captured as one CUDA graph: forward, backward and the optimiser's update
    replay with one launch. Batches are copied into fixed input tensors, so every batch
    must have the captured shape (the trainer drops a last partial batch)."""

    def __init__(self, step: TrainStep, images, labels, warmup_steps: int = 3):
        import torch
        self.static_images, self.static_labels = images.clone(), labels.clone()
        saved = _snapshot(step.model, step.optimizer)
        # Warm-up on a side stream (cuDNN picks its kernels, the optimiser makes its state),
        # as torch.cuda.graphs asks; the snapshot then undoes its updates, in place.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        try:
            with torch.cuda.stream(side):
                for _ in range(warmup_steps):
                    step(self.static_images, self.static_labels)
            torch.cuda.current_stream().wait_stream(side)
            step.optimizer.zero_grad(set_to_none=True)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.static_loss = step(self.static_images, self.static_labels)
        finally:
            torch.cuda.current_stream().wait_stream(side)
            _restore(step.model, step.optimizer, saved)

    def __call__(self, images, labels):
        self.static_images.copy_(images)
        self.static_labels.copy_(labels)
        self.graph.replay()
        return self.static_loss


def _capture(step: TrainStep, images, labels):
    """The step as a CUDA graph; if capturing fails (an op that cannot be captured, say),
    a warning and the eager step, with the weights as they were."""
    try:
        return CudaGraphStep(step, images, labels)
    except RuntimeError as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"warning: capturing the training step as a CUDA graph failed ({first_line}); "
              "training goes on with the same step run eagerly (slower)", file=sys.stderr)
        return step


def _snapshot(model, optimizer) -> dict:
    return {"model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "optimizer": {p: {k: v.clone() for k, v in s.items() if hasattr(v, "clone")}
                          for p, s in optimizer.state.items()}}


def _restore(model, optimizer, saved: dict) -> None:
    """Put the weights and optimiser state back, in place: the graph holds these very tensors.
    State the warm-up created from nothing goes back to Adam's initial zeros."""
    import torch
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            tensor.copy_(saved["model"][key])
        for param, state in optimizer.state.items():
            before = saved["optimizer"].get(param, {})
            for key, tensor in state.items():
                if not hasattr(tensor, "copy_"):
                    continue
                if key in before:
                    tensor.copy_(before[key])
                else:
                    tensor.zero_()


# ---------------------------------------------------------------- set-up

def _resolve_device(device):
    import torch
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainError("device cuda was asked for, but torch sees no CUDA GPU here")
    return device


def _resolve_precision(recipe: Recipe, precision, device) -> str:
    if precision is None:
        precision = recipe.precision if device.type == "cuda" else "fp32"
    if precision not in ("fp32", "bf16"):
        raise TrainError(f"precision must be fp32 or bf16, not {precision!r}")
    return precision


def _resolve_cuda_graph(cuda_graph, device) -> bool:
    if cuda_graph is None:
        return device.type == "cuda"
    if cuda_graph and device.type != "cuda":
        raise TrainError(f"a CUDA graph needs a CUDA device; this run is on {device.type}")
    return bool(cuda_graph)


def device_description(device) -> str:
    import torch
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def make_optimizer(model, recipe: Recipe, lr, capturable: bool):
    """Adam (the handout) or AdamW with decay on conv/linear weights only; ``lr`` is a tensor
    on the device that the trainer refills each step (the CUDA graph reads it from there)."""
    import torch
    if recipe.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, capturable=capturable)
    decayed = [p for p in model.parameters() if p.ndim > 1]
    plain = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decayed, "weight_decay": recipe.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, capturable=capturable)


def _check_model_name(model_name: str) -> None:
    if model_name not in MODEL_NAMES:
        raise TrainError(f"unknown model {model_name!r}: choose one of {', '.join(MODEL_NAMES)}")


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainError(f"--out {out_dir} is a file: give a folder for the checkpoint and manifest.json")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise TrainError(f"--out {out_dir} is not writable ({exc.strerror or exc})") from None


def check_out_dir_usable(out_dir: Path) -> None:
    """Refuse an --out that cannot become a folder, without creating it (the data is checked first)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainError(f"--out {out_dir} is a file: give a folder for the checkpoint and manifest.json")
    existing = next((p for p in [out_dir, *out_dir.absolute().parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise TrainError(f"--out {out_dir} is under the file {existing}: give a folder for the checkpoint")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise TrainError(f"--out {out_dir} is not writable ({existing} is not writable for this user)")


# ---------------------------------------------------------------- resume and checkpoint files

def _to_cpu(value):
    """A copy of ``value`` with every tensor a contiguous CPU tensor (torch.save then
    writes a file any machine loads, and strides from channels_last do not leak)."""
    if hasattr(value, "detach"):
        return value.detach().to("cpu").contiguous().clone()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def _atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary name, then a rename: ``path`` is the old file or the whole new one.
    Whatever stops the write (torch.save raises RuntimeError on a full disk, Ctrl-C) removes the
    temporary file; a failure becomes a TrainError, Ctrl-C is raised again."""
    import torch
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if not isinstance(exc, Exception):
            raise
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
        else:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            reason = f"{type(exc).__name__}: {lines[-1] if lines else 'no message'}; is the disk full?"
        raise TrainError(f"cannot write {path} ({reason})") from None


def _rng_state(loader, device) -> dict:
    import torch
    state = {"device_type": device.type, "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    if loader.generator is not None:
        state["loader"] = loader.generator.get_state()
    return state


def _set_rng_state(state: dict, loader, device) -> None:
    import torch
    torch.set_rng_state(state["torch"])
    if state.get("device_type") != device.type:
        return      # a CPU generator's state does not fit a CUDA one: the shuffling starts afresh
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
    if loader.generator is not None and "loader" in state:
        loader.generator.set_state(state["loader"])


def _load_optimizer_state(optimizer, saved: dict, lr) -> None:
    """Load a saved optimiser state into ``optimizer`` as this run set it up: its rate
    tensor and its capturable setting (the file may come from a CPU run, or a GPU one)."""
    import torch
    capturable = optimizer.param_groups[0]["capturable"]
    optimizer.load_state_dict(saved)
    for group in optimizer.param_groups:
        group["lr"], group["capturable"] = lr, capturable
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            if "step" in state:
                # A capturable Adam keeps its step count on the parameter's device.
                state["step"] = state["step"].to(param.device if capturable else "cpu", torch.float32)


def dataset_fingerprint(train_set) -> str:
    """A cheap fingerprint of a training set: its size, every label, and the first and last image."""
    import hashlib

    import numpy as np
    data, labels = train_set.data, np.asarray(train_set.targets, dtype=np.int64)
    digest = hashlib.sha256(f"{len(labels)} {tuple(data.shape)}".encode())
    digest.update(labels.tobytes())
    if len(labels):
        for index in (0, len(labels) - 1):
            digest.update(np.ascontiguousarray(np.asarray(data[index], dtype=np.uint8)).tobytes())
    return digest.hexdigest()


def _data_words(synthetic, n_train) -> str:
    return f"{n_train} {'synthetic' if synthetic else 'real'} training images"


def _load_resume(path: Path, *, model_name: str, recipe: Recipe, seed: int, batch_size: int,
                 data: dict) -> dict:
    import torch
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file raises many kinds
        raise TrainError(f"cannot read the resume file {path} ({type(exc).__name__}): "
                         "delete it to start this model's training over") from None
    if isinstance(state, dict) and isinstance(state.get("format"), int) and state["format"] < RESUME_FORMAT:
        raise TrainError(f"the resume file {path} was written by an older version of this trainer (format "
                         f"{state['format']}; this one reads {RESUME_FORMAT}): delete it to start over")
    wanted = {"format": RESUME_FORMAT, "model": model_name, "recipe": recipe.name, "seed": seed,
              "batch_size": batch_size}
    for key, value in wanted.items():
        if not isinstance(state, dict) or state.get(key) != value:
            found = state.get(key) if isinstance(state, dict) else None
            raise TrainError(f"the resume file {path} is for {key} {found!r}, not {value!r}: run with the same "
                             "settings to continue it, or delete it to start over")
    if any(state.get(key) != value for key, value in data.items()):
        here = _data_words(data["synthetic"], data["n_train"])
        if (state.get("synthetic"), state.get("n_train")) == (data["synthetic"], data["n_train"]):
            what = f"other images or labels than this --data's {here}"
        else:
            what = f"{_data_words(state.get('synthetic'), state.get('n_train'))}, not this --data's {here}"
        raise TrainError(f"the resume file {path} was trained on other data ({what}): use the same --data "
                         "to continue it, or delete it to start over")
    return state


def _apply_resume(path: Path, saved: dict, model, optimizer, lr, loader, device) -> tuple:
    """Load a resume file's contents into the run; (epoch, step, test accuracy). A file whose
    header fits but whose contents do not load is one sentence, not a traceback."""
    try:
        model.load_state_dict(saved["model_state"])
        _load_optimizer_state(optimizer, saved["optimizer_state"], lr)
        _set_rng_state(saved["rng"], loader, device)
        epoch, step, test_accuracy = int(saved["epoch"]), int(saved["step"]), saved["test_accuracy"]
        if epoch < 0 or step < 0 or not (test_accuracy is None or isinstance(test_accuracy, float)):
            raise ValueError("epoch, step or test accuracy out of range")
    except Exception as exc:  # noqa: BLE001 - KeyError, RuntimeError (sizes), ValueError, TypeError
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        raise TrainError(f"the resume file {path} has the right header but its contents do not load "
                         f"({type(exc).__name__}: {first_line}): delete it to start over") from None
    return epoch, step, test_accuracy


# ---------------------------------------------------------------- the loop

@dataclass
class _Plan:
    """What a run does, fixed before its first step."""
    recipe: Recipe
    device: object
    precision: str
    use_graph: bool
    channels_last: bool
    batch: int
    drop_last: bool
    steps_per_epoch: int
    total_epochs: int
    total_steps: int
    peak_lr: float

    @property
    def planned_epochs(self) -> int:
        """Epochs this run reaches, counting one cut short by max_steps (what the progress bar shows)."""
        return min(self.total_epochs, -(-self.total_steps // max(self.steps_per_epoch, 1)))

    def lr_at(self, step: int) -> float:
        return self.recipe.lr_at(step, self.steps_per_epoch, self.total_steps, self.peak_lr)


def _plan(model_name: str, recipe: Recipe, device, *, n_train: int, batch: int, batches_per_epoch: int,
          epochs, max_steps, precision, cuda_graph) -> _Plan:
    use_graph = _resolve_cuda_graph(cuda_graph, device)
    # The graph replays one batch shape, so it always drops the last partial batch.
    drop_last = recipe.drop_last or use_graph
    steps_per_epoch = n_train // batch if drop_last else batches_per_epoch
    total_epochs = recipe.epochs[model_name] if epochs is None else epochs
    total_steps = total_epochs * steps_per_epoch
    if max_steps is not None:
        total_steps = min(total_steps, max_steps)
    return _Plan(recipe=recipe, device=device, precision=_resolve_precision(recipe, precision, device),
                 use_graph=use_graph, channels_last=recipe.channels_last and device.type == "cuda", batch=batch,
                 drop_last=drop_last, steps_per_epoch=steps_per_epoch, total_epochs=total_epochs,
                 total_steps=total_steps, peak_lr=recipe.lr_for_batch(batch))


def _model_and_optimizer(model_name: str, plan: _Plan):
    """The fresh model on the device, its optimiser, and the learning-rate tensor it reads."""
    import torch
    model = build_model(model_name).to(plan.device)
    if plan.channels_last:
        model = model.to(memory_format=torch.channels_last)
    lr = torch.tensor(plan.lr_at(0), device=plan.device)
    # On CUDA the optimiser is capturable whether or not a graph is used: that is also the
    # only fast (foreach) Adam that reads its rate from a tensor.
    optimizer = make_optimizer(model, plan.recipe, lr, capturable=plan.device.type == "cuda")
    return model, optimizer, lr


def _batch_size(wanted: int, n_train: int) -> int:
    batch = min(wanted, n_train)
    if batch < 2:
        raise TrainError(f"the training set has {n_train} image(s); training needs at least 2 per batch")
    return batch


def _train_epoch(plan: _Plan, run_step, loader, lr, step: int, bar):
    """One pass over the loader (or up to the last step); returns (run_step, step, steps done, mean loss).
    The step is captured as a CUDA graph on the first batch when the plan says so."""
    import torch
    loss_sum = torch.zeros((), device=plan.device)   # summed on the device: no wait per step
    epoch_steps = 0
    for images, labels in loader:
        if step >= plan.total_steps:
            break
        if plan.drop_last and len(labels) < plan.batch:
            continue
        if plan.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if plan.use_graph and not isinstance(run_step, CudaGraphStep):
            run_step = _capture(run_step, images, labels)
            plan.use_graph = isinstance(run_step, CudaGraphStep)   # a failed capture is not retried
        lr.fill_(plan.lr_at(step))
        loss_sum += run_step(images, labels)
        step += 1
        epoch_steps += 1
        bar.update(1)
    return run_step, step, epoch_steps, loss_sum.item() / max(epoch_steps, 1)   # .item() waits for the device


def train(model_name: str, train_set, test_set, *, recipe: str = "fast", epochs: int | None = None,
          max_steps: int | None = None, seed: int = 0, device=None, out_dir: Path | None = None,
          progress: bool = True, cuda_graph: bool | None = None, precision: str | None = None,
          synthetic: bool = False, resume: bool = True, batch_size: int | None = None) -> TrainResult:
    """Train ``model_name`` on ``train_set`` (anything with ``.data`` N x 32 x 32 x 3 uint8 and
    ``.targets``), evaluating on ``test_set`` after every epoch.

    With ``out_dir`` it resumes from and keeps ``<model>.resume.pt`` there, then writes the
    handout's checkpoint file and its manifest entry; with ``out_dir=None`` it writes nothing.
    ``batch_size`` overrides the recipe's (the peak learning rate follows the square-root rule).
    """
    import torch

    _check_model_name(model_name)
    for name, value in (("epochs", epochs), ("max_steps", max_steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise TrainError(f"{name} must be a whole number of at least 1 (or None for the default), not {value!r}")
    try:
        recipe_ = get_recipe(recipe)
    except ValueError as exc:
        raise TrainError(str(exc)) from None
    device = _resolve_device(device)
    out_dir = None if out_dir is None else Path(out_dir)
    if out_dir is not None:
        _check_out_dir(out_dir)
    n_train = len(train_set.targets)
    batch = _batch_size(batch_size or recipe_.batch_size, n_train)
    loader = data_cells()["TensorCIFAR10"](train_set, train=True, device=device, batch_size=batch, seed=seed)
    plan = _plan(model_name, recipe_, device, n_train=n_train, batch=batch, batches_per_epoch=len(loader),
                 epochs=epochs, max_steps=max_steps, precision=precision, cuda_graph=cuda_graph)
    data = {"synthetic": bool(synthetic), "n_train": n_train, "data_fingerprint": dataset_fingerprint(train_set)}

    # Fixed shapes: let cuDNN pick its fastest kernels, for this call only (the setting is process-wide).
    cudnn_benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = cudnn_benchmark or plan.device.type == "cuda"
    try:
        return _train(model_name, plan, loader, train_set, test_set, seed=seed, out_dir=out_dir, data=data,
                      progress=progress, synthetic=synthetic, resume=resume)
    finally:
        torch.backends.cudnn.benchmark = cudnn_benchmark


def _train(model_name: str, plan: _Plan, loader, train_set, test_set, *, seed: int, out_dir, data: dict,
           progress: bool, synthetic: bool, resume: bool) -> TrainResult:
    import torch
    from tqdm import tqdm

    torch.manual_seed(seed)
    model, optimizer, lr = _model_and_optimizer(model_name, plan)
    epoch, step, test_accuracy = 0, 0, None
    state_file = resume_path(out_dir, model_name) if out_dir is not None else None
    if resume and state_file is not None and state_file.exists():
        saved = _load_resume(state_file, model_name=model_name, recipe=plan.recipe, seed=seed, batch_size=plan.batch,
                             data=data)
        epoch, step, test_accuracy = _apply_resume(state_file, saved, model, optimizer, lr, loader, plan.device)
        del saved
    resumed_from = epoch

    def resume_state():
        return _resume_state(model_name=model_name, plan=plan, seed=seed, epoch=epoch, step=step,
                             test_accuracy=test_accuracy, model=model, optimizer=optimizer, loader=loader, data=data)

    criterion = torch.nn.CrossEntropyLoss(label_smoothing=plan.recipe.label_smoothing)
    run_step = TrainStep(model, optimizer, criterion, plan.precision, plan.device)
    seconds, images_done = 0.0, 0
    bar = tqdm(total=plan.total_steps, initial=min(step, plan.total_steps), disable=not progress, unit="step",
               desc=f"{model_name} ({plan.recipe.name}, {plan.device.type}{', CUDA graph' if plan.use_graph else ''})",
               dynamic_ncols=True, file=sys.stderr)
    resume_writer = _ResumeWriter(resumed_from)
    # True from the end of an epoch until its state is handed to the writer: the model, the
    # optimiser and the generators are then exactly "after `epoch` epochs".
    unsaved_epoch_end = False
    try:
        while epoch < plan.total_epochs and step < plan.total_steps:
            started = time.perf_counter()
            model.train()
            run_step, step, epoch_steps, mean_loss = _train_epoch(plan, run_step, loader, lr, step, bar)
            seconds += time.perf_counter() - started
            images_done += epoch_steps * plan.batch
            completed = epoch_steps >= plan.steps_per_epoch
            shown = epoch + 1
            if completed:
                epoch += 1
                unsaved_epoch_end = state_file is not None
                test_accuracy = None       # until this epoch's is measured
            test_accuracy = evaluate(model, test_set, plan.device, EVAL_BATCH_SIZE, precision=plan.precision,
                                     channels_last=plan.channels_last)
            bar.set_postfix_str(f"epoch {shown}/{plan.planned_epochs} loss {mean_loss:.3f} "
                                f"test {test_accuracy:.1f}%")
            if not completed:
                break                   # max_steps ended the run inside this epoch
            if state_file is not None:
                resume_writer.submit(resume_state(), state_file, epoch)
                unsaved_epoch_end = False
    except KeyboardInterrupt:
        bar.close()
        if unsaved_epoch_end:
            # Ctrl-C between the end of an epoch and its hand-over: save that epoch now.
            try:
                resume_writer.submit(resume_state(), state_file, epoch)
            except (TrainError, KeyboardInterrupt):
                pass
        try:
            resume_writer.wait()
        except TrainError as exc:
            print(f"error: {exc}", file=sys.stderr)
        if state_file is not None and resume_writer.written_epoch > 0:
            print(f"stopped after {step} step(s); the same command resumes after epoch "
                  f"{resume_writer.written_epoch} ({state_file})", file=sys.stderr)
        elif state_file is not None:
            print(f"stopped after {step} step(s), before any epoch was saved: the same command starts over",
                  file=sys.stderr)
        raise
    except BaseException:
        bar.close()
        try:
            resume_writer.wait()
        except TrainError:
            pass
        raise
    bar.close()
    resume_writer.wait()
    if test_accuracy is None:
        test_accuracy = evaluate(model, test_set, plan.device, EVAL_BATCH_SIZE, precision=plan.precision,
                                 channels_last=plan.channels_last)

    device_name = device_description(plan.device)
    checkpoint = None
    if out_dir is not None:
        checkpoint = write_checkpoint(out_dir, model_name, model, recipe=plan.recipe.name, epochs=epoch, seed=seed,
                                      test_accuracy=test_accuracy, synthetic=synthetic, device=device_name,
                                      steps=step)
    return TrainResult(model_name=model_name, model=model, checkpoint=checkpoint, epochs_done=epoch, steps=step,
                       test_accuracy=test_accuracy, seconds=seconds,
                       images_per_s=images_done / seconds if seconds > 0 else 0.0,
                       cuda_graph=isinstance(run_step, CudaGraphStep), precision=plan.precision,
                       device=device_name, resumed_from_epoch=resumed_from)


def _resume_state(*, model_name: str, plan: _Plan, seed: int, epoch: int, step: int, test_accuracy: float | None,
                  model, optimizer, loader, data: dict) -> dict:
    """Everything a later run needs to continue after ``epoch``, as CPU copies."""
    return _to_cpu({"format": RESUME_FORMAT, "model": model_name, "recipe": plan.recipe.name, "seed": seed,
                    "batch_size": plan.batch, **data, "epoch": epoch, "step": step, "test_accuracy": test_accuracy,
                    "model_state": model.state_dict(), "optimizer_state": optimizer.state_dict(),
                    "rng": _rng_state(loader, plan.device)})


class _ResumeWriter:
    """Writes resume files on a background thread, so the next epoch trains while the last
    one's state (about 3x the checkpoint: weights and Adam's two moments) goes to disk.
    ``written_epoch`` is the epoch of the last file actually on disk. A failed write stops
    the run: it is raised in the trainer at the next hand-over or at the end."""

    def __init__(self, written_epoch: int = 0):
        self._thread = None
        self._error = None
        self.written_epoch = written_epoch

    def submit(self, state: dict, path: Path, epoch: int) -> None:
        self.wait()                       # one write at a time, in epoch order
        self._thread = threading.Thread(target=self._write, args=(state, path, epoch), name="resume-writer")
        self._thread.start()

    def _write(self, state: dict, path: Path, epoch: int) -> None:
        try:
            _atomic_save(state, path)
            self.written_epoch = epoch
        except TrainError as exc:
            self._error = exc
        except Exception as exc:  # noqa: BLE001 - never let the thread die with a traceback
            self._error = TrainError(f"cannot write {path} ({type(exc).__name__}: {exc})")

    def wait(self) -> None:
        """Block until the last file is written; a failed write is raised here, in the trainer."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise TrainError(f"{error}; the run stopped, as it could no longer be resumed "
                             f"(the last resume file written is after epoch {self.written_epoch})")


def write_checkpoint(out_dir: Path, model_name: str, model, *, recipe: str, epochs: int, seed: int,
                     test_accuracy: float | None, synthetic: bool, device: str, steps: int | None = None) -> Path:
    """Save the model as the handout's file (a CPU state_dict of tensors, no wrapper
    prefixes) and record it in out_dir/manifest.json."""
    from autograder.checkpoints import manifest

    state_dict = _to_cpu(dict(model.state_dict()))
    path = Path(out_dir) / CHECKPOINT_NAMES[model_name]
    _atomic_save(state_dict, path)
    entry = manifest.checkpoint_entry(path, model_name, state_dict, recipe=recipe, epochs=epochs, seed=seed,
                                      test_accuracy=test_accuracy, synthetic=synthetic, device=device, steps=steps)
    manifest.record_checkpoint(out_dir, path.name, entry)
    return path


# ---------------------------------------------------------------- the command

def run_train(args) -> int:
    """``python -m autograder checkpoints train``: exit 0 with the checkpoint written, 2 on bad input."""
    from autograder.checkpoints.manifest import ManifestError
    from autograder.checkpoints.notebook_cells import NotebookCellsError

    try:
        check_out_dir_usable(Path(args.out))     # created only once the data has loaded
        splits = load_cifar10(Path(args.data))
        if splits.synthetic:
            print("SYNTHETIC CIFAR-10: the checkpoint is a plumbing check; its test accuracy means nothing "
                  "(the manifest marks it synthetic)", file=sys.stderr)
        result = train(args.model, splits.train, splits.test, recipe=args.recipe, epochs=args.epochs,
                       max_steps=args.max_steps, seed=args.seed, out_dir=Path(args.out), synthetic=splits.synthetic,
                       cuda_graph=False if getattr(args, "no_cuda_graph", False) else None)
    except (DataError, TrainError, ModelSourceError, NotebookCellsError, ManifestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    resumed = f", resumed after epoch {result.resumed_from_epoch}" if result.resumed_from_epoch else ""
    speed = (f"{result.images_per_s:,.0f} images/s on {result.device}"
             f"{' with a CUDA graph' if result.cuda_graph else ''}, {result.precision}"
             if result.seconds > 0 else "nothing left to train (the resume file is at this epoch already; "
                                        "raise --epochs to go on)")
    print(f"{result.checkpoint}: {args.model}, recipe {args.recipe}, {result.epochs_done} epoch(s), "
          f"{result.steps} step(s){resumed}; test accuracy {result.test_accuracy:.2f}%"
          f"{' (synthetic data)' if splits.synthetic else ''}; {speed}")
    return 0
