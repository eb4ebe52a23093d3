"""``nbgrader autograde`` grades every handed-in folder from its ``.py``, whatever became of the notebook.

The test cells grade ``resnet50_skeleton.py``; the notebook only carries them. nbgrader 0.9
on its own skips a folder without the notebook (nothing in the gradebook), fails a student
whose notebook is not valid JSON, and stops the whole run on a cell whose nbgrader
``schema_version`` a student changed. The course's ``nbgrader_config.py`` calls
:func:`configure_autograde`, which

* sets ``c.Autograde.exporter_class`` to :class:`SubmissionExporter`: a handed-in notebook
  that is missing, unreadable, has invalid nbgrader metadata or lacks one of the five test
  cells is replaced, for grading only, by the released notebook (``release/<assignment>/``)
  with an "Autograder note" cell at the top saying why; the submitted notebook is flagged in
  the gradebook (``flagged``, formgrader's flag), and the folder's ``.py`` is graded as usual;
* makes ``Autograde.init_notebooks`` list, for the kit's assignment only, every student folder
  under ``submitted/`` even when it holds no ``CNN_Implementation.ipynb`` (nbgrader's own
  listing has no setting for it), so those students reach the exporter above.
* the same exporter gives the notebook's kernel (through its environment) the student's
  ``submitted/`` folder and the notebook's folder: the test cells grade the handed-in folder
  whatever the student's cells did to the working folder (see :mod:`.test_cell`);
* wraps ``Autograde.init_assignment`` and ``GenerateFeedback.init_assignment`` so that what
  nbgrader copied through a symbolic link in the handed-in folder (its copy follows links)
  is removed from ``autograded/`` and ``feedback/``: the grader refuses the link, and the
  file it points at (the solved file) never reaches the student.

``submitted/`` is never written to. Notebooks that pass the checks go through nbgrader
unchanged (it restores edited test cells from the gradebook itself).
"""
from __future__ import annotations

import contextlib
import fnmatch
import functools
import glob
import os
import warnings
from pathlib import Path

from nbconvert.exporters import NotebookExporter

from autograder.nbgrader import NOTEBOOK_NAME, grade_id_for_part
from autograder.nbgrader.test_cell import SUBMITTED_ENV, WORKDIR_ENV
from autograder.spec import PART_IDS

NOTE_CELL_ID = "autograder-note"
NOTE_HEADING = "**Autograder note:**"
_kit_assignments: set[str] = set()   # the assignments configure_autograde was called for


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def notebook_problem(path: Path | str) -> str | None:
    """Why the handed-in notebook at ``path`` cannot carry the test cells (one clause), or None."""
    path = Path(path)
    if not path.is_file():
        return f"{NOTEBOOK_NAME} was not handed in"
    import nbformat
    try:
        with warnings.catch_warnings():   # nbformat's MissingIDFieldWarning on older notebooks: not the TA's concern
            warnings.simplefilter("ignore")
            nb = nbformat.read(str(path), as_version=4)
            nbformat.validate(nb)
    except Exception:   # invalid JSON, not a notebook, unreadable bytes: all the same to the student
        return f"{NOTEBOOK_NAME} is not a readable notebook"
    from nbgrader.nbgraderformat import MetadataValidator
    try:
        MetadataValidator().validate_nb(nb)
    except Exception:
        return f"the nbgrader metadata of cells in {NOTEBOOK_NAME} was changed"
    present = {cell.metadata["nbgrader"].get("grade_id") for cell in nb.cells
               if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade")}
    missing = [grade_id_for_part(part) for part in PART_IDS if grade_id_for_part(part) not in present]
    if missing:
        return f"the test cell{'s' if len(missing) > 1 else ''} {', '.join(missing)} of {NOTEBOOK_NAME} " \
               f"{'were' if len(missing) > 1 else 'was'} deleted or changed"
    return None


def note_text(problem: str) -> str:
    return (f"{NOTE_HEADING} {problem}, so your submission was graded with the released notebook "
            f"in its place. Your `resnet50_skeleton.py` was graded as you handed it in; the test cells "
            f"below show its points.")


class SubmissionExporter(NotebookExporter):
    """nbgrader's notebook exporter, with the released notebook standing in for a handed-in
    one that cannot carry the test cells (see the module's text)."""

    def from_filename(self, filename, resources=None, **kw):
        info = (resources or {}).get("nbgrader")
        if not info:
            return self._convert(filename, resources, **kw)
        # The kernel (started by the Execute preprocessor inside this call) inherits these: the test
        # cells grade the handed-in folder itself, and know the notebook's folder whatever the
        # student's cells do to the working folder (see test_cell).
        with _environment({SUBMITTED_ENV: str(self._submitted_folder(info)),
                           WORKDIR_ENV: os.path.abspath(os.path.dirname(filename))}):
            return self._convert(filename, resources, **kw)

    def _submitted_folder(self, info: dict) -> Path:
        coursedir = getattr(self.parent, "coursedir", None)
        folder = (coursedir.format_path(coursedir.submitted_directory, info["student"], info["assignment"])
                  if coursedir else os.path.join("submitted", info["student"], info["assignment"]))
        return Path(folder).absolute()

    def _convert(self, filename, resources, **kw):
        problem = notebook_problem(filename)
        info = (resources or {}).get("nbgrader")
        if problem is None or not info:
            return super().from_filename(filename, resources=resources, **kw)
        nb = self._released_notebook(info["assignment"], info["notebook"])
        import nbformat
        note = nbformat.v4.new_markdown_cell(note_text(problem))
        note["id"] = NOTE_CELL_ID
        nb.cells.insert(0, note)
        self.log.warning("%s: %s; graded with the released notebook in its place", filename, problem)
        self._flag(info, problem)
        resources["metadata"] = {"name": Path(filename).stem, "path": str(Path(filename).parent)}
        return self.from_notebook_node(nb, resources=resources, **kw)

    def _released_notebook(self, assignment: str, notebook: str):
        import nbformat
        coursedir = getattr(self.parent, "coursedir", None)
        folder = (coursedir.format_path(coursedir.release_directory, ".", assignment) if coursedir
                  else os.path.join("release", assignment))
        path = Path(folder) / f"{notebook}.ipynb"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: run `nbgrader generate_assignment {assignment}` "
                                    "first (it stands in for a missing or broken notebook)")
        return nbformat.read(str(path), as_version=4)

    def _flag(self, info: dict, problem: str) -> None:
        """Flag the submitted notebook in the gradebook (formgrader shows the flag)."""
        from nbgrader.api import Gradebook, MissingEntry
        try:
            with Gradebook(info["db_url"]) as gb:
                submitted = gb.find_submission_notebook(info["notebook"], info["assignment"], info["student"])
                submitted.flagged = True
                gb.db.commit()
        except MissingEntry:
            self.log.warning("could not flag %s's notebook in the gradebook (%s)", info["student"], problem)


def _lists_folders_without_the_notebook(init_notebooks):
    @functools.wraps(init_notebooks)
    def wrapper(self) -> None:
        coursedir = self.coursedir
        notebook_glob = coursedir.notebook_id + ".ipynb"
        if (coursedir.assignment_id not in _kit_assignments
                or not fnmatch.fnmatch(NOTEBOOK_NAME, notebook_glob)):
            return init_notebooks(self)
        pattern = self._format_source(coursedir.assignment_id, coursedir.student_id)
        folders = sorted(f for f in glob.glob(pattern) if os.path.isdir(f))
        if not folders:
            return init_notebooks(self)   # nbgrader's own message for an empty submitted/
        self.assignments = {}
        self.notebooks = []
        for folder in folders:
            found = glob.glob(os.path.join(folder, notebook_glob))
            expected = os.path.join(folder, NOTEBOOK_NAME)
            if expected not in found:
                self.log.warning("%s has no %s: it is graded with the released notebook", folder, NOTEBOOK_NAME)
                found.append(expected)   # SubmissionExporter reads the released notebook for it
            self.assignments[folder] = found
    wrapper.kit_lists_folders_without_the_notebook = True
    return wrapper


def linked_files(folder: Path | str) -> list[str]:
    """The symbolic links to files in a handed-in folder, relative to it (nbgrader's copy follows
    them; the grader refuses them, as it refuses any file that is not the student's own)."""
    found = []
    for dirname, dirnames, filenames in os.walk(folder):   # never descends into a linked folder
        for name in filenames:
            path = os.path.join(dirname, name)
            if os.path.islink(path):
                found.append(os.path.relpath(path, folder))
    return sorted(found)


def _drops_copies_of_links(init_assignment):
    """After nbgrader copied a student's files (autograde: submitted/ to autograded/; feedback:
    autograded/ to feedback/), remove what it copied through a link in the handed-in folder: the
    file a link points at (the solved file, another student's) never reaches the autograded
    folder or the student's feedback. The test cells grade the handed-in folder, where the link
    is refused as the CLI refuses it (status refused, 0 points, its message in each test cell)."""
    @functools.wraps(init_assignment)
    def wrapper(self, assignment_id: str, student_id: str) -> None:
        init_assignment(self, assignment_id, student_id)
        if assignment_id not in _kit_assignments:
            return
        coursedir = self.coursedir
        submitted = coursedir.format_path(coursedir.submitted_directory, student_id, assignment_id)
        dest = Path(self._format_dest(assignment_id, student_id))
        source = Path(coursedir.format_path(coursedir.source_directory, ".", assignment_id))
        kept = set(getattr(self, "exclude_overwriting", {}).get(assignment_id, []))
        for name in linked_files(submitted):
            if hasattr(self, "exclude_overwriting") and (source / name).is_file() and name not in kept:
                continue   # autograde put the instructor's copy there, as for every source file
            copy = dest / name
            if copy.is_file() or copy.is_symlink():
                copy.unlink()
                self.log.warning("%s is a symbolic link: not copied to %s (the grader refuses it; 0 points)",
                                 os.path.join(submitted, name), dest)
    wrapper.kit_drops_copies_of_links = True
    return wrapper


def configure_autograde(c, assignment: str) -> None:
    """Called from the course's ``nbgrader_config.py``: grade ``assignment``'s submissions whose
    notebook is missing or broken from their ``.py`` (see the module's text)."""
    from nbgrader.converters import Autograde
    _kit_assignments.add(assignment)
    c.Autograde.exporter_class = SubmissionExporter
    if not getattr(Autograde.init_notebooks, "kit_lists_folders_without_the_notebook", False):
        Autograde.init_notebooks = _lists_folders_without_the_notebook(Autograde.init_notebooks)
    from nbgrader.converters import GenerateFeedback
    for converter in (Autograde, GenerateFeedback):
        if not getattr(converter.init_assignment, "kit_drops_copies_of_links", False):
            converter.init_assignment = _drops_copies_of_links(converter.init_assignment)
