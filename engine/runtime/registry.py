"""Loaded models: load on demand, keep alive, unload, evict to fit — the way Ollama's scheduler does.

The registry does not know llama.cpp: it holds ``Resident`` entries made by
a loader it is given (``residency.py`` gives it llama.cpp's), counts who is
using each, and decides when one goes. ``keep_alive`` as Ollama has it
(``engine.durations``): seconds after the last request ends (default five
minutes), ``0`` unloads right after the reply, a negative value keeps the
model until it is unloaded by hand. When one more model would not fit the
memory budget, or past ``max_loaded`` models (``OLLAMA_MAX_LOADED_MODELS``),
idle models go first, least recently used first; a model in use is never
unloaded under a running request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from engine.cancel import NEVER, CancelToken
from engine.durations import DEFAULT_KEEP_ALIVE
from engine.errors import Busy, ShutDown

_REAP_EVERY = 1.0


class Unloadable(Protocol):
    def close(self) -> None: ...


P = TypeVar("P", bound=Unloadable)


@dataclass
class Resident(Generic[P]):
    """One loaded model as the registry tracks it."""

    key: tuple[str, Any]  # (weights id, load settings): a different num_ctx is a different load
    name: str  # the reference it was loaded as, for people
    memory: int  # bytes it holds (RAM + VRAM), for the budget
    payload: P  # what the loader made (model + scheduler)
    loaded_at: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    expires_at: float | None = None  # monotonic; None while in use or kept forever
    users: int = 0

    @property
    def status(self) -> str:
        return "in use" if self.users else "idle"


class Registry(Generic[P]):
    """The loaded models of one engine, with a reaper thread for keep-alive expiry."""

    def __init__(
        self,
        *,
        budget: Callable[[], int],
        default_keep_alive: float = DEFAULT_KEEP_ALIVE,
        max_loaded: int = 0,
    ) -> None:
        self._budget = budget  # bytes free for models right now, measured when a load is due
        self.default_keep_alive = default_keep_alive  # seconds, when a use gives none
        self.max_loaded = max_loaded  # models loaded at once (OLLAMA_MAX_LOADED_MODELS); 0: memory decides
        self._lock = threading.Condition()
        self._residents: dict[tuple[str, Any], Resident[P]] = {}
        self._loading: dict[tuple[str, Any], int] = {}  # loads in flight and the bytes each reserved
        self._closed = False
        self._reaper: threading.Thread | None = None

    # using -----------------------------------------------------------------

    @contextmanager
    def use(
        self,
        key: tuple[str, Any],
        name: str,
        load: Callable[[CancelToken], tuple[P, int]],
        *,
        need: int | Callable[[], int],
        keep_alive: float | None = None,
        cancel: CancelToken = NEVER,
    ) -> Iterator[tuple[Resident[P], bool]]:
        """The resident for ``key``, loaded first when needed; (resident, loaded_now).

        ``load(cancel)`` returns the payload and the bytes it holds; ``need`` is
        the estimate used to make room before loading (a callable is asked only
        when a load is really due). While the block runs the
        model cannot be unloaded; when it ends, the keep-alive clock starts.
        """
        resident, fresh = self._acquire(key, name, load, need, cancel)
        try:
            yield resident, fresh
        finally:
            self._release(resident, self.default_keep_alive if keep_alive is None else keep_alive)

    def _acquire(
        self,
        key: tuple[str, Any],
        name: str,
        load: Callable[[CancelToken], tuple[P, int]],
        need: int | Callable[[], int],
        cancel: CancelToken,
    ) -> tuple[Resident[P], bool]:
        with self._lock:
            victims = self._admit(key, need, cancel)
            if victims is None:  # loaded already (or by the load this call waited for)
                resident = self._residents[key]
                resident.users += 1
                resident.expires_at = None
                resident.last_used = time.monotonic()
                return resident, False
        try:
            for victim in victims:
                victim.payload.close()
            payload, memory = load(cancel)
        except BaseException:
            with self._lock:  # a failed or cancelled load gives its reservation back
                del self._loading[key]
                self._lock.notify_all()
            raise
        with self._lock:
            closed = self._closed
            if (
                not closed
            ):  # the reservation becomes the resident in one step: never counted twice or not at all
                resident = Resident(key, name, memory, payload, users=1)
                self._residents[key] = resident
                self._start_reaper()
            del self._loading[key]
            self._lock.notify_all()
        if closed:  # the engine shut down while this model loaded: it must not stay behind
            payload.close()
            self._check_open()
        return resident, True

    def _admit(
        self, key: tuple[str, Any], need: int | Callable[[], int], cancel: CancelToken
    ) -> list[Resident[P]] | None:
        """Wait until ``key`` is loaded (None) or may load (reserved now; the idle models to unload).

        Call with the lock. Loads in flight hold their reservation until they
        end, so a load decided now counts them as spent: two loads that would
        each fit alone never start together. The same weights with other load
        options are one copy at a time, as Ollama's scheduler has it: an idle
        copy is replaced, a copy in use or loading is waited for.
        """
        needed: int | None = None
        while True:
            self._check_open()
            cancel.check()
            if key in self._residents:
                return None
            rivals = [r for r in self._residents.values() if r.key[0] == key[0]]
            if (
                key in self._loading
                or any(k[0] == key[0] for k in self._loading)
                or any(r.users for r in rivals)
            ):
                self._lock.wait(0.2)  # woken when a load ends or a model is released
                continue
            if needed is None:
                needed = need() if callable(need) else need
            # may raise Busy: before anything is reserved
            victims = self._make_room(needed, rivals)
            if victims is None:  # only loads in flight stand in the way: wait for them to end
                self._lock.wait(0.2)
                continue
            for victim in victims:
                del self._residents[victim.key]
            self._loading[key] = needed
            return victims

    def _check_open(self) -> None:
        if self._closed:
            raise ShutDown("the engine was closed: no more models are loaded by it")

    def _make_room(self, need: int, rivals: list[Resident[P]]) -> list[Resident[P]] | None:
        """Idle residents to unload (``rivals``, then least recently used) until ``need`` fits.

        Call with the lock. What loads in flight reserved is not free. When it still does not fit
        because other models are generating, the load is refused (Busy) rather
        than risk running out of memory under them; when loads in flight are
        what stands in the way, None: wait for them. With nothing else loaded
        or loading it is tried anyway (mmap and swap may carry it, and the
        quant pick already warned). With ``max_loaded`` models loaded, idle
        ones go (least recently used first) to make it one fewer; when all of
        them are in use, None: the load waits until one is idle, as Ollama's does.
        """
        free = self._budget() - sum(self._loading.values())
        victims = list(rivals)
        free += sum(r.memory for r in victims)
        idle = sorted(
            (r for r in self._residents.values() if not r.users and r not in victims),
            key=lambda r: r.last_used,
        )
        while need > free and idle:
            victim = idle.pop(0)
            victims.append(victim)
            free += victim.memory
        if need > free and self._loading:
            return None
        busy = [r.name for r in self._residents.values() if r.users]
        if need > free and busy:
            raise Busy(
                f"not enough memory for another model while {', '.join(busy)} is generating; "
                "try again when it is done"
            )
        if self.max_loaded > 0:  # a count limit too: the least recently used idle models go first
            loaded = len(self._residents) - len(victims) + len(self._loading)
            while loaded >= self.max_loaded and idle:
                victims.append(idle.pop(0))
                loaded -= 1
            if loaded >= self.max_loaded:  # the others are in use or loading: wait, as Ollama's scheduler
                return None
        return victims

    def _release(self, resident: Resident[P], keep_alive: float) -> None:
        unload = False
        with self._lock:
            resident.users -= 1
            resident.last_used = time.monotonic()
            if resident.users == 0:
                self._lock.notify_all()  # a load waiting for these weights to be idle may go on
                if keep_alive == 0:
                    unload = self._residents.pop(resident.key, None) is resident
                elif keep_alive > 0:
                    resident.expires_at = resident.last_used + keep_alive
                else:
                    resident.expires_at = None  # forever
        if unload:
            resident.payload.close()

    # managing --------------------------------------------------------------

    def reservations(self) -> dict[tuple[str, Any], int]:
        """The loads in flight and the bytes each reserved: spent, for the budget, until the load ends."""
        with self._lock:
            return dict(self._loading)

    def residents(self) -> list[Resident[P]]:
        with self._lock:
            return sorted(self._residents.values(), key=lambda r: r.loaded_at)

    def unload(self, match: Callable[[Resident[P]], bool]) -> list[str]:
        """Unload the idle residents ``match`` picks; a model in use is refused (Busy)."""
        with self._lock:
            chosen = [r for r in self._residents.values() if match(r)]
            busy = [r.name for r in chosen if r.users]
            if busy:
                raise Busy(f"{', '.join(busy)} is generating; stop it first")
            for r in chosen:
                del self._residents[r.key]
        for r in chosen:
            r.payload.close()
        return [r.name for r in chosen]

    def discard(self, match: Callable[[Resident[P]], bool]) -> list[str]:
        """Forget the residents ``match`` picks, in use or not, and close them: their worker crashed.

        Whoever still uses one holds an ended model: its requests have failed
        already, and its release finds it gone. The next request loads afresh.
        """
        with self._lock:
            chosen = [r for r in self._residents.values() if match(r)]
            for r in chosen:
                del self._residents[r.key]
            self._lock.notify_all()
        for r in chosen:
            r.payload.close()
        return [r.name for r in chosen]

    def reap(self, now: float | None = None) -> list[str]:
        """Unload every idle resident whose keep-alive has run out."""
        now = time.monotonic() if now is None else now
        with self._lock:
            expired = [
                r
                for r in self._residents.values()
                if not r.users and r.expires_at is not None and r.expires_at <= now
            ]
            for r in expired:
                del self._residents[r.key]
        for r in expired:
            r.payload.close()
        return [r.name for r in expired]

    def close(self) -> None:
        """Unload everything (the engine is shutting down)."""
        with self._lock:
            self._closed = True
            residents = list(self._residents.values())
            self._residents.clear()
            self._lock.notify_all()
        for r in residents:
            r.payload.close()

    def _start_reaper(self) -> None:
        if self._reaper is None or not self._reaper.is_alive():
            self._reaper = threading.Thread(target=self._reap_loop, name="llamadeck-reaper", daemon=True)
            self._reaper.start()

    def _reap_loop(self) -> None:
        while True:
            with self._lock:
                if self._closed or not self._residents:
                    self._reaper = None
                    return
                self._lock.wait(_REAP_EVERY)
            self.reap()
