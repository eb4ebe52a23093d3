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

import io
import os
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from autograder.checkpoints.manifest import (MANIFEST_NAME, ManifestError, file_sha256, read_manifest,
                                             state_dict_fingerprint, write_manifest)
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
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
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
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
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


def strip_prefixes(state_dict) -> dict:
    """The state_dict with every wrapper prefix removed from the start of its keys."""
    stripped = {}
    for key, tensor in state_dict.items():
        while key.startswith(tuple(WRAPPER_PREFIXES)):
            key = key[len(next(p for p in WRAPPER_PREFIXES if key.startswith(p))):]
        stripped[key] = tensor
    return stripped


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
                               f"the file the manifest describes (another version?); download both again from {WHERE_TO_GET}")
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
    where = f"{'the SYNTHETIC CIFAR-10' if data.splits.synthetic else 'CIFAR-10'} in {data.root}"
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
    """The CIFAR-10 test set for the accuracy check, loaded once, or why there is none."""

    def __init__(self, data_dir: Path | None):
        self.splits = None
        self.skip_reason = ""
        self.skip_status = SKIP
        explicit = data_dir is not None
        self.root = Path(data_dir) if explicit else Path(os.environ.get("CIFAR10_ROOT", "data"))
        if not (self.root / "cifar-10-batches-py").is_dir():
            self.skip_reason = f"no CIFAR-10 in {self.root}/ (cifar-10-batches-py/); give --data DIR"
            self.skip_status = BAD if explicit else SKIP
            return
        try:
            from autograder.checkpoints.data import evaluate, load_cifar10
        except ImportError as exc:
            self.skip_reason = f"autograder.checkpoints.data is not available ({_short(exc)})"
            return
        try:
            # smoke=True reads a synthetic set as such (it writes one only where there is none, and we
            # checked there is); download=False: verifying never fetches 170 MB behind a TA's back.
            self.splits = load_cifar10(self.root, smoke=True, download=False)
        except Exception as exc:   # DataMissingError and damaged files: one sentence either way
            self.skip_reason = f"CIFAR-10 in {self.root}/ cannot be read ({_short(exc, 200)})"
            self.skip_status = BAD if explicit else SKIP
            return
        import torch
        self.evaluate = evaluate
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_file(directory: Path, name: str, entry: dict | None, models: _Models, test_data: _TestData,
               *, listed: bool, manifest_exists: bool, fix_prefixes: bool, manifest: dict) -> FileReport:
    path = directory / name
    model_name = MODEL_OF_CHECKPOINT.get(name) or (entry or {}).get("model")
    report = FileReport(name, model_name if model_name in MODEL_NAMES else None)
    if not path.is_file():
        report.add(BAD, f"missing: {path} is not there; download it from {WHERE_TO_GET} into {directory}/, "
                        f"then run `python -m autograder checkpoints verify {directory}` again")
        return report
    if manifest_exists and not listed:
        report.add(BAD, f"not listed in manifest.json, so its sha256 cannot be checked: fetch the manifest.json "
                        "that came with it, or record it (`python -m autograder checkpoints train` writes both)")
    if entry is not None:
        recorded_model = entry.get("model")
        if recorded_model not in MODEL_NAMES:
            report.add(BAD, f"manifest.json says the model is {recorded_model!r}; the kit knows {', '.join(MODEL_NAMES)}")
        elif name in MODEL_OF_CHECKPOINT and recorded_model != MODEL_OF_CHECKPOINT[name]:
            report.add(BAD, f"manifest.json says this is a {recorded_model} checkpoint, but the notebook loads "
                            f"{name} into {MODEL_OF_CHECKPOINT[name]}")
    data = path.read_bytes()
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
    if prefixes:
        why = "; ".join(f"'{p}': {WRAPPER_PREFIXES[p]}" for p in prefixes)
        counted = sum(1 for k in obj if k.startswith(tuple(WRAPPER_PREFIXES)))
        if not fix_prefixes:
            report.add(BAD, f"{counted} of {len(obj)} keys start with {' and '.join(repr(p) for p in prefixes)}, "
                            f"which no model's own keys do: {why}; `--fix-prefixes` strips them")
        elif not intact:
            report.add(BAD, f"keys start with {' and '.join(repr(p) for p in prefixes)}; not fixed, because the file "
                            "does not match manifest.json (fixing would record a damaged file as good)")
        else:
            data = _rewrite_atomically(path, state_dict)
            note = "not in manifest.json, nothing to update"
            if entry is not None:
                entry.update(sha256=file_sha256(path), size=len(data), fingerprint=state_dict_fingerprint(state_dict),
                             keys=len(state_dict))
                write_manifest(directory, manifest)
                note = "manifest.json's sha256, size and fingerprint updated"
            report.add(OK, f"stripped {' and '.join(repr(p) for p in prefixes)} from {counted} keys and rewrote "
                           f"{name} ({note})")
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
    try:
        model.load_state_dict(state_dict, strict=True)
    except Exception as exc:
        report.add(BAD, f"strict load into {report.model} fails ({_short(exc)})")
        return report
    report.add(OK, f"strict load into {report.model} ({type(model).__name__})")
    _accuracy_check(report, model, entry, test_data)
    return report


def verify_directory(directory, *, fix_prefixes: bool = False, data_dir=None, models=None) -> VerifyResult:
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
    wanted = set(models or MODEL_NAMES)
    names = [CHECKPOINT_NAMES[m] for m in MODEL_NAMES if m in wanted]
    names += sorted(n for n, e in entries.items() if n not in names and (models is None or e.get("model") in wanted))
    names += sorted(p.name for p in directory.glob("*.ckpt") if p.name not in names
                    and (models is None or MODEL_OF_CHECKPOINT.get(p.name) in wanted))
    cached_models, test_data = _Models(), None
    for name in names:
        if test_data is None and (directory / name).is_file():
            test_data = _TestData(data_dir)
        result.files.append(check_file(directory, name, entries.get(name), cached_models, test_data,
                                       listed=name in entries, manifest_exists=manifest_exists,
                                       fix_prefixes=fix_prefixes, manifest=manifest))
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
                              data_dir=getattr(args, "data", None), models=[models] if isinstance(models, str) else models)
    print(format_result(result))
    return 0 if result.ok else 1
