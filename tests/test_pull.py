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
from engine.machine.memory import Fit, Machine
from engine.store.model_store import Store
from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import write_tiny_gguf
from tests.support.tiny_mmproj import write_tiny_mmproj

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
    flat["mmproj-Tiny-F16.gguf"] = write_tiny_mmproj(d / "mmproj-Tiny-F16.gguf")
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
    from engine.ingest.hub.listing import fetch_listing

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
        engine_on(GPU_BOX).pull("acme/Tiny-GGUF")  # the pick: Q8_0, whose header is not read first
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
    assert len(list(Store().blobs.iterdir())) == 2  # the weights and the repo's projector, one of each
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


# -- what a repository's names and cards can hold ------------------------------------

LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 123456\n"


def write_gguf_without_file_type(path: Path) -> Path:
    """A tiny GGUF whose header has no general.file_type: its quant can only come from its name."""
    import gguf

    from tests.support import tiny_gguf as tiny

    qtype, _ = tiny.QUANT_TYPES["Q8_0"]
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_context_length(tiny.N_CTX_TRAIN)
    writer.add_embedding_length(tiny.N_EMBD)
    writer.add_block_count(tiny.N_LAYERS)
    writer.add_feed_forward_length(tiny.N_FF)
    writer.add_head_count(tiny.N_HEAD)
    writer.add_head_count_kv(tiny.N_KV_HEAD)
    writer.add_vocab_size(tiny.N_VOCAB)
    tokens, scores, types = tiny.tiny_vocab()
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    tiny._add_weights(writer, qtype, 4)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_license_list_on_the_card_is_recorded_as_text(hub: FakeHub, repo_files) -> None:
    q4 = repo_files["acme/Tiny-GGUF"]["Tiny-Q4_0.gguf"]
    hub.add_repo("acme/Lic-GGUF", {"Tiny-Q4_0.gguf": q4}, card_data={"license": ["mit", "apache-2.0"]})
    hub.add_repo("acme/Odd-GGUF", {"Tiny-Q4_0.gguf": q4}, card_data={"license": {"name": "mit"}})
    hub.add_repo("acme/Long-GGUF", {"Tiny-Q4_0.gguf": q4}, card_data={"license": "é" * 100_000})
    engine = engine_on()
    assert engine.pull("acme/Lic-GGUF").license == "mit, apache-2.0"
    assert engine.pull("acme/Odd-GGUF").license == "mit"  # not the card's: the GGUF's own
    long = engine.pull("acme/Long-GGUF").license or ""
    assert long == "é" * (64 * 1024 // 2)  # cut to 64 KiB of UTF-8, on a character boundary
    assert {m.license for m in engine.list_models()} == {"mit, apache-2.0", "mit", long}
    assert engine.store_problems() == []  # the store reads back what the pull wrote


def test_a_chat_template_over_1_mib_is_refused_before_the_download(hub: FakeHub, tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "Tpl-Q8_0.gguf", chat_template="{# x #}" + "x" * (1 << 20))[0]
    hub.add_repo("acme/Tpl-GGUF", {path.name: path})
    with pytest.raises(IntegrityError, match=r"Tpl-Q8_0\.gguf has a chat template of 1,048,583 characters"):
        engine_on().pull("acme/Tpl-GGUF")
    assert engine_on().list_models() == [] and engine_on().store_problems() == []
    assert hub.bytes_served[path.name] < path.stat().st_size  # the header only


def test_every_listed_variant_can_be_pulled_by_the_tag_it_is_listed_under(
    hub: FakeHub, repo_files, tmp_path: Path
) -> None:
    q8 = repo_files["acme/Tiny-GGUF"]["Tiny-Q8_0.gguf"]
    long_quant = "Model-Q4_AAA_BBB_CCC_DDD_EEE_FFF_GGG_HHH_III_JJJ.gguf"
    plain = write_gguf_without_file_type(tmp_path / "plain.gguf")
    files: dict[str, Path | bytes] = {
        long_quant: q8,
        "my.model.v2.gguf": plain,  # no quant in the name, no file_type in the header
        "latest.gguf": plain,  # ":latest" means "no quant" in a reference
        "a/Tiny-Q8_0.gguf": q8,  # the same quant twice
        "b/Tiny-Q8_0.gguf": q8,
    }
    hub.add_repo("acme/Names-GGUF", files)
    engine = engine_on()
    listed = [f.quant for f in engine.variants("acme/Names-GGUF")]
    assert sorted(listed) == sorted(
        ["Q8_0", "Q8_0-2", "Q4_AAA_BBB_CCC_DDD_EEE_FFF_GGG_HHH_III_J", "MY_MODEL_V2", "GGUF"]
    )
    for tag in listed:
        manifest = engine.pull(f"hf.co/acme/Names-GGUF:{tag.lower()}")
        assert manifest.reference == f"hf.co/acme/Names-GGUF:{tag}" and manifest.quant == tag
    assert len(engine.list_models()) == len(listed) and engine.store_problems() == []


def test_a_broken_variant_does_not_stop_the_others(hub: FakeHub, repo_files) -> None:
    q8 = repo_files["acme/Tiny-GGUF"]["Tiny-Q8_0.gguf"]
    hub.add_repo(
        "acme/Mixed-GGUF", {"Tiny-Q8_0.gguf": q8, "Tiny-Q2_K.gguf": LFS_POINTER, "x.gguf": LFS_POINTER}
    )
    engine = engine_on()
    assert engine.pull("acme/Mixed-GGUF:Q8_0").quant == "Q8_0"
    assert hub.bytes_served["Tiny-Q2_K.gguf"] == 0  # an explicit quant reads its own header only

    events: list = []
    fits = engine.variants("acme/Mixed-GGUF", on_event=events.append)
    assert {f.quant for f in fits} == {"Q8_0", "Q2_K", "X"}
    skipped = [e.message for e in events if isinstance(e, Status) and e.message.startswith("skipping")]
    assert len(skipped) == 2 and all("not a GGUF file (bad magic)" in m for m in skipped), skipped

    with pytest.raises(IntegrityError, match=r"Tiny-Q2_K\.gguf in acme/Mixed-GGUF is not a GGUF file"):
        engine.pull("acme/Mixed-GGUF:Q2_K")


def test_a_repo_whose_every_variant_is_broken_says_so(hub: FakeHub) -> None:
    hub.add_repo("acme/Broken-GGUF", {"A-Q8_0.gguf": LFS_POINTER, "A-Q4_0.gguf": LFS_POINTER + b"\n"})
    with pytest.raises(IntegrityError) as caught:
        engine_on().variants("acme/Broken-GGUF")
    message = str(caught.value)
    assert message.startswith("none of the 2 variants of acme/Broken-GGUF has a readable GGUF header; ")
    assert "A-Q8_0.gguf in acme/Broken-GGUF is not a GGUF file (bad magic)" in message  # the smallest


def test_a_split_model_with_a_missing_part_is_named(hub: FakeHub, repo_files) -> None:
    parts = {k: v for k, v in repo_files["acme/Split-GGUF"].items() if "-00002-of-" not in k and "/" in k}
    hub.add_repo("acme/Holes-GGUF", parts)
    with pytest.raises(NoGGUFInRepo) as caught:
        engine_on().pull("acme/Holes-GGUF")
    assert (
        str(caught.value)
        == "acme/Holes-GGUF has only incomplete split models (Tiny-Q8_0: part 2 of 3 missing)"
    )

    hub.add_repo(
        "acme/Holes-GGUF", {**parts, "Tiny-Q4_0.gguf": repo_files["acme/Split-GGUF"]["Tiny-Q4_0.gguf"]}
    )
    events: list = []
    assert engine_on().pull("acme/Holes-GGUF", on_event=events.append).quant == "Q4_0"
    notes = [e.message for e in events if isinstance(e, Status)]
    assert "skipping incomplete split models: Tiny-Q8_0: part 2 of 3 missing" in notes
