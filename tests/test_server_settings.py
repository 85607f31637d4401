"""Server settings under Ollama's names: every layer over the next, bad values refused, the limits applied.

request > Modelfile > LLAMADECK_* > OLLAMA_* > config.toml > built-in; the
variables and ``config.toml`` are read by ``engine.server_settings``, the
request and the Modelfile layered over them by the engine's option merge.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from engine import Engine, InvalidSetting, Machine, ServerSettings, from_environment
from engine.cancel import CancelToken
from engine.runtime.registry import Registry
from engine.store.manifest import Manifest, ModelConfig
from engine.store.model_store import Store
from tests.support.stored_models import add_blob, save
from tests.support.tiny_gguf import write_tiny_gguf
from tests.test_registry import loader
from tui.config import Config

# per setting: the raw values of LLAMADECK_X, OLLAMA_X and config.toml's x, what each reads as, the default
LAYERS: dict[str, tuple[tuple[str, str, object], tuple[object, object, object], object]] = {
    "num_parallel": (("2", "3", 4), (2, 3, 4), None),
    "max_loaded_models": (("1", "2", 3), (1, 2, 3), 0),
    "keep_alive": (("1h", "600", "30s"), (3600.0, 600.0, 30.0), 300.0),
    "max_queue": (("5", "6", 7), (5, 6, 7), 512),
    "context_length": (("1024", "2048", 8192), (1024, 2048, 8192), None),
    "flash_attention": (("auto", "0", True), ("auto", "off", "on"), "auto"),
    "kv_cache_type": (("f16", "Q4_0", "q8_0"), ("f16", "q4_0", "q8_0"), "f16"),
}


def environment(name: str, llamadeck: str | None, ollama: str | None) -> dict[str, str]:
    env = {"PATH": "/usr/bin"}
    if llamadeck is not None:
        env[f"LLAMADECK_{name.upper()}"] = llamadeck
    if ollama is not None:
        env[f"OLLAMA_{name.upper()}"] = ollama
    return env


@pytest.mark.parametrize("name", LAYERS)
def test_each_layer_wins_over_the_next(name: str) -> None:
    (mine, ollamas, configs), (as_mine, as_ollamas, as_configs), default = LAYERS[name]
    config = {name: configs}
    every = from_environment(environment(name, mine, ollamas), config)
    assert getattr(every, name) == as_mine and every.origins[name] == f"LLAMADECK_{name.upper()}"
    no_llamadeck = from_environment(environment(name, None, ollamas), config)
    assert (
        getattr(no_llamadeck, name) == as_ollamas and no_llamadeck.origins[name] == f"OLLAMA_{name.upper()}"
    )
    only_config = from_environment(environment(name, None, None), config)
    assert getattr(only_config, name) == as_configs and only_config.origins[name] == f"{name} in config.toml"
    nothing = from_environment(environment(name, None, None), {})
    assert getattr(nothing, name) == default and name not in nothing.origins
    assert nothing == ServerSettings()


def test_an_empty_variable_is_unset_and_quotes_around_a_value_are_dropped_as_ollama_does() -> None:
    settings = from_environment({"LLAMADECK_NUM_PARALLEL": "", "OLLAMA_NUM_PARALLEL": " '3' "})
    assert settings.num_parallel == 3 and settings.origins["num_parallel"] == "OLLAMA_NUM_PARALLEL"


def test_zero_means_what_it_means_to_ollama() -> None:
    settings = from_environment(
        {"OLLAMA_NUM_PARALLEL": "0", "OLLAMA_CONTEXT_LENGTH": "0", "OLLAMA_KEEP_ALIVE": "-1"}
    )
    assert settings.num_parallel is None and settings.context_length is None  # decided at load time
    assert settings.keep_alive == -1.0  # any negative: for ever
    assert settings.load_layer() == {"flash_attn": "auto", "kv_cache_type": "f16"}


@pytest.mark.parametrize(
    ("env", "config", "message"),
    [
        (
            {"OLLAMA_NUM_PARALLEL": "four"},
            {},
            "OLLAMA_NUM_PARALLEL must be a whole number from 0 to 256, not 'four'",
        ),
        (
            {"OLLAMA_NUM_PARALLEL": "-1"},
            {},
            "OLLAMA_NUM_PARALLEL must be a whole number from 0 to 256, not '-1'",
        ),
        (
            {"LLAMADECK_NUM_PARALLEL": "1000"},
            {},
            "LLAMADECK_NUM_PARALLEL must be a whole number from 0 to 256",
        ),
        ({"OLLAMA_MAX_QUEUE": "1.5"}, {}, "OLLAMA_MAX_QUEUE must be a whole number from 0 to"),
        ({"OLLAMA_MAX_LOADED_MODELS": "-2"}, {}, "OLLAMA_MAX_LOADED_MODELS must be a whole number"),
        ({"OLLAMA_CONTEXT_LENGTH": "8k"}, {}, "OLLAMA_CONTEXT_LENGTH must be a whole number from 0 to"),
        ({"OLLAMA_KEEP_ALIVE": "soon"}, {}, "OLLAMA_KEEP_ALIVE must be a duration like 5m"),
        (
            {"OLLAMA_FLASH_ATTENTION": "maybe"},
            {},
            "OLLAMA_FLASH_ATTENTION must be 1, 0, true, false, on, off or auto",
        ),
        (
            {"OLLAMA_KV_CACHE_TYPE": "q5_1"},
            {},
            "OLLAMA_KV_CACHE_TYPE must be one of f16, q8_0, q4_0, not 'q5_1'",
        ),
        ({"OLLAMA_NUM_PARALLEL": "\x1b]0;x\x07"}, {}, "OLLAMA_NUM_PARALLEL must be a whole number"),
        (
            {},
            {"num_parallel": True},
            "num_parallel in config.toml must be a whole number from 0 to 256, not True",
        ),
        ({}, {"max_queue": "lots"}, "max_queue in config.toml must be a whole number"),
        ({}, {"keep_alive": []}, "keep_alive in config.toml must be a duration"),
    ],
)
def test_a_bad_value_is_one_line_naming_where_it_came_from(
    env: dict[str, str], config: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidSetting) as refused:
        from_environment(env, config)
    text = str(refused.value)
    assert text.startswith(message) and "\n" not in text and "\x1b" not in text


def test_only_the_value_that_wins_is_read() -> None:
    # Ollama's own variable may hold what only Ollama reads: llamadeck's own wins without reading it
    settings = from_environment({"LLAMADECK_KV_CACHE_TYPE": "q8_0", "OLLAMA_KV_CACHE_TYPE": "q5_1"})
    assert settings.kv_cache_type == "q8_0"


def test_config_toml_keeps_the_settings_as_written_and_layers_the_environment_over_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.toml"
    path.write_text('keep_alive = "10m"\nnum_parallel = 2\nmax_queue = "x"\nflash_attention = true\n')
    config = Config.load(path)
    assert config.server == {"num_parallel": 2, "max_queue": "x", "flash_attention": True}
    with pytest.raises(InvalidSetting, match="^max_queue in config.toml must be a whole number"):
        config.server_settings({})
    assert config.server_settings({"OLLAMA_MAX_QUEUE": "3"}).max_queue == 3  # the variable wins
    config.server["max_queue"] = 9
    settings = config.server_settings({"OLLAMA_NUM_PARALLEL": "5"})
    assert (settings.keep_alive, settings.num_parallel, settings.max_queue) == (600.0, 5, 9)
    assert settings.flash_attention == "on"
    config.save(path)
    assert Config.load(path).server == config.server  # written back as they were


# -- the engine applies them -----------------------------------------------------------------


@pytest.fixture
def models(tmp_path: Path) -> dict[str, Manifest]:
    """Two tiny models in the store, "first" and "second"."""
    store = Store()
    store.ensure()
    saved = {}
    for name, seed in (("first", 1), ("second", 2)):
        path, *_ = write_tiny_gguf(tmp_path / f"{name}.gguf", seed=seed)
        saved[name] = save(store, name, add_blob(store, path))
    return saved


def engine_with(settings: ServerSettings) -> Engine:
    return Engine(machine=lambda: Machine(free_ram=16 << 30, gpu_free_vram=None), settings=settings)


@pytest.mark.parametrize(
    ("model", "request_options", "context", "slots"),
    [
        ({}, {}, 384, 2),  # the server settings over the built-in defaults
        ({"num_ctx": 512}, {}, 512, 2),  # the Modelfile over the server settings
        ({"num_ctx": 512}, {"num_ctx": 640, "num_parallel": 3}, 640, 3),  # the request over the Modelfile
    ],
)
def test_the_request_and_the_modelfile_win_over_the_server_settings(
    models: dict[str, Manifest],
    model: dict[str, object],
    request_options: dict[str, object],
    context: int,
    slots: int,
) -> None:
    Store().save(replace(models["first"], config=ModelConfig(parameters=model)))
    engine = engine_with(ServerSettings(context_length=384, num_parallel=2, keep_alive=-1.0))
    try:
        engine.load("first", options=request_options)
        (loaded,) = engine.loaded()
        assert (loaded.context, loaded.slots, loaded.expires_in) == (context, slots, None)
    finally:
        engine.close()


def test_max_loaded_models_unloads_the_least_recently_used_idle_model(models: dict[str, Manifest]) -> None:
    engine = engine_with(ServerSettings(max_loaded_models=1))
    try:
        engine.load("first")
        engine.load("second")
        assert [m.reference for m in engine.loaded()] == ["second:latest"]
        engine.configure(replace(engine.settings, max_loaded_models=2))
        engine.load("first")
        assert sorted(m.reference for m in engine.loaded()) == ["first:latest", "second:latest"]
    finally:
        engine.close()


def test_keep_alive_from_the_settings_is_every_loads_default(models: dict[str, Manifest]) -> None:
    engine = engine_with(ServerSettings(keep_alive=-1.0))
    try:
        engine.load("first")
        assert engine.loaded()[0].expires_in is None  # kept for ever: no expiry
        engine.configure(replace(engine.settings, keep_alive=0.0))  # the app saved its settings
        engine.load("second")
        assert [m.reference for m in engine.loaded()] == ["first:latest"]  # 0: unloaded after the load
    finally:
        engine.close()


# -- the registry's count limit ---------------------------------------------------------------


def test_the_count_limit_evicts_least_recently_used_first() -> None:
    closed: list[str] = []
    registry = Registry(budget=lambda: 1000, max_loaded=2)
    for name in ("a", "b", "a", "c"):  # "a" used again after "b": "b" is the least recently used
        with registry.use((name, 1), name, loader(name, closed), need=10, keep_alive=60):
            pass
    assert closed == ["b"] and sorted(r.name for r in registry.residents()) == ["a", "c"]


def test_past_the_count_a_load_waits_for_a_model_in_use_then_replaces_it() -> None:
    closed: list[str] = []
    registry = Registry(budget=lambda: 1000, max_loaded=1)
    asked = threading.Event()
    loaded: list[str] = []

    def need() -> int:
        asked.set()  # called with the registry's lock held, just before the room is made
        return 10

    def second() -> None:
        with registry.use(("b", 1), "b", loader("b", closed), need=need, keep_alive=60) as (resident, _):
            loaded.append(resident.name)

    with registry.use(("a", 1), "a", loader("a", closed), need=10, keep_alive=60):
        thread = threading.Thread(target=second)
        thread.start()
        asked.wait()
        with registry._lock:  # held by the load until it waits: reserved now would mean it did not wait
            assert registry.reservations() == {}
            assert [r.name for r in registry.residents()] == ["a"]
    thread.join()
    assert loaded == ["b"] and closed == ["a"] and [r.name for r in registry.residents()] == ["b"]


def test_a_load_waiting_past_the_count_can_be_cancelled() -> None:
    closed: list[str] = []
    registry = Registry(budget=lambda: 1000, max_loaded=1)
    cancel = CancelToken()
    asked = threading.Event()
    failures: list[BaseException] = []

    def need() -> int:
        asked.set()
        return 10

    def second() -> None:
        try:
            with registry.use(("b", 1), "b", loader("b", closed), need=need, cancel=cancel):
                pass
        except BaseException as error:  # noqa: BLE001 - handed to the test
            failures.append(error)

    with registry.use(("a", 1), "a", loader("a", closed), need=10, keep_alive=60):
        thread = threading.Thread(target=second)
        thread.start()
        asked.wait()
        cancel.cancel()
        thread.join()
    assert [type(f).__name__ for f in failures] == ["Cancelled"] and closed == []
