"""Colab without losing work: the notebook's own cells, run against a fake Drive and a fake Colab.

Colab's session storage (/content) is wiped when the runtime ends. With MOUNT_DRIVE = True the
notebook must work in the Drive folder itself (never on a copy in /content), say where the
student's file is, and hand the file to submit, resnet50_skeleton.py itself, to the browser with
google.colab.files.download (submission.zip is only a convenience copy, written but not downloaded).
The cells are executed from the solved notebook by tag, never copied here.
"""
from __future__ import annotations

import json
import shutil
import sys
import types
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLVED_NB = ROOT / "solutions" / "CNN_Implementation.ipynb"


def cell_source(tag: str) -> str:
    cells = json.loads(SOLVED_NB.read_text(encoding="utf-8"))["cells"]
    source = next(c["source"] for c in cells if tag in c["metadata"].get("tags", []))
    return source if isinstance(source, str) else "".join(source)


def run_cells(namespace: dict, *tags: str, replace: tuple[str, str] | None = None) -> dict:
    for tag in tags:
        source = cell_source(tag)
        if replace and replace[0] in source:
            source = source.replace(*replace)   # what a student changes in the cell
        exec(compile(source, f"CNN_Implementation.ipynb[{tag}]", "exec"), namespace)
    return namespace


class FakeColab:
    """google.colab with the three calls the notebook makes, recorded."""

    def __init__(self, upload_files: dict[str, bytes] | None = None):
        self.mounted, self.downloads, self.uploads = [], [], 0
        self.upload_files = upload_files or {}
        self.module = types.ModuleType("google.colab")
        self.module.drive = types.SimpleNamespace(mount=self.mounted.append)
        self.module.files = types.SimpleNamespace(download=self.downloads.append, upload=self._upload)

    def _upload(self):
        # Colab's files.upload() writes what the student picked into the current folder.
        self.uploads += 1
        for name, data in self.upload_files.items():
            Path(name).write_bytes(data)
        return dict(self.upload_files)


@pytest.fixture()
def colab(monkeypatch):
    def install(**kwargs) -> FakeColab:
        fake = FakeColab(**kwargs)
        monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
        monkeypatch.setitem(sys.modules, "google.colab", fake.module)
        return fake
    return install


@pytest.fixture()
def machine(tmp_path, monkeypatch):
    """A fake Colab machine: /content (the session storage, where Colab starts) and a Drive folder."""
    content = tmp_path / "content"
    drive_dir = tmp_path / "drive" / "MyDrive" / "CNN_Implementation"
    content.mkdir()
    monkeypatch.chdir(content)
    monkeypatch.setenv("KIT_DRIVE_DIR", str(drive_dir))
    for name in ("KIT_SMOKE", "NBGRADER_EXECUTION", "KIT_RESULTS_DIR", "KIT_CHECKPOINT_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "resnet50_skeleton", raising=False)
    return types.SimpleNamespace(content=content, drive_dir=drive_dir)


def kit_files(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "vgg.py", folder / "vgg.py")
    shutil.copy(ROOT / "solutions" / "resnet50_skeleton.py", folder / "resnet50_skeleton.py")


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


MOUNT = ("MOUNT_DRIVE = False", "MOUNT_DRIVE = True")


# ---- the helpers alone ------------------------------------------------------------------------

def test_the_work_dir_is_the_drive_folder_itself_only_on_colab_with_drive(machine):
    ns = run_cells({}, "kit:workspace")
    choose = ns["choose_work_dir"]
    assert choose(True, True, machine.drive_dir) == machine.drive_dir and machine.drive_dir.is_dir()
    assert choose(True, False, machine.drive_dir) == machine.content
    assert choose(False, True, machine.drive_dir) == machine.content      # no Drive off Colab


def test_the_storage_note_says_where_the_file_is_and_what_survives(machine):
    note = run_cells({}, "kit:workspace")["storage_note"]
    on_drive = note(machine.drive_dir, True, True)
    assert str(machine.drive_dir / "resnet50_skeleton.py") in on_drive and "survives a disconnect" in on_drive
    session = note(machine.content, True, False)
    assert str(machine.content / "resnet50_skeleton.py") in session
    assert "WIPED when the runtime ends" in session and "MOUNT_DRIVE = True" in session
    assert "WIPED" not in note(machine.content, False, False)


def test_offer_download_calls_colabs_files_download(machine, colab):
    fake = colab()
    offer = run_cells({}, "kit:workspace")["offer_download"]
    (machine.content / "submission.zip").write_bytes(b"zip")
    assert offer("submission.zip", in_colab=True) is True
    assert fake.downloads == ["submission.zip"]


def test_offer_download_off_colab_only_says_where_the_file_is(machine, capsys):
    offer = run_cells({}, "kit:workspace")["offer_download"]
    (machine.content / "submission.zip").write_bytes(b"zip")
    assert offer("submission.zip", in_colab=False) is False
    assert str(machine.content / "submission.zip") in capsys.readouterr().out


# ---- the Setup cell as Colab runs it --------------------------------------------------------------

def test_with_drive_the_notebook_works_in_the_drive_folder_and_copies_nothing(machine, colab, capsys):
    kit_files(machine.drive_dir)
    fake = colab()
    ns = run_cells({}, "kit:workspace", "kit:setup", replace=MOUNT)
    assert fake.mounted == ["/content/drive"] and fake.uploads == 0
    assert Path.cwd() == machine.drive_dir == ns["WORK_DIR"]
    assert files_in(machine.content) == []                   # nothing copied into the wiped storage
    assert sys.path[0] == str(machine.drive_dir)
    import resnet50_skeleton
    assert Path(resnet50_skeleton.__file__) == machine.drive_dir / "resnet50_skeleton.py"
    assert (machine.drive_dir / "results").is_dir()          # the report's files land on Drive too
    out = capsys.readouterr().out
    assert out.count("YOUR FILE:") == 1 and str(machine.drive_dir / "resnet50_skeleton.py") in out


def test_with_drive_an_assignment_zip_on_drive_is_unpacked_on_drive(machine, colab):
    machine.drive_dir.mkdir(parents=True)
    with zipfile.ZipFile(machine.drive_dir / "cnn_assignment_student.zip", "w") as zf:
        zf.write(ROOT / "vgg.py", "vgg.py")
        zf.write(ROOT / "resnet50_skeleton.py", "resnet50_skeleton.py")
    colab()
    run_cells({}, "kit:workspace", "kit:setup", replace=MOUNT)
    assert {"vgg.py", "resnet50_skeleton.py"} <= set(files_in(machine.drive_dir))
    assert files_in(machine.content) == []


def test_an_edited_file_on_drive_is_never_overwritten_by_the_zip(machine, colab):
    kit_files(machine.drive_dir)
    (machine.drive_dir / "resnet50_skeleton.py").write_text("# my work\n")
    with zipfile.ZipFile(machine.drive_dir / "cnn_assignment_student.zip", "w") as zf:
        zf.write(ROOT / "vgg.py", "vgg.py")
        zf.write(ROOT / "resnet50_skeleton.py", "resnet50_skeleton.py")
    colab()
    run_cells({}, "kit:workspace", "kit:setup", replace=MOUNT)
    assert (machine.drive_dir / "resnet50_skeleton.py").read_text() == "# my work\n"


def test_with_drive_and_an_empty_drive_folder_the_uploads_land_on_drive(machine, colab):
    fake = colab(upload_files={"vgg.py": (ROOT / "vgg.py").read_bytes(),
                               "resnet50_skeleton.py": (ROOT / "resnet50_skeleton.py").read_bytes()})
    run_cells({}, "kit:workspace", "kit:setup", replace=MOUNT)
    assert fake.uploads == 1
    assert {"vgg.py", "resnet50_skeleton.py"} <= set(files_in(machine.drive_dir))
    assert files_in(machine.content) == []


def test_without_drive_colab_says_the_session_storage_is_wiped(machine, colab, capsys):
    kit_files(machine.content)
    fake = colab()
    run_cells({}, "kit:workspace", "kit:setup")
    assert fake.mounted == [] and Path.cwd() == machine.content
    out = capsys.readouterr().out
    assert out.count("YOUR FILE:") == 1 and "WIPED when the runtime ends" in out
    assert not machine.drive_dir.exists()


# ---- the submission cell on Colab -----------------------------------------------------------------

def submission_namespace(drive: bool) -> dict:
    ns = run_cells({}, "kit:workspace", "kit:setup", replace=MOUNT if drive else None)
    from autograder.check import check_model, check_residual_block, mismatch_summary
    ns.update(check_model=check_model, check_residual_block=check_residual_block, mismatch_summary=mismatch_summary)
    return ns


def test_the_submission_cell_downloads_the_py_itself_and_keeps_the_zip_on_drive(machine, colab, capsys):
    kit_files(machine.drive_dir)
    fake = colab()
    run_cells(submission_namespace(drive=True), "kit:submission")
    assert fake.downloads == ["resnet50_skeleton.py"]           # the file to hand in, name unchanged
    assert Path(fake.downloads[0]).resolve() == machine.drive_dir / "resnet50_skeleton.py"
    with zipfile.ZipFile(machine.drive_dir / "submission.zip") as zf:
        assert zf.namelist() == ["resnet50_skeleton.py"]
    assert files_in(machine.content) == []
    out = capsys.readouterr().out
    assert "your model matches the slide table at every check" in out
    hand_in = next(line for line in out.splitlines() if line.startswith("HAND IN:"))
    assert str(machine.drive_dir / "resnet50_skeleton.py") in hand_in and "report (PDF)" in hand_in
    assert "zip" not in hand_in
    assert "convenience copy" in out and "do not hand in the zip" in out


def test_the_submission_cell_without_drive_downloads_the_py_from_the_session(machine, colab, capsys):
    kit_files(machine.content)
    fake = colab()
    run_cells(submission_namespace(drive=False), "kit:submission")
    assert fake.downloads == ["resnet50_skeleton.py"]
    assert (machine.content / "submission.zip").is_file()
    assert "HAND IN: " + str(machine.content / "resnet50_skeleton.py") in capsys.readouterr().out


def test_the_submission_cell_off_colab_says_what_to_hand_in_and_downloads_nothing(machine, capsys):
    kit_files(machine.content)
    run_cells(submission_namespace(drive=False), "kit:submission")
    out = capsys.readouterr().out
    assert "HAND IN: " + str(machine.content / "resnet50_skeleton.py") in out
    assert f"{machine.content / 'resnet50_skeleton.py'} is ready" in out


def test_the_submission_text_names_the_py_and_the_report_not_the_zip():
    cells = json.loads(SOLVED_NB.read_text(encoding="utf-8"))["cells"]
    markdown = next("".join(c["source"]) for c in cells
                    if c["cell_type"] == "markdown" and "".join(c["source"]).startswith("## 6. Submission"))
    assert "`resnet50_skeleton.py` itself" in markdown and "report (PDF)" in markdown
    assert "convenience copy" in markdown and "not the zip" in markdown
