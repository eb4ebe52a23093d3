"""Stand-ins used while grading Q2, and the placeholders for unfilled blanks.

Q2 (the stages of ResNet50_layer4) is graded with a stand-in in place of the
student's ResidualBlock, in the student's sandbox and in the grader alike, so a
wrong Q1 cannot sink Q2. A stand-in records the arguments it was built with and
computes a cheap, shape-correct, argument-dependent function: no parameters,
and nothing about the real bottleneck in it.

The swap patches the student's class itself (its ``__init__`` and ``forward``)
for the time of the Q2 probe, so it holds however the class is reached: the
module-level name, a class attribute, a default argument, a list of classes, a
subclass. A stand-in is recognised by the marker attribute it carries, never by
its type.

``StageStandIn`` does the same for a whole stage when the grader checks how
``forward()`` wires the stages together. ``OpenValue``/``OpenBlank`` replace
the student file's blank helpers in the sandbox, so a part left blank builds
into a recognisable placeholder instead of stopping the whole model.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

ARG_NAMES = ("in_channels", "middle_channels", "out_channels", "downsample")
STAND_IN_MARK = "_grader_recorded_args"     # instance attribute: the recorded arguments
OPEN_BLANK_FIELD = "open_blank"
MAX_STAND_IN_WEIGHTS = 1 << 24   # 64 MiB of float32: far above the table's 1024 x 1024


# ---- blanks left open ----------------------------------------------------------
def blank_text(what: str, n: int = 1) -> str:
    """'Q2: layer4' -> 'layer4 is not filled in' (the words a student reads)."""
    what = re.sub(r"^Q\d[a-z]?:\s*", "", str(what))[:200]
    return f"{what} {'is' if n == 1 else 'are'} not filled in"


class OpenValue(int):
    """What ``blanks(n, ...)`` yields in the sandbox: an int (1, so that layers
    still build) that remembers which blank it stands for."""

    def __new__(cls, text: str):
        value = super().__new__(cls, 1)
        value.blank = text
        return value


class OpenBlank(nn.Module):
    """What ``blank(...)`` yields in the sandbox: a module that says which part
    is missing when it is run."""

    def __init__(self, text: str):
        super().__init__()
        self.blank = text

    def forward(self, *args, **kwargs):
        raise NotImplementedError(self.blank)


def open_blank_in(value) -> str | None:
    """The blank a value (or a tuple/list of values) stands for, if any."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    for item in items:
        if isinstance(item, OpenValue):
            return item.blank
    return None


def plain_value(value):
    """A recorded argument as JSON: numbers and bools as they are, an open blank
    as None (the caller flags it), anything else as a short repr."""
    if isinstance(value, OpenValue):
        return None
    if isinstance(value, (bool, int)):
        return bool(value) if isinstance(value, bool) else int(value)
    if isinstance(value, float) and math.isfinite(value):
        return value
    if value is None:
        return None
    return repr(value)[:60]


# ---- recording a block's arguments --------------------------------------------------
def record_arguments(args: tuple, kwargs: dict, signature: inspect.Signature | None = None) -> dict:
    """The four arguments of ResidualBlock, by the student's own signature when
    there is one (so renamed parameters and their defaults count), else by the
    handout's names."""
    named: dict = {}
    params = []
    if signature is not None:
        try:
            bound = signature.bind(None, *args, **kwargs)
        except TypeError:
            raise TypeError(f"ResidualBlock() got arguments its __init__ does not take: "
                            f"{len(args)} positional, keywords {sorted(kwargs)}") from None
        bound.apply_defaults()
        params = [p for p in list(signature.parameters.values())[1:]
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        for name, param in zip(ARG_NAMES, params):
            if param.name in bound.arguments:
                named[name] = bound.arguments[param.name]
    if not params:   # no signature, or only *args/**kwargs: the handout's order and names
        named.update(zip(ARG_NAMES, args))
        named.update(kwargs)
    recorded = {name: plain_value(value) for name, value in named.items()}
    recorded.setdefault("downsample", False)
    for value in named.values():
        if open_blank_in(value):
            recorded[OPEN_BLANK_FIELD] = open_blank_in(value)
            break
    return recorded


def recorded_args(module) -> dict | None:
    """The recorded arguments when ``module`` is a stand-in, else None."""
    value = vars(module).get(STAND_IN_MARK) if hasattr(module, "__dict__") else None
    return value if isinstance(value, dict) else None


def _number(value, default: int = 1) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _seeded_weight(key: str, shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:6], "little")
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator) / math.sqrt(max(1, fan_in))


def stand_in_output(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The stand-in's function. The weight's seed comes from the normalised
    arguments, so downsample=1 computes what downsample=True does."""
    a = vars(module)[STAND_IN_MARK]
    if a.get(OPEN_BLANK_FIELD):
        raise NotImplementedError(a[OPEN_BLANK_FIELD])
    c_in, c_mid, c_out = (_number(a.get(n)) for n in ARG_NAMES[:3])
    if not 0 < c_in * c_out <= MAX_STAND_IN_WEIGHTS:
        # A typo like 10240000 channels fails this stage, not the whole submission.
        raise ValueError(f"ResidualBlock({c_in}, {c_mid}, {c_out}, ...) has too many or too few channels")
    downsample = bool(a.get("downsample"))
    weight = vars(module).get("_grader_weight")
    if weight is None:
        weight = _seeded_weight(repr((c_in, c_mid, c_out, downsample)), (c_out, c_in, 1, 1), c_in)
        object.__setattr__(module, "_grader_weight", weight)
    return torch.tanh(F.conv2d(x, weight, stride=2 if downsample else 1))


def mark_stand_in(module: nn.Module, recorded: dict) -> None:
    object.__setattr__(module, STAND_IN_MARK, recorded)
    object.__setattr__(module, "_grader_weight", None)


class RecordingBlock(nn.Module):
    """A free-standing stand-in (the probe's warm-up and tests use it)."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        mark_stand_in(self, record_arguments(args, kwargs))

    def forward(self, x):
        return stand_in_output(self, x)


@contextlib.contextmanager
def blocks_stood_in(block_class: type, quiet=contextlib.nullcontext):
    """While active, building ``block_class`` (or a subclass) yields a stand-in.

    The class's ``__init__`` records the arguments instead of building layers;
    ``forward`` (its own and any subclass's) computes the stand-in function.
    Restored on exit, whatever happened.

    The model's ``__init__`` may read its blocks' attributes (``block.out_channels``,
    ``block.layer[2][1].weight``): each stand-in also builds the student's real
    block on the meta device (under ``quiet()``, which keeps its blanks out of
    the Q2 report) and carries its attributes and submodules unregistered, so
    they stay out of the stand-in's state_dict and modules().
    """
    original_init = block_class.__dict__.get("__init__")
    try:
        signature = inspect.signature(block_class.__init__)
    except (TypeError, ValueError):
        signature = None
    building_real = [False]

    def copy_real_block(self, args, kwargs):
        if original_init is None or building_real[0]:
            return
        building_real[0] = True
        try:
            real = nn.Module.__new__(type(self))
            with quiet(), torch.device("meta"):
                original_init(real, *args, **kwargs)
        except MemoryError:
            raise
        except BaseException:   # a Q1 mistake: Q1's checks report it
            return
        finally:
            building_real[0] = False
        own = vars(self)
        found = {k: v for k, v in vars(real).items() if not k.startswith("_") and k != "training"}
        for store in ("_parameters", "_buffers", "_modules"):
            held = vars(real).get(store)
            if isinstance(held, dict):
                found.update((k, v) for k, v in held.items() if isinstance(k, str))
        for name, value in found.items():
            if name not in own and not name.startswith("_grader"):
                try:
                    object.__setattr__(self, name, value)
                except (AttributeError, TypeError):   # a property of the student's class
                    pass

    def recording_init(self, *args, **kwargs):
        nn.Module.__init__(self)
        mark_stand_in(self, record_arguments(args, kwargs, signature))
        copy_real_block(self, args, kwargs)

    def standing_in_forward(self, *args, **kwargs):
        if recorded_args(self) is None:
            raise TypeError(f"{type(self).__name__} was not built through ResidualBlock.__init__")
        return stand_in_output(self, args[0] if args else next(iter(kwargs.values())))

    classes = [block_class] + _all_subclasses(block_class)
    saved = [(cls, name, cls.__dict__.get(name, _ABSENT))
             for cls in classes for name in ("forward",) if cls is block_class or name in cls.__dict__]
    saved.append((block_class, "__init__", original_init if original_init is not None else _ABSENT))
    try:
        block_class.__init__ = recording_init
        for cls, name, _ in saved:
            if name == "forward":
                setattr(cls, "forward", standing_in_forward)
        yield
    finally:
        for cls, name, value in saved:
            try:
                if value is _ABSENT:
                    delattr(cls, name)
                else:
                    setattr(cls, name, value)
            except (AttributeError, TypeError):
                pass


_ABSENT = object()


def _all_subclasses(cls: type) -> list[type]:
    found, todo = [], list(type.__subclasses__(cls))
    while todo:
        sub = todo.pop()
        if sub not in found:
            found.append(sub)
            todo.extend(type.__subclasses__(sub))
    return found


# ---- a whole stage --------------------------------------------------------------------
class StageStandIn(nn.Module):
    """Stands for one stage (layer1 ... fc) with the table's sizes: checks that it
    receives the size the table gives the stage's input, and returns a seeded,
    nonlinear function of it with the size of the stage's output."""

    def __init__(self, name: str, in_size: list[int], out_size: list[int]):
        super().__init__()
        self.stage_name, self.in_size, self.out_size = name, list(in_size), list(out_size)
        fan_in = self.in_size[0]
        self._weight = _seeded_weight(f"stage:{name}", (self.out_size[0], fan_in), fan_in)

    def forward(self, x):
        if not isinstance(x, torch.Tensor) or list(x.shape[1:]) != self.in_size:
            got = list(x.shape[1:]) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{self.stage_name} was given an input of size {got}; "
                             f"the table's {self.stage_name} takes {self.in_size}")
        if len(self.in_size) == 1:
            return torch.tanh(x @ self._weight.t())
        pooled = F.adaptive_avg_pool2d(x, self.out_size[1:])
        return torch.tanh(F.conv2d(pooled, self._weight[:, :, None, None]))
