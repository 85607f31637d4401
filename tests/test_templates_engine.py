"""The engine's requests and their chat template: built once, not once per request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Done, Engine, Machine
from engine.templates.render import built_template
from tests.support.tiny_gguf import write_tiny_gguf

GIB = 1 << 30
GO_TEMPLATE = "{{- range .Messages }}<|{{ .Role }}|>{{ .Content }}\n{{ end }}<|assistant|>\n"


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine(machine=lambda: Machine(free_ram=16 * GIB, gpu_free_vram=None))
    yield engine
    engine.close()


def chat(engine: Engine, name: str, text: str) -> Done:
    events = list(
        engine.chat(name, [{"role": "user", "content": text}], options={"num_predict": 2, "seed": 1})
    )
    assert isinstance(events[-1], Done)
    return events[-1]


def test_a_models_go_template_is_parsed_once_across_its_requests(engine: Engine, tmp_path: Path) -> None:
    gguf = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf", quant="Q8_0")[0]
    engine.create("tmpl-once", f'FROM {gguf}\nTEMPLATE """{GO_TEMPLATE}"""\n', base_dir=tmp_path)
    before = built_template.cache_info()
    first = chat(engine, "tmpl-once", "Hello")
    second = chat(engine, "tmpl-once", "Hello again")
    after = built_template.cache_info()
    assert after.misses - before.misses == 1  # built for the first request, reused by the second
    assert second.prompt_tokens > first.prompt_tokens  # both requests went through the template
