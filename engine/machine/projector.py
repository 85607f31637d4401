"""What a vision projector costs the memory plan: its weights, its compute buffer and the image tokens.

A pure function of the projector's header (``engine.store.projector``) and
file size; ``engine.machine.offload`` adds the result where llama.cpp puts it.
As Ollama did for its llama.cpp runner (``llm/memory.go`` up to 2025-11:
``projectorMemoryRequirements``, counted as overhead on the first GPU before
any layer is placed) and for its own engine (``fs/ggml`` ``VisionGraphSize``:
the tower's weights and a graph for the largest image, with the output
layer), the projector is placed with the model:

- ``weights``: the projector's bytes (its file size: the tensors and a few KB
  of metadata). ``mtmd`` loads them on the GPU whenever the model has any
  layer there (``use_gpu`` follows ``n_gpu_layers``), else in RAM.
- ``graph``: clip.cpp's compute buffer, reserved on the same device for the
  largest image. Measured on the CPU with ``mlp`` projectors of the test
  fixture's kind (llama.cpp 0.3.36, flash attention on, as clip.cpp chooses
  where the backend has it): the larger of the input stage (the f32 image and
  its f16 patches) and a layer's activations, ``4 * n * (ff + ~3-4.6 *
  width)`` bytes for ``n`` patches (576+1 patches: 3.55 MiB at width 256,
  8.06 at 512, 19.3 at 1024); the plan takes ``ff + 5 * width``, within 5%
  at CLIP-L's width and over by up to 45% for tiny towers. Without flash
  attention the scores, ``4 * n * n * heads`` (Ollama's term), come on top.
- ``image_tokens``: what one image becomes in the text model's sequence
  (``(image_size / patch_size)**2`` patches, merged ``scale_factor**2`` or 2x2
  to one by the projector types that merge: Gemma 3's 4096 patches are 256
  tokens). They count twice: a non-causal image (Gemma 3) must be one
  ubatch, so the text model's worst-case graph holds at least that many
  tokens; and the worker keeps the embeddings of its last
  ``runtime.llama.vision.CACHED_IMAGES`` images in host memory (``cache``).

Projector types with dynamic resolution (Qwen2-VL's) are counted at their
nominal ``image_size``: an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.store.projector import ProjectorInfo

CACHED_IMAGES = (
    8  # runtime.llama.vision.CACHED_IMAGES, the encoded images a worker keeps (a test keeps them equal)
)
_F32 = 4
_WIDTHS = 5  # activations of a tower layer beside its feed-forward, in widths (measured 3 to 4.6)
# projector types that merge patches before the text model, and by how much per side (clip.cpp)
_MERGE = {"gemma3": 4, "idefics3": 3, "qwen2vl_merger": 2, "qwen2.5vl_merger": 2, "qwen3vl_merger": 2}
_NON_CAUSAL = frozenset({"gemma3"})  # mtmd_decode_use_non_causal: the image is attended both ways
_CLASS_TOKEN = frozenset({"mlp", "mlp_norm", "ldp", "ldpv2"})  # LLaVA's CLIP keeps a class embedding


@dataclass(frozen=True)
class ProjectorCost:
    """A projector's share of a model's memory plan."""

    weights: int  # bytes: on the GPU with the model's layers, else in RAM
    graph: int  # bytes of its compute buffer, on the same device
    image_tokens: int  # tokens one image takes in the text model's sequence
    n_embd: int  # the text model's width the embeddings have
    non_causal: bool = False  # an image must be decoded in one ubatch

    @property
    def device(self) -> int:
        """Bytes on the device the projector runs on: weights and compute buffer."""
        return self.weights + self.graph

    @property
    def cache(self) -> int:
        """Host bytes of the encoded images the worker keeps (``CACHED_IMAGES`` of them)."""
        return CACHED_IMAGES * self.image_tokens * self.n_embd * _F32


def projector_cost(info: ProjectorInfo, size: int, *, flash_attention: bool = True) -> ProjectorCost:
    """The cost of a projector of header ``info`` and ``size`` bytes (see the module's docstring)."""
    side = info.image_size // info.patch_size if info.patch_size else 0
    patches = side * side
    merge = info.scale_factor or _MERGE.get(info.projector_type, 1)
    tokens = patches // (merge * merge) if patches else 0
    n = patches + (1 if info.projector_type in _CLASS_TOKEN else 0)
    image = _F32 * 3 * info.image_size**2 + 2 * 3 * patches * info.patch_size**2  # f32 pixels, f16 patches
    layer = _F32 * n * (info.feed_forward + _WIDTHS * info.width)
    scores = 0 if flash_attention else _F32 * n * n * max(info.heads, 1)
    output = 2 * _F32 * tokens * info.projection_dim  # the projector's last two activations
    return ProjectorCost(
        weights=size,
        graph=max(image, layer + scores, output),
        image_tokens=tokens,
        n_embd=info.projection_dim,
        non_causal=info.projector_type in _NON_CAUSAL,
    )
