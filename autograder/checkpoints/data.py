"""CIFAR-10 for training the checkpoints: torchvision's, a copy the TA put in place, or the
notebook's synthetic set (``KIT_SMOKE=1``), and the test accuracy of a model.

The batches themselves come from the notebook's ``TensorCIFAR10`` (run from its cells by
``notebook_cells``), so the trainer and the students' notebook share one data path.
"""
from __future__ import annotations

import functools
import hashlib
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


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _real_md5s() -> dict:
    """torchvision's checksums of the real files (a table in torchvision, not in the folder)."""
    import torchvision
    base = torchvision.datasets.CIFAR10
    return {**{name: md5 for name, md5 in base.train_list + base.test_list}, base.meta["filename"]: base.meta["md5"]}


def _inventory(root: Path) -> tuple[list, list, list]:
    """(missing, failing md5, passing md5) among the real CIFAR-10 files in root/cifar-10-batches-py."""
    folder, md5s = root / BATCHES_FOLDER, _real_md5s()
    missing, bad, good = [], [], []
    for name in BATCH_FILES:
        path = folder / name
        if not path.is_file():
            missing.append(name)
        else:
            (good if _md5(path) == md5s[name] else bad).append(name)
    return missing, bad, good


def _state(root: Path) -> str:
    """What is wrong with root, in words: the missing files and those failing the md5 check."""
    missing, bad, _ = _inventory(root)
    parts = []
    if len(missing) < len(BATCH_FILES):
        if missing:
            parts.append(f"{BATCHES_FOLDER}/ lacks {', '.join(missing)}")
        if bad:
            parts.append(f"{', '.join(bad)} fail{'s' if len(bad) == 1 else ''} torchvision's md5 check "
                         "(damaged, or not the real CIFAR-10 file)")
    archive = root / ARCHIVE_NAME
    if archive.is_file():
        import torchvision
        if _md5(archive) != torchvision.datasets.CIFAR10.tgz_md5:
            parts.append(f"{ARCHIVE_NAME} fails torchvision's md5 check (damaged or incomplete)")
    return "; ".join(parts)


def missing_message(root: Path, reason: str) -> str:
    folder = root / BATCHES_FOLDER
    state = _state(root)
    where = f"CIFAR-10 is not usable in {root} ({state})" if state else f"CIFAR-10 is not in {root}"
    return (f"{where} and could not be downloaded ({reason}): put the files "
            f"{', '.join(BATCH_FILES)} into {folder}/, or put {ARCHIVE_NAME} (from {CIFAR10_URL}) "
            f"into {root}/ and it is unpacked there, then run again")


def load_cifar10(data_dir: Path, *, smoke: bool | None = None, download: bool = True) -> CifarSplits:
    """The train and test splits of CIFAR-10 in ``data_dir``.

    Real CIFAR-10 is read (and downloaded by torchvision where the network allows) after
    torchvision's md5 check against its own table of the real files.

    ``smoke=True`` (default: ``KIT_SMOKE=1`` in the environment) means "trust synthetic sets
    in this folder": the notebook's synthetic set is read (its md5 table is a file in the same
    folder, so nothing vouches for the pickles torchvision then unpickles), and where the
    folder holds no real CIFAR-10 file it is written there first. With ``smoke=False`` a
    synthetic-format folder is refused before any of its files is opened.
    """
    root = Path(data_dir)
    if smoke is None:
        smoke = os.environ.get("KIT_SMOKE") == "1"
    _check_data_dir(root)
    cells = data_cells()
    folder = root / BATCHES_FOLDER
    if cells["is_synthetic_cifar10"](str(root)):
        if not smoke:
            raise DataError(f"{folder} holds the synthetic smoke-test CIFAR-10, not the real one: "
                            "set KIT_SMOKE=1 to train on it anyway, or use a --data folder with the real dataset")
        return _read(root, cells, synthetic=True)
    if smoke and not (root / ARCHIVE_NAME).is_file():
        missing, _failing, good = _inventory(root)
        if not good:
            # No real file there (none, or what an interrupted synthetic write left): write the synthetic set.
            leftovers = [name for name in BATCH_FILES if name not in missing]
            cells["write_synthetic_cifar10"](str(root))
            replaced = f", replacing {', '.join(leftovers)} (not real CIFAR-10 files)" if leftovers else ""
            print(f"KIT_SMOKE=1: wrote a synthetic CIFAR-10 into {folder}{replaced} "
                  "(test accuracy on it means nothing)")
            return _read(root, cells, synthetic=True)
    return _read(root, cells, synthetic=False, download=download)


def _damaged_synthetic(root: Path, problem: str) -> DataError:
    folder = root / BATCHES_FOLDER
    return DataError(f"the synthetic CIFAR-10 in {folder} is damaged ({problem}): delete the folder {folder} "
                     "and run again with KIT_SMOKE=1 to write a fresh one")


def _check_data_dir(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise DataError(f"--data {root} is a file: give the folder that holds (or is to hold) {BATCHES_FOLDER}/")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the --data folder {root} ({exc.strerror or exc})") from None


def _read(root: Path, cells: dict, *, synthetic: bool, download: bool = False) -> CifarSplits:
    try:
        dataset_class = cells["cifar10_class"](str(root))
    except (OSError, ValueError, KeyError, TypeError) as exc:   # an unreadable SYNTHETIC_DATASET.json
        raise _damaged_synthetic(root, f"its SYNTHETIC_DATASET.json cannot be read: {type(exc).__name__}") from None
    if not synthetic and not download and not (root / BATCHES_FOLDER).is_dir() and not (root / ARCHIVE_NAME).is_file():
        raise DataMissingError(missing_message(root, "downloading is off"))
    try:
        # torchvision checks every file's md5 and, with download=True, fetches or unpacks what is missing.
        train = dataset_class(root=str(root), train=True, download=download)
        test = dataset_class(root=str(root), train=False, download=download)
    except Exception as exc:  # noqa: BLE001 - urllib, tarfile, pickle and torchvision each raise their own
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if synthetic:
            raise _damaged_synthetic(root, _synthetic_problem(root, reason)) from None
        if not download and reason.startswith("Dataset not found or corrupted"):
            reason = "downloading is off"
        raise DataMissingError(missing_message(root, reason)) from None
    return CifarSplits(train=train, test=test, synthetic=synthetic, root=root)


def _synthetic_problem(root: Path, reason: str) -> str:
    """Which synthetic files are missing or fail the checksums written next to them."""
    import json
    folder = root / BATCHES_FOLDER
    try:
        md5s = json.loads((folder / "SYNTHETIC_DATASET.json").read_text())["md5"]
        missing = [name for name in BATCH_FILES if not (folder / name).is_file()]
        bad = [name for name in BATCH_FILES if name not in missing and _md5(folder / name) != md5s.get(name)]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return reason
    parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
            ([f"{', '.join(bad)} fail{'s' if len(bad) == 1 else ''} the md5 check"] if bad else [])
    return "; ".join(parts) or reason


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
