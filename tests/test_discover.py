"""Finding models Ollama, the Hugging Face cache and LM Studio downloaded, and importing them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Done, Engine, Machine
from engine.ingest.discover import default_locations, discover
from engine.ingest.found import FoundModel, suggest
from engine.ingest.local import import_gguf
from engine.store.refs import LocalRef, parse_local_name
from tests.support.other_stores import MEDIA, HFCache, LMStudio, OllamaStore
from tests.support.tiny_gguf import write_tiny_gguf

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)
GO_TEMPLATE = "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ .Prompt }}"


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    d = tmp_path_factory.mktemp("discover-ggufs")
    return {
        "q8": write_tiny_gguf(d / "Tiny-Q8_0.gguf"),
        "q4": write_tiny_gguf(d / "Tiny-Q4_0.gguf", quant="Q4_0", seed=3),
        "split": write_tiny_gguf(d / "split" / "Tiny-F16.gguf", quant="F16", split_tensors=8),
    }


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine(machine=lambda: CPU_BOX)
    yield engine
    engine.close()


def generates(engine: Engine, reference: str, *, raw: bool | None = None) -> None:
    events = list(engine.generate(reference, "hello world", max_tokens=4, temperature=0, raw=raw))
    assert isinstance(events[-1], Done) and events[-1].error is None


def by_name(found: list[FoundModel]) -> dict[str, FoundModel]:
    return {f.name: f for f in found}


def import_found(engine: Engine, found: FoundModel) -> str:
    assert found.importable, found.note
    ref = parse_local_name(found.suggested)
    assert isinstance(ref, LocalRef)
    import_gguf(
        engine._store, found.files, ref=ref, config=found.config, origin=found.origin, license=found.license
    )
    return str(ref)


# -- Ollama -----------------------------------------------------------------------------------


def test_an_ollama_model_comes_with_its_template_system_params_and_license(
    engine: Engine, ggufs: dict[str, list[Path]], tmp_path: Path
) -> None:
    ollama = OllamaStore(tmp_path / "ollama")
    ollama.add(
        "llama3.2",
        "3b",
        ggufs["q8"][0],
        template=GO_TEMPLATE,
        system="You are terse.",
        params={"stop": ["<|im_end|>"], "temperature": 0.6, "mirostat_mode": 9, "no_such": 1},
        license="LLAMA 3.2 COMMUNITY LICENSE",
        messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        extra_layers=[ollama.layer("projector", b"GGUF-projector")],
    )
    (found,) = discover(ollama=ollama.root)
    assert (found.tool, found.name, found.suggested) == ("ollama", "llama3.2:3b", "llama3.2:3b")
    blob = next((ollama.root / "blobs").glob("sha256-*"))
    assert found.files[0].parent == (ollama.root / "blobs").resolve() and found.files[0].name.startswith(
        "sha256-"
    )
    assert found.size == ggufs["q8"][0].stat().st_size and found.importable and blob.exists()
    config = found.config
    assert config is not None
    assert config.template == GO_TEMPLATE and config.template_source == "modelfile"
    assert config.system == "You are terse." and config.parameters == {
        "stop": ["<|im_end|>"],
        "temperature": 0.6,
    }
    assert config.messages == (("user", "hi"), ("assistant", "hello"))
    assert found.license == "LLAMA 3.2 COMMUNITY LICENSE"
    assert found.note is not None and "mirostat_mode" in found.note and "no_such" in found.note
    assert found.projector is not None and found.projector.name.startswith("sha256-")  # comes along
    reference = import_found(engine, found)
    manifest = engine.resolve(reference)
    assert manifest.source == "ollama llama3.2:3b" and manifest.license == "LLAMA 3.2 COMMUNITY LICENSE"
    assert manifest.template == GO_TEMPLATE and manifest.config.system == "You are terse."
    stored = engine._store.blob_path(manifest.files[0].sha256)
    assert os.stat(stored).st_ino == os.stat(found.files[0]).st_ino  # Ollama's blob, hard-linked
    assert all(r.ok for r in engine.verify([reference]))
    generates(engine, reference, raw=True)  # a Go template renders once Modelfile support lands


def test_ollama_names_from_other_hosts_and_namespaces(ggufs: dict[str, list[Path]], tmp_path: Path) -> None:
    ollama = OllamaStore(tmp_path / "ollama")
    ollama.add("Tiny-GGUF", "Q4_0", ggufs["q4"][0], host="hf.co", namespace="acme")
    ollama.add("mymodel", "latest", ggufs["q8"][0], namespace="someone")
    found = by_name(discover(ollama=ollama.root))
    assert found["hf.co/acme/Tiny-GGUF:Q4_0"].suggested == "tiny:q4_0"
    assert found["someone/mymodel:latest"].suggested == "mymodel:latest"
    assert found["hf.co/acme/Tiny-GGUF:Q4_0"].config == found["hf.co/acme/Tiny-GGUF:Q4_0"].config


def test_hostile_ollama_manifests_become_notes(ggufs: dict[str, list[Path]], tmp_path: Path) -> None:
    ollama = OllamaStore(tmp_path / "ollama")
    outside = tmp_path / "outside.gguf"
    outside.write_bytes(ggufs["q8"][0].read_bytes())
    ollama.write_manifest("badjson", "latest", b"{not json")
    ollama.write_manifest("deep", "latest", b"[" * 100_000 + b"]" * 100_000)
    ollama.write_manifest("huge", "latest", b" " * (2 << 20) + b"{}")
    escape = {"layers": [{"mediaType": MEDIA + "model", "digest": "sha256-../../outside.gguf", "size": 1}]}
    ollama.write_manifest("escape", "latest", json.dumps(escape).encode())
    link = ollama.root / "blobs" / f"sha256-{'ab' * 32}"
    link.symlink_to(outside)
    out = {"layers": [{"mediaType": MEDIA + "model", "digest": f"sha256:{'ab' * 32}", "size": 1}]}
    ollama.write_manifest("symlinked", "latest", json.dumps(out).encode())
    missing = {"layers": [{"mediaType": MEDIA + "model", "digest": f"sha256:{'cd' * 32}", "size": 1}]}
    ollama.write_manifest("missing", "latest", json.dumps(missing).encode())
    ollama.write_manifest("layers", "latest", json.dumps({"layers": "nope"}).encode())
    tensors = {"layers": [ollama.layer("tensor", b"x" * 10)]}
    ollama.write_manifest("tensors", "latest", json.dumps(tensors).encode())
    zipped = tmp_path / "x.bin"
    zipped.write_bytes(b"PK\3\4zip")
    ollama.add("notgguf", "latest", zipped)
    ollama.add("We!rd\nName", "T@G\x1b", ggufs["q8"][0])
    ollama.add("badparams", "latest", ggufs["q8"][0], params=["not", "an", "object"])  # type: ignore[arg-type]
    ollama.add("badmessages", "latest", ggufs["q8"][0], messages=[{"role": "tool", "content": "x"}])
    fifo_dir = ollama.manifest_path("fifo", "latest")
    fifo_dir.parent.mkdir(parents=True)
    os.mkfifo(fifo_dir)

    found = by_name(discover(ollama=ollama.root))
    notes = {name: f.note or "" for name, f in found.items()}
    assert "cannot be read" in notes["badjson:latest"]
    assert "cannot be read" in notes["deep:latest"]
    assert "larger than" in notes["huge:latest"]
    assert "not a sha256 digest" in notes["escape:latest"]
    assert "symlink out of the scanned folder" in notes["symlinked:latest"]
    assert "missing" in notes["missing:latest"]
    assert "no list of layers" in notes["layers:latest"]
    assert "tensor layers" in notes["tensors:latest"]
    assert "not a GGUF" in notes["notgguf:latest"]
    assert "not a regular file" in notes["fifo:latest"]
    assert "params layer skipped" in notes["badparams:latest"] and found["badparams:latest"].importable
    assert "messages layer skipped" in notes["badmessages:latest"] and found["badmessages:latest"].importable
    weird = next(f for name, f in found.items() if name.startswith("We!rd"))
    assert weird.name.isprintable() and weird.importable
    LocalRef(*weird.suggested.split(":"))  # valid by construction
    for name, model in found.items():
        assert model.importable == (name in {weird.name, "badparams:latest", "badmessages:latest"}), name
    suggestions = [f.suggested for f in found.values()]
    assert len(set(suggestions)) == len(suggestions)


def test_an_ollama_blobs_folder_linked_out_of_the_root_is_not_followed(
    ggufs: dict[str, list[Path]], tmp_path: Path
) -> None:
    ollama = OllamaStore(tmp_path / "ollama")
    ollama.add("tiny", "latest", ggufs["q8"][0])
    moved = tmp_path / "elsewhere"
    (ollama.root / "blobs").rename(moved)
    (ollama.root / "blobs").symlink_to(moved)
    (found,) = discover(ollama=ollama.root)
    assert not found.importable and "symlink out of the scanned folder" in (found.note or "")
    (ollama.root / "blobs").unlink()
    moved.rename(ollama.root / "blobs")
    alias = tmp_path / "alias"
    alias.symlink_to(ollama.root)  # a models folder that is itself a symlink is usual, and fine
    (found,) = discover(ollama=alias)
    assert found.importable and found.files[0].is_relative_to(ollama.root.resolve())


# -- the Hugging Face cache ---------------------------------------------------------------------


def test_the_hf_cache_resolves_snapshot_links_to_blobs_and_groups_split_parts(
    engine: Engine, ggufs: dict[str, list[Path]], tmp_path: Path
) -> None:
    cache = HFCache(tmp_path / "hub")
    files = {"Tiny-Q8_0.gguf": ggufs["q8"][0], "mmproj-Tiny-F16.gguf": ggufs["q4"][0]}
    files |= {f"F16/{p.name}": p for p in ggufs["split"]}
    snapshot = cache.add("acme/Tiny-GGUF", files)
    repo = cache.repo_dir("acme/Tiny-GGUF")
    (repo / "blobs" / ("ef" * 32 + ".incomplete")).write_bytes(b"GGUF partial")
    (snapshot / "Tiny-Q2_K.gguf").symlink_to("../../blobs/" + "ef" * 32 + ".incomplete")
    (tmp_path / "hub" / "datasets--acme--data").mkdir()

    found = by_name(discover(huggingface=cache.root))
    single = found["acme/Tiny-GGUF/Tiny-Q8_0.gguf"]
    assert single.suggested == "tiny:q8_0" and single.importable and single.config is None
    assert single.files[0].parent == (repo / "blobs").resolve() and not single.files[0].is_symlink()
    split = found["acme/Tiny-GGUF/F16/Tiny-F16-00001-of-00003.gguf"]
    assert split.importable and len(split.files) == 3 and split.suggested == "tiny:f16"
    assert split.size == sum(p.stat().st_size for p in ggufs["split"])
    projector = found["acme/Tiny-GGUF/mmproj-Tiny-F16.gguf"]
    assert not projector.importable and "projector" in (projector.note or "")
    assert "acme/Tiny-GGUF/Tiny-Q2_K.gguf" in found and not found["acme/Tiny-GGUF/Tiny-Q2_K.gguf"].importable
    assert len(found) == 4

    reference = import_found(engine, split)
    manifest = engine.resolve(reference)
    assert [f.path for f in manifest.files] == [f"tiny-f16-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
    for file, blob in zip(manifest.files, split.files, strict=True):
        assert os.stat(engine._store.blob_path(file.sha256)).st_ino == os.stat(blob).st_ino
    generates(engine, reference)
    generates(engine, import_found(engine, single))


def test_hf_symlinks_out_of_the_blobs_folder_are_not_followed(
    ggufs: dict[str, list[Path]], tmp_path: Path
) -> None:
    cache = HFCache(tmp_path / "hub")
    snapshot = cache.add("acme/Evil-GGUF", {"Ok-Q8_0.gguf": ggufs["q8"][0]})
    outside = tmp_path / "secret.gguf"
    outside.write_bytes(ggufs["q8"][0].read_bytes())
    (snapshot / "Evil-Q8_0.gguf").symlink_to(outside)
    (snapshot / "Loop-Q8_0.gguf").symlink_to(snapshot / "Loop-Q8_0.gguf")
    (snapshot / "sub").symlink_to(tmp_path)  # a folder symlink is never descended into
    found = by_name(discover(huggingface=cache.root))
    assert "symlink out of the cache's blobs" in (found["acme/Evil-GGUF/Evil-Q8_0.gguf"].note or "")
    assert not found["acme/Evil-GGUF/Loop-Q8_0.gguf"].importable
    assert found["acme/Evil-GGUF/Ok-Q8_0.gguf"].importable
    assert len(found) == 3


def test_the_current_revision_wins_over_an_older_snapshot(
    ggufs: dict[str, list[Path]], tmp_path: Path
) -> None:
    cache = HFCache(tmp_path / "hub")
    cache.add("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": ggufs["q4"][0]}, revision="1" * 40, main=False)
    cache.add("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": ggufs["q8"][0]}, revision="2" * 40)
    (found,) = discover(huggingface=cache.root)
    assert found.files[0].read_bytes() == ggufs["q8"][0].read_bytes()


# -- LM Studio ----------------------------------------------------------------------------------


def test_lm_studio_folders_with_a_missing_split_part_and_hostile_entries(
    engine: Engine, ggufs: dict[str, list[Path]], tmp_path: Path
) -> None:
    lms = LMStudio(tmp_path / "lms")
    lms.add("lmstudio-community", "Tiny-GGUF", {"Tiny-Q4_0.gguf": ggufs["q4"][0]})
    parts = {p.name: p for p in ggufs["split"]}
    del parts["Tiny-F16-00002-of-00003.gguf"]
    folder = lms.add("someone", "Split-GGUF", parts)
    (folder / "readme.gguf").write_text("not a model")
    os.mkfifo(folder / "pipe.gguf")
    secret = tmp_path / "secret.gguf"
    secret.write_bytes(ggufs["q8"][0].read_bytes())
    (folder / "out-Q8_0.gguf").symlink_to(secret)
    (folder / "in-Q4_0.gguf").symlink_to(lms.root / "lmstudio-community" / "Tiny-GGUF" / "Tiny-Q4_0.gguf")

    found = by_name(discover(lmstudio=lms.root))
    tiny = found["lmstudio-community/Tiny-GGUF/Tiny-Q4_0.gguf"]
    assert tiny.importable and tiny.suggested == "tiny:q4_0"
    split = found["someone/Split-GGUF/Tiny-F16-00001-of-00003.gguf"]
    assert not split.importable and split.note == "split part missing: part 2 of 3"
    assert found["someone/Split-GGUF/readme.gguf"].note == "not a GGUF file"
    assert found["someone/Split-GGUF/pipe.gguf"].note == "not a regular file"
    assert "symlink out of the scanned folder" in (found["someone/Split-GGUF/out-Q8_0.gguf"].note or "")
    assert found["someone/Split-GGUF/in-Q4_0.gguf"].importable  # a link that stays inside is fine
    generates(engine, import_found(engine, tiny))


# -- everything together --------------------------------------------------------------------------


def test_all_three_at_once_get_unique_suggestions(ggufs: dict[str, list[Path]], tmp_path: Path) -> None:
    ollama = OllamaStore(tmp_path / "ollama")
    ollama.add("tiny", "q8_0", ggufs["q8"][0])
    HFCache(tmp_path / "hub").add("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": ggufs["q8"][0]})
    LMStudio(tmp_path / "lms").add("pub", "Tiny-GGUF", {"Tiny-Q8_0.gguf": ggufs["q8"][0]})
    found = discover(ollama=ollama.root, huggingface=tmp_path / "hub", lmstudio=tmp_path / "lms")
    assert [f.tool for f in found] == ["ollama", "huggingface", "lmstudio"]
    assert [f.suggested for f in found] == ["tiny:q8_0", "tiny:q8_0-2", "tiny:q8_0-3"]
    assert discover() == [] and discover(ollama=tmp_path / "nowhere", lmstudio=tmp_path / "hub" / "x") == []


def test_suggestions_are_always_valid_local_names() -> None:
    for name, tag in [
        ("Qwen2.5 0.5B", "Q4_K_M"),
        ("..", ".."),
        ("hf.co", None),
        ("-_-", "_x"),
        ("ünïcödé", "ƒ"),
        ("a" * 300, "b" * 300),
        ("", ""),
    ]:
        suggested = suggest(name, tag)
        LocalRef(*suggested.split(":"))
    assert suggest("Qwen2.5 0.5B-Instruct-GGUF", "Q4_K_M") == "qwen2.5-0.5b-instruct:q4_k_m"


def test_default_locations_follow_each_tools_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OLLAMA_MODELS", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    paths = default_locations()
    assert paths == {
        "ollama": tmp_path / ".ollama" / "models",
        "huggingface": tmp_path / ".cache" / "huggingface" / "hub",
        "lmstudio": tmp_path / ".lmstudio" / "models",
    }
    (tmp_path / ".cache" / "lm-studio" / "models").mkdir(parents=True)
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "o"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    paths = default_locations()
    assert paths["ollama"] == tmp_path / "o" and paths["huggingface"] == tmp_path / "hf" / "hub"
    assert paths["lmstudio"] == tmp_path / ".cache" / "lm-studio" / "models"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert default_locations()["huggingface"] == tmp_path / "cache"


def test_discovery_reads_only_the_magic(ggufs: dict[str, list[Path]], tmp_path: Path) -> None:
    """A model file nobody may read past its first bytes is still listed: no hashing during discovery."""
    lms = LMStudio(tmp_path / "lms")
    folder = lms.add("pub", "Tiny-GGUF", {"Tiny-Q8_0.gguf": ggufs["q8"][0]})
    with open(folder / "Tiny-Q8_0.gguf", "r+b") as f:
        f.truncate(64)  # the header is cut short: only an import's checks would say so
    (found,) = discover(lmstudio=lms.root)
    assert found.importable and found.size == 64
