"""Saving the app's SVG screenshot (the palette's "Screenshot") where a user expects it, or saying why not.

Textual writes to the downloads folder and, when that folder does not exist,
says only "Failed to save screenshot". A browser creates its downloads
folder; so does this. When the folder cannot be made or written, the
screenshot goes to the current directory instead, and the one line that
says where it went also says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Saved:
    path: Path | None  # None: not saved
    message: str  # one line for the user


def _write(folder: Path, name: str, svg: str) -> Path:
    path = folder / name
    path.write_text(svg, encoding="utf-8")
    return path


def save_svg(svg: str, name: str, folder: Path) -> Saved:
    """Write ``svg`` as ``folder/name``, creating ``folder``; else in the current directory."""
    created = not folder.is_dir()
    try:
        if created:
            folder.mkdir(parents=True)
        path = _write(folder, name, svg)
    except OSError as error:
        why = f"{folder}: {error.strerror or error}"
        try:
            path = _write(Path.cwd(), name, svg)
        except OSError as second:
            return Saved(None, f"screenshot not saved: {why}; {Path.cwd()}: {second.strerror or second}")
        return Saved(path, f"saved the screenshot to {path} ({why})")
    return Saved(path, f"saved the screenshot to {path}" + (f" (created {folder})" if created else ""))
