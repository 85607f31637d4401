"""Images through the API with the real clients: each API family's image shape reaches the engine,
and what cannot be served (a URL, a blind model, a hostile image, bad base64) is a clear 400."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import ollama
import openai
import pytest

from engine import Engine
from engine.calls import ChatCall, GenerateCall
from engine.machine.memory import Machine
from tests.support.api_server import running_api
from tests.support.images import image_bytes, png_bomb
from tests.support.tiny_gguf import write_tiny_gguf
from tests.support.tiny_mmproj import write_tiny_mmproj

PNG = image_bytes("PNG")
URL_REFUSED = "image URLs are not currently supported, please use base64 encoded data instead"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("vision-api")
    return write_tiny_gguf(d / "Tiny-Q8_0.gguf")[0], write_tiny_mmproj(d / "mmproj-Tiny-F16.gguf")


@pytest.fixture
def engine(files: tuple[Path, Path]) -> Iterator[Engine]:
    engine = Engine(machine=lambda: Machine(free_ram=16 << 30, gpu_free_vram=None))
    model, projector = files
    engine.create("eyes", f"FROM {model}\nFROM {projector}\n")
    engine.create("blind", f"FROM {model}\n")
    yield engine
    engine.close()


@pytest.fixture
def server(engine: Engine) -> Iterator[str]:
    with running_api(engine) as base_url:
        yield base_url


def test_images_reach_the_request_as_checked_bytes(engine: Engine) -> None:
    chat = engine._chat_request(ChatCall("eyes", [{"role": "user", "content": "what?", "images": [PNG]}]))
    assert chat.messages[0].images == (PNG,)
    b64 = base64.b64encode(PNG).decode()
    generate = engine._generate_request(GenerateCall("eyes", "what?", images=[b64]))
    assert generate.messages[-1].images == (PNG,)


def test_a_model_without_vision_answers_ollamas_400(server: str) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        ollama.Client(host=server).generate("blind", "what is it?", images=[PNG])
    assert caught.value.status_code == 400 and "blind does not support vision" in caught.value.error
    with pytest.raises(ollama.ResponseError, match="does not support vision"):
        ollama.Client(host=server).chat("blind", [{"role": "user", "content": "?", "images": [PNG]}])


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (image_bytes("GIF"), "is not a JPEG, PNG or WebP image"),
        (image_bytes("JPEG", (64, 64))[:200], "is not a readable image"),
        (png_bomb(), "8,000x6,000 pixels"),
    ],
    ids=["gif", "truncated", "bomb"],
)
def test_hostile_images_are_400s_from_the_ollama_client(server: str, image: bytes, message: str) -> None:
    with pytest.raises(ollama.ResponseError, match=message) as caught:
        ollama.Client(host=server).chat("eyes", [{"role": "user", "content": "?", "images": [image]}])
    assert caught.value.status_code == 400


def test_bad_base64_is_a_400(server: str) -> None:
    body = {"model": "eyes", "prompt": "?", "images": ["not base64!"], "stream": False}
    reply = httpx.post(f"{server}/api/generate", json=body)
    assert reply.status_code == 400 and "base64" in reply.json()["error"]
    reply = httpx.post(f"{server}/api/generate", json={**body, "images": "abc"})
    assert reply.status_code == 400 and "images must be a list of base64 strings" in reply.json()["error"]


def test_openai_image_urls_are_refused_with_ollamas_words_and_data_urls_are_read(server: str) -> None:
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)

    def ask(url: str, model: str = "eyes") -> None:
        part = {"type": "image_url", "image_url": {"url": url}}
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": [{"type": "text", "text": "?"}, part]}]
        )

    with pytest.raises(openai.BadRequestError, match=URL_REFUSED):
        ask("https://example.com/cat.png")
    with pytest.raises(openai.BadRequestError, match="invalid image input"):
        ask("data:image/gif;base64," + base64.b64encode(PNG).decode())
    with pytest.raises(openai.BadRequestError, match="blind does not support vision"):
        ask("data:image/png;base64," + base64.b64encode(PNG).decode(), "blind")  # read, then refused
    with pytest.raises(openai.BadRequestError, match="is not a JPEG, PNG or WebP image"):
        ask("data:;base64," + base64.b64encode(b"plain text").decode())


def test_responses_input_images_follow_the_same_rules(server: str) -> None:
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)

    def ask(url: str, model: str = "eyes") -> None:
        content = [{"type": "input_text", "text": "?"}, {"type": "input_image", "image_url": url}]
        client.responses.create(model=model, input=[{"role": "user", "content": content}])  # type: ignore[misc, list-item]

    with pytest.raises(openai.BadRequestError, match=URL_REFUSED):
        ask("http://example.com/cat.png")
    with pytest.raises(openai.BadRequestError, match="blind does not support vision"):
        ask("data:image/png;base64," + base64.b64encode(PNG).decode(), "blind")


def test_anthropic_takes_base64_image_blocks_only(server: str) -> None:
    client = anthropic.Anthropic(base_url=server, api_key="unused", max_retries=0)

    def ask(source: dict[str, str], model: str = "eyes") -> None:
        blocks = [{"type": "image", "source": source}, {"type": "text", "text": "?"}]
        client.messages.create(model=model, max_tokens=8, messages=[{"role": "user", "content": blocks}])  # type: ignore[misc, list-item]

    with pytest.raises(anthropic.BadRequestError, match="Only base64 images are supported"):
        ask({"type": "url", "url": "https://example.com/cat.png"})
    b64 = base64.b64encode(PNG).decode()
    with pytest.raises(anthropic.BadRequestError, match="blind does not support vision"):
        ask({"type": "base64", "media_type": "image/png", "data": b64}, "blind")
    with pytest.raises(anthropic.BadRequestError, match="invalid base64 image data"):
        ask({"type": "base64", "media_type": "image/png", "data": "%%%"})


def test_each_api_family_chats_about_an_image(server: str) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    reply = ollama.Client(host=server).chat(
        "eyes", [{"role": "user", "content": "what is it?", "images": [PNG]}], options={"num_predict": 3}
    )
    assert reply.done and reply.prompt_eval_count and reply.prompt_eval_count > 4  # the image's tokens count
    assert ollama.Client(host=server).generate("eyes", "and?", images=[PNG], options={"num_predict": 2}).done
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    parts = [{"type": "text", "text": "?"}, {"type": "image_url", "image_url": {"url": data_url}}]
    chat = client.chat.completions.create(
        model="eyes", max_tokens=2, messages=[{"role": "user", "content": parts}]
    )  # type: ignore[misc, list-item]
    assert chat.choices[0].finish_reason in ("length", "stop")
    content = [{"type": "input_text", "text": "?"}, {"type": "input_image", "image_url": data_url}]
    response = client.responses.create(
        model="eyes", max_output_tokens=2, input=[{"role": "user", "content": content}]
    )  # type: ignore[misc, list-item]
    assert response.status in ("completed", "incomplete")
    blocks = [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": data_url.split(",")[1]},
        }
    ]
    message = anthropic.Anthropic(base_url=server, api_key="unused", max_retries=0).messages.create(
        model="eyes",
        max_tokens=2,
        messages=[{"role": "user", "content": [*blocks, {"type": "text", "text": "?"}]}],  # type: ignore[misc, list-item]
    )
    assert message.stop_reason in ("max_tokens", "end_turn")


def test_two_image_chats_and_a_text_chat_decode_together(server: str) -> None:
    import concurrent.futures

    red, blue = image_bytes("PNG", (50, 20), (255, 0, 0)), image_bytes("JPEG", (20, 50), (0, 0, 255))
    asks = [
        [{"role": "user", "content": "red?", "images": [red]}],
        [{"role": "user", "content": "blue?", "images": [blue]}],
        [{"role": "user", "content": "just text"}],
    ]

    def chat(messages: list) -> ollama.ChatResponse:
        return ollama.Client(host=server).chat(
            "eyes", messages, options={"num_predict": 8, "temperature": 0, "num_parallel": 3}
        )

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        replies = list(pool.map(chat, asks))
    assert all(r.done and r.eval_count for r in replies)
