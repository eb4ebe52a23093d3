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


def _forward_one_zero_image(model: nn.Module, handles: list, input_size) -> Exception | None:
    """One zero image through ``model`` in eval mode (a batch of one: BatchNorm must
    use running statistics); removes the hooks in ``handles`` and restores the mode.
    Returns the exception that stopped the pass, or None."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_size))
    except Exception as exc:   # the report says what broke; the caller decides
        return exc
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
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
    error = _forward_one_zero_image(model, handles, input_size)
    return sizes, error


def observe_calls(model: nn.Module, probes: list[tuple[str, nn.Module]], input_size=(3, 32, 32)):
    """Like :func:`observe_sizes`, for modules given as objects under labels.

    One zero image goes through ``model``; each label gets the output size of
    its module. A module listed under several labels (one block object put into
    a stage twice) gets its first call for its first label, its second call for
    the second, and so on. Returns ``(sizes, error)`` as :func:`observe_sizes`.
    """
    calls: dict[int, list[tuple[int, ...]]] = {}
    handles = []
    for module in {id(m): m for _, m in probes}.values():
        def record(_module, _inputs, output, key=id(module)):
            if isinstance(output, torch.Tensor):
                calls.setdefault(key, []).append(tuple(output.shape[1:]))
        handles.append(module.register_forward_hook(record))
    error = _forward_one_zero_image(model, handles, input_size)
    sizes: dict[str, tuple[int, ...]] = {}
    listed: dict[int, int] = {}
    for label, module in probes:
        nth = listed.get(id(module), 0)
        listed[id(module)] = nth + 1
        if nth < len(calls.get(id(module), ())):
            sizes[label] = calls[id(module)][nth]
    return sizes, error


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def shape_diff(model_shapes: dict, checkpoint_shapes: dict):
    """Compare two ``{key: shape}`` maps, from the model's point of view.

    Returns ``(missing, unexpected, mismatched)``: keys the checkpoint has and
    the model lacks, keys the model has and the checkpoint lacks, and
    ``(key, shape in checkpoint, shape in model)`` for keys in both.
    """
    model_shapes = {k: tuple(v) for k, v in model_shapes.items()}
    checkpoint_shapes = {k: tuple(v) for k, v in checkpoint_shapes.items()}
    missing = [k for k in checkpoint_shapes if k not in model_shapes]
    unexpected = [k for k in model_shapes if k not in checkpoint_shapes]
    mismatched = [(k, checkpoint_shapes[k], model_shapes[k]) for k in checkpoint_shapes
                  if k in model_shapes and checkpoint_shapes[k] != model_shapes[k]]
    return missing, unexpected, mismatched


def key_diff(model: nn.Module, state_dict):
    """Why ``model.load_state_dict(state_dict, strict=True)`` would fail, as
    :func:`shape_diff` lists it (empty lists: it would load)."""
    return shape_diff({k: v.shape for k, v in model.state_dict().items()},
                      {k: v.shape for k, v in state_dict.items()})
