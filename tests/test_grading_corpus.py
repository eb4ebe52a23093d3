"""The mutation corpus: many submissions built from the reference solution, graded
in the real sandbox in a few batches.

* a wrong variant loses points in its own part, and only there;
* a correct variant written differently gets 105;
* a hostile file is contained: the status it deserves, no crash of the batch,
  nothing found when it snoops for the solution, no forged score, no process
  left behind.
"""
from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path

import pytest

from autograder.grade.batch import grade_batch

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = (ROOT / "solutions" / "resnet50_skeleton.py").read_text()
SKELETON = (ROOT / "resnet50_skeleton.py").read_text()
FULL = {"Q1a": 20, "Q1b": 20, "Q2a": 25, "Q2b": 20, "Q2c": 20}
SLEEP_MARK = "987.654"     # the argument of the `sleep` a hostile file leaves behind


def sub(text: str, old: str, new: str, nth: int = 1) -> str:
    """Replace the nth occurrence of ``old``; fail loudly if it is not there."""
    at = -1
    for _ in range(nth):
        at = text.find(old, at + 1)
        assert at >= 0, f"substitution did not apply: {old!r}"
    return text[:at] + new + text[at + len(old):]


def subs(text: str, *pairs) -> str:
    for pair in pairs:
        text = sub(text, *pair)
    return text


# ---- the solution's snippets the variants change --------------------------------------
DOWN_1X1 = "conv1x1(in_channels, middle_channels, 2, 0),"
CONV3 = "conv3x3(middle_channels, middle_channels, 1, 1),"           # 1st: downsample, 2nd: plain
PLAIN_1X1 = "conv1x1(in_channels, middle_channels, 1, 0),"
LAYER3 = ("            ResidualBlock(256, 128, 512, False),\n"
          "            ResidualBlock(512, 128, 512, False),\n"
          "            ResidualBlock(512, 128, 512, False),\n"
          "            ResidualBlock(512, 128, 512, True),\n")
LAYER4 = ("            ResidualBlock(512, 256, 1024, False),\n"
          + "            ResidualBlock(1024, 256, 1024, False),\n" * 5)

WRONG = {   # variant -> (source, the part that must lose points)
    "q1a_stride_on_3x3": (subs(SOLUTION, (DOWN_1X1, PLAIN_1X1), (CONV3, CONV3.replace("1, 1)", "2, 1)"))), "Q1a"),
    "q1a_no_downsize_stride": (sub(SOLUTION, DOWN_1X1, PLAIN_1X1), "Q1a"),
    "q1a_3x3_padding_0": (sub(SOLUTION, CONV3, CONV3.replace("1, 1)", "1, 0)")), "Q1a"),
    "q1a_1x1_instead_of_3x3": (sub(SOLUTION, CONV3, "conv1x1(middle_channels, middle_channels, 1, 0),"), "Q1a"),
    "q1a_middle_out_swapped": (sub(SOLUTION, DOWN_1X1 + "\n                " + CONV3,
                                   "conv1x1(in_channels, out_channels, 2, 0),\n"
                                   "                conv3x3(out_channels, out_channels, 1, 1),\n"
                                   "                conv1x1(out_channels, middle_channels, 1, 0),\n"
                                   "                conv1x1(middle_channels, out_channels, 1, 0),"), "Q1a"),
    "q1b_stride_2": (sub(SOLUTION, PLAIN_1X1, "conv1x1(in_channels, middle_channels, 2, 0),"), "Q1b"),
    "q1b_skips_make_equal_channel": (sub(SOLUTION, "identity = self.make_equal_channel(x)",
                                         "identity = x if x.shape[1] == out.shape[1] else self.make_equal_channel(x)"),
                                     "Q1b"),
    "q2a_conv_padding_2": (sub(SOLUTION, "nn.Conv2d(3, 64, 7, 2, 3)", "nn.Conv2d(3, 64, 7, 2, 2)"), "Q2a"),
    "q2a_conv_kernel_5": (sub(SOLUTION, "nn.Conv2d(3, 64, 7, 2, 3)", "nn.Conv2d(3, 64, 5, 2, 3)"), "Q2a"),
    "q2a_maxpool_stride_1": (sub(SOLUTION, "nn.MaxPool2d(3, 2, 1)", "nn.MaxPool2d(3, 1, 1)"), "Q2a"),
    "q2a_layer2_downsample_first": (subs(SOLUTION, ("ResidualBlock(64, 64, 256, False)", "ResidualBlock(64, 64, 256, True)"),
                                         ("ResidualBlock(256, 64, 256, True)", "ResidualBlock(256, 64, 256, False)")), "Q2a"),
    "q2a_fc_in_512": (sub(SOLUTION, "nn.Linear(1024, num_classes)", "nn.Linear(512, num_classes)"), "Q2a"),
    "q2a_num_classes_100": (sub(SOLUTION, "def __init__(self, num_classes=10)", "def __init__(self, num_classes=100)"), "Q2a"),
    "q2b_three_blocks": (sub(SOLUTION, LAYER3, LAYER3.replace("            ResidualBlock(512, 128, 512, False),\n", "", 1)), "Q2b"),
    "q2b_downsample_first": (sub(SOLUTION, LAYER3, "            ResidualBlock(256, 128, 512, True),\n"
                                 + "            ResidualBlock(512, 128, 512, False),\n" * 3), "Q2b"),
    "q2b_middle_256": (sub(SOLUTION, LAYER3, LAYER3.replace(", 128, ", ", 256, ")), "Q2b"),
    "q2c_five_blocks": (sub(SOLUTION, LAYER4, LAYER4.replace("            ResidualBlock(1024, 256, 1024, False),\n", "", 1)), "Q2c"),
    "q2c_middle_512": (sub(SOLUTION, LAYER4, LAYER4.replace(", 256, ", ", 512, ")), "Q2c"),
    "q2c_downsample_last": (sub(SOLUTION, LAYER4, LAYER4[:LAYER4.rfind("False")] + "True),\n"), "Q2c"),
}
assert SOLUTION.count(PLAIN_1X1) == 1 and SOLUTION.count(CONV3) == 2   # the variants above rely on it

# ReLU after the addition: both branches end in BatchNorm + ReLU, so out + identity is
# never negative and a final ReLU changes nothing -- the same function, full credit.
RELU_MODULE = subs(SOLUTION,
                   ("        self.downsample = downsample\n",
                    "        self.downsample = downsample\n        self.relu = nn.ReLU(inplace=True)\n"),
                   ("        return out + identity", "        return self.relu(out + identity)"))

KWARGS = subs(
    re.sub(r"ResidualBlock\((\d+), (\d+), (\d+), (True|False)\)",
           r"ResidualBlock(in_channels=\1, middle_channels=\2, out_channels=\3, downsample=\4)", SOLUTION),
    (DOWN_1X1, "conv1x1(in_channels=in_channels, out_channels=middle_channels, stride=2, padding=0),"),
    ("nn.Conv2d(3, 64, 7, 2, 3)", "nn.Conv2d(in_channels=3, out_channels=64, kernel_size=7, stride=2, padding=3)"),
    ("nn.MaxPool2d(3, 2, 1)", "nn.MaxPool2d(kernel_size=3, stride=2, padding=1)"),
    ("nn.Linear(1024, num_classes)", "nn.Linear(in_features=1024, out_features=num_classes)"),
    ("nn.AvgPool2d(2, 2)", "nn.AvgPool2d(kernel_size=2, stride=2)"),
)
assert KWARGS.count("ResidualBlock(in_channels=") == 13 and KWARGS.count("downsample=True)") == 2

CORRECT = {
    "ok_solution": SOLUTION,
    "ok_keywords": KWARGS,
    "ok_list_comprehension": subs(
        SOLUTION,
        (LAYER3, "            ResidualBlock(256, 128, 512, False),\n"
                 "            *[ResidualBlock(512, 128, 512, False) for _ in range(2)],\n"
                 "            ResidualBlock(512, 128, 512, True),\n"),
        ("        self.layer4 = nn.Sequential(\n", "        self.layer4 = nn.Sequential(ResidualBlock(512, 256, 1024, False), "
                                                  "*[ResidualBlock(1024, 256, 1024, False) for _ in range(5)])\n"
                                                  "        _unused = (\n"),
    ),
    "ok_avgpool_2_1": sub(SOLUTION, "nn.AvgPool2d(2, 2)", "nn.AvgPool2d(2, 1)"),
    "ok_adaptive_avgpool": sub(SOLUTION, "nn.AvgPool2d(2, 2)", "nn.AdaptiveAvgPool2d(1)"),
    "ok_super_no_args": subs(SOLUTION, ("super(ResidualBlock, self).__init__()", "super().__init__()"),
                             ("super(ResNet50_layer4, self).__init__()", "super().__init__()")),
    "ok_torch_flatten": subs(SOLUTION, ("import torch.nn as nn\n", "import torch\nimport torch.nn as nn\n"),
                             ("out = out.view(out.size(0), -1)", "out = torch.flatten(out, 1)")),
    "ok_relu_after_add": RELU_MODULE,
    "ok_skeleton_untouched": SKELETON,   # graded normally: status ok, 0 points (asserted apart)
}


def prepend(code: str, base: str = SKELETON) -> str:
    return textwrap.dedent(code) + "\n" + base


# ---- hostile files -------------------------------------------------------------------------
def snooper(folder: Path) -> str:
    """Looks everywhere for the solution or another student's correct file; if it
    finds one, it becomes that file (so it would score 105). Prints what it found."""
    repo = str(ROOT)
    other = str(folder / "ok_solution" / "resnet50_skeleton.py")
    return prepend(f'''
    import os, sys, time
    _found, _tried = [], []
    _MARK1, _MARK2 = "BEGIN " + "SOLUTION", "ResidualBlock(512, 128, " + "512, True)"
    _me = os.path.realpath(__file__)

    def _look(path):
        _tried.append(path)
        try:
            with open(path, errors="replace") as f:
                text = f.read(400000)
        except (OSError, ValueError):
            return None
        if os.path.realpath(path) != _me and (_MARK1 in text or ("class ResNet50_" + "layer4" in text and _MARK2 in text)):
            _found.append(path)
            return text
        return None

    _cands = ["solutions/resnet50_skeleton.py"] + ["../" * n + "solutions/resnet50_skeleton.py" for n in range(1, 8)]
    _cands += [{repo!r} + "/solutions/resnet50_skeleton.py", {repo!r} + "/resnet50_skeleton.py",
               {repo!r} + "/examples/submissions/correct/resnet50_skeleton.py", {other!r}]
    _ppid = os.getppid()
    _cands += [f"/proc/{{_ppid}}/cwd/solutions/resnet50_skeleton.py", "/proc/1/cwd/solutions/resnet50_skeleton.py",
               f"/proc/{{_ppid}}/root{repo}/solutions/resnet50_skeleton.py"]
    for _p in _cands:
        _look(_p)
    for _p in ("/proc/1/environ", f"/proc/{{_ppid}}/environ"):
        try:
            _env = open(_p, "rb").read().decode(errors="replace")
            if "SOLUTION" in _env.upper() or {repo!r} + "/solutions" in _env:
                _found.append(_p)
        except OSError:
            pass
    _deadline = time.monotonic() + 20
    for _dir, _subdirs, _files in os.walk("/"):
        _subdirs[:] = [d for d in _subdirs if os.path.join(_dir, d) not in ("/proc", "/sys", "/dev")]
        if "resnet50_skeleton.py" in _files:
            _look(os.path.join(_dir, "resnet50_skeleton.py"))
        if time.monotonic() > _deadline:
            break
    print("SNOOP found=" + repr(_found) + " tried=" + str(len(_tried)))
    if _found:
        _text = [t for t in map(_look, _found) if t][:1]
        if _text:
            exec(compile(_text[0], "stolen", "exec"), globals())
            print("SNOOP-STOLE")
    else:
        print("SNOOP-DONE-NOTHING")
    ''')


WRONG_BASE = WRONG["q1a_stride_on_3x3"][0]   # a submission with a known, imperfect score

HOSTILE = {
    "h_exit_3": (prepend("import sys\nsys.exit(3)\n"), "exited"),
    "h_os_exit_0": (prepend("import os\nos._exit(0)\n"), "exited"),
    "h_output_flood": (prepend('import sys\nfor _ in range(50):\n    sys.stdout.write("x" * (1 << 20))\n', SOLUTION), "ok"),
    "h_fake_results": (prepend('''
        import json, sys
        fake = {"score": 105, "execution_time": 0, "output": "105/105", "tests": [],
                "extra_data": {"status": "ok", "parts": {"Q1a": 20, "Q1b": 20, "Q2a": 25, "Q2b": 20, "Q2c": 20}}}
        print(json.dumps(fake))
        print("student,Q1a,Q1b,Q2a,Q2b,Q2c,total,max_total,status")
        print("h_fake_results,20,20,25,20,20,105,105,ok")
        sys.stderr.write(json.dumps({"version": 1, "import": {"status": "ok"}, "score": 105}) + "\\n")
    '''), "ok"),
    "h_fd_spray": (prepend('''
        import json, os
        fake = {"version": 1, "import": {"status": "ok"}, "score": 105}
        for fd in range(3, 64):
            try:
                os.write(fd, json.dumps(fake).encode())
            except OSError:
                pass
    '''), "crashed"),   # garbage on the result channel: nothing to trust, 0 points
    "h_fork_sleep": (prepend(f'''
        import os, subprocess
        try:
            subprocess.Popen(["sleep", "{SLEEP_MARK}"], start_new_session=True)
            print("spawned sleep")
        except OSError as exc:
            print("no spawn", exc)
        try:
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    try:
                        os.execvp("sleep", ["sleep", "{SLEEP_MARK}"])
                    finally:
                        os._exit(0)
                os._exit(0)
            print("daemonized")
        except OSError as exc:
            print("no fork", exc)
    ''', SOLUTION), "ok"),
    # Forging a better report from inside the sandbox: comparisons run in the parent.
    "h_forge_allclose": (prepend('''
        import numpy, torch
        torch.allclose = lambda *a, **k: True
        torch.equal = lambda *a, **k: True
        torch.isclose = lambda a, b, *x, **k: torch.ones_like(a, dtype=torch.bool)
        numpy.allclose = lambda *a, **k: True
        numpy.array_equal = lambda *a, **k: True
    ''', WRONG_BASE), "ok"),
    "h_forge_json": (prepend('''
        import json
        _dumps = json.dumps
        def _forged(obj, *a, **k):
            if isinstance(obj, dict) and "import" in obj:
                obj = dict(obj, score=105, total=105, points=105, status="ok",
                           parts={"Q1a": 20, "Q1b": 20, "Q2a": 25, "Q2b": 20, "Q2c": 20})
                for case in (obj.get("q1") or {}).values():       # hide the wrong strides
                    for leaf in case.get("leaves", []):
                        if leaf.get("type") == "Conv2d" and leaf.get("kernel_size") == [3, 3]:
                            leaf["stride"] = [1, 1]
                    outs = case.get("outputs", {})
                    if "eval" in outs:
                        outs["train"] = outs["eval"]
            return _dumps(obj, *a, **k)
        json.dumps = _forged
    ''', WRONG_BASE), "ok"),
    "h_forge_probe_module": (prepend('''
        import sys
        _probe = sys.modules.get("autograder.grade.probe")
        if _probe is not None:
            _probe.probe_module = lambda student, request: {
                "version": 1, "import": {"status": "ok"}, "score": 105,
                "has": {"ResidualBlock": True, "ResNet50_layer4": True}, "q1": {}, "q2": {}, "full": {}}
            _probe.attempt = lambda fn, *a: (None, None)
        print("probe patched" if _probe is not None else "no probe module")
    '''), "crashed"),   # the parent rejects the hollow report: 0 points
    "h_forge_describe": (prepend('''
        import sys
        _probe = sys.modules.get("autograder.grade.probe")
        _orig = _probe.describe_module
        def _describe(module):
            info = _orig(module)
            if info.get("type") == "Conv2d" and info.get("kernel_size") == [3, 3]:
                info["stride"] = [1, 1]
            return info
        _probe.describe_module = _describe
        print("describe patched")
    ''', WRONG_BASE), "ok"),
}

LIMITED = {   # graded in a batch of its own, with tight limits
    "h_infinite_loop": (prepend("while True:\n    pass\n"), "timeout"),
    "h_memory_bytearray": (prepend("hog = bytearray(8 * 2**30)\n"), "memory"),
    "h_memory_torch": (prepend("import torch\nhog = torch.empty(8 * 2**30, dtype=torch.uint8).fill_(1)\n"), "memory"),
    "ok_beside_limits": (SOLUTION, "ok"),
}


def write_folder(folder: Path, files: dict[str, str]) -> None:
    for student, text in files.items():
        (folder / student).mkdir(parents=True)
        (folder / student / "resnet50_skeleton.py").write_text(text)


def leftover_sleeps() -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if SLEEP_MARK in cmd and "sleep" in cmd:
                found.append(f"{proc.name}: {cmd}")
    return found


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus") / "submissions"
    out = folder.parent / "out"
    files = {name: text for name, (text, _) in WRONG.items()}
    files.update(CORRECT)
    files.update({name: text for name, (text, _) in HOSTILE.items()})
    files["h_snoop"] = snooper(folder)
    write_folder(folder, files)
    results = grade_batch(folder, out, jobs=2, progress=False)
    return {r["extra_data"]["student"]: r for r in results}, out, leftover_sleeps()


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    folder = tmp_path_factory.mktemp("limited") / "submissions"
    write_folder(folder, {name: text for name, (text, _) in LIMITED.items()})
    results = grade_batch(folder, folder.parent / "out", jobs=2, timeout_s=5, memory_mb=1024, progress=False)
    return {r["extra_data"]["student"]: r for r in results}


def parts(result: dict) -> dict[str, float]:
    return result["extra_data"]["parts"]


def checks(result: dict, part: str) -> dict[str, dict]:
    return {t["name"]: t for t in result["tests"] if t["name"].startswith(part + " ")}


@pytest.mark.parametrize("name", sorted(WRONG))
def test_wrong_variant_loses_points_in_its_part_only(batch, name):
    result = batch[0][name]
    part = WRONG[name][1]
    assert result["extra_data"]["status"] == "ok", result["output"]
    got = parts(result)
    assert got[part] < FULL[part], f"{name}: {part} kept full marks"
    others = {p: v for p, v in got.items() if p != part}
    assert others == {p: v for p, v in FULL.items() if p != part}, f"{name}: {got}"
    lost = [t for t in checks(result, part).values() if t["score"] < t["max_score"]]
    assert lost and all(t["output"] != "correct" for t in lost)   # every deduction says why


@pytest.mark.parametrize("name, q2a", [
    # Q2a's rubric: stem arguments 4 + 2, stem_function 2, layer2 8 (12 arguments),
    # layer2_function 2, fc 2, avgpool 2, forward 2, num_classes 1. A wrong stem argument costs its share of the
    # argument check and the stem's function (both modes differ).
    ("q2a_conv_padding_2", 25 - 4 / 5 - 2), ("q2a_conv_kernel_5", 25 - 4 / 5 - 2),
    ("q2a_maxpool_stride_1", 25 - 2 / 3 - 2),
    # two wrong flags of layer2's 12 arguments, and layer2's output on its own input (2)
    ("q2a_layer2_downsample_first", 25 - 2 * 8 / 12 - 2),
    # fc: in_features wrong and its output cannot be computed (2 of 4 shares); it follows num_classes
    ("q2a_fc_in_512", 24), ("q2a_num_classes_100", 24),
])
def test_q2a_scores(batch, name, q2a):
    assert parts(batch[0][name])["Q2a"] == pytest.approx(q2a, abs=0.01)


def test_function_points_lost_where_the_block_computes_something_else(batch):
    for name in ("q1a_stride_on_3x3", "q1a_no_downsize_stride", "q1a_3x3_padding_0",
                 "q1a_1x1_instead_of_3x3", "q1a_middle_out_swapped"):
        function = next(t for n, t in checks(batch[0][name], "Q1a").items() if "outputs" in n)
        assert function["score"] < function["max_score"], name
    for name in ("q1b_stride_2", "q1b_skips_make_equal_channel"):
        function = next(t for n, t in checks(batch[0][name], "Q1b").items() if "outputs" in n)
        assert function["score"] < function["max_score"], name
    # Skipping the projection changes no parameter shape when it is still built
    state = next(t for n, t in checks(batch[0]["q1b_skips_make_equal_channel"], "Q1b").items() if "state_dict" in n)
    assert state["score"] == state["max_score"]


@pytest.mark.parametrize("name", sorted(set(CORRECT) - {"ok_skeleton_untouched"}))
def test_correct_variants_get_full_credit(batch, name):
    result = batch[0][name]
    assert result["extra_data"]["status"] == "ok"
    assert parts(result) == FULL and result["score"] == 105, result["output"]


def test_adaptive_avgpool_gets_a_note(batch):
    tests = checks(batch[0]["ok_adaptive_avgpool"], "Q2a")
    pool = next(t for n, t in tests.items() if "avgpool" in n.lower())
    assert pool["score"] == pool["max_score"]
    assert "note" in pool["output"].lower() or pool["output"] == "correct"


def test_released_skeleton_scores_zero_with_status_ok(batch):
    result = batch[0]["ok_skeleton_untouched"]
    assert result["extra_data"]["status"] == "ok" and result["score"] == 0


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_status(batch, name):
    assert batch[0][name]["extra_data"]["status"] == HOSTILE[name][1], batch[0][name]["output"]


def test_exit_codes_score_zero(batch):
    for name in ("h_exit_3", "h_os_exit_0"):
        assert batch[0][name]["score"] == 0


def test_output_flood_is_graded_and_truncated(batch):
    result = batch[0]["h_output_flood"]
    assert result["score"] == 105
    assert 0 < len(result["extra_data"]["student_output"]) <= 8192


def test_printed_fake_results_change_nothing(batch):
    for name in ("h_fake_results", "h_fd_spray"):
        result = batch[0][name]
        assert result["score"] == 0 and set(parts(result).values()) == {0}, name


def test_snooping_finds_nothing(batch):
    result = batch[0]["h_snoop"]
    printed = result["extra_data"]["student_output"]
    assert "SNOOP found=[]" in printed and "SNOOP-DONE-NOTHING" in printed, printed
    assert "SNOOP-STOLE" not in printed
    assert result["score"] == 0


def test_forged_reports_gain_nothing(batch):
    wrong = batch[0]["q1a_stride_on_3x3"]
    assert wrong["score"] < 105
    # patched comparison functions live in the sandbox only: exactly the same score
    assert batch[0]["h_forge_allclose"]["score"] == wrong["score"]
    for name in ("h_forge_json", "h_forge_probe_module", "h_forge_describe"):
        assert batch[0][name]["score"] < 105, name
    # the fields a forger adds are ignored; what the parent computes (outputs) still fails
    for name in ("h_forge_json", "h_forge_describe"):
        function = next(t for n, t in checks(batch[0][name], "Q1a").items() if "outputs" in n)
        assert function["score"] == 0, name
    assert batch[0]["h_forge_probe_module"]["score"] == 0


def test_no_process_left_behind(batch):
    assert batch[2] == [], batch[2]
    assert leftover_sleeps() == []


def test_others_graded_fine_beside_hostile_files(batch):
    assert batch[0]["ok_solution"]["score"] == 105
    assert (batch[1] / "grades.csv").read_text().count("\n") == len(batch[0]) + 1


@pytest.mark.parametrize("name", sorted(LIMITED))
def test_limits(limited, name):
    result = limited[name]
    assert result["extra_data"]["status"] == LIMITED[name][1], result["output"]
    assert result["score"] == (105 if name == "ok_beside_limits" else 0)


def test_torch_memory_hog_scores_zero(limited):
    # whatever its status, a file that cannot even be imported within the limit scores 0
    assert limited["h_memory_torch"]["score"] == 0
