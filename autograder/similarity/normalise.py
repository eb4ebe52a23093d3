"""Step 1: a submission as a stream of normalised tokens, each with its lines.

Two students who write the same program differently must give the same
stream, and a student who renames things must not change it:

* layout and comments are not tokens; string literals become ``S``;
* every name the student could rename becomes ``V``: names the student defines
  (helpers, variables, arguments, new attributes). Names a renaming would break
  stay: the skeleton's classes, functions and ``self.`` attributes (the grader
  looks them up), Python's keywords and built-ins, and library names (``nn``,
  ``Conv2d``, ``view`` ...);
* each call written in a form the grader accepts as equivalent is rewritten on
  the syntax tree to one spelling (keyword arguments bound to positions,
  ``*[block for _ in range(n)]`` unrolled, the global pools, ``super()``, the
  flatten spellings), and its tokens are those of the rewritten call
  (``ast.unparse``); the rest keeps the file's own tokens.

A file with a syntax error is parsed piece by piece (top-level statements, the
methods of a broken class): only the piece that does not parse keeps its text
tokens unrewritten. Nothing here runs student code.
"""
from __future__ import annotations

import ast
import builtins
import copy
import keyword
import re
from dataclasses import dataclass

# Library names that stay as written wherever they appear (beyond those the skeleton uses).
LIBRARY_NAMES = frozenset("""
    torch nn F functional init np numpy math Tensor Module Sequential ModuleList ModuleDict
    Conv2d BatchNorm2d ReLU MaxPool2d AvgPool2d AdaptiveAvgPool2d Linear Flatten Identity Dropout
    relu flatten view reshape size shape squeeze unsqueeze append extend add_module modules children
    parameters weight bias data zeros_ ones_ constant_ normal_ kaiming_normal_ kaiming_uniform_
    xavier_uniform_ xavier_normal_ __init__ forward cat add item numel
""".split())
# The calls whose arguments the grader reads by position; keyword forms are bound to these.
# name -> (parameters in order, defaults)
SIGNATURES: dict[str, tuple[tuple[str, ...], dict[str, object]]] = {
    "Conv2d": (("in_channels", "out_channels", "kernel_size", "stride", "padding"), {"stride": 1, "padding": 0}),
    "MaxPool2d": (("kernel_size", "stride", "padding"), {"padding": 0}),
    "AvgPool2d": (("kernel_size", "stride", "padding"), {"padding": 0}),
    "Linear": (("in_features", "out_features"), {}),
    "BatchNorm2d": (("num_features",), {}),
    "ReLU": (("inplace",), {"inplace": False}),
    "ResidualBlock": (("in_channels", "middle_channels", "out_channels", "downsample"), {"downsample": False}),
    "conv1x1": (("in_channels", "out_channels", "stride", "padding"), {}),
    "conv3x3": (("in_channels", "out_channels", "stride", "padding"), {}),
}
NN_LAYERS = frozenset(n for n in SIGNATURES if n[0].isupper() and n != "ResidualBlock") | {"AdaptiveAvgPool2d"}
MAX_UNROLL = 64           # ``*[block for _ in range(n)]`` is unrolled up to this n
STRING, RENAMED = "S", "V"

TOKEN_RE = re.compile(r"""
 (?P<comment>\#[^\n]*)
|(?P<string>(?:[rRbBuUfF]{1,2})?(?:\"\"\"(?:\\.|[^\\])*?(?:\"\"\"|\Z)|'''(?:\\.|[^\\])*?(?:'''|\Z)
                               |"(?:\\.|[^"\\\n])*(?:"|$)|'(?:\\.|[^'\\\n])*(?:'|$)))
|(?P<number>0[xXoObB][0-9a-fA-F_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?[jJ]?)
|(?P<name>[^\W\d]\w*)
|(?P<op>\*\*=?|//=?|>>=?|<<=?|->|:=|[-+*/%&|^@=!<>]=|[-+*/%&|^~@=<>().,:;\[\]{}])
|(?P<newline>\n)
|(?P<space>[ \t\f\r\\]+)
|(?P<other>.)
""", re.VERBOSE | re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Vocabulary:
    """Names that survive renaming; built from the released skeleton and the solution."""
    names: frozenset[str]        # a bare name kept as written
    attributes: frozenset[str]   # an attribute (after a dot) kept as written
    self_attributes: frozenset[str]   # ``self.X`` kept only for these

    @classmethod
    def from_sources(cls, *sources: str) -> Vocabulary:
        names = set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins)) | {"self", "cls"}
        names |= LIBRARY_NAMES
        attributes, self_attributes = set(LIBRARY_NAMES), set()
        for source in sources:
            tree = ast.parse(source)
            for node in ast.walk(tree):
                if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.col_offset <= 4:
                    names.add(node.name)        # module-level classes and functions, methods
                    attributes.add(node.name)
                elif isinstance(node, ast.alias):
                    names.add((node.asname or node.name).split(".")[0])
                elif isinstance(node, ast.Attribute):
                    on_self = isinstance(node.value, ast.Name) and node.value.id == "self"
                    (self_attributes if on_self else attributes).add(node.attr)
        return cls(frozenset(names), frozenset(attributes), frozenset(self_attributes))


@dataclass
class Tokens:
    """A normalised token stream: ``texts[i]`` spans the file's lines ``first[i]``..``last[i]``."""
    texts: list[str]
    first: list[int]
    last: list[int]
    parsed: bool             # False: the file did not parse and was tokenised as text


def raw_tokens(source: str):
    """(kind, text, line, column) for every token of ``source``, comments included; never fails."""
    line, line_start = 1, 0
    for match in TOKEN_RE.finditer(source):
        kind, text = match.lastgroup, match.group()
        if kind not in ("space", "newline"):
            yield kind, text, line, match.start() - line_start
        breaks = text.count("\n")
        if breaks:
            line += breaks
            line_start = match.start() + text.rindex("\n") + 1


def comments(source: str) -> list[tuple[int, str]]:
    """(line, comment text without '#') for every comment in ``source``."""
    return [(line, text.lstrip("#").strip()) for kind, text, line, _ in raw_tokens(source) if kind == "comment"]


def _renamed(kind: str, text: str, before: list[str], vocab: Vocabulary) -> str:
    if kind == "string":
        return STRING
    if kind != "name":
        return text
    if before and before[-1] == ".":
        if len(before) >= 2 and before[-2] == "self":
            return text if text in vocab.self_attributes else RENAMED
        return text if text in vocab.attributes else RENAMED
    return text if text in vocab.names else RENAMED


def text_tokens(source: str, vocab: Vocabulary, found_comments: list | None = None,
                positions: list | None = None) -> Tokens:
    """Tokens of ``source`` as text: renamed, but no rewrites; each on its own line.
    Comments go to ``found_comments`` as (line, text), and each token's (line,
    column) to ``positions``, when they are given."""
    out = Tokens([], [], [], parsed=False)
    for kind, token, line, column in raw_tokens(source):
        if kind == "comment":
            if found_comments is not None:
                found_comments.append((line, token.lstrip("#").strip()))
            continue
        out.texts.append(_renamed(kind, token, out.texts[-2:], vocab))
        out.first.append(line)
        out.last.append(line + token.count("\n"))
        if positions is not None:
            positions.append((line, column))
    return out


# ---------------------------------------------------------------- rewriting accepted forms

def _callee(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _const(node: ast.AST | None):
    return node.value if isinstance(node, ast.Constant) else None


def _range_length(node: ast.AST) -> int | None:
    """n for ``range(n)`` or ``range(a, b)`` with constant bounds."""
    if isinstance(node, ast.Call) and _callee(node) == "range" and not node.keywords:
        values = [_const(a) for a in node.args]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            if len(values) == 1:
                return values[0]
            if len(values) == 2:
                return values[1] - values[0]
    return None


def _unrolled(node: ast.AST) -> list[ast.AST] | None:
    """``*[elt for _ in range(n)]`` (or a generator) as n copies of ``elt``, when
    ``elt`` does not use the loop variable."""
    if not (isinstance(node, ast.Starred) and isinstance(node.value, (ast.ListComp, ast.GeneratorExp))):
        return None
    comp = node.value
    if len(comp.generators) != 1 or comp.generators[0].ifs or not isinstance(comp.generators[0].target, ast.Name):
        return None
    count = _range_length(comp.generators[0].iter)
    loop_var = comp.generators[0].target.id
    if count is None or not 0 <= count <= MAX_UNROLL:
        return None
    if any(isinstance(n, ast.Name) and n.id == loop_var for n in ast.walk(comp.elt)):
        return None
    return [copy.deepcopy(comp.elt) for _ in range(count)]


def _nn(attr: str) -> ast.Attribute:
    return ast.Attribute(value=ast.Name(id="nn", ctx=ast.Load()), attr=attr, ctx=ast.Load())


def _is_nn(func: ast.AST) -> bool:
    return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "nn"


def _flatten_of(x: ast.AST) -> ast.Call:
    """The skeleton's spelling: ``x.view(x.size(0), -1)``."""
    size = ast.Call(func=ast.Attribute(value=copy.deepcopy(x), attr="size", ctx=ast.Load()),
                    args=[ast.Constant(0)], keywords=[])
    return ast.Call(func=ast.Attribute(value=x, attr="view", ctx=ast.Load()),
                    args=[size, ast.UnaryOp(op=ast.USub(), operand=ast.Constant(1))], keywords=[])


def _is_batch_size_of(node: ast.AST, x: ast.AST) -> bool:
    """``x.size(0)``, ``x.shape[0]`` or ``len(x)``."""
    dump = ast.dump(x)
    if isinstance(node, ast.Call) and _callee(node) == "size" and isinstance(node.func, ast.Attribute):
        return ast.dump(node.func.value) == dump and [_const(a) for a in node.args] == [0]
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "shape":
        return ast.dump(node.value.value) == dump and _const(node.slice) == 0
    if isinstance(node, ast.Call) and _callee(node) == "len" and len(node.args) == 1:
        return ast.dump(node.args[0]) == dump
    return False


def _is_minus_one(node: ast.AST) -> bool:
    return isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and _const(node.operand) == 1


def _flatten(node: ast.Call, name: str) -> ast.Call | None:
    """``torch.flatten(x, 1)``, ``x.flatten(1)``, ``x.reshape(x.shape[0], -1)``, ``x.view(-1, 1024)``
    ... as ``x.view(x.size(0), -1)``; None for anything else."""
    func = node.func
    if not isinstance(func, ast.Attribute) or name not in ("flatten", "view", "reshape"):
        return None
    keywords = {k.arg: _const(k.value) for k in node.keywords}
    if name == "flatten" and isinstance(func.value, ast.Name) and func.value.id == "torch":
        if len(node.args) == 2 and _const(node.args[1]) == 1 and not keywords:
            return _flatten_of(node.args[0])
        if len(node.args) == 1 and keywords == {"start_dim": 1}:
            return _flatten_of(node.args[0])
        return None
    x = func.value
    if name == "flatten" and [_const(a) for a in node.args] == [1] and not keywords:
        return _flatten_of(x)
    if name in ("view", "reshape") and len(node.args) == 2 and not keywords:
        first, second = node.args
        if _is_minus_one(second) and _is_batch_size_of(first, x):
            return None if name == "view" and isinstance(first, ast.Call) and _callee(first) == "size" \
                else _flatten_of(x)          # already the skeleton's spelling
        if _is_minus_one(first) and isinstance(_const(second), int):
            return _flatten_of(x)            # x.view(-1, 1024): the same on this model
    return None


def _global_pool(node: ast.Call, name: str) -> ast.Call | None:
    """Every pooling the grader accepts on the 2x2 map before fc, as ``nn.AvgPool2d(2, 2)``;
    None when ``node`` is not one, or is that already."""
    values = [_const(a) if not isinstance(a, ast.Tuple) else tuple(_const(e) for e in a.elts)
              for a in node.args] + [_const(k.value) for k in node.keywords]
    if name == "AdaptiveAvgPool2d" and values in ([1], [(1, 1)]):
        pass
    elif name == "AvgPool2d" and values and values[0] in (2, (2, 2)) and len(values) <= 2 and all(
            v in (1, 2, (1, 1), (2, 2), None) for v in values[1:2]):
        if values == [2, 2] and not node.keywords and _is_nn(node.func):
            return None
    else:
        return None
    return ast.Call(func=_nn("AvgPool2d"), args=[ast.Constant(2), ast.Constant(2)], keywords=[])


def _bind(node: ast.Call, params: tuple[str, ...], defaults: dict[str, object]) -> bool:
    """Keyword arguments put in their positions, left-out defaults written: True if anything moved."""
    if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
        return False
    given = dict(zip(params, node.args))
    extra_positional = node.args[len(params):]
    keywords = {k.arg: k.value for k in node.keywords}
    args = []
    for param in params:
        if param in given:
            args.append(given[param])
        elif param in keywords:
            args.append(keywords.pop(param))
        elif param in defaults:
            args.append(ast.copy_location(ast.Constant(defaults[param]), node))
        else:
            break
    args += extra_positional if len(args) == len(params) else []
    changed = len(args) != len(node.args) or len(keywords) != len(node.keywords)
    node.args = args
    node.keywords = [ast.keyword(arg=k, value=v) for k, v in sorted(keywords.items())]
    return changed


def _become(node: ast.Call, new: ast.Call) -> None:
    """Turn ``node`` into ``new`` in place; new parts take ``node``'s location."""
    node.func, node.args, node.keywords = new.func, new.args, new.keywords
    for child in ast.walk(node):
        if isinstance(child, (ast.expr, ast.keyword)) and not hasattr(child, "lineno"):
            ast.copy_location(child, node)


def _rewrite(node: ast.Call) -> bool:
    """Rewrite one call into the accepted form's single spelling; True if it changed."""
    changed = False
    args = []
    for arg in node.args:
        unrolled = _unrolled(arg)
        changed |= unrolled is not None
        args.extend(unrolled if unrolled is not None else [arg])
    node.args = args
    name = _callee(node)
    if name == "super" and isinstance(node.func, ast.Name):
        changed |= bool(node.args)
        node.args = []                       # super(Cls, self) -> super()
        return changed
    for canonical in (_flatten(node, name), _global_pool(node, name)):
        if canonical is not None:
            _become(node, canonical)
            return True
    if name in NN_LAYERS and not _is_nn(node.func):
        node.func = ast.copy_location(_nn(name), node.func)   # Conv2d, torch.nn.Conv2d -> nn.Conv2d
        changed = True
    if name in SIGNATURES:
        changed |= _bind(node, *SIGNATURES[name])
    return changed


def rewrite_accepted_forms(tree: ast.AST) -> list[ast.Call]:
    """Rewrite every call in ``tree`` in place, innermost first; returns those that changed."""
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    return [call for call in reversed(calls) if _rewrite(call)]   # ast.walk lists parents first


# ---------------------------------------------------------------- the file as tokens

class _Emitter:
    """Tokens of a rewritten expression; a call over several lines gets one line span per argument."""

    def __init__(self, vocab: Vocabulary, out: Tokens):
        self.vocab, self.out = vocab, out

    def text(self, text: str, node: ast.AST, one_line: bool = False) -> None:
        first = node.lineno
        last = first if one_line else (node.end_lineno or first)
        for kind, token, _, _ in raw_tokens(text):
            if kind != "comment":
                self.out.texts.append(_renamed(kind, token, self.out.texts[-2:], self.vocab))
                self.out.first.append(first)
                self.out.last.append(last)

    def expr(self, node: ast.expr) -> None:
        if isinstance(node, ast.Call) and (node.end_lineno or node.lineno) > node.lineno:
            self.text(ast.unparse(node.func) + "(", node, one_line=True)
            for arg in node.args:
                self.expr(arg)
                self.text(",", arg)
            for kw in node.keywords:
                self.text(f"{kw.arg}=" if kw.arg else "**", kw.value)
                self.expr(kw.value)
                self.text(",", kw.value)
            self.out.texts.append(")")
            self.out.first.append(node.end_lineno)
            self.out.last.append(node.end_lineno)
        elif isinstance(node, ast.Starred):
            self.text("*", node)
            self.expr(node.value)
        else:
            self.text(ast.unparse(node), node)


def _column(lines: list[str], line: int, byte_offset: int) -> int:
    """The character column of ``byte_offset`` (the tree counts UTF-8 bytes)."""
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    return byte_offset if text.isascii() else len(text.encode()[:byte_offset].decode("utf-8", "ignore"))


MAX_PIECE_DEPTH = 3          # pieces: top-level statements, class members, statements of a method


def _parse_at(lines: list[str], start: int, end: int, wrappers: list[str]) -> ast.Module | None:
    """Parse ``lines[start:end]`` alone, keeping the file's line numbers; the
    ``wrappers`` (``class _:``, ``    def _(self):``) go on the lines just before."""
    prefix = "\n" * (start - len(wrappers)) + "".join(w + "\n" for w in wrappers)
    try:
        return ast.parse(prefix + "\n".join(lines[start:end]))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _pieces(lines: list[str], first: int, end: int, indent: int, in_string: set[int]) -> list[tuple[int, int]]:
    """``lines[first:end]`` cut before every statement that starts at ``indent`` spaces."""
    def starts_statement(i: int) -> bool:
        line = lines[i]
        return (i + 1 not in in_string and len(line) > indent and line[:indent].strip(" ") == ""
                and not line[indent].isspace() and line[indent] not in "#)]}")
    cuts = sorted({first, *(i for i in range(first, end) if starts_statement(i)), end})
    return list(zip(cuts, cuts[1:]))


def _parse_pieces(lines, first, end, indent, wrappers, in_string, trees) -> None:
    for start, stop in _pieces(lines, first, end, indent, in_string):
        tree = _parse_at(lines, start, stop, wrappers)
        if tree is not None:
            trees.append(tree)
            continue
        header = lines[start].strip()
        if len(wrappers) + 1 < MAX_PIECE_DEPTH and header.startswith(("class ", "def ", "async def ")):
            inner = " " * indent + ("class _:" if header.startswith("class ") else "def _(self):")
            _parse_pieces(lines, start + 1, stop, indent + 4, [*wrappers, inner], in_string, trees)


def syntax_trees(source: str, in_string: set[int]) -> tuple[list[ast.Module], bool]:
    """(trees, whether the whole file parsed). A file with a syntax error is parsed
    piece by piece -- each top-level statement, and inside a class or function that
    fails as a whole, each member, and each statement of a method -- so that only
    the broken piece is left unrewritten. ``in_string``: lines inside a multi-line
    string, where no piece may start."""
    try:
        return [ast.parse(source)], True
    except (SyntaxError, ValueError):
        pass
    lines = source.split("\n")
    trees: list[ast.Module] = []
    _parse_pieces(lines, 0, len(lines), 0, [], in_string, trees)
    return trees, False


def rewritten_tokens(source: str, trees: list[ast.Module], vocab: Vocabulary, as_text: Tokens,
                     positions: list[tuple[int, int]]) -> Tokens:
    """The file's own tokens, with every call written in an accepted form replaced by
    the tokens of its single spelling (``positions``: each text token's line and column)."""
    changed = [call for tree in trees for call in rewrite_accepted_forms(tree)]
    if not changed:
        return as_text
    lines = source.split("\n")
    spans = sorted(((node.lineno, _column(lines, node.lineno, node.col_offset)),
                    (node.end_lineno, _column(lines, node.end_lineno, node.end_col_offset)), node)
                   for node in changed)
    outermost = []
    for start, end, node in spans:
        if not outermost or start >= outermost[-1][1]:
            outermost.append((start, end, node))
    out = Tokens([], [], [], parsed=as_text.parsed)
    emitter = _Emitter(vocab, out)
    span, emitted = 0, set()
    for index, position in enumerate(positions):
        while span < len(outermost) and position >= outermost[span][1]:
            span += 1
        if span < len(outermost) and position >= outermost[span][0]:
            if span not in emitted:           # the call's first token: the whole call, rewritten
                emitter.expr(outermost[span][2])
                emitted.add(span)
            continue
        out.texts.append(as_text.texts[index])
        out.first.append(as_text.first[index])
        out.last.append(as_text.last[index])
    return out


def analyse(source: str, vocab: Vocabulary) -> tuple[Tokens, list[tuple[int, str]]]:
    """(the normalised tokens of ``source``, its comments as (line, text)).
    ``Tokens.parsed`` says whether the whole file parsed."""
    found_comments: list[tuple[int, str]] = []
    positions: list[tuple[int, int]] = []
    as_text = text_tokens(source, vocab, found_comments, positions)
    in_string = {line for text, first, last in zip(as_text.texts, as_text.first, as_text.last)
                 if text == STRING and last > first for line in range(first + 1, last + 1)}
    try:
        trees, parsed = syntax_trees(source, in_string)
        as_text.parsed = parsed
        return rewritten_tokens(source, trees, vocab, as_text, positions), found_comments
    except (RecursionError, MemoryError):
        pass
    except Exception:   # noqa: BLE001 -- a file our rewrites trip on is still compared, as text
        pass
    as_text.parsed = False
    return as_text, found_comments


def code_tokens(source: str, vocab: Vocabulary) -> Tokens:
    """The normalised tokens of ``source`` (see ``analyse``)."""
    return analyse(source, vocab)[0]
