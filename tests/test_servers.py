"""``tui.servers.choose_server``: which server a run works against, and config.toml's [servers]."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.config import Config
from tui.servers import ServerChoice, ServerChoiceError, choose_server

GPU = {"default_server": "", "servers": {"gpu": {"host": "gpu-box:8080", "api_key": "from-config"}}}


def config(**values: object) -> Config:
    made = Config()
    for name, value in values.items():
        setattr(made, name, value)
    return made


@pytest.mark.parametrize(
    ("flag", "environ", "url", "name"),
    [
        (None, {}, None, None),  # nothing named: this machine
        ("gpu-box", {}, "http://gpu-box:11434", "gpu-box:11434"),  # a bare host: Ollama's port
        ("https://gpu-box", {}, "https://gpu-box:443", "https://gpu-box:443"),  # a URL: its scheme's port
        ("[::1]:9000", {}, "http://[::1]:9000", "[::1]:9000"),
        (None, {"OLLAMA_HOST": "box-a"}, "http://box-a:11434", "box-a:11434"),
        (None, {"OLLAMA_HOST": "box-a", "LLAMADECK_HOST": "box-b:1"}, "http://box-b:1", "box-b:1"),
        ("box-c", {"LLAMADECK_HOST": "box-b"}, "http://box-c:11434", "box-c:11434"),  # the flag wins
        ("local", {"LLAMADECK_HOST": "box-b"}, None, None),  # this machine, whatever is set
        (None, {"LLAMADECK_HOST": " \"'box-d'\" "}, "http://box-d:11434", "box-d:11434"),  # quotes, as Ollama
        ("0.0.0.0", {}, "http://127.0.0.1:11434", "127.0.0.1:11434"),  # a wildcard is reached on loopback
    ],
)
def test_the_flag_then_llamadeck_host_then_ollama_host_name_the_server(
    flag: str | None, environ: dict[str, str], url: str | None, name: str | None
) -> None:
    chosen = choose_server(flag, Config(), environ)
    assert (chosen.url, chosen.name) == (url, name) if chosen else url is None


def test_a_server_from_config_brings_its_host_and_key_and_is_the_default_when_set() -> None:
    servers = config(**GPU)
    assert choose_server("gpu", servers, {"LLAMADECK_API_KEY": "env"}) == ServerChoice(
        "http://gpu-box:8080", "gpu (gpu-box:8080)", "from-config"
    )
    assert choose_server(None, servers, {}) is None  # listed, but not the default
    defaulted = config(**{**GPU, "default_server": "gpu"})
    assert choose_server(None, defaulted, {}).name == "gpu (gpu-box:8080)"
    assert choose_server(None, defaulted, {"LLAMADECK_HOST": "elsewhere"}).name == "elsewhere:11434"
    keyless = config(servers={"gpu": {"host": "gpu-box", "api_key": ""}})
    assert choose_server("gpu", keyless, {"LLAMADECK_API_KEY": "env"}).api_key == "env"


def test_our_key_never_goes_to_a_server_only_ollama_host_names() -> None:
    key = {"LLAMADECK_API_KEY": "ours"}
    assert choose_server(None, Config(), {"OLLAMA_HOST": "ollama-box", **key}).api_key is None
    assert choose_server(None, Config(), {"LLAMADECK_HOST": "gpu-box", **key}).api_key == "ours"
    assert choose_server("gpu-box", Config(), {"OLLAMA_HOST": "ollama-box", **key}).api_key == "ours"
    listed = config(**GPU)  # a server of config.toml named by OLLAMA_HOST keeps the key config gives it
    assert choose_server(None, listed, {"OLLAMA_HOST": "gpu", **key}).api_key == "from-config"


def test_the_key_is_never_in_a_choice_or_a_configs_repr() -> None:
    servers = config(**GPU)
    assert "from-config" not in repr(choose_server("gpu", servers, {})) and "from-config" not in repr(servers)


@pytest.mark.parametrize(
    ("flag", "environ", "said"),
    [
        ("ftp://box", {}, "--host: cannot read the address 'ftp://box'"),
        (
            None,
            {"LLAMADECK_HOST": "box:70000"},
            "LLAMADECK_HOST: cannot read the address 'box:70000': the port",
        ),
        (None, {"OLLAMA_HOST": "me@box"}, "OLLAMA_HOST: cannot read the address 'me@box'"),
        ("empty", {}, "--host: name a server, e.g. gpu-box:11434"),
    ],
)
def test_an_unreadable_server_is_one_line_naming_where_it_came_from(
    flag: str | None, environ: dict[str, str], said: str
) -> None:
    with pytest.raises(ServerChoiceError) as failure:
        choose_server(flag, config(servers={"empty": {"host": "", "api_key": ""}}), environ)
    assert str(failure.value).startswith(said) and "\n" not in str(failure.value)


def test_config_toml_servers_are_read_checked_and_written_back(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('default_server = "gpu"\n[servers.gpu]\nhost = "gpu-box:8080"\napi_key = "k"\n')
    loaded = Config.load(path)
    assert loaded.default_server == "gpu" and loaded.servers == {
        "gpu": {"host": "gpu-box:8080", "api_key": "k"}
    }
    loaded.save(path)
    assert Config.load(path).servers == loaded.servers
    path.write_text('servers = "gpu-box"\ntheme = "x"\n')
    broken = Config.load(path)  # a bad value is dropped with a log line, the rest is read
    assert broken.servers == {} and broken.theme == "x"
    Config().save(path)
    assert "servers" not in path.read_text() and "default_server" not in path.read_text()
