"""/api/show's capabilities and model_info as Ollama gives them, on a real uvicorn with the real clients.

llm-ollama registers a model for chat only when its capabilities say
``completion``, passes tools only when they say ``tools``, and oterm enables
its tools selector the same way: ``llm_ollama_models`` replays that logic
(``register_models`` in llm-ollama 0.x) over the ``ollama`` client's ``show``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from engine import Engine, Machine
from tests.support.api_server import running_api
from tests.support.chain_gguf import token_id, write_chain_gguf
from tests.support.fake_hub import FakeHub, isolated_hf_env
from tests.support.tiny_gguf import N_CTX_TRAIN, N_EMBD, N_LAYERS, N_VOCAB, write_tiny_gguf

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)
TINY = "hf.co/acme/Tiny-GGUF:Q8_0"
TOOLS = "hf.co/acme/Tools-GGUF:Q8_0"
EMBED = "hf.co/acme/Embed-GGUF:F32"
FIM = "hf.co/acme/Fim-GGUF:Q8_0"
VISION = "hf.co/acme/Vision-GGUF:Q8_0"
# a Qwen 3 style chat template, cut: it renders tools and thinks
THINKING_TOOLS = (
    "{%- if tools %}<|im_start|>system\n{% for tool in tools %}{{ tool | tojson }}{% endfor %}<|im_end|>\n"
    "{% endif %}{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n\n</think>\n\n"
    "{% endif %}"
)
CODER_GO = (
    "{{ if .Suffix }}<|fim_prefix|>{{ .Prompt }}<|fim_suffix|>{{ .Suffix }}<|fim_middle|>"
    "{{ else }}{{ .Prompt }}{{ end }}"
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    d = tmp_path_factory.mktemp("show")
    files = {
        "acme/Tiny-GGUF": ("Tiny-Q8_0.gguf", write_tiny_gguf(d / "Tiny-Q8_0.gguf")[0]),
        "acme/Tools-GGUF": (
            "Tools-Q8_0.gguf",
            write_tiny_gguf(d / "Tools-Q8_0.gguf", chat_template=THINKING_TOOLS)[0],
        ),
        "acme/Embed-GGUF": (
            "Embed-F32.gguf",
            write_chain_gguf(d / "Embed-F32.gguf", {token_id("h"): 2}, pooling=1),
        ),
        "acme/Fim-GGUF": (
            "Fim-Q8_0.gguf",
            write_tiny_gguf(
                d / "Fim-Q8_0.gguf",
                extra={"tokenizer.ggml.fim_pre_token_id": 5, "tokenizer.ggml.fim_suf_token_id": 6},
            )[0],
        ),
        "acme/Vision-GGUF": (
            "Vision-Q8_0.gguf",
            write_tiny_gguf(d / "Vision-Q8_0.gguf", extra={"llama.vision.block_count": 2})[0],
        ),
    }
    # module-scoped: its own store and Hugging Face home (the per-test isolation comes later)
    with isolated_hf_env(d / "hf-home"), FakeHub() as hub, hub.patch_endpoint():
        engine = Engine(d / "store", machine=lambda: CPU_BOX)
        for repo, (name, path) in files.items():
            hub.add_repo(repo, {name: path})
            engine.pull(repo)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def server(engine: Engine) -> Iterator[str]:
    with running_api(engine) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def client(server: str) -> ollama.Client:
    return ollama.Client(host=server)


def llm_ollama_models(client: ollama.Client) -> dict[str, bool]:
    """llm-ollama's register_models: chat models by name, with whether it passes them tools."""
    chat = {}
    for model in client.list()["models"]:
        capabilities = client.show(model["model"]).capabilities or []
        if "completion" not in capabilities:
            continue
        chat[model["model"]] = "tools" in capabilities
    return chat


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (TINY, ["completion"]),
        (TOOLS, ["completion", "tools", "thinking"]),
        (EMBED, ["embedding"]),
        (FIM, ["completion", "insert"]),
        (VISION, ["completion", "vision"]),
    ],
)
def test_capabilities_come_from_the_gguf_and_the_template(
    client: ollama.Client, model: str, expected: list[str]
) -> None:
    assert client.show(model).capabilities == expected


def test_llm_ollama_offers_chat_models_with_tools_where_the_template_renders_them(
    client: ollama.Client,
) -> None:
    assert llm_ollama_models(client) == {TINY: False, TOOLS: True, FIM: False, VISION: False}


def test_a_modelfile_go_template_decides_for_the_model_made_from_it(client: ollama.Client) -> None:
    client.create(model="coder:latest", from_=TINY, template=CODER_GO, stream=False)
    assert client.show("coder").capabilities == ["completion", "insert"]
    client.create(model="tooler:latest", from_=TINY, template="{{ .Tools }}{{ .Prompt }}", stream=False)
    assert client.show("tooler").capabilities == ["completion", "tools"]


def test_model_info_has_the_ggufs_own_keys_and_null_arrays(client: ollama.Client, engine: Engine) -> None:
    info = client.show(TINY).modelinfo
    assert info is not None
    assert info["general.architecture"] == "llama"
    assert info["general.parameter_count"] == engine.resolve(TINY).parameters > 0
    assert info["general.file_type"] == 7  # the GGUF's llama_ftype (MOSTLY_Q8_0), as Ollama gives it
    assert info["llama.block_count"] == N_LAYERS and info["llama.context_length"] == N_CTX_TRAIN
    assert info["llama.embedding_length"] == N_EMBD and info["llama.attention.head_count"] == 2
    assert info["llama.attention.layer_norm_rms_epsilon"] == 1e-05
    assert info["tokenizer.ggml.model"] == "llama" and info["tokenizer.ggml.eos_token_id"] == 2
    assert info["tokenizer.ggml.tokens"] is None and info["tokenizer.ggml.token_type"] is None
    assert "general.name" not in info and "tokenizer.chat_template" not in info  # as Ollama deletes them
    assert not [k for k in info if k.endswith(("n_layers", "n_embd", "n_head", "n_vocab"))]  # ours are gone


def test_verbose_show_gives_the_arrays(server: str) -> None:
    body = {"model": TINY, "verbose": True}
    info = httpx.post(f"{server}/api/show", json=body, timeout=30).json()["model_info"]
    assert len(info["tokenizer.ggml.tokens"]) == N_VOCAB and info["tokenizer.ggml.tokens"][1] == "<s>"
    assert len(info["tokenizer.ggml.scores"]) == N_VOCAB
    with pytest.raises(httpx.HTTPStatusError):
        httpx.post(f"{server}/api/show", json={"model": TINY, "verbose": "yes"}).raise_for_status()


def test_an_embedding_models_info_says_how_it_pools(client: ollama.Client) -> None:
    info = client.show(EMBED).modelinfo
    assert info is not None and info["llama.pooling_type"] == 1


def test_show_needs_no_model_loaded(client: ollama.Client, engine: Engine) -> None:
    engine.unload()
    client.show(TOOLS)
    assert engine.loaded() == []


def test_the_engines_show_carries_the_same_list(engine: Engine) -> None:
    for model, expected in ((TOOLS, ("completion", "tools", "thinking")), (EMBED, ("embedding",))):
        assert engine.show(model).capabilities == expected


@pytest.fixture
def missing_header(engine: Engine, tmp_path: Path) -> Iterator[str]:
    """A stored model whose blob no longer reads as a GGUF (``verify`` reports it)."""
    blob = engine.show(VISION).paths[0]
    saved = blob.read_bytes()
    blob.chmod(0o644)
    blob.write_bytes(b"not a gguf any more")
    yield VISION
    blob.write_bytes(saved)


def test_an_unreadable_header_still_shows_with_what_the_manifest_knows(
    client: ollama.Client, missing_header: str
) -> None:
    shown = client.show(missing_header)
    assert shown.capabilities == ["completion"]
    assert shown.modelinfo is not None and set(shown.modelinfo) == {
        "general.architecture",
        "general.parameter_count",
    }
