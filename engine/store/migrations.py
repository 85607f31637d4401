"""Versions of the manifest format and the steps between them.

Every manifest carries ``"schema": N``. Reading applies the steps from its
version up to ``SCHEMA`` in memory (the file is rewritten in the new form the
next time the model is saved), so an old store keeps working without a
conversion run. A version above ``SCHEMA`` was written by a newer llamadeck:
it is reported as such, never as damaged, and never removed or collected.

To change the format: bump ``SCHEMA``, add ``_vN_to_vN+1`` below and register
it in ``STEPS``, and add its test to ``tests/test_migrations.py`` (after
oterm's ``store/upgrades``: one function and one test per version).

A bound added later is not a step: a manifest saved before it is read within
it (``engine.store.manifest``: more than ``MAX_TURNS`` MESSAGE turns keep the
last ones), and stored so the next time the model is saved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SCHEMA = 5

Data = dict[str, Any]


class NewerSchema(Exception):
    """The manifest's schema is newer than this llamadeck knows."""

    def __init__(self, version: int) -> None:
        super().__init__(f"schema {version}")
        self.version = version


class BadSchema(Exception):
    """The manifest has no usable schema number."""


def _v1_to_v2(data: Data) -> Data:
    """v2 gathers what a Modelfile may set (template, system, parameters, parent) into ``config``."""
    data = dict(data)
    data.pop("extra", None)  # v1's free-form strings: never written with content
    data["config"] = {
        "template": data.pop("template", None),
        "template_source": data.pop("template_source", None),
        "system": None,
        "parameters": {},
        "parent": None,
    }
    return data


def _v2_to_v3(data: Data) -> Data:
    """v3 adds ``config.adapters`` (LoRA blobs). The bump keeps a v2 llamadeck from reading a v3
    manifest as its own: it would run the model without its adapters, and its GC would delete them."""
    data = dict(data)
    config = data.get("config")
    if isinstance(config, dict):  # anything else is reported as damage by the validation that follows
        data["config"] = {**config, "adapters": config.get("adapters", [])}
    return data


def _v3_to_v4(data: Data) -> Data:
    """v4 adds ``config.draft`` (Modelfile DRAFT: a draft model's blobs). The bump keeps a v3 llamadeck
    from reading a v4 manifest as its own: its GC would delete the draft's blobs, and its ``cp`` drop them."""
    data = dict(data)
    config = data.get("config")
    if isinstance(config, dict):  # anything else is reported as damage by the validation that follows
        data["config"] = {**config, "draft": config.get("draft")}
    return data


def _v4_to_v5(data: Data) -> Data:
    """v5 adds ``config.projector`` (a vision projector blob). The bump keeps a v4 llamadeck from reading
    a v5 manifest as its own: its GC would delete the projector, and it would run the model blind."""
    data = dict(data)
    config = data.get("config")
    if isinstance(config, dict):  # anything else is reported as damage by the validation that follows
        data["config"] = {**config, "projector": config.get("projector")}
    return data


STEPS: dict[int, Callable[[Data], Data]] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4, 4: _v4_to_v5}


def upgrade(data: Data) -> Data:
    """``data`` at schema ``SCHEMA``; raises NewerSchema or BadSchema."""
    version = data.get("schema")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BadSchema(f"no valid schema number ({version!r})")
    if version > SCHEMA:
        raise NewerSchema(version)
    while version < SCHEMA:
        data = STEPS[version](data)
        version += 1
    data["schema"] = SCHEMA
    return data
