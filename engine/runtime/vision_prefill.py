"""Images into a prefilling sequence, in the worker: the scheduler's hook for prompts with images.

A prompt's image is a run of placeholder ids (``runtime.vision_prompt``). The
scheduler stops each text chunk at the next image (``text_stop``), and before
building its batch calls ``feed_images``: an image at the start of what a
sequence still has to evaluate is encoded by the projector (or found in its
cache by content hash) and decoded with ``llama_decode`` calls of its own,
so the other sequences' text steps go on around it. A prefix kept from an
earlier turn that ends inside an image is cut back to the image's start:
half an image's cells are no use.

In the shared KV pool an image's tokens take cells like text (its sequence's
``slot.tokens`` holds one placeholder per image token), so an image goes in
only when the pool has room for all of it (``prompt_need`` tells
``Admission.make_room`` how many cells the next step of a prompt needs).
A request parked for lack of cells keeps its images' bytes in its
``Request``: when its cells were not saved (a GPU, or over the state budget),
re-evaluating its sequence feeds each image again (from the projector's cache
by content hash), as for a new prompt.

In an M-RoPE model (Qwen2-VL, Qwen2.5-VL) an image's ``n`` cells advance the
position by fewer (``EncodedImage.n_pos``); the slot records it as a ``Run``
(``slots.py``), so text goes on at ``slot.next_pos``, not at the cell count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.errors import LlamadeckError
from engine.runtime.job import PREFILLING
from engine.runtime.llama.context import Context, DecodeError
from engine.runtime.llama.vision import Projector
from engine.runtime.request import Request
from engine.runtime.slots import Run


def text_stop(request: Request, start: int, end: int) -> int:
    """Where the text from ``start`` ends: the next image's first placeholder, else ``end`` (what the
    sequence is to hold: the prompt, and for a parked request the tokens it had generated too)."""
    return next((image.start for image in request.images if image.start >= start), end)


def prompt_need(job: Any, min_chunk: int) -> int:
    """Cells the next step of a prefilling job takes at least: a whole image due next, else some text."""
    start = job.done_prompt
    image = next((image for image in job.request.images if image.start == start), None)
    return image.n_tokens if image is not None else min(min_chunk, len(job.tokens) - start)


def images_cover(request: Request) -> bool:
    """Whether every negative id of the prompt is an image's placeholder, each image's run whole."""
    tokens = request.tokens
    covered = 0
    for image in request.images:
        run = tokens[image.start : image.start + image.n_tokens]
        if image.n_tokens <= 0 or len(run) != image.n_tokens or any(t >= 0 for t in run):
            return False
        covered += image.n_tokens
    return covered == sum(1 for t in tokens if t < 0)


def feed_images(projector: Projector | None, ctx: Context, jobs: Sequence[Any], fail: Any, room: int) -> int:
    """Evaluate the images due in prefilling ``jobs`` within ``room`` free KV cells (an image that does not
    fit waits for a later step); ``fail(job, error)`` ends a job that cannot. Returns the cells taken."""
    taken = 0
    for job in jobs:
        images = job.request.images
        slot = job.slot
        if not images or job.status != PREFILLING or slot is None:
            continue
        if projector is None:
            fail(job, LlamadeckError("this model has no vision projector loaded"))
            continue
        for image in images:
            if image.start < job.done_prompt < image.start + image.n_tokens:  # a kept prefix cut an image
                ctx.seq_rm(slot.seq, slot.pos_of(image.start), -1)
                slot.truncate(image.start)
                job.done_prompt = job.cached = image.start
        for image in images:
            if image.start != job.done_prompt:
                continue
            if taken + image.n_tokens > room:  # the pool has no room for all of it yet
                break
            pos = slot.next_pos
            try:
                encoded = projector.encode(image.data)
                if encoded.n_tokens != image.n_tokens:
                    raise LlamadeckError("the projector split an image into another count of tokens")
                end = projector.eval_into(ctx, encoded, seq=slot.seq, pos=pos)
            except (DecodeError, LlamadeckError) as error:
                fail(job, error)
                break
            assert end == pos + encoded.n_pos
            if projector.mrope:  # its cells' positions are not its cell indices (slots.py)
                top = ctx.seq_pos_max(slot.seq) - pos
                slot.runs.append(Run(len(slot.tokens), image.n_tokens, encoded.n_pos, top))
            slot.tokens.extend(job.tokens[image.start : image.start + image.n_tokens])
            job.done_prompt += image.n_tokens
            taken += image.n_tokens
    return taken
