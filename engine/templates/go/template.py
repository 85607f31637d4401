"""An Ollama Go template, parsed once and rendered as Ollama's ``Template.Execute`` renders it.

* a template that reads ``.Messages`` sees the whole conversation at once:
  ``.System`` (every system message, joined by a blank line), ``.Messages``
  (consecutive turns of one role merged, tool results kept apart), ``.Tools``;
* any other (legacy) template runs once per user turn with ``.System``,
  ``.Prompt`` and ``.Response``, and the last turn stops where ``.Response``
  would be printed, so that the model writes it.

The values a template sees have Go's types (:mod:`.ollama`) and print as Go
prints them (:mod:`.fmt`). Only what Ollama's library uses is supported; the
rest (``define``, ``template``, ``block``, method calls, ``call``, ``js``,
``urlquery``, complex numbers, printf verbs other than ``%s %d %v %q``) is a
:class:`TemplateError` when the template is read, never a silently wrong
prompt. A render is bounded in steps, output, value sizes and work, all turns
of a legacy template together (:mod:`.budget`)::

    GoTemplate.parse("{{ range .Messages }}<|{{ .Role }}|>{{ .Content }}{{ end }}<|assistant|>")
        .render([Message("user", "Hi")])        # '<|user|>Hi<|assistant|>'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import TemplateError
from engine.templates.go.budget import Budget
from engine.templates.go.exec import execute
from engine.templates.go.nodes import (
    ActionNode,
    BranchNode,
    CommandNode,
    FieldNode,
    ListNode,
    PipeNode,
    VariableNode,
)
from engine.templates.go.ollama import collate, template_message, template_tools
from engine.templates.go.parse import parse
from engine.templates.go.values import GoSlice
from engine.templates.message import Message

if TYPE_CHECKING:
    from engine.templates.thinking import ThinkSetting

__all__ = ["GoTemplate"]

_NO_THINK: dict[str, Any] = {"Think": False, "ThinkLevel": "", "IsThinkSet": False}

# ---------------------------------------------------------------------------------------------
# Ollama's view of the tree: Vars (which names a template reads) and the cut after .Response


def _identifiers(node: Any) -> list[str]:
    """template.Identifiers: the names of fields and variables, as Ollama's Vars collects them."""
    if isinstance(node, ListNode):
        return [name for n in node.nodes for name in _identifiers(n)]
    if isinstance(node, ActionNode):
        return _identifiers(node.pipe)
    if isinstance(node, BranchNode):
        names = _identifiers(node.pipe) + _identifiers(node.list)
        return names + (_identifiers(node.else_list) if node.else_list is not None else [])
    if isinstance(node, PipeNode):
        return [name for c in node.cmds for a in c.args for name in _identifiers(a)]
    if isinstance(node, FieldNode | VariableNode):
        return list(node.idents)
    return []


_RESPONSE = ActionNode(PipeNode((), False, (CommandNode((FieldNode(("Response",)),)),)), 0)


def _cut_after_response(root: ListNode) -> ListNode:
    """Ollama's deleteNode: keep the tree up to the first ``.Response`` field, drop what follows."""
    cut = False

    def fn(n: Any) -> bool:
        nonlocal cut
        if isinstance(n, FieldNode) and "Response" in n.idents:
            cut = True
            return False
        return cut

    def walk(n: Any) -> Any:
        if fn(n):
            return None
        if isinstance(n, ListNode):
            return ListNode(tuple(w for w in (walk(c) for c in n.nodes) if w is not None))
        if isinstance(n, BranchNode):
            body = walk(n.list)
            else_list = n.else_list
            if else_list is not None:
                if fn(else_list):  # Ollama panics here: its walk returns nil for a ListNode
                    raise TemplateError(
                        f"Go template line {n.line}: .Response inside an {{{{{n.kind}}}}} that has an "
                        "{{else}} cannot be cut for the last turn (Ollama fails on it too)"
                    )
                else_list = walk(else_list)
            return BranchNode(n.kind, n.pipe, body, else_list, n.line)
        if isinstance(n, ActionNode):
            pipe = walk(n.pipe)
            return None if pipe is None else ActionNode(pipe, n.line)
        if isinstance(n, PipeNode):
            cmds = []
            for c in n.cmds:
                args = tuple(w for w in (walk(a) for a in c.args) if w is not None)
                if not args:
                    return None
                cmds.append(CommandNode(args))
            return PipeNode(n.decls, n.is_assign, tuple(cmds))
        return n

    result = walk(root)
    assert isinstance(result, ListNode)
    return result


# ---------------------------------------------------------------------------------------------
# The template


@dataclass(frozen=True)
class GoTemplate:
    """An Ollama Go template, parsed once; :meth:`render` runs Ollama's ``Template.Execute``.

    Constructing one parses ``source`` and raises :class:`TemplateError` for a
    template Go would not parse or that uses a construct llamadeck does not
    render; :meth:`execute` is plain ``text/template`` on any data (with
    ``missingkey=zero`` and Ollama's functions), for tests and tools::

        GoTemplate("{{ .Prompt }}").execute({"Prompt": "Hi"})   # 'Hi'
    """

    source: str
    kind: str = "go"
    tree: ListNode = field(init=False, repr=False, compare=False)
    vars: frozenset[str] = field(init=False, repr=False, compare=False)
    """Ollama's ``Template.Vars``: the lower-cased names of the fields and variables it reads."""

    def __post_init__(self) -> None:
        tree = parse(self.source)
        object.__setattr__(self, "tree", tree)
        object.__setattr__(self, "vars", frozenset(name.lower() for name in _identifiers(tree)))

    @classmethod
    def parse(cls, source: str) -> GoTemplate:
        """The template for ``source``; the same as ``GoTemplate(source)``."""
        return cls(source)

    @property
    def reads_messages(self) -> bool:
        """Whether Ollama hands this template the whole conversation (it reads ``.Messages``)."""
        return "messages" in self.vars

    def execute(self, data: Any) -> str:
        """Plain ``text/template`` Execute of the template on ``data``; ``$`` and ``.`` are ``data``."""
        return execute(self.tree, data, ollama_funcs=True, missing_zero=True)

    @property
    def reads_suffix(self) -> bool:
        """Whether the template fills in the middle (it reads ``.Suffix``): Ollama's ``insert`` capability."""
        return "suffix" in self.vars

    def render_insert(self, prompt: str, suffix: str, *, think: ThinkSetting | None = None) -> str:
        """The fill-in-the-middle prompt: Ollama runs the template on ``.Prompt`` and ``.Suffix`` alone."""
        thinking = _NO_THINK if think is None else think.go_values()
        data = {"Prompt": prompt, "Suffix": suffix, "Response": "", **thinking}
        return execute(self.tree, data, ollama_funcs=True, missing_zero=True)

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        think: ThinkSetting | None = None,
    ) -> str:
        """The prompt Ollama's ``Template.Execute`` builds for ``messages`` and ``tools``.

        Ollama's templates always end with the assistant's header, so
        ``add_generation_prompt`` changes nothing: a trailing assistant message
        is continued (``.Response`` cut) in a legacy template and printed whole
        in a ``.Messages`` one, as Ollama does.
        """
        thinking = _NO_THINK if think is None else think.go_values()
        system, collated = collate(messages)
        tree = self.tree
        if not self.reads_messages and "response" not in self.vars:
            tree = ListNode((*tree.nodes, _RESPONSE))  # Ollama's Parse appends {{ .Response }}
        if self.reads_messages:
            data = {
                "System": system,
                "Messages": GoSlice(
                    [template_message(m, f"messages[{i}]") for i, m in enumerate(collated)],
                    type_name="[]*template.templateMessage",
                    nil=not collated,
                ),
                "Tools": template_tools(tools),
                "Response": "",
                **thinking,
            }
            return execute(tree, data, ollama_funcs=True, missing_zero=True)
        return self._legacy(tree, collated, thinking)

    def _legacy(self, tree: ListNode, messages: Sequence[Message], thinking: Mapping[str, Any]) -> str:
        out: list[str] = []
        turn = {"System": "", "Prompt": "", "Response": ""}
        budget = Budget()  # one for every turn: each turn within the limits is not enough

        def data() -> dict[str, Any]:
            return {**turn, **thinking}

        def flush() -> None:  # one turn is complete: render it
            out.append(execute(tree, data(), ollama_funcs=True, missing_zero=True, budget=budget))
            turn.update(System="", Prompt="", Response="")

        for m in messages:
            if m.role == "system":
                if turn["Prompt"] or turn["Response"]:
                    flush()
                turn["System"] = m.content
            elif m.role == "user":
                if turn["Response"]:
                    flush()
                turn["Prompt"] = m.content
            elif m.role == "assistant":
                turn["Response"] = m.content
        last = _cut_after_response(tree)
        out.append(execute(last, data(), ollama_funcs=False, missing_zero=False, budget=budget))
        return "".join(out)
