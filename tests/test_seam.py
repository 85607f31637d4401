"""The engine's seam: front ends import only the facade, and it gives them everything they need."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import engine

ROOT = Path(__file__).resolve().parent.parent
FRONT_ENDS = [p for d in ("tui", "api") if (ROOT / d).is_dir() for p in sorted((ROOT / d).rglob("*.py"))]


def engine_imports(path: Path) -> list[str]:
    """Every module of the engine that ``path`` imports, as written."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "engine"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "engine":
            found.append(node.module)
    return found


def test_there_are_front_ends_to_check() -> None:
    assert any(p.relative_to(ROOT).as_posix() == "tui/cli/__init__.py" for p in FRONT_ENDS)


@pytest.mark.parametrize("path", FRONT_ENDS, ids=lambda p: str(p.relative_to(ROOT)))
def test_front_ends_import_only_the_facade(path: Path) -> None:
    assert [m for m in engine_imports(path) if m != "engine"] == []


def test_the_facade_exports_what_it_promises() -> None:
    missing = [name for name in engine.__all__ if not hasattr(engine, name)]
    assert missing == []
    for family in (
        "InvalidInput",
        "NotFound",
        "Cancelled",
        "DiskFull",
        "NetworkError",
        "IntegrityError",
        "Busy",
    ):
        cls = getattr(engine, family)
        assert issubclass(cls, engine.LlamadeckError) and 400 <= cls.status < 600


def test_the_store_is_not_public_surface() -> None:
    assert not hasattr(engine.Engine(), "store")


def test_the_seam_test_catches_a_submodule_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from engine.units import format_size\n    import engine.store\n")
    assert engine_imports(bad) == ["engine.units", "engine.store"]
