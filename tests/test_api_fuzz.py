"""Every route of the OpenAPI document, fuzzed on a real uvicorn: never a 5xx, every 4xx in its API's shape.

Schemathesis reads ``/openapi.json`` from the running server (the request
bodies there come from ``api.schema``) and generates, per operation, bodies
that fit the schema and bodies that break it (wrong types, missing or extra
fields, odd unicode, huge numbers). The engine is real, with a tiny
generative model and a tiny embedding model in its store, so part of the
requests reach llama.cpp: their model names are swapped for the stored ones
(deterministically, for two cases in three) and their reply lengths capped.

Ollama's routes answer a 4xx as ``{"error": "..."}``; OpenAI's (``/v1``) as
``{"error": {"message": "...", ...}}``; Anthropic's (``/v1/messages``) as
``{"type": "error", "error": {"type", "message"}}``. Runs derandomized: CI sees the same cases.
"""

from __future__ import annotations

import json
import socket
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case, GenerationMode

from api.app import create_app
from api.limits import MAX_JSON_BYTES
from engine import Engine, Machine
from tests.support.api_server import running_api
from tests.support.chain_gguf import token_id, write_chain_gguf
from tests.support.fake_hub import FakeHub, isolated_hf_env
from tests.support.tiny_gguf import write_tiny_gguf

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)
MODEL = "hf.co/acme/Tiny-GGUF:Q8_0"
EMBEDDER = "hf.co/acme/Embed-GGUF:F32"
REPLY_TOKENS = 4  # the most tokens a fuzzed request may ask for: replies stay cheap
GENERATING = (
    "/api/generate",
    "/api/chat",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/responses",
    "/v1/messages",
)
SERVING = [*GENERATING, "/api/embed", "/api/embeddings", "/v1/embeddings", "/api/show", "/api/create"]
CONTEXT = 512  # the largest num_ctx a fuzzed request may load with (see tame)
SERVED_EXAMPLES = 60  # per generating route, of bodies that fit the schema
EXAMPLES = 30  # per operation, besides schemathesis's coverage cases: the file stays near a minute


class Fixture:
    """The engine, its hub and the server, shared by every case of the module."""

    def __init__(self, engine: Engine, base_url: str) -> None:
        self.engine = engine
        self.base_url = base_url

    def restock(self) -> None:
        """Pull the two models again if a fuzzed ``/api/delete`` removed them (from the fake hub: quick)."""
        present = {m.reference for m in self.engine.list_models()}
        for reference, repo in ((MODEL, "acme/Tiny-GGUF"), (EMBEDDER, "acme/Embed-GGUF")):
            if reference not in present:
                self.engine.pull(repo)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    root = tmp_path_factory.mktemp("fuzz")
    model = write_tiny_gguf(root / "Tiny-Q8_0.gguf")[0]
    embedder = write_chain_gguf(root / "Embed-F32.gguf", {token_id("h"): 2, token_id("w"): 2}, pooling=1)
    with isolated_hf_env(root / "hf-home"), FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": model})
        hub.add_repo("acme/Embed-GGUF", {"Embed-F32.gguf": embedder})
        engine = Engine(root / "store", machine=lambda: CPU_BOX)
        try:
            fixture = Fixture(engine, "")
            fixture.restock()
            with running_api(engine) as base_url:
                fixture.base_url = base_url
                yield fixture
        finally:
            engine.close()


def openapi_document() -> dict[str, Any]:
    """The app's OpenAPI document, which does not depend on the store (the engine here never opens one).

    Loaded at import, as ``schema.parametrize`` needs it at collection: schemathesis's lazy
    ``from_fixture`` does not run on pytest 9 (it reads ``Function._nodeid``, gone there).
    """
    engine = Engine(Path(tempfile.gettempdir()) / "llamadeck-fuzz-unused", machine=lambda: CPU_BOX)
    return create_app(engine).openapi()


schema = schemathesis.openapi.from_dict(openapi_document())  # every phase, bodies that fit and that do not
served = schemathesis.openapi.from_dict(openapi_document()).include(method="POST", path=SERVING)
served.config.phases.update(phases=["fuzzing"])  # bodies that fit the schema: most reach the engine
served.config.generation.update(modes=[GenerationMode.POSITIVE])


def test_the_server_serves_the_document_the_cases_come_from(api: Fixture) -> None:
    assert httpx.get(f"{api.base_url}/openapi.json").json() == openapi_document()


def stored_model(value: object, path: str) -> object:
    """Two names in three become a stored model, so generation runs; the third stays as generated."""
    if not isinstance(value, str):
        return value
    pick = zlib.crc32(value.encode("utf-8", "surrogatepass")) % 3
    if pick == 0:
        return value
    embedding = "embed" in path
    return EMBEDDER if (pick == 1) == embedding else MODEL


def capped(value: object) -> object:
    """A reply length of at most REPLY_TOKENS; a value of the wrong type stays (it must be a 400)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and not 0 <= value <= REPLY_TOKENS:
        return REPLY_TOKENS
    return value


def tame(path: str, body: object) -> None:
    """Point the body at the stored models and cap its reply, in place."""
    if not isinstance(body, dict):
        return
    for field in ("model", "source", "from"):
        if field in body:
            body[field] = stored_model(body[field], path)
    if path not in GENERATING:
        return
    if path.startswith("/v1/"):
        fields = (
            ("max_output_tokens",) if path == "/v1/responses" else ("max_tokens", "max_completion_tokens")
        )
        for field in fields:
            if field in body:
                body[field] = capped(body[field])
        if all(body.get(field) is None for field in fields):
            body[fields[0]] = REPLY_TOKENS
        return
    options = body.setdefault("options", {})
    if isinstance(options, dict):
        options["num_predict"] = capped(options.get("num_predict", REPLY_TOKENS))
        num_ctx = options.get("num_ctx")
        if isinstance(num_ctx, int | float) and not isinstance(num_ctx, bool) and num_ctx > CONTEXT:
            options["num_ctx"] = CONTEXT  # small contexts keep the many reloads cheap


def assert_answered(path: str, status: int, content_type: str, body: bytes) -> None:
    """No 5xx; a 4xx is JSON in the shape of the API the path belongs to, with a message in it."""
    assert status < 500, f"{status} {body[:300]!r}"
    if status < 400 or not body:  # HEAD: the status is the answer
        return
    assert content_type.startswith("application/json"), content_type
    error = json.loads(body)["error"]
    if path.startswith("/v1/messages"):
        assert json.loads(body)["type"] == "error" and isinstance(error["type"], str), body
    if path.startswith("/v1/"):
        assert isinstance(error, dict) and isinstance(error["message"], str) and error["message"], body
    else:
        assert isinstance(error, str) and error, body


def assert_stream(content_type: str, body: bytes) -> None:
    """A 200 stream is whole lines of JSON (NDJSON) or ``data:`` events of JSON (SSE), errors included.

    Events may be named first (``event: <type>`` before their ``data:``: the Responses and Anthropic APIs).

    Schemathesis stops reading an event stream after a number of events, so ``[DONE]`` may be unread.
    """
    if content_type.startswith("application/x-ndjson"):
        for line in body.splitlines():
            json.loads(line)
    elif content_type.startswith("text/event-stream"):
        for event in body.split(b"\n\n")[:-1]:  # the last one may be cut short
            if event.startswith(b"event: "):
                name, _, event = event.partition(b"\n")
                assert json.loads(event[len(b"data: ") :])["type"] == name[len(b"event: ") :].decode()
            assert event.startswith(b"data: "), event
            if event != b"data: [DONE]":
                json.loads(event[len(b"data: ") :])


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_route_answers_5xx(case: Case, api: Fixture) -> None:
    answer(case, api)


@served.parametrize()
@settings(
    max_examples=SERVED_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_requests_that_fit_the_schema_are_served(case: Case, api: Fixture) -> None:
    answer(case, api)


def answer(case: Case, api: Fixture) -> None:
    """Send the case (tamed) to the server and check the answer's status and shape."""
    path = case.operation.path
    tame(path, case.body)
    response = case.call(base_url=api.base_url, timeout=60)
    content_type = ";".join(response.headers.get("content-type", []))  # schemathesis: header -> values
    assert_answered(path, response.status_code, content_type, response.content)
    if response.status_code == 200:
        assert_stream(content_type, response.content)
    if case.method.upper() in ("DELETE", "POST") and path in ("/api/delete", "/api/create", "/api/copy"):
        api.restock()


# hand-written hostile requests: what a schema-driven generator rarely sends -------------------------


def js(**fields: object) -> bytes:
    """JSON as Python writes it: NaN and Infinity as bare words, a lone surrogate as an escape."""
    return json.dumps(fields).encode()


DEEP = b"[" * 100_000 + b"]" * 100_000
SAY = [{"role": "user", "content": "x"}]
NAN, INF = float("nan"), float("inf")
HOSTILE = [
    ("POST", "/api/generate", b"", 400),
    ("POST", "/api/chat", b"{", 400),
    ("POST", "/api/show", b'"just a string"', 400),
    ("POST", "/api/generate", DEEP, 400),
    ("POST", "/v1/chat/completions", DEEP, 400),
    ("POST", "/api/generate", b'{"model": "\xff\xfe"}', 400),  # not UTF-8
    ("POST", "/api/generate", js(model=MODEL, prompt="hi \ud800"), 400),  # a lone surrogate
    ("POST", "/v1/completions", js(model=MODEL, prompt="\udfff", max_tokens=2), 400),
    ("POST", "/api/chat", js(model="\ud800", messages=SAY), 400),
    ("POST", "/api/generate", js(model=MODEL, prompt="a", options={"temperature": NAN}), 400),
    ("POST", "/api/generate", js(model=MODEL, prompt="a", options={"num_predict": INF}), 400),
    ("POST", "/api/generate", js(model=MODEL, prompt="a", keep_alive=-INF), 400),
    ("POST", "/api/generate", js(model=MODEL, prompt="a", options={"seed": 10**40}), 400),
    ("POST", "/v1/chat/completions", js(model=MODEL, messages=SAY, temperature=INF), 400),
    ("POST", "/v1/embeddings", js(model=EMBEDDER, input="x", dimensions=INF), 400),
    ("POST", "/api/chat", js(model="nobody/nothing", messages=SAY), 404),
    ("POST", "/v1/chat/completions", js(model="nothing", messages=SAY), 404),
    ("POST", "/v1/responses", DEEP, 400),
    ("POST", "/v1/responses", js(model=MODEL, input=[{"role": "user", "content": "\udfff"}]), 400),
    ("POST", "/v1/responses", js(model="nothing", input="x"), 404),
    ("GET", "/v1/models/..%2F..%2Fetc%2Fpasswd", b"", 400),
    ("GET", "/v1/nothing", b"", 404),  # OpenAI's shape for every /v1 path, not only the known ones
    ("GET", "/v1/chat/completions", b"", 405),
    ("PUT", "/v1/embeddings", b"{}", 405),
    ("POST", "/v1/messages", DEEP, 400),
    (
        "POST",
        "/v1/messages",
        js(model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "\ud800"}]),
        400,
    ),
    ("POST", "/v1/messages", js(model=MODEL, max_tokens=INF, messages=SAY), 400),
    ("POST", "/v1/messages", js(model="nothing", max_tokens=2, messages=SAY), 404),
    ("GET", "/v1/messages/nothing", b"", 404),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), HOSTILE)
def test_hostile_requests_get_a_4xx_in_their_api_shape(
    api: Fixture, method: str, path: str, body: bytes, status: int
) -> None:
    response = httpx.request(method, api.base_url + path, content=body, timeout=60)
    assert response.status_code == status, response.text[:300]
    assert_answered(path, status, response.headers["content-type"], response.content)


@pytest.mark.parametrize(("path", "shape"), [("/api/show", str), ("/v1/embeddings", dict)])
def test_a_body_declared_over_the_limit_is_refused_in_its_api_shape(
    api: Fixture, path: str, shape: type
) -> None:
    """413 before the body is read (BodyLimit middleware): the error still has the shape of the path's API."""
    host, port = api.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {MAX_JSON_BYTES + 1}\r\nConnection: close\r\n\r\n".encode()
        )
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    error = json.loads(body)["error"]
    message = error if isinstance(error, str) else error["message"]
    assert isinstance(error, shape) and f"larger than {MAX_JSON_BYTES >> 20} MiB" in message
