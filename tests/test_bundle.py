"""The student zip: what goes in, what never does (the answer key above all), that
the leak scan finds the key in every kind of file, and that it is reproducible."""
import json
import re
import shutil
import subprocess
import sys
import zipfile

import nbformat
import pytest

from autograder.release import bundle
from autograder.release.answer_key import kit_answer_key, scan_file, scan_text
from autograder.release.bundle import BUNDLE_NAME, BundleError, build_bundle, bundle_problems
from autograder.release.kit import KIT_ROOT, check_kit
from autograder.release.markers import MARKER_TEXT_RE
from autograder.spec import load_table
from autograder.spec.public import PUBLIC_TABLE_PATH, load_public_table

TABLE = load_table()
IGNORED = shutil.ignore_patterns(".venv", ".git", "grading-output", "data", "__pycache__", ".pytest_cache")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle")
    path, notes = build_bundle(out)
    unzipped = out / "unzipped"
    with zipfile.ZipFile(path) as zf:
        zf.extractall(unzipped)
        texts = {name: zf.read(name).decode("utf-8") for name in zf.namelist() if not name.endswith(".ckpt")}
    return path, notes, unzipped, texts


@pytest.fixture(scope="module")
def key():
    return kit_answer_key(KIT_ROOT)


@pytest.fixture
def kit_copy(tmp_path):
    root = tmp_path / "kit"
    shutil.copytree(KIT_ROOT, root, ignore=IGNORED)
    return root


# ----------------------------------------------------------------------------- what is in the zip
def test_bundle_holds_student_files_and_public_checks_only(built):
    path, notes, _, texts = built
    assert path.name == BUNDLE_NAME
    names = zipfile.ZipFile(path).namelist()
    for required in ("CNN_Implementation.ipynb", "vgg.py", "resnet50_skeleton.py", "autograder/__init__.py",
                     "autograder/spec/__init__.py", "autograder/spec/public.py",
                     "autograder/spec/resnet50_layer4_public.toml", "autograder/check/report.py"):
        assert required in names
    assert not [n for n in names if n.startswith(("solutions", "autograder/grade", "autograder/release", "tests"))]
    assert "autograder/spec/resnet50_layer4.toml" not in names   # the answer key
    assert "autograder/spec/rubric.toml" not in names              # nothing in the zip reads it
    assert texts["autograder/spec/__init__.py"] == bundle.PUBLIC_SPEC_INIT   # not the full table's loader
    assert any("checkpoints" in n for n in notes)   # none on this machine: said, not silent


def test_bundle_ships_the_public_table_loadable(built):
    _, _, unzipped, texts = built
    shipped = unzipped / "autograder" / "spec" / "resnet50_layer4_public.toml"
    assert shipped.read_bytes() == PUBLIC_TABLE_PATH.read_bytes()
    assert load_public_table(shipped) == load_public_table()


def test_unzipped_bundle_imports_the_public_checks_without_the_full_table(built):
    _, _, unzipped, _ = built
    code = ("import autograder.spec.public as p, autograder.check, autograder.spec as s; "
            "t = p.load_public_table(); print(p.__file__); print(t.stage('layer3').num_blocks); "
            "print(hasattr(s, 'load_table'))")
    result = subprocess.run([sys.executable, "-c", code], cwd=unzipped, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    module_file, blocks, has_full_loader = result.stdout.split()
    assert module_file.startswith(str(unzipped))
    assert (blocks, has_full_loader) == ("4", "False")


# ----------------------------------------------------------------------------- no answer key in it
def test_no_block_argument_list_in_any_file(built):
    _, _, _, texts = built
    for name, text in texts.items():
        squashed = "".join(text.split())
        for stage in TABLE.block_stages:
            for block in stage.blocks:
                a, m, o, _ = block.args
                assert not re.search(rf"ResidualBlock\({a},{m},{o}\b", squashed), (name, block.describe())
                assert not re.search(rf"in_channels\W{{0,3}}[=:]{a},\W*middle_channels\W{{0,3}}[=:]{m}\b",
                                     squashed), (name, block.describe())
        assert not re.search(r"middle_channels['\"]?\s*[=:]\s*\d", text), name
        assert not re.search(r"\bdownsample['\"]?\s*[=:]\s*(true|false)\b", text), name
        assert "stride_downsample" not in text and "stride_plain" not in text, name


def test_no_padding_value_beyond_the_table(built):
    _, _, _, texts = built
    assert "padding" not in texts["autograder/spec/resnet50_layer4_public.toml"]
    for name, text in texts.items():
        if name == "vgg.py":
            continue   # the handout's own VGG-16 (3x3 convs with padding 1) is given to students
        for match in re.finditer(r"\bpadding\b['\"]?\s*[=:]?\s*\(?\s*(\d+)", text):
            assert int(match.group(1)) not in (0, 1, 3), (name, text[match.start() - 60:match.end() + 20])


def test_no_markers_no_outputs(built):
    _, _, _, texts = built
    for name, text in texts.items():
        assert not MARKER_TEXT_RE.search(text), name
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text, name
    nb = nbformat.reads(texts["CNN_Implementation.ipynb"], as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_the_scan_finds_nothing_in_the_bundle_and_the_full_table_everywhere(built, key):
    _, _, _, texts = built
    assert bundle_problems() == []
    full = (KIT_ROOT / "autograder" / "spec" / "resnet50_layer4.toml").read_bytes()
    kinds = {leak.what.split(" (")[0] for leak in scan_file("planted.toml", full, key)}
    assert {"a padding value", "a per-block downsample flag", "AvgPool2d's kernel_size = 2"} <= kinds
    assert any(k.startswith("a block's argument list") for k in kinds)
    assert any(k.startswith("a field of the full table") for k in kinds)


# ----------------------------------------------------------------------------- planted leaks, file by file
PLANTED_TOML = [
    "[[stages.modules]]\ntype = \"Conv2d\"\nkernel_size = 7\npadding = 3\n",
    "blocks = [\n  { out_channels = 512, in_channels = 256, middle_channels = 128 },\n]\n",
    "blocks = [{ in = 512, middle = 128, out = 512 }]\n",
    "[[stages.blocks]]\ndownsample = false\n",
    "units = [{ kernel_size = 1, stride_downsample = 2 }]\n",
    "[avgpool]\ntype = \"AvgPool2d\"\nkernel_size = 2\nstride = 2\n",
]
PLANTED_JSON = [
    {"layer3": [{"out_channels": 512, "middle_channels": 128, "in_channels": 256}]},
    {"layer4": [[512, 256, 1024], [1024, 256, 1024]]},
    {"stem": {"type": "MaxPool2d", "kernel_size": 3, "stride": 2, "padding": 1}},
    {"blocks": [{"downsample": False}, {"downsample": True}]},
]
PLANTED_MARKDOWN = [
    "The stem is `nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3)`.",
    "Hint: layer2 is ResidualBlock(64, 64, 256, False), then twice (256, 64, 256).",
    "| block | in | middle | out |\n|---|---|---|---|\n| 1 | 256 | 128 | 512 |",
    "Use `MaxPool2d(3, 2, 1)` after the ReLU.",
    "### BEGIN SOLUTION",
]
PLANTED_PYTHON = [
    "x = 1  # layer3 starts with ResidualBlock(256, 128, 512, False)\n",
    "# conv1x1(in_channels, middle_channels, 2, 0),\n",
    "#   nn.AvgPool2d(kernel_size=2, stride=2)\n",
    "LAYER4 = dict(in_channels=1024, middle_channels=256,\n             out_channels=1024)\n",
    "pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)\n",
    "stem = nn.Conv2d(3, 64, (7, 7), (2, 2), (3, 3))\n",
    "LAYER3 = [(256, 128, 512, False), (512, 128, 512, False)]\n",
    "first = dict(out_channels=512, middle_channels=128,\n             in_channels=256)  # any order\n",
    "# layer2, block 1: 64 -> 64 -> 256\n",
    "### END SOLUTION\n",
]


@pytest.mark.parametrize("text", PLANTED_TOML)
def test_scan_finds_a_leak_planted_in_a_toml(text, key):
    clean = PUBLIC_TABLE_PATH.read_text(encoding="utf-8")
    leaks = scan_file("autograder/spec/extra.toml", (clean + "\n" + text).encode(), key)
    assert leaks, text
    first_planted_line = clean.count("\n") + 2
    assert all(leak.line >= first_planted_line for leak in leaks)   # the public part is clean
    assert str(leaks[0]).startswith(f"autograder/spec/extra.toml, line {leaks[0].line}: ")


@pytest.mark.parametrize("data", PLANTED_JSON)
def test_scan_finds_a_leak_planted_in_a_json(data, key):
    for indent in (None, 1):
        assert scan_file("results/table.json", json.dumps(data, indent=indent).encode(), key), data


@pytest.mark.parametrize("text", PLANTED_MARKDOWN)
def test_scan_finds_a_leak_planted_in_a_notebook_markdown_cell(text, key, built):
    _, _, _, texts = built
    nb = nbformat.reads(texts["CNN_Implementation.ipynb"], as_version=4)
    nb.cells.insert(3, nbformat.v4.new_markdown_cell(f"Some prose.\n{text}\n"))
    leaks = scan_file("CNN_Implementation.ipynb", nbformat.writes(nb).encode(), key)
    assert leaks and {leak.cell for leak in leaks} == {3}, [str(x) for x in leaks]
    last_line = 1 + len(text.splitlines())   # the planted lines follow "Some prose."
    assert str(leaks[-1]).startswith(f"CNN_Implementation.ipynb, cell 3, line {last_line}: ")
    assert scan_file("notes.md", text.encode(), key)


@pytest.mark.parametrize("text", PLANTED_PYTHON)
def test_scan_finds_a_leak_planted_in_a_python_file(text, key):
    clean = (KIT_ROOT / "autograder" / "check" / "__init__.py").read_text(encoding="utf-8")
    leaks = scan_file("autograder/check/__init__.py", (clean + text).encode(), key)
    assert leaks and min(leak.line for leak in leaks) == clean.count("\n") + 1, [str(x) for x in leaks]


def test_scan_flags_notebook_outputs_and_unreadable_notebooks(key, built):
    _, _, _, texts = built
    nb = nbformat.reads(texts["CNN_Implementation.ipynb"], as_version=4)
    code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells[code].outputs = [nbformat.v4.new_output("stream", text="64 x 8 x 8\n")]
    leaks = scan_file("CNN_Implementation.ipynb", nbformat.writes(nb).encode(), key)
    assert [leak.cell for leak in leaks] == [code] and "outputs" in leaks[0].what
    assert scan_file("CNN_Implementation.ipynb", b"{not json", key)


PUBLIC_SPELLINGS = [
    "[1x1, 64; 3x3, 64; 1x1, 256] x 2, then [1x1, 64, stride 2; 3x3, 64; 1x1, 256] x 1",
    "1x1 conv, channel = 64, 3x3 conv, channel = 64, 1x1 conv, channel = 256",
    "layer1 -> 64 x 8 x 8 -> layer2 -> 256 x 4 x 4",
    "nn.Conv2d(3, 64, kernel_size=7, stride=2)   # the slide's 7x7, 64 channels, stride 2",
    "layer2 -> 256 x 4 x 4; layer3 -> 512 x 2 x 2; layer4 -> 1024 x 2 x 2",
    "output_size = [64, 16, 16]\nkernel_size = 7\nout_channels = 64\nstride = 2\n",
    "transforms.RandomCrop(32, padding=4)",
    "block = ResidualBlock(64, 32, 128, downsample=True)   # a small block for the Q1 check",
    "def __init__(self, in_channels, middle_channels, out_channels, downsample=False):",
    "self.downsize = conv1x1(in_channels, out_channels, 2, 0)",
    "nn.BatchNorm2d(64), nn.ReLU(inplace=True)",
    "num_classes = 10; parameters = 14750730",
    "in_channels = 3",
]


@pytest.mark.parametrize("text", PUBLIC_SPELLINGS)
def test_scan_leaves_what_students_may_see_alone(text, key):
    assert scan_text(text, key, "notes.py") == []


# ----------------------------------------------------------------------------- the commands refuse
def test_bundle_and_check_refuse_a_planted_leak_naming_file_and_line(kit_copy, tmp_path):
    target = kit_copy / "autograder" / "check" / "__init__.py"
    lines = target.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(2, "# the stem: padding = 3, then a max pool with padding = 1\n")
    target.write_text("".join(lines), encoding="utf-8")
    problems = check_kit(kit_copy)
    assert problems == ["answer key in the student zip: autograder/check/__init__.py, line 3: a padding value "
                        "(the slide table gives none): # the stem: padding = 3, then a max pool with padding = 1"]
    with pytest.raises(BundleError, match=r"autograder/check/__init__.py, line 3: a padding value"):
        build_bundle(tmp_path / "out", root=kit_copy)
    assert not (tmp_path / "out" / BUNDLE_NAME).exists()


def test_bundle_never_ships_the_full_table(kit_copy, tmp_path, monkeypatch):
    monkeypatch.setattr(bundle, "PUBLIC_SPEC_FILES",
                        (*bundle.PUBLIC_SPEC_FILES, "autograder/spec/resnet50_layer4.toml"))
    with pytest.raises(BundleError, match="resnet50_layer4.toml: must never be in the student zip"):
        build_bundle(tmp_path / "out", root=kit_copy)


def test_check_reports_a_stale_public_table(kit_copy):
    public = kit_copy / "autograder" / "spec" / "resnet50_layer4_public.toml"
    public.write_text(public.read_text().replace("state_dict_keys = 373", "state_dict_keys = 372"))
    assert any(p.startswith("autograder/spec/resnet50_layer4_public.toml: out of date")
               for p in check_kit(kit_copy))


# ----------------------------------------------------------------------------- reproducible, checkpoints
def test_bundle_is_byte_identical_across_builds(tmp_path, built):
    first, _, _, _ = built
    second, _ = build_bundle(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()


def test_bundle_includes_checkpoints_when_present(kit_copy, tmp_path):
    (kit_copy / "checkpoints" / "vgg16_epoch250.ckpt").write_bytes(b"PK\x03\x04\x00fake checkpoint")
    path, _ = build_bundle(tmp_path / "out", root=kit_copy)
    assert "vgg16_epoch250.ckpt" in zipfile.ZipFile(path).namelist()


def test_bundle_refuses_a_stale_student_file(kit_copy, tmp_path):
    (kit_copy / "resnet50_skeleton.py").write_text("# edited by hand\n")
    with pytest.raises(BundleError, match="resnet50_skeleton.py"):
        build_bundle(tmp_path / "out", root=kit_copy)
