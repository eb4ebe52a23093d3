"""The two models the notebook trains, by the names the CLI uses, and their checkpoint files.

Both are built from the kit's own files by path (``vgg.py`` and the reference
``solutions/resnet50_skeleton.py``), so this works from any working directory.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

KIT_ROOT = Path(__file__).resolve().parents[2]
MODEL_NAMES = ("vgg16", "resnet50")
# The handout's file names, whatever the number of epochs actually trained.
CHECKPOINT_NAMES = {"vgg16": "vgg16_epoch250.ckpt", "resnet50": "resnet50_epoch285.ckpt"}
HANDOUT_EPOCHS = {"vgg16": 250, "resnet50": 285}
MODEL_OF_CHECKPOINT = {file: model for model, file in CHECKPOINT_NAMES.items()}
DISPLAY_NAMES = {"vgg16": "VGG-16 (vgg.vgg16())", "resnet50": "ResNet50_layer4 (the reference solution)"}


class ModelSourceError(Exception):
    """A kit file the model is built from is missing (one sentence, shown to the TA)."""


def _module_from(path: Path, name: str):
    if not path.is_file():
        raise ModelSourceError(f"{path} is missing: the kit needs it to build the model "
                               "(run this from a full checkout of the kit)")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_model(name: str, kit_root: Path = KIT_ROOT):
    """A freshly initialised model: ``vgg16`` or ``resnet50`` (ResNet50_layer4, the reference)."""
    if name == "vgg16":
        return _module_from(kit_root / "vgg.py", "kit_vgg").vgg16()
    if name == "resnet50":
        return _module_from(kit_root / "solutions" / "resnet50_skeleton.py", "kit_reference_resnet50").ResNet50_layer4()
    raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODEL_NAMES)}")
