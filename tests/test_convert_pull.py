"""``pull hf.co/ORG/REPO`` of a repository with safetensors and no GGUF: downloaded, verified, converted.

Against the loopback fake Hub with the real ``huggingface_hub`` client: the
tiny files are kept in git there (not LFS), so they are checked by their git
blob sha1; a big file would be checked by its LFS sha256.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import Done, Engine, IntegrityError, Machine, NoGGUFInRepo, Progress, Token
from tests.support.fake_hub import FakeHub
from tests.support.hf_tiny import write_tiny_hf

GIB = 1 << 30


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_hf(tmp_path_factory.mktemp("hub") / "Tiny-Qwen2", "qwen2")


@pytest.fixture
def hub(folder: Path):
    with FakeHub() as fake, fake.patch_endpoint():
        files: dict[str, Path | bytes] = {p.name: p for p in folder.iterdir()}
        fake.add_repo("acme/Tiny-Qwen2", {**files, "README.md": b"# tiny\n"}, card_data={"license": "mit"})
        fake.add_repo(
            "acme/Pickled", {"config.json": files["config.json"], "pytorch_model.bin": b"\x80\x04."}
        )
        yield fake


def engine() -> Engine:
    return Engine(machine=lambda: Machine(free_ram=16 * GIB, gpu_free_vram=None))


def test_a_safetensors_repo_is_pulled_as_a_converted_gguf(hub: FakeHub) -> None:
    seen: list[object] = []
    made = engine().pull("hf.co/acme/Tiny-Qwen2", on_event=seen.append)
    assert (made.architecture, made.quant, made.tag, made.license) == ("qwen2", "F16", "F16", "mit")
    assert made.source == "hf.co/acme/Tiny-Qwen2" and made.revision
    assert made.config.template and "<|start|>" in made.config.template
    actions = {e.action for e in seen if isinstance(e, Progress)}
    assert {"downloading", "converting"} <= actions
    events = list(
        engine().chat(made.reference, [{"role": "user", "content": "Hi"}], options={"num_predict": 3})
    )
    assert all(isinstance(e, Token) for e in events[:-1]) and isinstance(events[-1], Done)
    assert not list((engine().home / "partial").glob("create-*"))


def test_a_quant_in_the_reference_is_made_after_the_conversion(hub: FakeHub) -> None:
    made = engine().pull("hf.co/acme/Tiny-Qwen2:Q8_0")
    assert (made.quant, made.tag) == ("Q8_0", "Q8_0")


def test_a_file_that_is_not_what_the_hub_lists_is_refused(hub: FakeHub) -> None:
    hub.fault("tokenizer.json", "corrupt")
    with pytest.raises(IntegrityError, match="tokenizer.json"):
        engine().pull("hf.co/acme/Tiny-Qwen2")
    assert engine().list_models() == []


def test_pickled_weights_are_never_downloaded(hub: FakeHub) -> None:
    with pytest.raises(NoGGUFInRepo, match="pickled PyTorch"):
        engine().pull("hf.co/acme/Pickled")
    assert hub.bytes_served["pytorch_model.bin"] == 0


def test_listing_a_safetensors_repo_says_pull_converts_it(hub: FakeHub) -> None:
    from tests.support.cli import llamadeck

    assert engine().variants("hf.co/acme/Tiny-Qwen2") == []  # the TUI's pull screen pulls at once then
    listed = llamadeck("pull", "--list", "hf.co/acme/Tiny-Qwen2", hub=hub)
    assert listed.returncode == 0 and "pull converts the safetensors weights" in listed.stdout


def test_cli_pull_of_a_safetensors_repo_then_run(hub: FakeHub) -> None:
    from tests.support.cli import assert_one_line_error, llamadeck

    pulled = llamadeck("pull", "hf.co/acme/Tiny-Qwen2", hub=hub)
    assert pulled.returncode == 0, pulled.stderr
    assert "converting Tiny-Qwen2.gguf" in pulled.stderr and "success" in pulled.stderr + pulled.stdout
    ran = llamadeck("run", "hf.co/acme/Tiny-Qwen2:F16", "Hi", "-n", "2", hub=hub)
    assert ran.returncode == 0, ran.stderr
    assert_one_line_error(llamadeck("pull", "hf.co/acme/Pickled", hub=hub), "pickled PyTorch")


def test_the_tui_pull_screen_converts_a_safetensors_repo(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import time

    from tests.support.pilot import settle
    from tui.app import LlamadeckApp
    from tui.screens.pull import PullScreen

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    eng = engine()

    async def drive() -> None:
        app = LlamadeckApp(eng)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            await pilot.press("p")
            await pilot.pause()
            assert isinstance(app.screen, PullScreen)
            await pilot.press(*"acme/Tiny-Qwen2", "enter")  # no variants to choose: it pulls at once
            deadline = time.monotonic() + 60
            while isinstance(app.screen, PullScreen):
                assert time.monotonic() < deadline, "the pull did not finish"
                await pilot.pause(0.05)
            await settle(app, pilot)

    try:
        asyncio.run(asyncio.wait_for(drive(), 120))
        assert [m.reference for m in eng.list_models()] == ["hf.co/acme/Tiny-Qwen2:F16"]
    finally:
        eng.close()


def test_weights_kept_in_lfs_are_checked_by_their_sha256(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support import fake_hub_repos

    monkeypatch.setattr(fake_hub_repos, "LFS_THRESHOLD", 0)  # as on the real Hub: every file in LFS
    with FakeHub() as fake, fake.patch_endpoint():
        fake.add_repo("acme/Lfs", {p.name: p for p in folder.iterdir()})
        shard = sorted(p.name for p in folder.glob("*.safetensors"))[0]
        fake.fault(shard, "corrupt")
        with pytest.raises(IntegrityError, match=f"sha256 mismatch for {shard}"):
            engine().pull("hf.co/acme/Lfs")
        fake.clear_faults()
        assert engine().pull("hf.co/acme/Lfs").architecture == "qwen2"
