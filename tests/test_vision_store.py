"""A vision model is weights plus a projector: pull, create, import, show, verify, cp, rm and GC know it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Engine
from engine.errors import InvalidInput
from engine.ingest.discover import discover
from engine.machine.memory import Machine
from engine.store.model_store import Store
from tests.support.fake_hub import FakeHub
from tests.support.other_stores import LMStudio, OllamaStore
from tests.support.tiny_gguf import N_EMBD, write_tiny_gguf
from tests.support.tiny_mmproj import write_tiny_mmproj
from tui.screens.details import details_text

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("vision")
    return {
        "model": write_tiny_gguf(d / "Tiny-Q8_0.gguf")[0],
        "f16": write_tiny_mmproj(d / "mmproj-Tiny-F16.gguf"),
        "f32": write_tiny_mmproj(d / "mmproj-Tiny-F32.gguf", seed=1),
        "bf16": write_tiny_mmproj(d / "mmproj-Tiny-BF16.gguf", seed=2),
        "wide": write_tiny_mmproj(d / "mmproj-Wide-F16.gguf", n_embd_text=2 * N_EMBD),
    }


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine(machine=lambda: CPU_BOX)
    yield engine
    engine.close()


@pytest.fixture
def hub(files: dict[str, Path]) -> Iterator[FakeHub]:
    with FakeHub() as fake, fake.patch_endpoint():
        fake.add_repo(
            "acme/Seeing-GGUF",
            {
                "Tiny-Q8_0.gguf": files["model"],
                "mmproj-Tiny-F32.gguf": files["f32"],
                "mmproj-Tiny-BF16.gguf": files["bf16"],
                "mmproj-Tiny-F16.gguf": files["f16"],
            },
        )
        fake.add_repo("acme/Blind-GGUF", {"Tiny-Q8_0.gguf": files["model"]})
        fake.add_repo("acme/Fake-GGUF", {"Tiny-Q8_0.gguf": files["model"], "mmproj-F16.gguf": files["model"]})
        yield fake


def blobs() -> set[str]:
    return {p.name.removeprefix("sha256-") for p in Store().blobs.iterdir()}


def test_pull_brings_the_f16_projector_and_the_model_can_see(hub: FakeHub, engine: Engine) -> None:
    manifest = engine.pull("hf.co/acme/Seeing-GGUF:Q8_0")
    projector = manifest.config.projector
    assert projector is not None and projector.path == "mmproj-Tiny-F16.gguf"  # F16 over BF16 and F32
    assert [f.path for f in manifest.files] == ["Tiny-Q8_0.gguf"] and projector.sha256 in blobs()
    shown = engine.show("hf.co/acme/Seeing-GGUF:Q8_0")
    assert "vision" in shown.capabilities and shown.projector_info["clip.projector_type"] == "mlp"
    assert [r.problems for r in engine.verify()] == [[]]
    assert "projector mmproj-Tiny-F16.gguf (" in " ".join(details_text(shown).plain.split())  # Models tab
    assert "FROM " + str(Store().blob_path(projector.sha256)) in engine.modelfile(manifest.reference)


def test_a_repo_without_projector_pulls_a_blind_model(hub: FakeHub, engine: Engine) -> None:
    manifest = engine.pull("hf.co/acme/Blind-GGUF:Q8_0")
    assert manifest.config.projector is None
    assert "vision" not in engine.show(manifest.reference).capabilities


def test_an_mmproj_that_is_no_projector_fails_the_pull(hub: FakeHub, engine: Engine) -> None:
    with pytest.raises(Exception, match="not a vision projector"):
        engine.pull("hf.co/acme/Fake-GGUF:Q8_0")
    assert engine.list_models() == []


def test_verify_finds_a_damaged_projector(hub: FakeHub, engine: Engine) -> None:
    manifest = engine.pull("hf.co/acme/Seeing-GGUF:Q8_0")
    assert manifest.config.projector is not None
    blob = Store().blob_path(manifest.config.projector.sha256)
    blob.chmod(0o644)
    with open(blob, "r+b") as f:
        f.seek(100)
        f.write(b"XXXX")
    (report,) = engine.verify()
    assert report.problems and "mmproj-Tiny-F16.gguf: sha256 mismatch" in report.problems[0]


def test_cp_shares_the_projector_and_rm_frees_it_with_the_last_name(hub: FakeHub, engine: Engine) -> None:
    manifest = engine.pull("hf.co/acme/Seeing-GGUF:Q8_0")
    assert manifest.config.projector is not None
    digest = manifest.config.projector.sha256
    copied = engine.copy(manifest.reference, "eyes:v1")
    assert copied.config.projector == manifest.config.projector and copied.load_id == manifest.load_id
    engine.remove(manifest.reference)
    assert digest in blobs()
    engine.prune()
    assert digest in blobs()  # eyes:v1 still names it
    engine.remove("eyes:v1")
    assert digest not in blobs()


def test_create_takes_a_projector_as_a_second_from_in_either_order(
    engine: Engine, files: dict[str, Path], tmp_path: Path
) -> None:
    for text in (
        f"FROM {files['model']}\nFROM {files['f16']}\n",
        f"FROM {files['f16']}\nFROM {files['model']}\n",
    ):
        made = engine.create("eyes", text)
        assert made.config.projector is not None and "vision" in engine.show("eyes").capabilities
    child = engine.create("child", "FROM eyes\nSYSTEM You see.\n")
    assert child.config.projector == made.config.projector  # inherited from the base
    again = engine.create("again", engine.modelfile("eyes"))  # show --modelfile makes it again
    assert again.config.projector is not None and made.config.projector is not None
    assert again.config.projector.sha256 == made.config.projector.sha256


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ("model", "not a vision projector"),
        ("wide", "256-wide embeddings; the model's are 128"),
        (None, "mmproj"),
    ],
)
def test_create_refuses_a_second_from_that_does_not_fit(
    engine: Engine, files: dict[str, Path], tmp_path: Path, second: str | None, message: str
) -> None:
    other = files[second] if second else tmp_path / "missing.gguf"
    with pytest.raises(InvalidInput, match=message):
        engine.create("eyes", f"FROM {files['model']}\nFROM {other}\n")
    assert engine.list_models() == []


def test_import_brings_ollamas_projector_layer(
    engine: Engine, files: dict[str, Path], tmp_path: Path
) -> None:
    ollama = OllamaStore(tmp_path / "ollama")
    ollama.add(
        "llava", "tiny", files["model"], extra_layers=[ollama.layer("projector", files["f16"].read_bytes())]
    )
    (found,) = discover(ollama=ollama.root)
    made = engine.import_found(found)
    assert made.config.projector is not None and "vision" in engine.show(made.reference).capabilities


def test_import_brings_an_lm_studio_mmproj_beside_the_model(
    engine: Engine, files: dict[str, Path], tmp_path: Path
) -> None:
    studio = LMStudio(tmp_path / "lmstudio")
    studio.add("acme", "Tiny-GGUF", {"Tiny-Q8_0.gguf": files["model"], "mmproj-Tiny-F32.gguf": files["f32"]})
    studio.add("acme", "Tiny-GGUF", {"mmproj-Tiny-F16.gguf": files["f16"]})
    found = {f.name: f for f in discover(lmstudio=studio.root)}
    model = found["acme/Tiny-GGUF/Tiny-Q8_0.gguf"]
    assert model.projector is not None and model.projector.name == "mmproj-Tiny-F16.gguf"
    made = engine.import_found(model)
    assert made.config.projector is not None and made.config.projector.size == files["f16"].stat().st_size
