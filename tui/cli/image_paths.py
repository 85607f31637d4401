"""Image paths in a ``run`` prompt become the request's images, as Ollama's CLI reads them.

``llamadeck run MODEL "what is in ./photo.jpg"`` on a model that can see
sends the file as an image and the prompt without its path (Ollama's
``extractFileData``: a path starting ``./``, ``/``, ``~/`` or a drive letter,
ending in .jpg, .jpeg, .png or .webp, quoted or with escaped spaces). A path
that names no file stays in the prompt as text; a text-only model gets the
prompt as typed. The bytes are checked by the engine (``engine.images``).
"""

from __future__ import annotations

import re
from pathlib import Path

# Ollama's pattern (cmd/interactive.go), with ~/ as its expansion allows
IMAGE_PATH = re.compile(r"(?:[a-zA-Z]:)?(?:\./|/|\\|~/)[\S\\ ]+?\.(?i:jpg|jpeg|png|webp)\b")
MAX_IMAGE_FILE = 20 << 20  # the engine's bound on one image: a bigger file is not read whole first
_BREAK = re.compile(r"[^\S ]")  # whitespace but the space: no path of the pattern crosses one
_EXTENSION = re.compile(r"\.(?i:jpg|jpeg|png|webp)\b")


def find_image_paths(prompt: str) -> tuple[str, list[Path]]:
    """The prompt without the paths of image files that exist (at most ``MAX_IMAGE_FILE`` bytes), and
    those paths in order (the app attaches them; ``extract_images`` reads them)."""
    paths: list[Path] = []
    for match in _paths(prompt):
        written = match.strip("'\"")
        path = Path(written.replace("\\ ", " ")).expanduser()
        try:
            if not path.is_file() or path.stat().st_size > MAX_IMAGE_FILE:
                continue
        except OSError:
            continue
        paths.append(path)
        for form in (f"'{written}'", f'"{written}"', written):
            prompt = prompt.replace(form, "", 1) if form in prompt else prompt
    return " ".join(prompt.split()) if paths else prompt, paths


def is_image_path(text: str) -> bool:
    """Whether ``text`` (a paste) is, whole, the path of an image file that exists (Ollama's pattern)."""
    rest, paths = find_image_paths(text.strip())
    return len(paths) == 1 and not rest


def extract_images(prompt: str) -> tuple[str, list[bytes]]:
    """The prompt without the paths of image files that exist, and those files' bytes in order."""
    text, paths = find_image_paths(prompt)
    images: list[bytes] = []
    for path in paths:
        try:
            images.append(path.read_bytes())
        except OSError:
            continue
    return text if images else prompt, images


def _paths(prompt: str) -> list[str]:
    """``IMAGE_PATH.findall(prompt)``, in time linear in the prompt.

    Go's regexp (Ollama's) is linear; Python's backtracks, and from every
    ``/`` that no image name follows the lazy path part scans to the end:
    a log of 32,000 slashes piped to ``run`` took 12 s, a megabyte hours.
    A match lies inside one run of text without tabs or newlines and ends
    at an image extension, so each run is searched only up to its last one.
    """
    found: list[str] = []
    for run in _BREAK.split(prompt):
        ends = [m.end() for m in _EXTENSION.finditer(run)]
        if ends:
            found.extend(IMAGE_PATH.findall(run[: ends[-1]]))
    return found
