"""What `ps`, /api/ps and the Sessions tab say of a model's KV pool and its speculative decoding."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine import Engine, loaded_from_ps
from tests.support.api_server import running_api
from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import write_tiny_gguf
from tui.cli.running import _sequences
from tui.widgets.sessions_pane import session_cells

MODEL = "hf.co/acme/Tiny-GGUF:Q8_0"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]})
        engine = Engine(tmp_path / "home")
        engine.pull("acme/Tiny-GGUF")
    yield engine
    engine.close()


def test_ps_reports_the_pool_and_the_drafts_taken(engine: Engine) -> None:
    # greedy text from the random tiny model soon repeats itself: prompt lookup drafts, and some drafts hold
    for _ in engine.generate(MODEL, "a b a b a b a b", options={"temperature": 0, "num_predict": 64}):
        pass
    with running_api(engine) as base_url:
        [entry] = httpx.get(f"{base_url}/api/ps").json()["models"]
    assert entry["kv_cells"] >= entry["context_length"] and 0 < entry["kv_used"] <= entry["kv_cells"]
    assert entry["num_parallel"] >= 4 and entry["sequences_busy"] == 0 and entry["paused"] == 0
    assert entry["drafted"] > 0 and 0 <= entry["accepted"] <= entry["drafted"]
    [loaded] = engine.loaded()
    assert (loaded.drafted, loaded.accepted, loaded.kv_used) == (
        entry["drafted"],
        entry["accepted"],
        entry["kv_used"],
    )
    taken = 100 * entry["accepted"] // entry["drafted"]
    assert _sequences(loaded_from_ps(entry)).endswith(f"drafts {taken}% taken")
    assert f"kv {entry['kv_used']}/" in _sequences(loaded_from_ps(entry))
    cells = session_cells(loaded)
    assert cells[7].endswith(f"drafts {taken}% taken") and cells[5].startswith(str(entry["kv_used"]))


def test_ps_of_a_server_that_says_nothing_of_pools_shows_a_dash() -> None:
    assert _sequences(loaded_from_ps({"name": "llama3:latest", "size": 1})) == "-"  # Ollama's own answer
    pool = {"num_parallel": 4, "sequences_busy": 1, "queued": 2, "kv_cells": 100, "kv_used": 10}
    assert _sequences(loaded_from_ps(pool)) == "1/4 · kv 10/100 · 2 queued"


def test_verbose_says_how_many_of_a_replys_drafts_were_taken(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine import Done
    from tui.cli.progress import ReplyView

    view = ReplyView(verbose=True)
    done = None
    for event in engine.generate(MODEL, "a b a b a b a b", options={"temperature": 0, "num_predict": 64}):
        view(event)
        done = event if isinstance(event, Done) else done
    view.close()
    assert done is not None and done.drafted > 0 and 0 <= done.accepted <= done.drafted
    [loaded] = engine.loaded()
    assert (loaded.drafted, loaded.accepted) == (done.drafted, done.accepted)  # the model's first reply
    taken = f"{100 * done.accepted // done.drafted}% ({done.accepted}/{done.drafted} tokens)"
    assert f"draft acceptance:     {taken}\n" in capsys.readouterr().err
