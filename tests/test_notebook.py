"""The student notebook: generated from the solved one, runs headless, data path right.

Three headless runs with nbclient (``KIT_SMOKE=1``: synthetic CIFAR-10, a few steps),
each in its own temporary folder holding what a student has (the notebook, ``vgg.py``,
``resnet50_skeleton.py``, ``autograder/spec`` and ``autograder/check``):

* the solved notebook with the reference skeleton and stand-in checkpoints, to the end;
* the student notebook with the reference skeleton, no checkpoints, to the end;
* the student notebook with the untouched skeleton: it must stop in the ResNet section
  with the message naming the first unfilled blank.

The data-path tests execute the notebook's own cells (by tag), never a copy.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SOLVED_NB = ROOT / "solutions" / "CNN_Implementation.ipynb"
STUDENT_NB = ROOT / "CNN_Implementation.ipynb"
REFERENCE_SKELETON = ROOT / "solutions" / "resnet50_skeleton.py"
STUDENT_SKELETON = ROOT / "resnet50_skeleton.py"
CELL_TIMEOUT = 180   # seconds per cell; a smoke run takes about 30 s in all on 2 cores

sys.path.insert(0, str(ROOT / "benchmarks"))
from data_pipeline import notebook_namespace  # noqa: E402  (runs tagged notebook cells)

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


@pytest.fixture(scope="module")
def cells():
    torch.set_num_threads(1)
    return notebook_namespace(SOLVED_NB, ("kit:synthetic-cifar10", "kit:data-pipeline"))


# ---- the generated student notebook ---------------------------------------------------------

def test_student_notebook_is_generated_from_the_solved_one():
    from autograder.release.notebook import render_student_notebook
    expected = render_student_notebook(SOLVED_NB)
    assert STUDENT_NB.read_text(encoding="utf-8") == expected, (
        "CNN_Implementation.ipynb differs from what solutions/CNN_Implementation.ipynb generates: "
        "edit the solved notebook, then run `python -m autograder release`")


def test_student_notebook_has_no_outputs_and_no_ta_notes():
    nb = nbformat.read(STUDENT_NB, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    text = "\n".join(c.source for c in nb.cells)
    assert "TA notes" not in text and "BEGIN SOLUTION" not in text


# ---- the synthetic CIFAR-10 -----------------------------------------------------------------

def test_synthetic_cifar10_has_torchvisions_format_and_loads_through_its_class(cells, tmp_path):
    import torchvision
    cells["write_synthetic_cifar10"](str(tmp_path), n_train=50, n_test=20, seed=3)
    folder = tmp_path / "cifar-10-batches-py"
    names = {p.name for p in folder.iterdir()}
    assert {f"data_batch_{i}" for i in range(1, 6)} | {"test_batch", "batches.meta"} <= names

    written_labels = []
    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        with open(folder / name, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        assert set(entry) == {"batch_label", "labels", "data", "filenames"}
        assert entry["data"].dtype == np.uint8 and entry["data"].shape == (10, 3072)
        assert all(type(x) is int for x in entry["labels"])
        written_labels += entry["labels"]
    with open(folder / "batches.meta", "rb") as f:
        meta = pickle.load(f, encoding="latin1")
    assert meta["label_names"] == cells["CIFAR10_CLASSES"]

    # The unmodified class checks md5s against the real files' checksums: it must refuse.
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        torchvision.datasets.CIFAR10(str(tmp_path), download=False)

    # The class the notebook uses: torchvision's, with only the checksum table replaced.
    cls = cells["cifar10_class"](str(tmp_path))
    assert issubclass(cls, torchvision.datasets.CIFAR10)
    assert {k for k in vars(cls) if not k.startswith("__")} == {"train_list", "test_list", "meta"}
    train = cls(str(tmp_path), train=True, download=False)
    test = cls(str(tmp_path), train=False, download=False)
    assert train.data.shape == (50, 32, 32, 3) and train.data.dtype == np.uint8
    assert test.data.shape == (20, 32, 32, 3)
    assert train.targets == written_labels
    assert sorted(set(train.targets)) == list(range(10))
    assert train.classes == ["airplane", "automobile", "bird", "cat", "deer",
                             "dog", "frog", "horse", "ship", "truck"]
    image, label = cls(str(tmp_path), train=True, transform=cells["transform_train"])[0]
    assert tuple(image.shape) == (3, 32, 32) and label == written_labels[0]
    # A real dataset folder (no manifest) keeps torchvision's own class.
    assert cells["cifar10_class"](str(tmp_path / "elsewhere")) is torchvision.datasets.CIFAR10


# ---- the fast data path ---------------------------------------------------------------------

class _Images:
    """A stand-in dataset: pixel (r, c) of image k holds (r + 1, c + 1, k) -- padding reads 0."""

    def __init__(self, n):
        rows, cols = np.meshgrid(np.arange(1, 33), np.arange(1, 33), indexing="ij")
        self.data = np.zeros((n, 32, 32, 3), dtype=np.uint8)
        self.data[..., 0], self.data[..., 1] = rows, cols
        self.data[..., 2] = np.arange(n)[:, None, None]
        self.targets = [k % 10 for k in range(n)]


def _to_uint8(batch, cells):
    mean = torch.tensor(cells["CIFAR10_MEAN"]).view(1, 3, 1, 1)
    std = torch.tensor(cells["CIFAR10_STD"]).view(1, 3, 1, 1)
    return (batch * std + mean).mul(255).round().to(torch.uint8)


def test_normalization_is_the_handouts_exactly(cells):
    import torchvision.transforms as T
    from PIL import Image
    assert cells["CIFAR10_MEAN"] == (0.4914, 0.4822, 0.4465)
    assert cells["CIFAR10_STD"] == (0.2023, 0.1994, 0.2010)
    names = [type(t).__name__ for t in cells["transform_train"].transforms]
    assert names == ["RandomCrop", "RandomHorizontalFlip", "ToTensor", "Normalize"]
    crop, flip, _, norm = cells["transform_train"].transforms
    assert crop.size == (32, 32) and crop.padding == 4 and crop.fill == 0 and flip.p == 0.5
    assert tuple(norm.mean) == cells["CIFAR10_MEAN"] and tuple(norm.std) == cells["CIFAR10_STD"]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    ours = cells["normalize_batch"](torch.from_numpy(images).permute(0, 3, 1, 2))
    theirs = torch.stack([cells["transform_test"](Image.fromarray(im)) for im in images])
    assert torch.equal(ours, theirs)
    assert isinstance(cells["transform_test"].transforms[1], T.Normalize)


def test_crops_and_flips_have_the_handouts_distribution(cells):
    import torchvision.transforms.functional as TF
    from PIL import Image
    n, epochs = 100, 100
    dataset = _Images(n)
    loader = cells["TensorCIFAR10"](dataset, train=True, device="cpu", seed=1234)
    counts = np.zeros((9, 9), dtype=int)
    flips, checked = 0, 0
    for _ in range(epochs):
        seen = []
        for batch, labels in loader:
            raw = _to_uint8(batch, cells)
            for image, label in zip(raw, labels):
                k = int(image[2].max())
                seen.append(k)
                assert label.item() == dataset.targets[k]
                top = int(image[0, 16].max()) - 13               # output row 16 is never padding
                flipped = int(image[1, 16, 17]) < int(image[1, 16, 16])
                left = int(image[1, 16, 16]) - (12 if flipped else 13)
                assert 0 <= top <= 8 and 0 <= left <= 8
                counts[top, left] += 1
                flips += flipped
                if checked < 60:   # pixel for pixel what the handout's transforms give
                    pil = TF.crop(TF.pad(Image.fromarray(dataset.data[k]), 4, fill=0), top, left, 32, 32)
                    if flipped:
                        pil = TF.hflip(pil)
                    assert torch.equal(image, TF.pil_to_tensor(pil)), (top, left, flipped)
                    checked += 1
        assert sorted(seen) == list(range(n))                # each epoch: a permutation
    draws = n * epochs
    # Uniform over the 9 x 9 offsets: chi-square with 80 degrees of freedom (p < 1e-6 above 150).
    expected = draws / 81
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert counts.min() > 0 and chi2 < 150, (chi2, counts)
    assert abs(flips / draws - 0.5) < 0.02                   # 5 sigma is 0.025
    # Offsets 0 and 8 reach into the zero padding: four rows (or columns) of zeros.
    assert counts[0].sum() > 0 and counts[:, 8].sum() > 0


def test_a_last_training_batch_of_one_is_dropped(cells):
    dataset = _Images(201)
    train = cells["TensorCIFAR10"](dataset, train=True, device="cpu", seed=0)
    test = cells["TensorCIFAR10"](dataset, train=False, device="cpu")
    assert [len(y) for _, y in train] == [100, 100] and len(train) == 2
    assert [len(y) for _, y in test] == [100, 100, 1] and len(test) == 3
    subset = cells["TensorCIFAR10"](dataset, train=True, device="cpu", subset=150, seed=0)
    assert [len(y) for _, y in subset] == [100, 50]


# ---- headless runs ----------------------------------------------------------------------------

def _public_checks() -> list[tuple[str, bytes]]:
    """The autograder/ files of the student zip, as the release builds them: the public
    table and the checks, never the full spec (the answer key). The runs below prove
    that the notebook needs nothing else."""
    from autograder.release.bundle import bundle_contents
    return [(name, data) for name, data in bundle_contents() if name.startswith("autograder/")]


def _kit_folder(tmp_path: Path, notebook: Path, skeleton: Path | str) -> Path:
    """A student's folder: the notebook, vgg.py, a skeleton (a path, or its text) and the public checks."""
    work = tmp_path / "kit"
    work.mkdir(parents=True)
    shutil.copy(notebook, work / "CNN_Implementation.ipynb")
    shutil.copy(ROOT / "vgg.py", work / "vgg.py")
    if isinstance(skeleton, Path):
        shutil.copy(skeleton, work / "resnet50_skeleton.py")
    else:
        (work / "resnet50_skeleton.py").write_text(skeleton)
    for name, data in _public_checks():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(data)
    assert not (work / "autograder" / "spec" / "resnet50_layer4.toml").exists()
    return work


def _execute(work: Path, monkeypatch, nbgrader=False):
    monkeypatch.setenv("KIT_SMOKE", "1")
    monkeypatch.setenv("CIFAR10_ROOT", str(work / "data"))
    monkeypatch.setenv("KIT_NUM_THREADS", os.environ.get("KIT_NUM_THREADS", "2"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if nbgrader:
        monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    else:
        monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("KIT_CHECKPOINT_DIR", raising=False)
    nb = nbformat.read(work / "CNN_Implementation.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(work)}})
    error = None
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        error = err
    nbformat.write(nb, work / "executed.ipynb")   # kept in tmp_path for a look after a failure
    return nb, error


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
    return "".join(parts)


def _tagged(nb, tag):
    return next(c for c in nb.cells if tag in c.metadata.get("tags", []))


REPORT_FIGURES = ["cifar10_samples", "loss_vgg16", "loss_resnet50", "loss_curves",
                  "resnet50_confusion_matrix", "resnet50_per_class_accuracy", "resnet50_predictions"]


def _assert_report_files(work: Path):
    results = work / "results"
    for name in REPORT_FIGURES:
        for ext in ("png", "pdf"):
            assert (results / f"{name}.{ext}").stat().st_size > 0, f"{name}.{ext}"
    table = (results / "results.md").read_text()
    assert "| VGG-16 |" in table and "| ResNet-50 |" in table
    with zipfile.ZipFile(work / "submission.zip") as zf:
        assert zf.namelist() == ["resnet50_skeleton.py"]


def test_solved_notebook_runs_to_the_end_with_checkpoints(tmp_path, monkeypatch):
    work = _kit_folder(tmp_path, SOLVED_NB, REFERENCE_SKELETON)
    # Stand-in checkpoints (random weights with the right keys) exercise the loading path.
    sys.path.insert(0, str(ROOT))
    try:
        from vgg import vgg16
        from solutions.resnet50_skeleton import ResNet50_layer4
    finally:
        sys.path.remove(str(ROOT))
    (work / "checkpoints").mkdir()
    torch.save(vgg16().state_dict(), work / "checkpoints" / "vgg16_epoch250.ckpt")
    torch.save(ResNet50_layer4().state_dict(), work / "resnet50_epoch285.ckpt")   # next to the notebook
    nb, error = _execute(work, monkeypatch)
    assert error is None, error
    assert "✓ vgg16_epoch250.ckpt" in _text(_tagged(nb, "kit:checkpoints"))
    assert "loaded" in _text(_tagged(nb, "kit:vgg-load"))
    assert "loaded" in _text(_tagged(nb, "kit:resnet-load"))
    sanity = _text(_tagged(nb, "kit:resnet-sanity"))
    assert "14,750,730" in sanity and "✗" not in sanity and "all match the checkpoint" in sanity
    _assert_report_files(work)
    assert "RANDOM WEIGHTS" not in (work / "results" / "results.md").read_text()


def test_student_notebook_with_reference_skeleton_runs_to_the_end(tmp_path, monkeypatch):
    work = _kit_folder(tmp_path, STUDENT_NB, REFERENCE_SKELETON)
    nb, error = _execute(work, monkeypatch)
    assert error is None, error
    assert "MISSING vgg16_epoch250.ckpt" in _text(_tagged(nb, "kit:checkpoints"))
    assert "MISSING resnet50_epoch285.ckpt" in _text(_tagged(nb, "kit:checkpoints"))
    assert "RANDOM WEIGHTS" in _text(_tagged(nb, "kit:vgg-load"))
    assert "SYNTHETIC CIFAR-10" in _text(_tagged(nb, "kit:data"))
    _assert_report_files(work)
    assert "RANDOM WEIGHTS" in (work / "results" / "results.md").read_text()


def test_under_nbgrader_the_training_cells_do_nothing(tmp_path, monkeypatch):
    work = _kit_folder(tmp_path, STUDENT_NB, REFERENCE_SKELETON)
    nb, error = _execute(work, monkeypatch, nbgrader=True)
    assert error is None, error
    for tag in ("kit:vgg-train", "kit:resnet-train"):
        assert "training skipped" in _text(_tagged(nb, tag))
    assert not list((work / "results").glob("loss_*"))
    assert "n/a" in (work / "results" / "results.md").read_text()


def _first_blank_message(code: str) -> str:
    """The NotImplementedError message of ``code`` run against the committed student skeleton."""
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode != 0, "the committed student skeleton runs: no blanks left?"
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("NotImplementedError: "), run.stderr
    return last[len("NotImplementedError: "):]


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _stopped_at(nb, tag):
    """The one cell that failed is ``tag``'s; every cell before it ran and none after it."""
    code_cells = _code_cells(nb)
    failed = [c for c in code_cells if any(o.output_type == "error" for o in c.get("outputs", []))]
    assert len(failed) == 1 and tag in failed[0].metadata["tags"], [c.metadata.get("tags") for c in failed]
    position = code_cells.index(failed[0])
    assert all(c.execution_count is not None for c in code_cells[:position])
    assert all(c.execution_count is None for c in code_cells[position + 1:])
    return failed[0]


def _one_sentence_error(cell) -> str:
    """The error a check cell stopped with: one line starting with ✗, no stack trace."""
    error = next(o for o in cell.outputs if o.output_type == "error")
    assert error.ename == "FixBeforeTraining"
    assert len(error.traceback) == 1 and error.traceback[0].startswith("✗ "), error.traceback
    return error.traceback[0]


# The skeleton a student has, filled in step by step (from the reference solution's text).
SOLVED_SOURCE = REFERENCE_SKELETON.read_text()
Q1_DOWNSAMPLE = ("conv1x1(in_channels, middle_channels, 2, 0),\n"
                 "                conv3x3(middle_channels, middle_channels, 1, 1),")
LAYER3_DOWNSAMPLE_LAST = ("            ResidualBlock(256, 128, 512, False),\n"
                          "            ResidualBlock(512, 128, 512, False),\n"
                          "            ResidualBlock(512, 128, 512, False),\n"
                          "            ResidualBlock(512, 128, 512, True),\n")


def _mutated(old: str, new: str, source: str = SOLVED_SOURCE) -> str:
    assert source.count(old) == 1, old
    return source.replace(old, new)


def stride_on_3x3(source: str = SOLVED_SOURCE) -> str:
    """Q1 with the stride 2 on the 3x3 conv instead of the first 1x1: every shape stays right."""
    return _mutated(Q1_DOWNSAMPLE, "conv1x1(in_channels, middle_channels, 1, 0),\n"
                    "                conv3x3(middle_channels, middle_channels, 2, 1),", source)


def layer3_downsample_first(source: str = SOLVED_SOURCE) -> str:
    """layer3 with its downsampling block first (as in torchvision): the stage output stays right."""
    return _mutated(LAYER3_DOWNSAMPLE_LAST, "            ResidualBlock(256, 128, 512, True),\n"
                    "            ResidualBlock(512, 128, 512, False),\n"
                    "            ResidualBlock(512, 128, 512, False),\n"
                    "            ResidualBlock(512, 128, 512, False),\n", source)


def q1_filled_only() -> str:
    """The untouched student skeleton with only Question 1 written in."""
    source = STUDENT_SKELETON.read_text()
    for what, line in (("the downsample branch", "conv1x1(in_channels, middle_channels, 2, 0), "
                        "conv3x3(middle_channels, middle_channels, 1, 1), conv1x1(middle_channels, out_channels, 1, 0),"),
                       ("the plain (downsample=False) branch", "conv1x1(in_channels, middle_channels, 1, 0), "
                        "conv3x3(middle_channels, middle_channels, 1, 1), conv1x1(middle_channels, out_channels, 1, 0),")):
        source = _mutated(f'blank("Q1: {what} of ResidualBlock"),', line, source)
    return source


def _set_train_anyway(work: Path):
    nb = nbformat.read(work / "CNN_Implementation.ipynb", as_version=4)
    setup = _tagged(nb, "kit:setup")
    assert setup.source.count("TRAIN_ANYWAY = False") == 1
    setup.source = setup.source.replace("TRAIN_ANYWAY = False", "TRAIN_ANYWAY = True")
    nbformat.write(nb, work / "CNN_Implementation.ipynb")


def test_student_notebook_with_untouched_skeleton_stops_at_question_1(tmp_path, monkeypatch):
    expected = _first_blank_message("import resnet50_skeleton as m\nm.ResidualBlock(16, 8, 32, True)\n")
    assert expected.startswith("Q1: the downsample branch")
    work = _kit_folder(tmp_path, STUDENT_NB, STUDENT_SKELETON)
    nb, error = _execute(work, monkeypatch)
    assert error is not None, "the notebook ran to the end with an unfinished skeleton"
    failed = _stopped_at(nb, "kit:q1-check")
    sentence = _one_sentence_error(failed)
    assert expected in sentence and "not finished" in sentence
    assert "Q2" not in sentence       # Question 1 is checked before Question 2 is even built


def test_with_question_1_filled_in_q1_passes_and_the_build_names_the_first_q2_blank(tmp_path, monkeypatch):
    expected = _first_blank_message("import resnet50_skeleton as m\nm.ResNet50_layer4()\n")
    work = _kit_folder(tmp_path, STUDENT_NB, q1_filled_only())
    nb, error = _execute(work, monkeypatch)
    assert error is not None
    q1 = _text(_tagged(nb, "kit:q1-check"))
    assert "✓ ResidualBlock matches the table in both modes" in q1 and "✗" not in q1
    failed = _stopped_at(nb, "kit:resnet-build")
    sentence = _one_sentence_error(failed)
    assert expected in sentence and "not finished" in sentence


def test_stride_on_the_3x3_stops_at_the_q1_check_before_training(tmp_path, monkeypatch):
    work = _kit_folder(tmp_path, STUDENT_NB, stride_on_3x3())
    nb, error = _execute(work, monkeypatch)
    assert error is not None, "a stride on the 3x3 conv went on to training"
    failed = _stopped_at(nb, "kit:q1-check")
    report = _text(failed)
    first_unit = next(line for line in report.splitlines() if line.strip().startswith("conv 1 of layer"))
    assert first_unit.rstrip().endswith("✗") and "8 x 4 x 4" in first_unit and "8 x 8 x 8" in first_unit
    sentence = _one_sentence_error(failed)
    assert "does not match the slide table in 1 place" in sentence and "TRAIN_ANYWAY = True" in sentence
    assert _tagged(nb, "kit:resnet-train").execution_count is None


def test_layer3_with_its_downsampling_block_first_stops_at_the_sanity_check(tmp_path, monkeypatch):
    work = _kit_folder(tmp_path, STUDENT_NB, layer3_downsample_first())
    nb, error = _execute(work, monkeypatch)
    assert error is not None, "layer3 in the wrong order went on to training"
    assert "✗" not in _text(_tagged(nb, "kit:q1-check"))
    failed = _stopped_at(nb, "kit:resnet-sanity")
    rows = {line.split()[0]: line for line in _text(failed).splitlines() if line.startswith("  layer3[")}
    assert rows["layer3[0]"].rstrip().endswith("✗") and rows["layer3[3]"].rstrip().endswith("✓")
    stage = next(line for line in _text(failed).splitlines() if line.startswith("layer3 "))
    assert stage.rstrip().endswith("✓")      # the stage's output size alone cannot see it
    sentence = _one_sentence_error(failed)
    assert "layer3[0]" in sentence and "TRAIN_ANYWAY = True" in sentence
    assert "downsample" not in sentence      # sizes only: no argument given away
    assert _tagged(nb, "kit:resnet-train").execution_count is None


def test_train_anyway_trains_both_mistakes_and_the_submission_counts_them(tmp_path, monkeypatch):
    work = _kit_folder(tmp_path, STUDENT_NB, layer3_downsample_first(stride_on_3x3()))
    _set_train_anyway(work)
    nb, error = _execute(work, monkeypatch)
    assert error is None, error
    for tag in ("kit:q1-check", "kit:resnet-sanity"):
        assert "TRAIN_ANYWAY is True, so the notebook goes on" in _text(_tagged(nb, tag))
    assert "ResNet-50: test accuracy after" in _text(_tagged(nb, "kit:resnet-train"))
    submission = _text(_tagged(nb, "kit:submission"))
    assert "Your model does not match the table in 4 places" in submission   # 1 in Q1, 3 in layer3
    # layer3[0] halves the map too early: layer3[1] and layer3[2] only follow from it
    assert "; start with the first, downsample=" in submission
    assert "2 are places to fix, the other 2 follow from those" in submission
    assert "layer3[1] gives 512 x 2 x 2 where the table implies 512 x 4 x 4  (follows from a wrong size before it)" in submission
    hand_in = next(line for line in submission.splitlines() if line.startswith("HAND IN:"))
    assert hand_in.endswith("resnet50_skeleton.py (this file itself, name unchanged) and your 1-page report (PDF).")
    _assert_report_files(work)


# ---- what the checkpoint should give, the report's numbers and figures ---------------------------

def _cell_source(tag: str) -> str:
    return _tagged(nbformat.read(SOLVED_NB, as_version=4), tag).source


def _train_helpers(tmp_path, **names) -> dict:
    """The kit:train-helpers cell run in a namespace holding what the cells before it define."""
    import json as json_module

    from tqdm import tqdm
    namespace = {"nn": torch.nn, "torch": torch, "np": np, "json": json_module, "Path": Path, "time": __import__("time"),
                 "CHECKPOINT_PATHS": {}, "SEARCH_DIRS": [tmp_path, tmp_path / "checkpoints"],
                 "SMOKE": False, "UNDER_NBGRADER": False, "RESULTS": {},
                 "tqdm": lambda iterable, **kwargs: tqdm(iterable, disable=True, **kwargs), **names}
    exec(compile(_cell_source("kit:train-helpers"), "kit:train-helpers", "exec"), namespace)
    return namespace


def test_expected_accuracy_comes_from_the_manifest_or_the_handout(tmp_path):
    cells = _train_helpers(tmp_path)
    assert cells["expected_accuracy"]("resnet50_epoch285.ckpt") == (80.0, "the handout")
    value, why = cells["expected_accuracy"]("vgg16_epoch250.ckpt")
    assert value is None and "manifest.json" in why
    (tmp_path / "checkpoints").mkdir()
    manifest = tmp_path / "checkpoints" / "manifest.json"
    manifest.write_text("{not json")   # a broken manifest is no error
    assert cells["expected_accuracy"]("vgg16_epoch250.ckpt")[0] is None
    manifest.write_text(json.dumps({"vgg16_epoch250.ckpt": {"test_accuracy": 91.46},
                                    "resnet50_epoch285.ckpt": 79.1}))
    assert cells["expected_accuracy"]("vgg16_epoch250.ckpt") == (91.46, "checkpoints/manifest.json")
    assert cells["expected_accuracy"]("resnet50_epoch285.ckpt")[0] == 79.1
    manifest.write_text(json.dumps({"checkpoints": {"vgg16_epoch250.ckpt": {"test_acc": 90.0}}}))
    assert cells["expected_accuracy"]("vgg16_epoch250.ckpt")[0] == 90.0


def test_accuracy_far_below_the_checkpoints_gets_a_warning(tmp_path):
    warning = _train_helpers(tmp_path)["accuracy_warning"]
    assert "far below the about 80%" in warning("ResNet-50", 31.0, 80.0)
    assert warning("ResNet-50", 79.2, 80.0) is None and warning("ResNet-50", 72.5, 80.0) is None
    assert warning("VGG-16", 10.0, None) is None


def test_run_epochs_prints_the_expected_accuracy_and_warns_before_training(tmp_path, capsys):
    torch.manual_seed(0)
    batches = [(torch.randn(20, 8), torch.zeros(20, dtype=torch.long))]   # a model that never says class 0
    model = torch.nn.Linear(8, 10)
    with torch.no_grad():
        model.bias[0] = -100.0
    cells = _train_helpers(tmp_path, train_loader=batches, test_loader=batches,
                           RESULTS={"ResNet-50": {"checkpoint": True}})
    cells["run_epochs"](model, "ResNet-50")
    out = capsys.readouterr().out
    assert "ResNet-50: the checkpoint should give about 80% test accuracy (the handout)" in out
    assert "ResNet-50 scores 0.00% before training, far below the about 80%" in out
    assert out.index("should give") < out.index("far below") < out.index("after 1 epoch")


def test_results_json_rounds_accuracies_for_the_report(tmp_path):
    namespace = {"RESULTS": {"VGG-16": {"checkpoint": True, "before": 7.999999821186066, "after": 91.23456},
                             "ResNet-50": {"checkpoint": False, "before": 10.0, "after": 33.333333,
                                           "per_class": {"cat": 66.66666666, "dog": 0.0}, "losses": []}},
                 "SMOKE": False, "TRAIN_SUBSET": None, "EVAL_SUBSET": None, "num_epochs": 1,
                 "learning_rate": 0.001, "BATCH_SIZE": 100, "device": torch.device("cpu"),
                 "RESULTS_DIR": tmp_path, "np": np, "json": json, "save_figure": lambda fig, name: None}
    exec(compile(_cell_source("kit:results"), "kit:results", "exec"), namespace)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["VGG-16"] == {"checkpoint": True, "before": 8.0, "after": 91.23}
    assert saved["ResNet-50"]["after"] == 33.33 and saved["ResNet-50"]["per_class"] == {"cat": 66.67, "dog": 0.0}
    assert "7.99999" not in (tmp_path / "results.json").read_text()


def test_prediction_titles_clear_the_images_above_them(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figures = {}
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    labels = torch.arange(100) % 10
    namespace = {"RESULTS": {"ResNet-50": {"predictions": (labels + 1) % 10, "labels": labels}},
                 "classes": classes, "torch": torch, "plt": plt,
                 "test_dataset": type("D", (), {"data": np.zeros((100, 32, 32, 3), dtype=np.uint8)})(),
                 "save_figure": lambda fig, name: figures.__setitem__(name, fig)}
    monkeypatch.setattr(plt, "show", lambda: None)
    exec(compile(_cell_source("kit:resnet-analysis"), "kit:resnet-analysis", "exec"), namespace)
    fig = figures["resnet50_predictions"]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = np.array(fig.axes[:12]).reshape(2, 6)
    lowest_image_of_row_1 = min(ax.get_window_extent(renderer).y0 for ax in axes[0])
    for ax in axes[1]:
        title = ax.title.get_window_extent(renderer)
        assert title.y1 <= lowest_image_of_row_1, (title, lowest_image_of_row_1)
    suptitle = fig._suptitle.get_window_extent(renderer)
    assert all(suptitle.y0 >= ax.title.get_window_extent(renderer).y1 for ax in axes[0])
    plt.close("all")
