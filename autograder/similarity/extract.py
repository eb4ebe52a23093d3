"""Step 0: find the submissions (the same layout and student names as ``grade``),
read each file without running it, and tell apart the files worth comparing
from those only listed (missing, unreadable, empty, the untouched skeleton).

Also the weak evidence a file carries besides its code: its own comments and
oddities of its layout.
"""
from __future__ import annotations

import ast
import multiprocessing
import re
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from autograder.similarity.normalise import Tokens, Vocabulary, analyse, code_tokens, comments

STUDENT_FILE = "resnet50_skeleton.py"      # the released file, and the name students hand it in under
KIT_ROOT = Path(__file__).resolve().parents[2]
SKELETON_PATH = KIT_ROOT / STUDENT_FILE
SOLUTION_PATH = KIT_ROOT / "solutions" / STUDENT_FILE
# Not compared, only listed: why.
MISSING, UNREADABLE, EMPTY, UNTOUCHED = "missing", "unreadable", "empty", "untouched skeleton"
REFUSED = "refused"
REPORT_FILE = "similarity.csv"      # a folder holding one is an earlier report, not a student
STUDENT_CLASSES = {"ResidualBlock", "ResNet50_layer4"}     # where the placeholders are
PLACEHOLDER_CALLS = {"blank", "blanks", "blank_default"}
MAX_SOURCE_CHARS = 60_000   # about 7 times the skeleton: the rest of a huge file is not read (memory, time)
PARALLEL_FROM = 40          # fewer files than this are read in this process (starting workers costs more)


class SimilarityError(Exception):
    """A problem with the command's own input (bad path, empty folder, unwritable output)."""


@dataclass
class StudentFile:
    student: str
    path: Path | None
    source: str = ""
    tokens: Tokens | None = None           # ``tokens.parsed``: whether the whole file parses
    comments: list[tuple[int, str]] = field(default_factory=list)
    layout: frozenset[str] = frozenset()
    raw: bytes | None = None     # the file's bytes as ``grade`` reads them (to check a grade run's fingerprint)
    truncated: bool = False      # only the first MAX_SOURCE_CHARS were compared
    skipped: str = ""            # why it is listed and not compared ("" when compared)
    detail: str = ""

    @property
    def compared(self) -> bool:
        return not self.skipped

    @property
    def shown_path(self) -> str:
        if self.path is None:
            return self.student
        return self.path.name if self.path.stem == self.student else f"{self.student}/{self.path.name}"


@dataclass(frozen=True)
class Boilerplate:
    """What every submission may contain without it meaning anything."""
    vocab: Vocabulary
    sources: tuple[str, ...]          # the skeleton, the solution and the accepted variants of it
    skeleton_tokens: tuple[str, ...]
    placeholders: int                 # blank(...) calls left to the student in the released skeleton
    comments: frozenset[str]


def _decode(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def accepted_variants(solution: str) -> list[str]:
    """Forms the grader gives full credit that the rewrites in ``normalise`` do not
    reach: a ReLU after the addition, as a module or as a function, and the imports."""
    add = "return out + identity"
    module = solution.replace("        self.downsample = downsample\n",
                              "        self.downsample = downsample\n        self.relu = nn.ReLU(inplace=True)\n", 1)
    variants = [module.replace(add, "return self.relu(out + identity)")]
    for call in ("nn.functional.relu", "F.relu", "torch.relu"):
        variants.append(solution.replace(add, f"return {call}(out + identity)"))
    # The imports those forms (and torch.flatten, torch.nn.Conv2d) need.
    imports = "import torch.nn as nn\n"
    variants += [solution.replace(imports, "import torch\n" + imports, 1),
                 solution.replace(imports, imports + "import torch.nn.functional as F\n", 1),
                 solution.replace(imports, "import torch\n" + imports + "import torch.nn.functional as F\n", 1),
                 solution.replace(imports, "from torch import nn\n", 1)]
    return variants + _stage_loop_variants(solution)


STAGES = "self.layer1, self.layer2, self.layer3, self.layer4"
SOLUTION_FORWARD = """        out = self.layer1(x)
        out = self.layer2(out)
        out = self.layer3(out)
        out = self.layer4(out)
        out = self.avgpool(out)
        out = out.view(out.size(0), -1)
        out = self.fc(out)
        return out
"""


def _stage_loop_variants(solution: str) -> list[str]:
    """forward() looping over the stages (``for layer in [self.layer1, ...]: x = layer(x)``):
    a common idiom, in a list or a tuple, with or without the pooling, either tail."""
    if SOLUTION_FORWARD not in solution:
        return []
    variants = []
    for opening, closing in (("[", "]"), ("(", ")")):
        for stages, after in ((STAGES + ", self.avgpool", ""), (STAGES, "        x = self.avgpool(x)\n")):
            for tail in ("        return self.fc(x)\n", "        x = self.fc(x)\n        return x\n"):
                body = (f"        for layer in {opening}{stages}{closing}:\n            x = layer(x)\n"
                        + after + "        x = x.view(x.size(0), -1)\n" + tail)
                variants.append(solution.replace(SOLUTION_FORWARD, body, 1))
    return variants


def load_boilerplate(skeleton_path: Path = SKELETON_PATH, solution_path: Path = SOLUTION_PATH) -> Boilerplate:
    try:
        skeleton = skeleton_path.read_text(encoding="utf-8")
        solution = solution_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SimilarityError(f"cannot read the kit's {exc.filename}: {exc.strerror}") from None
    vocab = Vocabulary.from_sources(skeleton, solution)
    sources = (skeleton, solution, *accepted_variants(skeleton), *accepted_variants(solution))
    kit_comments = frozenset(_comment_key(c) for s in sources for _, c in comments(s))
    return Boilerplate(vocab, sources, tuple(code_tokens(skeleton, vocab).texts), unfilled_placeholders(skeleton),
                       kit_comments)


def unfilled_placeholders(source: str) -> int:
    """How many ``blank(...)``, ``blanks(...)``, ``blank_default(...)`` the classes the
    student completes still hold (0 when the file does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return 0
    return sum(1 for cls in tree.body if isinstance(cls, ast.ClassDef) and cls.name in STUDENT_CLASSES
               for node in ast.walk(cls) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
               and node.func.id in PLACEHOLDER_CALLS)


def _comment_key(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def layout_features(source: str) -> frozenset[str]:
    """Habits of layout that survive copy and paste: indentation, spacing, line ends."""
    lines = source.split("\n")
    code = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    features = set()
    indents = {len(ln) - len(ln.lstrip(" ")) for ln in code if ln.startswith(" ")}
    if any(ln.startswith("\t") for ln in code):
        features.add("tab indentation")
    unit = min(indents) if indents else 4
    if unit not in (0, 4):
        features.add(f"{unit}-space indentation")
    if sum(1 for ln in lines if ln != ln.rstrip()) >= 3:
        features.add("trailing spaces")
    if sum(len(re.findall(r",\S", ln)) for ln in code) >= 5:
        features.add("no space after commas")
    if sum(len(re.findall(r"[(,]\s*\w+ = [^=]", ln)) for ln in code if "def " not in ln) >= 3:
        features.add("spaces around keyword '='")
    if sum(1 for ln in code if ln.rstrip().endswith(";")) >= 2:
        features.add("semicolons at line ends")
    if sum(1 for ln in code if len(ln) > 110) >= 3:
        features.add("long lines")
    if re.search(r"\n\n\n\n\n", source):
        features.add("runs of 4+ blank lines")
    return frozenset(features)


def read_submission(sub) -> StudentFile:
    """One submission (``grade``'s ``Submission``): its text, never imported, or why
    it cannot be compared."""
    from autograder.grade.batch import Refused, read_source
    found = StudentFile(sub.student, sub.file)
    if sub.file is None:
        found.skipped = REFUSED if sub.problem_status == "refused" else MISSING
        found.detail = sub.problem or f"no {STUDENT_FILE}"
        return found
    try:
        found.raw = read_source(sub)
        found.source = _decode(found.raw)
    except Refused as exc:
        found.skipped, found.detail = UNREADABLE, str(exc)
        return found
    if len(found.source) > MAX_SOURCE_CHARS:
        cut = found.source.rfind("\n", 0, MAX_SOURCE_CHARS)
        found.source = found.source[:cut if cut > 0 else MAX_SOURCE_CHARS]
        found.truncated = True
    if not found.source.strip():
        found.skipped, found.detail = EMPTY, "the file is empty"
    return found


_worker_vocab: Vocabulary | None = None


def _start_worker(vocab: Vocabulary) -> None:
    global _worker_vocab
    _worker_vocab = vocab


def _analyse(source: str, vocab: Vocabulary | None = None):
    tokens, found_comments = analyse(source, vocab or _worker_vocab)
    return tokens, found_comments, layout_features(source)


def analyse_students(students: list[StudentFile], boilerplate: Boilerplate, jobs: int = 1,
                     progress: Callable = lambda it, **kw: it) -> None:
    """Tokenise every readable file (in ``jobs`` processes for a large class) and
    set aside the empty ones and untouched skeletons."""
    todo = [s for s in students if s.compared]
    if jobs > 1 and len(todo) >= PARALLEL_FROM and "fork" in multiprocessing.get_all_start_methods():
        # fork: the workers need nothing but the vocabulary, and no student code runs anywhere
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker,
                                 initargs=(boilerplate.vocab,)) as pool:
            results = pool.map(_analyse, [s.source for s in todo], chunksize=8)
            results = list(progress(results, total=len(todo), desc="reading", unit="file"))
    else:
        results = [_analyse(s.source, boilerplate.vocab)
                   for s in progress(todo, desc="reading", unit="file")]
    for student, (tokens, found_comments, layout) in zip(todo, results):
        student.tokens = tokens
        student.comments = [(line, key) for line, key in
                            ((line, _comment_key(c)) for line, c in found_comments)
                            if len(key) >= 3 and key not in boilerplate.comments]
        student.layout = layout
        if not tokens.texts:
            student.skipped, student.detail = EMPTY, "the file holds only comments"
        elif tokens.parsed and (tuple(tokens.texts) == boilerplate.skeleton_tokens or (
                PLACEHOLDER_CALLS & set(tokens.texts)
                and unfilled_placeholders(student.source) >= boilerplate.placeholders > 0)):
            # the skeleton as released (any release): every placeholder still there
            student.skipped, student.detail = UNTOUCHED, "the released skeleton with nothing filled in"


def find_students(path: Path, skip: tuple[Path, ...] = ()) -> list[StudentFile]:
    """Every submission under ``path``, named and ordered as ``grade`` names them."""
    # grade's own discovery (LMS folder names, misnamed files, links refused), imported
    # here: it brings torch in, which a mistyped path should not wait for.
    from autograder.grade.batch import BatchError, discover
    try:
        submissions = discover(path, skip=skip, log=lambda message: None)
    except BatchError as exc:
        raise SimilarityError(str(exc)) from None
    # An earlier report written inside the submissions folder (another --out) is no student.
    submissions = [sub for sub in submissions if not (sub.file is None and sub.folder is not None
                                                      and (sub.folder / REPORT_FILE).is_file())]
    return [read_submission(sub) for sub in submissions]
