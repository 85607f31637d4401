"""Generating with the real llama.cpp: tiny models from the fake Hub, the embedded Gemma via the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine import Engine
from engine.chat import TemplateError, render_chat
from engine.embedded import GEMMA_TEMPLATE
from engine.events import Done, Token
from engine.memory import Machine
from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import CHAT_TEMPLATE, write_tiny_gguf

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)


@pytest.fixture
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    d = tmp_path_factory.mktemp("runtime-repos")
    single = write_tiny_gguf(d / "Tiny-Q8_0.gguf")[0]
    parts = write_tiny_gguf(d / "split" / "Tiny-Q4_0.gguf", quant="Q4_0", split_tensors=8)
    with FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": single})
        hub.add_repo("acme/Split-GGUF", {p.name: p for p in parts})
        engine = Engine(machine=lambda: CPU_BOX)
        engine.pull("acme/Tiny-GGUF")
        engine.pull("acme/Split-GGUF")
    return engine


def test_generate_streams_tokens_then_done(engine: Engine) -> None:
    events = list(engine.generate("acme/Tiny-GGUF", "hello world", max_tokens=8, temperature=0))
    tokens = [e for e in events if isinstance(e, Token)]
    done = events[-1]
    assert isinstance(done, Done) and all(isinstance(e, Token) for e in events[:-1])
    assert 0 < len(tokens) <= 8 and done.completion_tokens == len(tokens)
    assert done.load_seconds > 0 and done.prompt_tokens > 0
    again = list(engine.generate("acme/Tiny-GGUF", "hello world", max_tokens=8, temperature=0))
    assert again[-1].load_seconds == 0.0  # the model stayed loaded
    assert "".join(t.text for t in tokens) == "".join(e.text for e in again if isinstance(e, Token))


def test_generate_pulls_a_hub_model_it_does_not_have_yet(tmp_path: Path) -> None:
    model = write_tiny_gguf(tmp_path / "Fresh-Q8_0.gguf")[0]
    with FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Fresh-GGUF", {"Fresh-Q8_0.gguf": model})
        engine = Engine(machine=lambda: CPU_BOX)
        events = list(engine.generate("acme/Fresh-GGUF", "hello", max_tokens=2))
    assert isinstance(events[-1], Done)
    assert [m.reference for m in engine.list_models()] == ["hf.co/acme/Fresh-GGUF:Q8_0"]


def test_split_model_loads_from_its_blobs(engine: Engine) -> None:
    events = list(engine.generate("acme/Split-GGUF", "hello", max_tokens=4, temperature=0))
    assert isinstance(events[-1], Done) and events[-1].completion_tokens > 0
    views = engine.store.home / "views"
    assert len(list(views.iterdir())) == 1
    engine.remove("acme/Split-GGUF")
    assert list(views.iterdir()) == []  # no dangling symlinks left behind


def test_chat_template_renders_without_a_second_bos() -> None:
    text = render_chat(
        GEMMA_TEMPLATE,
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        bos_token="<bos>",
        eos_token="<eos>",
    )
    assert text == "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    chatml = render_chat(
        CHAT_TEMPLATE, [{"role": "user", "content": "Hi"}], bos_token="<s>", eos_token="</s>"
    )
    assert chatml == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_hostile_or_broken_templates_fail_cleanly() -> None:
    with pytest.raises(TemplateError):
        render_chat("{{ ''.__class__.__mro__[1].__subclasses__() }}", [], bos_token="", eos_token="")
    with pytest.raises(TemplateError, match="refused"):
        render_chat("{{ raise_exception('roles must alternate') }}", [], bos_token="", eos_token="")
    with pytest.raises(TemplateError, match="broken"):
        render_chat("{% for %}", [], bos_token="", eos_token="")


def test_quick_start_runs_the_embedded_default_model() -> None:
    llamadeck = str(Path(sys.executable).parent / "llamadeck")
    result = subprocess.run(
        [llamadeck, "run", "gemma3:270m", "The capital of France is", "-n", "16", "-t", "0", "--verbose"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) >= 5  # a real continuation, streamed to stdout
    assert "llama_" not in result.stderr and "tokens/s" in result.stderr  # llama.cpp's log stays out
