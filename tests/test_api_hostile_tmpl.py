"""Hostile templates and manifests (issue 18, finding 3 and the minor MESSAGE bomb), on a real uvicorn.

A template may not build values of any size, nor spend unbounded work, for
one request: a Go TEMPLATE that doubles a string per message passed
``create`` and took a server from 1.4 GB to 8.2 GB with 29 messages. A
Modelfile or ``/api/create`` may not record 500,000 MESSAGE turns. Each case
is refused with a one-line error, and the server goes on serving.
"""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine import Engine, Machine
from engine.errors import InvalidInput, TemplateError
from engine.ingest.modelfile import MAX_MESSAGES, MAX_PARAMETER_LINES, ModelfileError, parse_modelfile
from engine.options import MAX_STOPS
from engine.templates.go import budget as go_budget
from engine.templates.go.template import GoTemplate
from engine.templates.jinja.render import render_chat
from engine.templates.message import Message
from tests.support.api_server import running_api
from tests.support.tiny_gguf import write_tiny_gguf

DOUBLING = '{{ $x := "aaaaaaaaaa" }}{{ range $.Messages }}{{ $x = print $x $x }}{{ end }}{{ eq $x "b" }}'


def conversation(n: int) -> list[Message]:
    """``n`` turns, user and assistant by turns (Ollama merges consecutive turns of one role)."""
    return [Message("user" if i % 2 == 0 else "assistant", f"turn {i}") for i in range(n)]


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("hostile-tmpl") / "Tiny-Q8_0.gguf", quant="Q8_0")[0]


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine(machine=lambda: Machine(free_ram=16 << 30, gpu_free_vram=None))
    yield engine
    engine.close()


@pytest.fixture
def base_url(engine: Engine) -> Iterator[str]:
    with running_api(engine) as url:
        yield url


def upload(base_url: str, path: Path) -> str:
    data = path.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert httpx.post(f"{base_url}/api/blobs/{digest}", content=data).status_code in (200, 201)
    return digest


def create(base_url: str, weights: Path, name: str, **fields: object) -> httpx.Response:
    body = {"model": name, "files": {"Tiny-Q8_0.gguf": upload(base_url, weights)}, "stream": False, **fields}
    return httpx.post(f"{base_url}/api/create", json=body, timeout=60)


# -- finding 3: template values and work ------------------------------------------------------


def test_a_go_template_doubling_a_value_per_message_is_a_400_and_the_server_lives_on(
    base_url: str, weights: Path
) -> None:
    assert create(base_url, weights, "doubler", template=DOUBLING).status_code == 200  # one message: fine
    turns = [{"role": m.role, "content": m.content} for m in conversation(29)]
    answer = httpx.post(
        f"{base_url}/api/chat",
        json={"model": "doubler", "messages": turns, "stream": False, "options": {"num_predict": 1}},
        timeout=120,
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert "Go template tried to build a value of" in error and "\n" not in error
    assert httpx.get(f"{base_url}/api/tags").status_code == 200
    short = httpx.post(
        f"{base_url}/api/chat",
        json={"model": "doubler", "messages": turns[:1], "stream": False, "options": {"num_predict": 1}},
        timeout=120,
    )
    assert short.status_code == 200


def test_the_doubling_go_template_is_refused_before_it_builds_gigabytes() -> None:
    template = GoTemplate.parse(DOUBLING)
    assert template.render(conversation(1)) == "false"
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError, match="tried to build a value of") as caught:
            template.render(conversation(29))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(caught.value)
    assert peak < 64 << 20  # the value limit is 4 Mi characters; unbounded, this is 5 GiB


@pytest.mark.parametrize(
    "source",
    [
        '{{ $x := "aaaaaaaaaa" }}{{ range $.Messages }}{{ $x = printf "%s%s" $x $x }}{{ end }}{{ len $x }}',
        '{{ $x := "aaaaaaaaaa" }}{{ range $.Messages }}{{ $x = html $x $x }}{{ end }}{{ len $x }}',
        '{{ $x := "aaaaaaaaaa" }}{{ range $.Messages }}{{ $x = println $x $x }}{{ end }}{{ len $x }}',
        '{{ $x := "aaaaaaaaaa" }}{{ range $.Messages }}{{ $x = json (print $x $x) }}{{ end }}{{ len $x }}',
    ],
)
def test_every_go_function_that_builds_text_counts(source: str) -> None:
    with pytest.raises(TemplateError, match="tried to build a value of"):
        GoTemplate.parse(source).render(conversation(40))


def test_what_go_functions_build_adds_up_across_values(monkeypatch: pytest.MonkeyPatch) -> None:
    # each value is small, but 40 of them are kept: memory is bounded by everything built
    monkeypatch.setattr(go_budget, "MAX_WORK", 100_000)
    template = GoTemplate.parse(
        '{{ $x := "' + "a" * 2_000 + '" }}{{ range $.Messages }}{{ $y := print $x $x }}{{ end }}'
    )
    with pytest.raises(TemplateError, match="read and built more than 100,000"):
        template.render(conversation(40))


def test_comparing_big_values_over_and_over_counts_as_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(go_budget, "MAX_WORK", 1_000_000)
    template = GoTemplate.parse("{{ range .a }}{{ if eq $.x $.y }}{{ end }}{{ end }}")
    data = {"a": list(range(100)), "x": "é" * 20_000, "y": "é" * 20_000}
    with pytest.raises(TemplateError, match="read and built more than"):
        template.execute(data)
    assert GoTemplate.parse("{{ if eq $.x $.y }}same{{ end }}").execute(data) == "same"


def test_a_range_that_copies_the_conversation_each_time_counts_as_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # few steps (each inner range breaks at once), but each inner range copies 10,000 items
    monkeypatch.setattr(go_budget, "MAX_WORK", 1_000_000)
    template = GoTemplate.parse("{{ range .a }}{{ range $.a }}{{ break }}{{ end }}{{ end }}")
    with pytest.raises(TemplateError, match="read and built more than"):
        template.execute({"a": list(range(10_000))})


def test_the_quadratic_last_message_idiom_of_ollamas_templates_still_renders_long_chats() -> None:
    # llama3.1/qwen2.5 ask `len (slice $.Messages $i)` per message: 2,000 turns copy 2 million items
    template = GoTemplate.parse(
        "{{ range $i, $_ := .Messages }}{{ if eq (len (slice $.Messages $i)) 1 }}last{{ end }}{{ end }}"
    )
    assert template.render(conversation(2_000)) == "last"


def test_a_legacy_template_spends_one_budget_for_all_its_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    # a template without .Messages runs once per turn: each turn under the limit, together far over
    monkeypatch.setattr(go_budget, "MAX_OUTPUT", 10_000)
    template = GoTemplate.parse("{{ .Prompt }}{{ .Prompt }}{{ .Response }}")
    turns = [Message("user" if i % 2 == 0 else "assistant", "x" * 1_000) for i in range(40)]
    with pytest.raises(TemplateError, match="wrote more than 10,000 characters"):
        template.render(turns)
    monkeypatch.setattr(go_budget, "MAX_STEPS", 50)  # one turn takes 7
    monkeypatch.setattr(go_budget, "MAX_OUTPUT", 1 << 30)
    with pytest.raises(TemplateError, match="ran past 50 steps"):
        template.render(turns)


@pytest.mark.parametrize(
    "source",
    [
        "{% set ns = namespace(x='aaaaaaaaaa') %}{% for m in messages %}{% set ns.x = ns.x ~ ns.x %}"
        "{% endfor %}{{ ns.x == 'b' }}",
        "{% set ns = namespace(x='aaaaaaaaaa') %}{% for m in messages %}{% set ns.x = ns.x + ns.x %}"
        "{% endfor %}{{ ns.x == 'b' }}",
        "{% set ns = namespace(x='aaaaaaaaaa') %}{% for m in messages %}{% set ns.x = [ns.x, ns.x]|join %}"
        "{% endfor %}{{ ns.x == 'b' }}",
        "{% set ns = namespace(x='aaaaaaaaaa') %}{% for m in messages %}"
        "{% set ns.x = '%s%s' % (ns.x, ns.x) %}{% endfor %}{{ ns.x == 'b' }}",
        "{% macro twice(s) %}{{ s }}{{ s }}{% endmacro %}{% set ns = namespace(x='aaaaaaaaaa') %}"
        "{% for m in messages %}{% set ns.x = twice(ns.x) %}{% endfor %}{{ ns.x == 'b' }}",
    ],
)
def test_the_same_doubling_in_jinja_is_refused_on_its_budget(source: str) -> None:
    messages = [{"role": m.role, "content": m.content} for m in conversation(29)]
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError, match="tried to build a value of"):
            render_chat(source, messages, bos_token="", eos_token="")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20


def test_a_plain_set_in_a_jinja_loop_does_not_carry_over_so_cannot_double() -> None:
    source = "{% set x = 'aaaaaaaaaa' %}{% for m in messages %}{% set x = x ~ x %}{% endfor %}{{ x|length }}"
    messages = [{"role": m.role, "content": m.content} for m in conversation(29)]
    assert render_chat(source, messages, bos_token="", eos_token="") == "10"


# -- minor: MESSAGE turns, PARAMETER lines and stops in a manifest -----------------------------


def test_a_modelfile_with_too_many_message_turns_is_refused_at_the_line() -> None:
    lines = ["FROM base"] + [
        f"MESSAGE {'user' if i % 2 == 0 else 'assistant'} t{i}" for i in range(MAX_MESSAGES)
    ]
    assert len(parse_modelfile("\n".join(lines)).messages) == MAX_MESSAGES
    with pytest.raises(ModelfileError) as caught:
        parse_modelfile("\n".join([*lines, "MESSAGE user one more"]))
    assert str(caught.value) == (
        f"Modelfile line {MAX_MESSAGES + 2}: a model takes at most {MAX_MESSAGES:,} MESSAGE turns"
    )


def test_a_modelfile_with_too_many_parameter_lines_is_refused_at_the_line() -> None:
    lines = ["FROM base"] + ["PARAMETER temperature 0.5"] * MAX_PARAMETER_LINES
    assert parse_modelfile("\n".join(lines)).parameters == {"temperature": 0.5}
    with pytest.raises(ModelfileError) as caught:
        parse_modelfile("\n".join([*lines, "PARAMETER top_k 1"]))
    assert str(caught.value) == (
        f"Modelfile line {MAX_PARAMETER_LINES + 2}: a Modelfile takes at most "
        f"{MAX_PARAMETER_LINES:,} PARAMETER lines"
    )
    stops = ["FROM base"] + [f"PARAMETER stop s{i}" for i in range(MAX_STOPS + 1)]
    with pytest.raises(ModelfileError, match=f"at most {MAX_STOPS} times"):
        parse_modelfile("\n".join(stops))


def test_api_create_refuses_too_many_messages_or_stops_and_records_nothing(
    base_url: str, engine: Engine, weights: Path
) -> None:
    turns = [{"role": "user", "content": "hi"}] * (MAX_MESSAGES + 1)
    answer = create(base_url, weights, "chatty", messages=turns)
    assert answer.status_code == 400
    assert answer.json()["error"] == (
        f"a model takes at most {MAX_MESSAGES:,} MESSAGE turns; this one has {MAX_MESSAGES + 1:,}"
    )
    stops = create(base_url, weights, "stoppy", parameters={"stop": [f"s{i}" for i in range(MAX_STOPS + 1)]})
    assert stops.status_code == 400 and "stop" in stops.json()["error"]
    assert engine.list_models() == []
    assert create(base_url, weights, "fine", messages=turns[:MAX_MESSAGES]).status_code == 200
    assert len(engine.resolve("fine").config.messages) == MAX_MESSAGES


def test_create_refuses_texts_larger_than_a_modelfile_may_hold(engine: Engine, weights: Path) -> None:
    from engine import CreateSpec

    big = [("user", "x" * (1 << 20))] * 17  # 17 MiB of MESSAGE text, 17 turns
    with pytest.raises(InvalidInput, match="MiB of text"):
        engine.create("big", CreateSpec(base_path=weights, messages=tuple(big)))
    assert engine.list_models() == []
