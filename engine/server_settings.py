"""Server settings under Ollama's names, read once: ``LLAMADECK_*``, then ``OLLAMA_*``, then ``config.toml``.

A user who tuned Ollama with ``OLLAMA_NUM_PARALLEL=4 OLLAMA_KEEP_ALIVE=1h``
gets the same server from ``llamadeck serve``; ``LLAMADECK_NUM_PARALLEL``
says it for llamadeck alone, and the app's ``config.toml`` holds the same
names in lower case (``num_parallel = 4``). The layers, highest first::

    request > Modelfile > LLAMADECK_* > OLLAMA_* > config.toml > built-in

The first two are the options of a request and a model (``engine.options``);
the rest are read here into one frozen ``ServerSettings``, which the front
end hands to ``Engine(settings=...)``::

    settings = from_environment(os.environ, {"keep_alive": "10m"})
    engine = Engine(settings=settings)

The engine applies each where its built-in default was: ``num_parallel``,
``context_length``, ``flash_attention`` and ``kv_cache_type`` are the lowest
layer of load options (``load_layer``), ``keep_alive`` the registry's
default, ``max_loaded_models`` the registry's count limit (the least recently
used idle model goes, as in Ollama's scheduler), ``max_queue`` how many
requests may wait for a slot of one loaded model before the next is refused
with ``QueueFull`` (503, Ollama's words). A value that cannot be used is an
``InvalidSetting`` naming where it came from, at start: never a silent
default, as Ollama's ``envconfig`` has it for a mistyped number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, cast

from engine.durations import DEFAULT_KEEP_ALIVE, KEEP_ALIVE_HELP, parse_keep_alive
from engine.errors import InvalidInput, InvalidSetting
from engine.option_values import MAX_INT
from engine.options import KV_CACHE_TYPES, MAX_PARALLEL, FlashAttn, KVCacheType
from engine.text import quoted

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_MAX_QUEUE",
    "SETTINGS",
    "ServerSettings",
    "SettingInfo",
    "describe_settings",
    "from_environment",
]

DEFAULT_MAX_QUEUE = 512  # Ollama's OLLAMA_MAX_QUEUE
CONFIG_FILE = "config.toml"  # how a value from the app's settings is named in a message
_PREFIXES = ("LLAMADECK_", "OLLAMA_")  # the earlier wins


@dataclass(frozen=True)
class ServerSettings:
    """How the engine serves when neither a request nor a Modelfile says: Ollama's server settings.

    ``None`` and ``0`` mean what they mean to Ollama: decided at load time
    (``num_parallel``: from memory; ``context_length``: 4096 capped at the
    trained context) or no limit (``max_loaded_models``: memory decides).
    """

    num_parallel: int | None = None  # conversations a loaded model decodes together
    max_loaded_models: int = 0  # 0: as many as memory holds
    keep_alive: float = DEFAULT_KEEP_ALIVE  # seconds; 0 unloads at once, -1 for ever
    max_queue: int = DEFAULT_MAX_QUEUE  # requests waiting for a slot of one model; the next is refused
    context_length: int | None = None  # num_ctx when nothing else says
    flash_attention: FlashAttn = "auto"
    kv_cache_type: KVCacheType = "f16"
    # where each value came from ("OLLAMA_NUM_PARALLEL", "config.toml"); absent: built in
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def load_layer(self) -> dict[str, object]:
        """The load options these settings give: the lowest layer, under the Modelfile's and the request's."""
        layer: dict[str, object] = {
            "flash_attn": self.flash_attention,
            "kv_cache_type": self.kv_cache_type,
        }
        if self.num_parallel:
            layer["num_parallel"] = self.num_parallel
        if self.context_length:
            layer["num_ctx"] = self.context_length
        return layer


class SettingInfo(NamedTuple):
    """One row of ``describe_settings``: for ``serve --help`` and the README."""

    name: str  # the field, and its key in config.toml
    variables: tuple[str, str]  # LLAMADECK_X, OLLAMA_X
    default: str
    help: str


class _Refused(Exception):
    pass


def _strip(value: object) -> object:
    """An environment value as Ollama's ``envconfig.Var`` reads it: spaces and quotes around it dropped."""
    return value.strip().strip("\"'") if isinstance(value, str) else value


def _count(low: int, high: int) -> Callable[[object], object]:
    def parse(value: object) -> object:
        if isinstance(value, bool):
            raise _Refused
        if isinstance(value, str):
            text = value.strip()
            if not text.isascii() or not text.isdigit():
                raise _Refused
            value = int(text)
        if not isinstance(value, int) or not low <= value <= high:
            raise _Refused
        return value

    return parse


def _keep_alive(value: object) -> object:
    try:
        return parse_keep_alive(value)
    except InvalidInput:
        raise _Refused from None


_TRUE = frozenset({"1", "t", "true", "on", "yes"})  # Go's strconv.ParseBool, and the words people write
_FALSE = frozenset({"0", "f", "false", "off", "no"})


def _flash(value: object) -> object:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return "on"
        if word in _FALSE:
            return "off"
        if word == "auto":
            return "auto"
    raise _Refused


def _kv_type(value: object) -> object:
    if isinstance(value, str) and (word := value.strip().lower()) in KV_CACHE_TYPES:
        return word
    raise _Refused


@dataclass(frozen=True)
class _Spec:
    name: str
    expect: str  # "must be ..." in a message
    default: str  # as help shows it
    help: str
    parse: Callable[[object], object]

    @property
    def variables(self) -> tuple[str, str]:
        return (_PREFIXES[0] + self.name.upper(), _PREFIXES[1] + self.name.upper())


SETTINGS: tuple[_Spec, ...] = (
    _Spec(
        "num_parallel",
        f"a whole number from 0 to {MAX_PARALLEL}",
        "from memory",
        "conversations one model decodes at once",
        _count(0, MAX_PARALLEL),
    ),
    _Spec(
        "max_loaded_models",
        f"a whole number from 0 to {MAX_INT}",
        "as many as fit",
        "models loaded at once; past it the least recently used idle one goes",
        _count(0, MAX_INT),
    ),
    _Spec(
        "keep_alive",
        KEEP_ALIVE_HELP,
        "5m",
        "how long a model stays loaded after a request: 5m, 1h, -1 (for ever)",
        _keep_alive,
    ),
    _Spec(
        "max_queue",
        f"a whole number from 0 to {MAX_INT}",
        str(DEFAULT_MAX_QUEUE),
        "requests that may wait for one model's slots; the next gets a 503",
        _count(0, MAX_INT),
    ),
    _Spec(
        "context_length",
        f"a whole number from 0 to {MAX_INT}",
        "4096, at most the model's",
        "num_ctx unless a request or the Modelfile sets it",
        _count(0, MAX_INT),
    ),
    _Spec(
        "flash_attention",
        "1, 0, true, false, on, off or auto",
        "auto",
        "flash attention: 1 on, 0 off, auto",
        _flash,
    ),
    _Spec(
        "kv_cache_type",
        "one of " + ", ".join(KV_CACHE_TYPES),
        "f16",
        "KV cache: f16, q8_0 or q4_0 (these two need flash attention)",
        _kv_type,
    ),
)


def from_environment(
    environ: Mapping[str, str], config: Mapping[str, object] | None = None, *, config_name: str = CONFIG_FILE
) -> ServerSettings:
    """The settings in effect: each from ``LLAMADECK_X``, else ``OLLAMA_X``, else ``config[x]``, else default.

    ``environ`` is the process's environment (an empty value counts as
    unset, as in Ollama); ``config`` the app's settings by their lower-case
    names (``{"num_parallel": 4, "keep_alive": "10m"}``); ``config_name``
    names it in messages. Only the value that wins is read; one that cannot
    be used raises ``InvalidSetting`` in one line naming its variable or key::

        from_environment({"OLLAMA_NUM_PARALLEL": "four"})
        # InvalidSetting: OLLAMA_NUM_PARALLEL must be a whole number from 0 to 256, not 'four'
    """
    config = config or {}
    values: dict[str, object] = {}
    origins: dict[str, str] = {}
    for spec in SETTINGS:
        found = _winner(spec, environ, config, config_name)
        if found is None:
            continue
        where, raw = found
        try:
            values[spec.name] = spec.parse(raw)
        except _Refused:
            raise InvalidSetting(f"{where} must be {spec.expect}, not {_show(raw)}") from None
        origins[spec.name] = where
    if values.get("context_length") == 0:
        values["context_length"] = None  # Ollama's 0: the default
    if values.get("num_parallel") == 0:
        values["num_parallel"] = None
    return ServerSettings(**values, origins=origins)  # type: ignore[arg-type]


def _winner(
    spec: _Spec, environ: Mapping[str, str], config: Mapping[str, object], config_name: str
) -> tuple[str, object] | None:
    for variable in spec.variables:
        value = _strip(environ.get(variable, ""))
        if value != "":
            return variable, value
    value = config.get(spec.name)
    if value is None or value == "":
        return None
    return f"{spec.name} in {config_name}", value


def _show(value: object) -> str:
    if isinstance(value, str):
        return quoted(value, 40)
    return cast(str, repr(value))[:40]


def describe_settings() -> list[SettingInfo]:
    """Every setting with its variables, default and a one-line help, in the table's order."""
    return [SettingInfo(s.name, s.variables, s.default, s.help) for s in SETTINGS]
