"""Pull and verify speed, as ratios measured side by side in one run.

    python bench/pull.py [--size-mib 1024] [--rounds 3]

Serves a GGUF of about 1 GiB from the loopback fake Hub (in its own process,
so it does not share our GIL), then alternates, round by round:

- bare ``hf_hub_download`` of the file vs ``Engine.pull`` of the same file
  (listing, remote header, download, sha256 while downloading, GGUF check);
  goal: pull throughput >= 0.95 x bare download;
- ``sha256sum`` of the stored blob vs ``Engine.verify`` of the model
  (re-hash + GGUF check); goal: verify speed >= 0.9 x sha256sum.

Machines here are shared and noisy: read the medians, and the spread.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVER = """
import sys, time
from pathlib import Path
from tests.support.fake_hub import FakeHub
hub = FakeHub().start()
hub.add_repo("bench/Big-GGUF", {"Big-Q8_0.gguf": Path(sys.argv[1])})
print(hub.url, flush=True)
sys.stdin.read()
"""


def timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from tests.support.tiny_gguf import write_tiny_gguf

    work = Path(tempfile.mkdtemp(prefix="llamadeck-bench-"))
    try:
        model = write_tiny_gguf(work / "Big-Q8_0.gguf", pad_bytes=args.size_mib * 1024 * 1024)[0]
        size = model.stat().st_size
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(model)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        url = server.stdout.readline().strip()
        os.environ.update(
            HF_ENDPOINT=url, HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1", HF_HOME=str(work / "hf")
        )
        os.environ.pop("HF_TOKEN", None)
        from huggingface_hub import hf_hub_download

        from engine import Engine
        from engine.memory import Machine

        warm = work / "hf-cache-warm-up"  # untimed: brings the served file into the page cache
        hf_hub_download("bench/Big-GGUF", "Big-Q8_0.gguf", cache_dir=warm)
        shutil.rmtree(warm)
        bare, pull, sha, verify = [], [], [], []
        for round_ in range(args.rounds):
            cache = work / f"hf-cache-{round_}"
            bare.append(timed(hf_hub_download, "bench/Big-GGUF", "Big-Q8_0.gguf", cache_dir=cache))
            shutil.rmtree(cache)

            engine = Engine(work / f"store-{round_}", machine=lambda: Machine(64 << 30, None))
            pull.append(timed(engine.pull, "bench/Big-GGUF:Q8_0"))
            blob = next(engine.store.blobs.iterdir())

            sha.append(timed(subprocess.run, ["sha256sum", str(blob)], check=True, capture_output=True))
            verify.append(timed(engine.verify))
            assert all(report.ok for report in engine.verify([]))
            shutil.rmtree(engine.store.home)
        server.stdin.close()
        server.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def mb_s(seconds: list[float]) -> str:
        runs = ", ".join(f"{s:.2f}s" for s in seconds)
        return f"{size / statistics.median(seconds) / 1e6:7.0f} MB/s (runs: {runs})"

    pull_ratio = statistics.median(bare) / statistics.median(pull)
    verify_ratio = statistics.median(sha) / statistics.median(verify)
    print(f"file: {size / 2**20:.0f} MiB from the fake Hub on loopback, {args.rounds} rounds, medians")
    print(f"  bare hf_hub_download   {mb_s(bare)}")
    print(f"  llamadeck pull         {mb_s(pull)}")
    print(f"  sha256sum              {mb_s(sha)}")
    print(f"  llamadeck verify       {mb_s(verify)}")
    print(f"pull / bare download throughput: {pull_ratio:.2f}  (goal >= 0.95)")
    print(f"verify / sha256sum speed:        {verify_ratio:.2f}  (goal >= 0.90)")


if __name__ == "__main__":
    main()
