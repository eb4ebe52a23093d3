"""The similarity report on a class built from the released skeleton.

Every correct file is the skeleton plus nearly the same lines, so the report
must find the disguised copy among honest students who all wrote the reference
answer (or an equivalent form of it), and must not flag the honest ones; plain
MOSS-style winnowing, on the same class, flags exactly those.
"""
from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.similarity.baseline import plain_winnowing
from autograder.similarity.extract import SOLUTION_FORWARD, load_boilerplate
from autograder.similarity.fingerprint import K, TokenIds, boilerplate_hashes, fingerprint, kit_streams
from autograder.similarity.normalise import code_tokens
from autograder.similarity.report import CSV_HEADER, cluster_order
from autograder.similarity.run import similarity_report
from tests.similarity_class import (GLOBAL_POOL, KWARGS, LIST_COMPREHENSIONS, PLACEHOLDER, REFERENCE, SKELETON, STRIDE_ON_3X3,
                                    adaptive_pool, copy_source, disguised_copy, fill, generated_class, plain_super,
                                    relu_after_add, sub, teaching_class, torch_flatten, write_class)

ROOT = Path(__file__).resolve().parents[1]
HONEST = ["canonical_ana", "canonical_ben", "kwargs_chen", "listcomp_dara", "pool_eli"]
COPIED = ("copy_hana", "copy_ivan")
MISTAKE = ("mistake_fay", "mistake_gus")
BROKEN = sub(fill(), "ResidualBlock(512, 128, 512, True),", "ResidualBlock(512, 128, 512, True,")


def run(tmp_path: Path, files: dict[str, str], **kwargs):
    write_class(tmp_path / "subs", files)
    return similarity_report(tmp_path / "subs", tmp_path / "out", jobs=1, **kwargs)


def scores(report) -> dict[tuple[str, str], float]:
    return {(p.a, p.b): p.score for p in report.pairs}


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def teaching(tmp_path_factory):
    files = teaching_class()
    files.update({"untouched_jo": SKELETON, "empty_kim": "", "comments_only_lin": "# will finish tonight\n",
                  "broken_max": BROKEN})
    return files, run(tmp_path_factory.mktemp("teaching"), files)


# ---- the ranking ---------------------------------------------------------------------

def test_disguised_copy_ranks_first(teaching):
    _, report = teaching
    top = report.pairs[0]
    assert (top.a, top.b) == COPIED
    assert top.score > 0.8
    assert top.score > 2.5 * report.pairs[1].score


def test_identical_canonical_answers_and_equivalent_forms_score_low(teaching):
    _, report = teaching
    got = scores(report)
    assert got["canonical_ana", "canonical_ben"] < 0.05
    for i, a in enumerate(HONEST):
        for b in HONEST[i + 1:]:
            assert got[a, b] < 0.05, (a, b)


def test_same_common_mistake_made_independently_scores_low(teaching):
    _, report = teaching
    got = scores(report)
    # seen (two students share a change from the reference), but far below the copy
    assert 0 < got[MISTAKE] < 0.4
    assert got[MISTAKE] < got[COPIED] / 2.5


def test_plain_winnowing_ranks_honest_pairs_first_and_this_command_does_not(teaching):
    files, report = teaching
    compared = {name: files[name] for name in HONEST + [*COPIED, *MISTAKE]}
    plain = plain_winnowing(compared)
    plain_scores = {(a, b): s for a, b, s in plain}
    # Plain winnowing: the two identical honest answers tie or beat the disguised copy,
    # and every honest pair looks nearly as copied.
    assert plain_scores["canonical_ana", "canonical_ben"] == 1.0
    assert plain[0][:2] == ("canonical_ana", "canonical_ben")
    assert plain_scores[COPIED] <= plain_scores["canonical_ana", "canonical_ben"]
    honest = [s for (a, b), s in plain_scores.items() if a in HONEST and b in HONEST]
    assert min(honest) > 0.6 and sum(s > 0.8 for s in honest) >= len(honest) / 2
    # This command, same files: the copy first, honest pairs near 0.
    ours = scores(report)
    assert (report.pairs[0].a, report.pairs[0].b) == COPIED
    assert max(ours[a, b] for a, b in plain_scores if a in HONEST and b in HONEST) < 0.05


# ---- what is listed and what is compared ---------------------------------------------

def test_untouched_empty_and_comment_only_files_are_listed_not_compared(teaching):
    _, report = teaching
    listed = {s.student: s.skipped for s in report.listed}
    assert listed == {"untouched_jo": "untouched skeleton", "empty_kim": "empty", "comments_only_lin": "empty"}
    rows = read_csv(report.files[0])
    named = {name for row in rows[1:] for name in row[:2]}
    assert not named & set(listed)
    md = report.files[1].read_text(encoding="utf-8")
    assert "## Listed, not compared" in md and "| untouched_jo | untouched skeleton:" in md


def test_syntax_error_file_is_compared_as_text(teaching):
    files, report = teaching
    broken = next(s for s in report.students if s.student == "broken_max")
    assert broken.compared and not broken.tokens.parsed and broken.tokens.texts
    got = scores(report)
    assert ("broken_max", "canonical_ana") in got
    assert got["broken_max", "canonical_ana"] < 0.05          # the reference answer, as text, is still boilerplate


@pytest.mark.parametrize("break_it", [
    ("        self.layer4 = nn.Sequential(", "        self.layer4 = nn.Sequential(("),      # in a method
    ("def conv3x3(in_channels", "def conv3x3(in_channels,,"),                          # in a function
    ("import torch.nn as nn", "import torch.nn as"),                                  # at the top
    ("        return out + identity", "        return out + identity)"),              # in the block
])
def test_broken_file_keeps_the_rewrites_of_the_parts_that_parse(kit, break_it):
    """An honest student written in keyword arguments, with one syntax error: the
    pieces that parse are still rewritten, so the only own tokens are the broken ones."""
    boilerplate, token_ids, kit_hashes = kit
    text = sub(plain_super(torch_flatten(fill({**KWARGS, **LIST_COMPREHENSIONS}))), *break_it)
    tokens = code_tokens(text, boilerplate.vocab)
    assert not tokens.parsed
    own = fingerprint(tokens, token_ids, kit_hashes).own
    broken_line = text[:text.index(break_it[1])].count("\n") + 1
    # own tokens only in the broken statement (at most ten lines) and the k-grams around it
    in_statement = [i for i, line in enumerate(tokens.first) if broken_line <= line <= broken_line + 10]
    near = set(range(in_statement[0] - K, in_statement[-1] + K + 1))
    assert set(own.nonzero()[0]) <= near, (broken_line, sorted({tokens.first[i] for i in own.nonzero()[0]}))
    assert own.sum() < 60


def test_syntax_error_copy_is_still_found(tmp_path):
    original = copy_source()
    broken_copy = sub(disguised_copy(original), "        self.layer4 = nn.Sequential(", "        self.layer4 = nn.Sequential((")
    files = {"a": fill(), "b": fill(), "c": plain_super(fill(KWARGS)), "src": original, "cpy": broken_copy}
    report = run(tmp_path, files)
    assert (report.pairs[0].a, report.pairs[0].b) == ("cpy", "src")
    assert report.pairs[0].score > 0.8
    assert "its broken part is compared as text" in report.files[1].read_text(encoding="utf-8")


def test_reading_in_two_processes_gives_the_same_report(tmp_path):
    files, planted = generated_class(60, seed=5)
    write_class(tmp_path / "subs", files)
    alone = similarity_report(tmp_path / "subs", tmp_path / "one", jobs=1)
    shared = similarity_report(tmp_path / "subs", tmp_path / "two", jobs=2)
    assert alone.files[0].read_text() == shared.files[0].read_text()
    assert alone.files[1].read_text() == shared.files[1].read_text()
    assert {(p.a, p.b) for p in alone.pairs[:len(planted)]} == set(planted)


def test_class_of_one(tmp_path):
    report = run(tmp_path, {"only": copy_source()})
    assert report.pairs == []
    assert read_csv(report.files[0]) == [CSV_HEADER]
    assert "Nothing to compare" in report.files[1].read_text(encoding="utf-8")
    assert report.files[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_odd_and_hostile_files_never_stop_the_report(tmp_path):
    """Files a student can hand in that a parser or tokeniser may choke on."""
    nested = "x = " + "(" * 5000 + "1" + ")" * 5000 + "\n"
    files = {
        "bom_crlf": "\ufeff" + fill().replace("\n", "\r\n"),
        "tabs": fill().replace("    ", "\t"),
        "deep_nesting": fill() + nested,
        "null_bytes": fill().replace("import torch.nn as nn", "import torch.nn as nn\x00"),
        "unterminated_string": fill() + '\nprint("""never closed\n',
        "huge": fill() + "\n".join(f"v{i} = {i}" for i in range(30000)),
        "runs_nothing": "import os\nos.system('touch /tmp/similarity-ran-student-code')\n" + fill(),
        "canonical": fill(),
    }
    write_class(tmp_path / "subs", files)
    (tmp_path / "subs" / "latin1").mkdir()
    (tmp_path / "subs" / "latin1" / "resnet50_skeleton.py").write_bytes(
        fill().replace("# Layer 2", "# Schicht 2 für größere").encode("latin-1", "replace"))
    marker = Path("/tmp/similarity-ran-student-code")
    marker.unlink(missing_ok=True)
    report = similarity_report(tmp_path / "subs", tmp_path / "out", jobs=1)
    assert not marker.exists()
    assert {s.student for s in report.students if s.compared} == set(files) | {"latin1"}
    rows = read_csv(report.files[0])
    assert len(rows) - 1 == 9 * 8 // 2
    parsed = {s.student: s.tokens.parsed for s in report.students}
    assert parsed["bom_crlf"] and parsed["tabs"] and parsed["latin1"]
    assert not parsed["unterminated_string"] and not parsed["null_bytes"]
    got = scores(report)
    assert got["bom_crlf", "canonical"] == got["canonical", "tabs"] == 0.0


def test_nothing_but_untouched_and_empty_files(tmp_path):
    older_release = (ROOT / "examples" / "submissions" / "untouched_skeleton" / "resnet50_skeleton.py").read_text()
    report = run(tmp_path, {"a": SKELETON, "b": "", "c": SKELETON.replace("\n\n", "\n"), "d": older_release,
                            "e": SKELETON.replace("    def forward(self, x):", "    # TODO\n    def forward(self, x):")})
    assert [s.skipped for s in report.students] == ["untouched skeleton", "empty"] + ["untouched skeleton"] * 3
    assert read_csv(report.files[0]) == [CSV_HEADER]


def test_a_partly_filled_skeleton_is_compared(tmp_path):
    partly = SKELETON.replace('nn.MaxPool2d(*blanks(3, "Q2: the MaxPool2d arguments in layer1"))', "nn.MaxPool2d(3, 2, 1)")
    assert partly != SKELETON
    report = run(tmp_path, {"partly": partly, "done": fill()})
    assert [s.compared for s in report.students] == [True, True]


# ---- normalisation: families of honest forms and of disguises --------------------------

FORWARD = SOLUTION_FORWARD   # the reference forward() each form below replaces
STAGE_LOOP = """        for layer in [self.layer1, self.layer2, self.layer3, self.layer4, self.avgpool]:
            x = layer(x)
        x = x.view(x.size(0), -1)
        return self.fc(x)
"""
STAGE_LOOP_TUPLE = """        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
        x = self.avgpool(x)
        x = x.view(x.size(0), -1)
        x = self.fc(x)
        return x
"""
STAGE_LOOP_TAIL = """        for blk in [self.layer1, self.layer2, self.layer3, self.layer4, self.avgpool]:
            inp = blk(inp)
        inp = inp.view(inp.size(0), -1)
        inp = self.fc(inp)
        return inp
"""
ACCEPTED_FORMS = {
    "reference": fill(),
    "keyword arguments": fill(KWARGS),
    "list comprehensions": fill(LIST_COMPREHENSIONS),
    "AvgPool2d(2, 1)": fill(GLOBAL_POOL),
    "AdaptiveAvgPool2d((1, 1))": adaptive_pool(fill()),
    "AdaptiveAvgPool2d(1)": sub(fill(), "nn.AvgPool2d(2, 2)", "nn.AdaptiveAvgPool2d(output_size=1)"),
    "super()": plain_super(fill()),
    "torch.flatten": torch_flatten(fill()),
    "x.reshape(x.shape[0], -1)": sub(fill(), "out.view(out.size(0), -1)", "out.reshape(out.shape[0], -1)"),
    "ReLU after the addition (functional)": relu_after_add(fill()),
    "ReLU after the addition (module)": sub(sub(fill(), "        self.downsample = downsample\n",
                                                "        self.downsample = downsample\n"
                                                "        self.relu = nn.ReLU(inplace=True)\n"),
                                            "return out + identity", "return self.relu(out + identity)"),
    "reject line kept": fill(keep_reject_line=True),
    "torch.nn.Conv2d spelled out": sub(fill({"Q2: the Conv2d arguments in layer1": "3, 64, kernel_size=7, stride=2, padding=3"}),
                                       "nn.Conv2d(", "torch.nn.Conv2d(").replace("import torch.nn as nn",
                                                                                "import torch\nimport torch.nn as nn"),
    "default downsample left out": fill({"Q2: the arguments of layer2's first ResidualBlock": "64, 64, 256"}),
    "forward() looping over the stages in a list": sub(fill(), FORWARD, STAGE_LOOP),
    "forward() looping over a tuple, pooling after": sub(fill(), FORWARD, STAGE_LOOP_TUPLE),
    "forward() looping, then torch.flatten": sub(sub(fill(), FORWARD, STAGE_LOOP_TAIL),
                                                "inp.view(inp.size(0), -1)", "torch.flatten(inp, 1)"),
    "all at once": torch_flatten(plain_super(adaptive_pool(fill({**KWARGS, **LIST_COMPREHENSIONS})))),
}


@pytest.fixture(scope="module")
def kit():
    boilerplate = load_boilerplate()
    token_ids = TokenIds()
    return boilerplate, token_ids, boilerplate_hashes(boilerplate.sources, boilerplate.vocab, token_ids)


@pytest.mark.parametrize("form", sorted(ACCEPTED_FORMS))
def test_every_accepted_form_is_boilerplate(kit, form):
    boilerplate, token_ids, kit_hashes = kit
    tokens = code_tokens(ACCEPTED_FORMS[form], boilerplate.vocab)
    assert tokens.parsed
    own = fingerprint(tokens, token_ids, kit_hashes).own
    assert own.sum() == 0, [(tokens.texts[i], tokens.first[i]) for i in own.nonzero()[0]]


def test_two_students_looping_over_the_stages_in_forward_score_low(tmp_path):
    """A common idiom written with different names, in a class that otherwise answers alike."""
    files = {"loop_pia": sub(fill(), FORWARD, STAGE_LOOP),
             "loop_quin": sub(fill(), FORWARD, STAGE_LOOP_TAIL.replace("        for blk in", "        for b in")
                              .replace("blk(", "b(").replace("inp", "h")),
             "loop_rae": sub(fill(KWARGS), FORWARD, STAGE_LOOP_TUPLE),
             "canonical_sol": fill(), "kwargs_tom": fill(KWARGS)}
    report = run(tmp_path, files)
    assert max(p.score for p in report.pairs) < 0.05, [(p.a, p.b, p.score) for p in report.pairs[:3]]


def test_a_mistake_is_the_students_own(kit):
    boilerplate, token_ids, kit_hashes = kit
    tokens = code_tokens(fill(STRIDE_ON_3X3), boilerplate.vocab)
    own = fingerprint(tokens, token_ids, kit_hashes).own
    assert [(tokens.texts[i], tokens.first[i]) for i in own.nonzero()[0]] == [("2", 123)]


DISGUISES = {
    "renamed helper and variables, translated comments, blank lines": disguised_copy,
    "positional arguments made keywords": lambda t: sub(sub(t, "ResidualBlock(in_ch, mid_ch, out_ch, False)",
                                                            "ResidualBlock(in_channels=in_ch, middle_channels=mid_ch, "
                                                            "out_channels=out_ch, downsample=False)"),
                                                        "nn.Conv2d(3, 64, 7, 2, 3)",
                                                        "nn.Conv2d(in_channels=3, out_channels=64, kernel_size=7, "
                                                        "stride=2, padding=3)"),
    "super() and comments removed": lambda t: re.sub(r"  +# .*|\n *# [a-z].*", "", plain_super(t)),
    "reformatted: one argument per line": lambda t: t.replace("ResidualBlock(out_ch, mid_ch, out_ch, shrink_last and last)",
                                                              "ResidualBlock(\n            out_ch,\n            mid_ch,\n"
                                                              "            out_ch,\n            shrink_last and last,\n"
                                                              "        )"),
    "own comments added everywhere": lambda t: t.replace("\n    stage", "\n    # my stage\n    stage"),
}


@pytest.mark.parametrize("disguise", sorted(DISGUISES))
def test_disguises_do_not_hide_a_copy(tmp_path, disguise):
    original = copy_source()
    files = {"a": fill(), "b": fill(), "c": plain_super(fill(KWARGS)), "d": torch_flatten(fill(LIST_COMPREHENSIONS)),
             "e": fill(STRIDE_ON_3X3), "orig": original, "zcopy": DISGUISES[disguise](original)}
    report = run(tmp_path, files)
    assert (report.pairs[0].a, report.pairs[0].b) == ("orig", "zcopy")
    assert report.pairs[0].score > 0.8
    assert report.pairs[1].score < 0.2


def test_markdown_shows_fragments_side_by_side_with_their_lines(teaching):
    files, report = teaching
    md = report.files[1].read_text(encoding="utf-8")
    assert "## 1. copy_hana and copy_ivan" in md
    headings = re.findall(r"### Fragment \d+: copy_hana/resnet50_skeleton.py lines (\d+)-(\d+), "
                          r"copy_ivan/resnet50_skeleton.py lines (\d+)-(\d+)", md)
    assert headings
    # the helper's definition is shown on both sides, with its real line number
    hana_line = files["copy_hana"].split("\n").index(next(ln for ln in files["copy_hana"].split("\n")
                                                          if ln.startswith("def make_stage"))) + 1
    ivan_line = files["copy_ivan"].split("\n").index(next(ln for ln in files["copy_ivan"].split("\n")
                                                          if ln.startswith("def build_layer"))) + 1
    assert re.search(rf"^ *{hana_line} def make_stage\(.*\| +{ivan_line} def build_layer\(", md, re.M)
    assert any(int(a0) <= hana_line <= int(a1) and int(b0) <= ivan_line <= int(b1) for a0, a1, b0, b1 in headings)


def test_heatmap_order_keeps_a_cluster_together(teaching):
    _, report = teaching
    names = [s.student for s in report.students if s.compared]
    order = cluster_order(names, report.pairs)
    assert sorted(order) == sorted(names)
    assert abs(order.index("copy_hana") - order.index("copy_ivan")) == 1


# ---- names the plot's font cannot draw -------------------------------------------------

UNICODE_NAMES = {"canonical_ana": "김철수_2024", "canonical_ben": "이영희_2024", "kwargs_chen": "José_Müller",
                 "listcomp_dara": "王芳"}


def unicode_class() -> dict[str, str]:
    files = teaching_class()
    for old, new in UNICODE_NAMES.items():
        files[new] = files.pop(old)
    return files


def test_a_unicode_named_class_gets_a_heatmap_without_glyph_warnings(tmp_path):
    write_class(tmp_path / "subs", unicode_class())
    done = similarity(tmp_path / "subs", "--out", tmp_path / "out", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "Glyph" not in done.stderr and "missing from" not in done.stderr, done.stderr
    assert (tmp_path / "out" / "similarity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from autograder.similarity.report import _plot_font_charmap, heatmap_labels
    charmap = _plot_font_charmap()
    labels = heatmap_labels(list(unicode_class()))
    assert labels["José_Müller"] == "José_Müller"            # the default font draws Latin accents
    md = (tmp_path / "out" / "similarity.md").read_text(encoding="utf-8")
    for name in ("김철수_2024", "이영희_2024", "王芳"):
        if all(ord(ch) in charmap for ch in name):            # a machine with a CJK font: the name itself
            assert labels[name] == name
        else:                                                 # a short label, explained in similarity.md
            assert re.fullmatch(r"#\d+", labels[name])
            assert f"| {labels[name]} | {name} |" in md
    assert "| José_Müller |" not in md.split("## Labels on similarity.png")[-1].split("## Listed")[0]


def test_heatmap_labels_are_stable_and_follow_the_fonts_charmap(monkeypatch):
    import autograder.similarity.report as report
    names = ["zed", "김철수_2024", "amy", "이영희_2024"]
    monkeypatch.setattr(report, "_plot_font_charmap", lambda: {ord(c) for c in "abcdefghijklmnopqrstuvwxyz_0123456789"})
    labels = report.heatmap_labels(names)
    # numbered by place among the sorted names, whatever order they come in
    assert labels == {"amy": "amy", "zed": "zed", "김철수_2024": "#3", "이영희_2024": "#4"}
    assert report.heatmap_labels(list(reversed(names))) == labels
    hangul = {ord(c) for c in "김철수이영희"}
    monkeypatch.setattr(report, "_plot_font_charmap",
                        lambda: {ord(c) for c in "abcdefghijklmnopqrstuvwxyz_0123456789"} | hangul)
    assert report.heatmap_labels(names)["김철수_2024"] == "김철수_2024"


def test_every_name_drawable_means_no_label_section(teaching):
    _, report = teaching
    assert "## Labels on similarity.png" not in report.files[1].read_text(encoding="utf-8")


# ---- the command line ----------------------------------------------------------------

def similarity(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "similarity", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_cli_end_to_end(tmp_path):
    files = teaching_class()
    files["Jane Doe"] = files.pop("pool_eli")          # an LMS folder name with a space
    write_class(tmp_path / "subs", files)
    (tmp_path / "subs" / "untouched_jo").mkdir()
    (tmp_path / "subs" / "untouched_jo" / "resnet50_skeleton.py").write_text(SKELETON)
    done = similarity(tmp_path / "subs", "--out", tmp_path / "out", "--top", "3", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "copy_hana  copy_ivan" in done.stdout
    rows = read_csv(tmp_path / "out" / "similarity.csv")
    assert rows[0] == CSV_HEADER
    assert len(rows) - 1 == 9 * 8 // 2                # every pair of the 9 compared files, once
    assert rows[1][:2] == list(COPIED)
    values = [float(r[2]) for r in rows[1:]]
    assert values == sorted(values, reverse=True) and all(0 <= v <= 1 for v in values)
    assert any("Jane Doe" in r[:2] for r in rows[1:])
    md = (tmp_path / "out" / "similarity.md").read_text(encoding="utf-8")
    assert "## Top 3 pairs" in md and "untouched_jo" in md
    assert (tmp_path / "out" / "similarity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("case", ["missing path", "empty folder", "out is a file", "grades not a grade output",
                                  "grades missing"])
def test_cli_errors_exit_2_with_one_line(tmp_path, capsys, case):
    from autograder.cli import main

    write_class(tmp_path / "subs", {"a": fill(), "b": fill(KWARGS)})
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("x")
    args = {"missing path": [tmp_path / "nowhere", "--out", tmp_path / "out"],
            "empty folder": [tmp_path / "empty", "--out", tmp_path / "out"],
            "out is a file": [tmp_path / "subs", "--out", tmp_path / "a_file" / "out"],
            "grades not a grade output": [tmp_path / "subs", "--out", tmp_path / "out", "--grades", tmp_path / "empty"],
            "grades missing": [tmp_path / "subs", "--out", tmp_path / "out", "--grades", tmp_path / "nowhere"],
            }[case]
    assert main(["similarity", *map(str, args), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err


def test_cli_error_exit_status_from_a_real_process(tmp_path):
    done = similarity(tmp_path / "nowhere", "--out", tmp_path / "out", "--quiet")
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {tmp_path / 'nowhere'} does not exist"


# ---- --grades: the same rare deductions ---------------------------------------------------

MAXPOOL_PADDING_0 = {"Q2: the MaxPool2d arguments in layer1": "3, 2, 0"}


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """Six students graded for real: two share a rare mistake, three share one that
    half the class made, one is correct."""
    from autograder.grade.batch import grade_batch

    folder = tmp_path_factory.mktemp("graded")
    files = {"rare_1": fill(STRIDE_ON_3X3), "rare_2": plain_super(fill({**KWARGS, **STRIDE_ON_3X3})),
             "half_1": fill(MAXPOOL_PADDING_0), "half_2": adaptive_pool(fill(MAXPOOL_PADDING_0)),
             "half_3": torch_flatten(fill(MAXPOOL_PADDING_0)), "right": fill()}
    write_class(folder / "subs", files)
    grade_batch(folder / "subs", folder / "grades", jobs=2, progress=False, log=lambda *a: None)
    return folder


def test_shared_rare_deductions_raise_a_pair_and_half_the_class_is_no_evidence(graded_class, tmp_path):
    without = similarity_report(graded_class / "subs", tmp_path / "plain", jobs=1)
    with_grades = similarity_report(graded_class / "subs", tmp_path / "graded", grades=graded_class / "grades", jobs=1)
    before, after = scores(without), scores(with_grades)
    rare = next(p for p in with_grades.pairs if (p.a, p.b) == ("rare_1", "rare_2"))
    assert rare.shared_deductions and all(d.startswith("Q1a") for d, _ in rare.shared_deductions)
    assert after["rare_1", "rare_2"] > before["rare_1", "rare_2"] + 0.05
    for pair in [("half_1", "half_2"), ("half_1", "half_3"), ("half_2", "half_3")]:
        assert after[pair] == before[pair]                # 3 of 6 made it: no evidence
    rows = {tuple(r[:2]): r for r in read_csv(with_grades.files[0])[1:]}
    assert int(rows["rare_1", "rare_2"][4]) == len(rare.shared_deductions) > 0
    assert int(rows["half_1", "half_2"][4]) == 0
    md = with_grades.files[1].read_text(encoding="utf-8")
    assert "the same rare deductions" in md and "6 of the 6 compared students were graded normally" in md


def test_reference_answers_used_by_the_class_builder_match_the_solution():
    """The test class is only meaningful if ``fill()`` is the reference solution."""
    boilerplate = load_boilerplate()
    solution = (ROOT / "solutions" / "resnet50_skeleton.py").read_text(encoding="utf-8")
    ours = code_tokens(fill(), boilerplate.vocab).texts
    theirs = code_tokens(solution, boilerplate.vocab).texts
    body = ours[ours.index("def") if "def" in ours else 0:]
    assert [t for t in body if t != "S"][-300:] == [t for t in theirs if t != "S"][-300:]
    assert set(REFERENCE) == {m.group(1) for m in PLACEHOLDER.finditer(SKELETON)}


# ---- honest loop-built stages, and a copied rare one-value mistake (review, class2) ----------

def _stages(text: str, layer3: str, layer4: str) -> str:
    """The filled file with its layer3 and layer4 ``nn.Sequential(...)`` replaced by ``layer3``/``layer4``."""
    start3 = text.index("        self.layer3 = nn.Sequential(")
    end3 = text.index("        )\n", start3) + len("        )\n")
    text = text[:start3] + layer3 + text[end3:]
    start4 = text.index("        self.layer4 = nn.Sequential(")
    end4 = text.index("        )\n", start4) + len("        )\n")
    return text[:start4] + layer4 + text[end4:]


def _loop(name: str, index: str, first: str, rest: str, mid: str, out: str, count: int, last: str, attr: str) -> str:
    return (f"        {name} = []\n        for {index} in range({count}):\n"
            f"            {name}.append(ResidualBlock({first} if {index} == 0 else {rest}, {mid}, {out}, {last}))\n"
            f"        self.{attr} = nn.Sequential(*{name})\n")


def loop_students() -> dict[str, str]:
    """Five honest students who each build layer3 and layer4 in a loop, each their own way."""
    base = fill()
    return {
        "loop_rita": _stages(base, _loop("layers", "i", "256", "512", "128", "512", 4, "i == 3", "layer3"),
                             _loop("layers", "i", "512", "1024", "256", "1024", 6, "False", "layer4")),
        "loop_sam": _stages(base,
                            "        blocks = []\n        for k in range(4):\n            in_c = 256 if k == 0 else 512\n"
                            "            blocks.append(ResidualBlock(in_c, 128, 512, k == 3))\n"
                            "        self.layer3 = nn.Sequential(*blocks)\n",
                            "        blocks = []\n        for k in range(6):\n            in_c = 512 if k == 0 else 1024\n"
                            "            blocks.append(ResidualBlock(in_c, 256, 1024, False))\n"
                            "        self.layer4 = nn.Sequential(*blocks)\n"),
        "loop_tina": _stages(base,
                             "        stage = [ResidualBlock(256, 128, 512, False)]\n        for _ in range(2):\n"
                             "            stage.append(ResidualBlock(512, 128, 512, False))\n"
                             "        stage.append(ResidualBlock(512, 128, 512, True))\n"
                             "        self.layer3 = nn.Sequential(*stage)\n",
                             "        stage = [ResidualBlock(512, 256, 1024, False)]\n        for _ in range(5):\n"
                             "            stage.append(ResidualBlock(1024, 256, 1024, False))\n"
                             "        self.layer4 = nn.Sequential(*stage)\n"),
        "loop_vic": _stages(base,
                            "        l3 = []\n        for j in range(4):\n"
                            "            l3 += [ResidualBlock(512 if j else 256, 128, 512, j == 3)]\n"
                            "        self.layer3 = nn.Sequential(*l3)\n",
                            "        l4 = []\n        for j in range(6):\n"
                            "            l4 += [ResidualBlock(1024 if j else 512, 256, 1024, False)]\n"
                            "        self.layer4 = nn.Sequential(*l4)\n"),
        "addmod_uma": _stages(base,
                              "        self.layer3 = nn.Sequential()\n        for i in range(4):\n"
                              "            self.layer3.add_module(str(i), ResidualBlock(256 if i == 0 else 512, 128, 512, i == 3))\n",
                              "        self.layer4 = nn.Sequential()\n        for i in range(6):\n"
                              "            self.layer4.add_module(str(i), ResidualBlock(512 if i == 0 else 1024, 256, 1024, False))\n"),
    }


RARE_MISTAKE = {"Q2: the Linear arguments of fc": "1024, num_classes + 0"}


def loop_class() -> dict[str, str]:
    files = teaching_class()
    files.update(loop_students())
    rare = sub(fill(), "ResidualBlock(1024, 256, 1024, False),\n        )",
               "ResidualBlock(1024, 256, 1024, True),\n        )")      # a one-value mistake, rare
    files["rare_mia"] = rare
    files["rare_copy_noah"] = plain_super(rare)
    return files


@pytest.fixture(scope="module")
def looped(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("looped")
    files = loop_class()
    return files, run(tmp, files)


def test_honest_loop_built_stages_score_low(looped):
    _, report = looped
    got = scores(report)
    loops = sorted(loop_students())
    for i, a in enumerate(loops):
        for b in loops[i + 1:]:
            assert got[a, b] < 0.2, (a, b, got[a, b])   # was 0.35-0.82 when kit text counted as own
    assert (report.pairs[0].a, report.pairs[0].b) == COPIED


def test_kit_text_between_nearby_edits_is_not_own():
    boilerplate = load_boilerplate()
    token_ids = TokenIds()
    kit_hashes = boilerplate_hashes(boilerplate.sources, boilerplate.vocab, token_ids)
    streams = kit_streams(boilerplate.sources[:2], boilerplate.vocab)
    tokens = code_tokens(loop_students()["loop_rita"], boilerplate.vocab)
    own = fingerprint(tokens, token_ids, kit_hashes, kit=streams).own
    own_text = " ".join(t for t, o in zip(tokens.texts, own) if o)
    assert "layer4" not in own_text and "Sequential" not in own_text
    assert "for" in own_text and "append" in own_text


def test_copied_rare_one_value_mistake_ranks_above_honest_pairs(looped):
    _, report = looped
    got = scores(report)
    rare = got["rare_copy_noah", "rare_mia"]
    honest = [s for (a, b), s in got.items() if {a, b} <= set(HONEST) | set(loop_students())]
    assert rare > max(honest)
    names = [(p.a, p.b) for p in report.pairs]
    assert names.index(("rare_copy_noah", "rare_mia")) <= 2      # after the copy (and maybe the shared stride)


def _sections(markdown: str) -> dict[tuple[str, str], str]:
    """(student_a, student_b) -> the text of that pair's section in similarity.md."""
    found = re.split(r"^## \d+\. ", markdown, flags=re.M)[1:]
    return {tuple(re.match(r"(\S+) and (\S+):", part).groups()): part.split("\n## ")[0] for part in found}


def test_every_contribution_to_a_score_is_listed_in_its_section(looped):
    files, report = looped
    sections = _sections((report.files[1]).read_text(encoding="utf-8"))
    rare = sections["rare_copy_noah", "rare_mia"]
    line_of = {name: 1 + files[name].split("ResidualBlock(1024, 256, 1024, True),\n        )")[0].count("\n")
               for name in ("rare_copy_noah", "rare_mia")}
    assert (f"rare_copy_noah/resnet50_skeleton.py line {line_of['rare_copy_noah']} and "
            f"rare_mia/resnet50_skeleton.py line {line_of['rare_mia']}: both wrote `True`") in rare
    shown = {(p.a, p.b): p for p in report.pairs if (p.a, p.b) in sections}
    assert shown
    for key, pair in shown.items():
        text = sections[key]
        assert f"- evidence: {pair.evidence:.1f} own tokens" in text
        listed = re.findall(r"\(\+(\d+\.\d)\)", text)   # each item's evidence before its kind's cap
        items = (list(pair.shared_comments) + list(pair.shared_deviations) + list(pair.shared_layout)
                 + list(pair.shared_deductions))
        assert len(listed) == len(items), (key, text)
        assert abs(pair.code_evidence + sum(pair.capped) - pair.evidence) < 1e-9
        assert f"own code shared: {pair.code_evidence:.1f} tokens" in text


def test_pairs_and_fragments_without_evidence_are_not_shown(looped):
    _, report = looped
    markdown = report.files[1].read_text(encoding="utf-8")
    sections = _sections(markdown)
    assert sections and all(round(p.evidence) > 0 for p in report.pairs if (p.a, p.b) in sections)
    faint = [p for p in report.pairs if 0 < p.score and round(p.evidence) == 0]
    assert faint, "the class should hold pairs with a trace of evidence"
    assert not any((p.a, p.b) in sections for p in faint)
    weights = [float(w) for w in re.findall(r"own tokens?, (\d+\.\d) rarity-weighted\)", markdown)]
    assert weights and min(weights) >= 0.5


def test_a_mistake_three_students_made_stays_low(tmp_path):
    files = teaching_class()
    three = {name: plain_super(fill(STRIDE_ON_3X3)) if name != "mistake_fay" else fill(STRIDE_ON_3X3)
             for name in ("mistake_fay", "mistake_gus", "mistake_hal")}
    files.update(three)
    report = run(tmp_path, files)
    got = scores(report)
    assert got["mistake_fay", "mistake_hal"] < 0.15
    assert got["mistake_fay", "mistake_hal"] < got[COPIED] / 5


def _result(student: str, tests: list[dict]) -> dict:
    return {"tests": tests, "extra_data": {"student": student, "status": "ok", "fingerprint": "x"}}


def test_deductions_keep_their_detail_lines_and_skip_zero_point_checks():
    from autograder.similarity.deductions import _deductions
    keys_a = "- state_dict keys do not match the checkpoint:\n    missing: layer3.0.conv1.weight\n"
    keys_b = "- state_dict keys do not match the checkpoint:\n    missing: fc.bias\n"
    q1 = "- the 3x3 conv has stride 2:\n    expected 1, got 2\n- note: a remark\n"
    checkpoint = {"name": "checkpoint", "max_score": 0.0, "output": keys_a}
    a = _deductions(_result("a", [checkpoint, {"name": "Q1a", "max_score": 20.0, "output": q1}]))
    assert a == {"Q1a: the 3x3 conv has stride 2: expected 1, got 2"}     # the 0-point check is no mistake
    scored_a = _deductions(_result("a", [{"name": "Q2b", "max_score": 20.0, "output": keys_a}]))
    scored_b = _deductions(_result("b", [{"name": "Q2b", "max_score": 20.0, "output": keys_b}]))
    assert scored_a and scored_b and scored_a != scored_b                # different details: different mistakes
    other_number = q1.replace("got 2", "got 3")
    assert _deductions(_result("c", [{"name": "Q1a", "max_score": 20.0, "output": other_number}])) != a


def test_grades_of_a_changed_file_are_ignored_with_a_warning(graded_class, tmp_path):
    import shutil
    subs = tmp_path / "subs"
    shutil.copytree(graded_class / "subs", subs)
    changed = next((subs / "rare_2").glob("*.py"))
    changed.write_text(changed.read_text(encoding="utf-8") + "\n# edited after grading\n", encoding="utf-8")
    report = similarity_report(subs, tmp_path / "out", grades=graded_class / "grades", jobs=1)
    rare = next(p for p in report.pairs if (p.a, p.b) == ("rare_1", "rare_2"))
    assert not rare.shared_deductions
    assert any("rare_2" in w and "changed" in w for w in report.warnings)
    md = report.files[1].read_text(encoding="utf-8")
    assert "**Warning:**" in md and "rare_2" in md
    done = similarity(subs, "--out", tmp_path / "out2", "--grades", graded_class / "grades", "--quiet")
    assert done.returncode == 0 and "WARNING" in done.stderr and "rare_2" in done.stderr


def test_few_normally_graded_students_warn(graded_class, tmp_path):
    import shutil
    subs = tmp_path / "subs"
    shutil.copytree(graded_class / "subs", subs)
    for name in ("half_1", "half_2", "half_3", "right"):
        path = next((subs / name).glob("*.py"))
        path.write_text(path.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    report = similarity_report(subs, tmp_path / "out", grades=graded_class / "grades", jobs=1)
    assert any("only 2 of the 6 compared students" in w for w in report.warnings)


def test_files_with_a_syntax_error_are_listed_as_compared_as_text(tmp_path):
    files = teaching_class()
    files["broken_kim"] = BROKEN
    report = run(tmp_path, files)
    md = report.files[1].read_text(encoding="utf-8")
    section = md[md.index("## Compared as text"):]
    assert "broken_kim" in section and "canonical_ana" not in section


def test_an_earlier_report_inside_the_submissions_folder_is_no_student(tmp_path):
    files = {name: text for name, text in teaching_class().items() if name in ("canonical_ana", *COPIED)}
    write_class(tmp_path / "subs", files)
    similarity_report(tmp_path / "subs", tmp_path / "subs" / "report_monday", jobs=1)
    again = similarity_report(tmp_path / "subs", tmp_path / "subs" / "report_tuesday", jobs=1)
    assert sorted(s.student for s in again.students) == sorted(files)
    again = similarity_report(tmp_path / "subs", tmp_path / "subs" / "report_monday", jobs=1)   # its own --out
    assert sorted(s.student for s in again.students) == sorted(files)


def test_links_are_refused_csv_cells_are_inert_and_outputs_are_readable(tmp_path):
    files = {name: text for name, text in teaching_class().items() if name in ("canonical_ana", *COPIED)}
    files["=1+2"] = files.pop("copy_ivan")
    files["-x"] = files.pop("canonical_ana")
    write_class(tmp_path / "subs", files)
    (tmp_path / "subs" / "link_lee").symlink_to(tmp_path / "subs" / "copy_hana")
    report = similarity_report(tmp_path / "subs", tmp_path / "out", jobs=1)
    link = next(s for s in report.students if s.student == "link_lee")
    assert link.skipped == "refused"
    rows = read_csv(report.files[0])
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows[1:] for cell in row[:2])
    assert any(cell == "'=1+2" for row in rows[1:] for cell in row[:2])
    for path in report.files:
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_one_submission_is_said_in_the_singular(tmp_path):
    report = run(tmp_path, {"canonical_ana": fill()})
    md = report.files[1].read_text(encoding="utf-8")
    assert md.splitlines()[2].startswith("1 submission: ")


def test_a_very_long_file_is_compared_in_part(tmp_path):
    from autograder.similarity.extract import MAX_SOURCE_CHARS
    files = {name: text for name, text in teaching_class().items() if name in ("canonical_ana", *COPIED)}
    padding = "".join(f"unused_{i} = {i}\n" for i in range(MAX_SOURCE_CHARS // 10))
    files["long_lou"] = fill() + padding
    report = run(tmp_path, files)
    long = next(s for s in report.students if s.student == "long_lou")
    assert long.compared and long.truncated and len(long.source) <= MAX_SOURCE_CHARS
    assert len(long.tokens.texts) < MAX_SOURCE_CHARS // 2
    md = report.files[1].read_text(encoding="utf-8")
    assert "long_lou" in md[md.index("## Compared in part"):]
    assert (report.pairs[0].a, report.pairs[0].b) == COPIED


def test_side_by_side_puts_matching_lines_beside_each_other(teaching):
    from autograder.similarity.report import _paired_lines
    _, report = teaching
    top = report.pairs[0]
    a, b = (next(s for s in report.students if s.student == name) for name in (top.a, top.b))

    def line_tokens(student, line):
        return [t for t, first in zip(student.tokens.texts, student.tokens.first) if first == line]

    both = 0
    for fragment in top.fragments:
        rows = _paired_lines(a, b, fragment)
        for left, right in rows:
            if left is not None and right is not None:
                both += 1
                assert line_tokens(a, left) == line_tokens(b, right), (left, right)
        # a side's line numbers still run in order, each once
        for side in (0, 1):
            numbers = [row[side] for row in rows if row[side] is not None]
            assert numbers == sorted(set(numbers))
    assert both >= 5
