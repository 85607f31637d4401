"""The app's settings: ``config.toml`` in the XDG config dir, read with tomllib, written with tomli-w."""

from __future__ import annotations

import logging
import os
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

DEFAULT_THEME = "llamadeck-dark"
log = logging.getLogger("llamadeck.tui")


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/llamadeck`` (``~/.config/llamadeck`` when unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "llamadeck"


def user_themes_dir() -> Path:
    return config_dir() / "themes"


@dataclass
class Config:
    theme: str = DEFAULT_THEME

    @classmethod
    def load(cls, path: Path | None = None) -> Config:
        """The saved settings; a missing or unreadable file gives the defaults (and a log line)."""
        path = path or config_dir() / "config.toml"
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            log.warning("config %s not read: %s", path, error)
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known and isinstance(v, str)})

    def save(self, path: Path | None = None) -> None:
        """Write atomically: a temp file beside it, then ``os.replace``."""
        import tomli_w

        path = path or config_dir() / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(".toml.tmp")
        temp.write_text(tomli_w.dumps(asdict(self)), encoding="utf-8")
        os.replace(temp, path)
