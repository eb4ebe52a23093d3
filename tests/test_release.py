"""The release: solved source -> student file, its placeholders, drift and leak checks.

Student variants (one part left blank, the rest solved) are built from the solved
source by releasing a single marker, so every marker is covered without
hand-written copies.
"""
import importlib.util
import itertools
import json
from pathlib import Path

import nbformat
import pytest
import torch

from autograder.cli import main as cli_main
from autograder.release import ReleaseError, build_student_source, find_leaks, find_markers
from autograder.release import steps
from autograder.release.kit import KIT_ROOT, TARGETS, Target, check_kit, release_kit, render
from autograder.release.notebook import build_student_notebook, notebook_leaks
from autograder.release.student_text import render_helpers
from autograder.spec import load_table

torch.set_num_threads(1)

SOLVED = KIT_ROOT / "solutions" / "resnet50_skeleton.py"
STUDENT = KIT_ROOT / "resnet50_skeleton.py"
SOLVED_TEXT = SOLVED.read_text(encoding="utf-8")
LABELS = find_markers(SOLVED_TEXT, str(SOLVED)).labels
TABLE = load_table()
_counter = itertools.count()


def import_path(path: Path):
    name = f"_released_{path.stem}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def import_source(tmp_path: Path, text: str, stem: str = "variant"):
    path = tmp_path / f"{stem}.py"
    path.write_text(text, encoding="utf-8")
    return import_path(path)


def released(only=None) -> str:
    return build_student_source(SOLVED_TEXT, filename=str(SOLVED), source_label="solutions/resnet50_skeleton.py",
                                only=only)


@pytest.fixture(scope="module")
def student():
    return import_path(STUDENT)


# ----------------------------------------------------------------------------- the committed file
def test_markers_cover_every_question_part():
    assert LABELS == [
        "Q1: the downsample branch of ResidualBlock",
        "Q1: the plain (downsample=False) branch of ResidualBlock",
        "Q2: the default value of num_classes",
        "Q2: the Conv2d arguments in layer1",
        "Q2: the MaxPool2d arguments in layer1",
        "Q2: the arguments of layer2's first ResidualBlock",
        "Q2: the arguments of layer2's second ResidualBlock",
        "Q2: the arguments of layer2's third ResidualBlock",
        "Q2: layer3",
        "Q2: layer4",
        "Q2: the Linear arguments of fc",
        "Q2: the AvgPool2d arguments",
    ]


def test_student_file_imports_and_defines_its_helpers(student):
    for name in ("conv1x1", "conv3x3", "ResidualBlock", "ResNet50_layer4",
                 "blank", "blanks", "blank_default", "reject_blank_defaults"):
        assert hasattr(student, name), name


def test_committed_student_file_is_up_to_date():
    target = next(t for t in TARGETS if t.student == "resnet50_skeleton.py")
    assert STUDENT.read_bytes() == render(target).encode("utf-8"), "run `python -m autograder release`"
    assert render(target) == render(target)   # deterministic
    assert check_kit(targets=(target,)) == []


def test_student_file_layout():
    text = STUDENT.read_text(encoding="utf-8")
    assert text.startswith("# Students: this is your file")
    assert "Do not rename this file" in text
    assert "25 one-point blanks" in text
    assert "reject_blank_defaults(num_classes)  # delete this line once the default is filled in" in text
    assert "nn.MaxPool2d(*blanks(3, \"Q2: the MaxPool2d arguments in layer1\"))," in text
    assert "def __init__(self, num_classes=blank_default(\"Q2: the default value of num_classes\")):" in text
    # The hints before each span stay.
    assert text.count("##### fill in here (20 points)") == 4
    assert "# Hint : use these functions (conv1x1, conv3x3)" in text


def test_blank_values_add_up_to_25_points():
    from autograder.release.python_file import count_blank_values
    assert count_blank_values(STUDENT.read_text(encoding="utf-8")) == 25


@pytest.mark.parametrize("build, label", [
    (lambda m: m.ResidualBlock(64, 64, 256, False), "Q1: the plain (downsample=False) branch of ResidualBlock"),
    (lambda m: m.ResidualBlock(64, 64, 256, True), "Q1: the downsample branch of ResidualBlock"),
    (lambda m: m.ResNet50_layer4(), "Q2: the default value of num_classes"),
], ids=["plain-block", "downsample-block", "model"])
def test_untouched_skeleton_names_the_missing_part(student, build, label):
    with pytest.raises(NotImplementedError) as info:
        build(student)
    assert str(info.value).startswith(f"{label} is not filled in (replace ")
    assert "resnet50_skeleton.py" in str(info.value)


# ----------------------------------------------------------------------------- the helpers
def test_helper_messages(tmp_path):
    helpers = import_source(tmp_path, render_helpers("resnet50_skeleton.py"), "helpers")
    with pytest.raises(NotImplementedError, match=r"^Q9: x is not filled in \(replace blank\(\.\.\.\) "
                                                  r"in resnet50_skeleton.py with your code\)$"):
        helpers.blank("Q9: x")
    with pytest.raises(NotImplementedError, match=r"^Q2: the MaxPool2d arguments in layer1 are not filled in "
                                                  r"\(replace blanks\(\.\.\.\) in resnet50_skeleton.py "
                                                  r"with your 3 values\)$"):
        helpers.blanks(3, "Q2: the MaxPool2d arguments in layer1")
    with pytest.raises(NotImplementedError, match=r"^Q9: y is not filled in .* with your value\)$"):
        helpers.blanks(1, "Q9: y")
    sentinel = helpers.blank_default("Q9: z")
    helpers.reject_blank_defaults(10, "ok")   # filled-in values pass
    with pytest.raises(NotImplementedError, match=r"^Q9: z is not filled in \(replace blank_default"):
        helpers.reject_blank_defaults(10, sentinel)


NUMBER_USES = [
    ("int", int), ("float", float), ("bool", bool), ("index", lambda b: range(b)),
    ("list-index", lambda b: [1, 2][b]), ("round", round),
    ("add", lambda b: b + 1), ("radd", lambda b: 1 + b), ("mul", lambda b: 2 * b),
    ("floordiv", lambda b: b // 2), ("mod", lambda b: 64 % b), ("neg", lambda b: -b),
    ("eq", lambda b: b == 10), ("ne", lambda b: 10 != b), ("lt", lambda b: b < 3), ("ge", lambda b: b >= 3),
    ("if", lambda b: 1 if b else 0),
]


@pytest.mark.parametrize("use", [u for _, u in NUMBER_USES], ids=[name for name, _ in NUMBER_USES])
def test_blank_default_used_as_a_number_names_the_blank(tmp_path, use):
    helpers = import_source(tmp_path, render_helpers("resnet50_skeleton.py"), "helpers")
    value = helpers.blank_default("Q9: the default value of width")
    with pytest.raises(NotImplementedError, match=r"^Q9: the default value of width is not filled in "
                                                  r"\(replace blank_default\(\.\.\.\) in resnet50_skeleton.py"):
        use(value)


@pytest.mark.parametrize("use", [
    lambda b: torch.nn.Linear(1024, b), lambda b: torch.nn.Linear(b, 10), lambda b: torch.empty(b),
    lambda b: torch.zeros(3, b), lambda b: torch.nn.Conv2d(3, b, 7), lambda b: torch.nn.BatchNorm2d(b),
], ids=["Linear-out", "Linear-in", "empty", "zeros", "Conv2d", "BatchNorm2d"])
def test_blank_default_given_to_torch_names_the_blank(tmp_path, use):
    # torch checks the type itself and reports its own TypeError: the type's name says what is open.
    helpers = import_source(tmp_path, render_helpers("resnet50_skeleton.py"), "helpers")
    with pytest.raises((TypeError, NotImplementedError),
                       match=r"Q9: the default value of width is not filled in \(replace blank_default"):
        use(helpers.blank_default("Q9: the default value of width"))


def test_blank_default_still_reads_as_itself(tmp_path):
    helpers = import_source(tmp_path, render_helpers("resnet50_skeleton.py"), "helpers")
    value = helpers.blank_default("Q9: w")
    assert repr(value) == "<blank default: Q9: w>" and f"{value}" == "<blank default: Q9: w>"
    assert isinstance(value, helpers._BlankDefault) and value.what == "Q9: w"
    assert value in {value} and value is not None   # hashable; `is` needs no number


def test_deleting_the_reject_line_without_a_default_names_the_blank(tmp_path):
    label = "Q2: the default value of num_classes"
    text = released(only={label})
    reject = f"        reject_blank_defaults(num_classes)  {steps.REJECT_COMMENT}\n"
    assert reject in text
    variant = import_source(tmp_path, text.replace(reject, ""))
    with pytest.raises((TypeError, NotImplementedError), match=f"{label} is not filled in"):
        variant.ResNet50_layer4()   # reaches nn.Linear(1024, num_classes)
    assert variant.ResNet50_layer4(num_classes=10).fc.out_features == 10


def test_student_notice_speaks_to_students_and_staff():
    head = STUDENT.read_text(encoding="utf-8").splitlines()[:3]
    assert head[0].startswith("# Students: this is your file -- fill in the blanks and submit it")
    assert "Course staff" in head[1] and "solutions/resnet50_skeleton.py" in head[1]
    assert not any("do not edit" in line.lower() for line in head)


# ----------------------------------------------------------------------------- one blank at a time
@pytest.mark.parametrize("label", LABELS)
def test_the_only_unfilled_blank_is_the_one_named(tmp_path, label):
    variant = import_source(tmp_path, released(only={label}))
    with pytest.raises(NotImplementedError) as info:
        variant.ResNet50_layer4()
    message = str(info.value)
    assert message.startswith(f"{label} is not filled in") or message.startswith(f"{label} are not filled in")
    assert [other for other in LABELS if other in message] == [label]
    if label.startswith("Q1:"):
        downsample = "downsample branch" in label
        with pytest.raises(NotImplementedError, match=label.replace("(", r"\(").replace(")", r"\)")):
            variant.ResidualBlock(64, 64, 256, downsample)
        variant.ResidualBlock(64, 64, 256, not downsample)   # the other branch is filled in


def test_all_blanks_filled_gives_the_reference_model(tmp_path):
    from solutions.resnet50_skeleton import ResNet50_layer4 as Reference

    filled = import_source(tmp_path, released(only=set()))
    torch.manual_seed(0)
    model = filled.ResNet50_layer4()
    torch.manual_seed(0)
    reference = Reference()
    got, want = model.state_dict(), reference.state_dict()
    assert len(got) == len(want) == TABLE.state_dict_keys
    assert list(got) == list(want)
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert sum(p.numel() for p in model.parameters()) == TABLE.parameters


# ----------------------------------------------------------------------------- leaks
def test_committed_file_leaks_nothing():
    assert find_leaks(STUDENT.read_text(encoding="utf-8"), SOLVED_TEXT, str(SOLVED)) == []
    student_text = STUDENT.read_text(encoding="utf-8")
    for word in ("BEGIN SOLUTION", "END SOLUTION", "### BLANKS"):
        assert word not in student_text


@pytest.mark.parametrize("planted", [
    "        x = conv1x1(in_channels,  middle_channels, 2, 0)",   # a span line, re-spaced
    "ResidualBlock(1024, 256, 1024, False),",                    # a span line
    "            nn.MaxPool2d(3, 2, 1),",                        # a BLANKS call
    "    def __init__(self, num_classes=10):",                   # a BLANKS default
    "# ### BLANKS Q2: stray marker",                             # marker text
])
def test_leak_scan_finds_a_planted_solution_line(planted):
    lines = STUDENT.read_text(encoding="utf-8").splitlines()
    lines.insert(40, planted)
    leaks = find_leaks("\n".join(lines), SOLVED_TEXT)
    assert [leak.line for leak in leaks] == [41]


# ----------------------------------------------------------------------------- malformed markers
MALFORMED = [
    ("x = [\n    ### BEGIN SOLUTION Q1: a\n    1,\n]\n", 2, "without a matching"),
    ("x = [\n    1,\n    ### END SOLUTION\n]\n", 3, "without a '### BEGIN SOLUTION'"),
    ("### BEGIN SOLUTION Q1: a\n### BEGIN SOLUTION Q1: b\n### END SOLUTION\n### END SOLUTION\n", 2, "nested"),
    ("a = 1\nb = 2  ### BLANKS Q1: no call here\n", 2, "no call"),
    ("### BLANKS Q1: on its own line\n", 1, "must end a line of code"),
    ("a = 1\n### BEGIN SOLUTIN Q1: typo\n", 2, "unknown or malformed marker"),
    ("### BEGIN SOLUTION no label\n### END SOLUTION\n", 1, "unknown or malformed marker"),
    ("f(1)  ### BLANKS Q1: a\ng(2)  ### BLANKS Q1: a\n", 2, "already used"),
    ("### BEGIN SOLUTION Q1: a\nf(1)  ### BLANKS Q1: b\n### END SOLUTION\n", 2, "inside the solution span"),
    ("f()  ### BLANKS Q1: a\n", 1, "without arguments"),
    ("def f(a):  ### BLANKS Q1: a\n    return a\n", 1, "needs a default"),
]


@pytest.mark.parametrize("source, line, words", MALFORMED, ids=[m[2] for m in MALFORMED])
def test_malformed_markers_are_errors_with_file_and_line(source, line, words):
    with pytest.raises(ReleaseError) as info:
        build_student_source(source, filename="broken.py", docstring="d")
    assert info.value.line == line
    assert str(info.value).startswith(f"broken.py, line {line}: ")
    assert words in str(info.value)


def test_markers_inside_strings_are_not_markers():
    source = 'text = "### BEGIN SOLUTION Q1: not a marker"\n'
    assert find_markers(source).spans == ()


# ----------------------------------------------------------------------------- single steps
def test_span_at_statement_level_becomes_a_call_without_comma():
    source = "def f():\n    # hint\n    ### BEGIN SOLUTION Q1: f\n    return 1\n    ### END SOLUTION\n"
    assert steps.replace_solution_spans(source) == 'def f():\n    # hint\n    blank("Q1: f")\n'
    assert steps.replace_solution_spans(source, style="raise") == (
        'def f():\n    # hint\n    # YOUR CODE HERE\n    raise NotImplementedError("Q1: f is not filled in")\n')


def test_blank_default_without_super_goes_first_in_the_body():
    source = 'def f(a, size=3):  ### BLANKS Q1: the size\n    """Doc."""\n    return a * size\n'
    assert steps.replace_blanks_lines(source) == (
        'def f(a, size=blank_default("Q1: the size")):\n'
        '    """Doc."""\n'
        f"    reject_blank_defaults(size)  {steps.REJECT_COMMENT}\n"
        "    return a * size\n")


def test_blanks_keeps_the_rest_of_the_line():
    source = "y = g(f(1, 2), k=3) + 1  ### BLANKS Q1: g's arguments\n"
    assert steps.replace_blanks_lines(source) == "y = g(*blanks(2, \"Q1: g's arguments\")) + 1\n"


# ----------------------------------------------------------------------------- kit and CLI
def test_release_and_check_on_a_copy_of_the_kit(tmp_path, capsys):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "resnet50_skeleton.py").write_text(SOLVED_TEXT, encoding="utf-8")
    notes = release_kit(tmp_path)
    assert notes == ["wrote resnet50_skeleton.py from solutions/resnet50_skeleton.py (created)",
                     "skipped CNN_Implementation.ipynb: solutions/CNN_Implementation.ipynb does not exist yet"]
    assert (tmp_path / "resnet50_skeleton.py").read_bytes() == STUDENT.read_bytes()
    assert check_kit(tmp_path) == []

    student = tmp_path / "resnet50_skeleton.py"
    student.write_text(student.read_text() + "\nconv3x3(middle_channels, middle_channels, 1, 1)\n")
    problems = check_kit(tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith("resnet50_skeleton.py: out of date with solutions/resnet50_skeleton.py")
    assert "leaks 1 solution line(s)" in problems[0]


def test_cli_release_then_check(tmp_path, monkeypatch, capsys):
    import autograder.release.kit as kit

    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "resnet50_skeleton.py").write_text(SOLVED_TEXT, encoding="utf-8")
    monkeypatch.setattr(kit, "KIT_ROOT", tmp_path)
    assert cli_main(["release", "--check"]) == 1
    assert capsys.readouterr().out == "resnet50_skeleton.py: missing; run `python -m autograder release`\n"
    assert cli_main(["release"]) == 0
    assert "wrote resnet50_skeleton.py" in capsys.readouterr().out
    assert cli_main(["release", "--check"]) == 0
    assert "up to date" in capsys.readouterr().out


# ----------------------------------------------------------------------------- notebooks
def _solved_notebook() -> nbformat.NotebookNode:
    v4 = nbformat.v4
    nb = v4.new_notebook()
    intro = v4.new_markdown_cell(
        "## Question 1\nWrite `double`.\n<!-- BEGIN SOLUTION -->\nMultiply by two.\n<!-- END SOLUTION -->\nDone.",
        metadata={"tags": ["intro"]})
    code = v4.new_code_cell(
        "%matplotlib inline\n"
        "def double(x):\n"
        "    # hint: one line\n"
        "    ### BEGIN SOLUTION Q1: double\n"
        "    return 2 * x\n"
        "    ### END SOLUTION\n",
        metadata={"tags": ["q1"], "execution": {"iopub.execute_input": "2025-01-01T00:00:00"}})
    code.execution_count = 3
    code.outputs = [v4.new_output("stream", name="stdout", text="4\n")]
    blanked = v4.new_code_cell("import math\nr = math.hypot(3, 4)  ### BLANKS Q2: the hypot arguments\n")
    nb.cells = [intro, code, blanked]
    return nb


def test_build_student_notebook(tmp_path):
    src, dst = tmp_path / "solved.ipynb", tmp_path / "student.ipynb"
    solved = _solved_notebook()
    nbformat.write(solved, src)
    build_student_notebook(src, dst)
    first = dst.read_bytes()
    build_student_notebook(src, dst)
    assert dst.read_bytes() == first   # deterministic

    nb = nbformat.read(dst, as_version=4)
    nbformat.validate(nb)
    intro, code, helpers, blanked = nb.cells
    assert intro.source == "## Question 1\nWrite `double`.\nDone."
    assert intro.metadata["tags"] == ["intro"]
    assert code.source == ("%matplotlib inline\ndef double(x):\n    # hint: one line\n"
                           "    # YOUR CODE HERE\n    raise NotImplementedError(\"Q1: double is not filled in\")\n")
    assert code.outputs == [] and code.execution_count is None
    assert code.metadata == {"tags": ["q1"]}
    assert helpers.metadata["tags"] == ["release-helpers"] and "def blanks(n, what)" in helpers.source
    assert blanked.source == 'import math\nr = math.hypot(*blanks(2, "Q2: the hypot arguments"))\n'
    assert notebook_leaks(nb, solved) == []

    # The released cells run and stop with the named error.
    namespace = {}
    exec(helpers.source, namespace)
    exec(code.source.replace("%matplotlib inline\n", ""), namespace)
    with pytest.raises(NotImplementedError, match="^Q1: double is not filled in$"):
        namespace["double"](2)
    with pytest.raises(NotImplementedError, match="^Q2: the hypot arguments are not filled in .*this notebook"):
        exec(blanked.source, namespace)

    nb.cells[0].source += "\nMultiply by two."
    nb.cells[1].source += "    return 2 * x\n"
    assert len(notebook_leaks(nb, solved)) == 2


def test_notebook_markdown_marker_errors(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("a\n<!-- BEGIN SOLUTION -->\nb\n")]
    src = tmp_path / "bad.ipynb"
    nbformat.write(nb, src)
    with pytest.raises(ReleaseError, match=r"bad.ipynb, cell 0, line 2: .*without a matching"):
        build_student_notebook(src, tmp_path / "out.ipynb")


def test_release_kit_writes_the_notebook_when_it_exists(tmp_path):
    (tmp_path / "solutions").mkdir()
    nbformat.write(_solved_notebook(), tmp_path / "solutions" / "nb.ipynb")
    targets = (Target("solutions/nb.ipynb", "nb.ipynb"),)
    assert release_kit(tmp_path, targets) == ["wrote nb.ipynb from solutions/nb.ipynb (created)"]
    assert check_kit(tmp_path, targets) == []
    (tmp_path / "nb.ipynb").write_text((tmp_path / "nb.ipynb").read_text().replace("YOUR CODE", "MY CODE"))
    assert [p.split(":")[0] for p in check_kit(tmp_path, targets)] == ["nb.ipynb"]


def test_notebook_cells_without_ids_get_fixed_ones(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_markdown_cell("text")]
    for cell in nb.cells:
        del cell["id"]
    src = tmp_path / "no_ids.ipynb"
    src.write_text(json.dumps(nb), encoding="utf-8")
    build_student_notebook(src, tmp_path / "a.ipynb")
    build_student_notebook(src, tmp_path / "b.ipynb")
    assert (tmp_path / "a.ipynb").read_bytes() == (tmp_path / "b.ipynb").read_bytes()
    assert [c.id for c in nbformat.read(tmp_path / "a.ipynb", as_version=4).cells] == ["cell-0", "cell-1"]
