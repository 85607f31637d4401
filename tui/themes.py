"""Themes from TOML files: the ones shipped in ``themes/`` and the user's own; a bad file is skipped."""

from __future__ import annotations

import tomllib
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.css.tokenize import tokenize_values
from textual.theme import Theme

COLORS: tuple[str, ...] = ("primary", "secondary", "warning", "error", "success", "accent")
COLORS += ("foreground", "background", "surface", "panel", "boost")
SHIPPED = Path(__file__).resolve().parent.parent / "themes"


def load_theme(path: Path) -> Theme:
    """One theme file: ``name``, ``dark`` and colours (``primary`` required); raises ValueError."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ValueError(str(error)) from None
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("no name")
    if not isinstance(data.get("primary"), str):
        raise ValueError("no primary colour")
    colors: dict[str, str] = {}
    for key in COLORS:
        if key in data:
            value = data[key]
            try:
                Color.parse(value)
            except (ColorParseError, TypeError, ValueError):
                raise ValueError(f"{key} is not a colour: {value!r}") from None
            colors[key] = value
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        raise ValueError("variables must be a table of strings")
    for key, value in variables.items():  # a value Textual's CSS cannot read would stop the app at startup
        try:
            tokenize_values({str(key): value})
        except Exception as error:  # noqa: BLE001 - Textual's tokenizer raises several kinds
            raise ValueError(f"variable {key} is not a CSS value: {value!r:.40} ({error})") from None
    theme = Theme(name=name.strip(), primary=colors.pop("primary"), dark=bool(data.get("dark", True)))
    for key, value in colors.items():
        setattr(theme, key, value)
    theme.variables = dict(variables)
    return theme


def load_themes(*folders: Path) -> tuple[list[Theme], list[str]]:
    """Every ``*.toml`` theme in ``folders`` (later ones override by name), and one line per failure."""
    themes: dict[str, Theme] = {}
    failures: list[str] = []
    for folder in folders:
        try:
            paths = sorted(folder.glob("*.toml"))
        except OSError as error:
            failures.append(f"{folder}: {error}")
            continue
        for path in paths:
            try:
                theme = load_theme(path)
            except ValueError as error:
                failures.append(f"theme {path}: {error}")
                continue
            themes[theme.name] = theme
    return list(themes.values()), failures
