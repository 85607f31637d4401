"""The app's settings: ``config.toml`` in the XDG config dir, read with tomllib, written with tomli-w.

::

    theme = "llamadeck-dark"
    default_model = "hf.co/acme/Tiny-GGUF:Q8_0"   # what a new chat uses; "" = ask
    keep_alive = "5m"                              # Ollama's syntax: 5m, 1h30m, 300, 0, -1
    store = ""                                     # the model store; "" = LLAMADECK_HOME or the default
    num_parallel = 4                               # server settings: OLLAMA_*/LLAMADECK_* win over them
    max_loaded_models = 2                          # (also max_queue, context_length, flash_attention,
                                                   #  kv_cache_type; see engine.server_settings)
    default_server = ""                            # "" = this machine; else a name below (tui.servers)
    [parameters]                                   # Ollama option names, checked as the engine checks them
    temperature = 0.7
    num_ctx = 8192
    [servers.gpu]                                  # servers to work against: llamadeck --host gpu
    host = "gpu-box:11434"                         # as LLAMADECK_HOST reads it
    api_key = ""                                   # sent to this server only ("" = LLAMADECK_API_KEY)

Reading never fails: a missing or unreadable file gives the defaults, and a
setting with a bad value is dropped (its default used) with a log line
naming it. Keys this version does not know are kept in ``Config.extra`` and
written back on save, so a newer llamadeck's settings, or a typo the user
will want to fix, are never lost silently. Each save is atomic (a temp file
beside it, then ``os.replace``).

The server settings (``keep_alive`` and those in ``Config.server``) are the
engine's, under Ollama's names: ``server_settings`` layers the environment
(``LLAMADECK_*``, ``OLLAMA_*``) over them and checks them, so a bad one is
one clear error where a model would run (``serve``, ``run``, the app), not a
value dropped in silence.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine import ServerSettings

DEFAULT_THEME = "llamadeck-dark"
DEFAULT_KEEP_ALIVE = "5m"
log = logging.getLogger("llamadeck.tui")


class SettingError(ValueError):
    """A setting's value that cannot be used; the message is one line, fit to show."""


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/llamadeck`` (``~/.config/llamadeck`` when unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "llamadeck"


def user_themes_dir() -> Path:
    return config_dir() / "themes"


# -- checks, one per setting ---------------------------------------------------------


def keep_alive_seconds(text: str) -> float:
    """Seconds for an Ollama keep-alive: ``5m`` 300.0, ``1h30m`` 5400.0, ``90`` 90.0, ``0``; -1.0 for ever.

    The engine's one rule (``engine.parse_keep_alive``), as the API and the
    engine read it: a plain number is seconds, any negative value keeps the
    model loaded for ever; the message of a SettingError names the setting.

    >>> keep_alive_seconds("1m30s")
    90.0
    """
    from engine import InvalidInput, one_line, parse_keep_alive

    if not isinstance(text, str):
        raise SettingError(f"keep-alive must be text such as 5m, not {one_line(repr(text), 40)}")
    try:
        seconds = parse_keep_alive(text, name="keep-alive")
    except InvalidInput as error:
        raise SettingError(str(error)) from None
    assert seconds is not None  # only None parses to None
    return seconds


def check_parameters(raw: object, *, source: str = "settings") -> dict[str, object]:
    """Default options, checked by the engine's own table: Ollama names, values in range.

    ``engine.parse_options`` does the checking; its first complaint is raised as a SettingError.
    """
    if not isinstance(raw, Mapping):
        raise SettingError("parameters must be a table of name = value")
    from engine import InvalidOption, parse_options

    try:
        return dict(parse_options(raw, source=source))
    except InvalidOption as error:
        raise SettingError(str(error)) from None


def parse_parameter_lines(text: str) -> dict[str, object]:
    """``name value`` lines (blank lines and ``#`` comments skipped) as checked options.

    Several ``stop`` lines add up. Raises SettingError naming the line.

    >>> parse_parameter_lines("temperature 0.7\\nnum_ctx 8192")
    {'temperature': 0.7, 'num_ctx': 8192}
    """
    raw: dict[str, object] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition(" ")
        value = value.strip()
        if not value:
            raise SettingError(f"line {number}: write a name and a value, e.g. temperature 0.7")
        if name == "stop":
            stops = raw.setdefault("stop", [])
            assert isinstance(stops, list)
            stops.append(value)
            continue
        try:
            raw[name] = check_parameters({name: _typed(value)})[name]
        except SettingError as error:
            raise SettingError(f"line {number}: {error}") from None
    if "stop" in raw:
        raw["stop"] = check_parameters({"stop": raw["stop"]})["stop"]
    return raw


def format_parameter_lines(parameters: Mapping[str, object]) -> str:
    """The reverse of ``parse_parameter_lines``: one ``name value`` line each (a line per stop)."""
    lines = []
    for name, value in parameters.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            lines.append(f"{name} {item}")
    return "\n".join(lines)


def _typed(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def check_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.isprintable():
        raise SettingError(f"{what} must be one line of text")
    return value.strip()


def check_store(value: object) -> str:
    """A store location: empty (the default) or a path that is not a file."""
    text = check_text(value, "the store location")
    if text and Path(text).expanduser().exists() and not Path(text).expanduser().is_dir():
        from engine import quoted

        raise SettingError(f"the store location {quoted(text, 200)} is a file, not a folder")
    return text


def check_keep_alive(value: object) -> str:
    text = check_text(value, "keep-alive")
    keep_alive_seconds(text)
    return text


def check_servers(value: object) -> dict[str, dict[str, str]]:
    """``[servers.NAME]`` tables, each with a ``host`` and maybe an ``api_key`` (both text)."""
    if not isinstance(value, Mapping):
        raise SettingError('servers must be tables such as [servers.gpu] with host = "gpu-box:11434"')
    servers: dict[str, dict[str, str]] = {}
    for name, entry in value.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("host", ""), str):
            raise SettingError(f'servers.{name} must have host = "HOST:PORT"')
        key = entry.get("api_key", "")
        if not isinstance(key, str) or (key and not key.isprintable()):
            raise SettingError(f"servers.{name}.api_key must be one line of text")
        host = check_text(entry.get("host", ""), f"servers.{name}.host")
        servers[str(name)] = {"host": host, "api_key": key}
    return servers


def _server_keys() -> frozenset[str]:
    """The server settings kept as written (``keep_alive`` is a setting of its own here)."""
    from engine import describe_settings

    return frozenset(s.name for s in describe_settings()) - {"keep_alive"}


# -- the settings --------------------------------------------------------------------

_CHECKS = {
    "theme": lambda v: check_text(v, "the theme") or DEFAULT_THEME,
    "default_model": lambda v: check_text(v, "the default model"),
    "parameters": lambda v: check_parameters(v, source="config.toml"),
    "keep_alive": check_keep_alive,
    "store": check_store,
    "default_server": lambda v: check_text(v, "the default server"),
    "servers": check_servers,
}


@dataclass
class Config:
    theme: str = DEFAULT_THEME
    default_model: str = ""  # the reference a new chat uses; "" = none chosen
    parameters: dict[str, object] = field(default_factory=dict)  # Ollama options for new chats
    keep_alive: str = DEFAULT_KEEP_ALIVE  # Ollama syntax; keep_alive_seconds() for the engine
    store: str = ""  # the store's folder; "" = LLAMADECK_HOME or the default; read at start
    # the other server settings as written (num_parallel, max_queue, ...): the engine checks them
    server: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # keys this version does not know
    default_server: str = ""  # a name in servers (or a host) the app and CLI work against; "" = here
    servers: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)  # name -> host, api_key

    @classmethod
    def load(cls, path: Path | None = None) -> Config:
        """The saved settings; a missing or unreadable file gives the defaults, a bad value its default.

        Each problem is a log line (the Logs tab); nothing here raises.
        """
        path = path or config_dir() / "config.toml"
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            log.warning("config %s not read: %s", path, error)
            return cls()
        config = cls()
        for name, value in data.items():
            if name in _server_keys():
                config.server[name] = value
                continue
            check = _CHECKS.get(name)
            if check is None:
                config.extra[name] = value
                continue
            try:
                setattr(config, name, check(value))
            except SettingError as error:
                log.warning("config %s: %s ignored: %s", path, name, error)
        return config

    def check(self) -> None:
        """Raise SettingError for the first setting that cannot be used (before a save)."""
        for name, check in _CHECKS.items():
            try:
                check(getattr(self, name))
            except SettingError as error:
                raise SettingError(f"parameters: {error}" if name == "parameters" else str(error)) from None

    def to_toml(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.extra)
        data.update(self.server)
        for item in fields(self):
            if item.name not in ("extra", "server"):
                data[item.name] = getattr(self, item.name)
        if not self.servers:  # written only once there are some
            del data["servers"]
        if not self.default_server:
            del data["default_server"]
        return data

    def server_settings(self, environ: Mapping[str, str] | None = None) -> ServerSettings:
        """The engine's server settings: ``LLAMADECK_*``, then ``OLLAMA_*``, then these, then built in.

        Raises ``engine.InvalidSetting`` naming the variable or the key of the first bad value.
        """
        from engine import from_environment

        values = {**self.server, "keep_alive": self.keep_alive}
        return from_environment(os.environ if environ is None else environ, values)

    def store_home(self) -> Path | None:
        """The store folder to open: None when ``LLAMADECK_HOME`` is set (it wins) or none is chosen."""
        if os.environ.get("LLAMADECK_HOME") or not self.store:
            return None
        return Path(self.store).expanduser()

    def save(self, path: Path | None = None) -> None:
        """Write atomically: a temp file beside it, ``fsync``, then ``os.replace``."""
        import tomli_w

        path = path or config_dir() / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = tomli_w.dumps(self.to_toml())
        temp = path.with_suffix(".toml.tmp")
        with temp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
