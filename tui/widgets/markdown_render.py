"""Markdown blocks drawn by Rich in the app theme's colours, each parsed and highlighted once per width.

``Look`` turns the theme's variables into Rich styles; ``RenderedBlock`` keeps
the lines it rendered so later layout passes replay them; ``warm_highlighting``
loads the lexers off the UI thread before a reply needs them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions
    from rich.segment import Segment
    from rich.theme import Theme
    from textual.app import App

WARM_LANGUAGES = (
    "python",
    "javascript",
    "typescript",
    "rust",
    "go",
    "c",
    "cpp",
    "java",
    "bash",
    "json",
    "yaml",
    "toml",
)


def warm_highlighting() -> None:
    """Load Markdown and the common lexers off the UI thread: a reply's first fence then stalls no frame."""
    import io

    from rich.console import Console
    from rich.markdown import Markdown as RichMarkdown

    console = Console(file=io.StringIO(), width=80)
    for language in WARM_LANGUAGES:
        console.print(
            RichMarkdown(f"# x\n\n- a\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```{language}\nx = 1\n```\n")
        )


@dataclass(frozen=True)
class Look:
    """How Markdown is drawn under one app theme: Rich styles from the theme's variables, a code theme."""

    name: str
    dark: bool
    styles: Theme

    @classmethod
    def default(cls) -> Look:
        return cls.of("", True, {})

    @classmethod
    def of(cls, name: str, dark: bool, variables: dict[str, str]) -> Look:
        from rich.color import Color, ColorParseError
        from rich.errors import StyleSyntaxError
        from rich.style import Style
        from rich.theme import Theme

        def color(var: str) -> Color | None:
            try:  # a theme variable such as "#0178D4"; "auto 60%" and the like are left to the default
                return Color.parse(variables[var][:7])
            except (KeyError, ColorParseError):
                return None

        styles = {
            "markdown.code": Style(bold=True, color=color("text-accent")),
            "markdown.link": Style(color=color("text-primary"), underline=True),
            "markdown.link_url": Style(color=color("text-primary"), underline=True),
            "markdown.item.bullet": Style(bold=True, color=color("text-accent")),
            "markdown.item.number": Style(bold=True, color=color("text-accent")),
            "markdown.table.border": Style(color=color("primary")),
            "markdown.table.header": Style(bold=True, color=color("text-primary")),
            "markdown.block_quote": Style(italic=True, color=color("text-secondary")),
            "markdown.hr": Style(color=color("primary")),
        }
        for level in range(1, 7):
            heading = Style(color=color(f"markdown-h{level}-color"))
            with contextlib.suppress(StyleSyntaxError):  # an odd text-style in a user's theme: colour alone
                heading = Style.parse(variables.get(f"markdown-h{level}-text-style", "bold")) + heading
            styles[f"markdown.h{level}"] = heading
        styles["markdown.h1.border"] = Style(color=color("markdown-h1-color"))
        return cls(name, dark, Theme(styles, inherit=True))


_LOOKS: dict[str, Look] = {}


def app_look(app: App[object]) -> Look:
    """The Look of the app's current theme, made once per theme name (a frame asks for it)."""
    look = _LOOKS.get(app.theme)
    if look is None:
        theme = app.current_theme
        look = _LOOKS[app.theme] = Look.of(theme.name, theme.dark, app.theme_variables)

    return look


def forget_look(theme: str) -> None:
    """Make the Look of ``theme`` again on next use (its file may have been edited and registered again)."""
    _LOOKS.pop(theme, None)


class RenderedBlock:
    """One Markdown block as a Rich renderable, rendered (parsed, highlighted) once per width.

    Textual renders a renderable twice (to measure, then to paint) and a chunk
    is re-laid out when a block joins it: those passes replay the lines of the
    first. ``renders`` counts the real renders, so tests can check that
    streaming never re-renders a finished block.
    """

    def __init__(self, source: str, look: Look, *, continues: bool = False, joins_next: bool = False) -> None:
        self.source = source
        self.look = look
        self.continues = continues or getattr(source, "continues", False)
        self.joins_next = joins_next or getattr(source, "joins_next", False)
        self.renders = 0
        self._width = -1
        self._lines: list[list[Segment]] = []

    def lines(self, console: Console, options: ConsoleOptions) -> list[list[Segment]]:
        if options.max_width != self._width:
            from rich.markdown import Markdown as RichMarkdown

            code_theme = "monokai" if self.look.dark else "default"
            markdown = RichMarkdown(self.source, code_theme=code_theme, hyperlinks=True)
            with console.use_theme(self.look.styles):
                lines = console.render_lines(markdown, options.update(height=None), pad=False)
            lines = _trim(lines)
            # the pieces of a long fence: one code box, without the padding lines where they meet
            self._lines = lines[int(self.continues) : len(lines) - int(self.joins_next)]
            self._width = options.max_width
            self.renders += 1
        return self._lines


def _trim(lines: list[list[Segment]]) -> list[list[Segment]]:
    """Without blank lines at the top and the bottom (a chunk puts one blank line between blocks)."""

    def blank(line: list[Segment]) -> bool:
        return all(not seg.text.strip() and not (seg.style and seg.style.bgcolor) for seg in line)

    start, end = 0, len(lines)
    while start < end and blank(lines[start]):
        start += 1
    while end > start and blank(lines[end - 1]):
        end -= 1
    return lines[start:end]
