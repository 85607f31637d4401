"""A bad value in config.toml is named once on stderr, however many places read the settings.

Found starting the app with a wrong keep_alive and temperature: each warning was printed twice
above the app, because opening the engine read config.toml once to choose a server and once more
for the store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import llamadeck


@pytest.fixture
def bad_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "config" / "llamadeck"
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text('keep_alive = [1, 2]\n[parameters]\ntemperature = "hot"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.mark.parametrize("command", [("list",), ("show", "no-such-model")])
def test_each_bad_setting_is_warned_of_once(bad_config: None, command: tuple[str, ...]) -> None:
    result = llamadeck(*command)
    lines = result.stderr.splitlines()
    keep_alive = [line for line in lines if "keep_alive ignored" in line]
    parameters = [line for line in lines if "parameters ignored" in line]
    assert len(keep_alive) == 1 and len(parameters) == 1, result.stderr
    assert "Traceback" not in result.stderr
