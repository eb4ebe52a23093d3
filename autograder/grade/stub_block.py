"""A stand-in for ResidualBlock, used while grading Q2.

Q2 (the stages of ResNet50_layer4) is graded with this block in place of the
student's ResidualBlock, in the student's sandbox and in the grader alike, so a
wrong Q1 cannot sink Q2. It records the arguments it was built with and
computes a cheap, shape-correct, argument-dependent function: no parameters,
and nothing about the real bottleneck in it.
"""
from __future__ import annotations

import hashlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

ARG_NAMES = ("in_channels", "middle_channels", "out_channels", "downsample")


def plain_value(value):
    """Numbers and bools as they are, anything else as a short repr."""
    if isinstance(value, bool) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return repr(value)[:60]


class RecordingBlock(nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        recorded = {}
        for name, value in zip(ARG_NAMES, args):
            recorded[name] = plain_value(value)
        for name, value in kwargs.items():
            recorded[name] = plain_value(value)
        recorded.setdefault("downsample", False)
        extra = len(args) - len(ARG_NAMES)
        if extra > 0:
            recorded["extra_positional"] = extra
        self.recorded_args = recorded
        self._weight = None   # a plain attribute: stays out of state_dict

    def _mixing_weight(self) -> torch.Tensor:
        if self._weight is None:
            a = self.recorded_args
            key = repr(tuple(a.get(n) for n in ARG_NAMES)).encode()
            seed = int.from_bytes(hashlib.sha256(key).digest()[:6], "little")
            generator = torch.Generator().manual_seed(seed)
            c_in, c_out = int(a["in_channels"]), int(a["out_channels"])
            self._weight = torch.randn(c_out, c_in, 1, 1, generator=generator) / math.sqrt(c_in)
        return self._weight

    def forward(self, x):
        stride = 2 if self.recorded_args.get("downsample") is True else 1
        return torch.tanh(F.conv2d(x, self._mixing_weight(), stride=stride))

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.recorded_args.items())
