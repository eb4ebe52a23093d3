"""Step 1: a submission as a stream of normalised tokens, each with its lines.

Two students who write the same program differently must give the same
stream, and a student who renames things must not change it:

* the forms the grader accepts as equivalent are rewritten to one form on the
  syntax tree (keyword arguments bound to positions, ``*[block for _ in
  range(n)]`` unrolled, the global pools, ``super()``, the flatten spellings);
* the tree is printed back (``ast.unparse``), so layout, parentheses, quotes and
  comments are gone;
* every name the student could rename becomes ``V``: names the student defines
  (helpers, variables, arguments, new attributes). Names a renaming would break
  stay: the skeleton's classes, functions and ``self.`` attributes (the grader
  looks them up), Python's keywords and built-ins, and library names (``nn``,
  ``Conv2d``, ``view`` ...). String literals become ``S``.

A file that does not parse is tokenised as text with the same renaming rule,
without the rewrites. Nothing here runs student code.
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
    """(kind, text, line) for every token of ``source``, comments included; never fails."""
    line = 1
    for match in TOKEN_RE.finditer(source):
        kind, text = match.lastgroup, match.group()
        if kind not in ("space", "newline"):
            yield kind, text, line
        line += text.count("\n")


def comments(source: str) -> list[tuple[int, str]]:
    """(line, comment text without '#') for every comment in ``source``."""
    return [(line, text.lstrip("#").strip()) for kind, text, line in raw_tokens(source) if kind == "comment"]


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


def _append(out: Tokens, text: str, first: int, last: int, vocab: Vocabulary) -> None:
    for kind, token, _ in raw_tokens(text):
        if kind == "comment":
            continue
        out.texts.append(_renamed(kind, token, out.texts[-2:], vocab))
        out.first.append(first)
        out.last.append(last)


def text_tokens(source: str, vocab: Vocabulary, found_comments: list | None = None) -> Tokens:
    """Tokens of ``source`` as text: renamed, but no rewrites; each on its own line.
    Comments go to ``found_comments`` as (line, text) when it is given."""
    out = Tokens([], [], [], parsed=False)
    for kind, token, line in raw_tokens(source):
        if kind == "comment":
            if found_comments is not None:
                found_comments.append((line, token.lstrip("#").strip()))
            continue
        out.texts.append(_renamed(kind, token, out.texts[-2:], vocab))
        last = line + token.count("\n")
        out.first.append(line)
        out.last.append(last)
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


class AcceptedForms(ast.NodeTransformer):
    """Rewrites each form the grader accepts as equivalent into one spelling."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        args = []
        for arg in node.args:
            args.extend(_unrolled(arg) or [arg])
        node.args = args
        name = _callee(node)
        if name == "super" and isinstance(node.func, ast.Name):
            node.args = []                       # super(Cls, self) -> super()
            return node
        flat = self._flatten(node, name)
        if flat is not None:
            return ast.copy_location(flat, node)
        if name in NN_LAYERS:
            node.func = _nn(name)                # Conv2d, torch.nn.Conv2d -> nn.Conv2d
        pool = self._global_pool(node, name)
        if pool is not None:
            return ast.copy_location(pool, node)
        if name in SIGNATURES:
            self._bind(node, *SIGNATURES[name])
        return node

    @staticmethod
    def _flatten(node: ast.Call, name: str) -> ast.Call | None:
        func = node.func
        if not isinstance(func, ast.Attribute):
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
                return _flatten_of(x)
            if _is_minus_one(first) and isinstance(_const(second), int):
                return _flatten_of(x)         # x.view(-1, 1024): the same on this model
        return None

    @staticmethod
    def _global_pool(node: ast.Call, name: str) -> ast.Call | None:
        """Every pooling the grader accepts on the 2x2 map before fc: ``nn.AvgPool2d(2, 2)``."""
        values = [_const(a) if not isinstance(a, ast.Tuple) else tuple(_const(e) for e in a.elts)
                  for a in node.args] + [_const(k.value) for k in node.keywords]
        if name == "AdaptiveAvgPool2d" and values in ([1], [(1, 1)]):
            pass
        elif name == "AvgPool2d" and values and values[0] in (2, (2, 2)) and all(
                v in (1, 2, (1, 1), (2, 2), None) for v in values[1:2]) and len(values) <= 2:
            pass
        else:
            return None
        return ast.Call(func=_nn("AvgPool2d"), args=[ast.Constant(2), ast.Constant(2)], keywords=[])

    @staticmethod
    def _bind(node: ast.Call, params: tuple[str, ...], defaults: dict[str, object]) -> None:
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            return
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
        node.args = args + (extra_positional if len(args) == len(params) else [])
        node.keywords = [ast.keyword(arg=k, value=v) for k, v in sorted(keywords.items())]


# ---------------------------------------------------------------- the tree as tokens

COMPOUND = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.AsyncFor,
            ast.While, ast.With, ast.AsyncWith)


def _header(stmt: ast.stmt) -> str:
    """``def f(x):``, ``if test:`` ...: the statement printed without its body."""
    shell = copy.copy(stmt)
    shell.body = [ast.Pass()]
    if hasattr(shell, "orelse"):
        shell.orelse = []
    return ast.unparse(shell).rsplit("\n", 1)[0]


class _Emitter:
    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab
        self.out = Tokens([], [], [], parsed=True)

    def text(self, text: str, node: ast.AST, one_line: bool = False) -> None:
        last = node.lineno if one_line else (node.end_lineno or node.lineno)
        _append(self.out, text, node.lineno, last, self.vocab)

    def expr(self, node: ast.expr) -> None:
        """An expression; a call spread over several lines gets one line span per argument."""
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

    def statements(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.statement(stmt)

    def statement(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, COMPOUND):
            for decorator in getattr(stmt, "decorator_list", []):
                self.text("@" + ast.unparse(decorator), decorator)
            header = _header(stmt)
            if getattr(stmt, "decorator_list", None):
                header = header.split("\n")[-1]
            self.text(header, stmt, one_line=True)
            self.statements(stmt.body)
            if getattr(stmt, "orelse", None):
                self.text("else:", stmt.orelse[0], one_line=True)
                self.statements(stmt.orelse)
        elif isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
            self.text("try:", stmt, one_line=True)
            self.statements(stmt.body)
            for handler in stmt.handlers:
                self.text("except " + (ast.unparse(handler.type) if handler.type else "") + ":", handler,
                          one_line=True)
                self.statements(handler.body)
            if stmt.orelse:
                self.text("else:", stmt.orelse[0], one_line=True)
                self.statements(stmt.orelse)
            if stmt.finalbody:
                self.text("finally:", stmt.finalbody[0], one_line=True)
                self.statements(stmt.finalbody)
        elif isinstance(stmt, ast.Assign):
            self.text(" = ".join(ast.unparse(t) for t in stmt.targets) + " =", stmt, one_line=True)
            self.expr(stmt.value)
        elif isinstance(stmt, ast.Expr):
            self.expr(stmt.value)
        elif isinstance(stmt, ast.Return) and stmt.value is not None:
            self.text("return", stmt, one_line=True)
            self.expr(stmt.value)
        else:
            self.text(ast.unparse(stmt), stmt)


def tree_tokens(tree: ast.Module, vocab: Vocabulary) -> Tokens:
    # New nodes carry their call's location where the emitter reads one (statements,
    # the arguments of a call over several lines); a full fix_missing_locations pass costs more.
    tree = AcceptedForms().visit(tree)
    emitter = _Emitter(vocab)
    emitter.statements(tree.body)
    return emitter.out


def code_tokens(source: str, vocab: Vocabulary) -> Tokens:
    """The normalised tokens of ``source``: rewritten on the tree when it parses,
    as text otherwise (a syntax error, or a file too deeply nested to handle)."""
    try:
        tree = ast.parse(source)
        return tree_tokens(tree, vocab)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return text_tokens(source, vocab)


def analyse(source: str, vocab: Vocabulary) -> tuple[Tokens | None, Tokens, list[tuple[int, str]]]:
    """(tokens from the tree or None when it does not parse, tokens as text, comments)."""
    found_comments: list[tuple[int, str]] = []
    as_text = text_tokens(source, vocab, found_comments)
    try:
        as_tree = tree_tokens(ast.parse(source), vocab)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        as_tree = None
    return as_tree, as_text, found_comments
