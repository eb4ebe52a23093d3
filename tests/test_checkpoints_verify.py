"""checkpoints/manifest.json and `python -m autograder checkpoints verify`.

No training: the checkpoints are freshly initialised models saved as the trainer saves
them (a CPU state_dict), and each way a course's file goes wrong is made by hand.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from autograder.checkpoints import manifest as manifest_module
from autograder.checkpoints.manifest import (MANIFEST_NAME, ManifestError, checkpoint_entry, read_manifest,
                                             record_checkpoint, state_dict_fingerprint)
from autograder.checkpoints.models import CHECKPOINT_NAMES, build_model
from autograder.checkpoints.verify import (ACCURACY_TOLERANCE, FileReport, _accuracy_check, format_result,
                                           run_verify, verify_directory)

ROOT = Path(__file__).resolve().parents[1]
VGG, RESNET = CHECKPOINT_NAMES["vgg16"], CHECKPOINT_NAMES["resnet50"]


def _save(directory: Path, name: str, model_name: str, state_dict, *, accuracy=None, synthetic=False) -> dict:
    torch.save(state_dict, directory / name)
    entry = checkpoint_entry(directory / name, model_name, state_dict, recipe="fast", epochs=3, seed=0,
                             test_accuracy=accuracy, synthetic=synthetic, device="cpu")
    record_checkpoint(directory, name, entry)
    return entry


@pytest.fixture(scope="module")
def state_dicts():
    torch.manual_seed(0)
    return {name: build_model(name).state_dict() for name in ("vgg16", "resnet50")}


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory, state_dicts):
    directory = tmp_path_factory.mktemp("good")
    _save(directory, VGG, "vgg16", state_dicts["vgg16"], accuracy=91.46)
    _save(directory, RESNET, "resnet50", state_dicts["resnet50"], accuracy=12.5)
    return directory


@pytest.fixture
def ckpt_dir(good_dir, tmp_path):
    directory = tmp_path / "checkpoints"
    shutil.copytree(good_dir, directory)
    return directory


@pytest.fixture(autouse=True)
def no_default_cifar10(tmp_path, monkeypatch):
    """The default data folder ($CIFAR10_ROOT, else data/) holds no CIFAR-10 unless a test makes one."""
    monkeypatch.setenv("CIFAR10_ROOT", str(tmp_path / "no-cifar10"))


def _verify(directory, **kwargs):
    result = verify_directory(directory, **kwargs)
    return result, format_result(result)


def _rerecord(directory: Path, name: str) -> None:
    """Point the manifest's sha256 and size at the file as it is now."""
    manifest = read_manifest(directory)
    manifest["checkpoints"][name].update(sha256=manifest_module.file_sha256(directory / name),
                                         size=(directory / name).stat().st_size)
    manifest_module.write_manifest(directory, manifest)


def _lines(report: FileReport, status: str) -> list[str]:
    return [c.text for c in report.checks if c.status == status]


def _file(result, name) -> FileReport:
    return next(r for r in result.files if r.name == name)


# ------------------------------------------------------------------------------------------- manifest

def test_manifest_round_trip_keeps_every_field_and_other_entries(tmp_path, state_dicts):
    entry = _save(tmp_path, VGG, "vgg16", state_dicts["vgg16"], accuracy=91.456, synthetic=False)
    assert set(entry) == set(manifest_module.ENTRY_FIELDS)
    assert entry["sha256"] == hashlib.sha256((tmp_path / VGG).read_bytes()).hexdigest()
    assert entry["size"] == (tmp_path / VGG).stat().st_size
    # The handout's numbers for vgg.vgg16() (checkpoints/README.md): parameters, not BatchNorm buffers.
    assert (entry["model"], entry["parameters"], entry["keys"]) == ("vgg16", 14_983_498, 35)
    assert entry["test_accuracy"] == 91.46 and entry["synthetic"] is False
    assert entry["torch"] == torch.__version__ and entry["date"].endswith("+00:00")
    second = _save(tmp_path, RESNET, "resnet50", state_dicts["resnet50"], accuracy=None, synthetic=True)
    assert (second["parameters"], second["keys"]) == (14_750_730, 373)

    on_disk = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert on_disk["format"] == 1 and set(on_disk["checkpoints"]) == {VGG, RESNET}
    assert read_manifest(tmp_path)["checkpoints"][VGG] == entry
    # no temp file left behind (the empty lock file stays: removing it would race with a waiting writer)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [manifest_module.LOCK_NAME]


def test_fingerprint_depends_on_keys_and_shapes_not_on_weights(state_dicts):
    vgg = state_dicts["vgg16"]
    retrained = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in vgg.items()}
    assert state_dict_fingerprint(retrained) == state_dict_fingerprint(vgg)
    renamed = {("module." + k): v for k, v in vgg.items()}
    assert state_dict_fingerprint(renamed) != state_dict_fingerprint(vgg)
    key = next(k for k, v in vgg.items() if v.dim() == 2)
    reshaped = dict(vgg, **{key: torch.zeros(vgg[key].shape[0] + 1, vgg[key].shape[1])})
    assert state_dict_fingerprint(reshaped) != state_dict_fingerprint(vgg)
    half = dict(vgg, **{key: vgg[key].half()})
    assert state_dict_fingerprint(half) != state_dict_fingerprint(vgg)


@pytest.mark.parametrize("text, says", [
    ("{not json", "is not valid JSON"),
    ('["a list"]', 'has no "checkpoints" object'),
    ('{"format": 2, "checkpoints": {}}', "is format 2"),
    ('{"checkpoints": {"x.ckpt": 3}}', "is not an object"),
    ('{"checkpoints": {"../outside.ckpt": {}}}', "'../outside.ckpt' is not a plain file name"),
])
def test_a_broken_manifest_is_one_sentence(tmp_path, text, says):
    (tmp_path / MANIFEST_NAME).write_text(text)
    with pytest.raises(ManifestError) as caught:
        read_manifest(tmp_path)
    assert says in str(caught.value) and "\n" not in str(caught.value)
    result, out = _verify(tmp_path)
    assert not result.ok and says in out and "Traceback" not in out


def test_no_manifest_reads_as_empty_and_record_creates_the_folder(tmp_path):
    assert read_manifest(tmp_path / "none") == {"format": 1, "checkpoints": {}}
    path = record_checkpoint(tmp_path / "new", "a.ckpt", {"sha256": "0" * 64, "size": 1})
    assert json.loads(path.read_text())["checkpoints"] == {"a.ckpt": {"sha256": "0" * 64, "size": 1}}


# ------------------------------------------------------------------------------------------- verify: pass

def test_verify_passes_on_good_files_through_the_cli(good_dir, tmp_path):
    run = subprocess.run([sys.executable, "-m", "autograder", "checkpoints", "verify", str(good_dir),
                          "--data", str(tmp_path / "absent")], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    # --data names a folder without CIFAR-10: asked for and absent is a failure, said as such.
    assert run.returncode == 1, run.stdout + run.stderr
    assert "no CIFAR-10 in" in run.stdout and "Traceback" not in run.stderr
    # Without --data, no CIFAR-10 in the default folder is no failure: the check is said not to have run.
    run = subprocess.run([sys.executable, "-m", "autograder", "checkpoints", "verify", str(good_dir)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "✗" not in out
    for needed in ("sha256 and size match manifest.json", "loads with torch.load(weights_only=True",
                   "a flat state_dict of 35 CPU tensors", "a flat state_dict of 373 CPU tensors",
                   "strict load into vgg16 (VGG)", "strict load into resnet50 (ResNet50_layer4)",
                   "test accuracy not checked: no CIFAR-10", "2 checkpoint(s) verified"):
        assert needed in out, needed


def test_default_folder_is_checkpoints_in_the_working_directory(good_dir, tmp_path, monkeypatch):
    shutil.copytree(good_dir, tmp_path / "checkpoints")
    monkeypatch.chdir(tmp_path)
    from autograder.cli import build_parser
    args = build_parser().parse_args(["checkpoints", "verify"])
    assert args.dir == Path("checkpoints") and not args.fix_prefixes and args.data is None
    assert run_verify(args) == 0


# ------------------------------------------------------------------------------------------- verify: fail

def test_a_flipped_byte_is_corrupted_not_truncated(ckpt_dir):
    data = bytearray((ckpt_dir / VGG).read_bytes())
    data[len(data) // 2] ^= 0x01      # inside the tensor data: torch still loads it
    (ckpt_dir / VGG).write_bytes(bytes(data))
    result, out = _verify(ckpt_dir)
    assert not result.ok and run_verify(argparse.Namespace(dir=ckpt_dir)) == 1
    failed = _lines(_file(result, VGG), "✗")
    assert len(failed) == 1 and failed[0].startswith("corrupted: the size is right but the sha256 differs")
    assert "release assets or LMS" in failed[0]
    assert not _file(result, RESNET).failed
    assert "fix vgg16_epoch250.ckpt" in out.splitlines()[-1]


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_a_truncated_file_is_truncated_and_unreadable(ckpt_dir, keep):
    data = (ckpt_dir / RESNET).read_bytes()
    (ckpt_dir / RESNET).write_bytes(data[:int(len(data) * keep)])
    result, out = _verify(ckpt_dir)
    failed = _lines(_file(result, RESNET), "✗")
    assert failed[0].startswith("truncated: ") and "an interrupted download or upload" in failed[0]
    assert failed[1].startswith("unreadable: torch.load cannot read it") and len(failed) == 2
    assert "Traceback" not in out and all(len(line) < 400 for line in out.splitlines())


def test_a_file_grown_at_the_end_has_the_wrong_size(ckpt_dir):
    with open(ckpt_dir / VGG, "ab") as handle:
        handle.write(b"\0" * 10)
    failed = _lines(_file(_verify(ckpt_dir)[0], VGG), "✗")
    assert failed and failed[0].startswith("wrong size: ")


def test_the_wrong_model_under_the_right_name_shows_a_capped_key_diff(ckpt_dir, state_dicts):
    # A course's manifest recorded correctly for the file that is there, but the file is ResNet's.
    _save(ckpt_dir, VGG, "vgg16", state_dicts["resnet50"])
    result, out = _verify(ckpt_dir)
    report = _file(result, VGG)
    failed = [c for c in report.checks if c.status == "✗"]
    assert len(failed) == 1
    assert failed[0].text == ("wrong model: the keys do not fit vgg16 (35 missing, 373 unexpected); "
                              "it is a resnet50 checkpoint under vgg16's name")
    details = failed[0].details
    assert details[0] == "missing (the model has them, the file does not) (35):"
    assert "  ... and 30 more" in details and "  ... and 368 more" in details
    assert len(details) == 2 * (1 + 5 + 1)
    assert "      missing (the model has them" in out


def test_a_wrong_shape_is_listed_with_both_shapes(ckpt_dir, state_dicts):
    vgg = dict(state_dicts["vgg16"])
    key = next(k for k, v in vgg.items() if v.dim() == 2)
    vgg[key] = torch.zeros(vgg[key].shape[0], vgg[key].shape[1] + 1)
    _save(ckpt_dir, VGG, "vgg16", vgg)
    check = _file(_verify(ckpt_dir)[0], VGG).failed[0]
    assert check.text == "wrong model: the keys do not fit vgg16 (1 of the wrong shape)"
    expected = vgg[key].shape[0], vgg[key].shape[1]
    assert check.details[1] == f"  {key}: {expected[0]}x{expected[1]} vs {expected[0]}x{expected[1] - 1}"


@pytest.mark.parametrize("prefix, what", [
    ("module.", "nn.DataParallel or DistributedDataParallel"),
    ("_orig_mod.", "torch.compile()d model"),
    ("_orig_mod.module.", "torch.compile()d model"),
])
def test_wrapper_prefixes_are_explained_and_fixed(ckpt_dir, state_dicts, prefix, what):
    prefixed = {prefix + k: v for k, v in state_dicts["resnet50"].items()}
    _save(ckpt_dir, RESNET, "resnet50", prefixed)      # recorded as trained (e.g. with DataParallel)
    result, _ = _verify(ckpt_dir)
    failed = _lines(_file(result, RESNET), "✗")
    assert len(failed) == 2 and failed[0].startswith("373 of 373 keys start with ")
    assert what in failed[0] and "--fix-prefixes" in failed[0]
    # The strict load runs on the keys without the prefix, but says the handout's own load would fail.
    shown = " and ".join(repr(p + ".") for p in prefix.rstrip(".").split("."))
    assert failed[1] == (f"strict load into resnet50 only after stripping {shown} (the handout's load_state_dict "
                         "would fail: use --fix-prefixes)")
    assert not any(line.startswith("strict load") for line in _lines(_file(result, RESNET), "✓"))

    result, _ = _verify(ckpt_dir, fix_prefixes=True)
    assert result.ok, format_result(result)
    assert any(line.startswith("stripped ") and "manifest.json's sha256, size and fingerprint updated" in line
               for line in _lines(_file(result, RESNET), "✓"))
    fixed = torch.load(ckpt_dir / RESNET, weights_only=True, map_location="cpu")
    assert list(fixed) == list(state_dicts["resnet50"])
    build_model("resnet50").load_state_dict(fixed, strict=True)   # the handout's own load works
    entry = read_manifest(ckpt_dir)["checkpoints"][RESNET]
    assert entry["sha256"] == hashlib.sha256((ckpt_dir / RESNET).read_bytes()).hexdigest()
    assert entry["size"] == (ckpt_dir / RESNET).stat().st_size
    assert entry["fingerprint"] == state_dict_fingerprint(state_dicts["resnet50"])
    assert _verify(ckpt_dir)[0].ok     # and a plain verify now passes


def test_fix_prefixes_refuses_a_file_that_does_not_match_the_manifest(ckpt_dir, state_dicts):
    _save(ckpt_dir, VGG, "vgg16", state_dicts["vgg16"])
    torch.save({"module." + k: v for k, v in state_dicts["vgg16"].items()}, ckpt_dir / VGG)   # not recorded
    before = (ckpt_dir / VGG).read_bytes()
    result, _ = _verify(ckpt_dir, fix_prefixes=True)
    failed = _lines(_file(result, VGG), "✗")
    assert any("not fixed, because the file does not match manifest.json" in line for line in failed)
    assert (ckpt_dir / VGG).read_bytes() == before


def test_a_missing_file_says_where_to_get_it(ckpt_dir):
    (ckpt_dir / VGG).unlink()
    result, out = _verify(ckpt_dir)
    failed = _lines(_file(result, VGG), "✗")
    assert failed == [f"missing: {ckpt_dir / VGG} is not there; download it from the course's release assets or "
                      f"LMS (see checkpoints/README.md) into {ckpt_dir}/, then run "
                      f"`python -m autograder checkpoints verify {ckpt_dir}` again"]
    assert not _file(result, RESNET).failed and not result.ok


def test_a_handout_file_the_manifest_does_not_list_is_missing_too(tmp_path, state_dicts):
    _save(tmp_path, VGG, "vgg16", state_dicts["vgg16"])   # only VGG trained so far
    result, _ = _verify(tmp_path)
    assert _lines(_file(result, RESNET), "✗")[0].startswith("missing: ")
    assert _verify(tmp_path, models=["vgg16"])[0].ok    # --model vgg16 checks VGG's alone


def test_files_the_manifest_does_not_list_and_no_manifest_at_all(ckpt_dir, state_dicts):
    torch.save(state_dicts["vgg16"], ckpt_dir / "vgg16_mine.ckpt")
    result, _ = _verify(ckpt_dir)
    mine = _file(result, "vgg16_mine.ckpt")
    assert _lines(mine, "✗") == ["not listed in manifest.json, so its sha256 cannot be checked: fetch the "
                                 "manifest.json that came with it, or record it (`python -m autograder "
                                 "checkpoints record FILE`)"]
    assert mine.model == "vgg16"   # found by its keys, and strictly loaded
    assert "strict load into vgg16 (VGG)" in _lines(mine, "✓")

    (ckpt_dir / MANIFEST_NAME).unlink()
    result, out = _verify(ckpt_dir)
    assert not result.ok and result.problems[0].startswith(f"no manifest.json in {ckpt_dir}")
    assert "strict load into resnet50 (ResNet50_layer4)" in out   # the other checks still run


def test_a_manifest_entry_naming_another_model(ckpt_dir):
    manifest = read_manifest(ckpt_dir)
    manifest["checkpoints"][VGG]["model"] = "resnet50"
    manifest_module.write_manifest(ckpt_dir, manifest)
    failed = _lines(_file(_verify(ckpt_dir)[0], VGG), "✗")
    assert failed == ["manifest.json says this is a resnet50 checkpoint, but the notebook loads "
                      "vgg16_epoch250.ckpt into vgg16"]


class Unsafe:
    """A class of this test module: never on torch's weights_only allow-list."""


@pytest.mark.parametrize("make, says", [
    # torch.save(model): the whole module, pickled by class.
    (lambda sd: torch.nn.Sequential(torch.nn.Linear(2, 2)),
     "not weights-only: the file holds Python objects besides tensors (first: torch.nn.modules.container.Sequential)"),
    (lambda sd: {**sd, "args": argparse.Namespace(lr=0.1)}, "(first: argparse.Namespace)"),
    (lambda sd: {"model": sd, "extra": Unsafe()}, "Unsafe)"),
    (lambda sd: {"state_dict": sd, "epoch": 250}, "not a flat state_dict: it holds 'state_dict', 'epoch'"),
    (lambda sd: {**sd, "epoch": 250}, "not a flat state_dict: 1 value(s) are not tensors (e.g. 'epoch': int)"),
    (lambda sd: [sd[k] for k in sd], "not a state_dict: the file holds a list"),
])
def test_a_checkpoint_that_is_no_state_dict_of_tensors_fails_in_one_line(ckpt_dir, state_dicts, make, says):
    torch.save(make(state_dicts["vgg16"]), ckpt_dir / VGG)
    _rerecord(ckpt_dir, VGG)   # the manifest describes this very file: only its content is wrong
    result, out = _verify(ckpt_dir)
    failed = _lines(_file(result, VGG), "✗")
    assert len(failed) == 1 and says in failed[0], failed
    assert "Traceback" not in out and "\x1b[" not in out and "WeightsUnpickler" not in out


# ------------------------------------------------------------------------------------------- accuracy

class _FakeData:
    """The accuracy check's view of the test data, with a measured accuracy fixed in advance."""

    def __init__(self, measured, synthetic):
        self.skip_reason, self.root, self.source, self.device = "", Path("data"), "--data", "cpu"
        self.splits = argparse.Namespace(test=argparse.Namespace(targets=[0] * 10_000), synthetic=synthetic)
        self.evaluate = lambda model, test, device: measured


@pytest.mark.parametrize("measured, recorded, data_synthetic, recorded_synthetic, status, says", [
    (91.2, 91.46, False, False, "✓", "within 0.5 points"),
    (91.46 + ACCURACY_TOLERANCE + 0.1, 91.46, False, False, "✗", "these are not the weights that were measured"),
    (55.0, 91.46, False, False, "✗", "more than 0.5 points apart"),
    (10.0, 12.5, True, True, "-", "not compared (synthetic accuracies say nothing about the model)"),
    (91.0, 12.5, False, True, "-", "measured on synthetic data: not compared"),
    (10.0, 91.46, True, False, "-", "the SYNTHETIC CIFAR-10"),
    (91.0, None, False, False, "-", "records none to compare with"),
])
def test_accuracy_is_compared_within_the_tolerance_and_never_on_synthetic_data(
        measured, recorded, data_synthetic, recorded_synthetic, status, says):
    report = FileReport(VGG, "vgg16")
    _accuracy_check(report, torch.nn.Identity(), {"test_accuracy": recorded, "synthetic": recorded_synthetic},
                    _FakeData(measured, data_synthetic))
    (check,) = report.checks
    assert check.status == status and says in check.text, check.text


def test_accuracy_on_the_synthetic_cifar10_runs_the_trainers_evaluation(good_dir, tmp_path):
    from autograder.checkpoints import data
    from autograder.checkpoints.notebook_cells import notebook_namespace
    notebook_namespace()["write_synthetic_cifar10"](str(tmp_path / "data"), n_train=50, n_test=20, seed=1)
    assert data.load_cifar10(tmp_path / "data", smoke=True, download=False).synthetic
    result, out = _verify(good_dir, data_dir=tmp_path / "data", trust_synthetic=True)
    assert result.ok, out
    lines = [line for line in out.splitlines() if "test accuracy" in line]
    assert len(lines) == 2 and all("on the SYNTHETIC CIFAR-10" in line and "not compared" in line for line in lines)


# ------------------------------------------------------------------------------------------- the notebook

def _notebook_cell(tag: str) -> str:
    cells = json.loads((ROOT / "solutions" / "CNN_Implementation.ipynb").read_text(encoding="utf-8"))["cells"]
    return "".join(next(c for c in cells if tag in c.get("metadata", {}).get("tags", []))["source"])


def _run_checkpoint_cell(work: Path, monkeypatch, capsys) -> tuple[dict, str]:
    monkeypatch.chdir(work)
    monkeypatch.delenv("KIT_CHECKPOINT_DIR", raising=False)
    namespace = {"Path": Path, "os": __import__("os"), "json": json, "IN_COLAB": False, "ASK_FOR_UPLOAD": False,
                 "SMOKE": False, "DRIVE_DIR": work / "no-drive"}
    exec(compile(_notebook_cell("kit:checkpoints"), "kit:checkpoints", "exec"), namespace)
    return namespace, capsys.readouterr().out


def test_notebook_says_in_one_sentence_when_a_checkpoint_does_not_match_its_manifest(good_dir, tmp_path,
                                                                                     monkeypatch, capsys):
    work = tmp_path / "student"
    shutil.copytree(good_dir, work / "checkpoints")
    namespace, out = _run_checkpoint_cell(work, monkeypatch, capsys)
    assert f"✓ {VGG}" in out and f"✓ {RESNET}" in out and "✗" not in out
    assert out.count("; matches manifest.json)") == 2

    # A partial Colab upload: the first 40% of the file.
    data = (work / "checkpoints" / RESNET).read_bytes()
    (work / "checkpoints" / RESNET).write_bytes(data[:len(data) * 2 // 5])
    # A damaged copy of the right size.
    vgg = bytearray((work / "checkpoints" / VGG).read_bytes())
    vgg[-100] ^= 0xFF
    (work / "checkpoints" / VGG).write_bytes(bytes(vgg))
    namespace, out = _run_checkpoint_cell(work, monkeypatch, capsys)
    (resnet_line,) = [line for line in out.splitlines() if line.startswith(f"✗ {work}") and RESNET in line]
    assert resnet_line == (f"✗ {work / 'checkpoints' / RESNET}: {RESNET} is {len(data) * 2 // 5:,} bytes but "
                           f"manifest.json says {len(data):,} (an incomplete upload or download): download it "
                           "again (it is in the assignment zip on the course page) and replace this copy.")
    (vgg_line,) = [line for line in out.splitlines() if line.startswith(f"✗ {work}") and VGG in line]
    assert "has the right size but its content differs from what manifest.json lists (a damaged copy)" in vgg_line
    assert namespace["CHECKPOINT_PATHS"] == {VGG: None, RESNET: None}   # neither is loaded
    assert "RANDOM WEIGHTS" in out and "MISSING" not in out
    assert f"✗ every copy of {VGG} found was rejected (above): download it again (it is in the assignment zip" in out

    # The later load cell says the file was rejected, not that it was not found.
    namespace.update({"nn": torch.nn, "torch": torch, "np": __import__("numpy"), "time": __import__("time"),
                      "SMOKE": False, "UNDER_NBGRADER": False, "RESULTS": {}, "tqdm": None})
    exec(compile(_notebook_cell("kit:train-helpers"), "kit:train-helpers", "exec"), namespace)
    assert namespace["load_checkpoint"](build_model("vgg16"), VGG) is False
    out = capsys.readouterr().out
    assert f"!!! {VGG} rejected (damaged, see Setup): VGG runs from RANDOM WEIGHTS" in out and "not found" not in out

    # A damaged copy next to the notebook does not hide the good one in checkpoints/.
    shutil.copy(work / "checkpoints" / VGG, work / VGG)
    shutil.copy(work / "checkpoints" / MANIFEST_NAME, work / MANIFEST_NAME)
    shutil.copy(good_dir / VGG, work / "checkpoints" / VGG)
    namespace, out = _run_checkpoint_cell(work, monkeypatch, capsys)
    assert namespace["CHECKPOINT_PATHS"][VGG] == work / "checkpoints" / VGG
    assert f"✗ {work / VGG}: " in out and "Not used." in out and f"✓ {VGG}: {work / 'checkpoints' / VGG}" in out
    (work / VGG).unlink()
    (work / MANIFEST_NAME).unlink()

    # Without a manifest the notebook cannot check the file, and says so.
    (work / "checkpoints" / MANIFEST_NAME).unlink()
    namespace, out = _run_checkpoint_cell(work, monkeypatch, capsys)
    assert f"✓ {VGG}" in out and namespace["CHECKPOINT_PATHS"][VGG] is not None
    assert "; no manifest.json to check it against)" in out


def test_notebook_load_checkpoint_reports_an_unreadable_file_without_a_traceback(tmp_path, capsys):
    (tmp_path / "half.ckpt").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    namespace = {"nn": torch.nn, "torch": torch, "np": __import__("numpy"), "json": json, "Path": Path,
                 "time": __import__("time"), "CHECKPOINT_PATHS": {"vgg16_epoch250.ckpt": tmp_path / "half.ckpt"},
                 "SEARCH_DIRS": [], "SMOKE": False, "UNDER_NBGRADER": False, "RESULTS": {}, "tqdm": None}
    exec(compile(_notebook_cell("kit:train-helpers"), "kit:train-helpers", "exec"), namespace)
    assert namespace["load_checkpoint"](build_model("vgg16"), "vgg16_epoch250.ckpt") is False
    out = capsys.readouterr().out
    assert "cannot be read as a state_dict of tensors" in out and "RANDOM WEIGHTS" in out


def test_notebook_ignores_a_synthetic_accuracy_in_the_manifest(tmp_path):
    namespace = {"json": json, "Path": Path, "nn": torch.nn, "torch": torch, "np": __import__("numpy"),
                 "time": __import__("time"), "CHECKPOINT_PATHS": {}, "SEARCH_DIRS": [tmp_path], "SMOKE": False,
                 "UNDER_NBGRADER": False, "RESULTS": {}, "tqdm": None}
    exec(compile(_notebook_cell("kit:train-helpers"), "kit:train-helpers", "exec"), namespace)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"format": 1, "checkpoints": {
        VGG: {"test_accuracy": 10.3, "synthetic": True}, RESNET: {"test_accuracy": 81.2, "synthetic": False}}}))
    assert namespace["manifest_accuracy"](VGG, [tmp_path]) is None
    assert namespace["manifest_accuracy"](RESNET, [tmp_path]) == 81.2


# ------------------------------------------------------------------------------------------- the bundle

@pytest.fixture
def kit_with_checkpoints(tmp_path, good_dir):
    from autograder.release.kit import KIT_ROOT
    root = tmp_path / "kit"
    shutil.copytree(KIT_ROOT, root, ignore=shutil.ignore_patterns(
        ".venv", ".git", "grading-output", "data", "__pycache__", ".pytest_cache", "*.ckpt", "manifest.json"))
    for path in good_dir.iterdir():
        shutil.copy(path, root / "checkpoints" / path.name)
    return root


def test_bundle_ships_the_manifest_next_to_the_checkpoints(kit_with_checkpoints, tmp_path):
    from autograder.release.bundle import build_bundle
    path, notes = build_bundle(tmp_path / "out", root=kit_with_checkpoints)
    with zipfile.ZipFile(path) as zf:
        assert {VGG, RESNET, MANIFEST_NAME} <= set(zf.namelist())
        shipped = json.loads(zf.read(MANIFEST_NAME))
    assert shipped == read_manifest(kit_with_checkpoints / "checkpoints")
    assert not [n for n in notes if n.startswith("warning")]


def test_bundle_refuses_a_checkpoint_that_does_not_match_its_manifest(kit_with_checkpoints, tmp_path):
    from autograder.release.bundle import BundleError, build_bundle
    target = kit_with_checkpoints / "checkpoints" / VGG
    target.write_bytes(target.read_bytes()[:-10])
    with pytest.raises(BundleError) as caught:
        build_bundle(tmp_path / "out", root=kit_with_checkpoints)
    assert str(caught.value).startswith(f"checkpoints/{VGG} does not match checkpoints/manifest.json")
    assert not (tmp_path / "out").exists()


def test_bundle_warns_about_a_checkpoint_without_a_manifest_entry(kit_with_checkpoints, tmp_path):
    from autograder.release.bundle import BundleError, build_bundle
    folder = kit_with_checkpoints / "checkpoints"
    manifest = read_manifest(folder)
    del manifest["checkpoints"][RESNET]
    manifest_module.write_manifest(folder, manifest)
    _, notes = build_bundle(tmp_path / "out", root=kit_with_checkpoints)
    assert any(note.startswith("warning:") and f"lists no {RESNET}" in note for note in notes)

    (folder / MANIFEST_NAME).unlink()
    _, notes = build_bundle(tmp_path / "out2", root=kit_with_checkpoints)
    assert any("no checkpoints/manifest.json" in note for note in notes)

    (folder / MANIFEST_NAME).write_text("{broken")
    with pytest.raises(BundleError, match="is not valid JSON"):
        build_bundle(tmp_path / "out3", root=kit_with_checkpoints)


def test_bundle_refuses_a_checkpoint_the_manifest_marks_synthetic(kit_with_checkpoints, tmp_path):
    from autograder.release.bundle import BundleError, build_bundle
    folder = kit_with_checkpoints / "checkpoints"
    manifest = read_manifest(folder)
    manifest["checkpoints"][RESNET]["synthetic"] = True
    manifest_module.write_manifest(folder, manifest)
    with pytest.raises(BundleError) as caught:
        build_bundle(tmp_path / "out", root=kit_with_checkpoints)
    assert str(caught.value).startswith(f"checkpoints/{RESNET}: checkpoints/manifest.json marks it synthetic")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------- review fixes

def test_fix_prefixes_refuses_keys_that_would_collide_and_writes_nothing(ckpt_dir, state_dicts):
    vgg = dict(state_dicts["vgg16"])
    doubled = {**vgg, **{"module." + k: torch.zeros_like(v) for k, v in vgg.items()}}   # two copies, one zeroed
    _save(ckpt_dir, VGG, "vgg16", doubled)
    before = (ckpt_dir / VGG).read_bytes()
    manifest_before = (ckpt_dir / MANIFEST_NAME).read_bytes()
    for fix in (False, True):
        result, out = _verify(ckpt_dir, fix_prefixes=fix)
        assert not result.ok
        (check,) = _file(result, VGG).failed
        assert check.text.startswith(f"35 of 70 keys start with 'module.' and 35 of them would collide")
        assert ("not fixed, nothing written" in check.text) == fix
        assert check.details[0] == "features.0.weight: features.0.weight, module.features.0.weight"
        assert (ckpt_dir / VGG).read_bytes() == before and (ckpt_dir / MANIFEST_NAME).read_bytes() == manifest_before
    # A file with only some keys prefixed (and no collision) is not blamed on DataParallel.
    half = {("module." + k if i % 2 else k): v for i, (k, v) in enumerate(vgg.items())}
    _save(ckpt_dir, VGG, "vgg16", half)
    text = _file(_verify(ckpt_dir)[0], VGG).failed[0].text
    assert text.startswith("17 of 35 keys start with 'module.': the file mixes prefixed and plain keys")
    assert "DataParallel" not in text


class _TouchesAFile:
    """Pickles to a call of Path.touch: proof of code execution if anything unpickles it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _planted_synthetic_folder(root: Path, marker: Path) -> None:
    import pickle
    from autograder.checkpoints.notebook_cells import notebook_namespace
    notebook_namespace()["write_synthetic_cifar10"](str(root), n_train=10, n_test=10, seed=0)
    batches = root / "cifar-10-batches-py"
    (batches / "test_batch").write_bytes(pickle.dumps(_TouchesAFile(marker)))
    # The synthetic set's checksums lie in the same folder, so a planter updates them too.
    table = next(p for p in batches.iterdir() if p.suffix == ".json")
    text = json.loads(table.read_text())
    text["md5"]["test_batch"] = hashlib.md5((batches / "test_batch").read_bytes()).hexdigest()
    table.write_text(json.dumps(text))


def test_a_planted_synthetic_data_folder_is_never_unpickled_by_default(good_dir, tmp_path, monkeypatch):
    marker = tmp_path / "PWNED"
    _planted_synthetic_folder(tmp_path / "work" / "data", marker)
    monkeypatch.chdir(tmp_path / "work")          # ./data is not read without --data
    monkeypatch.delenv("CIFAR10_ROOT")
    monkeypatch.delenv("KIT_SMOKE", raising=False)
    result, out = _verify(good_dir)
    assert result.ok and "no data folder named: give --data DIR (or set $CIFAR10_ROOT)" in out
    monkeypatch.setenv("CIFAR10_ROOT", str(tmp_path / "work" / "data"))   # named, but synthetic: not read
    result, out = _verify(good_dir)
    assert "holds a synthetic-format CIFAR-10" in out and "($CIFAR10_ROOT)" in out
    result, out = _verify(good_dir, data_dir=tmp_path / "work" / "data")   # --data without --trust-synthetic
    assert not result.ok and "--trust-synthetic" in out
    assert not marker.exists()


def test_a_checkpoint_calling_a_blocked_global_is_named_as_code_not_damage(ckpt_dir):
    import os
    torch.save({"weights": torch.zeros(1), "payload": _CallsSystem()}, ckpt_dir / VGG)
    _rerecord(ckpt_dir, VGG)
    (check,) = _file(_verify(ckpt_dir)[0], VGG).failed
    assert check.text.startswith(f"refused: the file holds Python objects that torch.load(weights_only=True) "
                                 f"refuses (it calls {os.system.__module__}.system")
    assert "could run code" in check.text and "do not use this file" in check.text and "damaged" not in check.text


class _CallsSystem:
    def __reduce__(self):
        import os
        return (os.system, ("true",))


def test_concurrent_records_into_one_folder_keep_every_entry(tmp_path, monkeypatch, state_dicts):
    import threading
    import time
    real_read = manifest_module.read_manifest

    def slow_read(directory):   # widen the read-merge-replace window: without the lock one entry is lost
        data = real_read(directory)
        time.sleep(0.3)
        return data
    monkeypatch.setattr(manifest_module, "read_manifest", slow_read)
    names = [f"run{i}.ckpt" for i in range(4)]
    threads = [threading.Thread(target=record_checkpoint, args=(tmp_path, name, {"model": "vgg16"}))
               for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(real_read(tmp_path)["checkpoints"]) == names


def test_fix_prefixes_in_a_read_only_folder_and_an_unreadable_file_are_one_line(ckpt_dir, state_dicts, capsys,
                                                                                monkeypatch):
    import errno
    from autograder.checkpoints import verify as verify_module
    _save(ckpt_dir, VGG, "vgg16", {"module." + k: v for k, v in state_dicts["vgg16"].items()})
    before = (ckpt_dir / VGG).read_bytes()

    def read_only(*args, **kwargs):   # what mkstemp raises in a folder without write permission (chmod is
        raise PermissionError(errno.EACCES, "Permission denied")   # not enough here: the sandbox may override it)
    monkeypatch.setattr(manifest_module.tempfile, "mkstemp", read_only)   # replace_atomically's temp file
    code = run_verify(argparse.Namespace(dir=ckpt_dir, fix_prefixes=True, data=None, model="vgg16"))
    out = capsys.readouterr().out
    assert code == 1 and "Traceback" not in out
    assert f"✗ cannot rewrite {ckpt_dir / VGG}: read-only; copy the folder" in out
    assert (ckpt_dir / VGG).read_bytes() == before
    monkeypatch.undo()

    real_read_bytes = Path.read_bytes

    def unreadable(self):
        if self.name == VGG:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_read_bytes(self)
    monkeypatch.setattr(Path, "read_bytes", unreadable)
    (check,) = _file(_verify(ckpt_dir)[0], VGG).failed
    assert check.text.startswith(f"cannot read {ckpt_dir / VGG} (Permission denied): give yourself read permission")


def test_odd_manifest_entries_are_one_sentence(ckpt_dir, capsys):
    manifest = read_manifest(ckpt_dir)
    manifest["checkpoints"]["a" * 300 + ".ckpt"] = {"model": "vgg16", "sha256": "0" * 64, "size": 1}
    manifest["checkpoints"]["listed.ckpt"] = {"model": ["vgg16"], "sha256": "0" * 64, "size": 1}
    manifest["checkpoints"]["other.ckpt"] = {"model": {"name": "vgg16"}}
    manifest["checkpoints"][MANIFEST_NAME] = dict(manifest["checkpoints"][VGG])
    manifest_module.write_manifest(ckpt_dir, manifest)
    code = run_verify(argparse.Namespace(dir=ckpt_dir, fix_prefixes=False, data=None, model="vgg16"))
    out = capsys.readouterr().out
    assert code == 1 and "Traceback" not in out
    assert "✗ manifest.json lists an entry named manifest.json (itself): not a checkpoint" in out
    assert "manifest.json (vgg16)" not in out   # never checked as a checkpoint
    assert "is a name too long for the file system" in out
    assert out.count("missing: ") == 2          # the list- and dict-model entries are checked, not crashed on


@pytest.mark.parametrize("make, says", [
    (lambda p: p.mkdir(), "is a folder, not a file"),
    (lambda p: __import__("os").mkfifo(p), "is a named pipe (FIFO), not a file"),
    (lambda p: p.symlink_to(p.parent / "nowhere.ckpt"), "is a dangling symbolic link to"),
    (lambda p: p.symlink_to(p.name), "is a symbolic link loop"),
])
def test_a_checkpoint_name_that_is_not_a_file_says_what_it_is(ckpt_dir, make, says):
    (ckpt_dir / VGG).unlink()
    make(ckpt_dir / VGG)
    (check,) = _file(_verify(ckpt_dir)[0], VGG).failed
    assert says in check.text and not check.text.startswith("missing")


def test_short_shows_the_first_line_that_says_something():
    from autograder.checkpoints.verify import _short
    assert _short(RuntimeError("\n\nsize mismatch for features.0.weight.\nmore")) == "size mismatch for features.0.weight"
    assert _short(RuntimeError("Error(s) in loading state_dict for VGG:\n\tWhile copying the parameter named x")) \
        == "Error(s) in loading state_dict for VGG: While copying the parameter named x"
    assert _short(RuntimeError("")) == "RuntimeError"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int8, torch.float64])
def test_a_copy_in_another_dtype_is_flagged(ckpt_dir, state_dicts, dtype):
    copy = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state_dicts["vgg16"].items()}
    _save(ckpt_dir, VGG, "vgg16", copy)
    failed = _file(_verify(ckpt_dir)[0], VGG).failed
    name = str(dtype).removeprefix("torch.")
    assert len(failed) == 1 and f"have another dtype than the model's ({name} where vgg16 has float32)" in failed[0].text
    assert ("reduced-precision copy" in failed[0].text) == (dtype != torch.float64)


def test_a_synthetic_checkpoint_fails_unless_allowed(ckpt_dir, state_dicts):
    _save(ckpt_dir, VGG, "vgg16", state_dicts["vgg16"], accuracy=10.0, synthetic=True)
    result, _ = _verify(ckpt_dir)
    assert not result.ok
    assert _file(result, VGG).failed[0].text.startswith("manifest.json marks it synthetic: trained on the smoke-test")
    result, out = _verify(ckpt_dir, allow_synthetic=True)
    assert result.ok, out
    assert "accepted because of --allow-synthetic" in out


def test_a_file_grown_at_the_end_asks_for_that_file_only(ckpt_dir):
    with open(ckpt_dir / VGG, "ab") as handle:
        handle.write(b"x")
    text = _file(_verify(ckpt_dir)[0], VGG).failed[0].text
    assert "download this file again" in text and "both" not in text


def test_record_writes_an_entry_verify_accepts_and_refuses_what_it_should(tmp_path, state_dicts, capsys):
    folder = tmp_path / "course"
    folder.mkdir()
    torch.save(state_dicts["vgg16"], folder / VGG)
    torch.save(state_dicts["resnet50"], folder / "resnet_final.ckpt")
    torch.save({"module." + k: v for k, v in state_dicts["vgg16"].items()}, folder / "prefixed.ckpt")
    cli = [sys.executable, "-m", "autograder", "checkpoints", "record"]
    done = subprocess.run(cli + [str(folder / VGG), "--epochs", "250", "--recipe", "original",
                                 "--test-accuracy", "91.5"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"✓ {VGG}: vgg16, 35 keys, strict load ok; recorded in")
    entry = read_manifest(folder)["checkpoints"][VGG]
    assert (entry["epochs"], entry["recipe"], entry["test_accuracy"], entry["synthetic"]) == (250, "original", 91.5, False)
    assert entry["sha256"] == hashlib.sha256((folder / VGG).read_bytes()).hexdigest()

    from autograder.checkpoints.verify import record_file
    ok, text = record_file(folder / "resnet_final.ckpt")
    assert not ok and "is not a handout file name" in text and "--model" in text
    ok, text = record_file(folder / "resnet_final.ckpt", model_name="vgg16")
    assert not ok and "the keys do not fit vgg16" in text
    ok, _ = record_file(folder / "resnet_final.ckpt", model_name="resnet50", epochs=285)
    assert ok
    ok, text = record_file(folder / "prefixed.ckpt", model_name="vgg16")
    assert not ok and "--fix-prefixes" in text
    assert set(read_manifest(folder)["checkpoints"]) == {VGG, "resnet_final.ckpt"}
    result, out = _verify(folder, models=["vgg16"])
    assert _file(result, VGG).failed == [], out
