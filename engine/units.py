"""Byte counts written for people.

Two styles on purpose: file sizes in decimal units the way Ollama's ``list``
shows them (so numbers match what users already know), and memory in binary
GiB, because that is how RAM and VRAM are sold and reported by the OS.
"""

from __future__ import annotations

_DECIMAL_UNITS: tuple[tuple[int, str], ...] = (
    (1000**4, "TB"),
    (1000**3, "GB"),
    (1000**2, "MB"),
    (1000, "KB"),
)

GIB = 1024**3
MIB = 1024**2


def format_size(n: int) -> str:
    """A file size as Ollama prints it: ``4.9 GB``, ``250 MB``, ``170 KB``, ``512 B``.

    One decimal only below ten units, whole (truncated) numbers from ten up,
    and no ``.0`` on exact values, matching Ollama's ``format.HumanBytes``.
    """
    if n < 0:
        return "-" + format_size(-n)
    for factor, unit in _DECIMAL_UNITS:
        if n >= factor:
            value = n / factor
            if value >= 10 or n % factor == 0:
                return f"{int(value)} {unit}"
            return f"{value:.1f} {unit}"
    return f"{n} B"


def format_gib(n: int) -> str:
    """Memory in binary gibibytes with one decimal: ``22.0 GiB``."""
    return f"{n / GIB:.1f} GiB"
