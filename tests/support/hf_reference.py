"""Reference outputs for the converter's tests from ``transformers`` + ``torch``: run once, results committed.

torch is not a dependency of llamadeck or its tests; this script runs in a
separate virtual environment:

    python3 -m venv /work/torchenv
    /work/torchenv/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch
    /work/torchenv/bin/pip install transformers tokenizers sentencepiece safetensors
    PYTHONPATH=. /work/torchenv/bin/python tests/support/hf_reference.py --tokenizers   # the tiny tokenizers
    PYTHONPATH=. /work/torchenv/bin/python tests/support/hf_reference.py                # reference.json
    PYTHONPATH=. /work/torchenv/bin/python tests/support/hf_reference.py phi3-longrope  # one model, merged in

For every architecture of ``hf_tiny.MODELS`` it writes the tiny model,
loads it with ``AutoModelForCausalLM`` in float32 and records the logits at
every position of ``EVAL_IDS``, and the ids its tokenizer gives ``PROMPT``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from tests.support.hf_tiny import DATA, EVAL_IDS, MODELS, PROMPT, write_tiny_hf

CORPUS = [
    "Hello world, this is a test of the tiny tokenizer.",
    "The quick brown fox jumps over the lazy dog 123 times!",
    "Models convert from safetensors to GGUF, tensor by tensor.",
    "Numbers like 42, 7 and 1999 are split into digits; words are not.",
    "A llama, a qwen and a gemma walked into a bar.",
]


def tokenizers() -> None:
    import sentencepiece as spm
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    DATA.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=330,
        special_tokens=["<|begin|>", "<|end|>", "<|start|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 20, trainer)
    tokenizer.save(str(DATA / "tokenizer.json"))
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "corpus.txt"
        text.write_text("\n".join(CORPUS * 20))
        spm.SentencePieceTrainer.train(
            input=str(text), model_prefix=str(Path(tmp) / "m"), vocab_size=360, model_type="bpe",
            pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
            unk_piece="<unk>", byte_fallback=True, add_dummy_prefix=False, split_digits=True,
            remove_extra_whitespaces=False, normalization_rule_name="identity", minloglevel=2,
        )  # fmt: skip
        (DATA / "tokenizer.model").write_bytes((Path(tmp) / "m.model").read_bytes())


def references(only: list[str]) -> dict[str, object]:
    import sentencepiece as spm
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    out: dict[str, object] = {"eval_ids": EVAL_IDS, "prompt": PROMPT, "models": {}}
    for arch in only or sorted(MODELS):
        with tempfile.TemporaryDirectory() as tmp:
            folder = write_tiny_hf(Path(tmp) / arch, arch)
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
            model.eval()
            with torch.no_grad():
                logits = model(torch.tensor([EVAL_IDS])).logits[0]
            if MODELS[arch][2] == "spm":
                ids = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model")).encode(PROMPT)
            else:
                ids = AutoTokenizer.from_pretrained(folder).encode(PROMPT, add_special_tokens=False)
            out["models"][arch] = {  # type: ignore[index]
                "logits": [[round(float(x), 5) for x in row] for row in logits],
                "prompt_ids": list(ids),
            }
            scaling = MODELS[arch][0].get("rope_scaling") or {}
            if "long_factor" in scaling:  # past the original context: the long factors (rope is relative)
                beyond = model.config.original_max_position_embeddings + 88
                positions = torch.arange(beyond, beyond + len(EVAL_IDS))[None]
                with torch.no_grad():
                    long = model(torch.tensor([EVAL_IDS]), position_ids=positions).logits[0]
                out["models"][arch]["long_logits"] = [[round(float(x), 5) for x in r] for r in long]  # type: ignore[index]
            print(arch, "top ids", logits.argmax(-1).tolist(), "prompt ids", list(ids)[:8], file=sys.stderr)
    return out


if __name__ == "__main__":
    if "--tokenizers" in sys.argv:
        tokenizers()
    else:  # named models are added to (or replaced in) the committed file; the others keep their numbers
        only = sys.argv[1:]
        made = references(only)
        if only:
            kept = json.loads((DATA / "reference.json").read_text())
            kept["models"].update(made["models"])
            made = kept
        (DATA / "reference.json").write_text(json.dumps(made, separators=(",", ":")))
