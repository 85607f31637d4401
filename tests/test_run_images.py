"""`llamadeck run MODEL "what is in ./photo.png"`: image paths in the prompt go as images (Ollama's CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import assert_one_line_error, llamadeck
from tests.support.fake_hub import FakeHub
from tests.support.images import image_bytes
from tests.support.tiny_gguf import write_tiny_gguf
from tests.support.tiny_mmproj import write_tiny_mmproj
from tui.cli.image_paths import extract_images

SEEING, BLIND = "hf.co/acme/Seeing-GGUF:Q8_0", "hf.co/acme/Blind-GGUF:Q8_0"


def test_paths_of_existing_images_leave_the_prompt_and_come_as_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photo.png").write_bytes(png := image_bytes("PNG"))
    (tmp_path / "my shot.JPG").write_bytes(jpg := image_bytes("JPEG"))
    prompt, images = extract_images("compare ./photo.png and './my shot.JPG' please")
    assert (prompt, images) == ("compare and please", [png, jpg])
    assert extract_images("what is in ./missing.png") == ("what is in ./missing.png", [])  # no file: text
    assert extract_images("see photo.png") == ("see photo.png", [])  # no ./ or /: a word, as in Ollama


@pytest.fixture
def hub(tmp_path: Path) -> FakeHub:
    model = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    fake = FakeHub()
    fake.add_repo(
        "acme/Seeing-GGUF",
        {
            "Tiny-Q8_0.gguf": model,
            "mmproj-Tiny-F16.gguf": write_tiny_mmproj(tmp_path / "mmproj-Tiny-F16.gguf"),
        },
    )
    fake.add_repo("acme/Blind-GGUF", {"Tiny-Q8_0.gguf": model})
    return fake


def test_run_sends_the_image_a_prompt_names(hub: FakeHub, tmp_path: Path) -> None:
    (tmp_path / "photo.png").write_bytes(image_bytes("PNG", (28, 28), (250, 10, 10)))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with hub:
        flags = ("-n", "12", "-t", "0", "--seed", "1")
        seen = llamadeck("run", SEEING, "what is in ./photo.png", *flags, hub=hub, cwd=tmp_path)
        assert seen.returncode == 0, seen.stderr
        text_only = llamadeck("run", SEEING, "what is in", *flags, hub=hub, cwd=tmp_path)
        assert text_only.returncode == 0 and seen.stdout != text_only.stdout  # the image changed the reply
        bad = llamadeck("run", SEEING, "what is in ./bad.png", *flags, hub=hub, cwd=tmp_path)
        assert_one_line_error(bad, "image")
        blind = llamadeck("run", BLIND, "what is in ./photo.png", *flags, hub=hub, cwd=tmp_path)
        assert blind.returncode == 0, blind.stderr  # a model that cannot see gets the prompt as typed
