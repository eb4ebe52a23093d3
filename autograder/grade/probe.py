"""The job that runs inside the sandbox, next to the student's code.

It imports ``resnet50_skeleton.py`` from its working directory, builds what the
grader asks for, and reports *observations only* -- module attributes, state_dict
keys and shapes, output sizes, output values -- as JSON. It holds no expected
value and never decides a score: the grading process compares, and it validates
every field of this report before using it (see ``observations.py``).

Request (from the trusted parent, ``torch.save`` bytes, tensors only):
  q1: list of {name, args, input, state_dict}   -- ResidualBlock cases
  q2: {state_dict, inputs: {stage: tensor},     -- stem/fc weights, stage inputs,
       stage_sizes: {stage: {in, out}}}         -- sizes for the stand-in stages
"""
from __future__ import annotations

import base64
import contextlib
import importlib.util
import inspect
import io
import json
import sys
import traceback

import torch
import torch.nn as nn

from autograder.check.describe import count_parameters, observe_sizes
from autograder.grade.stub_block import (OPEN_BLANK_FIELD, OpenBlank, OpenValue, RecordingBlock,
                                         StageStandIn, blank_text, blocks_stood_in, open_blank_in,
                                         plain_value, recorded_args)

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


# ---- blanks left open -------------------------------------------------------------
MAX_BLANKS_KEPT = 50   # distinct open blanks reported per section; the rest are counted
MAX_BLANK_CALLS = 1000  # past this, a section stops: a loop of blank() calls cannot run out the clock


class TooManyBlanks(Exception):
    pass


class BlankInSideBuild(BaseException):
    """Ends a side build (the real block next to a stand-in) at its first blank."""


class OpenedBlanks:
    """The blanks one section of the probe reached: the first distinct ones in
    order, and how many calls there were in all (a loop may call blank() 200,000 times)."""

    def __init__(self):
        self.kept: dict[tuple, None] = {}
        self.count = 0

    def add(self, text: str, line: int | None) -> None:
        self.count += 1
        if len(self.kept) < MAX_BLANKS_KEPT:
            self.kept.setdefault((text, line), None)
        if self.count > MAX_BLANK_CALLS:
            raise TooManyBlanks(f"more than {MAX_BLANK_CALLS} calls to the blank helpers; the grader stopped here")

    def entries(self) -> list[dict]:
        return [{"text": text, "line": line} for text, line in self.kept]

    def report_into(self, report: dict) -> None:
        if self.count:
            report["open_blanks"] = self.entries()
            report["open_blank_calls"] = self.count


_RECORDING: list = [None]   # the OpenedBlanks being filled, or None


@contextlib.contextmanager
def recording_blanks():
    log, previous = OpenedBlanks(), _RECORDING[0]
    _RECORDING[0] = log
    try:
        yield log
    finally:
        _RECORDING[0] = previous


@contextlib.contextmanager
def blanks_unrecorded(log=None):
    """For code the grader runs on the side, whose blanks are reported elsewhere:
    the model built with num_classes=7 (counted in a log of its own, so a loop
    of blanks still stops), or the real block next to a stand-in (``abort``)."""
    previous, _RECORDING[0] = _RECORDING[0], log if log is not None else OpenedBlanks()
    try:
        yield
    finally:
        _RECORDING[0] = previous


class _AbortAtBlank:
    def add(self, text, line):
        raise BlankInSideBuild(text)


def side_build_quiet():
    """The stand-ins' side build of the student's real block: stops at a blank
    (that block is Q1's to report, and a half-built block has nothing to lend)."""
    return blanks_unrecorded(_AbortAtBlank())


def _caller_line() -> int | None:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.endswith(STUDENT_FILE) and frame.f_code.co_name not in BLANK_HELPERS:
            return frame.f_lineno
        frame = frame.f_back
    return None


def _opened(text: str) -> str:
    if _RECORDING[0] is not None:
        _RECORDING[0].add(text, _caller_line())
    return text


def tolerant_blank(what):
    return OpenBlank(_opened(blank_text(what)))


def tolerant_blanks(n, what):
    count = n if isinstance(n, int) and 0 < n <= 64 else 1
    text = _opened(blank_text(what, count))
    return [OpenValue(text) for _ in range(count)]


def tolerant_reject_blank_defaults(*values):
    for value in values:
        text = blank_default_text(value)
        if text:
            _opened(text)


def blank_default_text(value) -> str | None:
    """The student file's blank_default(...) object -> what is missing, else None."""
    what = getattr(value, "what", None) if "blank" in type(value).__name__.lower() else None
    return blank_text(what) if isinstance(what, str) else None


def install_blank_recorders(student) -> None:
    """Placeholders that record the open blank and let the model build on."""
    for name, replacement in (("blank", tolerant_blank), ("blanks", tolerant_blanks),
                              ("reject_blank_defaults", tolerant_reject_blank_defaults)):
        if callable(getattr(student, name, None)):
            setattr(student, name, replacement)


# ---- describing modules ----------------------------------------------------------
BATCHNORM_SETTINGS = ("eps", "momentum", "affine", "track_running_stats")


def describe_module(module: nn.Module) -> dict:
    recorded = recorded_args(module)
    if recorded is not None:
        info = {"type": "RecordingBlock", "class": type(module).__name__, "args": dict(recorded)}
        if recorded.get(OPEN_BLANK_FIELD):
            info["open_blank"] = recorded[OPEN_BLANK_FIELD]
        return info
    if isinstance(module, OpenBlank):
        return {"type": "OpenBlank", "open_blank": module.blank}
    kind = type(module).__name__
    info: dict = {"type": kind}
    if isinstance(module, nn.Conv2d):
        info.update(in_channels=plain_value(module.in_channels), out_channels=plain_value(module.out_channels),
                    kernel_size=pair(module.kernel_size), stride=pair(module.stride),
                    padding=pair(module.padding), dilation=pair(module.dilation),
                    groups=plain_value(module.groups), bias=module.bias is not None)
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
        info.update(num_features=plain_value(module.num_features))
        info.update({k: plain_value(getattr(module, k, None)) for k in BATCHNORM_SETTINGS})
    elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        info.update(kernel_size=pair(module.kernel_size), stride=pair(module.stride),
                    padding=pair(module.padding))
    elif isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        info.update(output_size=pair(module.output_size))
    elif isinstance(module, nn.Linear):
        info.update(in_features=plain_value(module.in_features), out_features=plain_value(module.out_features))
    blank = next((open_blank_in(v) for v in vars(module).values() if open_blank_in(v)), None)
    if blank:
        info["open_blank"] = blank
    return info


def pair(value):
    """A pooling/conv size as [h, w] (ints as given twice); anything odd as text."""
    if open_blank_in(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return [int(value), int(value)]
    if value is None:
        return None
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [int(v) for v in value]
    return repr(value)[:60]


def leaf_modules(module: nn.Module) -> list[dict]:
    """Every leaf module under ``module`` in order, with its path."""
    leaves = []
    for path, sub in module.named_modules():
        if path and not list(sub.children()):
            leaves.append({"path": path, **describe_module(sub)})
    return leaves


def contained_modules(module: nn.Module) -> list[nn.Module]:
    """A module's direct children as registered, repeats included (``children()``
    would show a block object used twice only once)."""
    return [m for m in module._modules.values() if isinstance(m, nn.Module)]


def describe_children(stage: nn.Module) -> list[dict]:
    described, first_index = [], {}
    for i, child in enumerate(contained_modules(stage)):
        info = describe_module(child)
        if id(child) in first_index:
            info["same_as"] = first_index[id(child)]
        else:
            first_index[id(child)] = i
        described.append(info)
    return described


def has_own_forward(module: nn.Module) -> bool:
    return getattr(type(module), "forward", None) is not nn.Module.forward


def run_stage(module: nn.Module, x):
    """A stage's output: its forward, or -- for a container without one
    (nn.ModuleList looped over in the model's forward) -- its children in order."""
    if has_own_forward(module):
        return module(x)
    for child in contained_modules(module):
        x = child(x)
    return x


def shapes_of(state_dict) -> dict:
    return {k: list(v.shape) for k, v in state_dict.items()}


def load_matching(module: nn.Module, weights: dict) -> dict:
    """Load reference weights into the student's module through its state_dict.

    By key where a key is there with the reference's shape; the reference
    tensors left over then go, in order, to the student's remaining entries of
    the same shape, in the order the student registered them (a shortcut named
    otherwise, defined before or after self.layer, loads alike). Entries of the
    student's own left over stay as built, and are listed. The caller compares
    outputs in every case.
    """
    own = module.state_dict()
    loaded = {k: v for k, v in weights.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    by_key = len(loaded)
    free = [k for k in own if k not in loaded]
    unmatched = 0
    for key, value in weights.items():
        if key in loaded:
            continue
        target = next((k for k in free if tuple(own[k].shape) == tuple(value.shape)), None)
        if target is None:
            unmatched += 1
            continue
        free.remove(target)
        loaded[target] = value
    module.load_state_dict(loaded, strict=False)
    if unmatched:
        return {"how": "partial", "loaded": len(loaded)}
    how = "by_key" if by_key == len(weights) else "by_position"
    if free:
        return {"how": f"{how}_extra", "loaded": len(loaded), "extra": free[:20]}
    return {"how": how, "loaded": len(loaded)}


def run_both_modes(module: nn.Module, x: torch.Tensor, run=None) -> dict:
    """Outputs in eval mode, then in train mode (batch statistics)."""
    outputs = {}
    with torch.no_grad():
        for mode in ("eval", "train"):
            module.train(mode == "train")
            value, error = attempt(run or module, *((module, x.clone()) if run else (x.clone(),)))
            outputs[mode] = encode_tensor(value) if isinstance(value, torch.Tensor) else (
                error or {"type": "TypeError", "message": f"forward returned {type(value).__name__}",
                          "line": None})
    return outputs


# ---- the questions -----------------------------------------------------------------
def probe_block(student, case: dict) -> dict:
    with recording_blanks() as blanks:
        block, error = attempt(lambda: student.ResidualBlock(*case["args"]))
    if blanks.count:
        report: dict = {}
        blanks.report_into(report)
        return report
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


STAGE_NAMES = ("layer1", "layer2", "layer3", "layer4", "avgpool", "fc")


def probe_model_with_stub_blocks(student, request: dict) -> dict:
    """Q2: ResNet50_layer4 built with stand-ins in place of ResidualBlock."""
    report: dict = {}
    default = inspect.signature(student.ResNet50_layer4.__init__).parameters.get("num_classes")
    if default is not None and default.default is not inspect.Parameter.empty:
        report["num_classes_default"] = plain_value(default.default)
        if blank_default_text(default.default):
            report["num_classes_default_blank"] = blank_default_text(default.default)
    else:
        report["num_classes_default"] = None
    block_class = getattr(student, "ResidualBlock", None)
    stand_ins = blocks_stood_in(block_class, side_build_quiet) if isinstance(block_class, type) \
        else contextlib.nullcontext()
    with stand_ins:
        # An explicit num_classes: the default is a blank of its own, graded above.
        with recording_blanks() as blanks:
            built, error = attempt(build_model, student)
        model, init_error = built if built else (None, None)
        report["open_blanks"] = blanks.entries()
        report["open_blank_calls"] = blanks.count
        if error or model is None:
            report["error"] = error or {"type": "TypeError", "message": "no model", "line": None}
            return report
        if init_error:
            report["init_error"] = init_error
        observe_model(model, request, report)
        report["other_num_classes"] = observe_other_num_classes(student, request)
    return report


OTHER_NUM_CLASSES = 7   # not 10: shows whether fc follows the num_classes argument


def observe_other_num_classes(student, request: dict) -> dict:
    """fc's output size in a model built with num_classes=7, on the fc input."""
    with blanks_unrecorded():
        built, error = attempt(build_model, student, OTHER_NUM_CLASSES)
    model = built[0] if built else None
    fc = getattr(model, "fc", None) if model is not None and not (built and built[1]) else None
    if not isinstance(fc, nn.Module):
        return {"num_classes": OTHER_NUM_CLASSES, "error": error or (built and built[1]) or
                {"type": "AttributeError", "message": "the model has no fc", "line": None}}
    fc.eval()
    with torch.no_grad():
        value, error = attempt(fc, request["inputs"]["fc"].clone())
    found = {"num_classes": OTHER_NUM_CLASSES, "fc": describe_module(fc)}
    if not isinstance(value, torch.Tensor):
        found["error"] = error or {"type": "TypeError", "message": f"fc returned {type(value).__name__}",
                                   "line": None}
    else:
        found["output_size"] = list(value.shape[1:])
    return found


def observe_model(model: nn.Module, request: dict, report: dict) -> None:
    report["modules"] = {name: describe_module(m) for name, m in model.named_modules()
                         if name and name.count(".") <= 1}
    report["stage_children"] = {
        stage: describe_children(getattr(model, stage))
        for stage in ("layer1", "layer2", "layer3", "layer4")
        if isinstance(getattr(model, stage, None), nn.Module)
    }
    sizes, error = observe_stage_sizes(model)
    report["sizes"] = {k: list(v) for k, v in sizes.items()}
    report["sizes_error"] = describe_error(error) if error else None
    loaded, error = attempt(load_matching, model, request["state_dict"])
    report["load"] = loaded or {"how": "failed", "loaded": 0, "error": error}
    report["stage_outputs"] = {}
    for stage, x in request["inputs"].items():
        if stage == "model":
            report["stage_outputs"][stage] = run_both_modes(model, x)
            # A batch of one too: out.squeeze() in forward() is wrong only there.
            report["stage_outputs"][stage]["single"] = run_eval(model, x[:1])
            continue
        module = getattr(model, stage, None)
        if not isinstance(module, nn.Module):
            report["stage_outputs"][stage] = {"missing": True}
            continue
        report["stage_outputs"][stage] = run_both_modes(module, x, run_stage)
    if "stage_sizes" in request and "model" in request["inputs"]:
        report["wiring"] = run_wiring(model, request["stage_sizes"], request["inputs"]["model"])


def observe_stage_sizes(model: nn.Module):
    """observe_sizes, with a forward-less container stage measured at its last child."""
    paths, alias = list(MODEL_PATHS), {}
    for stage in STAGE_NAMES:
        module = getattr(model, stage, None)
        if isinstance(module, nn.Module) and not has_own_forward(module):
            names = [k for k, v in module._modules.items() if isinstance(v, nn.Module)]
            if names:
                alias[f"{stage}.{names[-1]}"] = stage
                paths.append(f"{stage}.{names[-1]}")
    sizes, error = observe_sizes(model, paths)
    for path, stage in alias.items():
        if path in sizes and stage not in sizes:
            sizes[stage] = sizes[path]
    return sizes, error


def run_wiring(model: nn.Module, stage_sizes: dict, x: torch.Tensor) -> dict:
    """The student's own forward() with every stage replaced by a stand-in of
    the table's sizes: what forward() does with the stages, and nothing else.
    A stage held in a container stays a container of the same length, so code
    that loops over it or indexes it still runs."""
    saved = {}
    for name, sizes in stage_sizes.items():
        original = model._modules.get(name, _ABSENT)
        saved[name] = (original, model.__dict__.get(name, _ABSENT))
        stand_in = StageStandIn(name, sizes["in"], sizes["out"])
        if isinstance(original, (nn.Sequential, nn.ModuleList)) and len(original) > 0:
            fill = [stand_in] + [nn.Identity() for _ in range(len(original) - 1)]
            stand_in = type(original)(*fill) if isinstance(original, nn.Sequential) else nn.ModuleList(fill)
        model._modules[name] = stand_in
        model.__dict__.pop(name, None)
    try:
        outputs = {"eval": run_eval(model, x), "single": run_eval(model, x[:1])}
    finally:
        for name, (original, plain) in saved.items():
            if original is _ABSENT:
                model._modules.pop(name, None)
            else:
                model._modules[name] = original
            if plain is not _ABSENT:
                model.__dict__[name] = plain
    return outputs


def run_eval(model: nn.Module, x: torch.Tensor) -> dict:
    model.eval()
    with torch.no_grad():
        value, error = attempt(model, x.clone())
    if isinstance(value, torch.Tensor):
        return encode_tensor(value)
    return error or {"type": "TypeError", "message": f"forward returned {type(value).__name__}", "line": None}


_ABSENT = object()


def build_model(student, num_classes: int = 10):
    """(model, None), or -- when __init__ raised after nn.Module.__init__ -- the
    partly built model and the error: what was assigned before it is graded."""
    cls = student.ResNet50_layer4
    try:
        inspect.signature(cls).bind(num_classes=num_classes)
        kwargs = {"num_classes": num_classes}
    except (TypeError, ValueError):
        kwargs = {}
    model = cls.__new__(cls)
    if not isinstance(model, cls):
        return cls(**kwargs), None
    try:
        model.__init__(**kwargs)
    except MemoryError:
        raise
    except BaseException as exc:
        if not isinstance(model.__dict__.get("_modules"), dict):
            raise
        _, error = attempt(_reraise, exc)
        return model, error
    return model, None


def _reraise(exc):
    raise exc


def probe_full_model(student) -> dict:
    """The model with the student's own blocks, on the meta device: keys and
    shapes without paying for a random init of 14.7M weights. (Output sizes come
    from the stand-in model, where a wrong Q1 cannot hide them.)"""
    report: dict = {}
    with recording_blanks() as blanks, torch.device("meta"):
        built, error = attempt(build_model, student)
    blanks.report_into(report)
    if error or built[1]:
        report["error"] = error or built[1]
        return report
    model = built[0]
    report.update({"state_dict": shapes_of(model.state_dict()), "parameters": count_parameters(model),
                   "stage_parameters": {n: count_parameters(m) for n, m in model.named_children()}})
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
    install_blank_recorders(student)
    if has_block:
        report["q1"] = {case["name"]: probe_block(student, case) for case in request["q1"]}
    if has_model:
        report["full"] = probe_full_model(student)
        report["q2"] = probe_model_with_stub_blocks(student, request["q2"])
        full_built = "error" not in report["full"]
        if full_built and ("error" in report["q2"] or "init_error" in report["q2"]):
            # The student's own blocks build the model: the failure is the stand-ins'.
            report["q2"]["stand_in_only"] = True
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
    StageStandIn("warm", [4, 4, 4], [2, 2, 2])(torch.zeros(1, 4, 4, 4))
    StageStandIn("warm", [4], [2])(torch.zeros(1, 4))
    json.dumps(encode_tensor(torch.zeros(2)))
