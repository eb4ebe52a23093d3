"""The zip students download: the student files, the public checks, and the
checkpoints when the TA has put them in ``checkpoints/``.

Only released files and the solution-free packages ``autograder.spec`` and
``autograder.check`` go in (the notebook's sanity-check cell imports them);
nothing from ``solutions/`` or ``autograder/grade`` ever does.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

from autograder.release.kit import KIT_ROOT, TARGETS, check_kit

BUNDLE_NAME = "cnn_assignment_student.zip"
STUDENT_FILES = ("vgg.py", *(t.student for t in TARGETS))
PUBLIC_PACKAGES = ("autograder/spec", "autograder/check")
CHECKPOINTS = ("vgg16_epoch250.ckpt", "resnet50_epoch285.ckpt")
# A fixed timestamp keeps the zip byte-identical from build to build.
FIXED_TIME = (2025, 1, 1, 0, 0, 0)


class BundleError(Exception):
    pass


def bundle_members(root: Path = KIT_ROOT) -> list[tuple[str, Path]]:
    """(name in the zip, file on disk) for everything the student bundle holds."""
    members = [(name, root / name) for name in STUDENT_FILES]
    members.append(("autograder/__init__.py", root / "autograder" / "__init__.py"))
    for package in PUBLIC_PACKAGES:
        for path in sorted((root / package).iterdir()):
            if path.is_file() and path.suffix in (".py", ".toml"):
                members.append((f"{package}/{path.name}", path))
    for name in CHECKPOINTS:
        path = root / "checkpoints" / name
        if path.is_file():
            members.append((name, path))
    return members


def build_bundle(out_dir: Path, root: Path = KIT_ROOT) -> tuple[Path, list[str]]:
    """Write the student zip into ``out_dir``; refuses while a student file is stale or leaks."""
    problems = check_kit(root)
    if problems:
        raise BundleError("student files are not ready: " + "; ".join(problems)
                          + " (run `python -m autograder release` first)")
    members = bundle_members(root)
    missing = [name for name, path in members if not path.is_file()]
    if missing:
        raise BundleError(f"missing from the kit: {', '.join(missing)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / BUNDLE_NAME
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, path in members:
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    notes = [f"wrote {target} ({len(members)} files)"]
    absent = [name for name in CHECKPOINTS if not (root / "checkpoints" / name).is_file()]
    if absent:
        notes.append(f"note: no {', '.join(absent)} in checkpoints/: hand them out separately "
                     f"or put them there and build again")
    return target, notes
