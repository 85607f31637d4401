"""The parser: text/template/parse/parse.go, from tokens to the tree of :mod:`.nodes`.

:func:`parse` is the way in: it also refuses, when the template is read, what
a render would refuse (``define``, ``template``, ``block``, method calls,
unsupported functions and printf verbs, a variable declared in parentheses),
so an unsupported template never becomes a silently wrong prompt.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any, NoReturn

from engine.errors import TemplateError
from engine.templates.go.fmt import printf_check
from engine.templates.go.funcs import BUILTINS, OLLAMA_FUNCS, UNSUPPORTED_FUNCS
from engine.templates.go.lex import MAX_NESTING, Lexer, Token, line_column
from engine.templates.go.nodes import (
    ActionNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ConstNode,
    ContinueNode,
    DotNode,
    FieldNode,
    IdentNode,
    ListNode,
    NilNode,
    PipeNode,
    TextNode,
    VariableNode,
)


def parse(source: str) -> ListNode:
    """The checked tree of ``source``, as written (Ollama normalises CRLF only in its own library).

    Raises :class:`TemplateError` for a template Go would not parse or that uses a
    construct llamadeck does not render.
    """
    tree = _Parser(source).parse()
    _check(tree)
    _check_decls(tree)
    return tree


# methods of the values Ollama passes: calling one is a method call, which llamadeck refuses
_METHODS = frozenset({"String", "ToTypeScriptType", "MarshalJSON", "UnmarshalJSON"})
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _unquote(text: str, fail: Callable[[str], NoReturn]) -> str:
    """``strconv.Unquote`` for a Go string or character literal (raw strings drop ``\\r``)."""
    if text[0] == "`":
        return text[1:-1].replace("\r", "")
    quote = text[0]
    body = text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == quote:
            fail(f"invalid syntax in {text}")
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        e = body[i + 1 : i + 2]
        i += 2
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
        elif e == quote:
            out.append(e)
        elif e in ("x", "u", "U") or e in "01234567":
            width = {"x": 2, "u": 4, "U": 8}.get(e, 2)
            digits = body[i : i + width] if e in "xuU" else e + body[i : i + 2]
            base = 8 if e not in "xuU" else 16
            try:
                value = int(digits, base)
            except ValueError:
                fail(f"invalid escape in {text}")
            if len(digits) != (width if e in "xuU" else 3) or value > 0x10FFFF:
                fail(f"invalid escape in {text}")
            i += width if e in "xuU" else 2
            if e in "x01234567" and value > 0x7F:
                fail(
                    f"byte escape \\{digits if e in '01234567' else 'x' + digits} is not supported in {text}"
                )
            out.append(chr(value))
        else:
            fail(f"invalid escape \\{e} in {text}")
    result = "".join(out)
    if quote == "'" and len(result) != 1:
        fail(f"malformed character constant: {text}")
    return result


def _number(text: str, fail: Callable[[str], NoReturn]) -> int | float:
    """A number literal as text/template's idealConstant makes it: int, or float64 with ``.eE``."""
    if text.endswith("i"):
        fail(f"complex number {text} is not supported")
    sign = -1 if text.startswith("-") else 1
    body = text[1:] if text[:1] in ("+", "-") else text
    low = body.lower()
    try:
        if low.startswith(("0x", "0o", "0b")):
            if "." in low or "p" in low:
                fail(f"hexadecimal float {text} is not supported")
            value: int | float = sign * int(body.replace("_", ""), 0)
        elif any(c in body for c in ".eE"):
            value = float(sign * float(body.replace("_", "")))
        elif len(body) > 1 and body.startswith("0"):
            value = sign * int(body.replace("_", ""), 8)
        else:
            value = sign * int(body.replace("_", ""), 10)
    except ValueError:
        fail(f"bad number syntax: {text!r}")
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        fail(f"{text} overflows int")
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        fail(f"illegal number syntax: {text!r}")
    return value


class _Parser:
    def __init__(self, src: str):
        self.src = src
        self.tokens = Lexer(src).run()
        self.newlines = [i for i, ch in enumerate(src) if ch == "\n"]
        self.i = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.depth = 0

    # -- tokens
    def next(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next_non_space(self) -> Token:
        t = self.next()
        while t.typ == "space":
            t = self.next()
        return t

    def peek_non_space(self) -> Token:
        t = self.next_non_space()
        self.i -= 1
        return t

    def fail(self, msg: str, tok: Token | None = None) -> NoReturn:
        pos = (tok or self.tokens[max(self.i - 1, 0)]).pos
        raise TemplateError(f"Go template {line_column(self.src, pos)}: {msg}")

    def unsupported(self, what: str, tok: Token) -> NoReturn:
        self.fail(f"{what} is not supported by llamadeck's Go templates", tok)

    def line(self, tok: Token) -> int:
        return bisect.bisect_right(self.newlines, tok.pos) + 1

    # -- structure
    def parse(self) -> ListNode:
        nodes: list[Any] = []
        while self.peek().typ != "eof":
            n, tok = self.text_or_action()
            if n in ("end", "else"):
                self.fail(f"unexpected {{{{{n}}}}}", tok)
            nodes.append(n)
        return ListNode(tuple(nodes))

    def item_list(self) -> tuple[ListNode, str, Token]:
        nodes: list[Any] = []
        while self.peek_non_space().typ != "eof":
            n, tok = self.text_or_action()
            if n in ("end", "else"):
                return ListNode(tuple(nodes)), n, tok
            nodes.append(n)
        self.fail("unexpected EOF")

    def text_or_action(self) -> tuple[Any, Token]:
        tok = self.next_non_space()
        if tok.typ == "text":
            return TextNode(tok.val), tok
        if tok.typ == "left":
            return self.action(), tok
        self.fail(f"unexpected {tok.val!r} in input", tok)

    def action(self) -> Any:
        tok = self.next_non_space()
        typ = tok.typ
        if typ in ("block", "define", "template"):
            self.unsupported(f"{{{{{typ}}}}}", tok)
        if typ in ("break", "continue"):
            if self.range_depth == 0:
                self.fail(f"{{{{{typ}}}}} outside {{{{range}}}}", tok)
            self.expect("right", typ)
            return BreakNode() if typ == "break" else ContinueNode()
        if typ == "else":
            if self.peek_non_space().typ == "if":
                return "else"
            self.expect("right", "else")
            return "else"
        if typ == "end":
            self.expect("right", "end")
            return "end"
        if typ in ("if", "range", "with"):
            return self.control(typ, tok)
        self.i -= 1
        return ActionNode(self.pipeline("command", "right"), self.line(tok))

    def expect(self, typ: str, context: str) -> Token:
        tok = self.next_non_space()
        if tok.typ != typ:
            self.fail(f"unexpected {tok.val!r} in {context}", tok)
        return tok

    def control(self, kind: str, tok: Token) -> BranchNode:
        self.depth += 1
        if self.depth > MAX_NESTING:
            self.fail("blocks nested too deep", tok)
        mark = len(self.vars)
        pipe = self.pipeline(kind, "right")
        if kind == "range" and pipe.is_assign:
            self.unsupported("assigning in a range ({{ range $x = ... }})", tok)
        if kind == "range":
            self.range_depth += 1
        body, nxt, end_tok = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        else_list = None
        if nxt == "else":
            if kind == "if" and self.peek_non_space().typ == "if":
                if_tok = self.next_non_space()
                else_list = ListNode((self.control("if", if_tok),))
            else:
                else_list, nxt, end_tok = self.item_list()
                if nxt != "end":
                    self.fail("expected end; found {{else}}", end_tok)
        del self.vars[mark:]
        self.depth -= 1
        return BranchNode(kind, pipe, body, else_list, self.line(tok))

    def pipeline(self, context: str, end: str) -> PipeNode:
        decls: list[str] = []
        is_assign = False
        while True:  # declarations
            save = self.i
            v = self.peek_non_space()
            if v.typ != "variable":
                break
            self.next_non_space()
            nxt = self.peek_non_space()
            if nxt.typ in ("assign", "declare"):
                is_assign = nxt.typ == "assign"
                self.next_non_space()
                decls.append(v.val)
                self.vars.append(v.val)
                break
            if nxt.typ == "char" and nxt.val == ",":
                self.next_non_space()
                decls.append(v.val)
                self.vars.append(v.val)
                if context == "range" and len(decls) < 2:
                    if self.peek_non_space().typ in ("variable", "right", "rparen"):
                        continue
                    self.fail("range can only initialize variables", nxt)
                self.fail(f"too many declarations in {context}", nxt)
            self.i = save  # the variable is an operand, not a declaration
            break
        cmds: list[CommandNode] = []
        while True:
            tok = self.next_non_space()
            if tok.typ == end:
                if not cmds:
                    self.fail(f"missing value for {context}", tok)
                for n, c in enumerate(cmds[1:], start=1):
                    if isinstance(c.args[0], ConstNode | DotNode | NilNode):
                        self.fail(f"non executable command in pipeline stage {n + 1}", tok)
                return PipeNode(tuple(decls), is_assign, tuple(cmds))
            if tok.typ in (
                "bool",
                "charconst",
                "dot",
                "field",
                "identifier",
                "number",
                "nil",
                "rawstring",
                "string",
                "variable",
                "lparen",
            ):
                self.i -= 1
                cmds.append(self.command())
            else:
                self.fail(f"unexpected {tok.val!r} in {context}", tok)

    def command(self) -> CommandNode:
        args: list[Any] = []
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                args.append(operand)
            tok = self.next()
            if tok.typ == "space":
                continue
            if tok.typ in ("right", "rparen"):
                self.i -= 1
            elif tok.typ != "pipe":
                self.fail(f"unexpected {tok.val!r} in operand", tok)
            break
        if not args:
            self.fail("empty command")
        if isinstance(args[0], NilNode):
            self.fail("nil is not a command")
        return CommandNode(tuple(args))

    def operand(self) -> Any:
        node = self.term()
        if node is None or self.peek().typ != "field":
            return node
        fields: list[str] = []
        while self.peek().typ == "field":
            fields.append(self.next().val[1:])
        if isinstance(node, FieldNode):
            return FieldNode(node.idents + tuple(fields))
        if isinstance(node, VariableNode):
            return VariableNode(node.idents + tuple(fields))
        if isinstance(node, ConstNode | NilNode | DotNode):
            self.fail("unexpected . after term")
        return ChainNode(node, tuple(fields))

    def term(self) -> Any:
        tok = self.next_non_space()
        typ = tok.typ
        if typ == "identifier":
            if tok.val in UNSUPPORTED_FUNCS:
                self.unsupported(f"function {tok.val!r}", tok)
            if tok.val not in BUILTINS and tok.val not in OLLAMA_FUNCS:
                self.fail(f"function {tok.val!r} not defined", tok)
            return IdentNode(tok.val)
        if typ == "dot":
            return DotNode()
        if typ == "nil":
            return NilNode()
        if typ == "variable":
            name, *rest = tok.val.split(".")
            if name not in self.vars:
                self.fail(f"undefined variable {name!r}", tok)
            return VariableNode((name, *rest))
        if typ == "field":
            name = tok.val[1:]
            if name in _METHODS:
                self.unsupported(f"calling the method .{name}", tok)
            return FieldNode((name,))
        if typ == "bool":
            return ConstNode(tok.val == "true")
        if typ == "number":
            return ConstNode(_number(tok.val, lambda m: self.fail(m, tok)))
        if typ == "charconst":
            return ConstNode(ord(_unquote(tok.val, lambda m: self.fail(m, tok))))
        if typ in ("string", "rawstring"):
            return ConstNode(_unquote(tok.val, lambda m: self.fail(m, tok)))
        if typ == "lparen":
            self.depth += 1
            if self.depth > MAX_NESTING:
                self.fail("parentheses nested too deep", tok)
            pipe = self.pipeline("parenthesized pipeline", "rparen")
            self.depth -= 1
            return pipe
        self.i -= 1
        return None


def _check(node: Any) -> None:
    """Refuse at parse time what a render would refuse: printf formats llamadeck cannot print."""
    if isinstance(node, ListNode):
        for n in node.nodes:
            _check(n)
    elif isinstance(node, BranchNode):
        _check(node.pipe)
        _check(node.list)
        if node.else_list is not None:
            _check(node.else_list)
    elif isinstance(node, ActionNode):
        _check(node.pipe)
    elif isinstance(node, PipeNode):
        for c in node.cmds:
            fmt = c.args[1] if len(c.args) > 1 and c.args[0] == IdentNode("printf") else None
            if isinstance(fmt, ConstNode) and isinstance(fmt.value, str):
                printf_check(fmt.value)
            for a in c.args:
                _check(a)
    elif isinstance(node, ChainNode):
        _check(node.node)
    elif isinstance(node, FieldNode | VariableNode):
        for name in node.idents[1:] if isinstance(node, VariableNode) else node.idents:
            if name in _METHODS:
                raise TemplateError(f"Go template: calling the method .{name} is not supported")


def _check_decls(node: Any) -> None:
    """Refuse a declaration inside parentheses: Go keeps it alive past the parenthesis."""
    if isinstance(node, ListNode):
        for n in node.nodes:
            _check_decls(n)
    elif isinstance(node, BranchNode):
        for part in (node.pipe, node.list, node.else_list):
            if part is not None:
                _check_decls(part)
    elif isinstance(node, ActionNode):
        _check_decls(node.pipe)
    elif isinstance(node, PipeNode):
        for c in node.cmds:
            for a in c.args:
                if isinstance(a, PipeNode):
                    if a.decls:
                        raise TemplateError(
                            "Go template: a variable declared inside parentheses is not supported"
                        )
                    _check_decls(a)
                elif isinstance(a, ChainNode) and isinstance(a.node, PipeNode):
                    _check_decls(PipeNode((), False, (CommandNode((a.node,)),)))
