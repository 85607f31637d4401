"""The Go oracle for tests/test_gotemplate_*.py: ``main.go`` built once, fed many cases per run.

``build(tmp)`` runs ``go build`` (standard library only, no network) into
``tmp`` and returns a :class:`GoRender`; without a Go toolchain it raises
:class:`GoMissing`, which the tests turn into a failure, not a skip.
``GoRender.run(cases)`` sends every case as one JSON line to one process and
returns one ``{"out": ...}`` or ``{"err": ...}`` per case::

    oracle = build(tmp_path)
    oracle.run([{"mode": "raw", "template": "{{ .x }}", "data": {"x": 1}}])   # [{"out": "1"}]

:func:`session_oracle` builds it once per test session, whichever test module asks
first; :func:`python_render` and :func:`same` compare llamadeck's answer with Go's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.errors import TemplateError

HERE = Path(__file__).parent


class GoMissing(RuntimeError):
    """No Go toolchain, or it failed to build the oracle."""


@dataclass(frozen=True)
class GoRender:
    binary: Path

    def run(self, cases: list[dict[str, Any]], *, timeout: float = 60) -> list[dict[str, str]]:
        """Render every case in one process; one answer per case, in order."""
        lines = "".join(json.dumps(case, ensure_ascii=False) + "\n" for case in cases)
        done = subprocess.run(
            [str(self.binary)], input=lines.encode("utf-8"), capture_output=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"gorender failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
        answers = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
        if len(answers) != len(cases):
            raise RuntimeError(f"gorender answered {len(answers)} of {len(cases)} cases")
        return answers


def build(tmp: Path) -> GoRender:
    """``go build`` the oracle into ``tmp``, with its caches there too."""
    go = shutil.which("go") or ("/usr/bin/go" if Path("/usr/bin/go").exists() else None)
    if go is None:
        raise GoMissing(
            "the Go toolchain is missing: the Go template tests compare against Go's own text/template; "
            "install it (apt-get install golang-go) and rerun"
        )
    env = {
        **os.environ,
        "GOCACHE": str(tmp / "gocache"),
        "GOPATH": str(tmp / "gopath"),
        "GOFLAGS": "-mod=mod",
        "GO111MODULE": "on",
        "GOTOOLCHAIN": "local",
        "GOPROXY": "off",
        "CGO_ENABLED": "0",
    }
    binary = tmp / "gorender"
    done = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=HERE,
        env=env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise GoMissing(f"go build of tests/support/gorender failed: {done.stderr.decode(errors='replace')}")
    return GoRender(binary)


def session_oracle(tmp_path_factory: pytest.TempPathFactory) -> GoRender:
    """The oracle built once per session (in its base temp folder); no Go toolchain fails the test."""
    folder = tmp_path_factory.getbasetemp() / "gorender"
    binary = folder / "gorender"
    if binary.exists():
        return GoRender(binary)
    folder.mkdir(exist_ok=True)
    try:
        return build(folder)
    except GoMissing as e:
        pytest.fail(str(e), pytrace=False)


def python_render(fn: Any) -> dict[str, str]:
    """llamadeck's answer in the oracle's shape: ``{"out": text}`` or ``{"err": message}``."""
    try:
        return {"out": fn()}
    except TemplateError as e:
        return {"err": str(e)}


def same(python: dict[str, str], go: dict[str, str]) -> bool:
    """Whether both rendered the same text, or both failed (the messages differ by design)."""
    return ("err" in python and "err" in go) or python.get("out") == go.get("out")
