"""``llamadeck ps`` and ``stop`` against a real running server, and against none or a stranger."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine import Engine, Machine
from tests.support.api_server import running_api
from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import write_tiny_gguf

LLAMADECK = str(Path(sys.executable).parent / "llamadeck")
CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)


def cli(*args: str, host: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"LLAMADECK_HOST": host}
    return subprocess.run([LLAMADECK, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def engine(tmp_path: Path):
    model = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    with FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": model})
        engine = Engine(machine=lambda: CPU_BOX)
        engine.pull("acme/Tiny-GGUF")
    yield engine
    engine.close()


def test_ps_lists_what_the_server_holds_and_stop_unloads_it(engine: Engine) -> None:
    list(engine.generate("hf.co/acme/Tiny-GGUF:Q8_0", "hello", options={"num_predict": 2}, keep_alive=300))
    with running_api(engine) as base_url:
        host = base_url.removeprefix("http://")
        listed = cli("ps", host=host)
        assert listed.returncode == 0, listed.stderr
        assert "hf.co/acme/Tiny-GGUF:Q8_0" in listed.stdout and "100% CPU" in listed.stdout
        assert "minutes from now" in listed.stdout
        stopped = cli("stop", "hf.co/acme/Tiny-GGUF:Q8_0", host=host)
        assert stopped.returncode == 0, stopped.stderr
        assert engine.loaded() == []
        assert "Tiny" not in cli("ps", host=host).stdout


def test_ps_says_clearly_when_no_server_runs() -> None:
    result = cli("ps", host="127.0.0.1:9")  # the discard port: nothing listens
    assert result.returncode == 1 and "no server answers at 127.0.0.1:9" in result.stderr


def test_ps_on_a_server_that_does_not_say_what_it_loaded_is_one_line() -> None:
    """A named server that is not Ollama-shaped (it answers ``/v1/models`` only) cannot list sessions."""

    class Stranger(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"models": []}')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stranger)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = cli("ps", host=f"127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
    assert result.returncode == 1 and "offers only the OpenAI API (/v1): it cannot list" in result.stderr
    assert result.stderr.count("\n") == 1


def test_run_uses_the_named_server_whatever_this_machines_store_holds(engine: Engine, tmp_path: Path) -> None:
    name = "hf.co/acme/Tiny-GGUF:Q8_0"
    with running_api(engine) as base_url:
        host = base_url.removeprefix("http://")
        ran = cli("run", name, "hello", "-n", "3", "--seed", "1", "--verbose", host=host)
        assert ran.returncode == 0, ran.stderr
        assert "eval count" in ran.stderr  # the stats came back through the API
        assert [m.reference for m in engine.loaded()] == [name]  # loaded in the server, by the server

        engine.unload()
        elsewhere = os.environ | {"LLAMADECK_HOST": host, "LLAMADECK_HOME": str(tmp_path / "other")}
        other = subprocess.run(
            [LLAMADECK, "run", name, "hi", "-n", "2"],
            env=elsewhere,
            capture_output=True,
            text=True,
            timeout=60,
        )
        # a server named by LLAMADECK_HOST is another machine: its store counts, this one's is not opened
        assert other.returncode == 0, other.stderr
        assert [m.reference for m in engine.loaded()] == [name]
        assert not (tmp_path / "other").exists()


def test_run_through_a_server_reports_its_errors_in_one_line(engine: Engine) -> None:
    with running_api(engine) as base_url:
        host = base_url.removeprefix("http://")
        ran = cli("run", "hf.co/acme/Tiny-GGUF:Q8_0", "hello", "-t", "0", "-n", "2", host=host)
        assert ran.returncode == 0, ran.stderr
        bad = subprocess.run(
            [LLAMADECK, "run", "hf.co/acme/Tiny-GGUF:Q8_0", "hi", "--raw", "-n", "1"],
            env=os.environ | {"LLAMADECK_HOST": host, "LLAMADECK_API_KEY": "wrong"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert bad.returncode == 0, bad.stderr  # a key the loopback server does not ask for is ignored
