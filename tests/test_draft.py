"""Modelfile DRAFT: a draft model by path or by name, checked for the same vocabulary, kept by rm and GC.

Ollama's own forms (``DRAFT ./draft.gguf``, a folder, FROM and DRAFT the same path refused), llamadeck's
addition (a stored model's name), the manifest recording the draft's blobs, and every command that must
know of them: ``show --modelfile``, ``cp``, ``rm``, garbage collection and ``verify``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Engine, InvalidInput, LlamadeckError, Machine, ModelNotFound
from tests.support.chain_gguf import write_chain_gguf
from tests.support.tiny_gguf import tiny_vocab, write_tiny_gguf

GIB = 1 << 30


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine(machine=lambda: Machine(free_ram=16 * GIB, gpu_free_vram=None))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("draft-weights")
    tokens, scores, types = tiny_vocab()
    other = [*tokens[:300], "▁other", *tokens[301:]]  # one token differs: another tokenizer
    return {
        "target": write_tiny_gguf(d / "Target-Q8_0.gguf", quant="Q8_0", seed=1)[0],
        "draft": write_tiny_gguf(d / "Draft-Q4_0.gguf", quant="Q4_0", seed=2)[0],
        "f16": write_tiny_gguf(d / "Draft-F16.gguf", quant="F16", seed=3)[0],
        "split": write_tiny_gguf(d / "split" / "Draft-Q8_0.gguf", quant="Q8_0", split_tensors=4, seed=4)[0],
        "foreign": write_chain_gguf(d / "Foreign.gguf", {}, vocab=(other, scores, types)),
        "gpt2": write_tiny_gguf(d / "Gpt2-Q8_0.gguf", quant="Q8_0", tokenizer_model="gpt2", seed=5)[0],
    }


def modelfile(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Modelfile").write_text(text, encoding="utf-8")
    return folder


def create(engine: Engine, name: str, folder: Path, text: str, **kw: object) -> object:
    modelfile(folder, text)
    return engine.create(name, (folder / "Modelfile").read_bytes(), base_dir=folder, **kw)  # type: ignore[arg-type]


def test_draft_by_path_is_stored_with_the_model(
    engine: Engine, weights: dict[str, Path], tmp_path: Path
) -> None:
    made = engine.create(
        "fast",
        f"FROM {weights['target']}\nDRAFT ./Draft-Q4_0.gguf\n",
        base_dir=weights["draft"].parent,
    )
    draft = made.config.draft
    assert draft is not None and draft.quant == "Q4_0" and draft.architecture == "llama"
    assert draft.source == "Draft-Q4_0.gguf" and len(draft.files) == 1
    assert engine.has_blob("sha256:" + draft.files[0].sha256)
    assert engine.resolve("fast").config.draft == draft  # read back from the manifest as written
    assert made.load_id != made.id and made.load_id.endswith("draft-" + draft.files[0].sha256[:12])


def test_draft_by_name_of_a_stored_model(engine: Engine, weights: dict[str, Path], tmp_path: Path) -> None:
    small = engine.create("small", f"FROM {weights['draft']}\n")
    made = create(
        engine, "big", tmp_path, f"FROM {weights['target']}\nDRAFT small\nPARAMETER temperature 0\n"
    )
    draft = made.config.draft  # type: ignore[attr-defined]
    assert draft is not None and draft.source == "small:latest" and draft.files == small.files


def test_a_model_made_from_a_drafted_model_keeps_its_draft_unless_it_names_another(
    engine: Engine, weights: dict[str, Path], tmp_path: Path
) -> None:
    engine.create("small", f"FROM {weights['draft']}\n")
    engine.create("big", f"FROM {weights['target']}\nDRAFT small\n")
    kind = engine.create("kind", "FROM big\nSYSTEM Be kind.\n")
    assert kind.config.draft == engine.resolve("big").config.draft
    other = create(engine, "other", tmp_path, f"FROM big\nDRAFT {weights['f16']}\n")
    assert other.config.draft.quant == "F16"  # type: ignore[attr-defined]


def test_a_split_draft_from_its_folder(engine: Engine, weights: dict[str, Path]) -> None:
    made = engine.create("split-draft", f"FROM {weights['target']}\nDRAFT {weights['split'].parent}\n")
    draft = made.config.draft
    assert draft is not None and len(draft.files) == 6  # split_tensors=4: six parts
    assert [f.path for f in draft.files] == sorted(p.name for p in weights["split"].parent.glob("*.gguf"))
    assert engine.verify(["split-draft"])[0].problems == []


def test_draft_quantize_requantizes_an_f16_draft(engine: Engine, weights: dict[str, Path]) -> None:
    made = engine.create("q", f"FROM {weights['target']}\nDRAFT {weights['f16']}\n", draft_quantize="Q8_0")
    assert made.config.draft is not None and made.config.draft.quant == "Q8_0"
    with pytest.raises(InvalidInput, match="^draft_quantize needs a DRAFT model$"):
        engine.create("r", f"FROM {weights['target']}\n", draft_quantize="Q8_0")


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("foreign", "token 300 is '▁other' in it, 'M' in the model"),
        ("gpt2", "its tokenizer type is 'gpt2', the model's is 'llama'"),
    ],
)
def test_a_draft_with_another_vocabulary_is_refused_in_one_line(
    engine: Engine, weights: dict[str, Path], which: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        engine.create("mixed", f"FROM {weights['target']}\nDRAFT {weights[which]}\n")
    text = str(refused.value)
    assert "\n" not in text and message in text and "cannot draft for" in text, text
    assert "must use the same tokenizer" in text
    with pytest.raises(ModelNotFound):
        engine.resolve("mixed")  # nothing was recorded


def test_draft_the_same_path_as_from_is_refused_as_ollama_does(
    engine: Engine, weights: dict[str, Path]
) -> None:
    folder = weights["target"].parent
    with pytest.raises(InvalidInput, match="DRAFT must not reference the same local path as FROM"):
        engine.create("same", "FROM ./Target-Q8_0.gguf\nDRAFT Target-Q8_0.gguf\n", base_dir=folder)


@pytest.mark.parametrize(
    ("draft", "kind", "message"),
    [
        (
            "../../../../etc/shadow-not-here",
            InvalidInput,
            "DRAFT '../../../../etc/shadow-not-here' is neither",
        ),
        ("no-such-model", ModelNotFound, "DRAFT 'no-such-model' is no model here and no file"),
        ("/etc/passwd", LlamadeckError, "not a valid GGUF"),
        ("/dev/null", InvalidInput, "is not a regular file"),
        ('"\\x1b]0;pwned\\x07"', InvalidInput, "neither a file nor a model name"),
        ("a" * 5000, InvalidInput, "neither a file nor a model name"),
    ],
)
def test_hostile_drafts_are_one_line_errors(
    engine: Engine, weights: dict[str, Path], tmp_path: Path, draft: str, kind: type, message: str
) -> None:
    with pytest.raises(kind) as refused:
        create(engine, "hostile", tmp_path, f"FROM {weights['target']}\nDRAFT {draft}\n")
    text = str(refused.value)
    assert message in text and "\n" not in text and "\x1b" not in text and len(text) < 600, text


def test_a_fifo_as_draft_is_refused_without_blocking(
    engine: Engine, weights: dict[str, Path], tmp_path: Path
) -> None:
    os.mkfifo(tmp_path / "pipe.gguf")
    with pytest.raises(InvalidInput, match="is not a regular file"):
        create(engine, "fifo", tmp_path, f"FROM {weights['target']}\nDRAFT ./pipe.gguf\n")


def test_show_modelfile_names_the_draft_and_makes_the_same_model(
    engine: Engine, weights: dict[str, Path], tmp_path: Path
) -> None:
    made = engine.create("fast", f"FROM {weights['target']}\nDRAFT {weights['draft']}\n")
    text = engine.modelfile("fast")
    assert made.config.draft is not None
    assert f"DRAFT {engine.blob_path('sha256:' + made.config.draft.files[0].sha256)}\n" in text
    again = create(engine, "again", tmp_path, text)
    assert again.config.draft is not None  # type: ignore[attr-defined]
    shas = [f.sha256 for f in again.config.draft.files]  # type: ignore[attr-defined]
    assert shas == [f.sha256 for f in made.config.draft.files]


def test_cp_keeps_the_draft(engine: Engine, weights: dict[str, Path]) -> None:
    made = engine.create("fast", f"FROM {weights['target']}\nDRAFT {weights['draft']}\n")
    assert engine.copy("fast", "fast2").config.draft == made.config.draft


def test_rm_and_gc_keep_a_draft_another_model_uses(engine: Engine, weights: dict[str, Path]) -> None:
    small = engine.create("small", f"FROM {weights['draft']}\n")
    engine.create("big", f"FROM {weights['target']}\nDRAFT small\n")
    blob = "sha256:" + small.files[0].sha256
    assert engine.remove("small").freed == 0  # big's draft still names the blob
    engine.prune()
    assert engine.has_blob(blob) and engine.verify(["big"])[0].problems == []
    removal = engine.remove("big")
    assert removal.freed >= small.size  # the last model naming the draft's blob took it along
    assert not engine.has_blob(blob)


def test_verify_checks_the_drafts_files(engine: Engine, weights: dict[str, Path]) -> None:
    made = engine.create("fast", f"FROM {weights['target']}\nDRAFT {weights['draft']}\n")
    assert made.config.draft is not None
    path = engine.blob_path("sha256:" + made.config.draft.files[0].sha256)
    data = bytearray(path.read_bytes())
    data[200:216] = b"\xff" * 16
    path.unlink()  # the blob is a hard link to the fixture's file: damage a copy, never the fixture
    path.write_bytes(bytes(data))
    [report] = engine.verify(["fast"])
    assert report.problems and "Draft-Q4_0.gguf" in report.problems[0]


def test_the_sessions_tab_names_the_draft(engine: Engine, weights: dict[str, Path]) -> None:
    from engine import LoadedModel
    from tui.widgets.sessions_pane import session_cells

    made = engine.create("fast", f"FROM {weights['target']}\nDRAFT {weights['draft']}\n")
    row = LoadedModel("fast:latest", made.id, 1, 0, 0, 3, 2048, 4, 0, (), "idle", 0, 0.0, None, made)
    assert session_cells(row)[0] == "fast:latest (draft Draft-Q4_0.gguf)"
    assert session_cells(LoadedModel("plain:latest", "x", 1, 0, 0, 3, 2048, 4, 0, (), "idle", 0, 0.0, None))[
        0
    ] == ("plain:latest")


def test_the_models_tab_details_name_the_draft(engine: Engine, weights: dict[str, Path]) -> None:
    from tui.screens.details import details_text

    engine.create("fast", f"FROM {weights['target']}\nDRAFT {weights['draft']}\n")
    text = details_text(engine.show("fast")).plain
    [line] = [line for line in text.splitlines() if line.strip().startswith("draft")]
    assert line.split()[1:3] == ["Draft-Q4_0.gguf", "(Q4_0,"]
