"""Manifest schema versions: one test per migration step, and what a newer schema means."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from engine.store.manifest import DraftModel, Manifest, ManifestError, ModelConfig, ModelFile
from engine.store.migrations import SCHEMA, STEPS, BadSchema, NewerSchema, upgrade
from engine.store.model_store import Store

# A manifest exactly as llamadeck 0.1 (schema 1) wrote it.
V1 = {
    "schema": 1,
    "name": "hf.co/acme/Tiny-GGUF",
    "tag": "Q8_0",
    "source": "hf.co/acme/Tiny-GGUF",
    "revision": "0" * 40,
    "files": [{"path": "Tiny-Q8_0.gguf", "sha256": "a" * 64, "size": 170_000}],
    "quant": "Q8_0",
    "architecture": "llama",
    "parameters": 98_000,
    "context_length": 2048,
    "created": "2026-11-01T12:00:00+00:00",
    "shape": {
        "n_layers": 2,
        "n_embd": 64,
        "n_head": 4,
        "n_kv_heads": 2,
        "head_dim": 16,
        "context_length": 2048,
        "n_vocab": 512,
    },
    "size_label": "0.1M",
    "template": "{{ messages }}",
    "template_source": "gguf",
    "license": "mit",
    "extra": {},
}


def test_every_version_below_the_current_has_a_step() -> None:
    assert sorted(STEPS) == list(range(1, SCHEMA))


def test_v1_to_v2_moves_the_template_into_the_config() -> None:
    v2 = STEPS[1](dict(V1))
    assert v2["config"] == {
        "template": "{{ messages }}",
        "template_source": "gguf",
        "system": None,
        "parameters": {},
        "parent": None,
    }
    assert "template" not in v2 and "extra" not in v2


def test_a_v1_manifest_reads_as_the_current_one() -> None:
    manifest = Manifest.from_json(json.dumps(V1).encode())
    assert manifest.config == ModelConfig(template="{{ messages }}", template_source="gguf")
    assert manifest.template == "{{ messages }}" and manifest.shape is not None
    again = json.loads(manifest.to_json())
    assert again["schema"] == SCHEMA and Manifest.from_json(manifest.to_json()) == manifest


def test_a_newer_schema_is_refused_as_newer() -> None:
    with pytest.raises(NewerSchema):
        upgrade({**V1, "schema": SCHEMA + 1})
    with pytest.raises(ManifestError, match="newer llamadeck") as caught:
        Manifest.from_json(json.dumps({**V1, "schema": SCHEMA + 1}).encode())
    assert caught.value.newer


@pytest.mark.parametrize("schema", [None, 0, -1, "1", 1.0, True])
def test_a_missing_or_odd_schema_is_damage(schema: object) -> None:
    with pytest.raises(BadSchema):
        upgrade({**V1, "schema": schema})


def test_an_old_manifest_is_saved_in_the_current_form(tmp_path: Path) -> None:
    store = Store(tmp_path / "home")
    store.ensure()
    manifest = Manifest.from_json(json.dumps(V1).encode())
    store.save(manifest)  # save checks the new form reads back, as load will
    assert json.loads(store.manifest_path(manifest.ref).read_bytes())["schema"] == SCHEMA
    assert store.load(manifest.ref) == manifest


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"template": "x" * ((1 << 20) + 1)}, "template is longer"),  # checked after the move into config
        ({"parameters": 10**400}, "parameters must be a whole number"),
        ({"shape": {**V1["shape"], "n_layers": 2**64}}, "n_layers must be a whole number"),  # type: ignore[dict-item]
    ],
)
def test_old_manifest_with_hostile_fields_is_damage_not_a_crash(change: dict[str, object], why: str) -> None:
    with pytest.raises(ManifestError, match=why):
        Manifest.from_json(json.dumps({**V1, **change}).encode())


def test_v3_to_v4_adds_an_empty_draft() -> None:
    v3 = STEPS[2](STEPS[1](dict(V1)))
    v4 = STEPS[3]({**v3, "schema": 3})
    assert v4["config"]["draft"] is None and "draft" not in v3["config"]
    assert Manifest.from_json(json.dumps({**v3, "schema": 3}).encode()).config.draft is None


def _with_draft() -> Manifest:
    manifest = Manifest.from_json(json.dumps(V1).encode())
    draft = DraftModel((ModelFile("Small-Q8_0.gguf", "b" * 64, 1000),), "small:latest", "llama", 500, "Q8_0")
    return replace(manifest, config=replace(manifest.config, draft=draft))


def test_a_manifest_with_a_draft_reads_back_and_names_its_blobs() -> None:
    manifest = _with_draft()
    data = json.loads(manifest.to_json())
    assert data["schema"] == SCHEMA == 5 and data["config"]["draft"]["source"] == "small:latest"
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert [f.sha256 for f in manifest.blob_files] == ["a" * 64, "b" * 64]


def test_a_v4_manifest_is_newer_to_a_v3_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """A v3 llamadeck (this code reading up to schema 3) refuses a drafted model as newer, in one line:
    it never runs it without its draft, and its GC leaves the draft's blobs alone."""
    from engine.store import manifest as manifest_module
    from engine.store import migrations

    raw = _with_draft().to_json()
    monkeypatch.setattr(migrations, "SCHEMA", 3)
    monkeypatch.setattr(manifest_module, "SCHEMA", 3)
    with pytest.raises(ManifestError) as refused:
        Manifest.from_json(raw)
    assert refused.value.newer and str(refused.value) == (
        f"written by a newer llamadeck (manifest schema {SCHEMA}, this one reads up to 3): "
        "upgrade llamadeck to use it"
    )


@pytest.mark.parametrize(
    ("draft", "why"),
    [
        ("small", "config.draft must be an object"),
        ({"files": [], "source": "s", "architecture": "llama", "parameters": 1}, "non-empty list"),
        ({"files": [{"path": "x", "sha256": "z", "size": 1}], "source": "s", "architecture": "l",
          "parameters": 1}, "no valid sha256"),
        ({"files": [{"path": "x", "sha256": "b" * 64, "size": 1}], "source": "", "architecture": "l",
          "parameters": 1}, "source must be a non-empty string"),
    ],
)  # fmt: skip
def test_a_damaged_draft_is_damage_not_a_crash(draft: object, why: str) -> None:
    data = json.loads(_with_draft().to_json())
    data["config"]["draft"] = draft
    with pytest.raises(ManifestError, match=why):
        Manifest.from_json(json.dumps(data).encode())


def test_a_v4_manifest_with_a_draft_migrates_to_v5() -> None:
    data = json.loads(_with_draft().to_json())
    data["schema"] = 4
    del data["config"]["projector"]
    manifest = Manifest.from_json(json.dumps(data).encode())
    assert manifest == _with_draft() and manifest.config.projector is None
    assert json.loads(manifest.to_json())["schema"] == 5


def _with_projector() -> Manifest:
    manifest = _with_draft()
    projector = ModelFile("mmproj-F16.gguf", "c" * 64, 200_000)
    return replace(manifest, config=replace(manifest.config, projector=projector))


def test_every_blob_is_listed_once_in_one_place() -> None:
    manifest = _with_projector()
    assert [f.sha256 for f in manifest.blob_files] == ["a" * 64, "b" * 64, "c" * 64]
    assert manifest.load_id == f"{'a' * 12}+draft-{'b' * 12}+mmproj-{'c' * 12}"


def test_a_v5_manifest_is_newer_to_a_v4_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """A v4 llamadeck (drafts, no projectors) refuses a model with a projector as newer: it never runs it
    blind, and its GC leaves the projector's blob alone."""
    from engine.store import manifest as manifest_module
    from engine.store import migrations

    raw = _with_projector().to_json()
    monkeypatch.setattr(migrations, "SCHEMA", 4)
    monkeypatch.setattr(manifest_module, "SCHEMA", 4)
    with pytest.raises(ManifestError) as refused:
        Manifest.from_json(raw)
    assert refused.value.newer and str(refused.value) == (
        "written by a newer llamadeck (manifest schema 5, this one reads up to 4): "
        "upgrade llamadeck to use it"
    )


def test_v4_to_v5_adds_no_projector() -> None:
    v4 = STEPS[3](STEPS[2](STEPS[1](dict(V1))))
    v5 = STEPS[4](v4)
    assert v5["config"]["projector"] is None and "projector" not in v4["config"]
    assert v5["config"]["adapters"] == [] and v5["config"]["draft"] is None
    assert Manifest.from_json(json.dumps({**V1}).encode()).config.projector is None


def test_a_projector_round_trips_and_counts_as_a_blob() -> None:
    projector = {"path": "mmproj-F16.gguf", "sha256": "b" * 64, "size": 200_000}
    data = {**STEPS[4](STEPS[3](STEPS[2](STEPS[1](dict(V1))))), "schema": 5}
    data["config"] = {**data["config"], "projector": projector}
    manifest = Manifest.from_json(json.dumps(data).encode())
    assert manifest.config.projector is not None and manifest.config.projector.sha256 == "b" * 64
    assert [f.sha256 for f in manifest.blob_files] == ["a" * 64, "b" * 64]
    assert manifest.load_id != replace(manifest, config=replace(manifest.config, projector=None)).load_id
    assert Manifest.from_json(manifest.to_json()) == manifest


@pytest.mark.parametrize("projector", [[], "b" * 64, {"path": "x", "sha256": "nope", "size": 1}])
def test_a_bad_projector_entry_is_damage(projector: object) -> None:
    data = {**STEPS[4](STEPS[3](STEPS[2](STEPS[1](dict(V1))))), "schema": 5}
    data["config"] = {**data["config"], "projector": projector}
    with pytest.raises(ManifestError):
        Manifest.from_json(json.dumps(data).encode())
