"""``llamadeck import``: list what other tools downloaded, dry-run, register by hard link, run it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import LLAMADECK, env_for
from tests.support.other_stores import HFCache, LMStudio, OllamaStore
from tests.support.tiny_gguf import write_tiny_gguf


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli-import")
    return {
        "a": write_tiny_gguf(d / "A-Q8_0.gguf", quant="Q8_0", seed=11)[0],
        "b": write_tiny_gguf(d / "B-Q4_0.gguf", quant="Q4_0", seed=12)[0],
        "c": write_tiny_gguf(d / "C-Q8_0.gguf", quant="Q8_0", seed=13)[0],
    }


@pytest.fixture
def others(tmp_path: Path, weights: dict[str, Path]) -> dict[str, str]:
    """A home with an Ollama store, a Hugging Face cache and an LM Studio folder; the env pointing there."""
    home = tmp_path / "user"
    ollama = OllamaStore(home / ".ollama" / "models")
    ollama.add(
        "tinyllama", "1b", weights["a"], template="{{ .Prompt }}", params={"stop": ["<end>"], "top_k": 5}
    )
    HFCache(tmp_path / "hf-cache").add("acme/Tiny-GGUF", {"B-Q4_0.gguf": weights["b"]})
    LMStudio(home / ".lmstudio" / "models").add(
        "lmstudio-community", "Tiny-GGUF", {"C-Q8_0.gguf": weights["c"]}
    )
    return {"HOME": str(home), "HF_HUB_CACHE": str(tmp_path / "hf-cache"), "OLLAMA_MODELS": ""}


def llamadeck(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in env_for(None, **env).items() if v}
    return subprocess.run([LLAMADECK, *args], env=full, capture_output=True, text=True, timeout=120)


def test_import_lists_each_tools_models_and_changes_nothing(others: dict[str, str]) -> None:
    listed = llamadeck(others, "import")
    assert listed.returncode == 0, listed.stderr
    for tool, name in (
        ("ollama", "tinyllama:1b"),
        ("huggingface", "acme/Tiny-GGUF"),
        ("lmstudio", "Tiny-GGUF"),
    ):
        assert any(line.startswith(tool) and name in line for line in listed.stdout.splitlines()), (
            listed.stdout
        )
    assert llamadeck(others, "list").stdout.strip().splitlines()[1:] == []


def test_dry_run_says_what_it_would_do_and_does_not(others: dict[str, str]) -> None:
    dry = llamadeck(others, "import", "--all", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("would import") == 3
    assert llamadeck(others, "list").stdout.strip().splitlines()[1:] == []


def test_import_registers_by_hard_link_with_ollamas_settings_and_runs(
    others: dict[str, str], weights: dict[str, Path]
) -> None:
    done = llamadeck(others, "import", "tinyllama:1b")
    assert done.returncode == 0, done.stderr
    assert "imported ollama tinyllama:1b as" in done.stdout
    name = done.stdout.strip().rsplit(" as ", 1)[1]
    parameters = llamadeck(others, "show", name, "--parameters").stdout
    assert "top_k" in parameters and "<end>" in parameters
    home = Path(os.environ["LLAMADECK_HOME"])
    blobs = list((home / "blobs").iterdir())
    ollama_blobs = list((Path(others["HOME"]) / ".ollama" / "models" / "blobs").iterdir())
    assert {b.stat().st_ino for b in blobs} <= {b.stat().st_ino for b in ollama_blobs}  # linked, not copied
    ran = llamadeck(others, "run", name, "Hello", "-n", "3", "--raw")
    assert ran.returncode == 0, ran.stderr
    again = llamadeck(others, "import")
    assert "already imported" in again.stdout


def test_import_of_an_unknown_name_is_one_line(others: dict[str, str]) -> None:
    result = llamadeck(others, "import", "nothing-like-it")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no model nothing-like-it found" in result.stderr


def test_import_never_replaces_a_model_of_the_same_name(
    others: dict[str, str], weights: dict[str, Path]
) -> None:
    from engine import Engine

    mine = Engine().create("tinyllama:1b", f"FROM {weights['b']}\nSYSTEM mine\n")
    listed = llamadeck(others, "import").stdout
    assert "tinyllama:1b-2" in listed  # offered under a free name
    done = llamadeck(others, "import", "--all")
    assert done.returncode == 0, done.stderr
    assert "as tinyllama:1b-2" in done.stdout
    kept = Engine().resolve("tinyllama:1b")
    assert kept.files == mine.files and kept.config.system == "mine"
