"""Manifest schema versions: one test per migration step, and what a newer schema means."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from engine.store.manifest import Manifest, ManifestError, ModelConfig
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


def test_v3_to_v4_adds_no_projector() -> None:
    v3 = STEPS[2](STEPS[1](dict(V1)))
    v4 = STEPS[3](v3)
    assert v4["config"]["projector"] is None and v4["config"]["adapters"] == []
    assert Manifest.from_json(json.dumps({**V1}).encode()).config.projector is None


def test_a_projector_round_trips_and_counts_as_a_blob() -> None:
    projector = {"path": "mmproj-F16.gguf", "sha256": "b" * 64, "size": 200_000}
    data = {**STEPS[3](STEPS[2](STEPS[1](dict(V1)))), "schema": 4}
    data["config"] = {**data["config"], "projector": projector}
    manifest = Manifest.from_json(json.dumps(data).encode())
    assert manifest.config.projector is not None and manifest.config.projector.sha256 == "b" * 64
    assert [f.sha256 for f in manifest.blobs] == ["a" * 64, "b" * 64]
    assert manifest.load_id != replace(manifest, config=replace(manifest.config, projector=None)).load_id
    assert Manifest.from_json(manifest.to_json()) == manifest


@pytest.mark.parametrize("projector", [[], "b" * 64, {"path": "x", "sha256": "nope", "size": 1}])
def test_a_bad_projector_entry_is_damage(projector: object) -> None:
    data = {**STEPS[3](STEPS[2](STEPS[1](dict(V1)))), "schema": 4}
    data["config"] = {**data["config"], "projector": projector}
    with pytest.raises(ManifestError):
        Manifest.from_json(json.dumps(data).encode())
