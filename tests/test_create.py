"""``create`` from a Modelfile: every FROM kind, layering over a base, quantize, the round trip."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import (
    Done,
    Engine,
    InvalidInput,
    Machine,
    Manifest,
    ModelNotFound,
    Progress,
    Token,
)
from tests.support.tiny_gguf import write_tiny_gguf

GIB = 1 << 30


@pytest.fixture
def engine() -> Engine:
    engine = Engine(machine=lambda: Machine(free_ram=16 * GIB, gpu_free_vram=None))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("create-weights")
    split = d / "split"
    return {
        "q8": write_tiny_gguf(d / "Tiny-Q8_0.gguf", quant="Q8_0")[0],
        "f16": write_tiny_gguf(d / "Tiny-F16.gguf", quant="F16", seed=3)[0],
        "split": write_tiny_gguf(split / "Tiny-Q8_0.gguf", quant="Q8_0", split_tensors=4, seed=5)[0],
        "bare": write_tiny_gguf(d / "Bare-Q8_0.gguf", quant="Q8_0", chat_template=None, seed=7)[0],
    }


def modelfile(folder: Path, text: str) -> Path:
    path = folder / "Modelfile"
    path.write_text(text, encoding="utf-8")
    return path


def comparable(manifest: Manifest) -> Manifest:
    """What makes two models the same model: everything but their name, age and lineage."""
    return replace(
        manifest,
        files=tuple((f.sha256, f.size) for f in manifest.files),  # type: ignore[arg-type]  # names are labels
        name="x",
        tag="x",
        created="",
        source="",
        config=replace(manifest.config, parent=None),
    )


def reply(engine: Engine, name: str, text: str = "Hello") -> Done:
    events = list(
        engine.chat(name, [{"role": "user", "content": text}], options={"num_predict": 4, "seed": 1})
    )
    assert all(isinstance(e, Token) for e in events[:-1])
    assert isinstance(events[-1], Done)
    return events[-1]


def test_from_a_gguf_file_imports_it_by_hard_link_with_the_modelfiles_settings(
    engine: Engine, weights: dict[str, Path], tmp_path: Path
) -> None:
    text = f"""# a tiny assistant
FROM {weights["q8"]}
SYSTEM You are terse.
PARAMETER temperature 0.2
PARAMETER stop <end>
PARAMETER stop "two words"
MESSAGE user Hi
MESSAGE assistant Hello!
LICENSE \"\"\"Apache-2.0\"\"\"
"""
    made = engine.create("terse", text, base_dir=tmp_path)
    assert made.reference == "terse:latest"
    assert made.config.system == "You are terse."
    assert made.config.parameters == {"temperature": 0.2, "stop": ["<end>", "two words"]}
    assert made.config.messages == (("user", "Hi"), ("assistant", "Hello!"))
    assert made.license is not None and made.license.endswith("Apache-2.0")
    assert made.config.template_source == "gguf"  # the GGUF's own template, kept as such
    blob = engine.show("terse").paths[0]
    assert os.stat(blob).st_ino == os.stat(weights["q8"]).st_ino  # a hard link: no second copy
    assert engine.resolve("terse") == made


def test_message_turns_are_part_of_every_chat(
    engine: Engine, weights: dict[str, Path], tmp_path: Path
) -> None:
    engine.create("plain", f"FROM {weights['q8']}\n", base_dir=tmp_path)
    engine.create(
        "primed",
        f"FROM {weights['q8']}\nMESSAGE user Hi there\nMESSAGE assistant Hello!\n",
        base_dir=tmp_path,
    )
    assert reply(engine, "primed").prompt_tokens > reply(engine, "plain").prompt_tokens


def test_a_relative_from_is_read_from_the_modelfiles_folder(
    engine: Engine, weights: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "w.gguf").write_bytes(weights["q8"].read_bytes())
    made = engine.create("rel", "FROM ./w.gguf\n", base_dir=folder)
    assert made.files[0].size == weights["q8"].stat().st_size


def test_from_a_folder_of_split_parts(engine: Engine, weights: dict[str, Path], tmp_path: Path) -> None:
    made = engine.create("parts", f"FROM {weights['split'].parent}\n", base_dir=tmp_path)
    assert len(made.files) > 1
    assert reply(engine, "parts").completion_tokens > 0


def test_from_a_stored_model_layers_the_new_settings_over_the_base(
    engine: Engine, weights: dict[str, Path], tmp_path: Path
) -> None:
    engine.create(
        "base",
        f"FROM {weights['q8']}\nSYSTEM Be kind.\nPARAMETER temperature 0.5\nPARAMETER top_k 20\n",
        base_dir=tmp_path,
    )
    made = engine.create(
        "derived", "FROM base\nPARAMETER temperature 0.9\nSYSTEM Be brief.\n", base_dir=tmp_path
    )
    base = engine.resolve("base")
    assert made.files == base.files  # the same blobs, not a copy
    assert made.config.parameters == {"temperature": 0.9, "top_k": 20}  # overridden one by one, as Ollama
    assert made.config.system == "Be brief."
    assert made.config.parent == "base:latest"
    assert made.config.template == base.config.template


def test_the_modelfile_shown_makes_the_same_model_again(
    engine: Engine, weights: dict[str, Path], tmp_path: Path
) -> None:
    first = engine.create(
        "original",
        f"""FROM {weights["q8"]}
TEMPLATE \"\"\"{{{{ .System }}}} {{{{ .Prompt }}}}\"\"\"
SYSTEM \"\"\"Line one
line \"two\" with \\\\ and \"\"\"
PARAMETER num_ctx 512
PARAMETER stop "a b"
MESSAGE user Hi
LICENSE one
LICENSE two
""",
        base_dir=tmp_path,
    )
    text = engine.modelfile("original")
    again = engine.create("again", text, base_dir=tmp_path)
    assert comparable(again) == comparable(first)
    assert engine.modelfile("again").split("\n", 4)[4] == text.split("\n", 4)[4]  # past the header


def test_a_template_of_a_gguf_model_round_trips_as_the_gguf_s_own(
    engine: Engine, weights: dict[str, Path], tmp_path: Path
) -> None:
    first = engine.create("own", f"FROM {weights['q8']}\n", base_dir=tmp_path)
    again = engine.create("own2", engine.modelfile("own"), base_dir=tmp_path)
    assert again.config.template_source == first.config.template_source == "gguf"
    assert comparable(again) == comparable(first)


def test_from_an_unknown_name_says_it_is_neither_model_nor_file(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="no model here and no file"):
        engine.create("x", "FROM nothing-like-this\n", base_dir=tmp_path)
    assert engine.list_models() == []


def test_a_modelfile_error_names_its_line_and_records_nothing(
    engine: Engine, weights: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="line 2"):
        engine.create("x", f"FROM {weights['q8']}\nPARAMETER no_such_option 1\n", base_dir=tmp_path)
    assert engine.list_models() == []


def test_a_template_that_cannot_render_is_refused_at_create(
    engine: Engine, weights: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="TEMPLATE"):
        engine.create(
            "x",
            f'FROM {weights["q8"]}\nTEMPLATE """{{{{ .Nope.Deeper }}}}{{{{ end }}}}"""\n',
            base_dir=tmp_path,
        )
    assert engine.list_models() == []


def test_create_cannot_take_a_hub_name(engine: Engine, weights: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        engine.create("hf.co/acme/Mine", f"FROM {weights['q8']}\n", base_dir=tmp_path)


def test_quantize_an_f16_file_and_chat_with_it(
    engine: Engine, weights: dict[str, Path], tmp_path: Path
) -> None:
    events: list[object] = []
    made = engine.create(
        "small", f"FROM {weights['f16']}\n", base_dir=tmp_path, quantize="q8_0", on_event=events.append
    )
    assert made.quant == "Q8_0"
    assert made.size < weights["f16"].stat().st_size
    steps = [e for e in events if isinstance(e, Progress) and e.action == "quantizing"]
    assert steps and steps[-1].completed == steps[-1].total
    assert reply(engine, "small").completion_tokens > 0
    assert not list((engine.home / "partial").glob("create-*"))  # the working folder is gone


def test_quantize_a_stored_f16_model(engine: Engine, weights: dict[str, Path], tmp_path: Path) -> None:
    engine.create("wide", f"FROM {weights['f16']}\nSYSTEM s\n", base_dir=tmp_path)
    made = engine.create("narrow", "FROM wide\n", base_dir=tmp_path, quantize="Q4_0")
    assert made.quant == "Q4_0" and made.config.system == "s" and made.config.parent == "wide:latest"
    assert made.files != engine.resolve("wide").files


def test_quantizing_a_quantized_model_is_refused(
    engine: Engine, weights: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="F16"):
        engine.create("x", f"FROM {weights['q8']}\n", base_dir=tmp_path, quantize="Q4_0")
    assert engine.list_models() == []


def test_prune_removes_abandoned_uploads_and_working_folders_but_not_fresh_ones(engine: Engine) -> None:
    partial = engine.home / "partial"
    partial.mkdir(parents=True)
    old_upload, new_upload = partial / "upload-aaaa-1.partial", partial / "upload-bbbb-2.partial"
    old_work, new_work = partial / "create-old", partial / "create-new"
    for file in (old_upload, new_upload):
        file.write_bytes(b"x" * 100)
    for folder in (old_work, new_work):
        folder.mkdir()
        (folder / "quantized.gguf").write_bytes(b"y" * 10)
    day_ago = time.time() - 2 * 86400
    for path in (old_upload, old_work / "quantized.gguf", old_work):
        os.utime(path, (day_ago, day_ago))
    engine.prune()
    assert not old_upload.exists() and not old_work.exists()
    assert new_upload.exists() and new_work.exists()


def test_from_a_fifo_is_refused_at_once_not_waited_on(engine: Engine, tmp_path: Path) -> None:
    fifo = tmp_path / "weights.gguf"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInput, match="not a regular file"):
        engine.create("x", f"FROM {fifo}\n", base_dir=tmp_path)
    assert engine.list_models() == []


def test_a_name_created_again_while_loaded_serves_and_lists_the_new_weights(
    engine: Engine, weights: dict[str, Path], tmp_path: Path
) -> None:
    engine.create("m1", f"FROM {weights['q8']}\n", base_dir=tmp_path)
    reply(engine, "m1")
    old = engine.resolve("m1").id
    new = engine.create("m1", f"FROM {weights['bare']}\n", base_dir=tmp_path)
    assert new.id != old
    reply(engine, "m1")
    loaded = engine.loaded()
    assert [(m.reference, m.id) for m in loaded] == [("m1:latest", new.id)]  # the old weights were let go
    assert loaded[0].manifest == new
    engine.unload("m1")
    assert engine.loaded() == []


TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40
).filter(lambda t: t.strip() == t and t.strip())
PARAMETERS = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.sampled_from([0.0, 0.2, 1.5]),
        "top_k": st.integers(1, 100),
        "num_ctx": st.sampled_from([256, 512, 2048]),
        "seed": st.integers(0, 1000),
        "stop": st.lists(TEXT, min_size=1, max_size=3, unique=True),
    },
)
TEMPLATES = st.sampled_from(
    [
        None,
        "{{ .System }}\n{{ .Prompt }}",
        "{{ range .Messages }}<{{ .Role }}>{{ .Content }}{{ end }}<assistant>",
    ]
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    system=st.none() | TEXT,
    parameters=PARAMETERS,
    messages=st.lists(st.tuples(st.sampled_from(["user", "assistant", "system"]), TEXT), max_size=3),
    licenses=st.lists(TEXT, max_size=2),
    template=TEMPLATES,
)
def test_generated_modelfiles_round_trip_through_show_modelfile(
    engine: Engine,
    weights: dict[str, Path],
    tmp_path: Path,
    system: str | None,
    parameters: dict[str, object],
    messages: list[tuple[str, str]],
    licenses: list[str],
    template: str | None,
) -> None:
    from engine.ingest.modelfile import Modelfile, format_modelfile

    text = format_modelfile(
        Modelfile(
            from_=str(weights["q8"]),
            template=template,
            system=system,
            parameters=parameters,
            messages=tuple(messages),
            license=tuple(licenses),
        )
    )
    first = engine.create("gen", text, base_dir=tmp_path)
    again = engine.create("gen2", engine.modelfile("gen"), base_dir=tmp_path)
    assert comparable(again) == comparable(first)
    assert first.config.system == system and first.config.messages == tuple(messages)


def test_texts_that_no_file_can_hold_are_refused(
    engine: Engine, weights: dict[str, Path], tmp_path: Path
) -> None:
    from engine import CreateSpec

    for spec in (
        CreateSpec(base_path=weights["q8"], system="\ud800"),
        CreateSpec(base_path=weights["q8"], messages=(("user", "a\udfffb"),)),
        CreateSpec(base_path=weights["q8"], parameters={"stop": ["\ud800"]}),
    ):
        with pytest.raises(InvalidInput, match="not valid Unicode text"):
            engine.create("x", spec)
    assert engine.list_models() == []


def test_a_context_beyond_what_the_model_was_trained_for_is_capped(
    engine: Engine, weights: dict[str, Path], tmp_path: Path
) -> None:
    engine.create("t", f"FROM {weights['q8']}\n", base_dir=tmp_path)
    events = list(engine.generate("t", "hi", options={"num_ctx": 10**9, "num_predict": 2}))
    assert isinstance(events[-1], Done)
    assert engine.loaded()[0].context <= engine.resolve("t").context_length
