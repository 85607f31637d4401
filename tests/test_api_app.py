"""The app's assembly: every route family is included (import cycles: tests/test_layout.py)."""

from __future__ import annotations

from pathlib import Path

from api.app import create_app
from engine import Engine

API = Path(__file__).resolve().parent.parent / "api"

EXPECTED_ROUTES = {
    ("GET", "/"),
    ("HEAD", "/"),
    ("GET", "/api/version"),
    ("HEAD", "/api/version"),
    ("GET", "/api/tags"),
    ("HEAD", "/api/tags"),
    ("GET", "/api/ps"),
    ("POST", "/api/show"),
    ("DELETE", "/api/delete"),
    ("POST", "/api/copy"),
    ("POST", "/api/pull"),
    ("POST", "/api/generate"),
    ("POST", "/api/chat"),
    ("POST", "/api/embed"),
    ("POST", "/api/embeddings"),
    ("HEAD", "/api/blobs/{digest}"),
    ("POST", "/api/blobs/{digest}"),
    ("POST", "/api/create"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{model}"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/embeddings"),
}


def routes_of(engine: Engine) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, read from its OpenAPI description."""
    paths = create_app(engine).openapi()["paths"]
    return {(method.upper(), path) for path, operations in paths.items() for method in operations}


def test_every_route_family_is_served() -> None:
    assert EXPECTED_ROUTES - routes_of(Engine()) == set()
