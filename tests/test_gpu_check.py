"""bench/gpu_check.sh's parts that run without a GPU: the probe on the CPU build, and the table it prints.

The GPU run itself can only happen on the device machine (its header says how); these keep its pieces
from rotting in between, so the first run there is likely to work.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.tiny_gguf import write_tiny_gguf

ROOT = Path(__file__).resolve().parents[1]


def probe(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_probe.py"), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_the_fixtures_decode_the_same_tokens_with_no_layer_and_every_layer_offloaded(tmp_path: Path) -> None:
    ran = probe("fixtures", tmp_path)
    assert ran.returncode == 0, ran.stderr
    rows = [line.split("|") for line in ran.stdout.splitlines() if line.startswith("fixture ")]
    assert [r[0] for r in rows] == [
        "fixture tiny Q8_0",
        "fixture tiny F16",
        "fixture tiny Q4_0",
        "fixture chain",
    ]
    assert all(len(r) == 5 and r[3] == "ok" for r in rows), rows


def test_the_plan_matches_llama_cpps_buffers_on_the_cpu_build(tmp_path: Path) -> None:
    model = write_tiny_gguf(tmp_path / "tiny.gguf", quant="F16")[0]
    ran = probe("plan", model, "tiny", "--ctx", "2048", "--slots", "2", "--flash", "0")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    [line] = ran.stdout.splitlines()
    cells = line.split("|")
    assert cells[0] == "plan tiny (ctx 2048x2, FA off)" and cells[3] == "ok"
    assert 0.9 <= float(cells[2].split(",")[0]) <= 1.1


def test_bench_rows_and_the_table(tmp_path: Path) -> None:
    log = tmp_path / "generate.log"

    def row(name: str, ratio: float, goal: str, detail: str) -> str:  # bench/generate.py's row()
        return f"{name:<46} {ratio:>7.3f}  {goal:<8} {'ok':<6}  {detail}\n"

    log.write_text(
        "tiny: 2 threads\n\nfigure   ratio\n"
        + row("1 stream: scheduler / bare loop", 0.981, ">= 0.97", "250.1 vs 255.0 tok/s")
        + row("4 streams / 1 stream (scheduler)", 2.5, "", "what one batch per step buys")
        + "Traceback (most recent call last):\n  File x\nRuntimeError: too few tokens\n"
    )
    script = f"""
        set +u; source {ROOT / "bench" / "gpu_check.sh"}
        ROWS={tmp_path / "rows"}; : > "$ROWS"; PY={sys.executable}; ROOT={ROOT}
        row machine "H100" "llama_cpp 0.3.36" "GPU offload" "16 cores"
        bench_rows generate {log} 1
        table
    """
    shown = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["check", "setting", "figure", "result", "detail"]
    assert lines[3].split()[0] == "generate" and "0.981, goal >= 0.97  ok" in lines[3]
    assert "2.500" in lines[4] and "goal" not in lines[4]
    assert "FAILED rc=1" in lines[5] and "RuntimeError: too few tokens" in lines[5]


def test_the_vision_step_runs_the_bench_and_puts_its_goals_in_the_table(tmp_path: Path) -> None:
    """gpu_check.sh's ``vision`` on the CPU (as its dry run): bench/vision.py on a tiny model and tower."""
    model = write_tiny_gguf(tmp_path / "tiny-Q8_0.gguf")[0]
    script = f"""
        set +u; source {ROOT / "bench" / "gpu_check.sh"}
        ROWS={tmp_path / "rows"}; : > "$ROWS"; PY={sys.executable}; ROOT={ROOT}; DRY=1
        OUTDIR={tmp_path}; BUDGET=100000; cd {ROOT}
        vision {model} {ROOT}
        table
    """
    shown = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=600)
    assert shown.returncode == 0, shown.stderr
    rows = [line for line in shown.stdout.splitlines() if line.startswith("vision ")]
    log = (tmp_path / "vision.log").read_text()
    assert len(rows) == 2, log
    assert "bare mtmd / llamadeck" in rows[0] and "2nd turn / 1st" in rows[1]
    assert all(" goal " in r and ("ok" in r.split() or "MISSED" in r.split()) for r in rows), rows
