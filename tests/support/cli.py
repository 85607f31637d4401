"""Running the ``llamadeck`` command as a person does, against a fake Hub serving tiny repositories."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import write_tiny_gguf

LLAMADECK = str(Path(sys.executable).parent / "llamadeck")
HOSTILE = "\x1b]0;pwned\x07"


def repo_files(factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The GGUF files the fake Hub serves: tiny, mid-sized, big (160 MB), hostile; written once a session."""
    d = factory.getbasetemp() / "cli-repos"
    files = {
        "Q8_0": d / "Tiny-Q8_0.gguf",
        "Q4_0": d / "Tiny-Q4_0.gguf",
        "mid": d / "Mid-Q8_0.gguf",
        "big": d / "Big-Q8_0.gguf",
        "evil": d / "Evil-Q8_0.gguf",
    }
    if d.exists():  # another test module of this session wrote them
        return files
    d.mkdir()
    write_tiny_gguf(files["Q8_0"], quant="Q8_0")
    write_tiny_gguf(files["Q4_0"], quant="Q4_0")
    write_tiny_gguf(files["mid"], quant="Q8_0", pad_bytes=8 * 1000 * 1000, seed=5)
    write_tiny_gguf(files["big"], quant="Q8_0", pad_bytes=160 * 1000 * 1000, seed=6)
    write_tiny_gguf(
        files["evil"],
        license="\x1b]0;pwned\x07\x1b[2Jmit",
        chat_template=HOSTILE + "{{ messages[0]['content'] }}",
        name=HOSTILE + "Evil",
        seed=7,
    )
    return files


@contextmanager
def serve_repos(files: dict[str, Path]) -> Iterator[FakeHub]:
    """A fake Hub with ``files`` in repositories: Tiny, Mid, Big, a gated one and a hostile one."""
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
    if (
        "input" not in kw
    ):  # run reads a stdin that is not a terminal, as ollama run does: give it an empty one
        kw.setdefault("stdin", subprocess.DEVNULL)
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


def run_into_a_closed_pipe(
    *args: str, hub: FakeHub | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """As ``llamadeck ARGS | true`` when ``true`` has already gone: every write meets a broken pipe."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    try:
        return subprocess.run(
            [LLAMADECK, *args],
            env=env_for(hub),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            **stdin,
        )
    finally:
        os.close(write_end)
