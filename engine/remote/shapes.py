"""A server's JSON read into the engine's own types, so front ends draw a remote model as a local one.

Ollama's ``/api/tags``, ``/api/show`` and ``/api/ps`` and OpenAI's ``/v1/models``
become ``RemoteModel`` (a ``Manifest`` that says where it lives),
``ModelDetails`` and ``LoadedModel``; a pull's status lines become
``Progress``/``Status``; the end of a reply becomes ``Done``. Every field is
read defensively: a server answers what it answers, and a missing or odd
field gives an empty value, never a crash.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.events import Done, Event, Progress, Status
from engine.facade import LoadedModel
from engine.library import ModelDetails
from engine.machine.memory import Fit
from engine.machine.quant import VariantFit
from engine.runtime.loading import LoadingModel
from engine.store.manifest import Manifest, ModelConfig, ModelFile
from engine.text import one_line

_NS = 1e-9
_FOREVER_S = 50 * 365 * 86400.0  # an expiry this far away is Ollama's "forever" (year 2318)


@dataclass(frozen=True)
class RemoteModel(Manifest):
    """A model on another machine's server, as its listing describes it; ``host`` says which."""

    host: str = ""

    @property
    def reference(self) -> str:
        """What the server calls it (an OpenAI id such as ``org/model`` has no tag: it stays as given)."""
        return f"{self.name}:{self.tag}" if self.tag else self.name


def table(value: object) -> dict[str, Any]:
    """A JSON object, or an empty one for anything else a server sent in its place."""
    return value if isinstance(value, dict) else {}


def _text(value: object, limit: int = 500) -> str:
    return one_line(str(value), limit) if value not in (None, "") else ""


def _int(value: object) -> int:
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return 0
    return number if 0 <= number < 1 << 63 else 0


def _float(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return number if number == number and abs(number) != float("inf") else 0.0


def _split(reference: str) -> tuple[str, str]:
    """``name:tag`` as Ollama writes it (a ``:`` inside a host:port prefix is not a tag)."""
    name, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:
        return reference, ""
    return name, tag


def parameter_count(size: str) -> int:
    """Ollama's ``parameter_size`` ("8.0B", "270M") as a number; 0 when unreadable."""
    scale = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}.get(size[-1:].upper())
    try:
        return int(float(size[:-1]) * scale) if scale else int(size)
    except ValueError:
        return 0


def tags_model(entry: dict[str, Any], host: str) -> RemoteModel:
    """One model of Ollama's ``/api/tags``."""
    name, tag = _split(_text(entry.get("name") or entry.get("model"), 300))
    details = table(entry.get("details"))
    size_label = _text(details.get("parameter_size"), 20)
    digest = _text(entry.get("digest"), 80).removeprefix("sha256:")
    return RemoteModel(
        name=name,
        tag=tag,
        source=host,
        revision=None,
        files=(ModelFile(path=name, sha256=digest, size=_int(entry.get("size"))),),
        quant=_text(details.get("quantization_level"), 20) or None,
        architecture=_text(details.get("family"), 60),
        parameters=parameter_count(size_label),
        context_length=0,  # not in a listing: show has it
        created=_text(entry.get("modified_at"), 40),
        size_label=size_label or None,
        host=host,
    )


def openai_model(entry: dict[str, Any], host: str) -> RemoteModel:
    """One model of OpenAI's ``/v1/models`` (an id and little else)."""
    ident = _text(entry.get("id"), 300)
    created = _int(entry.get("created"))
    when = datetime.fromtimestamp(created, UTC).isoformat() if created else ""
    return RemoteModel(
        name=ident,
        tag="",
        source=host,
        revision=None,
        files=(ModelFile(path=ident, sha256="", size=0),),
        quant=None,
        architecture="",
        parameters=0,
        context_length=_int(entry.get("max_model_len")),  # vLLM says it
        created=when,
        host=host,
    )


def _parameters(text: str) -> dict[str, Any]:
    """Ollama's ``parameters`` text ("temperature 0.7\\nstop x") as a mapping (several stops add up)."""
    found: dict[str, Any] = {}
    for line in text.splitlines():
        name, _, value = line.strip().partition(" ")
        value = value.strip().strip('"')
        if not name or not value:
            continue
        if name == "stop":
            found.setdefault("stop", []).append(value)
            continue
        try:
            found[name] = int(value)
        except ValueError:
            try:
                found[name] = float(value)
            except ValueError:
                found[name] = value
    return found


def shown_model(model: RemoteModel, answer: dict[str, Any]) -> ModelDetails:
    """Ollama's ``/api/show`` answer over what the listing said of the model."""
    info = table(answer.get("model_info"))
    details = table(answer.get("details"))
    architecture = _text(info.get("general.architecture") or details.get("family"), 60)
    size_label = _text(details.get("parameter_size"), 20) or model.size_label
    config = ModelConfig(
        template=str(answer.get("template") or "") or None,
        template_source="the server" if answer.get("template") else None,
        system=str(answer.get("system") or "") or None,
        parameters=_parameters(str(answer.get("parameters") or "")),
        parent=_text(details.get("parent_model"), 300) or None,
    )
    manifest = RemoteModel(
        name=model.name,
        tag=model.tag,
        source=model.host,
        revision=None,
        files=model.files,
        quant=_text(details.get("quantization_level"), 20) or model.quant,
        architecture=architecture,
        parameters=_int(info.get("general.parameter_count")) or parameter_count(size_label or ""),
        context_length=_int(info.get(f"{architecture}.context_length")),
        created=_text(answer.get("modified_at"), 40) or model.created,
        size_label=size_label,
        license=str(answer.get("license") or "") or None,
        config=config,
        host=model.host,
    )
    capabilities = answer.get("capabilities")
    return ModelDetails(
        manifest=manifest,
        paths=(),
        capabilities=tuple(str(c) for c in capabilities) if isinstance(capabilities, list) else (),
        model_info=dict(info),
    )


def loaded_from_ps(entry: dict[str, Any]) -> LoadedModel:
    """One model of Ollama's ``/api/ps`` (what llamadeck's adds, slots and queue, when it is there): how
    ``ps`` reads both a named server's answer and this machine's serve's."""
    expires = _expires_in(entry.get("expires_at"))
    return LoadedModel(
        reference=_text(entry.get("name") or entry.get("model"), 300),
        id=_text(entry.get("digest"), 80).removeprefix("sha256:")[:12],
        memory=_int(entry.get("size")),
        vram=_int(entry.get("size_vram")),
        gpu_layers=0,  # not in Ollama's answer
        layers=0,
        context=_int(entry.get("context_length")),
        slots=_int(entry.get("num_parallel")) or 1,
        slots_busy=_int(entry.get("sequences_busy")),
        conversations=(),
        status="queued" if _int(entry.get("queued")) else "idle",
        queued=_int(entry.get("queued")),
        tokens_per_second=0.0,
        expires_in=expires,
        kv_cells=_int(entry.get("kv_cells")),
        kv_used=_int(entry.get("kv_used")),
        paused=_int(entry.get("paused")),
        drafted=_int(entry.get("drafted")),
        accepted=_int(entry.get("accepted")),
        draft=_text(draft.get("model"), 300) if isinstance(draft := entry.get("draft"), dict) else None,
    )


def _expires_in(value: object) -> float | None:
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    left = (when - datetime.now(UTC)).total_seconds()
    return None if left > _FOREVER_S else max(left, 0.0)


class PullLines:
    """A pull's NDJSON status lines as the engine's events, with rate and time left measured here."""

    def __init__(self) -> None:
        self._started: dict[str, tuple[float, int]] = {}

    def event(self, line: dict[str, Any]) -> Event | None:
        status = _text(line.get("status"), 300)
        total = _int(line.get("total"))
        if not total:
            return Status(status) if status else None
        file = _text(line.get("digest"), 200) or status
        completed = min(_int(line.get("completed")), total)
        now = time.monotonic()
        began, at_start = self._started.setdefault(file, (now, completed))
        elapsed = now - began
        rate = (completed - at_start) / elapsed if elapsed > 0 else 0.0
        eta = (total - completed) / rate if rate > 0 else None
        action = "verifying" if status.startswith("verifying") else "downloading"
        return Progress(action, file, completed, total, rate, eta)


def ollama_done(line: dict[str, Any]) -> Done:
    """The last line of Ollama's ``/api/chat`` or ``/api/generate`` stream."""
    return Done(
        reason=_text(line.get("done_reason"), 40) or "stop",
        prompt_tokens=_int(line.get("prompt_eval_count")),
        completion_tokens=_int(line.get("eval_count")),
        load_seconds=_float(line.get("load_duration")) * _NS,
        prompt_seconds=_float(line.get("prompt_eval_duration")) * _NS,
        generate_seconds=_float(line.get("eval_duration")) * _NS,
        total_seconds=_float(line.get("total_duration")) * _NS,
    )


def openai_done(reason: str, usage: dict[str, Any], started: float, first: float | None) -> Done:
    """The end of an OpenAI stream: its finish reason and usage, the times measured on this side."""
    now = time.perf_counter()
    first = first if first is not None else now
    details = table(usage.get("prompt_tokens_details"))
    return Done(
        reason="length" if reason == "length" else "stop",
        prompt_tokens=_int(usage.get("prompt_tokens")),
        completion_tokens=_int(usage.get("completion_tokens")),
        load_seconds=0.0,
        prompt_seconds=first - started,
        generate_seconds=now - first,
        cached_tokens=_int(details.get("cached_tokens")),
        total_seconds=now - started,
    )


def loading_model(entry: dict[str, Any]) -> LoadingModel:
    """One load of llamadeck's ``/api/llamadeck/loading`` (progress 0 to 1; null: not said)."""
    progress = entry.get("progress")
    fraction = min(max(_float(progress), 0.0), 1.0) if progress is not None else None
    return LoadingModel(_text(entry.get("name"), 300), fraction, max(_float(entry.get("seconds")), 0.0))


def variant_fit(entry: dict[str, Any]) -> VariantFit:
    """One quantization of llamadeck's ``/api/llamadeck/variants`` (fits: "VRAM", "RAM" or "")."""
    fits = _text(entry.get("fits_in"), 10)
    return VariantFit(
        quant=_text(entry.get("quant"), 60),
        size=_int(entry.get("size")),
        need=_int(entry.get("need")),
        fits_in=Fit(fits) if fits in ("VRAM", "RAM") else Fit.NONE,
        recommended=entry.get("recommended") is True,
    )
