"""The command line against another machine's server: ``llamadeck --host HOST ...`` as a person types it.

The "other machine" is a second llamadeck (its own store, a real uvicorn on a
loopback port) that pulls from the fake Hub; beside it a server of OpenAI's
routes only (vLLM's shape), one that needs a key, and addresses that are wrong.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Engine
from tests.support.api_server import running_api, running_asgi
from tests.support.cli import LLAMADECK, assert_one_line_error
from tests.support.partial_servers import TINY, openai_only, second_machine


def llamadeck(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LLAMADECK, *args],
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def gpu_box(tmp_path: Path) -> Iterator[Engine]:
    """The other machine's engine, with the fake Hub it pulls from."""
    with second_machine(tmp_path) as engine:
        yield engine


def test_pull_list_run_ps_stop_rm_all_happen_on_the_named_server(gpu_box: Engine, isolated_env: Path) -> None:
    with running_api(gpu_box) as url:
        host = url.removeprefix("http://")
        pulled = llamadeck("--host", host, "pull", "acme/Tiny-GGUF")
        assert pulled.returncode == 0, pulled.stderr
        assert f"pulled {TINY}" in pulled.stdout and "downloading" in pulled.stderr  # its progress, here
        assert [m.reference for m in gpu_box.list_models()] == [TINY]

        listed = llamadeck("--host", host, "list")
        assert listed.returncode == 0 and TINY in listed.stdout
        shown = llamadeck("--host", host, "show", TINY)
        assert shown.returncode == 0 and "llama" in shown.stdout and "Q8_0" in shown.stdout

        ran = llamadeck("--host", host, "run", TINY, "hello", "-n", "3", "-t", "0", "--verbose")
        assert ran.returncode == 0, ran.stderr
        assert "eval count" in ran.stderr  # the server's figures came back
        assert [m.reference for m in gpu_box.loaded()] == [TINY]

        ps = llamadeck("ps", LLAMADECK_HOST=host)  # the variable names it as --host does
        assert ps.returncode == 0 and TINY in ps.stdout and "100% CPU" in ps.stdout
        assert "minutes from now" in ps.stdout

        stopped = llamadeck("--host", host, "stop", TINY)
        assert stopped.returncode == 0, stopped.stderr
        assert gpu_box.loaded() == []

        removed = llamadeck("--host", host, "rm", TINY)
        assert removed.returncode == 0 and f"deleted {TINY}" in removed.stdout
        assert gpu_box.list_models() == []
    assert not isolated_env.exists()  # this machine's store was never touched


def test_ollama_host_names_the_server_too_and_llamadeck_host_wins(gpu_box: Engine) -> None:
    gpu_box.pull("acme/Tiny-GGUF")
    with running_api(gpu_box) as url:
        host = url.removeprefix("http://")
        listed = llamadeck("list", OLLAMA_HOST=host)
        assert listed.returncode == 0 and TINY in listed.stdout
        nowhere = llamadeck("list", OLLAMA_HOST=host, LLAMADECK_HOST="127.0.0.1:9")
        assert_one_line_error(nowhere, "no server answers at 127.0.0.1:9")
        here = llamadeck("--host", "local", "list", OLLAMA_HOST=host)  # this machine, whatever is set
        assert here.returncode == 0 and TINY not in here.stdout


def test_an_openai_only_server_runs_prompts_and_refuses_pull_in_one_line(gpu_box: Engine) -> None:
    gpu_box.pull("acme/Tiny-GGUF")
    with running_asgi(openai_only(gpu_box)) as url:
        host = url.removeprefix("http://")
        ran = llamadeck("--host", host, "run", TINY, "hello", "-n", "2", "-t", "0")
        assert ran.returncode == 0, ran.stderr
        assert_one_line_error(
            llamadeck("--host", host, "pull", "acme/Other-GGUF"),
            f"{host} offers only the OpenAI API (/v1): it cannot pull models",
        )
        assert_one_line_error(llamadeck("--host", host, "ps"), f"{host} offers only the OpenAI API (/v1)")


def test_a_server_from_config_brings_its_own_key_which_is_never_printed(
    gpu_box: Engine, tmp_path: Path
) -> None:
    gpu_box.pull("acme/Tiny-GGUF")
    with running_api(gpu_box, api_key="box-secret") as url:
        host = url.removeprefix("http://")
        refused = llamadeck("--host", host, "list")
        assert_one_line_error(refused, f"{host} needs an API key")
        wrong = llamadeck("--host", host, "list", LLAMADECK_API_KEY="not-it")
        assert_one_line_error(wrong, "the API key given was refused")
        assert "not-it" not in wrong.stderr + wrong.stdout
        config = tmp_path / "config" / "llamadeck" / "config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(f'default_server = "gpu"\n[servers.gpu]\nhost = "{host}"\napi_key = "box-secret"\n')
        listed = llamadeck("list")  # config.toml's default server, with its key
        assert listed.returncode == 0 and TINY in listed.stdout, listed.stderr
        run = llamadeck("run", TINY, "hi", "-n", "1", "--verbose")
        assert run.returncode == 0 and "box-secret" not in run.stdout + run.stderr


@pytest.mark.parametrize(
    ("host", "said"),
    [
        ("ftp://gpu-box", "cannot read the address 'ftp://gpu-box': use host:port or http://host:port"),
        ("gpu-box:99999", "the port must be a number from 0 to 65535"),
        ("user@gpu-box", "give only a host, a port and a path"),
        ("127.0.0.1:9", "no server answers at 127.0.0.1:9"),
    ],
)
def test_a_bad_or_dead_host_is_one_line(host: str, said: str) -> None:
    assert_one_line_error(llamadeck("--host", host, "list"), said)


def test_host_with_serve_is_refused_serve_has_its_own() -> None:
    assert_one_line_error(llamadeck("--host", "gpu-box", "serve"), "serve listens where serve --host says")


def test_chat_under_the_prompt_talks_to_the_server_and_keeps_the_history_here(gpu_box: Engine) -> None:
    from tui.chatstore import ChatStore, default_chat_db

    gpu_box.pull("acme/Tiny-GGUF")
    with running_api(gpu_box) as url:
        chatted = subprocess.run(
            [LLAMADECK, "--host", url, "chat", TINY, "-t", "0", "-n", "3"],
            input="Hello over there\nAnd again\n",
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert chatted.returncode == 0, chatted.stderr
        assert [m.reference for m in gpu_box.loaded()] == [TINY]  # loaded before the first prompt, there
    with ChatStore.open(default_chat_db()) as store:
        [chat] = store.conversations()
        roles = [(m.role, m.status) for m in store.messages(chat.id)]
    assert roles == [("user", "complete"), ("assistant", "complete")] * 2
