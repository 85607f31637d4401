"""A Hub repository's quantizations through another machine's server, as the pull dialog lists them.

A llamadeck server surveys the repository itself (``/api/llamadeck/variants``)
and says which quantizations fit its machine, where the model would run; the
list is the one its own engine gives. An Ollama-shaped server picks the
quantization itself, so the dialog pulls what the user typed (REPO:QUANT).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Cancelled, CancelToken, Engine, Fit, InvalidInput, InvalidReference, Status, connect
from tests.support.api_server import running_api, running_asgi
from tests.support.partial_servers import ollama_only, second_machine

REPO = "hf.co/acme/Tiny-GGUF"


@pytest.fixture
def gpu_box(tmp_path: Path) -> Iterator[Engine]:
    with second_machine(tmp_path) as engine:
        yield engine


def test_a_llamadeck_server_lists_what_its_own_engine_lists(gpu_box: Engine) -> None:
    here = gpu_box.variants(REPO)
    assert [v.quant for v in here] == ["Q8_0"] and here[0].fits_in is Fit.RAM and here[0].recommended
    with running_api(gpu_box) as url:
        remote = connect(url, name="gpu-box")
        events: list[object] = []
        assert remote.llamadeck and remote.variants(REPO, on_event=events.append) == here
        assert any(isinstance(e, Status) and "gpu-box" in e.message for e in events)
        with pytest.raises(InvalidInput, match=r"is not a Hugging Face reference.*\(on gpu-box\)"):
            remote.variants("tiny:latest")  # a 400, in the engine's words


def test_an_ollama_shaped_server_lets_the_user_type_the_tag(gpu_box: Engine) -> None:
    with running_asgi(ollama_only(gpu_box)) as url:
        remote = connect(url, name="ollama-box")
        assert not remote.llamadeck
        with pytest.raises(
            InvalidReference, match="ollama-box picks the quantization: name one as REPO:QUANT"
        ):
            remote.variants(REPO)


def test_cancel_ends_the_wait_for_an_answer() -> None:
    """A server that takes its time (a raw socket that answers nothing): the dialog's Esc ends the wait."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    try:
        from engine.remote.wire import Wire

        wire = Wire(f"http://127.0.0.1:{listener.getsockname()[1]}", api_key=None, name="slow-box")
        cancel = CancelToken()
        threading.Timer(
            0.2, cancel.cancel
        ).start()  # before, during or after the send: Cancelled all the same
        with pytest.raises(Cancelled):
            wire.json("POST", "/api/llamadeck/variants", {"model": REPO}, timeout=None, cancel=cancel)
    finally:
        listener.close()
        for connection in accepted:
            connection.close()
