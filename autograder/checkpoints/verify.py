"""python -m autograder checkpoints verify [DIR]: are these the checkpoints manifest.json describes?

Per file, in order (a check that fails stops the ones that need it):

  integrity    size and sha256 against manifest.json (truncated vs corrupted)
  load         torch.load(weights_only=True, map_location="cpu") (Python objects vs unreadable)
  state_dict   a flat {name: tensor} dict saved from CPU tensors, keys/shapes as the manifest's fingerprint
  prefixes     no "module." (DataParallel) or "_orig_mod." (torch.compile) in front of the keys
  strict load  into build_model(model): vgg.vgg16() or the reference ResNet50_layer4
  accuracy     on the CIFAR-10 test set, when it is there, against the manifest's number

Every failure is one line saying what is wrong and what to do; the exit status is 1.
"""
from __future__ import annotations

import errno
import io
import os
import re
import stat
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from autograder.checkpoints.manifest import (MANIFEST_NAME, ManifestError, file_sha256, read_manifest,
                                             replace_atomically, state_dict_fingerprint, write_manifest)
from autograder.checkpoints.models import CHECKPOINT_NAMES, MODEL_NAMES, MODEL_OF_CHECKPOINT, build_model

OK, BAD, SKIP = "✓", "✗", "-"
# Accuracy measured here may differ from the recorded one by eval precision (bf16 vs fp32) and
# the device's kernels; a different set of weights differs by far more than this.
ACCURACY_TOLERANCE = 0.5   # percentage points
KEYS_SHOWN = 5             # per list of a key diff
# Wrappers whose state_dicts put a prefix before every key, and what saved them.
WRAPPER_PREFIXES = {
    "module.": "saved from a model wrapped in nn.DataParallel or DistributedDataParallel "
               "(save model.module.state_dict() instead)",
    "_orig_mod.": "saved from a torch.compile()d model (save model._orig_mod.state_dict() instead)",
}
WHERE_TO_GET = "the course's release assets or LMS (see checkpoints/README.md)"


@dataclass
class Check:
    status: str      # OK, BAD or SKIP
    text: str
    details: list[str] = field(default_factory=list)   # indented lines under it (a key diff)


@dataclass
class FileReport:
    name: str
    model: str | None
    checks: list[Check] = field(default_factory=list)

    def add(self, status: str, text: str, details=()) -> bool:
        self.checks.append(Check(status, text, list(details)))
        return status != BAD

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == BAD]


@dataclass
class VerifyResult:
    directory: Path
    problems: list[str] = field(default_factory=list)    # about the folder or the manifest, not one file
    files: list[FileReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not any(f.failed for f in self.files)


# ---------------------------------------------------------------------------------------------- loading

def _short(exc: BaseException, limit: int = 140) -> str:
    """The first sentence of an exception's message: torch's run to a dozen lines."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # torch's strict-load message opens with "Error(s) in loading state_dict for VGG:" and
    # then the reason on the next line: show the first line that says something.
    if len(lines) > 1 and lines[0].endswith(":"):
        lines = [lines[0] + " " + lines[1]] + lines[2:]
    text = lines[0] if lines else exc.__class__.__name__
    text = re.split(r"(?<=[a-z0-9)])\. ", text, maxsplit=1)[0].rstrip(".")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def load_weights_only(data: bytes):
    """(object, saved device locations, None) or (None, None, one-sentence reason) for torch.load
    with weights_only=True on the CPU. Never raises: torch's own messages are many lines long."""
    import pickle

    import torch
    locations: set[str] = set()

    def to_cpu(storage, location):
        locations.add(str(location))
        return storage

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(io.BytesIO(data), weights_only=True, map_location=to_cpu)
    except pickle.UnpicklingError as exc:
        refused = (re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
                   or re.search(r"unsupported GLOBAL ([\w.]+) whose module [\w.]+ is blocked", str(exc)))
        if refused and "blocked" in refused.group(0):
            return None, None, (f"refused: the file holds Python objects that torch.load(weights_only=True) "
                                f"refuses (it calls {refused.group(1)}, which could run code if loaded unsafely "
                                "with weights_only=False); do not use this file, download it again from "
                                f"{WHERE_TO_GET}")
        opcode = re.search(r"Unsupported operand (\d+)", str(exc))
        if opcode:
            return None, None, (f"refused: a pickle that torch.load(weights_only=True) will not read (opcode "
                                f"{opcode.group(1)}), not a state_dict saved with torch.save; do not load it with "
                                f"weights_only=False, download it again from {WHERE_TO_GET}")
        if refused:
            return None, None, (f"not weights-only: the file holds Python objects besides tensors (first: "
                                f"{refused.group(1)}), so torch.load(weights_only=True) refuses it; save "
                                "model.state_dict() alone, never the model or a training-state object")
        return None, None, (f"unreadable: torch.load cannot unpickle it ({_short(exc)}); "
                            "a damaged or truncated file")
    except Exception as exc:   # zip reader, decode and EOF errors of a damaged file all land here
        return None, None, f"unreadable: torch.load cannot read it ({_short(exc)}); a damaged or truncated file"
    return obj, locations, None


def state_dict_problem(obj) -> str | None:
    """Why ``obj`` is not a flat {str: tensor} state_dict, or None."""
    import torch
    if not isinstance(obj, dict):
        return f"not a state_dict: the file holds a {type(obj).__name__}; save model.state_dict()"
    nested = [k for k, v in obj.items() if isinstance(v, dict)]
    if nested:
        return (f"not a flat state_dict: it holds {', '.join(repr(k) for k in list(obj)[:6])}"
                f"{', ...' if len(obj) > 6 else ''} (a training checkpoint); save the model's "
                f"weights ({nested[0]!r}?) alone as a flat dict")
    not_tensors = [(k, v) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        key, value = not_tensors[0]
        return (f"not a flat state_dict: {len(not_tensors)} value(s) are not tensors (e.g. {key!r}: "
                f"{type(value).__name__}); save model.state_dict() alone")
    if not all(isinstance(k, str) for k in obj):
        return "not a state_dict: some keys are not strings"
    if not obj:
        return "an empty state_dict: the file holds no tensors"
    return None


def wrapper_prefixes(state_dict) -> list[str]:
    """The wrapper prefixes found at the start of the keys (outermost first), e.g. ["_orig_mod.", "module."]."""
    found = []
    keys = list(state_dict)
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if keys and any(k.startswith(prefix) for k in keys):
                found.append(prefix)
                keys = [k[len(prefix):] if k.startswith(prefix) else k for k in keys]
                changed = True
    return found


def _stripped_key(key: str) -> str:
    while key.startswith(tuple(WRAPPER_PREFIXES)):
        key = key[len(next(p for p in WRAPPER_PREFIXES if key.startswith(p))):]
    return key


def strip_prefixes(state_dict) -> dict:
    """The state_dict with every wrapper prefix removed from the start of its keys
    (call prefix_collisions first: where two keys strip to one, the later one wins)."""
    return {_stripped_key(key): tensor for key, tensor in state_dict.items()}


def prefix_collisions(state_dict) -> dict[str, list[str]]:
    """{stripped key: [original keys]} for every key that two or more keys strip to
    (a file holding both ``features.0.weight`` and ``module.features.0.weight``)."""
    groups: dict[str, list[str]] = {}
    for key in state_dict:
        groups.setdefault(_stripped_key(key), []).append(key)
    return {k: v for k, v in groups.items() if len(v) > 1}


def describe_not_a_file(path: Path) -> str | None:
    """What ``path`` is when it is not a readable regular file (one phrase), or None when it is one."""
    try:
        if path.is_symlink():
            try:
                path.stat()
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    return f"a symbolic link loop ({path} -> {os.readlink(path)})"
                return f"a dangling symbolic link to {os.readlink(path)}, which does not exist"
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return "a name too long for the file system"
        return f"not readable ({exc.strerror or exc.__class__.__name__})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO), not a file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a file"
    return "not a regular file"


def key_diff_lines(expected_shapes: dict, state_dict, limit: int = KEYS_SHOWN) -> tuple[str, list[str]]:
    """(summary, detail lines) of what a strict load would complain about, from the checkpoint's side;
    ("", []) when it would load."""
    shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    missing = [k for k in expected_shapes if k not in shapes]
    unexpected = [k for k in shapes if k not in expected_shapes]
    wrong = [(k, shapes[k], expected_shapes[k]) for k in shapes if k in expected_shapes and shapes[k] != expected_shapes[k]]
    if not (missing or unexpected or wrong):
        return "", []

    def listing(title, items):
        if not items:
            return []
        lines = [f"{title} ({len(items)}):"] + [f"  {item}" for item in items[:limit]]
        if len(items) > limit:
            lines.append(f"  ... and {len(items) - limit} more")
        return lines

    def size(shape):
        return "x".join(map(str, shape)) or "scalar"

    summary = ", ".join(part for part in (f"{len(missing)} missing" if missing else "",
                                          f"{len(unexpected)} unexpected" if unexpected else "",
                                          f"{len(wrong)} of the wrong shape" if wrong else "") if part)
    details = (listing("missing (the model has them, the file does not)", missing)
               + listing("unexpected (the file has them, the model does not)", unexpected)
               + listing("wrong shape (file vs model)", [f"{k}: {size(a)} vs {size(b)}" for k, a, b in wrong]))
    return summary, details


# ---------------------------------------------------------------------------------------------- checks

class _Models:
    """Each model built once per run (ResNet50_layer4 takes a moment)."""

    def __init__(self):
        self._built = {}

    def get(self, name):
        if name not in self._built:
            self._built[name] = build_model(name)
        return self._built[name]

    def shapes(self, name) -> dict:
        return {k: tuple(v.shape) for k, v in self.get(name).state_dict().items()}


def _rewrite_atomically(path: Path, state_dict) -> bytes:
    import torch
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, buffer)
    data = buffer.getvalue()
    replace_atomically(path, data)
    return data


def check_integrity(report: FileReport, data: bytes, entry: dict | None) -> bool:
    if entry is None:
        return True   # already reported as not listed
    expected_size, expected_sha = entry.get("size"), entry.get("sha256")
    if not isinstance(expected_size, int) or not isinstance(expected_sha, str):
        return report.add(BAD, "manifest.json's entry has no sha256 and size to check against: re-record it")
    if len(data) < expected_size:
        return report.add(BAD, f"truncated: {len(data):,} bytes where manifest.json says {expected_size:,} "
                               f"({100 * len(data) / expected_size:.0f}% of it), an interrupted download or "
                               f"upload; download it again from {WHERE_TO_GET}")
    if len(data) > expected_size:
        return report.add(BAD, f"wrong size: {len(data):,} bytes where manifest.json says {expected_size:,}: not "
                               f"the file the manifest describes (another version?); download this file again from "
                               f"{WHERE_TO_GET}, or the manifest.json published with it")
    import hashlib
    if hashlib.sha256(data).hexdigest() != expected_sha.lower():
        return report.add(BAD, "corrupted: the size is right but the sha256 differs from manifest.json's (a damaged "
                               f"copy, or a file changed after it was recorded); download it again from {WHERE_TO_GET}")
    return report.add(OK, f"sha256 and size match manifest.json ({len(data):,} bytes)")


def _accuracy_check(report: FileReport, model, entry: dict | None, data: "_TestData") -> None:
    if data.skip_reason:
        report.add(data.skip_status, f"test accuracy not checked: {data.skip_reason}")
        return
    # Minutes on a CPU (10,000 images): say why the command is quiet.
    print(f"  ... measuring {report.name}'s test accuracy on {len(data.splits.test.targets):,} images ({data.device})",
          file=sys.stderr, flush=True)
    try:
        measured = float(data.evaluate(model.to(data.device), data.splits.test, data.device))
    except Exception as exc:   # a data or device problem, said in one line
        report.add(BAD, f"test accuracy: the evaluation failed ({_short(exc)})")
        return
    where = f"{'the SYNTHETIC CIFAR-10' if data.splits.synthetic else 'CIFAR-10'} in {data.root} ({data.source})"
    recorded = entry.get("test_accuracy") if entry else None
    recorded_synthetic = bool(entry.get("synthetic")) if entry else False
    if not isinstance(recorded, (int, float)) or isinstance(recorded, bool):
        report.add(SKIP, f"test accuracy {measured:.2f}% on {where}; manifest.json records none to compare with")
    elif data.splits.synthetic or recorded_synthetic:
        # A synthetic accuracy only says the plumbing works; comparing it with anything says nothing.
        report.add(SKIP, f"test accuracy {measured:.2f}% on {where}; manifest.json's {recorded:.2f}% was measured "
                         f"on {'synthetic data' if recorded_synthetic else 'the real CIFAR-10'}: not compared "
                         "(synthetic accuracies say nothing about the model)")
    elif abs(measured - recorded) <= ACCURACY_TOLERANCE:
        report.add(OK, f"test accuracy {measured:.2f}% on {where} (manifest.json: {recorded:.2f}%, "
                       f"within {ACCURACY_TOLERANCE} points)")
    else:
        report.add(BAD, f"test accuracy {measured:.2f}% on {where}, but manifest.json says {recorded:.2f}% (more "
                        f"than {ACCURACY_TOLERANCE} points apart): these are not the weights that were measured")


class _TestData:
    """The CIFAR-10 test set for the accuracy check, loaded once, or why there is none.

    The folder is read only when named (--data, else $CIFAR10_ROOT; never ./data by default):
    torchvision unpickles its batch files. Real CIFAR-10 is md5-checked against torchvision's own
    table first; the synthetic set's table lies in the same folder, so it is read only with
    --data and --trust-synthetic (or KIT_SMOKE=1)."""

    def __init__(self, data_dir: Path | None, *, trust_synthetic: bool = False):
        self.splits = None
        self.skip_reason = ""
        self.skip_status = SKIP
        explicit = data_dir is not None
        env_root = os.environ.get("CIFAR10_ROOT")
        if explicit:
            self.root, self.source = Path(data_dir), "--data"
        elif env_root:
            self.root, self.source = Path(env_root), "$CIFAR10_ROOT"
        else:
            self.root, self.source = None, ""
            self.skip_reason = ("no data folder named: give --data DIR (or set $CIFAR10_ROOT) with CIFAR-10 in "
                                "DIR/cifar-10-batches-py/ to check it")
            return
        if not (self.root / "cifar-10-batches-py").is_dir():
            self.skip_reason = f"no CIFAR-10 in {self.root}/ ({self.source}; needs cifar-10-batches-py/)"
            self.skip_status = BAD if explicit else SKIP
            return
        try:
            from autograder.checkpoints.data import evaluate, load_cifar10
            from autograder.checkpoints.notebook_cells import notebook_namespace
            is_synthetic = notebook_namespace()["is_synthetic_cifar10"](str(self.root))
        except Exception as exc:
            self.skip_reason = f"the kit's data code is not available ({_short(exc)})"
            return
        trusted = explicit and (trust_synthetic or os.environ.get("KIT_SMOKE") == "1")
        if is_synthetic and not trusted:
            self.skip_reason = (f"{self.root}/ ({self.source}) holds a synthetic-format CIFAR-10, whose checksums come "
                                "from the same folder, and torchvision unpickles its files: not read unless you give "
                                "it with --data and --trust-synthetic (only for a folder you made yourself)")
            self.skip_status = BAD if explicit else SKIP
            return
        try:
            # smoke=True reads a synthetic set as such (it writes one only where there is none, and we
            # checked there is); download=False: verifying never fetches 170 MB behind a TA's back.
            self.splits = load_cifar10(self.root, smoke=is_synthetic, download=False)
        except Exception as exc:   # DataMissingError and damaged files: one sentence either way
            self.skip_reason = f"CIFAR-10 in {self.root}/ ({self.source}) cannot be read ({_short(exc, 200)})"
            self.skip_status = BAD if explicit else SKIP
            return
        import torch
        self.evaluate = evaluate
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_file(directory: Path, name: str, entry: dict | None, models: _Models, test_data: _TestData,
               *, listed: bool, manifest_exists: bool, fix_prefixes: bool, manifest: dict,
               allow_synthetic: bool = False) -> FileReport:
    path = directory / name
    model_name = MODEL_OF_CHECKPOINT.get(name) or (entry or {}).get("model")
    report = FileReport(name, model_name if isinstance(model_name, str) and model_name in MODEL_NAMES else None)
    what = describe_not_a_file(path)
    if what == "missing":
        report.add(BAD, f"missing: {path} is not there; download it from {WHERE_TO_GET} into {directory}/, "
                        f"then run `python -m autograder checkpoints verify {directory}` again")
        return report
    if what:
        report.add(BAD, f"{path} is {what}: replace it with the checkpoint file downloaded from {WHERE_TO_GET}")
        return report
    if manifest_exists and not listed:
        report.add(BAD, f"not listed in manifest.json, so its sha256 cannot be checked: fetch the manifest.json "
                        "that came with it, or record it (`python -m autograder checkpoints record FILE`)")
    if entry is not None:
        recorded_model = entry.get("model")
        if not isinstance(recorded_model, str) or recorded_model not in MODEL_NAMES:
            report.add(BAD, f"manifest.json says the model is {recorded_model!r}; the kit knows {', '.join(MODEL_NAMES)}")
        elif name in MODEL_OF_CHECKPOINT and recorded_model != MODEL_OF_CHECKPOINT[name]:
            report.add(BAD, f"manifest.json says this is a {recorded_model} checkpoint, but the notebook loads "
                            f"{name} into {MODEL_OF_CHECKPOINT[name]}")
        if entry.get("synthetic") is True:
            if allow_synthetic:
                report.add(SKIP, "manifest.json marks it synthetic (trained on the smoke-test CIFAR-10): accepted "
                                 "because of --allow-synthetic; never publish it")
            else:
                report.add(BAD, "manifest.json marks it synthetic: trained on the smoke-test CIFAR-10, a plumbing "
                                "check, not the handout's weights; train it on the real CIFAR-10 before publishing "
                                "(--allow-synthetic accepts it in a smoke test)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        report.add(BAD, f"cannot read {path} ({exc.strerror or exc.__class__.__name__}): give yourself read "
                        "permission (chmod u+r) or copy the file")
        return report
    intact = check_integrity(report, data, entry)

    obj, locations, problem = load_weights_only(data)
    if problem:
        report.add(BAD, problem)
        return report
    report.add(OK, "loads with torch.load(weights_only=True, map_location='cpu')")

    problem = state_dict_problem(obj)
    if problem:
        report.add(BAD, problem)
        return report
    on_devices = sorted(loc for loc in locations if loc != "cpu")
    if on_devices:
        report.add(BAD, f"saved from {', '.join(on_devices)} tensors: torch.load without map_location fails on a "
                        "machine without that device; save {k: v.cpu() for k, v in state_dict.items()}")
    else:
        report.add(OK, f"a flat state_dict of {len(obj)} CPU tensors")
    if entry is not None and isinstance(entry.get("fingerprint"), str):
        if state_dict_fingerprint(obj) == entry["fingerprint"]:
            report.add(OK, "keys, dtypes and shapes match manifest.json's fingerprint")
        else:
            report.add(BAD, "keys, dtypes or shapes differ from manifest.json's fingerprint: the entry describes "
                            "another state_dict")

    prefixes = wrapper_prefixes(obj)
    # The checks below look at the keys without the prefixes, so one mistake gives one ✗.
    state_dict = strip_prefixes(obj) if prefixes else obj
    unfixed_prefixes = ""
    if prefixes:
        shown = " and ".join(repr(p) for p in prefixes)
        counted = sum(1 for k in obj if k.startswith(tuple(WRAPPER_PREFIXES)))
        collisions = prefix_collisions(obj)
        if collisions:
            # Stripping would keep one tensor of each pair and drop the other: refuse, never pick one.
            details = [f"{k}: {', '.join(originals)}" for k, originals in list(collisions.items())[:KEYS_SHOWN]]
            if len(collisions) > KEYS_SHOWN:
                details.append(f"... and {len(collisions) - KEYS_SHOWN} more")
            report.add(BAD, f"{counted} of {len(obj)} keys start with {shown} and {len(collisions)} of them would "
                            f"collide with a plain key once stripped (two copies of the weights in one file); "
                            f"{'not fixed, nothing written: ' if fix_prefixes else ''}save the one model's "
                            "state_dict alone", details)
            return report
        if counted < len(obj):
            why = (f"the file mixes prefixed and plain keys (two state_dicts merged?), which no single model "
                   f"saves")
        else:
            why = "; ".join(f"'{p}': {WRAPPER_PREFIXES[p]}" for p in prefixes)
        if not fix_prefixes:
            report.add(BAD, f"{counted} of {len(obj)} keys start with {shown}: {why}; `--fix-prefixes` strips them")
            unfixed_prefixes = shown
        elif not intact:
            report.add(BAD, f"keys start with {shown}; not fixed, because the file does not match manifest.json "
                            "(fixing would record a damaged file as good)")
            unfixed_prefixes = shown
        else:
            try:
                data = _rewrite_atomically(path, state_dict)
                note = "not in manifest.json, nothing to update"
                if entry is not None:
                    entry.update(sha256=file_sha256(path), size=len(data),
                                 fingerprint=state_dict_fingerprint(state_dict), keys=len(state_dict))
                    write_manifest(directory, manifest)
                    note = "manifest.json's sha256, size and fingerprint updated"
            except OSError as exc:
                reason = "read-only" if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else (
                    exc.strerror or exc.__class__.__name__)
                report.add(BAD, f"cannot rewrite {path}: {reason}; copy the folder somewhere writable and run "
                                "--fix-prefixes there")
                return report
            report.add(OK, f"stripped {shown} from {counted} keys and rewrote {name} ({note})")
    else:
        report.add(OK, "no 'module.' or '_orig_mod.' prefixes")

    if report.model is None:
        fitting = [m for m in MODEL_NAMES if not key_diff_lines(models.shapes(m), state_dict)[0]]
        if not fitting:
            report.add(SKIP, "strict load not checked: its keys fit no model of the kit, and neither the file name "
                             "nor manifest.json names one")
            return report
        report.model = fitting[0]
        report.add(SKIP, f"not a handout file name and not in manifest.json; its keys fit {report.model}")
    try:
        expected = models.shapes(report.model)
    except Exception as exc:   # ModelSourceError: a kit file missing
        report.add(BAD, f"strict load not checked: cannot build {report.model} ({_short(exc, 200)})")
        return report
    summary, details = key_diff_lines(expected, state_dict)
    if summary:
        others = [m for m in MODEL_NAMES if m != report.model and not key_diff_lines(models.shapes(m), state_dict)[0]]
        guess = f"; it is a {others[0]} checkpoint under {report.model}'s name" if others else ""
        report.add(BAD, f"wrong model: the keys do not fit {report.model} ({summary}){guess}", details)
        return report
    model = models.get(report.model)
    dtype_problem = dtype_mismatch(model.state_dict(), state_dict, report.model)
    if dtype_problem:
        report.add(BAD, *dtype_problem)
    try:
        model.load_state_dict(state_dict, strict=True)
    except Exception as exc:
        report.add(BAD, f"strict load into {report.model} fails ({_short(exc)})")
        return report
    if unfixed_prefixes:
        report.add(BAD, f"strict load into {report.model} only after stripping {unfixed_prefixes} (the handout's "
                        "load_state_dict would fail: use --fix-prefixes)")
        return report
    report.add(OK, f"strict load into {report.model} ({type(model).__name__})")
    _accuracy_check(report, model, entry, test_data)
    return report


def dtype_mismatch(model_state, state_dict, model_name: str):
    """(text, details) when some tensor's dtype differs from the model's own (a float16, bfloat16 or
    int8 copy: load_state_dict casts silently, the precision is already gone), else None."""
    import torch
    differing = [(k, state_dict[k].dtype, v.dtype) for k, v in model_state.items()
                 if k in state_dict and state_dict[k].dtype != v.dtype]
    if not differing:
        return None

    def name(dtype):
        return str(dtype).removeprefix("torch.")
    kinds = sorted({f"{name(a)} where {model_name} has {name(b)}" for _, a, b in differing})
    lossy = any(b.is_floating_point and (not a.is_floating_point or torch.finfo(a).bits < torch.finfo(b).bits)
                for _, a, b in differing)
    details = [f"{k}: {name(a)} vs {name(b)}" for k, a, b in differing[:KEYS_SHOWN]]
    if len(differing) > KEYS_SHOWN:
        details.append(f"... and {len(differing) - KEYS_SHOWN} more")
    return (f"{len(differing)} of {len(state_dict)} tensors have another dtype than the model's "
            f"({'; '.join(kinds)}){': a reduced-precision copy, the lost precision does not come back' if lossy else ''}; "
            "save the state_dict of the model as trained, in its own dtypes", details)


def verify_directory(directory, *, fix_prefixes: bool = False, data_dir=None, models=None,
                     allow_synthetic: bool = False, trust_synthetic: bool = False) -> VerifyResult:
    """Check every checkpoint of ``directory``: the handout's files (or those of ``models``), every
    file manifest.json lists and every *.ckpt there."""
    directory = Path(directory)
    result = VerifyResult(directory)
    if not directory.is_dir():
        result.problems.append(f"{directory} is not a folder: create it and download the checkpoints and their "
                               f"manifest.json into it from {WHERE_TO_GET}")
        return result
    manifest_exists = (directory / MANIFEST_NAME).is_file()
    try:
        manifest = read_manifest(directory)
    except ManifestError as exc:
        result.problems.append(str(exc))
        manifest, manifest_exists = {"format": 1, "checkpoints": {}}, False
    else:
        if not manifest_exists:
            result.problems.append(f"no {MANIFEST_NAME} in {directory}: no sha256 to check the files against; "
                                   f"download it with the checkpoints from {WHERE_TO_GET}")
    entries = manifest["checkpoints"]
    if MANIFEST_NAME in entries:
        result.problems.append(f"{MANIFEST_NAME} lists an entry named {MANIFEST_NAME} (itself): not a checkpoint, "
                               "not checked; delete that entry")
    wanted = set(models or MODEL_NAMES)

    def chosen(entry_model) -> bool:
        # An entry whose model is not a known name (a list, a dict, a typo) is always checked: it is broken.
        return models is None or not isinstance(entry_model, str) or entry_model not in MODEL_NAMES \
            or entry_model in wanted
    names = [CHECKPOINT_NAMES[m] for m in MODEL_NAMES if m in wanted]
    names += sorted(n for n, e in entries.items() if n not in names and n != MANIFEST_NAME and chosen(e.get("model")))
    names += sorted(p.name for p in directory.glob("*.ckpt") if p.name not in names
                    and (models is None or MODEL_OF_CHECKPOINT.get(p.name) in wanted))
    cached_models, test_data = _Models(), None
    for name in names:
        if test_data is None and describe_not_a_file(directory / name) is None:
            test_data = _TestData(data_dir, trust_synthetic=trust_synthetic)
        result.files.append(check_file(directory, name, entries.get(name), cached_models, test_data,
                                       listed=name in entries, manifest_exists=manifest_exists,
                                       fix_prefixes=fix_prefixes, manifest=manifest,
                                       allow_synthetic=allow_synthetic))
    return result


def format_result(result: VerifyResult) -> str:
    lines = [f"Checking the checkpoints in {result.directory}/ against {MANIFEST_NAME}"]
    lines += [f"{BAD} {problem}" for problem in result.problems]
    for report in result.files:
        lines.append(f"{report.name}" + (f" ({report.model})" if report.model else ""))
        for check in report.checks:
            lines.append(f"  {check.status} {check.text}")
            lines += [f"      {detail}" for detail in check.details]
    checks = [c for r in result.files for c in r.checks]
    passed = sum(c.status == OK for c in checks)
    failed = sum(c.status == BAD for c in checks) + len(result.problems)
    skipped = sum(c.status == SKIP for c in checks)
    counts = f"{passed} passed, {failed} failed" + (f", {skipped} not run or not compared" if skipped else "")
    if result.ok:
        lines.append(f"{OK} {len(result.files)} checkpoint(s) verified: {counts}")
    else:
        bad = [r.name for r in result.files if r.failed]
        lines.append(f"{BAD} {counts}" + (f"; fix {', '.join(bad)}" if bad else ""))
    return "\n".join(lines)


def run_verify(args) -> int:
    """The CLI: print one line per check and a summary; 0 when every check passes, else 1."""
    models = getattr(args, "model", None)
    result = verify_directory(args.dir, fix_prefixes=getattr(args, "fix_prefixes", False),
                              data_dir=getattr(args, "data", None), models=[models] if isinstance(models, str) else models,
                              allow_synthetic=getattr(args, "allow_synthetic", False),
                              trust_synthetic=getattr(args, "trust_synthetic", False))
    print(format_result(result))
    return 0 if result.ok else 1


# ---------------------------------------------------------------------------------------------- record

def record_file(path, *, model_name: str | None = None, epochs: int | None = None, recipe: str | None = None,
                test_accuracy: float | None = None) -> tuple[bool, str]:
    """Check a checkpoint a course already has (weights_only load, a flat CPU state_dict without
    wrapper prefixes, the model's dtypes, a strict load) and merge its entry into the manifest.json
    beside it. (True, what was recorded) or (False, one sentence why not)."""
    path = Path(path)
    what = describe_not_a_file(path)
    if what:
        return False, f"{path} is {what}" if what != "missing" else f"{path} does not exist"
    model_name = model_name or MODEL_OF_CHECKPOINT.get(path.name)
    if model_name is None:
        return False, (f"{path.name} is not a handout file name ({', '.join(CHECKPOINT_NAMES.values())}): "
                       f"say which model it is with --model {'|'.join(MODEL_NAMES)}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        return False, f"cannot read {path} ({exc.strerror or exc.__class__.__name__})"
    obj, locations, problem = load_weights_only(data)
    problem = problem or state_dict_problem(obj)
    if problem:
        return False, f"{path.name}: {problem}"
    if any(loc != "cpu" for loc in locations):
        return False, f"{path.name}: saved from {', '.join(sorted(locations - {'cpu'}))} tensors; save them from the CPU"
    if wrapper_prefixes(obj):
        return False, (f"{path.name}: keys start with {' and '.join(repr(p) for p in wrapper_prefixes(obj))}; "
                       f"run `python -m autograder checkpoints verify {path.parent} --fix-prefixes` first")
    model = build_model(model_name)
    summary, _ = key_diff_lines({k: tuple(v.shape) for k, v in model.state_dict().items()}, obj)
    if summary:
        return False, f"{path.name}: the keys do not fit {model_name} ({summary}); is --model right?"
    dtypes = dtype_mismatch(model.state_dict(), obj, model_name)
    if dtypes:
        return False, f"{path.name}: {dtypes[0]}"
    try:
        model.load_state_dict(obj, strict=True)
    except Exception as exc:
        return False, f"{path.name}: strict load into {model_name} fails ({_short(exc)})"
    from autograder.checkpoints.manifest import checkpoint_entry, record_checkpoint
    entry = checkpoint_entry(path, model_name, obj, recipe=recipe or "unknown", epochs=epochs or 0, seed=0,
                             test_accuracy=test_accuracy, synthetic=False, device="unknown")
    # Recorded, not trained here: what is not known stays null rather than made up.
    entry.update(epochs=epochs, seed=None, device=None)
    try:
        manifest_path = record_checkpoint(path.parent, path.name, entry)
    except (OSError, ManifestError) as exc:
        return False, f"cannot write {path.parent / MANIFEST_NAME} ({getattr(exc, 'strerror', None) or exc})"
    accuracy = "no test accuracy" if test_accuracy is None else f"test accuracy {test_accuracy:.2f}%"
    return True, (f"{path.name}: {model_name}, {entry['keys']} keys, strict load ok; recorded in {manifest_path} "
                  f"(epochs {epochs if epochs is not None else 'unknown'}, recipe {entry['recipe']}, {accuracy})")


def run_record(args) -> int:
    """The CLI for `checkpoints record FILE...`: 0 when every file was recorded, else 1."""
    failed = 0
    for path in args.files:
        ok, text = record_file(path, model_name=getattr(args, "model", None), epochs=getattr(args, "epochs", None),
                               recipe=getattr(args, "recipe", None), test_accuracy=getattr(args, "test_accuracy", None))
        print(f"{OK if ok else BAD} {text}")
        failed += not ok
    return 1 if failed else 0
