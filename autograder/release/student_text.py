"""The prose and the helper code that go into student files.

The helpers are defined *in* the student file (students upload only that file
to Colab, so it must stand alone). They are kept here as text and rendered with
the name of the place the student edits; ``tests/test_release.py`` runs them.
"""
from __future__ import annotations

# Read by two people: the student who fills this file in, and the course staff
# member who keeps the kit (for whom it is a generated copy).
GENERATED_NOTICE = """\
Students: this is your file -- fill in the blanks and submit it (see below).
Course staff: generated from {source} by `python -m autograder release`;
change the kit there, not here.
"""

# `@WHERE@` becomes "resnet50_skeleton.py" or "this notebook".
HELPERS_TEMPLATE = '''\
# ---------------------------------------------------------------------------
# Placeholders for the parts you write. Each one stops the program with an error
# that names the missing part. Replace every blank(...), blanks(...) and
# blank_default(...) with your code or values; leave these helpers as they are.
# ---------------------------------------------------------------------------
def blank(what):
    """Stands for code you still have to write."""
    raise NotImplementedError(
        f"{what} is not filled in (replace blank(...) in @WHERE@ with your code)")


def blanks(n, what):
    """Stands for `n` argument values you still have to write."""
    values = "your value" if n == 1 else f"your {n} values"
    verb = "is" if n == 1 else "are"
    raise NotImplementedError(
        f"{what} {verb} not filled in (replace blanks(...) in @WHERE@ with {values})")


def blank_default(what):
    """Stands for a default value you still have to write (see reject_blank_defaults)."""
    # A class of its own, named after the blank: where a library rejects the value
    # by its type (torch: "must be tuple of ints, but found element of type ..."),
    # its message names the blank too.
    message = f"{what} is not filled in (replace blank_default(...) in @WHERE@ with your value)"
    return type(f"<blank default: {message}>", (_BlankDefault,), {})(what)


def reject_blank_defaults(*values):
    """Stops with a clear error if a default value has not been filled in yet."""
    for value in values:
        if isinstance(value, _BlankDefault):
            raise NotImplementedError(
                f"{value.what} is not filled in "
                "(replace blank_default(...) in @WHERE@ with your value)")


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
'''

STUDENT_DOCSTRING_TEMPLATE = """\
ResNet50_layer4 for CIFAR-10: the file you complete and submit.

What to do
----------
Q1  ResidualBlock, the bottleneck building block ({q1_points} points):
    write the `self.layer` stack of the downsample=True branch and of the
    downsample=False branch ({q1_parts} fill-ins of 20 points; use conv1x1
    and conv3x3).
Q2  ResNet50_layer4 ({q2_points} points): fill in the {q2_blanks} one-point blanks
    ({q2_blanks} points), then write layer3 (20 points) and layer4 (20 points).
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


def render_helpers(where: str) -> str:
    return HELPERS_TEMPLATE.replace("@WHERE@", where)


def render_student_docstring(q2_blanks: int, q1_parts: int = 2) -> str:
    q1_points = 20 * q1_parts
    return STUDENT_DOCSTRING_TEMPLATE.format(
        q1_points=q1_points, q1_parts=q1_parts, q2_blanks=q2_blanks, q2_points=q2_blanks + 40)
