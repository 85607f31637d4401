"""``engine.connect``: the facade over another machine's server, against real servers on loopback ports.

A second llamadeck (its own store, real uvicorn) pulls from the fake Hub,
chats, lists what it loaded, stops and deletes; a server of Ollama's routes
only and one of OpenAI's routes only stand for an Ollama and a vLLM; raw
socket servers die or stall mid-reply. The local store is never opened.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import (
    AccessDenied,
    CancelToken,
    Done,
    Engine,
    InvalidInput,
    ModelNotFound,
    NetworkError,
    Progress,
    RemoteEngine,
    Token,
    connect,
)
from tests.support.api_server import running_api, running_asgi
from tests.support.partial_servers import (
    DYING_MODEL,
    TINY,
    dying_server,
    ollama_only,
    openai_only,
    second_machine,
)

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def other_machine(tmp_path: Path) -> Iterator[Engine]:
    """The engine behind the second server: a store of its own, a fake Hub to pull from."""
    with second_machine(tmp_path) as engine:
        yield engine


@pytest.fixture
def pulled(other_machine: Engine) -> Engine:
    other_machine.pull("acme/Tiny-GGUF")
    return other_machine


def test_a_second_serve_pulls_chats_lists_stops_and_deletes_over_its_api(
    other_machine: Engine, isolated_env: Path
) -> None:
    with running_api(other_machine) as url:
        remote = connect(url, name="gpu-box")
        assert isinstance(remote, RemoteEngine) and remote.where == "gpu-box" and remote.manages_models
        events: list[object] = []
        pulled = remote.pull("acme/Tiny-GGUF", on_event=events.append)
        assert pulled.reference == TINY
        assert any(isinstance(e, Progress) and e.completed == e.total > 0 for e in events)
        assert [m.reference for m in other_machine.list_models()] == [TINY]  # pulled there, by the server
        assert [m.reference for m in remote.list_models()] == [TINY]
        assert remote.show(TINY).manifest.context_length > 0

        reply = list(remote.chat(TINY, HI, options={"num_predict": 3, "temperature": 0}))
        assert isinstance(reply[-1], Done) and reply[-1].completion_tokens == 3
        assert any(isinstance(e, Token) for e in reply)
        assert [m.reference for m in remote.loaded()] == [TINY]

        assert remote.unload(TINY) == [TINY]
        assert other_machine.loaded() == []
        remote.remove(TINY)
        assert other_machine.list_models() == [] and remote.list_models() == []
    assert not isolated_env.exists()  # this machine's store was never opened


def test_an_ollama_shaped_server_without_llamadeck_extras_runs_and_stops(pulled: Engine) -> None:
    with running_asgi(ollama_only(pulled)) as url:
        remote = connect(url)
        assert remote.manages_models and [m.reference for m in remote.list_models()] == [TINY]
        reply = list(remote.generate(TINY, "hello", max_tokens=2, temperature=0))
        assert isinstance(reply[-1], Done) and reply[-1].completion_tokens == 2
        assert [m.reference for m in remote.loaded()] == [TINY]
        remote.unload()
        assert pulled.loaded() == []


def test_an_openai_only_server_chats_and_refuses_the_rest_in_one_line_naming_it(pulled: Engine) -> None:
    with running_asgi(openai_only(pulled)) as url:
        remote = connect(url, name="vllm-box")
        assert not remote.manages_models
        assert [m.reference for m in remote.list_models()] == [TINY]
        reply = list(remote.chat(TINY, HI, options={"num_predict": 3, "temperature": 0}))
        assert (
            isinstance(reply[-1], Done) and reply[-1].completion_tokens == 3 and reply[-1].reason == "length"
        )
        assert remote.load(TINY) == 0.0  # such a server keeps its model loaded
        for refused in (lambda: remote.pull(TINY), remote.loaded, lambda: remote.unload(TINY)):
            with pytest.raises(
                InvalidInput, match=r"^vllm-box offers only the OpenAI API \(/v1\): it cannot"
            ):
                refused()
        with pytest.raises(ModelNotFound, match="not found on vllm-box"):
            remote.ensure("llama3.2")


def test_what_only_this_machines_store_does_is_refused_naming_the_server(pulled: Engine) -> None:
    with running_api(pulled) as url:
        remote = connect(url, name="gpu-box")
        for refused in (remote.verify, remote.prune, lambda: remote.store_proof("x")):
            with pytest.raises(InvalidInput, match="works on this machine's store, not on a server: gpu-box"):
                refused()


def test_a_server_that_dies_mid_reply_ends_it_with_one_line_after_the_tokens_it_sent() -> None:
    with dying_server(tokens=3) as url:
        remote = connect(url, name="dying-box")
        got: list[object] = []
        with pytest.raises(NetworkError) as failure:
            for event in remote.chat(DYING_MODEL, HI):
                got.append(event)
    assert [e.text for e in got if isinstance(e, Token)] == ["word0 ", "word1 ", "word2 "]
    message = str(failure.value)
    assert "dying-box" in message and "\n" not in message


def test_cancel_closes_the_stream_and_the_reply_ends_cancelled() -> None:
    left = threading.Event()
    with dying_server(1, client_left=left) as url:
        remote = connect(url)
        cancel = CancelToken()
        got: list[object] = []
        for event in remote.chat(DYING_MODEL, HI, cancel=cancel):
            got.append(event)
            if isinstance(event, Token):
                cancel.cancel()  # the stream is blocked on a silent server: only closing it ends the read
        assert left.wait(30), "the server never saw the connection close"
    assert isinstance(got[-1], Done) and got[-1].reason == "cancelled"


def test_a_server_needing_a_key_says_so_and_never_shows_the_key(pulled: Engine) -> None:
    with running_api(pulled, api_key="sekret-key") as url:
        with pytest.raises(AccessDenied, match="needs an API key: set LLAMADECK_API_KEY") as no_key:
            connect(url)
        with pytest.raises(AccessDenied, match="the API key given was refused") as wrong:
            connect(url, api_key="wrong-key")
        assert "wrong-key" not in str(wrong.value) and "sekret" not in str(no_key.value)
        remote = connect(url, api_key="sekret-key")
        assert [m.reference for m in remote.list_models()] == [TINY]


def test_nothing_listening_is_one_line_naming_the_address() -> None:
    with pytest.raises(NetworkError, match=r"^no server answers at 127\.0\.0\.1:9 "):
        connect("http://127.0.0.1:9", name="127.0.0.1:9")


def test_close_ends_what_waits_on_the_server() -> None:
    """The app quitting while a reply waits on a silent server: close() ends the read at once."""
    left = threading.Event()
    with dying_server(1, client_left=left) as url:
        remote = connect(url)
        events = remote.chat(DYING_MODEL, HI)
        assert isinstance(next(events), Token)  # the stream is open, and the server now says nothing
        remote.close()
        with pytest.raises(NetworkError, match="ended the reply before it was done|broke"):
            next(events)
        assert left.wait(30), "the server never saw the connection close"


def test_the_one_surface_names_every_method_the_remote_engine_answers_itself() -> None:
    """``engine.surface.EngineSurface`` is where the shared signatures are written (mypy checks both
    engines against it): a method the remote engine answers is in it, every other one is refused."""
    from engine import EngineSurface

    own = {
        name
        for name, member in vars(RemoteEngine).items()
        if not name.startswith("_")
        and (isinstance(member, property) or member.__qualname__.startswith("RemoteEngine."))
    }
    surface = {name for name in vars(EngineSurface) if not name.startswith("_")}
    assert own - {"url"} == surface  # url: where it is, which only a remote engine has
