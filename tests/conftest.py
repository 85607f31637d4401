"""Shared fixtures: tiny GGUF files, an isolated store, no stray user config, the Chat tab's engine."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import describe_settings
from tests.support.chat_app import RecordingEngine, recording_engine, short_replies
from tests.support.fake_hub import isolated_hf_env
from tests.support.tiny_gguf import write_tiny_gguf


@pytest.fixture(autouse=True, scope="session")
def children_see_ctrl_c() -> Iterator[None]:
    """Children get the default SIGINT disposition, however the suite itself was launched.

    A suite started in the background (``nohup pytest &``, some CI runners) inherits
    SIGINT as ignored, and an ignored signal stays ignored across exec: the CLI under
    test would then rightly respect it, and the Ctrl+C tests would see nothing happen.
    A handled signal is reset to the default at exec, so handling it here is enough.
    """
    inherited = signal.getsignal(signal.SIGINT)
    if inherited is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if inherited is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own store and Hugging Face home; no user token or cache leaks in."""
    home = tmp_path / "llamadeck-home"
    monkeypatch.setenv("LLAMADECK_HOME", str(home))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # llama.cpp's log file
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the app's chat history
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # the app's settings
    for info in describe_settings():  # OLLAMA_NUM_PARALLEL and the like of whoever runs the suite
        for variable in info.variables:
            monkeypatch.delenv(variable, raising=False)
    for variable in ("LLAMADECK_HOST", "OLLAMA_HOST", "LLAMADECK_API_KEY"):  # no server named by the runner
        monkeypatch.delenv(variable, raising=False)
    with isolated_hf_env(tmp_path / "hf-home"):
        yield home


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny llama GGUF per quant: F32, F16, Q8_0, Q4_0."""
    directory = tmp_path_factory.mktemp("tiny")
    return {
        q: write_tiny_gguf(directory / f"Tiny-{q}.gguf", quant=q)[0] for q in ("F32", "F16", "Q8_0", "Q4_0")
    }


@pytest.fixture
def engine(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RecordingEngine]:
    """The app's tests' engine: the tiny model pulled from a fake Hub (``tests.support.chat_app``).
    A module that tests another part defines an ``engine`` of its own, which takes precedence."""
    with recording_engine(tmp_path_factory, tmp_path, monkeypatch) as engine:
        yield engine


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The app's config.toml with short replies (a module may define its own)."""
    return short_replies(tmp_path)
