"""Converting Hugging Face safetensors models to GGUF, proven against ``transformers``' own logits.

Each architecture's tiny seeded model (``tests/support/hf_tiny.py``) is
converted, loaded by the engine's llama.cpp load path and run on fixed token
ids; the logits must be the ones ``transformers`` computed for the same
weights (``tests/data/convert/reference.json``, made once by
``tests/support/hf_reference.py``), and the tokenizer must cut the test
sentence as the Hugging Face tokenizer did.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import numpy as np
import pytest

from engine.cancel import CancelToken
from engine.convert.writer import convert_folder
from engine.errors import Cancelled, IntegrityError, InvalidInput
from engine.events import Event, Progress
from engine.runtime.llama.context import Batch, Context
from engine.runtime.llama.model import Model
from engine.store.gguf_io import read_header
from tests.support.hf_tiny import DATA, EVAL_IDS, MODELS, PROMPT, VOCAB, write_safetensors, write_tiny_hf

REFERENCE = json.loads((DATA / "reference.json").read_text())


def _logits(path: Path, n_ctx: int = 64) -> tuple[np.ndarray, list[int]]:
    model = Model.load(path, n_gpu_layers=0)
    ctx = Context(model, n_ctx=n_ctx, n_threads=2, flash_attn="off")
    batch = Batch(64)
    try:
        for pos, token in enumerate(EVAL_IDS):
            batch.add(token, pos, 0, True)
        ctx.decode(batch)
        rows = [np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx.ptr, i), shape=(VOCAB,)).copy()
                for i in range(len(EVAL_IDS))]  # fmt: skip
        return np.array(rows), model.tokenize(PROMPT, add_special=False, parse_special=False)
    finally:
        batch.free()
        ctx.free()
        model.free()


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    root = tmp_path_factory.mktemp("hf")
    out = {}
    for arch in MODELS:
        folder = write_tiny_hf(root / arch, arch)
        out[arch] = convert_folder(folder, root / f"{arch}.gguf").path
    yield out


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_converted_model_gives_the_logits_transformers_gives(converted: dict[str, Path], arch: str) -> None:
    expected = np.array(REFERENCE["models"][arch]["logits"], dtype=np.float32)
    got, prompt_ids = _logits(converted[arch])
    scale = float(np.abs(expected).max())
    worst = float(np.abs(got - expected).max())
    assert worst <= 0.02 * scale, f"{arch}: logits differ by {worst:.4f} (largest logit {scale:.2f})"
    picked = expected[np.arange(len(EVAL_IDS)), got.argmax(-1)]  # llama.cpp's best is transformers' best
    assert (picked >= expected.max(-1) - 0.02 * scale).all()  # or a near-tie with it
    assert prompt_ids == REFERENCE["models"][arch]["prompt_ids"]


def test_phi3_longrope_past_the_original_context_uses_the_long_factors(converted: dict[str, Path]) -> None:
    # llama.cpp picks the long factors for a context past the original 512; transformers for positions past
    # it (the reference ran the same tokens at positions 600..611: rope is relative, so the logits compare)
    expected = np.array(REFERENCE["models"]["phi3-longrope"]["long_logits"], dtype=np.float32)
    short = np.array(REFERENCE["models"]["phi3-longrope"]["logits"], dtype=np.float32)
    got, _ = _logits(converted["phi3-longrope"], n_ctx=1024)
    scale = float(np.abs(expected).max())
    assert float(np.abs(got - expected).max()) <= 0.02 * scale
    assert float(np.abs(short - expected).max()) > 0.1 * scale  # the two factor sets differ: a real check


def test_metadata_is_what_llama_cpp_converter_writes(converted: dict[str, Path]) -> None:
    from gguf import GGUFReader

    llama = GGUFReader(converted["llama"])
    fields = {name: field for name, field in llama.fields.items()}
    assert "llama.rope.dimension_count" in fields and "tokenizer.ggml.merges" in fields
    assert bytes(fields["tokenizer.ggml.pre"].parts[-1]).decode() == "llama-bpe"
    names = {t.name: t for t in llama.tensors}
    assert names["rope_freqs.weight"].tensor_type.name == "F32"  # Llama 3's rope scaling
    assert names["blk.0.attn_q.weight"].tensor_type.name == "BF16"  # the source's 16-bit type is kept
    assert names["blk.0.attn_norm.weight"].tensor_type.name == "F32"
    qwen2 = GGUFReader(converted["qwen2"])
    assert bytes(qwen2.fields["tokenizer.ggml.pre"].parts[-1]).decode() == "qwen2"
    assert "output.weight" not in {t.name for t in qwen2.tensors}  # tied: llama.cpp reads token_embd
    gemma1 = GGUFReader(converted["gemma"]).fields
    assert int(gemma1["tokenizer.ggml.eot_token_id"].parts[-1][0]) == 107  # <end_of_turn>, as in llama.cpp
    assert bool(gemma1["tokenizer.ggml.add_space_prefix"].parts[-1][0]) is False
    gemma = read_header(converted["gemma3"], label="gemma3")
    assert gemma.architecture == "gemma3" and gemma.chat_template and "<|start|>" in gemma.chat_template


def test_progress_by_bytes_and_tensors_and_cancel_leaves_nothing(tmp_path: Path) -> None:
    folder = write_tiny_hf(tmp_path / "m", "qwen3")
    seen: list[Event] = []
    convert_folder(folder, tmp_path / "a.gguf", on_event=seen.append)
    progress = [e for e in seen if isinstance(e, Progress)]
    assert {e.unit for e in progress} == {"bytes", "tensors"}
    last = [e for e in progress if e.unit == "tensors"][-1]
    assert last.completed == last.total > 10
    token = CancelToken()

    def cancel_at_first_tensor(event: Event) -> None:
        if isinstance(event, Progress) and event.unit == "tensors":
            token.cancel("stop")

    with pytest.raises(Cancelled):
        convert_folder(folder, tmp_path / "b.gguf", on_event=cancel_at_first_tensor, cancel=token)
    assert not (tmp_path / "b.gguf").exists()


def test_unknown_architecture_is_one_line_naming_the_supported_ones(tmp_path: Path) -> None:
    folder = write_tiny_hf(tmp_path / "m", "llama")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["MambaForCausalLM"]}))
    with pytest.raises(
        InvalidInput, match=r"cannot convert MambaForCausalLM models; .*LlamaForCausalLM"
    ) as e:
        convert_folder(folder, tmp_path / "x.gguf")
    assert "\n" not in str(e.value)


def test_pickled_weights_are_refused_unread(tmp_path: Path) -> None:
    folder = write_tiny_hf(tmp_path / "m", "llama")
    for shard in folder.glob("*.safetensors"):
        shard.unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not read")
    with pytest.raises(InvalidInput, match="pickled PyTorch weights"):
        convert_folder(folder, tmp_path / "x.gguf")


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (struct.pack("<Q", 2**40), "at most"),
        (struct.pack("<Q", 500) + b"{}", "the file is"),
        (struct.pack("<Q", 4) + b"[1] ", "not a JSON object"),
        (struct.pack("<Q", 2) + b"\xff\xfe", "not valid JSON"),
    ],
)
def test_hostile_safetensors_header_is_refused(tmp_path: Path, header: bytes, match: str) -> None:
    folder = write_tiny_hf(tmp_path / "m", "llama")
    shard = sorted(folder.glob("*.safetensors"))[0]
    shard.write_bytes(header)
    with pytest.raises(IntegrityError, match=match):
        convert_folder(folder, tmp_path / "x.gguf")


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}, "not what"),
        ({"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}, "outside the file"),
        ({"dtype": "Q4", "shape": [4], "data_offsets": [0, 16]}, "unknown dtype"),
        ({"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}, "malformed shape"),
    ],
)
def test_tensor_outside_or_unlike_its_bytes_is_refused(tmp_path: Path, entry: dict, match: str) -> None:
    folder = write_tiny_hf(tmp_path / "m", "llama")
    shard = sorted(folder.glob("*.safetensors"))[0]
    raw = json.dumps({"x": entry}).encode()
    shard.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(16))
    with pytest.raises(IntegrityError, match=match):
        convert_folder(folder, tmp_path / "x.gguf")


def test_overlapping_tensors_are_refused(tmp_path: Path) -> None:
    folder = write_tiny_hf(tmp_path / "m", "llama")
    shard = sorted(folder.glob("*.safetensors"))[0]
    entries = {n: {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]} for n in ("a", "b")}
    raw = json.dumps(entries).encode()
    shard.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(16))
    with pytest.raises(IntegrityError, match="overlap"):
        convert_folder(folder, tmp_path / "x.gguf")


def test_safetensors_writer_round_trips(tmp_path: Path) -> None:
    from engine.convert.safetensors import read_header as read_st

    write_safetensors(
        tmp_path / "t.safetensors", {"w": (np.arange(6, dtype=np.float32).reshape(2, 3), "F32")}
    )
    (entry,) = read_st(tmp_path / "t.safetensors")
    assert (entry.name, entry.dtype, entry.shape, entry.nbytes) == ("w", "F32", (2, 3), 24)


@pytest.mark.parametrize("layout", ["language_model.model.", "model.language_model."])
def test_mistral3_checkpoint_converts_its_language_model(tmp_path: Path, layout: str) -> None:
    """Mistral Small 3.x ships as Mistral3ForConditionalGeneration: the Mistral text model nested (tensors
    under ``language_model.``, in either of transformers' layouts) beside a Pixtral vision tower. Its
    language model must give the text-only Mistral's logits, as llama.cpp's ``mistral3`` architecture."""
    from engine.convert.safetensors import read_header as read_st

    folder = write_tiny_hf(tmp_path / "mm", "mistral")
    config = json.loads((folder / "config.json").read_text())
    nested = {"architectures": ["Mistral3ForConditionalGeneration"], "model_type": "mistral3",
              "text_config": config, "vision_config": {"model_type": "pixtral"}}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(nested))
    for shard in sorted(folder.glob("*.safetensors")):
        renamed = {}
        data = shard.read_bytes()
        for entry in read_st(shard):
            raw = np.frombuffer(data[entry.start : entry.end], dtype=np.float32).reshape(entry.shape)
            where = "language_model." if entry.name == "lm_head.weight" else layout
            renamed[where + entry.name.removeprefix("model.")] = (raw, entry.dtype)
        if shard.name.startswith("model-00001"):
            renamed["vision_tower.patch_conv.weight"] = (np.ones((4, 4), np.float32), "F32")
            renamed["multi_modal_projector.linear_1.weight"] = (np.ones((4, 4), np.float32), "F32")
        write_safetensors(shard, renamed)
    path = convert_folder(folder, tmp_path / "mm.gguf").path
    assert read_header(path, label="mm").architecture == "mistral3"
    got, _ = _logits(path)
    expected = np.array(REFERENCE["models"]["mistral"]["logits"], dtype=np.float32)
    assert float(np.abs(got - expected).max()) <= 0.02 * float(np.abs(expected).max())
    nested["text_config"] = {**config, "model_type": "ministral3"}
    (folder / "config.json").write_text(json.dumps(nested))
    with pytest.raises(InvalidInput, match="language model is ministral3"):
        convert_folder(folder, tmp_path / "other.gguf")


def test_gemma3_multimodal_checkpoint_converts_its_language_model(tmp_path: Path) -> None:
    """Gemma 3 4B+ ships as Gemma3ForConditionalGeneration: text settings nested, tensors under
    ``language_model.``, a vision tower beside them. The text model must come out as the text-only one."""
    from engine.convert.safetensors import read_header as read_st

    folder = write_tiny_hf(tmp_path / "mm", "gemma3")
    config = json.loads((folder / "config.json").read_text())
    nested = {
        "architectures": ["Gemma3ForConditionalGeneration"],
        "model_type": "gemma3",
        "text_config": config,
    }
    (folder / "config.json").write_text(json.dumps(nested))
    for shard in sorted(folder.glob("*.safetensors")):
        renamed = {}
        with open(shard, "rb") as f:
            data = f.read()
        for entry in read_st(shard):
            raw = np.frombuffer(data[entry.start : entry.end], dtype=np.float32).reshape(entry.shape)
            renamed["language_model." + entry.name] = (raw, entry.dtype)
        if shard.name.startswith("model-00001"):
            vision = "vision_tower.vision_model.embeddings.patch_embedding.weight"
            renamed[vision] = (np.ones((4, 4), np.float32), "F32")
        write_safetensors(shard, renamed)
    path = convert_folder(folder, tmp_path / "mm.gguf").path
    got, _ = _logits(path)
    expected = np.array(REFERENCE["models"]["gemma3"]["logits"], dtype=np.float32)
    assert float(np.abs(got - expected).max()) <= 0.02 * float(np.abs(expected).max())


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("num_hidden_layers", 10**9, "num_hidden_layers is 1,000,000,000"),
        ("vocab_size", 2**31 - 1, "vocab_size is 2,147,483,647"),
        ("num_hidden_layers", 3, "lack layer 2 of 3"),
        ("hidden_size", "64", "lacks hidden_size"),
    ],
)
def test_a_config_that_would_build_too_much_or_does_not_fit_the_weights_is_refused(
    tmp_path: Path, key: str, value: object, match: str
) -> None:
    folder = write_tiny_hf(tmp_path / "m", "qwen3")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, key: value}))
    with pytest.raises(InvalidInput, match=match):
        convert_folder(folder, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def test_an_oversized_tokenizer_file_is_refused_unread(tmp_path: Path) -> None:
    folder = write_tiny_hf(
        tmp_path / "g", "gemma3"
    )  # SentencePiece: tokenizer.json is read by SpecialVocab only
    with open(folder / "tokenizer.json", "wb") as f:
        f.truncate(65 * 1024 * 1024)  # sparse: no disk used
    with pytest.raises(InvalidInput, match="tokenizer.json is larger than"):
        convert_folder(folder, tmp_path / "x.gguf")


@pytest.mark.parametrize(
    ("scaling", "match"),
    [
        ({"type": "longrope", "long_factor": [1.0] * 7, "short_factor": [1.0] * 8}, "long_factor must be 8"),
        ({"type": "longrope", "long_factor": [1.0] * 8, "short_factor": ["1"] * 8}, "short_factor must be 8"),
        ({"type": "longrope", "long_factor": [1.0] * 8, "short_factor": [float("nan")] * 8}, "short_factor"),
        (
            {"type": "dynamic", "long_factor": [1.0] * 8, "short_factor": [1.0] * 8},
            "llamadeck converts longrope",
        ),
    ],
)
def test_a_phi3_rope_scaling_llama_cpp_cannot_run_is_refused(
    tmp_path: Path, scaling: dict, match: str
) -> None:
    folder = write_tiny_hf(tmp_path / "m", "phi3-longrope")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "rope_scaling": scaling}))
    with pytest.raises(InvalidInput, match=match):
        convert_folder(folder, tmp_path / "x.gguf")
