"""Hostile image paths in a ``run`` prompt: what names no readable image file stays text, at once.

Found by the outside review: the path pattern (Ollama's, a Go regexp, linear there) backtracked in
Python from every ``/`` that no image name followed, so a log of 32,000 slashes piped to ``run`` took
12 s and a megabyte of them hours. Devices, FIFOs, folders and huge files named ``*.png`` were
already left alone; these tests keep them so.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from tests.support.images import image_bytes
from tui.cli.image_paths import IMAGE_PATH, _paths, extract_images


def test_the_linear_search_finds_what_the_pattern_finds() -> None:
    rng = random.Random(7)
    pieces = ["/", "./", "~/", "C:", "\\", " ", "\t", "\n", "a", ".png", ".JPG", ".jpeg2", ".webp", '"']
    for _ in range(3000):
        prompt = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        assert _paths(prompt) == IMAGE_PATH.findall(prompt), repr(prompt)


def test_a_megabyte_of_slashes_is_text() -> None:
    for prompt in ("/" * 1_000_000, "./a " * 250_000, "/" * 1_000_000 + "\n see ./no-such.png"):
        assert extract_images(prompt) == (prompt, [])


def test_paths_that_are_no_readable_image_file_stay_text(tmp_path: Path) -> None:
    (tmp_path / "ok.png").write_bytes(image_bytes("PNG"))
    os.symlink("/dev/zero", tmp_path / "zero.png")
    os.mkfifo(tmp_path / "fifo.png")
    (tmp_path / "folder.png").mkdir()
    with open(tmp_path / "huge.png", "wb") as f:
        f.truncate(50 << 30)  # sparse: no disk used
    os.symlink(tmp_path / "huge.png", tmp_path / "link.png")
    os.symlink(tmp_path / "loop.png", tmp_path / "loop.png")
    for name in ("zero", "fifo", "folder", "huge", "link", "loop"):
        prompt = f"what is {tmp_path}/{name}.png"
        assert extract_images(prompt) == (prompt, [])
    assert extract_images(f"what is {tmp_path}/ok.png") == ("what is", [image_bytes("PNG")])
