"""The house's layout rules, checked: no module over 600 lines, no import cycles between modules.

Small modules with one job are the rule (shared/STYLE.md); a cycle means two
modules are one job cut in the wrong place. Imports inside functions count too:
a lazy import hides a cycle, it does not remove it. ``TYPE_CHECKING`` imports do
not run, so they are left out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.imports import find_cycle, import_graph, modules_under

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "api", "tui")
MAX_LINES = 600


def python_files(*tops: str) -> list[Path]:
    return sorted(p for top in tops for p in (ROOT / top).rglob("*.py"))


@pytest.mark.parametrize(
    "path", python_files(*PACKAGES, "tests", "bench"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_no_module_is_over_600_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines: split it by job"


def test_no_import_cycles() -> None:
    graph = import_graph(modules_under(ROOT, *PACKAGES))
    assert "api.app" in graph and "api.models" in graph["api.app"]  # the graph sees real imports
    assert find_cycle(graph) is None


def test_the_cycle_check_finds_a_cycle_through_a_lazy_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("import pkg.c\n")
    (package / "c.py").write_text("def f():\n    from pkg.a import x\n")
    assert find_cycle(import_graph(modules_under(tmp_path, "pkg"))) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    (package / "c.py").write_text("")
    assert find_cycle(import_graph(modules_under(tmp_path, "pkg"))) is None
