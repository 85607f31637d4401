"""engine.ingest.hub.listing and .header against the fake Hub: variants, tags, headers, bad answers."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest

from engine.errors import (
    GatedRepo,
    HubUnreachable,
    IntegrityError,
    RepoNotFound,
)
from engine.ingest.hub.header import read_remote_info
from engine.ingest.hub.listing import fetch_listing, quant_tag
from engine.store.refs import HubRef
from tests.support.fake_hub import FakeHub
from tests.support.hub_checks import MIB, REPO, one_line, remote, served
from tests.support.tiny_gguf import write_tiny_gguf


@pytest.fixture
def fake() -> Iterator[FakeHub]:
    with FakeHub() as server, server.patch_endpoint():
        yield server


BIG_VOCAB = 150_000


@pytest.fixture(scope="module")
def big_vocab_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GGUF whose header (150k tokens, ~4 MB) is far bigger than the first 1 MiB read; 8 MiB of data."""
    path = tmp_path_factory.mktemp("big-vocab") / "Big-Vocab-Q8_0.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("Big Vocab")
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_Q8_0))
    writer.add_context_length(2048)
    writer.add_embedding_length(64)
    writer.add_block_count(1)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    writer.add_tokenizer_model("llama")
    writer.add_token_list([f"token-{i:08d}" for i in range(BIG_VOCAB)])
    writer.add_token_scores([0.0] * BIG_VOCAB)
    writer.add_token_types([int(gguf.TokenType.NORMAL)] * BIG_VOCAB)
    writer.add_tensor("token_embd.weight", np.zeros((8, 64), dtype=np.float32))
    writer.add_tensor("llamadeck.pad", np.zeros(8 * MIB, dtype=np.int8))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# -- the remote header ---------------------------------------------------------------


def test_a_header_bigger_than_the_first_read_is_read_into_memory(
    fake: FakeHub, big_vocab_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty_tmp = tmp_path / "tmpdir"
    empty_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(empty_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile caches the directory: make it look again
    commit = fake.add_repo(REPO, {big_vocab_gguf.name: big_vocab_gguf})
    data = big_vocab_gguf.read_bytes()

    info = read_remote_info(REPO, commit, remote(big_vocab_gguf.name, data))

    assert info.shape.n_vocab == BIG_VOCAB and info.header_end > 3 * MIB
    assert list(empty_tmp.iterdir()) == []
    gets = [r for r in fake.requests if r == ("GET", f"/{REPO}/resolve/{commit}/{big_vocab_gguf.name}")]
    assert len(gets) >= 2  # the first 1 MiB was not enough: it grew
    read = served(fake, big_vocab_gguf.name)
    assert read < info.header_end * 1.3 < len(data), f"{read} bytes read for a {info.header_end}-byte header"


def test_a_file_that_is_not_gguf_is_refused_after_one_small_read(fake: FakeHub) -> None:
    data = os.urandom(3 * MIB)
    commit = fake.add_repo(REPO, {"noise.gguf": data})
    with pytest.raises(IntegrityError, match=r"noise\.gguf in acme/Hub-GGUF is not a GGUF file"):
        read_remote_info(REPO, commit, remote("noise.gguf", data))
    assert served(fake, "noise.gguf") <= MIB


def test_a_small_file_is_read_whole_in_one_request(fake: FakeHub, tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    data = path.read_bytes()
    commit = fake.add_repo(REPO, {path.name: path})
    info = read_remote_info(REPO, commit, remote(path.name, data))
    assert info.architecture == "llama" and info.shape.n_vocab == 512
    assert served(fake, path.name) == len(data) < MIB


def test_gated_and_missing_repos_name_the_configured_endpoint(fake: FakeHub, tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    data = path.read_bytes()
    commit = fake.add_repo("acme/Gated-GGUF", {path.name: path}, gated=True)
    with pytest.raises(GatedRepo) as gated:
        read_remote_info("acme/Gated-GGUF", commit, remote(path.name, data))
    assert str(gated.value) == (
        f"acme/Gated-GGUF is gated: accept its licence on {fake.url}/acme/Gated-GGUF and set HF_TOKEN"
    )
    with pytest.raises(RepoNotFound) as missing:
        fetch_listing("acme/Nope")
    assert f"on Hugging Face at {fake.url}" in str(missing.value)
    assert "huggingface.co" not in str(gated.value) + str(missing.value)


# -- a server that is not the Hub ----------------------------------------------------


def test_html_everywhere_is_not_the_hub(
    fake: FakeHub, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    fake.add_repo(REPO, {path.name: path})
    fake.fault("*", "answer", body=b"<html><body>Welcome to the captive portal</body></html>")
    with pytest.raises(HubUnreachable) as caught:
        fetch_listing(REPO)
    message = str(caught.value)
    not_the_api = "answered with something that is not the Hugging Face API"
    assert message.startswith(f"the server at {fake.url} {not_the_api} (JSONDecodeError: "), message
    assert message.endswith("for acme/Hub-GGUF; check HF_ENDPOINT and any proxy; nothing changed")
    assert capfd.readouterr() == ("", "")


def _sibling(info: dict, **changes: object) -> dict:
    gguf_entry = next(s for s in info["siblings"] if s["rfilename"].endswith(".gguf"))
    for key, value in changes.items():
        if key == "lfs_size":
            gguf_entry["lfs"]["size"] = value
        elif key == "no_pointer_size":
            del gguf_entry["lfs"]["pointerSize"]
        else:
            gguf_entry[key] = value
    return info


@pytest.mark.parametrize(
    ("rewrite", "why"),
    [
        (lambda info: [info], "TypeError: "),
        (lambda info: b"{not json", "JSONDecodeError: "),
        (lambda info: b"\xff\xfe garbage", "JSONDecodeError: "),
        (lambda info: b"[" * 100_000 + b"]" * 100_000, "RecursionError: "),
        (lambda info: {k: v for k, v in info.items() if k != "id"}, "no 'id' in it"),
        (lambda info: _sibling(info, no_pointer_size=True), "no 'pointerSize' in it"),
        (lambda info: _sibling(info, lfs_size="big"), "the size of Tiny-Q8_0.gguf is not a byte count"),
        (lambda info: _sibling(info, lfs_size=-1), "the size of Tiny-Q8_0.gguf is not a byte count"),
        (lambda info: _sibling(info, lfs_size=True), "the size of Tiny-Q8_0.gguf is not a byte count"),
        (lambda info: _sibling(info, rfilename=7), "a file without a name"),
        (lambda info: info | {"siblings": "Tiny-Q8_0.gguf"}, "TypeError: "),
        (lambda info: info | {"siblings": {"rfilename": "x"}}, "TypeError: "),
        (lambda info: info | {"sha": 12345}, "its commit is not a git sha"),
        (lambda info: info | {"sha": "../../etc"}, "its commit is not a git sha"),
        (lambda info: info | {"lastModified": "yesterday"}, "ValueError: "),
    ],
)
def test_malformed_api_answers_are_not_the_hub(
    fake: FakeHub, tmp_path: Path, rewrite: Callable[[dict], object], why: str
) -> None:
    path = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    fake.add_repo(REPO, {path.name: path, "README.md": b"hi"})
    fake.rewrite_info(REPO, rewrite)
    with pytest.raises(HubUnreachable) as caught:
        fetch_listing(REPO)
    message = str(caught.value)
    assert f"answered with something that is not the Hugging Face API ({why}" in message, message
    assert one_line(message) and len(message) < 500


@pytest.mark.parametrize(
    ("card", "license_"),
    [
        ({"license": "mit"}, "mit"),
        ({"license": ["mit", "apache-2.0"]}, "mit, apache-2.0"),
        ({"license": ["mit", 3]}, None),
        ({"license": {"name": "mit"}}, None),
        ({"license": 7}, None),
        ({"license": ""}, None),
        ({"license": "x" * 70_000}, "x" * 65_536),
    ],
)
def test_the_card_license_is_text_or_nothing(
    fake: FakeHub, tmp_path: Path, card: dict, license_: str | None
) -> None:
    path = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    fake.add_repo(REPO, {path.name: path}, card_data=card)
    assert fetch_listing(REPO).license == license_


def test_a_card_that_is_not_an_object_has_no_license(fake: FakeHub, tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    fake.add_repo(REPO, {path.name: path})
    fake.rewrite_info(REPO, lambda info: info | {"cardData": "license: mit"})
    assert fetch_listing(REPO).license is None


# -- quant tags ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("Q4_K_M", "Q4_K_M"),
        ("UD-Q4_K_XL", "UD-Q4_K_XL"),
        ("my.model.v2", "MY_MODEL_V2"),
        ("Q4_AAA_BBB_CCC_DDD_EEE_FFF_GGG_HHH_III_JJJ", "Q4_AAA_BBB_CCC_DDD_EEE_FFF_GGG_HHH_III_J"),
        ("__-x", "X"),
        ("...", "GGUF"),
        ("", "GGUF"),
        ("модель", "GGUF"),
        ("latest", "GGUF"),
        ("a\x1b[2Jb", "A_2JB"),
        ("x" * 300, "X" * 40),
    ],
)
def test_quant_tags_are_valid_references(text: str, tag: str) -> None:
    assert quant_tag(text) == tag
    assert HubRef("acme/Hub-GGUF", tag).quant == tag  # typed after the colon, it names this variant


def test_colliding_tags_get_a_number_that_still_fits(fake: FakeHub, tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    long = "Model-Q4_AAA_BBB_CCC_DDD_EEE_FFF_GGG_HHH_III_JJJ"
    names = [f"{long}.gguf", f"a/{long}.gguf", f"b/{long}.gguf", "a/Tiny-Q8_0.gguf", "b/Tiny-Q8_0.gguf"]
    fake.add_repo(REPO, dict.fromkeys(names, path))
    tags = sorted(v.quant for v in fetch_listing(REPO).variants)
    assert tags == sorted(
        [
            "Q4_AAA_BBB_CCC_DDD_EEE_FFF_GGG_HHH_III_J",
            "Q4_AAA_BBB_CCC_DDD_EEE_FFF_GGG_HHH_III-2",
            "Q4_AAA_BBB_CCC_DDD_EEE_FFF_GGG_HHH_III-3",
            "Q8_0",
            "Q8_0-2",
        ]
    )
    assert all(HubRef(REPO, tag).quant == tag for tag in tags)
