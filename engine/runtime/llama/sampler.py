"""llama.cpp's own sampler chain for one request, built from Ollama's sampling options, and its grammar."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, ClassVar

import llama_cpp

from engine.errors import InvalidOption
from engine.runtime.llama.constrained import Constrained
from engine.runtime.llama.context import Context
from engine.runtime.llama.model import Model, finite

_RANDOM = random.SystemRandom()


class Sampler:
    """llama.cpp's own sampler chain for one request, built the way llama.cpp's ``common_sampler`` does.

    Without mirostat: penalties (repeat_last_n, repeat_penalty, frequency,
    presence), top_k, typical_p, top_p, min_p, temperature, then ``dist``
    (seeded); samplers that would do nothing are left out. Temperature 0 is
    greedy (after the penalties). Mirostat 1 or 2: temperature, then the
    mirostat sampler, as ``common_sampler`` does. Defaults are Ollama's.
    ``seed`` None or negative draws a random seed (kept in ``self.seed``).
    ``context_size`` is what ``repeat_last_n = -1`` means.

    ``grammar`` (GBNF text, root rule ``root``) constrains every token; the
    chain samples first and the grammar checks that one token, as
    llama-server does; a refused token costs a check of the best-scored
    tokens, rarely of the whole vocabulary (``constrained.py``).
    ``rejections`` counts the refused tokens.
    """

    def __init__(
        self,
        model: Model,
        *,
        temperature: float = 0.8,
        top_k: int = 40,
        top_p: float = 0.9,
        min_p: float = 0.0,
        typical_p: float = 1.0,
        repeat_penalty: float = 1.1,
        repeat_last_n: int = 64,
        presence_penalty: float = 0.0,
        frequency_penalty: float = 0.0,
        mirostat: int = 0,
        mirostat_tau: float = 5.0,
        mirostat_eta: float = 0.1,
        seed: int | None = None,
        context_size: int = 4096,
        grammar: str | None = None,
    ) -> None:
        if mirostat not in (0, 1, 2):
            raise InvalidOption(f"mirostat must be 0, 1 or 2, not {mirostat}")
        temperature = finite("temperature", temperature)
        repeat_penalty = finite("repeat_penalty", repeat_penalty)
        presence_penalty = finite("presence_penalty", presence_penalty)
        frequency_penalty = finite("frequency_penalty", frequency_penalty)
        top_p, min_p = finite("top_p", top_p), finite("min_p", min_p)
        typical_p = finite("typical_p", typical_p)
        tau, eta = finite("mirostat_tau", mirostat_tau), finite("mirostat_eta", mirostat_eta)
        if repeat_penalty <= 0:
            raise InvalidOption(f"repeat_penalty must be above 0, not {repeat_penalty}")
        self.seed = _RANDOM.randrange(0xFFFFFFFF) if seed is None or seed < 0 else seed & 0xFFFFFFFF
        last_n = context_size if repeat_last_n < 0 else repeat_last_n
        self.penalized = last_n > 0 and (repeat_penalty != 1.0 or presence_penalty or frequency_penalty)
        self.penalty_last_n = last_n if self.penalized else 0
        params = llama_cpp.llama_sampler_chain_default_params()
        params.no_perf = True
        chain = llama_cpp.llama_sampler_chain_init(params)
        self._chain = chain
        self._penalties: Any = None  # with a grammar: a chain of its own (see constrained.py)
        self._constrained: Constrained | None = None
        add = llama_cpp.llama_sampler_chain_add

        if mirostat == 0:
            if self.penalized:
                penalties = llama_cpp.llama_sampler_init_penalties(
                    model.n_vocab, last_n, repeat_penalty, frequency_penalty, presence_penalty
                )
                if grammar is None:
                    add(chain, penalties)
                else:
                    self._penalties = llama_cpp.llama_sampler_chain_init(params)
                    add(self._penalties, penalties)
            if temperature <= 0:
                add(chain, llama_cpp.llama_sampler_init_greedy())
            else:
                if top_k > 0:
                    add(chain, llama_cpp.llama_sampler_init_top_k(top_k))
                if 0 < typical_p < 1:
                    add(chain, llama_cpp.llama_sampler_init_typical(typical_p, 1))
                if 0 < top_p < 1:
                    add(chain, llama_cpp.llama_sampler_init_top_p(top_p, 1))
                if min_p > 0:
                    add(chain, llama_cpp.llama_sampler_init_min_p(min_p, 1))
                add(chain, llama_cpp.llama_sampler_init_temp(temperature))
                add(chain, llama_cpp.llama_sampler_init_dist(self.seed))
        else:
            add(chain, llama_cpp.llama_sampler_init_temp(temperature))
            if mirostat == 1:
                add(chain, llama_cpp.llama_sampler_init_mirostat(model.n_vocab, self.seed, tau, eta, 100))
            else:
                add(chain, llama_cpp.llama_sampler_init_mirostat_v2(self.seed, tau, eta))
        self._sample = llama_cpp.llama_sampler_sample
        if grammar is not None:
            # how many allowed tokens the chain looks at: 1 (greedy), top_k, or all of them
            need = None if mirostat else 1 if temperature <= 0 else top_k if top_k > 0 else None
            only_top_p = not mirostat and temperature > 0 and 0 < top_p < 1 and not 0 < typical_p < 1
            try:
                self._constrained = Constrained(
                    model, grammar, self._penalties, chain, need, top_p if only_top_p else None
                )
            except BaseException:
                self.free()
                raise

    # Ollama's option names, for building from a dataclass of them with ``from_options``
    OPTIONS: ClassVar[tuple[str, ...]] = (
        "temperature",
        "top_k",
        "top_p",
        "min_p",
        "typical_p",
        "repeat_penalty",
        "repeat_last_n",
        "presence_penalty",
        "frequency_penalty",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
        "seed",
    )

    @classmethod
    def from_options(
        cls, model: Model, options: Any, *, context_size: int = 4096, grammar: str | None = None
    ) -> Sampler:
        """A sampler from any object with Ollama's sampling option names as attributes."""
        values = {name: getattr(options, name) for name in cls.OPTIONS if hasattr(options, name)}
        return cls(model, context_size=context_size, grammar=grammar, **values)

    def sample(self, ctx: Context, index: int) -> int:
        """Sample (and accept) a token from the logits of batch entry ``index`` of the last decode.

        With a grammar, raises GrammarDeadEnd when it allows no token at all.
        """
        if self._constrained is None:
            return int(self._sample(self._chain, ctx.ptr, index))
        return self._constrained.sample(ctx.ptr, index)

    @property
    def rejections(self) -> int:
        """Sampled tokens the grammar refused (0 without one)."""
        return self._constrained.rejections if self._constrained is not None else 0

    def accept(self, tokens: Sequence[int]) -> None:
        """Feed tokens the sampler did not pick (a prompt) into its history, for the penalties."""
        chain = self._penalties if self._penalties is not None else self._chain
        for token in tokens:
            if token >= 0:  # an image's placeholders (negative) are no tokens of the vocabulary
                llama_cpp.llama_sampler_accept(chain, token)

    def reset(self) -> None:
        llama_cpp.llama_sampler_reset(self._chain)
        if self._penalties is not None:
            llama_cpp.llama_sampler_reset(self._penalties)

    def free(self) -> None:
        if self._constrained is not None:
            self._constrained.free()
            self._constrained = None
        for chain in (self._chain, self._penalties):
            if chain:
                llama_cpp.llama_sampler_free(chain)
        self._chain = self._penalties = None
