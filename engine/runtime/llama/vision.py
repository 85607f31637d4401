"""A vision projector in memory (llama.cpp's ``mtmd``): images into embeddings, decoded into a sequence.

A vision model's images reach the text model as embeddings: the projector
(an ``mmproj`` GGUF, ``engine.store.projector``) encodes an image into a run
of "image tokens", each an embedding of the text model's width, and those
are decoded into the conversation's sequence as the prompt's tokens are. A
``llama_batch`` carries tokens or embeddings, not both; some models need
non-causal attention over an image and M-RoPE models place an image on
positions that are not its token count: ``mtmd_helper_decode_image_chunk``
knows those rules, so an image gets ``llama_decode`` calls of its own
(``eval_into``), between the text steps of other sequences.

Images are decoded by Pillow within ``engine.images``' bounds (never by
llama.cpp's own decoder) and handed over as RGB pixels. Encoding is the
costly part, so the embeddings of recent images are kept by the image's
content hash (``ImageCache``): the next turn of an image chat evaluates the
image again only if its KV cells were lost, and encodes it again never while
it stays cached. ``encodes`` counts the encoder's runs (the tests read it).

Not thread-safe: the compute thread owns it, as it owns the context.
"""

from __future__ import annotations

import collections
import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import InvalidInput, LoadError
from engine.images import decode_image
from engine.runtime.llama.context import Context, DecodeError
from engine.runtime.llama.log import error_mark, last_error_line, route_mtmd_log
from engine.runtime.llama.model import Model
from engine.store.projector import read_projector

CACHED_IMAGES = 8  # encoded images kept per model: a few chats' images, a few MB of embeddings each


@dataclass
class EncodedImage:
    """One image as the text model takes it: ``n_tokens`` embeddings over ``n_pos`` positions."""

    sha256: str
    n_tokens: int
    n_pos: int
    chunks: Any  # the mtmd_input_chunks holding its chunk (freed with it)
    chunk: Any  # its image chunk
    embeddings: Any  # ctypes float array, n_tokens x n_embd


class Projector:
    """An ``mtmd`` context on a loaded model; ``free`` before the model."""

    def __init__(self, handle: Any, model: Model, label: str) -> None:
        self._ctx = handle
        self.model = model
        self.label = label
        import llama_cpp

        # an image token's width as the text model takes it: wider than n_embd where the projector feeds
        # several layers (Qwen3-VL's deepstack), so the embeddings are copied whole
        self.n_embd = int(llama_cpp.llama_model_n_embd_inp(model.ptr))
        self.encodes = 0  # images encoded so far (a cache hit is not one)
        self._wrap: tuple[tuple[int, ...], tuple[int, ...]] | None = None
        self._cache: collections.OrderedDict[str, EncodedImage] = collections.OrderedDict()
        from llama_cpp import mtmd_cpp

        self._mtmd = mtmd_cpp
        self.non_causal = bool(mtmd_cpp.mtmd_decode_use_non_causal(handle, None))
        self.mrope = bool(mtmd_cpp.mtmd_decode_use_mrope(handle))

    @classmethod
    def load(
        cls, path: Path, model: Model, *, n_threads: int, use_gpu: bool, label: str | None = None
    ) -> Projector:
        """Check the projector GGUF, then load it for ``model``; LoadError when mtmd refuses it."""
        from llama_cpp import mtmd_cpp

        label = label or Path(path).name
        try:
            read_projector(Path(path), label=label)  # our bounded scan before llama.cpp parses it
        except InvalidInput as error:
            raise LoadError(str(error)) from error
        route_mtmd_log()
        params = mtmd_cpp.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.n_threads = n_threads
        params.print_timings = False
        params.warmup = False
        mark = error_mark()
        handle = mtmd_cpp.mtmd_init_from_file(str(path).encode(), model.ptr, params)
        if not handle:
            reason = last_error_line(mark) or "no reason given (see the llama.cpp log)"
            reason = reason.replace(str(path), "it")  # clip names the blob in the store: not for clients
            raise LoadError(
                f"llama.cpp could not load the vision projector {label} for {model.label}: {reason}"
            )
        if not mtmd_cpp.mtmd_support_vision(handle):
            mtmd_cpp.mtmd_free(handle)
            raise LoadError(
                f"{label} has no vision encoder (an audio projector): llamadeck reads images only"
            )
        return cls(handle, model, label)

    def encode(self, image: bytes) -> EncodedImage:
        """The image's embeddings (cached by content hash); InvalidInput for a bad image."""
        import hashlib

        sha256 = hashlib.sha256(image).hexdigest()
        if (cached := self._cache.get(sha256)) is not None:
            self._cache.move_to_end(sha256)
            return cached
        encoded = self._encode(image, sha256)
        self._cache[sha256] = encoded
        while len(self._cache) > CACHED_IMAGES:
            _, old = self._cache.popitem(last=False)
            self._mtmd.mtmd_input_chunks_free(old.chunks)
        return encoded

    def count(self, image: bytes) -> int:
        """How many tokens the image takes in a prompt (split, not encoded); InvalidInput if it cannot."""
        import hashlib

        if (cached := self._cache.get(hashlib.sha256(image).hexdigest())) is not None:
            return cached.n_tokens
        chunks, chunk = self._tokenize(image)
        try:
            n_tokens = int(self._mtmd.mtmd_input_chunk_get_n_tokens(chunk))
            if not self.mrope and self._mtmd.mtmd_input_chunk_get_n_pos(chunk) != n_tokens:
                raise InvalidInput(f"{self.label} places an image on positions llamadeck cannot follow")
            return n_tokens
        finally:
            self._mtmd.mtmd_input_chunks_free(chunks)

    def wrap(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The text tokens mtmd puts before and after every image: Qwen2-VL's ``<|vision_start|>`` and
        ``<|vision_end|>``, Gemma 3's ``<start_of_image>`` and ``<end_of_image>``, none for LLaVA. A prompt
        holds them around each image's placeholders, as ``mtmd_tokenize`` would (read from its split)."""
        if self._wrap is None:
            side = 28
            pixels = (ctypes.c_uint8 * (side * side * 3))(*([128] * (side * side * 3)))
            chunks, _ = self._split(side, side, pixels)
            self._mtmd.mtmd_input_chunks_free(chunks)
        assert self._wrap is not None
        return self._wrap

    def _tokenize(self, image: bytes) -> tuple[Any, Any]:
        """The image split by mtmd (its chunks, to free, and the image chunk); InvalidInput if it cannot."""
        decoded = decode_image(image)
        pixels = (ctypes.c_uint8 * len(decoded.pixels)).from_buffer_copy(decoded.pixels)
        return self._split(decoded.width, decoded.height, pixels)

    def _split(self, width: int, height: int, pixels: Any) -> tuple[Any, Any]:
        mtmd = self._mtmd
        bitmap = mtmd.mtmd_bitmap_init(width, height, pixels)
        if not bitmap:
            raise InvalidInput(f"the projector {self.label} could not take a {width}x{height} image")
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            marker = mtmd.mtmd_default_marker()
            text = mtmd.mtmd_input_text(marker, len(marker), False, True)
            bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
            if mtmd.mtmd_tokenize(self._ctx, chunks, ctypes.byref(text), bitmaps, 1) != 0:
                raise InvalidInput(f"the projector {self.label} could not split the image into tokens")
            chunk: Any = None
            texts: tuple[list[int], list[int]] = ([], [])  # the text before the image chunk and after it
            for i in range(mtmd.mtmd_input_chunks_size(chunks)):
                c = mtmd.mtmd_input_chunks_get(chunks, i)
                if mtmd.mtmd_input_chunk_get_type(c) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                    n = ctypes.c_size_t()
                    ids = mtmd.mtmd_input_chunk_get_tokens_text(c, ctypes.byref(n))
                    texts[chunk is not None].extend(int(ids[k]) for k in range(n.value))
                elif chunk is None:
                    chunk = c
                else:  # (MiniCPM-V, Idefics3: an overview and slices, each a chunk with text between)
                    raise InvalidInput(f"the projector {self.label} cuts images in slices: not supported yet")
            if chunk is None:
                raise InvalidInput(f"the projector {self.label} made no image tokens of the image")
            self._wrap = (tuple(texts[0]), tuple(texts[1]))
        except BaseException:
            mtmd.mtmd_input_chunks_free(chunks)
            raise
        finally:
            mtmd.mtmd_bitmap_free(bitmap)
        return chunks, chunk

    def _encode(self, image: bytes, sha256: str) -> EncodedImage:
        mtmd = self._mtmd
        chunks, chunk = self._tokenize(image)
        try:
            n_tokens = mtmd.mtmd_input_chunk_get_n_tokens(chunk)
            mark = error_mark()
            if mtmd.mtmd_encode_chunk(self._ctx, chunk) != 0:
                reason = last_error_line(mark)
                raise InvalidInput(f"the projector {self.label} could not encode the image: {reason}")
            self.encodes += 1
            out = mtmd.mtmd_get_output_embd(self._ctx)
            size = n_tokens * self.n_embd
            embeddings = (ctypes.c_float * size)()
            ctypes.memmove(embeddings, out, size * ctypes.sizeof(ctypes.c_float))
            n_pos = mtmd.mtmd_input_chunk_get_n_pos(chunk)
        except BaseException:
            mtmd.mtmd_input_chunks_free(chunks)
            raise
        return EncodedImage(sha256, n_tokens, n_pos, chunks, chunk, embeddings)

    def eval_into(self, ctx: Context, image: EncodedImage, *, seq: int, pos: int) -> int:
        """Decode the image's embeddings into sequence ``seq`` from position ``pos``; the position after it.

        Its own ``llama_decode`` calls (split at the context's batch size), with the attention and
        positions the projector asks for. Raises DecodeError as ``Context.decode`` does.
        """
        mtmd = self._mtmd
        new_pos = ctypes.c_int32(pos)
        mark = error_mark()
        code = mtmd.mtmd_helper_decode_image_chunk(
            self._ctx,
            ctx.ptr,
            image.chunk,
            image.embeddings,
            pos,
            seq,
            ctx.n_batch,
            ctypes.byref(new_pos),
            mtmd.mtmd_helper_post_decode_callback(),  # NULL: no callback
            None,
        )
        if code != 0:
            detail = last_error_line(mark)
            raise DecodeError(
                f"llama.cpp could not decode an image (code {code}){': ' + detail if detail else ''}", code
            )
        return int(new_pos.value)

    def free(self) -> None:
        for encoded in self._cache.values():
            self._mtmd.mtmd_input_chunks_free(encoded.chunks)
        self._cache.clear()
        if self._ctx:
            self._mtmd.mtmd_free(self._ctx)
            self._ctx = None
