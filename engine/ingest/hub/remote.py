"""What a Hub repository offers, as data: its GGUF files, grouped into variants, at one commit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class RemoteVariant:
    """One quantization of a model: a single file or the ordered parts of a split."""

    quant: str
    files: tuple[RemoteFile, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class RepoListing:
    repo: str
    commit: str
    variants: tuple[RemoteVariant, ...]  # best quality first; every quant a valid reference tag
    projectors: tuple[RemoteFile, ...]  # mmproj files: not chat models on their own
    license: str | None
    incomplete: tuple[str, ...] = ()  # split models with parts missing: "Model-Q8_0: part 2 of 3 missing"

    def variant(self, quant: str) -> RemoteVariant:
        return next(v for v in self.variants if v.quant == quant)
