"""The facade as the CLI, the TUI and the API call it: removing, copying, verifying, cancelling.

Each test here comes from a hostile run against the foundation, written
against ``engine.Engine`` so it survives the rewrites of the front ends.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from engine import (
    Cancelled,
    CancelToken,
    Engine,
    IntegrityError,
    InvalidInput,
    Machine,
    ModelNotFound,
    NewerStore,
    Waiting,
)
from engine.store.migrations import SCHEMA
from engine.store.model_store import Store
from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import write_tiny_gguf

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("engine-repos")
    return {
        "Q8_0": write_tiny_gguf(d / "Tiny-Q8_0.gguf", quant="Q8_0")[0],
        "Q4_0": write_tiny_gguf(d / "Tiny-Q4_0.gguf", quant="Q4_0")[0],
        "other": write_tiny_gguf(d / "Other-Q8_0.gguf", quant="Q8_0", seed=9)[0],
        "big": write_tiny_gguf(d / "Big-Q8_0.gguf", quant="Q8_0", pad_bytes=40 * 1000 * 1000, seed=4)[0],
    }


@pytest.fixture
def hub(files: dict[str, Path]):
    with FakeHub() as fake, fake.patch_endpoint():
        fake.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": files["Q8_0"], "Tiny-Q4_0.gguf": files["Q4_0"]})
        fake.add_repo("acme/Other-GGUF", {"Other-Q8_0.gguf": files["other"]})
        fake.add_repo("acme/Big-GGUF", {"Big-Q8_0.gguf": files["big"]})
        yield fake


@pytest.fixture
def engine(hub: FakeHub) -> Engine:
    return Engine(machine=lambda: CPU_BOX)


def manifest_file(engine: Engine, relative: str) -> Path:
    return engine.home / "manifests" / relative


def test_rm_of_b_keeps_the_weights_of_a_newer_manifest_a(engine: Engine) -> None:
    """The data-loss repro: give A's manifest a newer schema, rm B, and A's blob was gone."""
    a = engine.pull("acme/Tiny-GGUF:Q8_0")
    engine.pull("acme/Other-GGUF")
    path = manifest_file(engine, "hf.co/acme/Tiny-GGUF/Q8_0.json")
    path.write_text(json.dumps(json.loads(path.read_text()) | {"schema": SCHEMA + 1}))
    removal = engine.remove("hf.co/acme/Other-GGUF:Q8_0")
    assert removal.freed > 0
    assert Store().has_blob(a.files[0].sha256)
    [problem] = engine.store_problems()
    assert problem.newer and problem.reference == "hf.co/acme/Tiny-GGUF:Q8_0"
    with pytest.raises(NewerStore, match="newer llamadeck"):
        engine.remove("hf.co/acme/Tiny-GGUF:Q8_0")  # not ours to delete
    assert path.exists()
    [report] = engine.verify()
    assert "newer llamadeck" in report.problems[0] and report.repair is None


def test_rm_removes_the_name_it_was_given_and_only_that(engine: Engine) -> None:
    """A manifest folder copied by hand: ls listed the model twice and rm tiny2 deleted tiny."""
    engine.pull("acme/Tiny-GGUF:Q8_0")
    engine.copy("acme/Tiny-GGUF:Q8_0", "tiny")
    copied = manifest_file(engine, "library/tiny2/latest.json")
    copied.parent.mkdir(parents=True)
    copied.write_bytes(manifest_file(engine, "library/tiny/latest.json").read_bytes())
    assert sorted(m.reference for m in engine.list_models()) == ["hf.co/acme/Tiny-GGUF:Q8_0", "tiny:latest"]
    assert [p.reference for p in engine.store_problems()] == ["tiny2:latest"]
    assert [r.reference for r in engine.verify() if not r.ok] == ["tiny2:latest"]
    removal = engine.remove("tiny2")
    assert removal.reference == "tiny2:latest" and removal.freed == 0
    assert engine.resolve("tiny").reference == "tiny:latest" and not copied.exists()
    with pytest.raises(ModelNotFound, match="llamadeck list"):
        engine.remove("tiny2")


def test_one_malformed_manifest_breaks_nothing_else(engine: Engine) -> None:
    engine.pull("acme/Tiny-GGUF:Q8_0")
    engine.copy("acme/Tiny-GGUF:Q8_0", "broken")
    path = manifest_file(engine, "library/broken/latest.json")
    path.write_text(json.dumps(json.loads(path.read_text()) | {"files": [], "created": "yesterday"}))
    assert [m.reference for m in engine.list_models()] == ["hf.co/acme/Tiny-GGUF:Q8_0"]
    assert engine.show("acme/Tiny-GGUF:Q8_0").manifest.quant == "Q8_0"
    with pytest.raises(IntegrityError, match="broken:latest is damaged"):
        engine.show("broken")
    [bad] = [r for r in engine.verify() if not r.ok]  # verify no longer calls it ok
    assert bad.reference == "broken:latest" and "rm broken:latest" in (bad.repair or "")
    engine.remove("broken")
    assert engine.store_problems() == []


def test_rm_of_a_hub_name_without_quant_needs_it_when_several_are_stored(engine: Engine) -> None:
    engine.pull("acme/Tiny-GGUF:Q8_0")
    engine.pull("acme/Tiny-GGUF:Q4_0")
    with pytest.raises(InvalidInput, match=r"2 quants here \(Q4_0, Q8_0\)"):
        engine.remove("hf.co/acme/Tiny-GGUF")
    assert len(engine.list_models()) == 2
    engine.remove("hf.co/acme/Tiny-GGUF:Q4_0")
    assert engine.remove("hf.co/acme/Tiny-GGUF").reference == "hf.co/acme/Tiny-GGUF:Q8_0"
    assert engine.list_models() == []
    assert list(Store().blobs.iterdir()) == []


def test_cp_onto_itself_is_refused_and_changes_nothing(engine: Engine) -> None:
    engine.pull("acme/Tiny-GGUF:Q8_0")
    engine.copy("acme/Tiny-GGUF:Q8_0", "x")
    before = engine.resolve("x")
    with pytest.raises(InvalidInput, match="already that model"):
        engine.copy("x", "X:latest")
    assert engine.resolve("x") == before
    assert before.config.parent == "hf.co/acme/Tiny-GGUF:Q8_0"


def test_verify_answers_every_name_even_after_a_missing_one(engine: Engine) -> None:
    engine.pull("acme/Tiny-GGUF:Q8_0")
    engine.copy("acme/Tiny-GGUF:Q8_0", "good")
    reports = engine.verify(["good", "ghost", "good"])
    assert [(r.reference, r.ok) for r in reports] == [
        ("good:latest", True),
        ("ghost", False),
        ("good:latest", True),
    ]
    assert "not found" in reports[1].problems[0]


def test_repair_advice_fits_where_the_model_came_from(engine: Engine) -> None:
    manifest = engine.pull("acme/Tiny-GGUF:Q8_0")
    engine.copy("acme/Tiny-GGUF:Q8_0", "mine")
    blob = Store().blob_path(manifest.files[0].sha256)
    blob.write_bytes(b"GGUF" + b"\0" * 100)
    advice = {r.reference: r.repair for r in engine.verify()}
    assert (
        advice["hf.co/acme/Tiny-GGUF:Q8_0"]
        == "pull it again to repair it: llamadeck pull hf.co/acme/Tiny-GGUF:Q8_0"
    )
    assert "made from hf.co/acme/Tiny-GGUF:Q8_0" in (advice["mine:latest"] or "")


def test_not_found_advice_only_offers_pull_for_what_can_be_pulled(engine: Engine) -> None:
    with pytest.raises(ModelNotFound, match="llamadeck list shows") as local:
        engine.resolve("ghost")
    assert "pull" not in str(local.value)
    with pytest.raises(ModelNotFound, match="pull it with llamadeck pull hf.co/acme/Nope:Q8_0"):
        engine.resolve("acme/Nope:Q8_0")
    with pytest.raises(ModelNotFound, match="can only pull Hugging Face references"):
        engine.pull("ghost")


def test_cancel_a_pull_from_another_thread_keeps_the_partial(engine: Engine, hub: FakeHub, files) -> None:
    hub.fault("Big-Q8_0.gguf", "slow", rate=4_000_000)
    token = CancelToken()
    caught: list[BaseException] = []

    def pull() -> None:
        try:
            engine.pull("acme/Big-GGUF", cancel=token)
        except BaseException as error:  # noqa: BLE001 - the test inspects it
            caught.append(error)

    worker = threading.Thread(target=pull)
    worker.start()
    partials = Store().partial
    deadline = time.monotonic() + 300  # a hang guard: a loaded machine may be slow
    while time.monotonic() < deadline and not any(p.stat().st_size > 0 for p in partials.glob("*.partial")):
        time.sleep(0.05)
    token.cancel()
    worker.join(10)  # bounds the wait; a cancel not honoured shows below: no Cancelled, no partial
    assert not worker.is_alive()
    assert len(caught) == 1 and isinstance(caught[0], Cancelled)
    [partial] = partials.glob("*.partial")
    kept = partial.stat().st_size
    assert 0 < kept < files["big"].stat().st_size
    assert engine.list_models() == []
    hub.clear_faults()
    hub.reset_counts()
    engine.pull("acme/Big-GGUF")  # resumes
    assert hub.bytes_served["Big-Q8_0.gguf"] <= files["big"].stat().st_size - kept + 2 * 1024 * 1024


def test_cancel_while_waiting_for_another_process_lock(engine: Engine, files) -> None:
    import hashlib

    sha = hashlib.sha256(files["other"].read_bytes()).hexdigest()
    store = Store()
    store.ensure()
    lock = store.blob_lock(sha)  # as if another process were fetching it
    assert lock.try_acquire()
    token = CancelToken()
    seen: list = []
    caught: list[BaseException] = []

    def pull() -> None:
        try:
            engine.pull("acme/Other-GGUF", on_event=seen.append, cancel=token)
        except BaseException as error:  # noqa: BLE001
            caught.append(error)

    worker = threading.Thread(target=pull)
    worker.start()
    deadline = time.monotonic() + 300  # a hang guard: a loaded machine may be slow
    while time.monotonic() < deadline and not any(isinstance(e, Waiting) for e in seen):
        time.sleep(0.02)
    token.cancel()
    worker.join(2)
    lock.release()
    assert not worker.is_alive() and caught and isinstance(caught[0], Cancelled)


def test_prune_leaves_a_partial_that_a_pull_is_writing(engine: Engine) -> None:
    store = Store()
    store.ensure()
    sha = "ab" * 32
    store.partial_path(sha).write_bytes(b"in flight")
    lock = store.blob_lock(sha)
    assert lock.try_acquire()
    try:
        assert engine.prune().partials == 0
    finally:
        lock.release()
    assert engine.prune().partials == 1


def test_a_store_that_is_a_file_is_one_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "file"
    home.write_text("x")
    with pytest.raises(InvalidInput, match="not a directory"):
        Engine(home=home).list_models()


def test_a_quant_is_refused_for_names_that_have_no_choice(engine: Engine) -> None:
    with pytest.raises(InvalidInput, match="comes in one quantization, Q4_K_M"):
        engine.pull("gemma3:270m", quant="Q8_0")
    with pytest.raises(InvalidInput, match="is a local name"):
        engine.pull("ghost", quant="Q4_0")
