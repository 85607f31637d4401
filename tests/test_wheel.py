"""The built wheel carries the data files the engine reads: an editable install hides a missing entry.

``pyproject.toml`` must declare every non-Python file as package data, or a
``pip install`` from PyPI lacks it while every test run from the checkout
passes. So the wheel is built here from a copy of the sources, unpacked as an
installer would, and the built-in chat formats are read from that copy alone.

The build uses this environment's setuptools through its PEP 517 hook (no
network, a few seconds) when it is recent enough to read ``pyproject.toml``
(``license = "MIT"`` needs setuptools 77); otherwise ``pip wheel`` builds it
the way ``pip install`` would, fetching setuptools into an isolated environment.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a wheel build: seconds offline, more when pip fetches setuptools

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ROOT / "engine" / "templates" / "formats"
SOURCES = ("pyproject.toml", "README.md", "engine", "tui", "api", "themes")
SETUPTOOLS_FOR_PEP_639 = 77  # the first setuptools that reads a license given as an SPDX string


def _local_setuptools_builds() -> bool:
    major = importlib.metadata.version("setuptools").split(".")[0]
    return major.isdecimal() and int(major) >= SETUPTOOLS_FOR_PEP_639


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy (the build leaves build/ and *.egg-info behind)."""
    tree = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tree / name)
    out = tmp_path_factory.mktemp("dist")
    if _local_setuptools_builds():
        build = [
            sys.executable,
            "-c",
            f"from setuptools import build_meta; build_meta.build_wheel({str(out)!r})",
        ]
    else:
        build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), "."]
    done = subprocess.run(build, cwd=tree, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    (built,) = out.glob("llamadeck-*.whl")
    return built


def test_the_wheel_carries_every_built_in_chat_format(wheel: Path) -> None:
    expected = {
        f"engine/templates/formats/{p.name}" for p in FORMATS.iterdir() if p.is_file() and p.suffix != ".py"
    }
    assert {"engine/templates/formats/index.json", "engine/templates/formats/gemma.jinja"} <= expected
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert expected <= names, f"not in the wheel (declare them in pyproject.toml): {expected - names}"
        for name in expected:  # byte for byte: a template is recorded in manifests as it is
            assert archive.read(name) == (ROOT / name).read_bytes()


def test_the_installed_wheel_reads_its_formats(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)  # a pure-Python wheel installs as it is unpacked
    check = (
        "import sys, engine.templates.known as k; "
        "assert k.__file__.startswith(sys.argv[1]), k.__file__; "
        "print(k.known_format('gemma3').name, len(k.known_formats()))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}  # ahead of the editable install of the checkout
    done = subprocess.run(
        [sys.executable, "-c", check, str(site)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["Gemma", "turn", "11"]
