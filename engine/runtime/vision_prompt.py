"""A prompt with images, as tokens: each image a run of placeholder ids the worker swaps for its embeddings.

The chat template renders text, so each image goes into its message's text as
a marker (before the message's text, where Ollama puts its ``[img-N]`` tags)
that carries a per-request nonce, so no text a user types can stand for an
image. The rendered text is tokenized piece by piece around the markers, and
each marker becomes ``n`` copies of the image's placeholder id (between the
text tokens the projector puts around every image, as ``mtmd_tokenize``
does: Qwen2-VL's ``<|vision_start|>``/``<|vision_end|>``): a negative
number drawn from the image's sha256. The prompt's length then counts the
image's tokens (``n``, from the model's projector in the worker), history
fitting drops old turns with their images, and prefix reuse (which compares
token lists) keys an image by its content: the next turn of an image chat
finds the image's cells in place. ``runtime.vision_prefill`` feeds the runs to
the projector in the worker.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from engine.errors import InvalidInput
from engine.runtime.request import ImageInput
from engine.templates.message import Message


def placeholder(data: bytes) -> int:
    """The negative id an image's tokens are written as in a prompt (never a vocabulary id)."""
    return -1 - int(hashlib.sha256(data).hexdigest()[:7], 16)


@dataclass(frozen=True)
class ImageMarks:
    """The images of a request, the markers standing for them in its messages, and their token counts."""

    nonce: str
    images: tuple[bytes, ...]
    counts: tuple[int, ...]
    wrap: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())  # tokens before and after each image

    @classmethod
    def of(
        cls, messages: Sequence[Message], count: Any, wrap: Any = None
    ) -> tuple[list[Message], ImageMarks | None]:
        """``messages`` with markers before their text; ``count(images)`` gives the images' token counts,
        ``wrap()`` the tokens around each image."""
        images = tuple(image for message in messages for image in message.images)
        if not images:
            return list(messages), None
        counts = tuple(count(list(images)))
        marks = cls(secrets.token_hex(8), images, counts, wrap() if wrap is not None else ((), ()))
        marked, index = [], 0
        for message in messages:
            if message.images:
                tags = "".join(marks.marker(index + k) for k in range(len(message.images)))
                index += len(message.images)
                message = replace(message, content=tags + message.content)
            marked.append(message)
        return marked, marks

    def marker(self, index: int) -> str:
        return f"<|image-{self.nonce}-{index}|>"

    def tokenize(
        self, model: Any, text: str, room: int, *, add_special: bool, parse_special: bool
    ) -> list[int] | int:
        """``text`` as tokens, each marker its image's placeholders; only a count past ``room`` tokens."""
        pattern = re.compile(re.escape(f"<|image-{self.nonce}-") + r"(\d+)\|>")
        tokens: list[int] = []
        at, first = 0, True
        for found in [*pattern.finditer(text), None]:
            piece = text[at : found.start() if found else len(text)]
            if piece or (first and add_special):
                got = model.tokenize_within(
                    piece,
                    max(room - len(tokens), 0),
                    add_special=first and add_special,
                    parse_special=parse_special,
                )
                if isinstance(got, int):
                    return len(tokens) + got
                tokens += got
            first = False
            if found is None:
                break
            index = int(found.group(1))
            if index >= len(self.images):
                raise InvalidInput("a message names an image it does not have")
            before, after = self.wrap
            tokens += [*before, *[placeholder(self.images[index])] * self.counts[index], *after]
            at = found.end()
        return tokens

    def inputs(self, tokens: Sequence[int]) -> tuple[ImageInput, ...]:
        """Where each image's placeholders lie in the final ``tokens`` (an image sent twice, twice)."""
        known = {placeholder(image): (image, n) for image, n in zip(self.images, self.counts, strict=True)}
        found: list[ImageInput] = []
        i = 0
        while i < len(tokens):
            token = tokens[i]
            if token >= 0 or token not in known:
                i += 1
                continue
            data, n = known[token]
            found.append(ImageInput(i, n, data))
            i += n
        if tokens and tokens[-1] < 0:
            raise InvalidInput("an image must be followed by text (the prompt ends with one)")
        return tuple(found)
