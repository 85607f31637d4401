"""Hostile bodies against the limits of ``api.limits`` and the blob limit, on a real uvicorn (issue 18).

Each case was reproduced against the unbounded server first: a 57 MB body of
``{}`` messages took 1.5 GB before its 400 (finding 9), ``/api/blobs`` took any
size (finding 5), ``1e300`` reached the engine as a temperature, 200,000
embedding inputs kept a core busy for minutes (finding 8). Every refusal here is
a 4xx that names its limit, in the shape of the route's API.

The bodies that must be refused *while they are read* are sent over a raw
socket and never finished: an answer proves the server did not wait for the rest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import limits
from engine import Engine, Machine
from tests.support.api_server import running_api
from tests.support.chain_gguf import token_id, write_chain_gguf
from tests.support.fake_hub import FakeHub, isolated_hf_env
from tests.support.tiny_gguf import write_tiny_gguf

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)
MODEL = "hf.co/acme/Tiny-GGUF:Q8_0"
EMBEDDER = "hf.co/acme/Embed-GGUF:F32"
SHORT = {"num_predict": 4}  # a request that gets past every bound still answers quickly
EMPTY_SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


class Served:
    def __init__(self, engine: Engine, home: Path, base_url: str) -> None:
        self.engine = engine
        self.home = home
        self.base_url = base_url


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("bounds")
    model = write_tiny_gguf(root / "Tiny-Q8_0.gguf")[0]
    embedder = write_chain_gguf(root / "Embed-F32.gguf", {token_id("h"): 2, token_id("w"): 2}, pooling=1)
    with isolated_hf_env(root / "hf-home"), FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": model})
        hub.add_repo("acme/Embed-GGUF", {"Embed-F32.gguf": embedder})
        engine = Engine(root / "store", machine=lambda: CPU_BOX)
        try:
            engine.pull("acme/Tiny-GGUF")
            engine.pull("acme/Embed-GGUF")
            with running_api(engine) as base_url:
                yield Served(engine, root / "store", base_url)
        finally:
            engine.close()


def post(api: Served, path: str, body: dict[str, Any] | bytes) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(api.base_url + path, content=content, timeout=120)


def message_of(response: httpx.Response) -> str:
    error = response.json()["error"]
    return error["message"] if isinstance(error, dict) else error


def raw_post(api: Served, path: str, chunks: list[bytes], *, declared: int | None = None) -> tuple[int, str]:
    """POST ``chunks`` and never finish the body: (status, error message) of the answer.

    Chunked, without the last chunk; or with a ``Content-Length`` of ``declared``, larger than what is sent.
    """
    host, port = api.base_url.removeprefix("http://").split(":")
    framing = "Transfer-Encoding: chunked" if declared is None else f"Content-Length: {declared}"
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json", framing]
    reply = b""
    with socket.create_connection((host, int(port)), timeout=60) as connection:
        connection.sendall(("\r\n".join([*lines, "Connection: close"]) + "\r\n\r\n").encode())
        for chunk in chunks:
            connection.sendall(chunk if declared else f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        try:
            while data := connection.recv(65536):
                reply += data
        except ConnectionResetError:  # the server closed with our unread rest: the answer came first
            pass
    head, _, body = reply.partition(b"\r\n\r\n")
    error = json.loads(body)["error"]
    return int(head.split()[1]), error["message"] if isinstance(error, dict) else error


# request bodies: bytes, values, nesting (finding 9) ------------------------------------


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions"])
def test_a_body_of_empty_objects_is_refused_while_it_is_read(api: Served, path: str) -> None:
    """Finding 9: ``{}`` messages, ~25x once parsed; refused at the value limit, before the body ends."""
    items = limits.MAX_JSON_VALUES // 2 + 1  # each "{}," is an object and an item
    head = json.dumps({"model": MODEL}).encode()[:-1] + b', "messages": ['
    status, message = raw_post(api, path, [head, b"{}," * items, b"{}"])
    assert status == 413
    assert f"{limits.MAX_JSON_VALUES:,} JSON values" in message


def test_a_body_larger_than_the_json_limit_is_413_declared_or_counted(api: Served) -> None:
    big = b'{"model": "' + b"x" * (limits.MAX_JSON_BYTES + 1) + b'"}'
    response = post(api, "/api/show", big)
    assert response.status_code == 413 and f"larger than {limits.MAX_JSON_BYTES >> 20} MiB" in message_of(
        response
    )
    status, message = raw_post(api, "/v1/embeddings", [big[: 1 << 20]] * 17)
    assert status == 413 and f"larger than {limits.MAX_JSON_BYTES >> 20} MiB" in message


def nested(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth - 1):
        value = {"properties": value}
    return value


def test_nesting_deeper_than_the_limit_is_400_and_the_limit_itself_passes(api: Served) -> None:
    tool: dict[str, Any] = {
        "type": "function",
        "function": {"name": "f", "parameters": nested(limits.MAX_JSON_DEPTH - 4)},
    }
    deep = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [tool],
        "options": SHORT,
    }
    assert post(api, "/api/chat", deep | {"stream": False}).status_code == 200  # 64 levels with the body's
    tool["function"]["parameters"] = nested(limits.MAX_JSON_DEPTH - 3)
    response = post(api, "/api/chat", deep)
    assert response.status_code == 400
    assert f"nested more than {limits.MAX_JSON_DEPTH} levels" in message_of(response)


def test_brackets_and_commas_inside_strings_are_text_not_values(api: Served) -> None:
    """The value count skips strings (escaped quotes included): a prompt of JSON-looking text passes."""
    text = '\\"[{,:' * (limits.MAX_JSON_VALUES // 4) + '"'
    response = post(api, "/api/generate", {"model": MODEL, "prompt": text, "stream": False, "options": SHORT})
    assert response.status_code == 400 and "context" in message_of(
        response
    )  # the prompt is too long, no more


def test_a_body_in_utf_16_is_400_not_miscounted(api: Served) -> None:
    """Python's json reads UTF-16 too, whose escaped quotes the count (of UTF-8) would not see."""
    body = json.dumps({"model": MODEL, "prompt": '\\"', "stream": False, "options": SHORT})
    response = post(api, "/api/generate", body.encode("utf-16"))
    assert response.status_code == 400 and "UTF-8" in message_of(response)
    assert post(api, "/api/generate", body.encode("utf-8-sig")).status_code == 200


@pytest.mark.parametrize(
    ("path", "field", "limit", "item"),
    [
        ("/api/chat", "messages", limits.MAX_MESSAGES, {"role": "user", "content": "hi"}),
        ("/v1/chat/completions", "messages", limits.MAX_MESSAGES, {"role": "user", "content": "hi"}),
        ("/api/create", "messages", limits.MAX_MESSAGES, {"role": "user", "content": "hi"}),
        ("/api/chat", "tools", limits.MAX_TOOLS, {"type": "function", "function": {"name": "f"}}),
        ("/v1/chat/completions", "tools", limits.MAX_TOOLS, {"type": "function", "function": {"name": "f"}}),
        ("/api/generate", "images", limits.MAX_IMAGES, "aGk="),
    ],
)
def test_too_many_items_in_a_field_is_400_naming_the_limit(
    api: Served, path: str, field: str, limit: int, item: object
) -> None:
    body: dict[str, Any] = {"model": "scratch" if path == "/api/create" else MODEL, "from": MODEL}
    body |= {"prompt": "hi", "messages": [{"role": "user", "content": "hi"}], "options": SHORT}
    body[field] = [item] * (limit + 1)
    response = post(api, path, body)
    assert response.status_code == 400, response.text[:200]
    assert field in message_of(response) and f"{limit:,}" in message_of(response)


def test_images_are_counted_over_all_messages(api: Served) -> None:
    message = {"role": "user", "content": "hi", "images": ["aGk="] * (limits.MAX_IMAGES // 2 + 1)}
    response = post(api, "/api/chat", {"model": MODEL, "messages": [message, message]})
    assert response.status_code == 400 and f"{limits.MAX_IMAGES:,} images" in message_of(response)


@pytest.mark.parametrize(("path", "field"), [("/api/generate", "options"), ("/api/create", "parameters")])
def test_too_many_options_is_400(api: Served, path: str, field: str) -> None:
    options = {f"o{i}": 1 for i in range(limits.MAX_OPTIONS + 1)}
    response = post(api, path, {"model": "scratch", "from": MODEL, "prompt": "hi", field: options})
    assert response.status_code == 400 and f"{limits.MAX_OPTIONS:,}" in message_of(response)


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/api/generate", {"model": MODEL, "prompt": "TEXT"}, "prompt"),
        (
            "/api/chat",
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "TEXT"}],
            },
            "messages[1].content",
        ),
        (
            "/v1/chat/completions",
            {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "text", "text": "TEXT"}]}]},
            "messages[0].content[0].text",
        ),
        ("/api/create", {"model": "scratch", "from": MODEL, "template": "TEXT"}, "template"),
    ],
)
def test_a_text_longer_than_the_limit_is_400_naming_the_field(
    api: Served, path: str, body: dict[str, Any], where: str
) -> None:
    raw = json.dumps(body | {"options": SHORT}).replace("TEXT", "x" * (limits.MAX_TEXT_CHARS + 1))
    response = post(api, path, raw.encode())
    assert response.status_code == 400
    assert message_of(response).startswith(f"{where} is longer than {limits.MAX_TEXT_CHARS:,} characters")


TRICKY_TEXT = st.text(st.sampled_from('ab"\\[]{},: \u00e9\U0001f600'), max_size=12)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63) + 1, 2**63 - 1) | TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY_TEXT, inner, max_size=4),
    max_leaves=40,
)


def built(value: Any) -> int:
    """The values a parser builds for ``value``: containers, keys and items."""
    if isinstance(value, dict):
        return 1 + sum(1 + built(v) for v in value.values())
    return 1 + sum(built(v) for v in value) if isinstance(value, list) else 1


def depth(value: Any) -> int:
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    return 0 if children is None else 1 + max((depth(c) for c in children), default=0)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, st.booleans(), st.lists(st.integers(1, 9), min_size=1, max_size=8))
def test_the_shape_counts_what_parsing_builds_however_the_body_is_cut(
    value: Any, ascii_only: bool, cuts: list[int]
) -> None:
    """Strings with quotes, backslashes and brackets are skipped exactly, across any chunk boundary."""
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    shape = limits.JsonShape()
    start = 0
    for size in cuts * (len(body) // sum(cuts) + 1):
        shape.feed(body[start : start + size])
        start += size
    assert built(value) <= shape.values + 1 <= 2 * built(value)  # a bound, and a close one
    assert shape.too_deep() is False and shape.parse(body) == value


@pytest.mark.parametrize("levels", [limits.MAX_JSON_DEPTH, limits.MAX_JSON_DEPTH + 1])
def test_the_shape_measures_nesting_with_strings_in_the_way(levels: int) -> None:
    value: Any = [']]\\"[{']
    while depth(value) < levels:
        value = [{"k]": value, "\\": "}}"}] if levels - depth(value) >= 2 else [value, "[["]
    assert depth(value) == levels
    body = json.dumps(value).encode()
    shape = limits.JsonShape()
    shape.feed(body)
    assert shape.too_deep() is (depth(value) > limits.MAX_JSON_DEPTH)


# numbers -------------------------------------------------------------------------


NUMERIC_FIELDS: list[tuple[str, dict[str, Any]]] = [
    ("/api/generate", {"prompt": "hi", "options": {"temperature": "N", "num_predict": 4}}),
    ("/api/generate", {"prompt": "hi", "options": {"num_ctx": "N", "num_predict": 4}}),
    ("/api/generate", {"prompt": "hi", "keep_alive": "N", "options": SHORT}),
    (
        "/api/chat",
        {"messages": [{"role": "user", "content": "hi"}], "options": {"top_p": "N", "num_predict": 4}},
    ),
    ("/api/embed", {"model": EMBEDDER, "input": "hi", "dimensions": "N"}),
    ("/api/embed", {"model": EMBEDDER, "input": "hi", "keep_alive": "N"}),
    (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "hi"}], "temperature": "N", "max_tokens": 4},
    ),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": "N"}),
    ("/v1/completions", {"prompt": "hi", "frequency_penalty": "N", "max_tokens": 4}),
    ("/v1/embeddings", {"model": EMBEDDER, "input": "hi", "dimensions": "N"}),
    ("/api/create", {"model": "scratch", "from": MODEL, "parameters": {"repeat_penalty": "N"}}),
]
HUGE = ["1e300", "-1e300", "1" * 10_000, "-" + "9" * 30, "1e999", "NaN", "-Infinity"]


@pytest.mark.parametrize("number", HUGE, ids=lambda n: n if len(n) < 12 else f"{len(n)}-chars")
def test_a_huge_number_in_any_numeric_field_is_400_never_500(api: Served, number: str) -> None:
    for path, body in NUMERIC_FIELDS:
        raw = json.dumps({"model": MODEL, "stream": False} | body).replace('"N"', number)  # body's model wins
        response = post(api, path, raw.encode())
        assert response.status_code == 400, (
            f"{path} {raw[:120]}: {response.status_code} {response.text[:200]}"
        )
        assert "number" in message_of(response)
    assert httpx.get(api.base_url + "/api/ps").status_code == 200


# embedding inputs ------------------------------------------------------------------


@pytest.mark.parametrize(("path", "field"), [("/api/embed", "input"), ("/v1/embeddings", "input")])
def test_embedding_inputs_are_bounded_in_count_and_size(api: Served, path: str, field: str) -> None:
    response = post(api, path, {"model": EMBEDDER, field: ["h"] * (limits.MAX_EMBED_INPUTS + 1)})
    assert response.status_code == 400 and f"{limits.MAX_EMBED_INPUTS:,} inputs" in message_of(response)
    size = limits.MAX_EMBED_CHARS // 4 + 1
    response = post(api, path, {"model": EMBEDDER, field: ["h" * size] * 4})
    assert response.status_code == 400 and f"{limits.MAX_EMBED_CHARS:,} characters" in message_of(response)


def test_the_legacy_embeddings_prompt_is_bounded(api: Served) -> None:
    response = post(api, "/api/embeddings", {"model": EMBEDDER, "prompt": "h" * (limits.MAX_EMBED_CHARS + 1)})
    assert response.status_code == 400 and f"{limits.MAX_EMBED_CHARS:,} characters" in message_of(response)


def test_embedding_inputs_at_the_count_limit_are_served(api: Served) -> None:
    response = post(api, "/api/embed", {"model": EMBEDDER, "input": ["hw"] * limits.MAX_EMBED_INPUTS})
    assert response.status_code == 200 and len(response.json()["embeddings"]) == limits.MAX_EMBED_INPUTS


# blob uploads (finding 5) --------------------------------------------------------------


def leftovers(api: Served) -> list[Path]:
    return sorted((api.home / "partial").glob("upload-*"))


def test_a_blob_declared_over_the_limit_is_413_before_it_is_read(
    api: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMADECK_MAX_BLOB_BYTES", "1000")
    data = b"x" * 1001
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    response = httpx.post(f"{api.base_url}/api/blobs/{digest}", content=data)
    assert response.status_code == 413 and "LLAMADECK_MAX_BLOB_BYTES" in message_of(response)
    assert "1,000 bytes" in message_of(response)
    assert httpx.head(f"{api.base_url}/api/blobs/{digest}").status_code == 404
    assert leftovers(api) == []


def test_a_streamed_blob_over_the_limit_is_413_while_it_is_read(
    api: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMADECK_MAX_BLOB_BYTES", "1KiB")
    digest = "sha256:" + "ab" * 32
    status, message = raw_post(api, f"/api/blobs/{digest}", [b"x" * 600, b"x" * 600])
    assert status == 413 and "1,024 bytes" in message
    assert leftovers(api) == []
    assert httpx.head(f"{api.base_url}/api/blobs/{digest}").status_code == 404


def test_a_blob_at_the_limit_is_stored(api: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"y" * 1000
    monkeypatch.setenv("LLAMADECK_MAX_BLOB_BYTES", str(len(data)))
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert httpx.post(f"{api.base_url}/api/blobs/{digest}", content=data).status_code == 201
    assert httpx.head(f"{api.base_url}/api/blobs/{digest}").status_code == 200


def test_a_blob_larger_than_the_free_disk_is_507_before_it_is_read(
    api: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMADECK_MAX_BLOB_BYTES", str(1 << 62))
    status, message = raw_post(api, f"/api/blobs/sha256:{'cd' * 32}", [b"x" * 10], declared=1 << 61)
    assert status == 507 and "free" in message
    assert leftovers(api) == []


def test_a_bad_blob_limit_setting_is_named_in_the_answer(
    api: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMADECK_MAX_BLOB_BYTES", "lots")
    response = httpx.post(f"{api.base_url}/api/blobs/sha256:{EMPTY_SHA}", content=b"")
    assert response.status_code == 500 and "LLAMADECK_MAX_BLOB_BYTES" in message_of(response)
    assert leftovers(api) == []


# the server's log ------------------------------------------------------------------


def test_writes_after_a_disconnect_are_not_logged_but_other_asyncio_warnings_are(
    api: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """asyncio warns ``socket.send() raised exception.`` when a response is written after its client left."""
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        logging.getLogger("asyncio").warning("socket.send() raised exception.")
        logging.getLogger("asyncio").warning("Executing <Task> took 1.5 seconds")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["Executing <Task> took 1.5 seconds"]
