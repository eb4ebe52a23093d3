"""checkpoints train on the CPU, on the notebook's synthetic CIFAR-10 in torchvision's format.

Runs are tiny (a few images, a batch of 4 to 12, one or two steps): they check the plumbing
(files, manifest, resume, the step function, the data errors), not a model's accuracy.
"""
from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autograder.checkpoints import manifest
from autograder.checkpoints.data import (ARCHIVE_NAME, BATCH_FILES, BATCHES_FOLDER, DataError, DataMissingError,
                                         data_cells, load_cifar10)
from autograder.checkpoints.models import CHECKPOINT_NAMES, build_model
from autograder.checkpoints.recipes import get_recipe
from autograder.checkpoints.train import (TrainError, TrainStep, _restore, _snapshot, make_optimizer, resume_path,
                                          train)
from autograder.cli import main as cli_main

KIT_ROOT = Path(__file__).resolve().parents[1]


def write_synthetic(root: Path, n_train: int, n_test: int) -> Path:
    data_cells()["write_synthetic_cifar10"](str(root), n_train=n_train, n_test=n_test, seed=1)
    return root


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return load_cifar10(write_synthetic(tmp_path_factory.mktemp("cifar"), n_train=24, n_test=8), smoke=True)


def initial_state(model_name: str, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return build_model(model_name).state_dict()


def tiny_cnn(name: str = "tiny"):
    """A stand-in for the two real models where a test is about the loop, not the model:
    a conv, BatchNorm (running statistics to carry across a resume) and a classifier."""
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10))


@pytest.fixture
def tiny_model(monkeypatch):
    """train() builds the tiny CNN under either model's name (the real ones take seconds a step here)."""
    monkeypatch.setattr("autograder.checkpoints.train.build_model", tiny_cnn)


# ---------------------------------------------------------------- checkpoint files and manifest

@pytest.mark.parametrize("model_name, recipe", [("resnet50", "fast"), ("resnet50", "original"),
                                                ("vgg16", "fast"), ("vgg16", "original")])
def test_a_short_run_writes_the_handout_file_and_its_manifest_entry(cifar, tmp_path, model_name, recipe):
    result = train(model_name, cifar.train, cifar.test, recipe=recipe, max_steps=1, batch_size=2, seed=0,
                   out_dir=tmp_path, progress=False, synthetic=True)

    assert result.checkpoint == tmp_path / CHECKPOINT_NAMES[model_name]
    assert (result.steps, result.epochs_done, result.cuda_graph, result.precision) == (1, 0, False, "fp32")
    state_dict = torch.load(result.checkpoint, weights_only=True, map_location="cpu")
    assert all(isinstance(v, torch.Tensor) and v.device.type == "cpu" for v in state_dict.values())
    assert not [k for k in state_dict if k.startswith(("module.", "_orig_mod."))]
    build_model(model_name).load_state_dict(state_dict, strict=True)
    trained = {k: v.cpu() for k, v in result.model.state_dict().items()}
    assert all(torch.equal(state_dict[k], trained[k]) for k in trained)
    # One step really trained: the weights moved away from the seed's initial ones.
    before = initial_state(model_name)
    assert any(not torch.equal(before[k], state_dict[k]) for k in before if before[k].is_floating_point())

    entry = manifest.read_manifest(tmp_path)["checkpoints"][result.checkpoint.name]
    assert entry["sha256"] == manifest.file_sha256(result.checkpoint)
    assert entry["fingerprint"] == manifest.state_dict_fingerprint(build_model(model_name).state_dict())
    assert (entry["model"], entry["recipe"], entry["seed"], entry["synthetic"]) == (model_name, recipe, 0, True)
    assert entry["test_accuracy"] == round(result.test_accuracy, 2)
    assert entry["device"] == "cpu"


def test_out_dir_none_writes_nothing(cifar, tmp_path, monkeypatch, tiny_model):
    monkeypatch.chdir(tmp_path)
    result = train("resnet50", cifar.train, cifar.test, recipe="fast", max_steps=1, batch_size=4, progress=False)
    assert result.checkpoint is None and result.steps == 1 and result.images_per_s > 0
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- resume

def test_resume_continues_after_the_last_completed_epoch(cifar, tmp_path, tiny_model):
    # 24 images, batch 12: two steps per epoch. The original recipe's rate depends on the
    # epoch alone, so 1 epoch + resume to 2 must give exactly the weights of 2 epochs at once.
    def run(out, epochs):
        return train("resnet50", cifar.train, cifar.test, recipe="original", epochs=epochs, batch_size=12,
                     out_dir=out, progress=False)

    straight = run(tmp_path / "straight", 2)
    first = run(tmp_path / "resumed", 1)
    assert (first.epochs_done, first.steps) == (1, 2)
    saved = torch.load(resume_path(tmp_path / "resumed", "resnet50"), weights_only=True, map_location="cpu")
    assert (saved["epoch"], saved["step"]) == (1, 2)

    second = run(tmp_path / "resumed", 2)
    assert (second.resumed_from_epoch, second.epochs_done, second.steps) == (1, 2, 4)
    saved = torch.load(resume_path(tmp_path / "resumed", "resnet50"), weights_only=True, map_location="cpu")
    assert (saved["epoch"], saved["step"]) == (2, 4)
    resumed = torch.load(second.checkpoint, weights_only=True)
    reference = torch.load(straight.checkpoint, weights_only=True)
    assert all(torch.equal(resumed[k], reference[k]) for k in reference), "epoch 1 was trained twice"
    assert manifest.read_manifest(tmp_path / "resumed")["checkpoints"][second.checkpoint.name]["epochs"] == 2

    # Asked again for 2 epochs: nothing left to train, the same weights are written again.
    again = run(tmp_path / "resumed", 2)
    assert (again.steps, again.epochs_done) == (4, 2)
    assert all(torch.equal(torch.load(again.checkpoint, weights_only=True)[k], reference[k]) for k in reference)


def test_a_resume_file_of_other_settings_is_refused(cifar, tmp_path, tiny_model):
    train("resnet50", cifar.train, cifar.test, recipe="original", epochs=1, batch_size=12, out_dir=tmp_path,
          progress=False)
    with pytest.raises(TrainError, match=r"resume file .* is for recipe 'original', not 'fast'.*delete it"):
        train("resnet50", cifar.train, cifar.test, recipe="fast", epochs=1, batch_size=12, out_dir=tmp_path,
              progress=False)
    resume_path(tmp_path, "resnet50").write_bytes(b"not a torch file")
    with pytest.raises(TrainError, match=r"cannot read the resume file .* delete it"):
        train("resnet50", cifar.train, cifar.test, recipe="original", epochs=2, batch_size=12, out_dir=tmp_path,
              progress=False)


def test_a_failed_resume_write_stops_the_run_with_its_sentence(cifar, tmp_path, tiny_model, monkeypatch):
    # The resume file is written on a background thread; its failure must still reach the caller.
    def disk_full(state, path):
        raise TrainError(f"cannot write {path} (No space left on device)")

    monkeypatch.setattr("autograder.checkpoints.train._atomic_save", disk_full)
    with pytest.raises(TrainError, match=r"resnet50\.resume\.pt \(No space left on device\)"):
        train("resnet50", cifar.train, cifar.test, recipe="original", epochs=1, batch_size=12, out_dir=tmp_path,
              progress=False)


# ---------------------------------------------------------------- the step function

def manual_adamw_first_step(param, grad, lr, weight_decay, eps=1e-8):
    """AdamW's first update written out: the bias-corrected moments are g and g^2."""
    return param * (1 - lr * weight_decay) - lr * grad / (grad.abs() + eps)


def test_the_eager_step_is_forward_backward_and_one_adamw_update():
    recipe = get_recipe("fast")
    torch.manual_seed(3)
    model = tiny_cnn()
    reference = copy.deepcopy(model)
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    lr = torch.tensor(2e-3)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    step = TrainStep(model, make_optimizer(model, recipe, lr, capturable=False), criterion, "fp32", "cpu")

    loss = step(images, labels)

    expected_loss = criterion(reference(images), labels)
    expected_loss.backward()
    assert torch.allclose(loss, expected_loss.detach(), rtol=1e-5, atol=1e-6)
    for (name, got), want in zip(model.named_parameters(), reference.parameters()):
        decay = recipe.weight_decay if want.ndim > 1 else 0.0
        expected = manual_adamw_first_step(want.detach(), want.grad, 2e-3, decay)
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6), name


def test_the_learning_rate_tensor_is_what_the_optimizer_reads():
    torch.manual_seed(0)
    model = tiny_cnn()
    lr = torch.tensor(1e-3)
    step = TrainStep(model, make_optimizer(model, get_recipe("original"), lr, capturable=False),
                     torch.nn.CrossEntropyLoss(), "fp32", "cpu")
    weights = {k: v.clone() for k, v in model.named_parameters()}
    lr.fill_(0.0)   # what the trainer does before every step (and before every graph replay)
    step(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]))
    assert all(torch.equal(weights[k], v) for k, v in model.named_parameters())


def test_the_graph_warm_up_is_undone_in_place():
    # CudaGraphStep warms up with real steps, then restores weights and optimiser state in
    # place (the graph holds those tensors): the next step must be a first step again.
    def fresh():
        torch.manual_seed(5)
        model = tiny_cnn()
        lr = torch.tensor(1e-3)
        return model, TrainStep(model, make_optimizer(model, get_recipe("fast"), lr, False),
                                torch.nn.CrossEntropyLoss(), "fp32", "cpu")

    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([3, 1, 2, 0])
    model, step = fresh()
    tensors = [p.data_ptr() for p in model.parameters()]
    saved = _snapshot(model, step.optimizer)
    step(images, labels)
    step(images, labels)
    _restore(model, step.optimizer, saved)
    assert [p.data_ptr() for p in model.parameters()] == tensors
    after_restore = step(images, labels)

    reference_model, reference_step = fresh()
    first = reference_step(images, labels)
    assert torch.allclose(after_restore, first, rtol=1e-5)
    for got, want in zip(model.state_dict().values(), reference_model.state_dict().values()):
        assert torch.allclose(got.float(), want.float(), rtol=1e-5, atol=1e-7)


def test_bf16_on_the_cpu_only_when_asked(cifar, tiny_model):
    default = train("vgg16", cifar.train, cifar.test, recipe="fast", max_steps=1, batch_size=4, progress=False)
    asked = train("vgg16", cifar.train, cifar.test, recipe="fast", max_steps=1, batch_size=4, progress=False,
                  precision="bf16")
    assert (default.precision, asked.precision) == ("fp32", "bf16")
    assert asked.steps == 1 and all(p.dtype == torch.float32 for p in asked.model.parameters())


def test_a_cuda_graph_on_the_cpu_is_refused(cifar):
    with pytest.raises(TrainError, match="CUDA graph needs a CUDA device"):
        train("resnet50", cifar.train, cifar.test, max_steps=1, device="cpu", cuda_graph=True, progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the graph itself cannot run on a CPU)")
def test_graph_replay_matches_the_eager_step_on_cuda(monkeypatch):
    from autograder.checkpoints.train import CudaGraphStep

    def fresh():
        torch.manual_seed(7)
        model = build_model("resnet50").cuda()
        lr = torch.tensor(1e-3, device="cuda")
        return model, TrainStep(model, make_optimizer(model, get_recipe("fast"), lr, True),
                                torch.nn.CrossEntropyLoss(), "fp32", "cuda")

    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    batches = [(torch.randn(16, 3, 32, 32, device="cuda"), torch.randint(0, 10, (16,), device="cuda"))
               for _ in range(3)]
    eager_model, eager = fresh()
    graph_model, step = fresh()
    graphed = CudaGraphStep(step, *batches[0])
    for images, labels in batches:
        assert torch.allclose(graphed(images, labels), eager(images, labels), rtol=1e-3)
    for got, want in zip(graph_model.state_dict().values(), eager_model.state_dict().values()):
        assert torch.allclose(got.float(), want.float(), rtol=1e-3, atol=1e-5)


# ---------------------------------------------------------------- recipes

def test_the_original_schedule_divides_by_3_every_20_epochs():
    original = get_recipe("original")
    assert (original.batch_size, original.peak_lr, original.optimizer) == (100, 1e-3, "adam")
    assert original.epochs == {"vgg16": 250, "resnet50": 285}
    rates = [original.lr_at(epoch * 500, 500, 285 * 500) for epoch in (0, 19, 20, 39, 40, 284)]
    assert rates == pytest.approx([1e-3, 1e-3, 1e-3 / 3, 1e-3 / 3, 1e-3 / 9, 1e-3 / 3 ** 14])


def test_the_fast_schedule_is_one_cycle():
    fast = get_recipe("fast")
    total = 1000
    rates = [fast.lr_at(step, 97, total) for step in range(total + 1)]
    peak = rates.index(max(rates))
    assert max(rates) == pytest.approx(fast.peak_lr)
    assert 0 < peak < total // 2
    assert all(a <= b for a, b in zip(rates[:peak], rates[1:peak + 1]))
    assert all(a >= b for a, b in zip(rates[peak:], rates[peak + 1:]))
    assert rates[0] < fast.peak_lr / 5 and rates[-1] == 0.0
    assert fast.peak_lr == pytest.approx(1e-3 * math.sqrt(512 / 100))
    assert fast.lr_for_batch(128) == pytest.approx(fast.peak_lr / 2)


# ---------------------------------------------------------------- data

def test_missing_cifar10_says_which_files_go_where(tmp_path):
    with pytest.raises(DataMissingError) as caught:
        load_cifar10(tmp_path / "data", smoke=False, download=False)
    message = str(caught.value)
    assert str(tmp_path / "data" / BATCHES_FOLDER) in message and ARCHIVE_NAME in message
    assert all(name in message for name in BATCH_FILES)
    assert "\n" not in message


def test_a_failed_download_says_why_and_where_to_put_the_files(tmp_path, monkeypatch):
    import torchvision

    def no_network(self):
        raise OSError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", no_network)
    with pytest.raises(DataMissingError, match=r"could not be downloaded \(\[Errno 101\] Network is unreachable\)"
                                               r".*data_batch_1.*test_batch.*batches\.meta"):
        load_cifar10(tmp_path, smoke=False)


def test_kit_smoke_writes_and_reads_the_synthetic_set(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_SMOKE", "1")
    splits = load_cifar10(tmp_path / "fresh")
    assert splits.synthetic and (tmp_path / "fresh" / BATCHES_FOLDER / "data_batch_5").is_file()
    assert splits.train.data.shape[1:] == (32, 32, 3) and len(splits.train.targets) == 500
    monkeypatch.delenv("KIT_SMOKE")
    with pytest.raises(DataError, match="synthetic smoke-test CIFAR-10.*KIT_SMOKE=1"):
        load_cifar10(tmp_path / "fresh")


def test_data_that_is_a_file_is_one_sentence(tmp_path):
    (tmp_path / "cifar.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match=r"--data .*cifar\.zip is a file"):
        load_cifar10(tmp_path / "cifar.zip")


# ---------------------------------------------------------------- the command

def test_the_command_trains_and_records(tmp_path):
    data = write_synthetic(tmp_path / "data", n_train=16, n_test=8)
    out = tmp_path / "checkpoints"
    env = {**os.environ, "KIT_SMOKE": "1"}
    done = subprocess.run([sys.executable, "-m", "autograder", "checkpoints", "train", "--model", "resnet50",
                           "--data", str(data), "--out", str(out), "--recipe", "original", "--max-steps", "1"],
                          cwd=KIT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resnet50_epoch285.ckpt: resnet50, recipe original, 1 epoch(s), 1 step(s)" in done.stdout
    assert "synthetic" in done.stdout and "Traceback" not in done.stderr
    state_dict = torch.load(out / "resnet50_epoch285.ckpt", weights_only=True, map_location="cpu")
    build_model("resnet50").load_state_dict(state_dict, strict=True)
    assert manifest.read_manifest(out)["checkpoints"]["resnet50_epoch285.ckpt"]["synthetic"] is True


@pytest.mark.parametrize("problem", ["out is a file", "data is a file", "data under a file",
                                     "synthetic without KIT_SMOKE"])
def test_the_command_reports_bad_folders_in_one_sentence(tmp_path, capsys, monkeypatch, problem):
    monkeypatch.delenv("KIT_SMOKE", raising=False)
    data = write_synthetic(tmp_path / "data", n_train=10, n_test=4)
    out = tmp_path / "out"
    if problem == "out is a file":
        out.write_text("")
    elif problem == "data is a file":
        data = tmp_path / "cifar-10-python.tar.gz"
        data.write_bytes(b"\x1f\x8b")
    elif problem == "data under a file":
        (tmp_path / "notes.txt").write_text("")
        data = tmp_path / "notes.txt" / "data"
    code = cli_main(["checkpoints", "train", "--model", "vgg16", "--data", str(data), "--out", str(out),
                     "--max-steps", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert {"out is a file": "is a file: give a folder for the checkpoint",
            "data is a file": "is a file: give the folder that holds",
            "data under a file": "cannot create the --data folder",
            "synthetic without KIT_SMOKE": "set KIT_SMOKE=1"}[problem] in err


# ---------------------------------------------------------------- interruptions, other data, failed writes

def run_original(cifar, out, epochs, **kwargs):
    """24 images at batch 12: two steps per epoch, a learning rate that depends on the epoch alone."""
    return train("resnet50", cifar.train, cifar.test, recipe="original", epochs=epochs, batch_size=12,
                 out_dir=out, progress=False, **kwargs)


def interrupt_at(monkeypatch, name: str, call: int, times: int = 1):
    """Make train.<name> raise KeyboardInterrupt on its call-th call (and the next times-1 calls)."""
    import autograder.checkpoints.train as train_module
    original, calls = getattr(train_module, name), []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if call <= len(calls) < call + times:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, name, wrapped)
    return lambda: monkeypatch.setattr(train_module, name, original)


@pytest.fixture(scope="module")
def three_epochs_straight(cifar, tmp_path_factory) -> dict:
    """The weights of 3 epochs in one run (the tiny CNN), to compare interrupted runs with."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("autograder.checkpoints.train.build_model", tiny_cnn)
        result = run_original(cifar, tmp_path_factory.mktemp("straight"), 3)
    return torch.load(result.checkpoint, weights_only=True)


@pytest.mark.parametrize("where, call, saved_epoch", [
    ("_resume_state", 1, 1),     # Ctrl-C while epoch 1's state is copied for the writer: saved in the handler
    ("_resume_state", 2, 2),     # the same at epoch 2, after epoch 1's file was written
    ("evaluate", 2, 2),          # Ctrl-C during epoch 2's test evaluation: epoch 2 is complete, saved
])
def test_ctrl_c_at_an_epoch_end_saves_that_epoch_and_says_so(cifar, tmp_path, tiny_model, monkeypatch, capsys,
                                                              where, call, saved_epoch, three_epochs_straight):
    restore = interrupt_at(monkeypatch, where, call)
    with pytest.raises(KeyboardInterrupt):
        run_original(cifar, tmp_path / "cut", 3)
    assert f"resumes after epoch {saved_epoch} " in capsys.readouterr().err
    saved = torch.load(resume_path(tmp_path / "cut", "resnet50"), weights_only=True, map_location="cpu")
    assert (saved["epoch"], saved["step"]) == (saved_epoch, 2 * saved_epoch)
    assert not [p for p in (tmp_path / "cut").iterdir() if ".tmp-" in p.name]

    restore()
    resumed = run_original(cifar, tmp_path / "cut", 3)
    assert (resumed.resumed_from_epoch, resumed.epochs_done, resumed.steps) == (saved_epoch, 3, 6)
    got = torch.load(resumed.checkpoint, weights_only=True)
    reference = three_epochs_straight
    assert all(torch.equal(got[k], reference[k]) for k in reference), "an epoch was lost or trained twice"


def test_ctrl_c_that_prevents_every_save_does_not_name_a_resume_file(cifar, tmp_path, tiny_model, monkeypatch,
                                                                     capsys):
    interrupt_at(monkeypatch, "_resume_state", 1, times=2)     # at the hand-over and again in the handler
    with pytest.raises(KeyboardInterrupt):
        run_original(cifar, tmp_path, 3)
    err = capsys.readouterr().err
    assert "resumes after" not in err and "before any epoch was saved" in err
    assert not resume_path(tmp_path, "resnet50").exists()


def test_a_resume_file_of_other_data_is_refused(cifar, tmp_path, tiny_model):
    run_original(cifar, tmp_path, 1, synthetic=True)
    other_seed = load_cifar10(write_synthetic_seeded(tmp_path / "other", n_train=24, n_test=8, seed=2), smoke=True)
    bigger = load_cifar10(write_synthetic_seeded(tmp_path / "bigger", n_train=36, n_test=8, seed=1), smoke=True)
    for data, synthetic, words in [(other_seed, True, "other images or labels than this --data's 24 synthetic"),
                                   (bigger, True, "not this --data's 36 synthetic training images"),
                                   (cifar, False, "not this --data's 24 real training images")]:
        with pytest.raises(TrainError, match=rf"trained on other data \(.*{words}.*delete it to start over") as caught:
            train("resnet50", data.train, data.test, recipe="original", epochs=2, batch_size=12, out_dir=tmp_path,
                  progress=False, synthetic=synthetic)
        assert "\n" not in str(caught.value)
    assert run_original(cifar, tmp_path, 2, synthetic=True).resumed_from_epoch == 1   # the same data goes on


def test_a_resume_file_of_an_older_format_says_so(cifar, tmp_path, tiny_model):
    run_original(cifar, tmp_path, 1)
    path = resume_path(tmp_path, "resnet50")
    state = torch.load(path, weights_only=True)
    for key in ("synthetic", "n_train", "data_fingerprint"):
        del state[key]
    torch.save({**state, "format": 1}, path)
    with pytest.raises(TrainError, match=r"written by an older version of this trainer \(format 1; this one reads 2\)"
                                         r": delete it to start over"):
        run_original(cifar, tmp_path, 2)


def write_synthetic_seeded(root: Path, n_train: int, n_test: int, seed: int) -> Path:
    data_cells()["write_synthetic_cifar10"](str(root), n_train=n_train, n_test=n_test, seed=seed)
    return root


@pytest.mark.parametrize("damage", ["no model_state", "wrong-size rng state", "wrong optimizer state",
                                    "epoch is text"])
def test_a_resume_file_with_bad_contents_is_one_sentence(cifar, tmp_path, tiny_model, damage):
    run_original(cifar, tmp_path, 1)
    path = resume_path(tmp_path, "resnet50")
    state = torch.load(path, weights_only=True)
    if damage == "no model_state":
        del state["model_state"]
    elif damage == "wrong-size rng state":
        state["rng"]["torch"] = state["rng"]["torch"][:100]
    elif damage == "wrong optimizer state":
        state["optimizer_state"]["param_groups"] = state["optimizer_state"]["param_groups"][:0]
    else:
        state["epoch"] = "one"
    torch.save(state, path)
    with pytest.raises(TrainError, match=r"resume file .* right header but its contents do not load .*"
                                         r"delete it to start over") as caught:
        run_original(cifar, tmp_path, 2)
    assert "\n" not in str(caught.value)


def failing_torch_save(monkeypatch, exception, *, fail_on=lambda path: True):
    """torch.save that writes part of the file and then fails, as on a full disk."""
    real_save = torch.save

    def save(obj, path, *args, **kwargs):
        if fail_on(Path(path)):
            Path(path).write_bytes(b"partial")
            raise exception
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def test_a_resume_write_failing_with_runtime_error_stops_the_run(cifar, tmp_path, tiny_model, monkeypatch):
    failing_torch_save(monkeypatch, RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64"),
                       fail_on=lambda path: "resume" in path.name)
    with pytest.raises(TrainError, match=r"cannot write .*resnet50\.resume\.pt \(RuntimeError: .*unexpected pos 64;"
                                         r" is the disk full\?\); the run stopped") as caught:
        run_original(cifar, tmp_path, 3)
    assert "\n" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a temporary file or a checkpoint was left"


@pytest.mark.parametrize("exception", [RuntimeError("PytorchStreamWriter failed writing file data/0"),
                                       OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failing_final_save_leaves_no_temporary_file(cifar, tmp_path, tiny_model, monkeypatch, exception):
    failing_torch_save(monkeypatch, exception, fail_on=lambda path: "ckpt" in path.name)
    expected = KeyboardInterrupt if isinstance(exception, KeyboardInterrupt) else TrainError
    with pytest.raises(expected):
        run_original(cifar, tmp_path, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resnet50.resume.pt"]


def test_the_command_turns_a_failed_save_into_one_error_and_exit_2(tmp_path, tiny_model, monkeypatch, capsys):
    monkeypatch.setenv("KIT_SMOKE", "1")
    data = write_synthetic(tmp_path / "data", n_train=16, n_test=8)
    failing_torch_save(monkeypatch, RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"))
    code = cli_main(["checkpoints", "train", "--model", "vgg16", "--data", str(data), "--out", str(tmp_path / "out"),
                     "--recipe", "original", "--max-steps", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: cannot write ") and "is the disk full?" in err[-1]
    assert not [line for line in err if "Traceback" in line]
    assert list((tmp_path / "out").iterdir()) == []


# ---------------------------------------------------------------- epochs, steps, --out

@pytest.mark.parametrize("settings", [{"epochs": 0}, {"epochs": -1}, {"max_steps": 0}, {"epochs": 1.5}])
def test_zero_or_odd_epochs_and_steps_are_refused(cifar, tiny_model, settings):
    with pytest.raises(TrainError, match=r"must be a whole number of at least 1"):
        train("vgg16", cifar.train, cifar.test, recipe="original", batch_size=12, progress=False, **settings)


def test_the_original_schedule_underflows_instead_of_overflowing():
    original = get_recipe("original")
    assert original.lr_at(12_940 * 500, 500, 13_000 * 500) >= 0.0
    assert original.lr_at(10 ** 9, 1, 10 ** 9 + 1) == 0.0


def test_a_run_cut_short_records_its_epochs_and_steps(cifar, tmp_path, tiny_model):
    result = train("vgg16", cifar.train, cifar.test, recipe="original", epochs=5, max_steps=3, batch_size=12,
                   out_dir=tmp_path, progress=False)
    assert (result.epochs_done, result.steps) == (1, 3)
    entry = manifest.read_manifest(tmp_path)["checkpoints"][result.checkpoint.name]
    assert (entry["epochs"], entry["steps"]) == (1, 3)


def test_the_progress_bar_counts_the_epochs_the_run_will_reach():
    from autograder.checkpoints.train import _plan
    recipe = get_recipe("fast")

    def planned(epochs, max_steps):
        return _plan("vgg16", recipe, torch.device("cpu"), n_train=50_000, batch=512, batches_per_epoch=98,
                     epochs=epochs, max_steps=max_steps, precision=None, cuda_graph=None).planned_epochs

    assert (planned(None, 2), planned(50, None), planned(50, 97), planned(50, 98), planned(3, 10_000)) == \
        (1, 50, 1, 2, 3)


def test_out_is_not_created_when_the_data_is_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("KIT_SMOKE", raising=False)
    import torchvision

    def no_network(self):
        raise OSError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", no_network)
    code = cli_main(["checkpoints", "train", "--model", "vgg16", "--data", str(tmp_path / "data"),
                     "--out", str(tmp_path / "out" / "ck"), "--max-steps", "1"])
    assert code == 2 and "CIFAR-10 is not in" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- data: what is wrong, and trust

def test_a_partial_or_damaged_cifar10_names_the_missing_and_failing_files(tmp_path):
    folder = tmp_path / BATCHES_FOLDER
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"not the real batch")
    (folder / "test_batch").write_bytes(b"")
    with pytest.raises(DataMissingError) as caught:
        load_cifar10(tmp_path, smoke=False, download=False)
    message = str(caught.value)
    assert "lacks data_batch_2, data_batch_3, data_batch_4, data_batch_5, batches.meta;" in message
    assert "data_batch_1, test_batch fail torchvision's md5 check" in message and "\n" not in message

    (tmp_path / ARCHIVE_NAME).write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataMissingError, match=rf"{ARCHIVE_NAME} fails torchvision's md5 check"):
        load_cifar10(tmp_path, smoke=False, download=False)


@pytest.mark.parametrize("damage", ["a batch changed", "a batch missing", "checksums unreadable"])
def test_a_damaged_synthetic_set_says_to_delete_it(tmp_path, damage):
    folder = Path(write_synthetic(tmp_path, n_train=10, n_test=4)) / BATCHES_FOLDER
    if damage == "a batch changed":
        (folder / "data_batch_2").write_bytes(b"x")
    elif damage == "a batch missing":
        (folder / "test_batch").unlink()
    else:
        (folder / "SYNTHETIC_DATASET.json").write_text("{")
    with pytest.raises(DataError) as caught:
        load_cifar10(tmp_path, smoke=True)
    message = str(caught.value)
    assert f"synthetic CIFAR-10 in {folder} is damaged" in message and f"delete the folder {folder}" in message
    assert {"a batch changed": "data_batch_2 fails the md5 check", "a batch missing": "missing test_batch",
            "checksums unreadable": "SYNTHETIC_DATASET.json cannot be read"}[damage] in message
    assert "toronto" not in message and "\n" not in message


@pytest.mark.parametrize("left", [(), ("data_batch_1",), ("data_batch_1", "data_batch_2")])
def test_kit_smoke_recovers_an_interrupted_synthetic_write(tmp_path, monkeypatch, left):
    # An interrupted write leaves the folder without SYNTHETIC_DATASET.json, and with no real file.
    folder = Path(write_synthetic(tmp_path, n_train=10, n_test=4)) / BATCHES_FOLDER
    for path in folder.iterdir():
        if path.name not in left:
            path.unlink()
    monkeypatch.setattr("torchvision.datasets.CIFAR10.download",
                        lambda self: pytest.fail("KIT_SMOKE=1 went to the network"))
    splits = load_cifar10(tmp_path, smoke=True)
    assert splits.synthetic and len(splits.train.targets) == 500


def test_a_synthetic_folder_is_never_unpickled_without_smoke(tmp_path, monkeypatch):
    # Its checksums come from the folder itself, so they vouch for nothing: a planted pickle
    # with a matching SYNTHETIC_DATASET.json must not run unless the TA asked for synthetic data.
    import pickle
    folder = Path(write_synthetic(tmp_path, n_train=10, n_test=4)) / BATCHES_FOLDER
    marker = tmp_path / "PWNED"

    class Planted:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (folder / "data_batch_1").write_bytes(pickle.dumps(Planted(), protocol=2))
    import json
    table = json.loads((folder / "SYNTHETIC_DATASET.json").read_text())
    import hashlib
    table["md5"]["data_batch_1"] = hashlib.md5((folder / "data_batch_1").read_bytes()).hexdigest()
    (folder / "SYNTHETIC_DATASET.json").write_text(json.dumps(table))
    monkeypatch.delenv("KIT_SMOKE", raising=False)
    for smoke in (False, None):
        with pytest.raises(DataError, match="synthetic smoke-test CIFAR-10"):
            load_cifar10(tmp_path, smoke=smoke)
    assert not marker.exists()
