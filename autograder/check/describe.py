"""Observe a model: output sizes per stage, parameter counts, state_dict keys.

Only observation here, no expectations: the grader's sandboxed probe imports
this module next to untrusted student code.
"""
from __future__ import annotations

import torch
import torch.nn as nn


def module_at(model: nn.Module, path: str) -> nn.Module | None:
    """``model.get_submodule`` that answers None instead of raising."""
    try:
        return model.get_submodule(path)
    except (AttributeError, IndexError, TypeError):
        return None


def observe_sizes(model: nn.Module, paths: list[str], input_size=(3, 32, 32)):
    """Run one zero image through ``model`` and record each path's output size.

    Returns ``(sizes, error)``: ``sizes`` maps each reached path to its output
    size without the batch dimension (paths never reached are absent), and
    ``error`` is ``None`` or the exception that stopped the forward pass.
    """
    sizes: dict[str, tuple[int, ...]] = {}
    handles = []
    for path in paths:
        module = module_at(model, path)
        if module is None:
            continue

        def record(_module, _inputs, output, path=path):
            if isinstance(output, torch.Tensor):
                sizes[path] = tuple(output.shape[1:])
        handles.append(module.register_forward_hook(record))
    was_training = model.training
    model.eval()   # batch of one: BatchNorm must use running statistics
    error = None
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_size))
    except Exception as exc:   # the report says what broke; the caller decides
        error = exc
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return sizes, error


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def key_diff(model: nn.Module, state_dict):
    """What ``model.load_state_dict(state_dict, strict=True)`` would complain about.

    Returns ``(missing, unexpected, mismatched)``; ``mismatched`` holds
    ``(key, shape in state_dict, shape in model)``.
    """
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    given = {k: tuple(v.shape) for k, v in state_dict.items()}
    missing = [k for k in own if k not in given]
    unexpected = [k for k in given if k not in own]
    mismatched = [(k, given[k], own[k]) for k in own if k in given and given[k] != own[k]]
    return missing, unexpected, mismatched
