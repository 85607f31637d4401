"""Pulling from a fake Hub on loopback with the real huggingface_hub client and the real store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from engine import Engine
from engine.errors import (
    GatedRepo,
    HubUnreachable,
    IntegrityError,
    InvalidReference,
    NoGGUFInRepo,
    RepoNotFound,
    UnknownQuant,
)
from engine.events import Progress, Status
from engine.memory import Fit, Machine
from engine.store import Store
from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import write_tiny_gguf

GIB = 1024**3
CPU_BOX = Machine(free_ram=16 * GIB, gpu_free_vram=None)
GPU_BOX = Machine(free_ram=16 * GIB, gpu_free_vram=8 * GIB)


@pytest.fixture(scope="module")
def repo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path | bytes]]:
    """Repos laid out like real GGUF repos on the Hub."""
    d = tmp_path_factory.mktemp("repos")
    flat = {
        f"Tiny-{q}.gguf": write_tiny_gguf(d / f"Tiny-{q}.gguf", quant=q)[0]
        for q in ("F32", "F16", "Q8_0", "Q4_0")
    }
    flat["mmproj-Tiny-F16.gguf"] = flat["Tiny-F16.gguf"]
    flat["README.md"] = b"# Tiny\n"
    split_parts = write_tiny_gguf(d / "split" / "Tiny-Q8_0.gguf", quant="Q8_0", split_tensors=8, seed=1)
    split = {f"Q8_0/{p.name}": p for p in split_parts}
    split["Tiny-Q4_0.gguf"] = write_tiny_gguf(d / "split" / "Tiny-Q4_0.gguf", quant="Q4_0", seed=1)[0]
    big = write_tiny_gguf(d / "Big-Q8_0.gguf", quant="Q8_0", pad_bytes=110 * 1000 * 1000, seed=2)[0]
    unnamed = write_tiny_gguf(d / "unnamed" / "model.gguf", quant="F16", seed=3)[0]
    return {
        "acme/Tiny-GGUF": flat,
        "acme/Split-GGUF": split,
        "acme/Big-GGUF": {"Big-Q8_0.gguf": big},
        "acme/Unnamed-GGUF": {"model.gguf": unnamed},
        "acme/NoWeights": {"README.md": b"nothing here\n", "config.json": b"{}"},
    }


@pytest.fixture
def hub(repo_files: dict[str, dict[str, Path | bytes]]):
    with FakeHub() as fake, fake.patch_endpoint():
        for repo, files in repo_files.items():
            fake.add_repo(repo, files)
        fake.add_repo(
            "acme/Gated-GGUF", {"Tiny-Q8_0.gguf": repo_files["acme/Tiny-GGUF"]["Tiny-Q8_0.gguf"]}, gated=True
        )
        yield fake


def engine_on(machine: Machine = CPU_BOX, token: str | None = None) -> Engine:
    return Engine(machine=lambda: machine, token=token)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pull_without_quant_takes_q4_or_below_on_cpu_and_says_why(hub: FakeHub, repo_files) -> None:
    events: list = []
    manifest = engine_on().pull("hf.co/acme/Tiny-GGUF", on_event=events.append)
    assert manifest.reference == "hf.co/acme/Tiny-GGUF:Q4_0"
    reasons = [e.message for e in events if isinstance(e, Status) and e.message.startswith("picked")]
    assert reasons and "Q4_0" in reasons[0] and "CPU only" in reasons[0]
    expected = sha256_of(repo_files["acme/Tiny-GGUF"]["Tiny-Q4_0.gguf"])
    assert manifest.files[0].sha256 == expected
    assert (Path(Store().blobs) / f"sha256-{expected}").is_file()
    assert any(isinstance(e, Progress) and e.completed == e.total for e in events)


def test_pull_with_gpu_takes_best_quality_up_to_q8_0(hub: FakeHub) -> None:
    manifest = engine_on(GPU_BOX).pull("acme/Tiny-GGUF")
    assert manifest.quant == "Q8_0"


def test_explicit_quant_is_case_insensitive_and_wins(hub: FakeHub) -> None:
    manifest = engine_on().pull("huggingface.co/acme/Tiny-GGUF:f16")
    assert manifest.reference == "hf.co/acme/Tiny-GGUF:F16"
    assert manifest.architecture == "llama"
    assert manifest.context_length == 2048
    assert manifest.revision and len(manifest.revision) == 40
    assert manifest.template and "im_start" in manifest.template
    assert engine_on().pull("acme/Tiny-GGUF", quant="q8_0").quant == "Q8_0"


def test_unknown_quant_lists_the_available_ones(hub: FakeHub) -> None:
    with pytest.raises(UnknownQuant, match=r"Q5_K_M.*F32, F16, Q8_0, Q4_0"):
        engine_on().pull("acme/Tiny-GGUF:Q5_K_M")
    assert engine_on().list_models() == []


def test_projector_files_are_not_chat_models(hub: FakeHub) -> None:
    from engine.hub import fetch_listing

    listing = fetch_listing("acme/Tiny-GGUF")
    assert [p.path for p in listing.projectors] == ["mmproj-Tiny-F16.gguf"]
    assert all("mmproj" not in f.path for v in listing.variants for f in v.files)


def test_split_files_in_a_sub_folder_pull_as_one_variant(hub: FakeHub, repo_files) -> None:
    manifest = engine_on().pull("acme/Split-GGUF:Q8_0")
    assert [f.path for f in manifest.files] == [f"Q8_0/Tiny-Q8_0-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    store = Store()
    for file in manifest.files:
        assert sha256_of(store.blob_path(file.sha256)) == file.sha256
    assert manifest.parameters > 0


def test_quant_comes_from_the_header_when_the_name_has_none(hub: FakeHub) -> None:
    manifest = engine_on().pull("acme/Unnamed-GGUF")
    assert manifest.quant == "F16"


def test_pull_resumes_after_a_cut_connection(hub: FakeHub, repo_files) -> None:
    size = repo_files["acme/Big-GGUF"]["Big-Q8_0.gguf"].stat().st_size
    hub.fault("Big-Q8_0.gguf", "cut", at=size // 2, times=1)
    manifest = engine_on().pull("acme/Big-GGUF")
    assert manifest.size == size
    served = hub.bytes_served["Big-Q8_0.gguf"]
    assert served < size * 1.10, f"re-downloaded {served - size} bytes of {size}"


def test_corrupted_bytes_are_detected_and_nothing_is_registered(hub: FakeHub) -> None:
    hub.fault("Tiny-Q8_0.gguf", "corrupt")
    with pytest.raises(IntegrityError, match="sha256 mismatch for Tiny-Q8_0.gguf"):
        engine_on().pull("acme/Tiny-GGUF:Q8_0")
    store = Store()
    assert engine_on().list_models() == []
    assert list(store.blobs.iterdir()) == []
    assert list(store.partial.iterdir()) == []  # the bad bytes are gone, not resumed from


def test_a_corrupt_header_is_refused_before_the_download(hub: FakeHub) -> None:
    hub.fault("Big-Q8_0.gguf", "corrupt")
    with pytest.raises(IntegrityError, match="Big-Q8_0.gguf in acme/Big-GGUF is not a GGUF file"):
        engine_on().pull("acme/Big-GGUF")
    assert hub.bytes_served["Big-Q8_0.gguf"] < 2 * 1024 * 1024


def test_unknown_repo_says_so(hub: FakeHub) -> None:
    with pytest.raises(RepoNotFound, match="no repository acme/Nope on Hugging Face"):
        engine_on().pull("acme/Nope")


def test_gated_repo_asks_for_hf_token(hub: FakeHub) -> None:
    with pytest.raises(GatedRepo, match="HF_TOKEN"):
        engine_on().pull("acme/Gated-GGUF")
    assert engine_on(token="hf_test").pull("acme/Gated-GGUF").quant == "Q8_0"


def test_missing_file_on_the_hub(hub: FakeHub) -> None:
    hub.fault("Tiny-Q8_0.gguf", "status", code=404)
    with pytest.raises(RepoNotFound, match="disappeared"):
        engine_on().pull("acme/Tiny-GGUF:Q8_0")


def test_unreachable_hub_changes_nothing(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(HubUnreachable, match="cannot reach Hugging Face.*nothing changed"):
        engine_on().pull("acme/Tiny-GGUF")
    assert not Store().home.exists() or engine_on().list_models() == []


def test_repo_without_gguf(hub: FakeHub) -> None:
    with pytest.raises(NoGGUFInRepo, match="acme/NoWeights has no GGUF"):
        engine_on().pull("acme/NoWeights")


@pytest.mark.parametrize("hostile", ["../etc/passwd", "hf.co/../../x", "/abs/path", "a\x00b", "x" * 300])
def test_hostile_references_are_refused_before_any_request(hub: FakeHub, hostile: str) -> None:
    with pytest.raises(InvalidReference):
        engine_on().pull(hostile)
    assert hub.requests == []


def test_two_names_for_one_file_keep_one_blob(hub: FakeHub) -> None:
    engine = engine_on()
    engine.pull("acme/Tiny-GGUF:Q8_0")
    engine.copy("acme/Tiny-GGUF:Q8_0", "mine:v1")
    assert len(list(Store().blobs.iterdir())) == 1
    assert {m.reference for m in engine.list_models()} == {"hf.co/acme/Tiny-GGUF:Q8_0", "mine:v1"}


def test_variants_show_memory_need_and_the_recommended_pick(hub: FakeHub) -> None:
    fits = engine_on(GPU_BOX).variants("acme/Tiny-GGUF")
    assert [f.quant for f in fits] == ["F32", "F16", "Q8_0", "Q4_0"]
    assert [f.quant for f in fits if f.recommended] == ["Q8_0"]
    assert all(f.fits_in is Fit.VRAM and f.need > f.size for f in fits)
    tight = Machine(free_ram=1, gpu_free_vram=None)
    assert {f.fits_in for f in engine_on(tight).variants("acme/Tiny-GGUF")} == {Fit.NONE}
    assert engine_on().list_models() == []


def test_pulling_again_rechecks_the_stored_copy_instead_of_downloading(hub: FakeHub, repo_files) -> None:
    engine_on().pull("acme/Big-GGUF")
    hub.reset_counts()
    events: list = []
    engine_on().pull("acme/Big-GGUF", on_event=events.append)
    size = repo_files["acme/Big-GGUF"]["Big-Q8_0.gguf"].stat().st_size
    assert hub.bytes_served["Big-Q8_0.gguf"] <= 1024 * 1024  # the header read only
    assert any(isinstance(e, Progress) and e.action == "verifying" and e.completed == size for e in events)
    assert any(isinstance(e, Status) and "already in the store" in e.message for e in events)
