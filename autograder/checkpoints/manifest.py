"""checkpoints/manifest.json: what each checkpoint file is and how it was made.

Shape (the notebook's ``manifest_accuracy`` reads the same shape)::

    {"format": 1,
     "checkpoints": {"vgg16_epoch250.ckpt": {"sha256": ..., "size": ..., "model": "vgg16",
                                              "parameters": ..., "keys": ..., "fingerprint": ...,
                                              "recipe": ..., "epochs": ..., "seed": ...,
                                              "test_accuracy": 91.4, "synthetic": false,
                                              "torch": "2.x", "device": ..., "date": ...}}}

``test_accuracy`` is a percent; ``synthetic`` is true when it was measured on the
synthetic CIFAR-10 (a plumbing check, not a model's quality).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
import tempfile
from pathlib import Path

MANIFEST_NAME = "manifest.json"
# Taken (flock) around read-merge-replace so two `train` runs into one folder keep both entries.
LOCK_NAME = ".manifest.lock"
MANIFEST_FORMAT = 1
# Fields every entry carries; verify reads sha256/size/model/fingerprint/test_accuracy/synthetic.
ENTRY_FIELDS = ("sha256", "size", "model", "parameters", "keys", "fingerprint", "recipe", "epochs",
                "seed", "test_accuracy", "synthetic", "torch", "device", "date")


class ManifestError(Exception):
    """manifest.json cannot be read or has the wrong shape (one sentence, shown to the TA)."""


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks (checkpoints are ~60 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def state_dict_fingerprint(state_dict) -> str:
    """sha256 over the sorted (key, dtype, shape) triples: equal for two state_dicts of
    the same architecture whatever their weights, different when any key or shape is."""
    lines = []
    for key in sorted(state_dict):
        tensor = state_dict[key]
        lines.append(f"{key}\t{str(tensor.dtype).removeprefix('torch.')}\t{tuple(tensor.shape)}")
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def parameter_count(state_dict) -> int:
    """Elements in floating-point tensors, skipping BatchNorm's integer ``num_batches_tracked``
    and the running statistics (buffers, not parameters)."""
    total = 0
    for key, tensor in state_dict.items():
        if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue
        total += tensor.numel()
    return total


def checkpoint_entry(path, model_name: str, state_dict, *, recipe: str, epochs: int, seed: int,
                     test_accuracy: float | None, synthetic: bool, device: str,
                     steps: int | None = None) -> dict:
    """The manifest entry for the checkpoint file at ``path`` (already written) holding ``state_dict``;
    ``steps`` (optimizer steps taken) is stored when given."""
    import torch
    path = Path(path)
    return {
        "sha256": file_sha256(path),
        "size": path.stat().st_size,
        "model": model_name,
        "parameters": parameter_count(state_dict),
        "keys": len(state_dict),
        "fingerprint": state_dict_fingerprint(state_dict),
        "recipe": recipe,
        "epochs": int(epochs),
        "seed": int(seed),
        "test_accuracy": None if test_accuracy is None else round(float(test_accuracy), 2),
        "synthetic": bool(synthetic),
        "torch": torch.__version__,
        "device": str(device),
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        **({} if steps is None else {"steps": int(steps)}),
    }


def read_manifest(directory) -> dict:
    """The manifest in ``directory`` as ``{"format": 1, "checkpoints": {...}}``; an empty one
    when there is no manifest.json. A broken file raises ManifestError (one sentence)."""
    path = Path(directory) / MANIFEST_NAME
    if not path.exists():
        return {"format": MANIFEST_FORMAT, "checkpoints": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path} cannot be read ({exc.__class__.__name__}): "
                            "fetch it again with the checkpoints, or delete it and re-record") from None
    except ValueError as exc:
        raise ManifestError(f"{path} is not valid JSON (line {getattr(exc, 'lineno', '?')}): "
                            "fetch it again with the checkpoints, or delete it and re-record") from None
    if not isinstance(data, dict) or not isinstance(data.get("checkpoints"), dict):
        raise ManifestError(f"{path} has no \"checkpoints\" object: expected "
                            '{"format": 1, "checkpoints": {"<file>.ckpt": {...}}}')
    if data.get("format", MANIFEST_FORMAT) != MANIFEST_FORMAT:
        raise ManifestError(f"{path} is format {data.get('format')!r}; this kit reads format {MANIFEST_FORMAT}")
    for name, entry in data["checkpoints"].items():
        if not isinstance(entry, dict):
            raise ManifestError(f"{path}: the entry for {name!r} is not an object")
        # Entries name files in this folder only: verify --fix-prefixes rewrites what they name.
        if name in ("", ".", "..") or "/" in name or "\\" in name:
            raise ManifestError(f"{path}: {name!r} is not a plain file name in {Path(directory)}")
    data["format"] = MANIFEST_FORMAT
    return data


def write_manifest(directory, manifest: dict) -> Path:
    """Write ``manifest`` to ``directory``/manifest.json atomically (a temp file, then rename),
    so an interrupted write never leaves half a manifest."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MANIFEST_NAME
    text = json.dumps({"format": MANIFEST_FORMAT, "checkpoints": dict(sorted(manifest["checkpoints"].items()))},
                      indent=2, sort_keys=False) + "\n"
    replace_atomically(path, text.encode("utf-8"))
    return path


def replace_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync it, then rename it over ``path``:
    a reader sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def manifest_lock(directory):
    """An exclusive flock on ``directory``/.manifest.lock, held while the manifest is
    read, merged and replaced (the lock file itself stays; it is empty)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def record_checkpoint(out_dir, entry_name: str, entry: dict) -> Path:
    """Merge ``entry`` for file ``entry_name`` into ``out_dir``/manifest.json (created if
    absent; other files' entries kept) and return the manifest's path. Holds the folder's
    lock from read to replace, so concurrent runs into one folder lose no entry."""
    with manifest_lock(out_dir):
        manifest = read_manifest(out_dir)
        manifest["checkpoints"][entry_name] = entry
        return write_manifest(out_dir, manifest)
