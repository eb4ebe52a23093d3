"""The student zip: what goes in, what never does, and that it is reproducible."""
import zipfile

import pytest

from autograder.release.bundle import BUNDLE_NAME, BundleError, build_bundle


def test_bundle_holds_student_files_and_public_checks_only(tmp_path):
    path, notes = build_bundle(tmp_path)
    assert path.name == BUNDLE_NAME
    names = zipfile.ZipFile(path).namelist()
    for required in ("CNN_Implementation.ipynb", "vgg.py", "resnet50_skeleton.py",
                     "autograder/__init__.py", "autograder/spec/resnet50_layer4.toml",
                     "autograder/check/report.py"):
        assert required in names
    assert not [n for n in names if n.startswith(("solutions", "autograder/grade", "autograder/release", "tests"))]
    with zipfile.ZipFile(path) as zf:
        for name in names:
            assert b"### BEGIN SOLUTION" not in zf.read(name), name
    assert any("checkpoints" in n for n in notes)   # none on this machine: said, not silent


def test_bundle_is_byte_identical_across_builds(tmp_path):
    first, _ = build_bundle(tmp_path / "a")
    second, _ = build_bundle(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()


def test_bundle_includes_checkpoints_when_present(tmp_path, monkeypatch):
    import shutil
    from autograder.release import bundle
    root = tmp_path / "kit"
    shutil.copytree(bundle.KIT_ROOT, root, ignore=shutil.ignore_patterns(".venv", ".git", "grading-output", "data"))
    (root / "checkpoints" / "vgg16_epoch250.ckpt").write_bytes(b"fake")
    path, _ = build_bundle(tmp_path / "out", root=root)
    assert "vgg16_epoch250.ckpt" in zipfile.ZipFile(path).namelist()


def test_bundle_refuses_a_stale_student_file(tmp_path):
    import shutil
    from autograder.release import bundle
    root = tmp_path / "kit"
    shutil.copytree(bundle.KIT_ROOT, root, ignore=shutil.ignore_patterns(".venv", ".git", "grading-output", "data"))
    (root / "resnet50_skeleton.py").write_text("# edited by hand\n")
    with pytest.raises(BundleError, match="resnet50_skeleton.py"):
        build_bundle(tmp_path / "out", root=root)
