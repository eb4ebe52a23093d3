# Students: this is your file -- fill in the blanks and submit it (see below).
# Course staff: generated from solutions/resnet50_skeleton.py by `python -m autograder release`;
# change the kit there, not here.
"""ResNet50_layer4 for CIFAR-10: the file you complete and submit.

What to do
----------
Q1  ResidualBlock, the bottleneck building block (40 points):
    write the `self.layer` stack of the downsample=True branch and of the
    downsample=False branch (2 fill-ins of 20 points; use conv1x1
    and conv3x3).
Q2  ResNet50_layer4 (65 points): fill in the 25 one-point blanks
    (25 points), then write layer3 (20 points) and layer4 (20 points).
    Follow the table on the slides (pages 13-14), not torchvision's ResNet-50:
    every stage's output size must match it.

Each part left to you is a placeholder -- blank(...), blanks(n, ...) or
blank_default(...) -- that stops with a NotImplementedError naming the part,
for example "Q2: the MaxPool2d arguments in layer1 are not filled in".
Replace each placeholder with your code or values. For blank_default(...),
also delete the reject_blank_defaults(...) line that goes with it. When the
model builds without errors, check its output shape on a 3x32x32 image.

Submit this file together with your report. Do not rename this file: it is
graded as resnet50_skeleton.py.
"""
import torch.nn as nn


# ---------------------------------------------------------------------------
# Placeholders for the parts you write. Each one stops the program with an error
# that names the missing part. Replace every blank(...), blanks(...) and
# blank_default(...) with your code or values; leave these helpers as they are.
# ---------------------------------------------------------------------------
def blank(what):
    """Stands for code you still have to write."""
    raise NotImplementedError(
        f"{what} is not filled in (replace blank(...) in resnet50_skeleton.py with your code)")


def blanks(n, what):
    """Stands for `n` argument values you still have to write."""
    values = "your value" if n == 1 else f"your {n} values"
    verb = "is" if n == 1 else "are"
    raise NotImplementedError(
        f"{what} {verb} not filled in (replace blanks(...) in resnet50_skeleton.py with {values})")


def blank_default(what):
    """Stands for a default value you still have to write (see reject_blank_defaults)."""
    # A class of its own, named after the blank: where a library rejects the value
    # by its type (torch: "must be tuple of ints, but found element of type ..."),
    # its message names the blank too.
    message = f"{what} is not filled in (replace blank_default(...) in resnet50_skeleton.py with your value)"
    return type(f"<blank default: {message}>", (_BlankDefault,), {})(what)


def reject_blank_defaults(*values):
    """Stops with a clear error if a default value has not been filled in yet."""
    for value in values:
        if isinstance(value, _BlankDefault):
            raise NotImplementedError(
                f"{value.what} is not filled in "
                "(replace blank_default(...) in resnet50_skeleton.py with your value)")


class _BlankDefault:
    """Stands for a default value that is still to be filled in. Used as a number
    (a layer's size, range(...), a comparison, arithmetic, `if ...`), it stops
    with the same error as reject_blank_defaults, naming the blank."""

    def __init__(self, what):
        self.what = what

    def __repr__(self):
        return f"<blank default: {self.what}>"

    __hash__ = object.__hash__
    __index__ = __int__ = __float__ = __complex__ = __bool__ = reject_blank_defaults
    __round__ = __trunc__ = __floor__ = __ceil__ = reject_blank_defaults
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = reject_blank_defaults
    __neg__ = __pos__ = __abs__ = __invert__ = reject_blank_defaults
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = reject_blank_defaults
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = reject_blank_defaults
    __mod__ = __rmod__ = __divmod__ = __rdivmod__ = __pow__ = __rpow__ = reject_blank_defaults
    __lshift__ = __rlshift__ = __rshift__ = __rrshift__ = reject_blank_defaults
    __and__ = __rand__ = __or__ = __ror__ = __xor__ = __rxor__ = reject_blank_defaults


def conv1x1(in_channels, out_channels, stride, padding):
    """1x1 convolution followed by BatchNorm and ReLU."""
    model = nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, padding=padding),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )
    return model


def conv3x3(in_channels, out_channels, stride, padding):
    """3x3 convolution followed by BatchNorm and ReLU."""
    model = nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=padding),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )
    return model


#####
# Question 1 : Implement the "bottle neck building block" part.
# Hint : Think about difference between downsample True and False. How we make the difference by code?
class ResidualBlock(nn.Module):
    def __init__(self, in_channels, middle_channels, out_channels, downsample=False):
        super(ResidualBlock, self).__init__()
        self.downsample = downsample

        if self.downsample:
            self.layer = nn.Sequential(
                ##### fill in here (20 points)
                # Hint : use these functions (conv1x1, conv3x3)
                blank("Q1: the downsample branch of ResidualBlock"),
            )
            self.downsize = conv1x1(in_channels, out_channels, 2, 0)

        else:
            self.layer = nn.Sequential(
                ##### fill in here (20 points)
                blank("Q1: the plain (downsample=False) branch of ResidualBlock"),
            )
            self.make_equal_channel = conv1x1(in_channels, out_channels, 1, 0)

    def forward(self, x):
        out = self.layer(x)
        if self.downsample:
            identity = self.downsize(x)
        else:
            # Every plain block projects its input, even when the channels already
            # agree: the course's checkpoints were trained with this shortcut.
            identity = self.make_equal_channel(x)
        # No ReLU after the addition (the handout's note on this variant).
        return out + identity


#####
# Question 2 : Implement the "ResNet50_layer4" by following the table on the slides.
# Fill in the blanks; every stage's output size must match the table.
class ResNet50_layer4(nn.Module):
    def __init__(self, num_classes=blank_default("Q2: the default value of num_classes")):
        super(ResNet50_layer4, self).__init__()
        reject_blank_defaults(num_classes)  # delete this line once the default is filled in
        # Layer 1: 7x7 conv, 64 channels, stride 2, then 3x3 max pool, stride 2 -> 64 x 8 x 8
        self.layer1 = nn.Sequential(
            nn.Conv2d(*blanks(5, "Q2: the Conv2d arguments in layer1")),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(*blanks(3, "Q2: the MaxPool2d arguments in layer1")),
        )
        # Layer 2 -> 256 x 4 x 4
        self.layer2 = nn.Sequential(
            ResidualBlock(*blanks(4, "Q2: the arguments of layer2's first ResidualBlock")),
            ResidualBlock(*blanks(4, "Q2: the arguments of layer2's second ResidualBlock")),
            ResidualBlock(*blanks(4, "Q2: the arguments of layer2's third ResidualBlock")),
        )
        # Layer 3 -> 512 x 2 x 2
        self.layer3 = nn.Sequential(
            ##### fill in here (20 points)
            blank("Q2: layer3"),
        )
        # Layer 4 -> 1024 x 2 x 2
        self.layer4 = nn.Sequential(
            ##### fill in here (20 points)
            blank("Q2: layer4"),
        )

        self.fc = nn.Linear(*blanks(2, "Q2: the Linear arguments of fc"))
        self.avgpool = nn.AvgPool2d(*blanks(2, "Q2: the AvgPool2d arguments"))

        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight.data)
            elif isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight.data)

    def forward(self, x):
        out = self.layer1(x)
        out = self.layer2(out)
        out = self.layer3(out)
        out = self.layer4(out)
        out = self.avgpool(out)
        out = out.view(out.size(0), -1)
        out = self.fc(out)
        return out
