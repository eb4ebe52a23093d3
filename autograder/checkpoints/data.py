"""CIFAR-10 for training the checkpoints: torchvision's, a copy the TA put in place, or the
notebook's synthetic set (``KIT_SMOKE=1``), and the test accuracy of a model.

The batches themselves come from the notebook's ``TensorCIFAR10`` (run from its cells by
``notebook_cells``), so the trainer and the students' notebook share one data path.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple

from autograder.checkpoints.notebook_cells import notebook_namespace

BATCHES_FOLDER = "cifar-10-batches-py"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
BATCH_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
               "test_batch", "batches.meta")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


class DataError(Exception):
    """--data cannot be used (one sentence, shown to the TA)."""


class DataMissingError(DataError):
    """CIFAR-10 is neither in --data nor downloadable: the message says which files go where."""


class CifarSplits(NamedTuple):
    train: object        # torchvision CIFAR10 (or the synthetic subclass): .data (N,32,32,3) uint8, .targets
    test: object
    synthetic: bool
    root: Path


@functools.lru_cache(maxsize=1)
def data_cells() -> dict:
    """The notebook's data cells, run once per process."""
    return notebook_namespace()


def missing_message(root: Path, reason: str) -> str:
    folder = root / BATCHES_FOLDER
    return (f"CIFAR-10 is not in {root} and could not be downloaded ({reason}): put the files "
            f"{', '.join(BATCH_FILES)} into {folder}/, or put {ARCHIVE_NAME} (from {CIFAR10_URL}) "
            f"into {root}/ and it is unpacked there, then run again")


def load_cifar10(data_dir: Path, *, smoke: bool | None = None, download: bool = True) -> CifarSplits:
    """The train and test splits of CIFAR-10 in ``data_dir``.

    Real CIFAR-10 is read (and downloaded by torchvision where the network allows). With
    ``smoke`` (default: ``KIT_SMOKE=1`` in the environment) and no CIFAR-10 there, the
    notebook's synthetic set is written and used instead; ``synthetic`` then says so.
    """
    root = Path(data_dir)
    if smoke is None:
        smoke = os.environ.get("KIT_SMOKE") == "1"
    _check_data_dir(root)
    cells = data_cells()
    if cells["is_synthetic_cifar10"](str(root)):
        if not smoke:
            raise DataError(f"{root / BATCHES_FOLDER} holds the synthetic smoke-test CIFAR-10, not the real one: "
                            "set KIT_SMOKE=1 to train on it anyway, or use a --data folder with the real dataset")
        return _read(root, cells, synthetic=True)
    if smoke and not (root / BATCHES_FOLDER).is_dir() and not (root / ARCHIVE_NAME).is_file():
        cells["write_synthetic_cifar10"](str(root))
        print(f"KIT_SMOKE=1: wrote a synthetic CIFAR-10 into {root / BATCHES_FOLDER} "
              "(test accuracy on it means nothing)")
        return _read(root, cells, synthetic=True)
    return _read(root, cells, synthetic=False, download=download)


def _check_data_dir(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise DataError(f"--data {root} is a file: give the folder that holds (or is to hold) {BATCHES_FOLDER}/")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the --data folder {root} ({exc.strerror or exc})") from None


def _read(root: Path, cells: dict, *, synthetic: bool, download: bool = False) -> CifarSplits:
    dataset_class = cells["cifar10_class"](str(root))
    if not synthetic and not download and not (root / BATCHES_FOLDER).is_dir() and not (root / ARCHIVE_NAME).is_file():
        raise DataMissingError(missing_message(root, "downloading is off"))
    try:
        # torchvision checks every file's md5 and, with download=True, fetches or unpacks what is missing.
        train = dataset_class(root=str(root), train=True, download=download)
        test = dataset_class(root=str(root), train=False, download=download)
    except Exception as exc:  # noqa: BLE001 - urllib, tarfile, pickle and torchvision each raise their own
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataMissingError(missing_message(root, reason)) from None
    return CifarSplits(train=train, test=test, synthetic=synthetic, root=root)


def evaluate(model, test_dataset, device, batch_size: int = 500, *, precision: str = "fp32",
             channels_last: bool = False) -> float:
    """Test accuracy in percent, on batches from the notebook's TensorCIFAR10 (no augmentation)."""
    import torch

    device = torch.device(device)
    loader = data_cells()["TensorCIFAR10"](test_dataset, train=False, device=device, batch_size=batch_size)
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        for images, labels in loader:
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            correct += (model(images).argmax(1) == labels).sum()
            seen += len(labels)
    model.train(was_training)
    return 100.0 * correct.item() / max(seen, 1)
