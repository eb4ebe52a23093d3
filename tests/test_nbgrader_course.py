"""The nbgrader course round trip with real nbgrader and its real SQLite gradebook:
init, generate_assignment, three students (correct, wrong in one part, hostile), one whose
file is misnamed (next to the student zip's autograder/ folder), and four whose notebook is
missing, not valid JSON, lacks test cells, or has nbgrader metadata nbgrader 0.9 stops the
whole run on; autograde, export, generate_feedback, verify."""
import copy
import csv
import html
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.grade.batch import grade_batch
from autograder.nbgrader import NOTEBOOK_NAME, STUDENT_FILE, grade_id_for_part
from autograder.nbgrader.layout import CONFIG_MARKER, CourseError, init_course
from autograder.nbgrader.source_notebook import HIDDEN_BEGIN, SKIP_TAG, build_source_notebook
from autograder.nbgrader.test_cell import part_feedback
from autograder.release.kit import KIT_ROOT
from autograder.release.leaks import find_leaks
from autograder.release.notebook import notebook_leaks
from autograder.spec import PART_IDS, RUBRIC_PATH, load_rubric

ASSIGNMENT = "cnn_implementation"
EXAMPLES = KIT_ROOT / "examples" / "submissions"
BIN = Path(sys.executable).parent
# The hostile student: a file that tries, from inside the grader's process, to raise its
# own points, forge a result next to itself and flood stderr; the sandbox grades it as the
# layer3-downsample-first mistake it also makes.
HOSTILE_HEADER = '''\
import sys as _sys
print("I deserve full marks " * 50, file=_sys.stderr)
try:
    import autograder.nbgrader.test_cell as _cell
    _cell.score_part = lambda part, path=None: 1000.0
    _cell._graded.clear()
except Exception:
    pass
try:
    with open("resnet50_skeleton.json", "w") as _forged:
        _forged.write('{"score": 105}')
except Exception:
    pass
'''
STUDENTS = {
    "correct": (EXAMPLES / "correct" / STUDENT_FILE).read_text(encoding="utf-8"),
    "wrong_q1a": (EXAMPLES / "stride_on_3x3" / STUDENT_FILE).read_text(encoding="utf-8"),
    "hostile": HOSTILE_HEADER + (EXAMPLES / "layer3_downsample_first" / STUDENT_FILE).read_text(encoding="utf-8"),
}
NO_NOTEBOOK = "no_notebook"
# Notebooks autograde cannot use as handed in: each student is graded from the .py with the
# released notebook in its place (students are autograded in name order: "bad_schema" comes
# first, so a run that stopped at it would leave the others ungraded).
BROKEN_NOTEBOOKS = {
    "bad_schema": ("correct", "the nbgrader metadata of cells in CNN_Implementation.ipynb was changed"),
    "broken_json": ("wrong_q1a", "CNN_Implementation.ipynb is not a readable notebook"),
    "deleted_cell": ("wrong_q1a", "the test cells test_Q1a, test_Q2c of CNN_Implementation.ipynb were deleted "
                                  "or changed"),
}
SUBSTITUTED = {NO_NOTEBOOK: "CNN_Implementation.ipynb was not handed in",
               **{student: why for student, (_, why) in BROKEN_NOTEBOOKS.items()}}
# A browser's second download: graded like `python -m autograder grade` grades it, with a note.
MISNAMED = "misnamed"
MISNAMED_FILE = "resnet50_skeleton (1).py"
# The student zip's public checks, handed back with the notebook: the test cells must still
# import the installed kit's grader, not this folder.
SHADOWING_PACKAGE = 'raise ImportError("the handed-in autograder/ folder was imported")\n'
# Students whose notebook cells or files once changed their grade (each gradebook row must equal
# the CLI's): the notebook's own Check 1 imports the released autograder/ folder (sys.modules
# then held it for the hidden test cells) with the file in results/ (which nbgrader's ignore
# list keeps out of autograded/); a student who `%cd`s into a folder holding an autograder.py
# and hands in only the submission.zip the notebook writes; a student who links the solved file.
PUBLIC_CHECKS = "public_checks"
WANDERS = "wanders"
LINKED = "linked"
ADDED_CELLS = {
    PUBLIC_CHECKS: ["import sys\nsys.path.insert(0, '.')\nimport autograder",
                    "from autograder.check import check_residual_block\n"
                    "from resnet50_skeleton import ResidualBlock\nprint(check_residual_block(ResidualBlock).text)"],
    WANDERS: ["import os\nos.makedirs('plots', exist_ok=True)\n"
              "with open('plots/autograder.py', 'w') as f:\n    f.write('GRADER = \"mine\"\\n')",
              "%cd plots", "import autograder\nprint(autograder.GRADER)"],
    LINKED: ["import os\nos.chdir('/')"],
}


def with_added_cells(released: Path, sources: list[str]) -> str:
    """The released notebook with the student's own code cells just before the test cells."""
    nb = nbformat.read(released, as_version=4)
    heading = next(i for i, c in enumerate(nb.cells) if c.source.startswith("## Autograder tests"))
    for offset, source in enumerate(sources):
        nb.cells.insert(heading + offset, nbformat.v4.new_code_cell(source))
    return nbformat.writes(nb)


def hand_in_files(folder: Path, student: str) -> None:
    """The .py of the students in ADDED_CELLS, where and how each hands it in."""
    if student == PUBLIC_CHECKS:
        (folder / "results").mkdir(parents=True)
        (folder / "results" / STUDENT_FILE).write_text(STUDENTS["wrong_q1a"], encoding="utf-8")
    elif student == WANDERS:
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(folder / "submission.zip", "w") as archive:
            archive.writestr(STUDENT_FILE, STUDENTS["wrong_q1a"])
    elif student == LINKED:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / STUDENT_FILE).symlink_to(KIT_ROOT / "solutions" / STUDENT_FILE)


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    # nbgrader runs `alembic` from PATH when it creates the gradebook: the venv's bin first.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([str(BIN / "nbgrader"), *args], cwd=course, env=env, capture_output=True,
                          text=True, timeout=900)


def kit_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """One course, autograded once; every test below reads it."""
    root = tmp_path_factory.mktemp("nbgrader")
    course = root / "course"
    # From a folder that is not the repo: the installed kit must find everything itself.
    init = kit_cli(root, "nbgrader", "init", str(course))
    assert init.returncode == 0, init.stderr
    generate = nbgrader(course, "generate_assignment", ASSIGNMENT)
    assert generate.returncode == 0, generate.stdout + generate.stderr
    released = course / "release" / ASSIGNMENT
    for student, text in STUDENTS.items():
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        shutil.copy(released / NOTEBOOK_NAME, folder / NOTEBOOK_NAME)
        shutil.copy(released / "vgg.py", folder / "vgg.py")
        (folder / STUDENT_FILE).write_text(text, encoding="utf-8")
    misnamed = course / "submitted" / MISNAMED / ASSIGNMENT
    (misnamed / "autograder").mkdir(parents=True)
    (misnamed / "autograder" / "__init__.py").write_text(SHADOWING_PACKAGE, encoding="utf-8")
    shutil.copy(released / NOTEBOOK_NAME, misnamed / NOTEBOOK_NAME)
    (misnamed / MISNAMED_FILE).write_text(STUDENTS["wrong_q1a"], encoding="utf-8")
    lone = course / "submitted" / NO_NOTEBOOK / ASSIGNMENT
    lone.mkdir(parents=True)
    (lone / STUDENT_FILE).write_text(STUDENTS["correct"], encoding="utf-8")
    for student, (file_of, _) in BROKEN_NOTEBOOKS.items():
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / STUDENT_FILE).write_text(STUDENTS[file_of], encoding="utf-8")
        (folder / NOTEBOOK_NAME).write_text(broken_notebook(student, released / NOTEBOOK_NAME), encoding="utf-8")
    for student, cells in ADDED_CELLS.items():
        folder = course / "submitted" / student / ASSIGNMENT
        hand_in_files(folder, student)
        shutil.copytree(released / "autograder", folder / "autograder")
        (folder / NOTEBOOK_NAME).write_text(with_added_cells(released / NOTEBOOK_NAME, cells), encoding="utf-8")
    autograde = nbgrader(course, "autograde", ASSIGNMENT)
    (course / "autograde.log").write_text(autograde.stdout + autograde.stderr
                                          + f"\nexit status {autograde.returncode}\n", encoding="utf-8")
    return course


def broken_notebook(student: str, released: Path) -> str:
    """The released notebook as the student broke it."""
    text = released.read_text(encoding="utf-8")
    if student == "broken_json":   # cut off mid-file, as a full disk or a bad merge leaves it
        return text[: len(text) // 2]
    nb = json.loads(text)
    if student == "bad_schema":    # nbgrader 0.9 stops the whole run on this one
        nb["cells"][-1]["metadata"]["nbgrader"]["schema_version"] = 1
    elif student == "deleted_cell":   # one test cell deleted, another one's grade_id edited
        nb["cells"] = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") != "test_Q1a"]
        nb["cells"][-1]["metadata"]["nbgrader"]["grade_id"] = "my_test"
    return json.dumps(nb)


@pytest.fixture(scope="module")
def cli_results(course, tmp_path_factory):
    """What `python -m autograder grade` gives the same files (student -> results JSON)."""
    folder = tmp_path_factory.mktemp("cli") / "submissions"
    for student, text in STUDENTS.items():
        (folder / student).mkdir(parents=True)
        (folder / student / STUDENT_FILE).write_text(text, encoding="utf-8")
    (folder / MISNAMED).mkdir()
    (folder / MISNAMED / MISNAMED_FILE).write_text(STUDENTS["wrong_q1a"], encoding="utf-8")
    for student, file_of in [(NO_NOTEBOOK, "correct"), *((s, f) for s, (f, _) in BROKEN_NOTEBOOKS.items())]:
        (folder / student).mkdir()
        (folder / student / STUDENT_FILE).write_text(STUDENTS[file_of], encoding="utf-8")
    for student in ADDED_CELLS:
        hand_in_files(folder / student, student)
    results = grade_batch(folder, folder.parent / "out", jobs=2, progress=False, log=lambda *_: None)
    return {r["extra_data"]["student"]: r for r in results}


def gradebook_parts(course: Path) -> dict[str, dict[str, float]]:
    from nbgrader.api import Gradebook, MissingEntry
    found = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for submission in gb.find_assignment(ASSIGNMENT).submissions:
            try:
                notebook = gb.find_submission_notebook(Path(NOTEBOOK_NAME).stem, ASSIGNMENT, submission.student.id)
            except MissingEntry:
                continue
            found[submission.student.id] = {g.name: g.score for g in notebook.grades}
    return found


# ---- the source notebook and init, without nbgrader running ----------------------------

def test_source_notebook_has_one_hidden_test_cell_per_rubric_part_with_its_points():
    nb = build_source_notebook(KIT_ROOT / "solutions" / NOTEBOOK_NAME)
    graded = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
              if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"}
    rubric = load_rubric(RUBRIC_PATH)
    assert sorted(graded) == sorted(grade_id_for_part(p) for p in PART_IDS)
    for part in PART_IDS:
        cell = graded[grade_id_for_part(part)]
        assert cell.metadata["nbgrader"]["points"] == rubric[part].points
        assert cell.metadata["nbgrader"]["locked"] is True
        assert HIDDEN_BEGIN in cell.source and f"score_part({part!r})" in cell.source
    assert sum(c.metadata["nbgrader"]["points"] for c in graded.values()) == 105
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
    tagged = {t for c in nb.cells if SKIP_TAG in c.metadata.get("tags", []) for t in c.metadata["tags"]}
    # Autograde downloads nothing, trains nothing, never imports the student's file in the kernel.
    assert {"kit:data", "kit:vgg-train", "kit:resnet-train", "kit:q1-check", "kit:resnet-build",
            "kit:submission"} <= tagged
    # Only the test cells run under autograde: the feedback shows none of the TA run's output.
    assert [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.cell_type == "code"
            and SKIP_TAG not in c.metadata.get("tags", [])] == [grade_id_for_part(p) for p in PART_IDS]
    # Nothing waits for a manual grade: the report-notes cell is plain Markdown without TA notes.
    manual = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")
              or (c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "markdown")]
    assert manual == []
    assert not any("TA notes" in c.source for c in nb.cells if c.cell_type == "markdown")
    submission = next(c.source for c in nb.cells if c.source.startswith("## 6. Submission"))
    assert "nbgrader submit" in submission and "this notebook together with `resnet50_skeleton.py`" in submission


def test_init_refuses_an_existing_course_and_force_rewrites_only_the_kits_files(tmp_path):
    course = tmp_path / "course"
    init_course(course)
    assert (course / "source" / ASSIGNMENT / STUDENT_FILE).read_text() == (KIT_ROOT / STUDENT_FILE).read_text()
    assert (course / "source" / ASSIGNMENT / STUDENT_FILE).read_text() != \
        (KIT_ROOT / "solutions" / STUDENT_FILE).read_text()
    with pytest.raises(CourseError, match="already holds an nbgrader course"):
        init_course(course)
    (course / "gradebook.db").write_text("the TA's gradebook")
    config = course / "nbgrader_config.py"
    config.write_text(config.read_text() + "c.Exchange.root = '/srv/exchange'\n")
    (course / "source" / ASSIGNMENT / NOTEBOOK_NAME).write_text("edited by hand")
    notes = init_course(course, force=True)
    assert (course / "gradebook.db").read_text() == "the TA's gradebook"
    assert json.loads((course / "source" / ASSIGNMENT / NOTEBOOK_NAME).read_text())["cells"]
    # Every file --force changed is kept in one backup folder outside source/ (nbgrader would release it).
    [backup] = course.glob("init-backup-*")
    assert (backup / "source" / ASSIGNMENT / NOTEBOOK_NAME).read_text() == "edited by hand"
    assert sorted(p.relative_to(backup).as_posix() for p in backup.rglob("*") if p.is_file()) == \
        [f"source/{ASSIGNMENT}/{NOTEBOOK_NAME}"]   # the config only gained lines below its marker: unchanged
    assert f"rewritten {course / 'source' / ASSIGNMENT / NOTEBOOK_NAME} (the previous one: " \
           f"{backup / 'source' / ASSIGNMENT / NOTEBOOK_NAME})" in notes
    shutil.rmtree(backup)
    config.write_text(config.read_text().replace("c.Execute.timeout = 300", "c.Execute.timeout = 1"))
    init_course(course, force=True)   # the kit's part is rewritten, the TA's settings below the marker kept
    assert "c.Execute.timeout = 300" in config.read_text()
    assert config.read_text().count("c.Exchange.root = '/srv/exchange'") == 1
    # A course's own nbgrader_config.py (no kit header): refused without --force; with it, backed up
    # and kept whole below the marker, so its course id and exchange stay in force.
    adopted = tmp_path / "existing"
    adopted.mkdir()
    own = "c = get_config()\nc.CourseDirectory.course_id = 'ml101'\nc.Exchange.root = '/srv/ml101'\n"
    (adopted / "nbgrader_config.py").write_text(own)
    with pytest.raises(CourseError, match="already holds an nbgrader course"):
        init_course(adopted)
    notes = init_course(adopted, force=True)
    [backup] = adopted.glob("init-backup-*")
    assert (backup / "nbgrader_config.py").read_text() == own
    assert any(n.startswith(f"note: {adopted / 'nbgrader_config.py'} was not written by the kit") for n in notes)
    text = (adopted / "nbgrader_config.py").read_text()
    assert text.index("configure_autograde(c,") < text.index(CONFIG_MARKER) < text.index(own)
    from traitlets.config import Config
    config = Config()
    exec(compile(text, "nbgrader_config.py", "exec"), {"get_config": lambda: config})
    assert config.CourseDirectory.course_id == "ml101" and config.Exchange.root == "/srv/ml101"
    assert config.Autograde.exclude_overwriting == {ASSIGNMENT: [STUDENT_FILE]}
    with pytest.raises(CourseError, match="assignment name"):
        init_course(tmp_path / "other", assignment="../escape")
    refused = kit_cli(tmp_path, "nbgrader", "init", str(course))
    assert refused.returncode == 2 and refused.stderr.startswith("error: ") and "Traceback" not in refused.stderr


def test_part_feedback_keeps_only_the_parts_checks():
    result = {"extra_data": {"status": "ok", "parts": {"Q1a": 4.0}},
              "tests": [{"name": "Q1a structure", "score": 4.0, "max_score": 8.0, "output": "- a\n- b"},
                        {"name": "Q1b structure", "score": 8.0, "max_score": 8.0, "output": "correct"}]}
    assert part_feedback(result, "Q1a") == "Q1a structure: 4/8\n  - a\n  - b"


# ---- the round trip ------------------------------------------------------------------

def test_release_leaks_no_solution_no_hidden_test_no_output(course):
    released = course / "release" / ASSIGNMENT
    assert sorted(p.name for p in released.iterdir()) == sorted([NOTEBOOK_NAME, STUDENT_FILE, "vgg.py", "autograder"])
    # The notebook's public checks and table, as in the student zip; never the grader or the full table.
    public = sorted(p.relative_to(released).as_posix() for p in (released / "autograder").rglob("*.py"))
    assert "autograder/check/gate.py" in public and "autograder/spec/public.py" in public
    assert not any(name.startswith(("autograder/grade", "autograder/nbgrader", "autograder/release"))
                   for name in public)
    assert (released / "autograder" / "spec" / "resnet50_layer4_public.toml").is_file()
    assert not (released / "autograder" / "spec" / "resnet50_layer4.toml").exists()
    student_nb = nbformat.read(released / NOTEBOOK_NAME, as_version=4)
    solved_nb = nbformat.read(KIT_ROOT / "solutions" / NOTEBOOK_NAME, as_version=4)
    assert notebook_leaks(student_nb, solved_nb) == []
    text = (released / NOTEBOOK_NAME).read_text(encoding="utf-8")
    for secret in ("HIDDEN TESTS", "score_part", "autograder.nbgrader", "TA notes", "14,750,730 parameters;"):
        assert secret not in text, secret
    skeleton = (released / STUDENT_FILE).read_text(encoding="utf-8")
    solved = (KIT_ROOT / "solutions" / STUDENT_FILE).read_text(encoding="utf-8")
    assert find_leaks(skeleton, solved, STUDENT_FILE) == []
    assert skeleton == (KIT_ROOT / STUDENT_FILE).read_text(encoding="utf-8")


def test_autograde_grades_every_student_and_keeps_the_handed_in_file(course):
    log = (course / "autograde.log").read_text(encoding="utf-8")
    assert log.endswith("exit status 0\n"), log[-3000:]   # no student is an error, the run went to the end
    for student in [MISNAMED, *SUBSTITUTED]:
        assert (course / "autograded" / student / ASSIGNMENT / NOTEBOOK_NAME).is_file(), (student, log[-3000:])
    for student, text in STUDENTS.items():
        graded = course / "autograded" / student / ASSIGNMENT
        assert (graded / NOTEBOOK_NAME).is_file(), log[-3000:]
        assert (graded / STUDENT_FILE).read_text(encoding="utf-8") == text   # not the instructor's copy
    assert "data" not in {p.name for p in (course / "autograded" / "correct" / ASSIGNMENT).iterdir()}
    assert (course / "autograded" / MISNAMED / ASSIGNMENT / NOTEBOOK_NAME).is_file(), log[-3000:]


def test_gradebook_per_part_scores_equal_the_cli(course, cli_results):
    book = gradebook_parts(course)
    assert sorted(book) == sorted([*STUDENTS, MISNAMED, *SUBSTITUTED, *ADDED_CELLS])
    for student in [*STUDENTS, MISNAMED, *SUBSTITUTED, *ADDED_CELLS]:
        cli_parts = cli_results[student]["extra_data"]["parts"]
        for part in PART_IDS:
            assert book[student][grade_id_for_part(part)] == pytest.approx(cli_parts[part], abs=0.005), \
                (student, part)
    assert all(v == 20 or v == 25 for k, v in cli_results["correct"]["extra_data"]["parts"].items())
    wrong = cli_results["wrong_q1a"]["extra_data"]["parts"]
    assert wrong["Q1a"] < 20 and [wrong[p] for p in PART_IDS[1:]] == [20, 25, 20, 20]
    assert cli_results["hostile"]["extra_data"]["parts"]["Q2b"] < 20   # its tampering changed nothing
    # The misnamed file is graded (not 0) in the gradebook, exactly as the CLI grades it.
    assert cli_results[MISNAMED]["extra_data"]["parts"] == wrong
    assert book[MISNAMED][grade_id_for_part("Q1b")] == 20
    # Missing or broken notebooks: each graded from its own .py (not 0, not someone else's file).
    assert cli_results[NO_NOTEBOOK]["score"] == 105 and cli_results["broken_json"]["extra_data"]["parts"] == wrong
    # Cells that imported the public checks or moved away, a .py nbgrader keeps out of autograded/:
    # graded as the CLI grades them, not 0. A linked file is refused by both, never graded as the solution.
    assert cli_results[PUBLIC_CHECKS]["extra_data"]["parts"] == wrong == cli_results[WANDERS]["extra_data"]["parts"]
    assert cli_results[LINKED]["extra_data"]["status"] == "refused" and cli_results[LINKED]["score"] == 0


def test_a_linked_file_is_refused_and_its_target_never_reaches_autograded_or_feedback(course):
    solved = (KIT_ROOT / "solutions" / STUDENT_FILE).read_text(encoding="utf-8")
    assert not (course / "autograded" / LINKED / ASSIGNMENT / STUDENT_FILE).exists()
    assert "is a symbolic link: not copied" in (course / "autograde.log").read_text(encoding="utf-8")
    result = nbgrader(course, "generate_feedback", ASSIGNMENT)
    assert result.returncode == 0, result.stderr
    feedback = course / "feedback" / LINKED / ASSIGNMENT
    assert not (feedback / STUDENT_FILE).exists()
    for path in [*(course / "autograded" / LINKED).rglob("*"), *feedback.rglob("*")]:
        assert not path.is_file() or solved not in path.read_text(encoding="utf-8", errors="replace"), path
    page = (feedback / "CNN_Implementation.html").read_text(encoding="utf-8")
    assert "status: refused: resnet50_skeleton.py is a symbolic link" in page


def test_a_missing_or_broken_notebook_is_replaced_by_the_released_one_with_a_note_and_a_flag(course):
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        flagged = {s.student.id: s.notebooks[0].flagged for s in gb.find_assignment(ASSIGNMENT).submissions}
    assert {student for student, flag in flagged.items() if flag} == set(SUBSTITUTED)
    for student, why in SUBSTITUTED.items():
        graded = nbformat.read(course / "autograded" / student / ASSIGNMENT / NOTEBOOK_NAME, as_version=4)
        assert graded.cells[0].source.startswith(f"**Autograder note:** {why}, so your submission was graded "
                                                 "with the released notebook in its place."), student
        grade_ids = [c.metadata["nbgrader"]["grade_id"] for c in graded.cells if "nbgrader" in c.metadata]
        assert grade_ids == [grade_id_for_part(p) for p in PART_IDS], student
    # What the student handed in stays as it was.
    broken = (course / "submitted" / "broken_json" / ASSIGNMENT / NOTEBOOK_NAME).read_text(encoding="utf-8")
    assert broken == broken_notebook("broken_json", course / "release" / ASSIGNMENT / NOTEBOOK_NAME)
    assert not (course / "submitted" / NO_NOTEBOOK / ASSIGNMENT / NOTEBOOK_NAME).exists()
    correct = nbformat.read(course / "autograded" / "correct" / ASSIGNMENT / NOTEBOOK_NAME, as_version=4)
    assert not any("Autograder note" in c.source for c in correct.cells)


def test_export_gives_totals_out_of_105(course, cli_results):
    result = nbgrader(course, "export")
    assert result.returncode == 0, result.stderr
    with open(course / "grades.csv", newline="") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    for student in [*STUDENTS, *SUBSTITUTED]:
        assert float(rows[student]["max_score"]) == 105
        assert float(rows[student]["score"]) == pytest.approx(cli_results[student]["score"], abs=0.02)


def test_feedback_shows_the_clis_per_check_messages(course, cli_results):
    result = nbgrader(course, "generate_feedback", ASSIGNMENT)
    assert result.returncode == 0, result.stderr
    page = (course / "feedback" / "wrong_q1a" / ASSIGNMENT / "CNN_Implementation.html").read_text(encoding="utf-8")
    messages = [line.lstrip("- ") for test in cli_results["wrong_q1a"]["tests"] if test["output"] != "correct"
                for line in test["output"].splitlines()]
    assert messages
    for message in messages:
        assert html.escape(message, quote=False) in page or html.escape(message) in page, message
    # No output of the TA's run of the notebook's own cells (missing checkpoints, the TA's
    # paths): only the test cells have outputs.
    graded = nbformat.read(course / "autograded" / "correct" / ASSIGNMENT / NOTEBOOK_NAME, as_version=4)
    with_output = [c.metadata.get("nbgrader", {}).get("grade_id", c.source[:60]) for c in graded.cells
                   if c.cell_type == "code" and c.outputs]
    assert with_output == [grade_id_for_part(p) for p in PART_IDS]
    misnamed = (course / "feedback" / MISNAMED / ASSIGNMENT / "CNN_Implementation.html").read_text(encoding="utf-8")
    assert html.escape(f"graded {MISNAMED_FILE}", quote=False) in misnamed
    # The student whose notebook was broken reads why, and their checks' messages.
    broken = (course / "feedback" / "broken_json" / ASSIGNMENT / "CNN_Implementation.html").read_text(encoding="utf-8")
    assert "Autograder note:</strong> CNN_Implementation.ipynb is not a readable notebook" in broken
    assert all(html.escape(m, quote=False) in broken or html.escape(m) in broken for m in messages)


def test_verify_agrees_then_catches_a_tampered_gradebook_entry(course):
    result = kit_cli(course.parent, "nbgrader", "verify", str(course), "--quiet")
    lines = result.stdout.splitlines()
    # Every score agrees; the students whose notebook autograde replaced are listed with why.
    assert lines[:-1] == [f"{student}: note: {why}; autograde graded the .py with the released notebook in its "
                          "place (flagged in the gradebook)" for student, why in sorted(SUBSTITUTED.items())], \
        result.stdout + result.stderr
    assert lines[-1] == "11 submissions regraded with the sandboxed grader: the gradebook agrees"
    assert result.returncode == 0
    with sqlite3.connect(course / "gradebook.db") as db:
        changed = db.execute(
            "UPDATE grade SET auto_score = 20 WHERE cell_id IN (SELECT id FROM base_cell WHERE name = ?) "
            "AND notebook_id IN (SELECT sn.id FROM submitted_notebook sn JOIN submitted_assignment sa "
            "ON sn.assignment_id = sa.id WHERE sa.student_id = ?)", (grade_id_for_part("Q1a"), "wrong_q1a")).rowcount
    assert changed == 1
    tampered = kit_cli(course.parent, "nbgrader", "verify", str(course), "--quiet")
    assert tampered.returncode == 1
    assert any(line.startswith("wrong_q1a: Q1a: gradebook 20, the CLI ") for line in tampered.stdout.splitlines()), \
        tampered.stdout
    # What nbgrader leaves when a student's kernel dies (os._exit in a cell): no auto score, each part
    # needing a manual grade (Grade.score reads 0). Said as such, with the CLI's points to enter.
    with sqlite3.connect(course / "gradebook.db") as db:
        db.execute("UPDATE grade SET auto_score = NULL, needs_manual_grade = 1 WHERE notebook_id IN (SELECT sn.id "
                   "FROM submitted_notebook sn JOIN submitted_assignment sa ON sn.assignment_id = sa.id "
                   "WHERE sa.student_id = ?)", ("correct",))
    died = kit_cli(course.parent, "nbgrader", "verify", str(course), "--quiet")
    assert died.returncode == 1
    assert "correct: autograde failed for this student (no part has a score: see nbgrader's log, e.g. the kernel " \
           "died or timed out); give each part a manual grade in formgrader: the CLI gives 105 (Q1a 20, Q1b 20, " \
           "Q2a 25, Q2b 20, Q2c 20)" in died.stdout.splitlines(), died.stdout
    # The TA enters the CLI's points as manual scores: verify agrees again for that student.
    with sqlite3.connect(course / "gradebook.db") as db:
        for part, points in [("Q1a", 20), ("Q1b", 20), ("Q2a", 25), ("Q2b", 20), ("Q2c", 20)]:
            db.execute("UPDATE grade SET manual_score = ? WHERE cell_id IN (SELECT id FROM base_cell WHERE name = ?) "
                       "AND notebook_id IN (SELECT sn.id FROM submitted_notebook sn JOIN submitted_assignment sa "
                       "ON sn.assignment_id = sa.id WHERE sa.student_id = ?)", (points, grade_id_for_part(part),
                                                                                 "correct"))
    graded = kit_cli(course.parent, "nbgrader", "verify", str(course), "--quiet")
    assert not any(line.startswith("correct:") for line in graded.stdout.splitlines()), graded.stdout


def test_notebook_problem_names_each_way_a_notebook_cannot_carry_the_test_cells(tmp_path):
    from autograder.nbgrader.autograde import notebook_problem
    path = tmp_path / NOTEBOOK_NAME
    assert notebook_problem(path) == "CNN_Implementation.ipynb was not handed in"
    path.mkdir()
    assert notebook_problem(path) == "CNN_Implementation.ipynb was not handed in"
    path.rmdir()
    source = build_source_notebook(KIT_ROOT / "solutions" / NOTEBOOK_NAME)
    nbformat.write(source, path)
    assert notebook_problem(path) is None
    for broken in ('{"cells": [', "", "\xff\xfe not text", '{"cells": "none"}', "[]"):
        path.write_text(broken, encoding="latin-1")
        assert notebook_problem(path) == "CNN_Implementation.ipynb is not a readable notebook", broken
    test_cells = [i for i, c in enumerate(source.cells) if c.metadata.get("nbgrader", {}).get("grade")]

    def changed(edit) -> str | None:
        nb = copy.deepcopy(source)
        edit(nb)
        nbformat.write(nb, path)
        return notebook_problem(path)
    assert changed(lambda nb: nb.cells.pop(test_cells[2])) == \
        "the test cell test_Q2a of CNN_Implementation.ipynb was deleted or changed"
    assert changed(lambda nb: nb.cells[test_cells[0]].metadata.pop("nbgrader")) == \
        "the test cell test_Q1a of CNN_Implementation.ipynb was deleted or changed"
    assert changed(lambda nb: nb.cells[test_cells[4]].metadata.nbgrader.update(grade=False)) == \
        "the test cell test_Q2c of CNN_Implementation.ipynb was deleted or changed"
    assert changed(lambda nb: nb.cells[test_cells[1]].metadata.nbgrader.update(schema_version=99)) == \
        "the nbgrader metadata of cells in CNN_Implementation.ipynb was changed"
    assert changed(lambda nb: nb.cells[test_cells[1]].metadata.nbgrader.pop("grade_id")) == \
        "the nbgrader metadata of cells in CNN_Implementation.ipynb was changed"
    # Edits nbgrader itself undoes (it restores a test cell's source and points from the gradebook).
    assert changed(lambda nb: setattr(nb.cells[test_cells[0]], "source", "20")) is None
    assert changed(lambda nb: nb.cells[test_cells[3]].metadata.nbgrader.update(points=1000)) is None


def test_verify_refuses_a_course_without_gradebook(tmp_path):
    (tmp_path / "submitted" / "alice" / ASSIGNMENT).mkdir(parents=True)
    result = kit_cli(tmp_path, "nbgrader", "verify", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "gradebook.db does not exist" in result.stderr
    assert "Traceback" not in result.stderr
