"""Importing GGUF files from local paths: hard links, the copy fallback, split models, hostile sources."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest

from engine import Cancelled, CancelToken, Done, Engine, IntegrityError, InvalidInput, Machine, ModelConfig
from engine.events import Event, Progress, Status
from engine.ingest.local import import_file, import_gguf
from engine.store.model_store import Store
from engine.store.refs import LocalRef
from tests.support.tiny_gguf import CHAT_TEMPLATE, write_tiny_gguf

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    d = tmp_path_factory.mktemp("local-originals")
    return {
        "single": write_tiny_gguf(d / "Tiny-Q8_0.gguf"),
        "split": write_tiny_gguf(d / "split" / "Tiny-Q4_0.gguf", quant="Q4_0", split_tensors=8),
    }


@pytest.fixture
def models(tmp_path: Path, originals: dict[str, list[Path]]) -> dict[str, list[Path]]:
    """Fresh copies per test (a hard link to them must not leak into another test)."""
    out: dict[str, list[Path]] = {}
    for key, files in originals.items():
        folder = tmp_path / "models" / key
        folder.mkdir(parents=True)
        out[key] = [Path(shutil.copy(f, folder / f.name)) for f in files]
    return out


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine(machine=lambda: CPU_BOX)
    yield engine
    engine.close()


@pytest.fixture
def store(engine: Engine) -> Store:
    return engine._store  # tests only: the facade's import lands in a later change


def generates(engine: Engine, reference: str, *, raw: bool | None = None) -> None:
    events = list(engine.generate(reference, "hello world", max_tokens=4, temperature=0, raw=raw))
    done = events[-1]
    assert isinstance(done, Done) and done.reason in ("stop", "length") and done.error is None


def left_in(store: Store) -> list[str]:
    """Everything in the store's blobs, partial and manifests folders."""
    found = []
    for folder in (store.blobs, store.partial, store.manifests_dir):
        if folder.is_dir():
            found += [str(p.relative_to(store.home)) for p in folder.rglob("*") if not p.is_dir()]
    return found


def test_a_file_is_hard_linked_and_its_manifest_is_built_from_the_header(
    engine: Engine, store: Store, models: dict[str, list[Path]]
) -> None:
    source = models["single"][0]
    events: list[Event] = []
    manifest = import_gguf(store, source, ref=LocalRef("tiny", "q8"), on_event=events.append)
    blob = store.blob_path(manifest.files[0].sha256)
    assert os.stat(blob).st_ino == os.stat(source).st_ino and os.stat(source).st_nlink == 2
    assert not os.path.islink(blob)
    assert (manifest.name, manifest.tag, manifest.quant, manifest.architecture) == (
        "tiny",
        "q8",
        "Q8_0",
        "llama",
    )
    assert manifest.files[0].path == "Tiny-Q8_0.gguf" and manifest.files[0].size == source.stat().st_size
    assert manifest.source == str(source) and manifest.license == "mit" and manifest.size_label == "0.1M"
    assert manifest.template == CHAT_TEMPLATE and manifest.template_source == "gguf"
    assert manifest.context_length == 2048 and manifest.shape is not None and manifest.shape.n_layers == 2
    assert any(isinstance(e, Progress) and e.action == "importing" for e in events)
    assert Status("success: tiny:q8") in events
    assert engine.resolve("tiny:q8") == manifest
    assert all(r.ok for r in engine.verify(["tiny:q8"]))
    generates(engine, "tiny:q8")


def test_the_copy_fallback_never_shares_the_inode(
    engine: Engine, store: Store, models: dict[str, list[Path]]
) -> None:
    source = models["single"][0]
    events: list[Event] = []
    manifest = import_gguf(store, source, ref=LocalRef("tiny"), link=False, on_event=events.append)
    blob = store.blob_path(manifest.files[0].sha256)
    assert os.stat(blob).st_ino != os.stat(source).st_ino and os.stat(source).st_nlink == 1
    assert blob.read_bytes() == source.read_bytes()
    assert any(isinstance(e, Progress) and e.action == "copying" for e in events)
    assert left_in(store) == sorted(left_in(store)) and not list(store.partial.iterdir())
    generates(engine, "tiny:latest")


def test_a_file_on_another_file_system_is_copied(store: Store, models: dict[str, list[Path]]) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(store.home.parent).st_dev:
        pytest.skip("no second file system (/dev/shm) here")
    with tempfile.TemporaryDirectory(dir=shm) as other:
        source = Path(shutil.copy(models["single"][0], Path(other) / "Tiny-Q8_0.gguf"))
        events: list[Event] = []
        manifest = import_gguf(store, source, ref=LocalRef("tiny"), on_event=events.append)
        blob = store.blob_path(manifest.files[0].sha256)
        assert os.stat(blob).st_dev != os.stat(source).st_dev and os.stat(source).st_nlink == 1
        assert Status(f"{source}: copied into the store") in events


def test_importing_the_same_file_again_reuses_the_blob(store: Store, models: dict[str, list[Path]]) -> None:
    source = models["single"][0]
    first = import_gguf(store, source, ref=LocalRef("a"))
    events: list[Event] = []
    second = import_gguf(store, source, ref=LocalRef("b"), on_event=events.append)
    assert first.files == second.files and os.stat(source).st_nlink == 2
    assert Status(f"{source}: already in the store") in events


@pytest.mark.parametrize("how", ["first part", "folder", "parts"])
def test_a_split_model_is_imported_whole_and_runs(
    engine: Engine, store: Store, models: dict[str, list[Path]], how: str
) -> None:
    parts = models["split"]
    assert len(parts) == 3
    source: Path | list[Path] = {"first part": parts[0], "folder": parts[0].parent, "parts": parts}[how]
    manifest = import_gguf(store, source, ref=LocalRef("tiny-split"))
    assert [f.path for f in manifest.files] == [p.name for p in parts]
    assert [f.size for f in manifest.files] == [p.stat().st_size for p in parts]
    assert manifest.quant == "Q4_0" and manifest.shape is not None and manifest.shape.n_layers == 2
    for file, part in zip(manifest.files, parts, strict=True):
        assert os.stat(store.blob_path(file.sha256)).st_ino == os.stat(part).st_ino
    assert all(r.ok for r in engine.verify(["tiny-split"]))
    generates(engine, "tiny-split")


def test_split_parts_under_other_names_are_named_for_llama_cpp(
    engine: Engine, store: Store, models: dict[str, list[Path]], tmp_path: Path
) -> None:
    renamed = []
    for i, part in enumerate(models["split"]):
        renamed.append(
            part.rename(tmp_path / f"{'0123456789abcdef' * 4}{i}")
        )  # as blobs of a cache are named
    manifest = import_gguf(store, renamed, ref=LocalRef("blobby", "q4"))
    assert [f.path for f in manifest.files] == [f"blobby-q4-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
    generates(engine, "blobby:q4")


def test_split_parts_out_of_order_are_refused(store: Store, models: dict[str, list[Path]]) -> None:
    parts = models["split"]
    with pytest.raises(IntegrityError, match="is not part 1 of 3"):
        import_gguf(store, [parts[1], parts[0], parts[2]], ref=LocalRef("x"))
    assert left_in(store) == []


def test_a_missing_split_part_is_named(store: Store, models: dict[str, list[Path]]) -> None:
    parts = models["split"]
    parts[1].unlink()
    with pytest.raises(InvalidInput, match="split part missing: part 2 of 3"):
        import_gguf(store, parts[0], ref=LocalRef("x"))
    with pytest.raises(InvalidInput, match="split part missing: part 2 of 3"):
        import_gguf(store, parts[0].parent, ref=LocalRef("x"))
    assert left_in(store) == []


def test_a_later_part_is_refused_with_the_first_parts_name(
    store: Store, models: dict[str, list[Path]]
) -> None:
    with pytest.raises(
        InvalidInput, match=r"part 2 of 3: give the first part \(Tiny-Q4_0-00001-of-00003.gguf\)"
    ):
        import_gguf(store, models["split"][1], ref=LocalRef("x"))
    lone = models["split"][0].parent / "renamed.gguf"
    shutil.copy(models["split"][0], lone)
    with pytest.raises(InvalidInput, match="is part 1 of 3 of a split model"):
        import_gguf(store, lone, ref=LocalRef("x"))


def test_a_folder_must_hold_exactly_one_model(
    store: Store, models: dict[str, list[Path]], tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInput, match="holds no GGUF file"):
        import_gguf(store, empty, ref=LocalRef("x"))
    two = tmp_path / "two"
    two.mkdir()
    shutil.copy(models["single"][0], two / "a.gguf")
    shutil.copy(models["single"][0], two / "b.gguf")
    with pytest.raises(InvalidInput, match=r"holds 2 model files \(a.gguf, b.gguf\)"):
        import_gguf(store, two, ref=LocalRef("x"))
    (two / "b.gguf").rename(two / "mmproj-b.gguf")  # a projector beside the model is set aside
    assert import_gguf(store, two, ref=LocalRef("x")).files[0].path == "a.gguf"


def test_a_config_from_ollama_overrides_the_ggufs(
    engine: Engine, store: Store, models: dict[str, list[Path]]
) -> None:
    config = ModelConfig(
        template="{{ .Prompt }}", system="Be terse.", parameters={"temperature": "0.5", "stop": "x"}
    )
    manifest = import_gguf(
        store,
        models["single"][0],
        ref=LocalRef("olla"),
        config=config,
        origin="ollama olla:latest",
        license="L",
    )
    assert manifest.template == "{{ .Prompt }}" and manifest.template_source == "modelfile"
    assert manifest.config.system == "Be terse." and manifest.config.parameters == {
        "temperature": 0.5,
        "stop": ["x"],
    }
    assert manifest.source == "ollama olla:latest" and manifest.license == "L"
    generates(engine, "olla", raw=True)  # Go templates render once Modelfile support lands


def test_a_bad_parameter_in_the_config_is_refused_before_anything_is_written(
    store: Store, models: dict[str, list[Path]]
) -> None:
    with pytest.raises(InvalidInput, match="temperatur"):
        import_gguf(
            store, models["single"][0], ref=LocalRef("x"), config=ModelConfig(parameters={"temperatur": 1})
        )
    assert left_in(store) == []


def _zero_layer_gguf(path: Path) -> Path:
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(0)
    writer.add_embedding_length(8)
    writer.add_context_length(16)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_what_is_not_a_sound_gguf_leaves_nothing_behind(
    store: Store, models: dict[str, list[Path]], tmp_path: Path
) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text("hello, not a model\n" * 100)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(models["single"][0].read_bytes()[:200_000])
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    cases = {
        text: "notes.gguf",
        truncated: "truncated.gguf is truncated",
        empty: r"empty \(0 bytes\)",
        _zero_layer_gguf(tmp_path / "zero.gguf"): "no layers",
    }
    for path, message in cases.items():
        with pytest.raises(IntegrityError, match=message):
            import_gguf(store, path, ref=LocalRef("bad"))
    assert left_in(store) == []


@pytest.mark.parametrize("kind", ["fifo", "device", "symlink loop", "dangling", "missing", "directory loop"])
def test_hostile_sources_are_one_line_errors(store: Store, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "source.gguf"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path = Path("/dev/null")
    elif kind == "symlink loop":
        path.symlink_to(path)
    elif kind == "dangling":
        path.symlink_to(tmp_path / "nowhere")
    elif kind == "directory loop":
        path.mkdir()
        (path / "loop").symlink_to(path)
        path = path / "loop" / "loop" / "loop"
    with pytest.raises(InvalidInput) as caught:
        import_gguf(store, path, ref=LocalRef("bad"))
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400
    expected = {
        "fifo": "FIFO",
        "device": "device",
        "symlink loop": "symlink loop",
        "dangling": "dangling",
        "missing": "does not exist",
        "directory loop": "holds no GGUF",
    }[kind]
    assert expected in message
    assert left_in(store) == []


def test_a_path_with_odd_characters_is_imported_and_shown_escaped(
    engine: Engine, store: Store, models: dict[str, list[Path]], tmp_path: Path
) -> None:
    odd = tmp_path / "we\x1bird\nname \u202e €.gguf"
    shutil.copy(models["single"][0], odd)
    manifest = import_gguf(store, odd, ref=LocalRef("odd"))
    assert manifest.source.isprintable() and "\\x1b" in manifest.source and "\\n" in manifest.source
    assert manifest.files[0].path.isprintable() and manifest.files[0].path.endswith(".gguf")
    generates(engine, "odd")


def test_a_file_that_changes_while_read_is_refused(store: Store, models: dict[str, list[Path]]) -> None:
    source = models["single"][0]

    def grow(event: Event) -> None:
        if isinstance(event, Progress) and event.action == "importing":
            with open(source, "ab") as f:
                f.write(b"\0" * 64)

    with pytest.raises(IntegrityError, match="changed while it was read"):
        import_gguf(store, source, ref=LocalRef("moving"), on_event=grow)
    assert left_in(store) == []


def test_cancel_leaves_nothing_behind(store: Store, models: dict[str, list[Path]]) -> None:
    token = CancelToken()

    def cancel(event: Event) -> None:
        if isinstance(event, Progress):
            token.cancel()

    for link in (True, False):
        with pytest.raises(Cancelled):
            import_gguf(
                store, models["split"][0], ref=LocalRef("c"), link=link, on_event=cancel, cancel=token
            )
    assert left_in(store) == []


def test_corrupting_the_hard_linked_original_is_caught_by_verify_and_a_reimport_repairs_it(
    engine: Engine, store: Store, models: dict[str, list[Path]], originals: dict[str, list[Path]]
) -> None:
    source = models["single"][0]
    first = import_gguf(store, source, ref=LocalRef("linked"))
    with open(source, "r+b") as f:  # edited in place: the blob is the same inode
        f.seek(source.stat().st_size - 10)
        f.write(b"corrupted!")
    (report,) = engine.verify(["linked"])
    assert not report.ok and "sha256 mismatch" in report.problems[0]
    repaired = source.with_name("restored.gguf")
    shutil.copy(originals["single"][0], repaired)
    os.replace(repaired, source)  # the user puts the good file back (a new inode)
    events: list[Event] = []
    again = import_gguf(store, source, ref=LocalRef("linked"), on_event=events.append)
    assert again.files == first.files
    assert any(isinstance(e, Status) and "damaged; replacing it" in e.message for e in events)
    assert os.stat(store.blob_path(again.files[0].sha256)).st_ino == os.stat(source).st_ino
    (report,) = engine.verify(["linked"])
    assert report.ok


def test_two_imports_of_one_file_at_once_share_one_blob(store: Store, models: dict[str, list[Path]]) -> None:
    source = models["split"][0]
    results: list[object] = []

    def run(name: str) -> None:
        try:
            results.append(import_gguf(store, source, ref=LocalRef(name)))
        except Exception as error:  # reported below
            results.append(error)

    threads = [threading.Thread(target=run, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(not isinstance(r, Exception) for r in results), results
    assert len({r.files for r in results}) == 1  # type: ignore[attr-defined]
    assert len(list(store.blobs.iterdir())) == 3 and not list(store.partial.iterdir())


def test_garbage_collection_during_an_import_never_takes_its_blob(
    store: Store, models: dict[str, list[Path]]
) -> None:
    collected: list[tuple[str, ...]] = []

    def collect(event: Event) -> None:
        if isinstance(event, Status) and "into the store" in event.message:  # blob stored, no manifest yet
            with store.store_lock():
                store.prune()
                collected.append(store.collect_garbage().removed)

    manifest = import_gguf(store, models["single"][0], ref=LocalRef("gc"), on_event=collect)
    assert collected == [()]
    assert store.blob_path(manifest.files[0].sha256).is_file()


def test_import_file_stores_bytes_for_an_adapter(
    store: Store, models: dict[str, list[Path]], tmp_path: Path
) -> None:
    file = import_file(store, models["single"][0])
    assert file.path == "Tiny-Q8_0.gguf" and store.blob_path(file.sha256).is_file()
    text = tmp_path / "x.gguf"
    text.write_text("nope")
    with pytest.raises(IntegrityError, match="not a GGUF"):
        import_file(store, text)


def test_only_local_names_are_accepted(store: Store, models: dict[str, list[Path]]) -> None:
    from engine.store.refs import HubRef

    with pytest.raises(InvalidInput, match="local name"):
        import_gguf(store, models["single"][0], ref=HubRef("acme/repo", "Q8_0"))  # type: ignore[arg-type]


def test_a_failure_after_some_parts_were_stored_takes_them_back(
    store: Store, models: dict[str, list[Path]]
) -> None:
    parts = models["split"]

    def edit_second(event: Event) -> None:
        if isinstance(event, Progress) and event.action == "copying" and event.file == str(parts[1]):
            with open(parts[1], "ab") as f:
                f.write(b"\0")

    with pytest.raises(IntegrityError, match="changed while it was copied"):
        import_gguf(store, parts[0], ref=LocalRef("half"), link=False, on_event=edit_second)
    assert left_in(store) == []
