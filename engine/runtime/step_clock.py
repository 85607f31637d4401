"""How many prompt tokens a scheduler step may take, from the step times it measured.

While other sequences generate, a prompt is evaluated in chunks sized so
that a step with a chunk costs about ``PREFILL_STEP_RATIO`` decode-only
steps: the running streams keep flowing at a bounded slowdown instead of
stalling for seconds behind a long paste. Short prompts (``SHORT_PROMPT``)
go whole into the next step, so requests arriving together start together.
With nothing generating, prompts go in whole batches. Used on the compute
thread only.
"""

from __future__ import annotations

# A step with a prompt chunk may cost this many decode-only steps. The prompt then takes R / (R - 1) times
# as long as alone (2.25x at R = 1.8), while the running streams slow down by about R (their p95 gap stays
# under 3x the median with the noise of a shared machine).
PREFILL_STEP_RATIO = 1.8
# tokens, so a prompt always advances (on CPU one Gemma 3 prompt token costs 1/5 of a decode step)
MIN_CHUNK = 2
FIRST_CHUNK = 16  # before any step has been timed
# A prompt with this many tokens or fewer left goes whole into the next step, beside the chunks: short
# prompts arriving together (eight chat clients, "Tell me about ...") start in one step, not one after the
# other at a chunk per step; at most SHORT_BUDGET such tokens a step, so a burst stalls the streams briefly.
SHORT_PROMPT = 64
SHORT_BUDGET = 256
_EMA = 0.25


def _smooth(average: float | None, sample: float) -> float:
    """A moving average that a stall (another process took a core for 0.5 s) barely moves."""
    if average is None:
        return sample
    weight = _EMA if sample < 3 * average else _EMA / 10
    return average + weight * (sample - average)


class StepClock:
    """Step times as moving averages: a decode-only step, and the cost of one prompt token in a step."""

    def __init__(self) -> None:
        self._t_decode: float | None = None  # seconds of a decode-only step (EMA)
        self._t_token: float | None = None  # seconds per prompt token in a step (EMA)

    @property
    def t_decode(self) -> float | None:
        return self._t_decode

    @property
    def t_token(self) -> float | None:
        return self._t_token

    def prompt_budget(self, n_generating: int, room: int) -> int:
        """Prompt tokens this step may take: all the batch has ``room`` for when nothing generates, else a
        chunk."""
        if n_generating == 0:
            return room
        if self._t_decode is None or self._t_token is None:
            return min(FIRST_CHUNK, room)
        chunk = int((PREFILL_STEP_RATIO - 1.0) * self._t_decode / self._t_token)
        return max(MIN_CHUNK, min(chunk, room))

    def learn(self, seconds: float, n_generating: int, n_prompt: int) -> None:
        """Keep the step-time model (decode-only step, cost per prompt token) that sizes the chunks."""
        if n_prompt == 0:
            if n_generating:
                self._t_decode = _smooth(self._t_decode, seconds)
            return
        if n_generating and self._t_decode is not None:
            per = max(seconds - self._t_decode, 0.0) / n_prompt
        elif n_generating:
            return
        else:
            per = seconds / n_prompt
        self._t_token = _smooth(self._t_token, max(per, 1e-7))
