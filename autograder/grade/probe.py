"""The job that runs inside the sandbox, next to the student's code.

It imports ``resnet50_skeleton.py`` from its working directory, builds what the
grader asks for, and reports *observations only* -- module attributes, state_dict
keys and shapes, output sizes, output values -- as JSON. It holds no expected
value and never decides a score: the grading process compares, and it validates
every field of this report before using it (see ``observations.py``).

Request (from the trusted parent, ``torch.save`` bytes, tensors only):
  q1: list of {name, args, input, state_dict}   -- ResidualBlock cases
  q2: {state_dict, inputs: {stage: tensor}}      -- stem/fc weights, stage inputs
"""
from __future__ import annotations

import base64
import importlib.util
import inspect
import io
import json
import sys
import traceback

import torch
import torch.nn as nn

from autograder.check.describe import count_parameters, observe_sizes
from autograder.grade.stub_block import RecordingBlock, plain_value

STUDENT_FILE = "resnet50_skeleton.py"
REPORT_VERSION = 1
BLANK_HELPERS = {"blank", "blanks", "blank_default", "reject_blank_defaults"}
MODEL_PATHS = ["layer1.0", "layer1.1", "layer1.2", "layer1.3", "layer1", "layer2",
               "layer3", "layer4", "avgpool", "fc"]


# ---- encoding ------------------------------------------------------------------
def encode_tensor(t: torch.Tensor) -> dict:
    t = t.detach().to(torch.float32).contiguous().cpu()
    return {"shape": list(t.shape), "b64": base64.b64encode(t.numpy().tobytes()).decode()}


def describe_error(exc: BaseException) -> dict:
    """Type, message and the last line of the student's file in the traceback."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        # The blank helpers raise on behalf of the line that calls them.
        if frame.filename.endswith(STUDENT_FILE) and frame.name not in BLANK_HELPERS:
            line = frame.lineno
    if isinstance(exc, SyntaxError) and exc.filename and exc.filename.endswith(STUDENT_FILE):
        line = exc.lineno
    message = str(exc) if not isinstance(exc, SyntaxError) else (exc.msg or "")
    return {"type": type(exc).__name__, "message": message[:500], "line": line}


def attempt(fn, *args):
    """Run ``fn``; return (value, None) or (None, error description)."""
    try:
        return fn(*args), None
    except MemoryError:
        raise   # the sandbox reports it as the `memory` status
    except RuntimeError as exc:
        # torch's CPU allocator reports an allocation over the limit as a RuntimeError.
        if "can't allocate memory" in str(exc) or "DefaultCPUAllocator" in str(exc):
            raise MemoryError(str(exc)[:200]) from None
        return None, describe_error(exc)
    except BaseException as exc:   # SystemExit too: the student's code may call exit()
        return None, describe_error(exc)


# ---- describing modules ----------------------------------------------------------
def describe_module(module: nn.Module) -> dict:
    kind = type(module).__name__
    info: dict = {"type": kind}
    if isinstance(module, nn.Conv2d):
        info.update(in_channels=module.in_channels, out_channels=module.out_channels,
                    kernel_size=list(module.kernel_size), stride=list(module.stride),
                    padding=pair(module.padding),
                    bias=module.bias is not None)
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
        info.update(num_features=module.num_features)
    elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        info.update(kernel_size=pair(module.kernel_size), stride=pair(module.stride),
                    padding=pair(module.padding))
    elif isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        info.update(output_size=pair(module.output_size))
    elif isinstance(module, nn.Linear):
        info.update(in_features=module.in_features, out_features=module.out_features)
    elif isinstance(module, RecordingBlock):
        info.update(args=module.recorded_args)
    return info


def pair(value):
    """A pooling/conv size as [h, w] (ints as given twice); anything odd as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value, value]
    if value is None:
        return None
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return list(value)
    return repr(value)[:60]


def leaf_modules(module: nn.Module) -> list[dict]:
    """Every leaf module under ``module`` in order, with its path."""
    leaves = []
    for path, sub in module.named_modules():
        if path and not list(sub.children()):
            leaves.append({"path": path, **describe_module(sub)})
    return leaves


def shapes_of(state_dict) -> dict:
    return {k: list(v.shape) for k, v in state_dict.items()}


def load_matching(module: nn.Module, weights: dict) -> dict:
    """Load reference weights into the student's module through its state_dict.

    By key where keys and shapes agree; when the keys differ but the tensors
    line up one to one in order with the same shapes (say, convs written out
    flat instead of with conv1x1), by position.
    """
    own = module.state_dict()
    by_key = {k: v for k, v in weights.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    if len(by_key) == len(own) == len(weights):
        module.load_state_dict(by_key, strict=True)
        return {"how": "by_key", "loaded": len(by_key)}
    own_items, ref_items = list(own.items()), list(weights.items())
    if len(own_items) == len(ref_items) and all(
            tuple(a.shape) == tuple(b.shape) for (_, a), (_, b) in zip(own_items, ref_items)):
        module.load_state_dict({k: v for (k, _), (_, v) in zip(own_items, ref_items)}, strict=True)
        return {"how": "by_position", "loaded": len(own_items)}
    module.load_state_dict(by_key, strict=False)
    return {"how": "partial", "loaded": len(by_key)}


def run_both_modes(module: nn.Module, x: torch.Tensor) -> dict:
    """Outputs in eval mode, then in train mode (batch statistics)."""
    outputs = {}
    with torch.no_grad():
        for mode in ("eval", "train"):
            module.train(mode == "train")
            value, error = attempt(module, x.clone())
            outputs[mode] = encode_tensor(value) if isinstance(value, torch.Tensor) else (
                error or {"type": "TypeError", "message": f"forward returned {type(value).__name__}",
                          "line": None})
    return outputs


# ---- the questions -----------------------------------------------------------------
def probe_block(student, case: dict) -> dict:
    block, error = attempt(lambda: student.ResidualBlock(*case["args"]))
    if error:
        return {"error": error}
    report = {
        "leaves": leaf_modules(block),
        "children": [name for name, _ in block.named_children()],
        "state_dict": shapes_of(block.state_dict()),
        "parameters": count_parameters(block),
    }
    loaded, error = attempt(load_matching, block, case["state_dict"])
    report["load"] = loaded or {"how": "failed", "loaded": 0, "error": error}
    report["outputs"] = run_both_modes(block, case["input"])
    return report


def probe_model_with_stub_blocks(student, request: dict) -> dict:
    """Q2: ResNet50_layer4 built with RecordingBlock in place of ResidualBlock."""
    report: dict = {}
    default = inspect.signature(student.ResNet50_layer4.__init__).parameters.get("num_classes")
    report["num_classes_default"] = (plain_value(default.default)
                                     if default is not None and default.default is not inspect.Parameter.empty
                                     else None)
    student.ResidualBlock = RecordingBlock
    # An explicit num_classes: the default is a blank of its own, graded above.
    model, error = attempt(build_model, student)
    if error:
        report["error"] = error
        return report
    report["modules"] = {name: describe_module(m) for name, m in model.named_modules()
                         if name and name.count(".") <= 1}
    report["stage_children"] = {
        stage: [describe_module(child) for child in getattr(model, stage).children()]
        for stage in ("layer1", "layer2", "layer3", "layer4")
        if isinstance(getattr(model, stage, None), nn.Module)
    }
    sizes, error = observe_sizes(model, MODEL_PATHS)
    report["sizes"] = {k: list(v) for k, v in sizes.items()}
    report["sizes_error"] = describe_error(error) if error else None
    loaded, error = attempt(load_matching, model, request["state_dict"])
    report["load"] = loaded or {"how": "failed", "loaded": 0, "error": error}
    report["stage_outputs"] = {}
    for stage, x in request["inputs"].items():
        module = model if stage == "model" else getattr(model, stage, None)
        if not isinstance(module, nn.Module):
            report["stage_outputs"][stage] = {"missing": True}
            continue
        report["stage_outputs"][stage] = run_both_modes(module, x)
    return report


def build_model(student):
    try:
        inspect.signature(student.ResNet50_layer4).bind(num_classes=10)
    except TypeError:
        return student.ResNet50_layer4()
    return student.ResNet50_layer4(num_classes=10)


def probe_full_model(student) -> dict:
    """The model with the student's own blocks, on the meta device: keys and
    shapes without paying for a random init of 14.7M weights. (Output sizes come
    from the stand-in model, where a wrong Q1 cannot hide them.)"""
    with torch.device("meta"):
        model, error = attempt(build_model, student)
    if error:
        return {"error": error}
    report = {"state_dict": shapes_of(model.state_dict()), "parameters": count_parameters(model),
              "stage_parameters": {n: count_parameters(m) for n, m in model.named_children()}}
    return report


def import_student(path: str = STUDENT_FILE):
    spec = importlib.util.spec_from_file_location("resnet50_skeleton", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["resnet50_skeleton"] = module
    spec.loader.exec_module(module)
    return module


def run_probe(workdir, request_bytes: bytes) -> bytes:
    """Sandbox job entry point: observations about the student's file, as JSON bytes."""
    request = torch.load(io.BytesIO(request_bytes), weights_only=True)
    student, error = attempt(import_student)
    if error:
        kind = {"SyntaxError": "syntax_error", "IndentationError": "syntax_error",
                "TabError": "syntax_error", "SystemExit": "exited"}.get(error["type"], "import_error")
        report = {"version": REPORT_VERSION, "import": {"status": kind, "error": error}}
    else:
        report = probe_module(student, request)
    return json.dumps(report).encode()


def probe_module(student, request: dict) -> dict:
    """Observations about an imported module. The grader also runs this on the
    reference solution, in its own process, to get the values to compare with."""
    torch.manual_seed(0)
    report: dict = {"version": REPORT_VERSION, "import": {"status": "ok"}}
    has_block = isinstance(getattr(student, "ResidualBlock", None), type)
    has_model = isinstance(getattr(student, "ResNet50_layer4", None), type)
    report["has"] = {"ResidualBlock": has_block, "ResNet50_layer4": has_model}
    if has_block:
        report["q1"] = {case["name"]: probe_block(student, case) for case in request["q1"]}
    if has_model:
        real_block = getattr(student, "ResidualBlock", None)
        report["full"] = probe_full_model(student)
        report["q2"] = probe_model_with_stub_blocks(student, request["q2"])
        student.ResidualBlock = real_block
    return report


def warm_up() -> None:
    """Exercise every torch path the probe uses on a tiny model of our own, so
    the sandbox's zygote loads torch's lazily imported parts once instead of in
    every child."""
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer1 = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                                        nn.MaxPool2d(3, 2, 1))
            self.avgpool = nn.AvgPool2d(2, 2)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            out = self.avgpool(self.layer1(x))
            return self.fc(out.view(out.size(0), -1))

    with torch.device("meta"):   # as probe_full_model builds the student's model
        nn.init.xavier_uniform_(Tiny().fc.weight.data)
    model = Tiny()
    for mode in (True, False):
        model.train(mode)
        with torch.no_grad():
            model(torch.zeros(2, 3, 8, 8))
    buffer = io.BytesIO()
    torch.save({"x": torch.zeros(2)}, buffer)
    torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    observe_sizes(Tiny(), ["layer1", "fc"], (3, 8, 8))
    RecordingBlock(4, 2, 4, True)(torch.zeros(1, 4, 4, 4))
    json.dumps(encode_tensor(torch.zeros(2)))
