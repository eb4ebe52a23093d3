"""A class of submissions for the similarity report, built from the released
skeleton the way students fill it in. Used by tests/test_similarity.py and
benchmarks/similarity_speed.py.

``fill(answers)`` replaces each placeholder of the skeleton (``blank(...)``,
``blanks(n, ...)``, ``blank_default(...)``) with the student's text for it;
whatever is not given gets the reference answer.
"""
from __future__ import annotations

import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKELETON = (ROOT / "resnet50_skeleton.py").read_text(encoding="utf-8")

I12, I16 = " " * 12, " " * 16
# The reference answer for each placeholder, by the label the placeholder names.
REFERENCE = {
    "Q1: the downsample branch of ResidualBlock":
        f"conv1x1(in_channels, middle_channels, 2, 0),\n{I16}conv3x3(middle_channels, middle_channels, 1, 1),\n"
        f"{I16}conv1x1(middle_channels, out_channels, 1, 0),",
    "Q1: the plain (downsample=False) branch of ResidualBlock":
        f"conv1x1(in_channels, middle_channels, 1, 0),\n{I16}conv3x3(middle_channels, middle_channels, 1, 1),\n"
        f"{I16}conv1x1(middle_channels, out_channels, 1, 0),",
    "Q2: the default value of num_classes": "10",
    "Q2: the Conv2d arguments in layer1": "3, 64, 7, 2, 3",
    "Q2: the MaxPool2d arguments in layer1": "3, 2, 1",
    "Q2: the arguments of layer2's first ResidualBlock": "64, 64, 256, False",
    "Q2: the arguments of layer2's second ResidualBlock": "256, 64, 256, False",
    "Q2: the arguments of layer2's third ResidualBlock": "256, 64, 256, True",
    "Q2: layer3": f"ResidualBlock(256, 128, 512, False),\n{I12}ResidualBlock(512, 128, 512, False),\n"
                  f"{I12}ResidualBlock(512, 128, 512, False),\n{I12}ResidualBlock(512, 128, 512, True),",
    "Q2: layer4": f"ResidualBlock(512, 256, 1024, False),\n"
                  + f"{I12}ResidualBlock(1024, 256, 1024, False),\n" * 4
                  + f"{I12}ResidualBlock(1024, 256, 1024, False),",
    "Q2: the Linear arguments of fc": "1024, num_classes",
    "Q2: the AvgPool2d arguments": "2, 2",
}
PLACEHOLDER = re.compile(r'(?:\*blanks\(\d+, |blank\(|blank_default\()"([^"]+)"\)(,?)')
REJECT_LINE = "        reject_blank_defaults(num_classes)  # delete this line once the default is filled in\n"


def fill(answers: dict[str, str] | None = None, keep_reject_line: bool = False) -> str:
    """The skeleton with every placeholder replaced (``answers`` by label, else the reference)."""
    chosen = {**REFERENCE, **(answers or {})}
    seen = set()

    def replace(match: re.Match) -> str:
        seen.add(match.group(1))
        text = chosen[match.group(1)]
        # a whole-line blank(...) keeps its trailing comma inside the answer text
        return text if match.group(0).startswith("blank(") else text + match.group(2)

    text = PLACEHOLDER.sub(replace, SKELETON)
    assert seen == set(REFERENCE), f"placeholders not found: {set(REFERENCE) - seen}"
    return text if keep_reject_line else text.replace(REJECT_LINE, "", 1)


def sub(text: str, old: str, new: str) -> str:
    assert old in text, f"substitution did not apply: {old!r}"
    return text.replace(old, new, 1)


# ---- equivalent forms the grader accepts ------------------------------------------
KWARGS = {
    "Q2: the Conv2d arguments in layer1": "in_channels=3, out_channels=64, kernel_size=7, stride=2, padding=3",
    "Q2: the MaxPool2d arguments in layer1": "kernel_size=3, stride=2, padding=1",
    "Q2: the Linear arguments of fc": "in_features=1024, out_features=num_classes",
    "Q2: the arguments of layer2's first ResidualBlock": "64, 64, 256, downsample=False",
    "Q2: the arguments of layer2's third ResidualBlock": "256, 64, 256, downsample=True",
    "Q1: the downsample branch of ResidualBlock":
        f"conv1x1(in_channels, middle_channels, stride=2, padding=0),\n"
        f"{I16}conv3x3(middle_channels, middle_channels, stride=1, padding=1),\n"
        f"{I16}conv1x1(middle_channels, out_channels, stride=1, padding=0),",
}
LIST_COMPREHENSIONS = {
    "Q2: layer3": f"ResidualBlock(256, 128, 512, False),\n"
                  f"{I12}*[ResidualBlock(512, 128, 512, False) for _ in range(2)],\n"
                  f"{I12}ResidualBlock(512, 128, 512, True),",
    "Q2: layer4": f"ResidualBlock(512, 256, 1024, False),\n"
                  f"{I12}*[ResidualBlock(1024, 256, 1024, False) for i in range(5)],",
}
GLOBAL_POOL = {"Q2: the AvgPool2d arguments": "2, 1"}


def adaptive_pool(text: str) -> str:
    return sub(text, "nn.AvgPool2d(2, 2)", "nn.AdaptiveAvgPool2d((1, 1))")


def plain_super(text: str) -> str:
    text = sub(text, "super(ResidualBlock, self).__init__()", "super().__init__()")
    return sub(text, "super(ResNet50_layer4, self).__init__()", "super().__init__()")


def torch_flatten(text: str) -> str:
    text = sub(text, "import torch.nn as nn\n", "import torch\nimport torch.nn as nn\n")
    return sub(text, "out = out.view(out.size(0), -1)", "out = torch.flatten(out, 1)")


def relu_after_add(text: str) -> str:
    return sub(text, "return out + identity", "return nn.functional.relu(out + identity)")


# ---- a mistake many students make: the stride on the 3x3 instead of the first 1x1 ----
STRIDE_ON_3X3 = {
    "Q1: the downsample branch of ResidualBlock":
        f"conv1x1(in_channels, middle_channels, 1, 0),\n{I16}conv3x3(middle_channels, middle_channels, 2, 1),\n"
        f"{I16}conv1x1(middle_channels, out_channels, 1, 0),",
}

# ---- one student's own code, and the disguised copy of it ----------------------------
OWN_HELPER = '''

def make_stage(in_ch, mid_ch, out_ch, blocks, shrink_last=True):
    """Stack `blocks` bottlenecks; only the last one halves the map (slide table)."""
    stage = [ResidualBlock(in_ch, mid_ch, out_ch, False)]
    for idx in range(1, blocks):
        last = idx == blocks - 1
        stage.append(ResidualBlock(out_ch, mid_ch, out_ch, shrink_last and last))
    # keep the stage as one Sequential so the state_dict keys match
    return stage

'''
COPIED_ANSWERS = {
    "Q2: layer3": "*make_stage(256, 128, 512, 4),",
    "Q2: layer4": "*make_stage(512, 256, 1024, 6, shrink_last=False),",
    "Q2: the MaxPool2d arguments in layer1": "kernel_size=3, stride=2, padding=1",
}


def copy_source() -> str:
    """A student with a helper of their own, an unusual forward and their own comments."""
    text = fill(COPIED_ANSWERS)
    text = sub(text, "\n\n#####\n# Question 2", OWN_HELPER + "\n#####\n# Question 2")
    text = sub(text, "        out = out.view(out.size(0), -1)\n        out = self.fc(out)\n        return out",
               "        # flatten everything except the batch dimension before the classifier\n"
               "        scores = self.fc(out.view(out.size(0), -1))\n"
               "        assert scores.shape[1] == 10, 'ten CIFAR classes'\n"
               "        return scores")
    return text


def disguised_copy(original: str) -> str:
    """The copy: helper and variables renamed, comments translated, blank lines changed."""
    renames = [("make_stage", "build_layer"), ("in_ch", "c_in"), ("mid_ch", "c_mid"), ("out_ch", "c_out"),
               ("blocks", "n_blocks"), ("shrink_last", "reduce_at_end"), ("stage", "modules_list"),
               ("idx", "k"), ("last", "is_final"), ("scores", "logits")]
    for old, new in renames:
        original = re.sub(rf"\b{old}\b", new, original)
    translations = [
        ("Stack `n_blocks` bottlenecks; only the is_final one halves the map (slide table).",
         "Apila `n_blocks` bloques; solo el ultimo reduce el mapa (tabla de las diapositivas)."),
        ("# keep the modules_list as one Sequential so the state_dict keys match",
         "# mantener la etapa como un Sequential para que coincidan las claves"),
        ("# flatten everything except the batch dimension before the classifier",
         "# aplanar todo menos la dimension del lote antes del clasificador"),
    ]
    for old, new in translations:
        original = sub(original, old, new)
    original = original.replace("\n\n\n", "\n\n")            # fewer blank lines between definitions
    return sub(original, "    modules_list = [", "\n    modules_list = [")   # and one more inside the helper


def teaching_class() -> dict[str, str]:
    """The test class: student -> file text."""
    canonical = fill()
    original = copy_source()
    return {
        "canonical_ana": canonical,
        "canonical_ben": canonical,                                   # byte-identical honest answers
        "kwargs_chen": plain_super(fill(KWARGS)),
        "listcomp_dara": torch_flatten(adaptive_pool(fill(LIST_COMPREHENSIONS))),
        "pool_eli": relu_after_add(fill(GLOBAL_POOL, keep_reject_line=True)),
        "mistake_fay": fill(STRIDE_ON_3X3),                           # the same common mistake ...
        "mistake_gus": plain_super(fill({**STRIDE_ON_3X3, **GLOBAL_POOL})),   # ... made independently
        "copy_hana": original,
        "copy_ivan": disguised_copy(original),
    }


# ---- a large generated class, for the speed benchmark ------------------------------------
WORDS = ("stage block stride channel layer map shortcut output input table slide check note fix "
         "size pool conv batch norm relu residual bottleneck projection sum width depth").split()
MISTAKES = [
    STRIDE_ON_3X3,
    {"Q2: the MaxPool2d arguments in layer1": "3, 2, 0"},
    {"Q2: the Conv2d arguments in layer1": "3, 64, 5, 2, 3"},
    {"Q2: the Linear arguments of fc": "512, num_classes"},
    {"Q2: layer3": REFERENCE["Q2: layer3"].replace("512, True", "512, False", 1)},
    {"Q2: the arguments of layer2's first ResidualBlock": "64, 64, 256, True",
     "Q2: the arguments of layer2's third ResidualBlock": "256, 64, 256, False"},
]


def _random_comment(rng: random.Random) -> str:
    return "# " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))


def _personal(text: str, rng: random.Random) -> str:
    """A student's own touches: a few comments and blank lines of their own."""
    lines = text.split("\n")
    for _ in range(rng.randint(0, 4)):
        at = rng.randrange(len(lines))
        indent = re.match(r"\s*", lines[at]).group()
        lines.insert(at, indent + _random_comment(rng) if rng.random() < 0.7 else "")
    return "\n".join(lines)


TEMPLATES = [
    "{v} = [ResidualBlock({a}, {b}, {c}, False) for _ in range({n})]",
    "{v}.append(ResidualBlock({c}, {b}, {c}, True))",
    "{v}.insert(0, ResidualBlock({a}, {b}, {c}, {flag}))",
    "if len({v}) > {n}:\n        {v} = {v}[:{n}]",
    "assert len({v}) >= {n}, '{word} {word2}'",
    "{w} = {a} // {k} + {b} * {k}",
    "for {i} in range({k}, len({v})):\n        {v}[{i}] = ResidualBlock({c}, {b}, {c}, {i} == len({v}) - 1)",
    "{w} = [{x}.downsample for {x} in {v}].count(True)",
    "while {w} > {k}:\n        {w} -= {n}",
    "{v} = {v} + [ResidualBlock({c}, {b}, {c}, {flag})] * {k}",
]


def own_helper(rng: random.Random) -> tuple[str, str, list[str]]:
    """A helper function of a student's own: random statements with random names
    and numbers. Returns (text, its name, the names a copier would rename)."""
    names = rng.sample(["blocks", "seq", "acc", "tmp", "res", "lst", "group", "parts", "stack", "items",
                        "count", "total", "idx", "j", "elem", "unit", "cell", "node"], 5)
    v, w, i, x, helper = *names[:4], f"make_{rng.choice(WORDS)}_{rng.randint(10, 99)}"
    body = []
    for _ in range(rng.randint(6, 9)):
        template = rng.choice(TEMPLATES)
        body.append("    " + template.format(
            v=v, w=w, i=i, x=x, a=rng.randrange(16, 2048, 16), b=rng.randrange(16, 2048, 16),
            c=rng.randrange(16, 2048, 16), n=rng.randint(2, 30), k=rng.randint(1, 9),
            flag=rng.choice([True, False]), word=rng.choice(WORDS), word2=rng.choice(WORDS)))
    text = (f"\n\ndef {helper}({w}):\n    {v} = []\n" + "\n".join(body)
            + f"\n    return {v}\n\n")
    return text, helper, [v, w, i, x, helper]


def generated_class(count: int, seed: int = 0) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """``count`` submissions -- equivalent forms mixed at random, common mistakes,
    a few untouched, empty or broken files, the students' own comments -- with
    pairs planted among them: a student with a helper of their own and a disguised
    copy of them. Returns (student -> text, the planted pairs)."""
    rng = random.Random(seed)
    files, planted = {}, []
    n_pairs = max(1, count // 50)
    for i in range(count - n_pairs):
        roll = rng.random()
        if roll < 0.02:
            files[f"s{i:04d}"] = SKELETON
            continue
        if roll < 0.03:
            files[f"s{i:04d}"] = ""
            continue
        answers = {}
        for forms in (KWARGS, LIST_COMPREHENSIONS, GLOBAL_POOL):
            if rng.random() < 0.3:
                answers.update(forms)
        if rng.random() < 0.3:
            answers.update(rng.choice(MISTAKES))
        text = fill(answers, keep_reject_line=rng.random() < 0.2)
        for rewrite in (adaptive_pool, plain_super, torch_flatten, relu_after_add):
            if rng.random() < 0.2 and (rewrite is not adaptive_pool or "nn.AvgPool2d(2, 2)" in text):
                text = rewrite(text)
        if roll < 0.05:   # a syntax error: a missing parenthesis
            text = text.replace("ResidualBlock(512, 128, 512, True),", "ResidualBlock(512, 128, 512, True,", 1)
        files[f"s{i:04d}"] = _personal(text, rng)
    sources = [name for name, text in files.items() if text.strip() and text != SKELETON]
    for j, source in enumerate(rng.sample(sources, n_pairs)):
        helper, name, own_names = own_helper(rng)
        original = sub(files[source], "\n\n#####\n# Question 2", helper + "#####\n# Question 2")
        files[source] = original
        copied = original
        for old in own_names:
            copied = re.sub(rf"\b{old}\b", f"{old[:2]}_{rng.randint(100, 999)}", copied)
        copied = copied.replace("\n\n\n", "\n\n")
        copy_name = f"s{count - n_pairs + j:04d}"
        files[copy_name] = _personal(copied, rng)
        planted.append(tuple(sorted((source, copy_name))))
    return files, planted


def write_class(folder: Path, files: dict[str, str]) -> Path:
    for student, text in files.items():
        (folder / student).mkdir(parents=True, exist_ok=True)
        (folder / student / "resnet50_skeleton.py").write_text(text, encoding="utf-8")
    return folder
