"""What a Hub repository offers, as data: its GGUF files, grouped into variants, at one commit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class HfFile:
    """A file of a Hugging Face model (safetensors weights, config, tokenizer) for conversion.

    Verified by the LFS sha256 when the Hub keeps it in LFS, else by its git blob sha1.
    """

    path: str
    size: int
    sha256: str | None
    git_sha1: str | None


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
    hf_files: tuple[HfFile, ...] = ()  # a Hugging Face model's files, for conversion when it has no GGUF
    pickled: bool = False  # it holds pickled PyTorch weights (.bin/.pt), which are never downloaded

    @property
    def convertible(self) -> bool:
        names = {f.path for f in self.hf_files}
        return "config.json" in names and any(n.endswith(".safetensors") for n in names)

    def variant(self, quant: str) -> RemoteVariant:
        return next(v for v in self.variants if v.quant == quant)
