"""The parse tree: text/template/parse's node types, for the subset llamadeck supports.

Immutable, so one parsed template serves every render. ``BranchNode`` stands for
Go's ``IfNode``, ``RangeNode`` and ``WithNode``; ``ConstNode`` for its bool,
number and string nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TextNode:
    text: str


@dataclass(frozen=True)
class FieldNode:
    idents: tuple[str, ...]


@dataclass(frozen=True)
class VariableNode:
    idents: tuple[str, ...]  # the variable's name ("$", "$x") then fields


@dataclass(frozen=True)
class ChainNode:
    node: Any
    fields: tuple[str, ...]


@dataclass(frozen=True)
class DotNode:
    pass


@dataclass(frozen=True)
class NilNode:
    pass


@dataclass(frozen=True)
class ConstNode:
    value: Any  # bool, int, float or str


@dataclass(frozen=True)
class IdentNode:
    name: str


@dataclass(frozen=True)
class CommandNode:
    args: tuple[Any, ...]


@dataclass(frozen=True)
class PipeNode:
    decls: tuple[str, ...]
    is_assign: bool
    cmds: tuple[CommandNode, ...]


@dataclass(frozen=True)
class ActionNode:
    pipe: PipeNode
    line: int


@dataclass(frozen=True)
class ListNode:
    nodes: tuple[Any, ...]


@dataclass(frozen=True)
class BranchNode:
    kind: str  # "if", "range" or "with"
    pipe: PipeNode
    list: ListNode
    else_list: ListNode | None
    line: int


@dataclass(frozen=True)
class BreakNode:
    pass


@dataclass(frozen=True)
class ContinueNode:
    pass
