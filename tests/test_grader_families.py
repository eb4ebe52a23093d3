"""Families of submissions the grader used to misjudge (issue 7, items 1-6),
graded in the real sandbox in one batch.

1. however the block class is reached (class attribute, default argument,
   helper, dict/list of classes, subclass, super() forms), Q2 sees stand-ins;
2. downsample written as 0/1 gets the credit of False/True, with a note;
3. function-preserving forms (an nn.ModuleList stage looped over in forward,
   an unused extra module) keep the function points;
4. a part left blank, or an __init__ that stops part-way, costs only its own
   part, and the checks that could not run say "not checked: ..." and why;
5. a wrong stem or a wrong forward() loses points in Q2a;
6. feedback names the cause: a block object used twice, a BatchNorm setting,
   the grader's own test sizes.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from autograder.grade.batch import grade_batch

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = (ROOT / "solutions" / "resnet50_skeleton.py").read_text()
SKELETON = (ROOT / "resnet50_skeleton.py").read_text()
FULL = {"Q1a": 20, "Q1b": 20, "Q2a": 25, "Q2b": 20, "Q2c": 20}
IMPORT = "import torch.nn as nn\n"


def sub(text: str, old: str, new: str, count: int = 1) -> str:
    """Replace ``count`` occurrences of ``old`` (all when count is 0); fail loudly if absent."""
    assert old in text, f"substitution did not apply: {old!r}"
    return text.replace(old, new) if count == 0 else text.replace(old, new, count)


def subs(text: str, *pairs) -> str:
    for pair in pairs:
        text = sub(text, *pair)
    return text


# ---- the solution's snippets the variants change ---------------------------------------
LAYER2 = ("            ResidualBlock(64, 64, 256, False),  ### BLANKS Q2: the arguments of layer2's first ResidualBlock\n"
          "            ResidualBlock(256, 64, 256, False),  ### BLANKS Q2: the arguments of layer2's second ResidualBlock\n"
          "            ResidualBlock(256, 64, 256, True),  ### BLANKS Q2: the arguments of layer2's third ResidualBlock\n")
LAYER3 = ("            ResidualBlock(256, 128, 512, False),\n"
          "            ResidualBlock(512, 128, 512, False),\n"
          "            ResidualBlock(512, 128, 512, False),\n"
          "            ResidualBlock(512, 128, 512, True),\n")
LAYER4 = ("            ResidualBlock(512, 256, 1024, False),\n"
          + "            ResidualBlock(1024, 256, 1024, False),\n" * 5)
STEM_CONV = "nn.Conv2d(3, 64, 7, 2, 3)"
FORWARD = ("        out = self.layer1(x)\n        out = self.layer2(out)\n        out = self.layer3(out)\n"
           "        out = self.layer4(out)\n        out = self.avgpool(out)\n"
           "        out = out.view(out.size(0), -1)\n        out = self.fc(out)\n        return out\n")
for _snippet in (LAYER2, LAYER3, LAYER4, STEM_CONV, FORWARD):
    assert SOLUTION.count(_snippet) == 1, _snippet


def every_block_call(text: str, name: str) -> str:
    """`ResidualBlock(` -> `<name>(` in ResNet50_layer4 only (not the class itself)."""
    head, model = text.split("class ResNet50_layer4", 1)
    return head + "class ResNet50_layer4" + model.replace("ResidualBlock(", f"{name}(")


# ---- family 1: the block class captured before the grader swaps it -----------------------
CAPTURED = {
    "f1_class_attribute": sub(every_block_call(SOLUTION, "self.block"),
                              "class ResNet50_layer4(nn.Module):\n",
                              "class ResNet50_layer4(nn.Module):\n    block = ResidualBlock\n\n"),
    "f1_class_attribute_super_no_args": subs(
        every_block_call(SOLUTION, "self.block"),
        ("class ResNet50_layer4(nn.Module):\n", "class ResNet50_layer4(nn.Module):\n    block = ResidualBlock\n\n"),
        ("super(ResidualBlock, self).__init__()", "super().__init__()"),
        ("super(ResNet50_layer4, self).__init__()", "super().__init__()")),
    "f1_default_argument": subs(every_block_call(SOLUTION, "block"),
                                ("def __init__(self, num_classes=10):", "def __init__(self, num_classes=10, block=ResidualBlock):")),
    "f1_module_alias": sub(every_block_call(SOLUTION, "Bottleneck"), "\n#####\n# Question 2",
                           "\nBottleneck = ResidualBlock\n\n#####\n# Question 2"),
    "f1_make_layer_helper": subs(
        SOLUTION,
        ("\n#####\n# Question 2", "\ndef make_layer(block, specs):\n"
                                  "    return nn.Sequential(*[block(*spec) for spec in specs])\n\n\n"
                                  "_BLOCK = ResidualBlock\n\n#####\n# Question 2"),
        (LAYER3, "            *make_layer(_BLOCK, [(256, 128, 512, False)] + [(512, 128, 512, False)] * 2\n"
                 "                        + [(512, 128, 512, True)]),\n")),
    "f1_dict_of_classes": subs(
        every_block_call(SOLUTION, 'BLOCKS["bottleneck"]'),
        ("\n#####\n# Question 2", '\nBLOCKS = {"bottleneck": ResidualBlock}\n\n#####\n# Question 2')),
    "f1_list_of_classes": subs(
        SOLUTION,
        ("class ResNet50_layer4(nn.Module):\n",
         "STAGE_BLOCKS = [ResidualBlock, ResidualBlock]\n\n\nclass ResNet50_layer4(nn.Module):\n"),
        (LAYER4, "            *[STAGE_BLOCKS[1](512 if i == 0 else 1024, 256, 1024, False) for i in range(6)],\n")),
    "f1_subclass": subs(
        SOLUTION,
        ("\n#####\n# Question 2", "\nclass DownBlock(ResidualBlock):\n"
                                  "    def __init__(self, in_channels, middle_channels, out_channels):\n"
                                  "        super().__init__(in_channels, middle_channels, out_channels, downsample=True)\n"
                                  "\n\n#####\n# Question 2"),
        ("ResidualBlock(256, 64, 256, True)", "DownBlock(256, 64, 256)"),
        ("ResidualBlock(512, 128, 512, True)", "DownBlock(512, 128, 512)")),
    "f1_subclass_super_explicit": subs(
        SOLUTION,
        ("\n#####\n# Question 2", "\nclass PlainBlock(ResidualBlock):\n"
                                  "    def __init__(self, in_channels, middle_channels, out_channels):\n"
                                  "        super(PlainBlock, self).__init__(in_channels, middle_channels, out_channels)\n"
                                  "\n\n#####\n# Question 2"),
        (LAYER4, "            PlainBlock(512, 256, 1024),\n" + "            PlainBlock(1024, 256, 1024),\n" * 5)),
    "f1_functools_partial": subs(
        SOLUTION,
        (IMPORT, "import functools\n" + IMPORT),
        ("class ResNet50_layer4(nn.Module):\n",
         "Wide = functools.partial(ResidualBlock, middle_channels=256, out_channels=1024)\n\n\n"
         "class ResNet50_layer4(nn.Module):\n"),
        (LAYER4, "            Wide(512),\n" + "            Wide(1024),\n" * 5)),
    "f1_renamed_parameters": subs(
        SOLUTION,
        ("def __init__(self, in_channels, middle_channels, out_channels, downsample=False):\n"
         "        super(ResidualBlock, self).__init__()\n",
         "def __init__(self, cin, cmid, cout, downsample=False):\n"
         "        super(ResidualBlock, self).__init__()\n"
         "        in_channels, middle_channels, out_channels = cin, cmid, cout\n"),
        ("ResidualBlock(256, 64, 256, True)", "ResidualBlock(cin=256, cmid=64, cout=256, downsample=True)")),
}

# ---- family 2: downsample written as a number ----------------------------------------------
NUMBERS = {
    "f2_downsample_0_1": re.sub(r"(ResidualBlock\(\d+, \d+, \d+, )(True|False)\)",
                                lambda m: m.group(1) + ("1" if m.group(2) == "True" else "0") + ")", SOLUTION),
    "f2_downsample_keyword_1": sub(SOLUTION, "ResidualBlock(512, 128, 512, True)",
                                   "ResidualBlock(512, 128, 512, downsample=1)"),
    "f2_downsample_mixed": subs(SOLUTION, ("ResidualBlock(256, 64, 256, True)", "ResidualBlock(256, 64, 256, 1)"),
                                ("ResidualBlock(256, 128, 512, False)", "ResidualBlock(256, 128, 512, 0)")),
}

# ---- family 3: function-preserving forms -----------------------------------------------------
MODULELIST_LAYER3 = subs(
    SOLUTION,
    ("        self.layer3 = nn.Sequential(\n", "        self.layer3 = nn.ModuleList([\n"),
    (LAYER3 + "            ### END SOLUTION\n        )\n", LAYER3 + "            ### END SOLUTION\n        ])\n"),
    ("        out = self.layer3(out)\n", "        for block in self.layer3:\n            out = block(out)\n"))
PRESERVING = {
    "f3_modulelist_layer3": MODULELIST_LAYER3,
    "f3_modulelist_indexed": subs(
        MODULELIST_LAYER3, ("        for block in self.layer3:\n            out = block(out)\n",
                            "        for i in range(len(self.layer3)):\n            out = self.layer3[i](out)\n")),
    "f3_modulelist_every_stage": subs(
        SOLUTION,
        ("        self.layer2 = nn.Sequential(\n", "        self.layer2 = nn.ModuleList([\n"),
        ("        self.layer3 = nn.Sequential(\n", "        self.layer3 = nn.ModuleList([\n"),
        ("        self.layer4 = nn.Sequential(\n", "        self.layer4 = nn.ModuleList([\n"),
        (LAYER2 + "        )\n", LAYER2 + "        ])\n"),
        (LAYER3 + "            ### END SOLUTION\n        )\n", LAYER3 + "            ### END SOLUTION\n        ])\n"),
        (LAYER4 + "            ### END SOLUTION\n        )\n", LAYER4 + "            ### END SOLUTION\n        ])\n"),
        ("        out = self.layer2(out)\n        out = self.layer3(out)\n        out = self.layer4(out)\n",
         "        for stage in (self.layer2, self.layer3, self.layer4):\n"
         "            for block in stage:\n                out = block(out)\n")),
    "f3_unused_dropout_in_block": sub(SOLUTION, "        self.downsample = downsample\n",
                                      "        self.downsample = downsample\n        self.dropout = nn.Dropout(0.5)\n"),
    "f3_unused_layers_in_model": sub(SOLUTION, "        self.avgpool = nn.AvgPool2d(2, 2)",
                                     "        self.dropout = nn.Dropout(0.2)\n        self.head = nn.Linear(10, 10)\n"
                                     "        self.avgpool = nn.AvgPool2d(2, 2)"),
    "f3_forward_mean_pool": sub(SOLUTION, "        out = self.avgpool(out)\n", "        out = out.mean((2, 3), keepdim=True)\n"),
    # fc is affine, so applying it at each position and then averaging is the same function
    "f3_fc_per_position_then_average": sub(
        SOLUTION, FORWARD, "        out = self.layer1(x)\n        out = self.layer2(out)\n"
                           "        out = self.layer3(out)\n        out = self.layer4(out)\n"
                           "        out = self.fc(out.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)\n"
                           "        out = self.avgpool(out)\n        return out.view(out.size(0), -1)\n"),
}
# An unused module with weights: the state_dict checks lose (the checkpoint will not
# load strictly), the outputs are still compared and still right.
EXTRA_WEIGHTS = sub(SOLUTION, "        self.downsample = downsample\n",
                    "        self.downsample = downsample\n        self.spare_bn = nn.BatchNorm2d(out_channels)\n")

# ---- family 4: one part unfinished or broken --------------------------------------------------
HELPERS = SKELETON[SKELETON.index(IMPORT) + len(IMPORT):SKELETON.index("\ndef conv1x1")]
assert "def blanks(" in HELPERS and "def blank(" in HELPERS and "def reject_blank_defaults(" in HELPERS
WITH_HELPERS = sub(SOLUTION, IMPORT, IMPORT + HELPERS)


def blank_out(old: str, new: str) -> str:
    return sub(WITH_HELPERS, old, new)


UNFINISHED = {   # variant -> (source, the score of each part)
    "f4_layer4_blank": (blank_out(LAYER4, '            blank("Q2: layer4"),\n'), dict(FULL, Q2c=0)),
    "f4_layer3_blank": (blank_out(LAYER3, '            blank("Q2: layer3"),\n'), dict(FULL, Q2b=0)),
    "f4_layers_3_and_4_blank": (subs(WITH_HELPERS, (LAYER3, '            blank("Q2: layer3"),\n'),
                                     (LAYER4, '            blank("Q2: layer4"),\n')), dict(FULL, Q2b=0, Q2c=0)),
    "f4_fc_blank": (blank_out("nn.Linear(1024, num_classes)", 'nn.Linear(*blanks(2, "Q2: the Linear arguments of fc"))'),
                    dict(FULL, Q2a=21)),      # fc 2, forward 2
    "f4_avgpool_blank": (blank_out("nn.AvgPool2d(2, 2)", 'nn.AvgPool2d(*blanks(2, "Q2: the AvgPool2d arguments"))'),
                         dict(FULL, Q2a=21)),  # avgpool 2, forward 2
    "f4_stem_conv_blank": (blank_out(STEM_CONV, 'nn.Conv2d(*blanks(5, "Q2: the Conv2d arguments in layer1"))'),
                           dict(FULL, Q2a=17)),  # stem_conv 4, stem_function 2, forward 2
    "f4_one_layer2_block_blank": (blank_out("ResidualBlock(256, 64, 256, False),",
                                            'ResidualBlock(*blanks(4, "Q2: the arguments of layer2\'s second ResidualBlock")),'),
                                  dict(FULL, Q2a=18.33)),  # 4 of 12 layer2 arguments (2.67 points), layer2's output 2, forward 2
    "f4_num_classes_blank": (subs(WITH_HELPERS, ("def __init__(self, num_classes=10):",
                                                 'def __init__(self, num_classes=blank_default("Q2: the default value of num_classes")):'),
                                  ("        super(ResNet50_layer4, self).__init__()\n",
                                   "        super(ResNet50_layer4, self).__init__()\n        reject_blank_defaults(num_classes)\n")),
                             dict(FULL, Q2a=24)),
    "f4_q1_plain_blank": (blank_out("                conv1x1(in_channels, middle_channels, 1, 0),\n"
                                    "                conv3x3(middle_channels, middle_channels, 1, 1),\n"
                                    "                conv1x1(middle_channels, out_channels, 1, 0),\n"
                                    "                ### END SOLUTION\n            )\n"
                                    "            self.make_equal_channel",
                                    '                blank("Q1: the plain (downsample=False) branch of ResidualBlock"),\n'
                                    "            )\n            self.make_equal_channel"),
                          dict(FULL, Q1b=0)),
    # A typo stops __init__ in layer3: what was built before it is graded, the rest is "not checked".
    "f4_name_error_in_layer3": (sub(SOLUTION, "ResidualBlock(512, 128, 512, True)", "ResidualBlok(512, 128, 512, True)"),
                                dict(FULL, Q2a=19, Q2b=0, Q2c=0)),   # fc 2, avgpool 2, forward 2 never built
    # Every stage built, then __init__ raises: only forward() (the model cannot run) is lost.
    "f4_error_after_every_stage": (sub(SOLUTION, "        self.avgpool = nn.AvgPool2d(2, 2)",
                                       "        self.avgpool = nn.AvgPool2d(2, 2)\n        self.fc.weight.data = self.fc.wieght"),
                                   dict(FULL, Q2a=23)),
    "f4_name_error_in_layer4": (sub(SOLUTION, "ResidualBlock(512, 256, 1024, False)", "ResidualBlok(512, 256, 1024, False)"),
                                dict(FULL, Q2a=19, Q2c=0)),
}

# ---- family 5: wrong models that used to keep 105 ----------------------------------------------
WRONG_MODELS = {   # variant -> the Q2a check that must lose points
    "f5_forward_skips_layer3": (sub(SOLUTION, "        out = self.layer3(out)\n", ""), "forward"),
    "f5_forward_max_pool": (sub(SOLUTION, "        out = self.avgpool(out)\n",
                                "        out = nn.functional.max_pool2d(out, 2)\n"), "forward"),
    "f5_fc_before_avgpool": (sub(SOLUTION, FORWARD,
                                 "        out = self.layer1(x)\n        out = self.layer2(out)\n"
                                 "        out = self.layer3(out)\n        out = self.layer4(out)\n"
                                 "        out = out.view(out.size(0), -1)\n        out = self.fc(out)\n"
                                 "        out = self.avgpool(out)\n        return out\n"), "forward"),
    "f5_forward_returns_features": (sub(SOLUTION, "        out = self.fc(out)\n        return out\n",
                                        "        logits = self.fc(out)\n        return out\n"), "forward"),
    "f5_forward_softmax": (sub(SOLUTION, "        out = self.fc(out)\n        return out\n",
                               "        return self.fc(out).softmax(dim=1)\n"), "forward"),
    "f5_stem_dilation_2": (sub(SOLUTION, STEM_CONV, "nn.Conv2d(3, 64, 7, 2, 3, dilation=2)"), "stem_function"),
    "f5_stem_without_batchnorm": (sub(SOLUTION, "            nn.BatchNorm2d(64),\n", ""), "stem_function"),
    "f5_stem_without_relu": (sub(SOLUTION, "            nn.ReLU(inplace=True),\n            nn.MaxPool2d", "            nn.MaxPool2d"),
                             "stem_function"),
    "f5_stem_conv_without_bias": (sub(SOLUTION, STEM_CONV, "nn.Conv2d(3, 64, 7, 2, 3, bias=False)"), "stem_function"),
}

# ---- family 6: feedback that names the cause ---------------------------------------------------
SHARED_LAYER4 = sub(SOLUTION, LAYER4, "            ResidualBlock(512, 256, 1024, False),\n"
                                      "            *[shared] * 5,\n")
SHARED_LAYER4 = sub(SHARED_LAYER4, "        self.layer4 = nn.Sequential(\n",
                    "        shared = ResidualBlock(1024, 256, 1024, False)\n        self.layer4 = nn.Sequential(\n")
REUSED = {   # variant -> (source, part, stage, times used)
    "f6_reused_list_times": (SHARED_LAYER4, "Q2c", "layer4", 5),
    "f6_reused_named_object": (sub(SOLUTION, LAYER3, "            ResidualBlock(256, 128, 512, False),\n"
                                                     "            b, b,\n            ResidualBlock(512, 128, 512, True),\n")
                               .replace("        self.layer3 = nn.Sequential(\n",
                                        "        b = ResidualBlock(512, 128, 512, False)\n"
                                        "        self.layer3 = nn.Sequential(\n"), "Q2b", "layer3", 2),
    "f6_reused_in_module_list": (subs(SHARED_LAYER4, ("        self.layer4 = nn.Sequential(\n", "        self.layer4 = nn.ModuleList([\n"),
                                      ("            *[shared] * 5,\n            ### END SOLUTION\n        )\n",
                                       "            *[shared] * 5,\n            ### END SOLUTION\n        ])\n"),
                                      ("        out = self.layer4(out)\n",
                                       "        for block in self.layer4:\n            out = block(out)\n")),
                                 "Q2c", "layer4", 5),
    "f6_reused_in_layer2": (sub(SOLUTION, LAYER2, "            ResidualBlock(64, 64, 256, False),\n"
                                                  "            self.middle, self.middle,\n")
                            .replace("        self.layer2 = nn.Sequential(\n",
                                     "        self.middle = ResidualBlock(256, 64, 256, False)\n"
                                     "        self.layer2 = nn.Sequential(\n"), "Q2a", "layer2", 2),
}
CONV1X1_BN = "        nn.BatchNorm2d(out_channels),\n        nn.ReLU(inplace=True),\n    )\n    return model\n\n\ndef conv3x3"
BATCHNORM = {   # variant -> (source, parts that lose points, the setting named in the Q1a feedback)
    "f6_bn_eps": (sub(SOLUTION, "        nn.BatchNorm2d(out_channels),\n", "        nn.BatchNorm2d(out_channels, eps=1e-3),\n", 0),
                  {"Q1a", "Q1b"}, "eps=0.001"),
    "f6_bn_momentum": (sub(SOLUTION, CONV1X1_BN, CONV1X1_BN.replace("nn.BatchNorm2d(out_channels)",
                                                                    "nn.BatchNorm2d(out_channels, momentum=0.01)")),
                       set(), "momentum=0.01"),   # training only: a note, full credit
    "f6_bn_affine_false": (sub(SOLUTION, "        nn.BatchNorm2d(out_channels),\n",
                               "        nn.BatchNorm2d(out_channels, affine=False),\n", 0),
                           {"Q1a", "Q1b"}, "affine=False"),
    "f6_bn_no_running_stats": (sub(SOLUTION, "        nn.BatchNorm2d(out_channels),\n",
                                   "        nn.BatchNorm2d(out_channels, track_running_stats=False),\n", 0),
                               {"Q1a", "Q1b"}, "track_running_stats=False"),
}
# The shortcut's BatchNorm changed: the conv units are right, the outputs are not, and
# the note names the BatchNorm instead of pointing at forward().
SHORTCUT_EPS = sub(SOLUTION, "            self.downsize = conv1x1(in_channels, out_channels, 2, 0)\n",
                   "            self.downsize = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, 2, 0),\n"
                   "                                          nn.BatchNorm2d(out_channels, eps=0.1), nn.ReLU(inplace=True))\n")
# A Dropout inside self.layer: the conv units are right, the outputs in train mode are
# not, and the note names the Dropout instead of pointing at forward().
DROPOUT_IN_LAYER = sub(SOLUTION, "conv3x3(middle_channels, middle_channels, 1, 1),\n",
                       "conv3x3(middle_channels, middle_channels, 1, 1),\n                nn.Dropout2d(0.5),\n", 0)
STRIDE_ON_3X3 = subs(SOLUTION, ("conv1x1(in_channels, middle_channels, 2, 0),", "conv1x1(in_channels, middle_channels, 1, 0),"),
                     ("conv3x3(middle_channels, middle_channels, 1, 1),", "conv3x3(middle_channels, middle_channels, 2, 1),"))


# ---- family 7: what the argument checks cannot see, and correct models the stand-ins broke ----
MAXPOOL_AVGPOOL = ("class AvgPool2d(nn.AvgPool2d):\n    def forward(self, x):\n"
                   "        return nn.functional.max_pool2d(x, 2)\n\n\n")
SOFTMAX_LINEAR = ("class Linear(nn.Linear):\n    def forward(self, x):\n"
                  "        return super().forward(x).softmax(dim=1)\n\n\n")
Q2_HEADER = "#####\n# Question 2"
OUTPUT_MISTAKES = {   # variant -> (source, the Q2a check that loses, Q2a's score, words in its feedback)
    "f7_avgpool_max_in_subclass": (subs(SOLUTION, (Q2_HEADER, MAXPOOL_AVGPOOL + Q2_HEADER),
                                        ("nn.AvgPool2d(2, 2)", "AvgPool2d(2, 2)")),
                                   "avgpool AvgPool2d", 25 - 2 / 3, "avgpool on a correct avgpool input"),
    "f7_fc_softmax_in_subclass": (subs(SOLUTION, (Q2_HEADER, SOFTMAX_LINEAR + Q2_HEADER),
                                       ("nn.Linear(1024, num_classes)", "Linear(1024, num_classes)")),
                                  "fc Linear", 24.5, "reference's fc weights"),
    "f7_fc_without_bias": (sub(SOLUTION, "nn.Linear(1024, num_classes)", "nn.Linear(1024, num_classes, bias=False)"),
                           "fc Linear", 24.5, "reference's fc weights"),
    "f7_fc_hard_coded_10": (sub(SOLUTION, "nn.Linear(1024, num_classes)", "nn.Linear(1024, 10)"),
                            "fc Linear", 24.5, "ResNet50_layer4(num_classes=7): fc gives [10]"),
    "f7_forward_squeeze": (sub(SOLUTION, "        out = out.view(out.size(0), -1)\n", "        out = out.squeeze()\n"),
                           "forward()", 23, "on a batch of 1"),
    "f7_forward_flatten_all": (sub(SOLUTION, "        out = out.view(out.size(0), -1)\n", "        out = out.view(-1, 1024)\n"
                                   "        out = out if out.size(0) > 1 else out[0]\n"),
                               "forward()", 23, "on a batch of 1"),
}
BLOCK_INIT_END = "            self.make_equal_channel = conv1x1(in_channels, out_channels, 1, 0)\n"
MODEL_INIT_END = "        for m in self.modules():\n            if isinstance(m, nn.Linear):\n"
READS_BLOCKS = {   # correct models whose __init__ reads attributes of their blocks: full marks
    "f7_zero_init_last_batchnorm": sub(SOLUTION, MODEL_INIT_END,
                                       "        for m in self.modules():\n            if isinstance(m, ResidualBlock):\n"
                                       "                nn.init.zeros_(m.layer[2][1].weight)\n" + MODEL_INIT_END),
    "f7_fc_from_block_attribute": subs(SOLUTION, (BLOCK_INIT_END, BLOCK_INIT_END + "        self.out_channels = out_channels\n"),
                                       ("nn.Linear(1024, num_classes)", "nn.Linear(self.layer4[-1].out_channels, num_classes)")),
    "f7_fc_from_block_conv": sub(SOLUTION, "nn.Linear(1024, num_classes)",
                                 "nn.Linear(self.layer4[-1].layer[2][0].out_channels, num_classes)"),
    "f7_block_method_inits_itself": subs(SOLUTION,
                                         ("    def forward(self, x):\n        out = self.layer(x)\n",
                                          "    def zero_last(self):\n        nn.init.zeros_(self.layer[2][1].weight)\n\n"
                                          "    def forward(self, x):\n        out = self.layer(x)\n"),
                                         (MODEL_INIT_END, "        for block in self.layer4:\n            block.zero_last()\n"
                                          + MODEL_INIT_END)),
}
# Fails only with the stand-ins (they hold no parameters): the message says so.
STAND_IN_ONLY = sub(SOLUTION, MODEL_INIT_END, "        assert sum(p.numel() for p in self.layer4.parameters()) > 0\n"
                    + MODEL_INIT_END)
BLOCK_FORWARD = ("        if self.downsample:\n            identity = self.downsize(x)\n        else:\n"
                 "            # Every plain block projects its input, even when the channels already\n"
                 "            # agree: the course's checkpoints were trained with this shortcut.\n"
                 "            identity = self.make_equal_channel(x)\n")
ONE_SHORTCUT = "        self.shortcut = conv1x1(in_channels, out_channels, 2 if downsample else 1, 0)\n"
WITHOUT_TWO_SHORTCUTS = subs(SOLUTION, ("            self.downsize = conv1x1(in_channels, out_channels, 2, 0)\n", ""),
                             (BLOCK_INIT_END, ""), (BLOCK_FORWARD, "        identity = self.shortcut(x)\n"))
SHORTCUT_ORDER = {   # one merged shortcut, registered before or after self.layer: the same score
    "f7_shortcut_before_layer": sub(WITHOUT_TWO_SHORTCUTS, "        self.downsample = downsample\n",
                                    "        self.downsample = downsample\n" + ONE_SHORTCUT),
    "f7_shortcut_after_layer": sub(WITHOUT_TWO_SHORTCUTS, "\n    def forward(self, x):\n        out = self.layer(x)\n",
                                   ONE_SHORTCUT + "\n    def forward(self, x):\n        out = self.layer(x)\n"),
}
BLANK_LOOP = sub(WITH_HELPERS, "        self.downsample = downsample\n",
                 "        self.downsample = downsample\n        for i in range(200000):\n"
                 "            blank(f\"Q1: part {i}\")\n")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    files = {**CAPTURED, **NUMBERS, **PRESERVING, "f3_unused_batchnorm_in_block": EXTRA_WEIGHTS,
             **{name: text for name, (text, _) in UNFINISHED.items()},
             **{name: text for name, (text, _) in WRONG_MODELS.items()},
             **{name: text for name, (text, *_) in REUSED.items()},
             **{name: text for name, (text, *_) in BATCHNORM.items()},
             "f6_shortcut_bn_eps": SHORTCUT_EPS, "f6_stride_on_3x3": STRIDE_ON_3X3, "f6_dropout_in_layer": DROPOUT_IN_LAYER,
             **{name: text for name, (text, *_) in OUTPUT_MISTAKES.items()}, **READS_BLOCKS,
             **SHORTCUT_ORDER, "f7_stand_in_only_failure": STAND_IN_ONLY, "f7_blank_loop_200k": BLANK_LOOP}
    folder = tmp_path_factory.mktemp("families") / "submissions"
    for student, text in files.items():
        (folder / student).mkdir(parents=True)
        (folder / student / "resnet50_skeleton.py").write_text(text)
    results = grade_batch(folder, folder.parent / "out", jobs=2, progress=False)
    return {r["extra_data"]["student"]: r for r in results}


def parts(result: dict) -> dict[str, float]:
    assert result["extra_data"]["status"] == "ok", result["output"]
    return result["extra_data"]["parts"]


def check(result: dict, part: str, words: str) -> dict:
    """The one test of ``part`` whose name holds ``words``."""
    found = [t for t in result["tests"] if t["name"].startswith(part + " ") and words in t["name"]]
    assert len(found) == 1, [t["name"] for t in result["tests"]]
    return found[0]


def feedback(result: dict) -> str:
    return "\n".join(t["output"] for t in result["tests"])


@pytest.mark.parametrize("name", sorted(CAPTURED) + sorted(NUMBERS) + sorted(PRESERVING))
def test_equivalent_forms_get_full_marks(graded, name):
    assert parts(graded[name]) == FULL, feedback(graded[name])


def test_downsample_as_number_gets_a_note(graded):
    blocks = check(graded["f2_downsample_0_1"], "Q2a", "layer2 ResidualBlock")
    assert blocks["score"] == blocks["max_score"]
    assert "downsample=1 counts as True" in blocks["output"] and "downsample=0 counts as False" in blocks["output"]
    layer3 = check(graded["f2_downsample_keyword_1"], "Q2b", "ResidualBlock arguments")
    assert "layer3[3]: downsample=1 counts as True" in layer3["output"]


def test_unused_module_with_weights_costs_the_state_dict_check_only(graded):
    result = graded["f3_unused_batchnorm_in_block"]
    assert parts(result) == dict(FULL, Q1a=16, Q1b=16), feedback(result)
    for part in ("Q1a", "Q1b"):
        assert check(result, part, "state_dict")["score"] == 0
        assert check(result, part, "outputs")["score"] == 8   # compared, and right
        assert "spare_bn" in check(result, part, "state_dict")["output"]


@pytest.mark.parametrize("name", sorted(UNFINISHED))
def test_an_unfinished_part_costs_only_itself(graded, name):
    result = graded[name]
    assert parts(result) == UNFINISHED[name][1], feedback(result)
    # a check that could not run says so; a filled-in stem is never called wrong
    lost = [t for t in result["tests"] if t["score"] < t["max_score"]]
    assert lost and all("not checked: " in t["output"] for t in lost), feedback(result)
    assert "layer1[0]." not in feedback(result)


def test_not_checked_names_the_blocker(graded):
    layer4 = check(graded["f4_layer4_blank"], "Q2c", "ResidualBlock arguments")
    assert "not checked: layer4 is not filled in" in layer4["output"]
    assert "line " in layer4["output"] or "not filled in" in layer4["output"]
    fc = check(graded["f4_fc_blank"], "Q2a", "fc Linear")
    assert "not checked: the Linear arguments of fc are not filled in" in fc["output"]
    stopped = graded["f4_name_error_in_layer3"]
    fc = check(stopped, "Q2a", "fc Linear")["output"]
    assert re.search(r"not checked: ResNet50_layer4.__init__ stopped at line \d+ \(NameError: .*ResidualBlok.*\) "
                     r"before fc was built", fc), fc
    assert "before layer4 was built" in check(stopped, "Q2c", "ResidualBlock arguments")["output"]
    assert "before layer3 was built" in check(stopped, "Q2b", "ResidualBlock arguments")["output"]
    # layer1 and layer2 were built before the typo: graded in full
    for words in ("layer1 Conv2d", "layer1 MaxPool2d", "layer1 output", "layer2 ResidualBlock"):
        assert check(stopped, "Q2a", words)["score"] == check(stopped, "Q2a", words)["max_score"], words


@pytest.mark.parametrize("name", sorted(WRONG_MODELS))
def test_wrong_model_loses_points_in_q2a_only(graded, name):
    result = graded[name]
    got = parts(result)
    assert got["Q2a"] < 25 and {p: v for p, v in got.items() if p != "Q2a"} == \
        {p: v for p, v in FULL.items() if p != "Q2a"}, feedback(result)
    words = {"forward": "forward()", "stem_function": "layer1 output"}[WRONG_MODELS[name][1]]
    lost = check(result, "Q2a", words)
    assert lost["score"] < lost["max_score"] and lost["output"] != "correct"


def test_stem_feedback_names_what_differs(graded):
    assert "dilation=2" in check(graded["f5_stem_dilation_2"], "Q2a", "layer1 output")["output"]
    assert "BatchNorm2d" in check(graded["f5_stem_without_batchnorm"], "Q2a", "layer1 output")["output"]
    assert "bias=False" in check(graded["f5_stem_conv_without_bias"], "Q2a", "layer1 output")["output"]


@pytest.mark.parametrize("name", sorted(REUSED))
def test_reused_block_object_is_named(graded, name):
    _, part, stage, times = REUSED[name]
    result = graded[name]
    got = parts(result)
    assert got[part] < FULL[part] and {p: v for p, v in got.items() if p != part} == \
        {p: v for p, v in FULL.items() if p != part}, feedback(result)
    text = feedback(result)
    assert f"{stage}: the same block object is used {times} times" in text, text
    assert "has only" not in text and "more than the table" not in text


@pytest.mark.parametrize("name", sorted(BATCHNORM))
def test_batchnorm_settings_are_named(graded, name):
    _, losing, setting = BATCHNORM[name]
    result = graded[name]
    got = parts(result)
    assert {p for p in got if got[p] < FULL[p]} == losing, feedback(result)
    structure = check(result, "Q1a", "conv units")["output"]
    assert setting in structure and "BatchNorm2d" in structure, structure
    assert "look at forward()" not in feedback(result)


def test_shortcut_batchnorm_named_instead_of_the_forward_hint(graded):
    result = graded["f6_shortcut_bn_eps"]
    function = check(result, "Q1a", "outputs")
    assert function["score"] < function["max_score"]
    assert "downsize" in function["output"] and "eps=0.1" in function["output"]
    assert "look at forward()" not in function["output"]


def test_foreign_module_in_layer_named_instead_of_the_forward_hint(graded):
    result = graded["f6_dropout_in_layer"]
    for part in ("Q1a", "Q1b"):
        function = check(result, part, "outputs")
        assert function["score"] < function["max_score"]
        assert "is a Dropout2d" in function["output"], function["output"]
        assert "look at forward()" not in function["output"]


def test_grader_test_sizes_are_explained(graded):
    structure = check(graded["f6_stride_on_3x3"], "Q1a", "conv units")["output"]
    assert "With the grader's test sizes ResidualBlock(48, 16, 96, downsample=True), a block built " \
           "as the table describes has layer[0] = 1x1 conv 48->16, stride 2" in structure, structure
    assert "(the table's layer2[2])" in structure
    assert "the table expects" not in structure
    function = check(graded["f6_stride_on_3x3"], "Q1a", "outputs")["output"]
    assert "ResidualBlock(48, 16, 96, downsample=True) (the grader's test sizes) in eval mode" in function


@pytest.mark.parametrize("name", sorted(OUTPUT_MISTAKES))
def test_outputs_decide_what_the_arguments_cannot(graded, name):
    _, words, q2a, said = OUTPUT_MISTAKES[name]
    result = graded[name]
    assert parts(result) == dict(FULL, Q2a=pytest.approx(q2a, abs=0.01)), feedback(result)
    lost = check(result, "Q2a", words)
    assert lost["score"] < lost["max_score"] and said in lost["output"], lost["output"]


@pytest.mark.parametrize("name", sorted(READS_BLOCKS) + sorted(SHORTCUT_ORDER))
def test_reading_block_attributes_and_shortcut_order(graded, name):
    want = dict(FULL, Q1a=16, Q1b=16) if name in SHORTCUT_ORDER else FULL   # keys differ: state_dict only
    assert parts(graded[name]) == want, feedback(graded[name])
    if name in SHORTCUT_ORDER:
        assert "loaded by position among tensors of the same shape" in feedback(graded[name])


def test_a_failure_only_with_stand_ins_says_so(graded):
    result = graded["f7_stand_in_only_failure"]
    assert parts(result) == dict(FULL, Q2a=23), feedback(result)   # the model cannot run: forward()
    assert "with the grader's stand-in blocks in place of your ResidualBlock" in \
        check(result, "Q2a", "forward()")["output"]


def test_a_loop_of_blanks_grades_quickly_with_bounded_feedback(graded):
    result = graded["f7_blank_loop_200k"]
    assert parts(result) == dict(FULL, Q1a=0, Q1b=0), feedback(result)
    structure = check(result, "Q1a", "conv units")["output"]
    assert "not checked: part 0 is not filled in" in structure and "... and " in structure
    assert structure.count("not checked: part ") <= 30


def test_a_stand_in_for_an_unfilled_stage_is_a_note_in_q2a(graded):
    result = graded["f4_layer4_blank"]
    q2a = [t for t in result["tests"] if t["name"].startswith("Q2a ")]
    assert all("not checked" not in t["output"] for t in q2a), [t["output"] for t in q2a]
    assert "forward() was checked with a stand-in for layer4, which is not filled in yet" in \
        check(result, "Q2a", "forward()")["output"]
