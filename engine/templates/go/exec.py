"""The executor: text/template/exec.go, walking a parsed tree over data into text.

:func:`execute` runs a tree with ``$`` and ``.`` set to the data, spending
the render's :class:`~engine.templates.go.budget.Budget`: every node, command
and loop turn is a step, every write is output, every function call pays for
what it reads and builds, every range for the items it copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.errors import TemplateError
from engine.templates.go.budget import Budget
from engine.templates.go.fmt import print_value
from engine.templates.go.funcs import call
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
from engine.templates.go.values import (
    MISSING,
    NIL_POINTER,
    GoMap,
    GoStruct,
    OrderedProperties,
    describe,
    truth,
)


class _BreakSignal(Exception):
    pass


class _ContinueSignal(Exception):
    pass


_NO_FINAL = object()  # exec.go's missingVal: no value piped into a command


@dataclass
class _State:
    ollama_funcs: bool  # Ollama's FuncMap is there (not in the cut tree of the last legacy turn)
    missing_zero: bool  # missingkey=zero (not in the cut tree either)
    budget: Budget
    out: list[str] = field(default_factory=list)
    vars: list[tuple[str, Any]] = field(default_factory=list)

    def step(self) -> None:
        self.budget.step()

    def write(self, s: str) -> None:
        self.budget.write(len(s))
        self.out.append(s)

    def var(self, name: str) -> Any:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        raise TemplateError(f"Go template: undefined variable {name}")  # pragma: no cover

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise TemplateError(f"Go template: undefined variable {name}")  # pragma: no cover

    # -- walking
    def walk(self, dot: Any, node: Any) -> None:
        self.step()
        if isinstance(node, TextNode):
            self.write(node.text)
        elif isinstance(node, ListNode):
            for n in node.nodes:
                self.walk(dot, n)
        elif isinstance(node, ActionNode):
            value = self.pipeline(dot, node.pipe)
            if not node.pipe.decls:
                self.write(print_value(value))
        elif isinstance(node, BranchNode):
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        elif isinstance(node, BreakNode):
            raise _BreakSignal
        elif isinstance(node, ContinueNode):
            raise _ContinueSignal
        else:  # pragma: no cover
            raise TemplateError(f"Go template: unknown node {node!r}")

    def walk_if_or_with(self, dot: Any, node: BranchNode) -> None:
        mark = len(self.vars)
        value = self.pipeline(dot, node.pipe)
        if truth(value):
            self.walk(value if node.kind == "with" else dot, node.list)
        elif node.else_list is not None:
            self.walk(dot, node.else_list)
        del self.vars[mark:]

    def walk_range(self, dot: Any, node: BranchNode) -> None:
        outer = len(self.vars)
        value = self.pipeline(dot, node.pipe)
        if isinstance(value, GoStruct) and value.pointer:
            raise TemplateError(f"Go template line {node.line}: range can't iterate over {value.type_name}")
        items: list[tuple[Any, Any]]
        if isinstance(value, OrderedProperties):
            raise TemplateError(
                f"Go template line {node.line}: range can't iterate over a property's properties"
            )
        if isinstance(value, list | tuple | bytes):
            items = list(enumerate(value))
        elif isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value)]
        elif value is MISSING or value is None:
            items = []
        else:
            raise TemplateError(
                f"Go template line {node.line}: range can't iterate over {print_value(value)}"
            )
        self.budget.spend(len(items))  # copied before the first turn, even if the body breaks at once
        mark = len(self.vars)
        decls = len(node.pipe.decls)
        try:
            for key, elem in items:
                self.step()
                if decls > 0:
                    self.vars[mark - 1] = (self.vars[mark - 1][0], elem)
                if decls > 1:
                    self.vars[mark - 2] = (self.vars[mark - 2][0], key)
                try:
                    self.walk(elem, node.list)
                except _ContinueSignal:
                    pass
                finally:
                    del self.vars[mark:]
        except _BreakSignal:
            pass
        else:
            if not items and node.else_list is not None:
                self.walk(dot, node.else_list)
        del self.vars[outer:]

    # -- evaluation
    def pipeline(self, dot: Any, pipe: PipeNode) -> Any:
        value: Any = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, value)
            if value is None:  # an interface{} holding nil: exec.go digs into it
                value = MISSING
        for name in pipe.decls:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.vars.append((name, value))
        return value

    def command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        self.step()
        first = cmd.args[0]
        has_args = len(cmd.args) > 1 or final is not _NO_FINAL
        if isinstance(first, IdentNode):
            args = [self.arg(dot, a) for a in cmd.args[1:]] if first.name not in ("and", "or") else None
            if args is None:
                return self.and_or(dot, first.name, cmd.args[1:], final)
            if final is not _NO_FINAL:
                args.append(final)
            self.budget.before_call(first.name, args)
            result = call(first.name, args, self.ollama_funcs)
            return result if first.name == "index" else self.budget.built(result)  # index copies nothing
        if has_args:
            raise TemplateError("Go template: can't give argument to non-function")
        if isinstance(first, FieldNode):
            return self.field_chain(dot, first.idents)
        if isinstance(first, VariableNode):
            return self.variable(first)
        if isinstance(first, ChainNode):
            return self.chain(dot, first)
        if isinstance(first, PipeNode):
            return self.pipeline(dot, first)
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, ConstNode):
            return first.value
        raise TemplateError("Go template: nil is not a command")  # pragma: no cover

    def and_or(self, dot: Any, name: str, args: Sequence[Any], final: Any) -> Any:
        if not args and final is _NO_FINAL:
            raise TemplateError(f"Go template: wrong number of args for {name}: want at least 1 got 0")
        value: Any = MISSING
        for a in args:
            value = self.arg(dot, a)
            if truth(value) == (name == "or"):
                return value
        if final is not _NO_FINAL:
            value = final
        return value

    def arg(self, dot: Any, node: Any) -> Any:
        self.step()
        if isinstance(node, DotNode):
            return dot
        if isinstance(node, NilNode):
            return None
        if isinstance(node, FieldNode):
            return self.field_chain(dot, node.idents)
        if isinstance(node, VariableNode):
            return self.variable(node)
        if isinstance(node, PipeNode):
            value = self.pipeline(dot, node)
            mark = len(self.vars) - len(node.decls)
            del self.vars[mark:]  # a parenthesised declaration lives on in Go; see _check_decls
            return value
        if isinstance(node, IdentNode):
            return self.command(dot, CommandNode((node,)), _NO_FINAL)
        if isinstance(node, ChainNode):
            return self.chain(dot, node)
        if isinstance(node, ConstNode):
            return node.value
        raise TemplateError(f"Go template: unexpected argument {node!r}")  # pragma: no cover

    def variable(self, node: VariableNode) -> Any:
        value = self.var(node.idents[0])
        if len(node.idents) == 1:
            return value
        return self.field_chain(value, node.idents[1:])

    def chain(self, dot: Any, node: ChainNode) -> Any:
        base = self.arg(dot, node.node)
        if base is None:
            base = MISSING
        return self.field_chain(base, node.fields)

    def field_chain(self, receiver: Any, names: Sequence[str]) -> Any:
        for name in names:
            receiver = self.field(receiver, name)
        return receiver

    def field(self, receiver: Any, name: str) -> Any:
        if receiver is MISSING:
            return MISSING
        if receiver is None:
            raise TemplateError(f"Go template: nil pointer evaluating interface {{}}.{name}")
        if receiver is NIL_POINTER:
            raise TemplateError(f"Go template: nil pointer evaluating .{name}")
        if isinstance(receiver, GoStruct):
            if name in receiver.methods or (receiver.stringer and name == "String"):
                raise TemplateError(f"Go template: calling the method .{name} is not supported")
            if name in receiver.fields:
                return receiver.fields[name]
            raise TemplateError(f"Go template: can't evaluate field {name} in type {receiver.type_name}")
        if isinstance(receiver, dict) and not isinstance(receiver, OrderedProperties):
            if isinstance(receiver, GoMap) and receiver.stringer and name == "String":
                raise TemplateError(f"Go template: calling the method .{name} is not supported")
            if name in receiver:
                return receiver[name]
            if isinstance(receiver, GoMap):
                return receiver.zero()
            return None if self.missing_zero else MISSING
        raise TemplateError(f"Go template: can't evaluate field {name} in type {describe(receiver)}")


def execute(
    tree: ListNode, data: Any, *, ollama_funcs: bool, missing_zero: bool, budget: Budget | None = None
) -> str:
    """``tree`` run over ``data``; ``ollama_funcs`` and ``missing_zero`` as Ollama sets them up.

    ``budget`` is the render's, when it runs the tree more than once (a legacy template, turn by
    turn); a fresh one otherwise.
    """
    state = _State(ollama_funcs, missing_zero, budget if budget is not None else Budget())
    state.vars.append(("$", data))
    try:
        state.walk(data, tree)
    except RecursionError:
        raise TemplateError("the Go template nests too deep to render") from None
    return "".join(state.out)
