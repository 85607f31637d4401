"""Images through another machine's server: the facade's chat and generate, ``run "what is in ./photo.png"``.

The other machine holds a model that can see (the tiny model with a tiny
projector) and one that cannot. Its server gets the images as base64
``images`` (Ollama's routes) or as ``image_url`` data URLs (a /v1-only
server); the same prompt and image count the same prompt tokens there as on
the server's own engine, so the image really arrived. The command line sends
a prompt's image paths to a named server, and to a running serve it hands
its prompt to.
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import CancelToken, Done, Engine, InvalidInput, connect
from engine.templates.message import Message
from tests.support.api_server import running_api, running_asgi
from tests.support.cli import LLAMADECK, assert_one_line_error
from tests.support.images import image_bytes
from tests.support.partial_servers import openai_only, second_machine
from tests.support.tiny_gguf import write_tiny_gguf
from tests.support.tiny_mmproj import write_tiny_mmproj
from tui.cli.running import _generate_on_server
from tui.client import server_for_store

PNG = image_bytes("PNG", (28, 28), (250, 10, 10))
OPTIONS = {"num_predict": 4, "temperature": 0}


@pytest.fixture
def gpu_box(tmp_path: Path) -> Iterator[Engine]:
    with second_machine(tmp_path) as engine:
        model = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
        projector = write_tiny_mmproj(tmp_path / "mmproj-Tiny-F16.gguf")
        engine.create("eyes", f"FROM {model}\nFROM {projector}\n")
        engine.create("blind", f"FROM {model}\n")
        yield engine


def prompt_tokens(events: Iterator[object]) -> int:
    (done,) = [e for e in events if isinstance(e, Done)]
    return done.prompt_tokens


def test_chat_and_generate_send_images_to_both_kinds_of_server(gpu_box: Engine) -> None:
    asked = [Message("user", "what is in it?", (PNG,))]
    here = prompt_tokens(gpu_box.chat("eyes", asked, options=OPTIONS))
    without = prompt_tokens(gpu_box.chat("eyes", [{"role": "user", "content": "what is in it?"}]))
    assert here > without  # the image takes tokens of its own
    as_text = [{"role": "user", "content": "what is in it?", "images": [base64.b64encode(PNG).decode()]}]
    for server in (running_api(gpu_box), running_asgi(openai_only(gpu_box))):
        with server as url:
            remote = connect(url, name="gpu-box")
            assert prompt_tokens(remote.chat("eyes:latest", asked, options=OPTIONS)) == here, url
            assert prompt_tokens(remote.chat("eyes:latest", as_text, options=OPTIONS)) == here
            generated = remote.generate("eyes:latest", "what is in it?", images=[PNG], max_tokens=4)
            assert prompt_tokens(generated) > without
            with pytest.raises(InvalidInput, match=r"vision.*\(on gpu-box\)$"):
                list(remote.chat("blind:latest", asked))


def llamadeck(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LLAMADECK, *args],
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def test_run_sends_a_prompts_image_paths_to_the_named_server(gpu_box: Engine, tmp_path: Path) -> None:
    (tmp_path / "photo.png").write_bytes(PNG)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    flags = ("-n", "12", "-t", "0", "--seed", "1")
    for server in (running_api(gpu_box), running_asgi(openai_only(gpu_box))):
        with server as url:
            host = url.removeprefix("http://")
            seen = llamadeck(
                "--host", host, "run", "eyes:latest", "what is in ./photo.png", *flags, cwd=tmp_path
            )
            text_only = llamadeck("--host", host, "run", "eyes:latest", "what is in", *flags, cwd=tmp_path)
            bad = llamadeck(
                "--host", host, "run", "eyes:latest", "what is in ./bad.png", *flags, cwd=tmp_path
            )
        assert seen.returncode == 0 and text_only.returncode == 0, seen.stderr + text_only.stderr
        assert seen.stdout != text_only.stdout, url  # the image changed the reply
        assert_one_line_error(bad, "image")


def test_a_running_serve_that_run_hands_its_prompt_to_gets_the_images(gpu_box: Engine) -> None:
    args = argparse.Namespace(model="eyes", max_tokens=4, temperature=0.0, seed=1, raw=False)
    with running_api(gpu_box) as url:
        got: list[object] = []
        for images in ([], [PNG]):  # the text first: a second that lost its image would be all cached
            server = server_for_store(lambda _: "", {"LLAMADECK_HOST": url.removeprefix("http://")})
            assert server is not None
            _generate_on_server(server, args, "what is in it?", None, CancelToken(), got.append, images)
    without, with_image = [e.prompt_tokens for e in got if isinstance(e, Done)]
    assert with_image > without
