"""Searching Hugging Face: engine.ingest.hub.search against the fake Hub, and the pull dialog's search."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import Engine, HubRepo, HubUnreachable, InvalidInput
from tests.support.chat_app import sync, until
from tests.support.fake_hub import FakeHub
from tests.test_tui_app import files, make_app, settle, table_keys  # noqa: F401 - fixtures

HOSTILE_REPO = "acme/Evil-GGUF"


@pytest.fixture
def hub(files: dict[str, Path]):  # noqa: F811 - the fixture from test_tui_app, used here
    with FakeHub() as fake, fake.patch_endpoint():
        fake.add_repo(
            "acme/Tiny-GGUF",
            {"Tiny-Q8_0.gguf": files["Q8_0"], "Tiny-Q4_0.gguf": files["Q4_0"]},
            downloads=120,
            likes=3,
            last_modified="2025-06-01T10:00:00.000Z",
        )
        fake.add_repo("acme/Evil-GGUF", {"Evil-Q8_0.gguf": files["hostile"]}, downloads=5000, gated=True)
        fake.add_repo("other/tiny-notes", {"README.md": b"# not a model\n"}, downloads=999_999)
        fake.add_repo("bob/TinyLlama-GGUF", {"TinyLlama-Q8_0.gguf": files["Q8_0"]}, downloads=45_000)
        yield fake


@pytest.fixture
def engine(hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from tests.test_tui_app import CPU_BOX

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    engine = Engine(machine=lambda: CPU_BOX)
    yield engine
    engine.close()


# -- engine.ingest.hub.search_models ---------------------------------------------------------


def test_search_finds_gguf_repos_by_name_most_downloaded_first(engine: Engine, hub: FakeHub) -> None:
    found = engine.search("tiny")
    assert [r.repo for r in found] == ["bob/TinyLlama-GGUF", "acme/Tiny-GGUF"]  # not the repo without GGUF
    assert found[1] == HubRepo("acme/Tiny-GGUF", 120, 3, "2025-06-01T10:00:00.000Z", False)
    assert engine.search("evil")[0].gated
    assert ("GET", "/api/models") in hub.requests


def test_search_limit_and_no_match(engine: Engine) -> None:
    assert [r.repo for r in engine.search("GGUF", limit=1)] == ["bob/TinyLlama-GGUF"]
    assert engine.search("no-such-model") == []


@pytest.mark.parametrize("query", ["", "   ", "a\nb", "x" * 201])
def test_search_refuses_an_empty_or_odd_query(engine: Engine, query: str) -> None:
    with pytest.raises(InvalidInput):
        engine.search(query)


def test_search_with_the_hub_down_is_one_line(engine: Engine, hub: FakeHub) -> None:
    hub.fault("*", "refuse")
    with pytest.raises(HubUnreachable) as caught:
        engine.search("tiny")
    assert "cannot reach Hugging Face" in str(caught.value) and "\n" not in str(caught.value)


def test_search_maps_an_error_answer_and_a_non_api_answer(engine: Engine, hub: FakeHub) -> None:
    hub.fault("*", "status", code=503, times=1)
    with pytest.raises(HubUnreachable, match="answered 503"):
        engine.search("tiny")
    hub.fault("*", "answer", body=b"<html>captive portal</html>", times=1)
    with pytest.raises(HubUnreachable, match="not the Hugging Face API"):
        engine.search("tiny")


def test_a_refused_token_says_check_hf_token(engine: Engine, hub: FakeHub) -> None:
    from engine import AccessDenied

    hub.fault("*", "status", code=401, message="Invalid credentials in Authorization header", times=1)
    with pytest.raises(AccessDenied) as caught:
        engine.search("tiny")
    assert str(caught.value) == (
        f"Hugging Face at {hub.url} refused the search (401) "
        "(Invalid credentials in Authorization header): check HF_TOKEN"
    )


def test_search_skips_results_that_are_not_repo_names(engine: Engine, hub: FakeHub) -> None:
    body = b'[{"id": "../../etc", "downloads": 9}, {"id": "ok/Fine-GGUF", "downloads": "lots"}, 7]'
    hub.fault("*", "answer", body=body, content_type="application/json", times=1)
    assert engine.search("x") == [HubRepo("ok/Fine-GGUF", 0, 0, None, False)]


# -- the pull dialog ------------------------------------------------------------------


async def open_pull(app, pilot, text: str):
    from tui.screens.pull import PullScreen

    await settle(app, pilot)
    app.push_screen(PullScreen(app.engine))  # as the Models tab's p does
    await pilot.pause()
    assert isinstance(app.screen, PullScreen)
    app.screen.query_one("#reference").value = text
    return app.screen


@sync
async def test_words_search_the_hub_and_enter_goes_to_the_variants(engine: Engine) -> None:
    from textual.widgets import DataTable

    app = make_app(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_pull(app, pilot, "tiny")
        await pilot.press("enter")
        await until(pilot, lambda: screen.stage == "results")
        results = screen.query_one("#results", DataTable)
        assert table_keys(app.screen, "#results") == ["bob/TinyLlama-GGUF", "acme/Tiny-GGUF"]
        row = [str(c) for c in results.get_row("acme/Tiny-GGUF")]
        assert row[:4] == ["acme/Tiny-GGUF", "120", "3", "2025-06-01"]
        assert str(results.get_row("bob/TinyLlama-GGUF")[1]) == "45.0k"
        await pilot.press("down", "enter")
        await until(pilot, lambda: screen.stage == "variants")
        assert screen.reference == "hf.co/acme/Tiny-GGUF"
        variants = screen.query_one("#variants", DataTable)
        keys = table_keys(app.screen, "#variants")
        assert set(keys) == {"Q8_0", "Q4_0"}
        recommended = next(v.quant for v in engine.variants("acme/Tiny-GGUF") if v.recommended)
        assert keys[variants.cursor_row] == recommended
        assert not screen.query_one("#results").display


@sync
async def test_ctrl_s_searches_even_a_reference_and_esc_goes_back(engine: Engine) -> None:
    app = make_app(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_pull(app, pilot, "acme/")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: screen.stage == "results")
        assert table_keys(app.screen, "#results") == ["acme/Evil-GGUF", "acme/Tiny-GGUF"]
        await pilot.press("escape")
        await pilot.pause()
        assert (
            screen.stage == "reference" and app.screen is screen and not screen.query_one("#results").display
        )


@sync
async def test_hostile_search_results_are_shown_as_text(engine: Engine, hub: FakeHub) -> None:
    from textual.widgets import DataTable

    body = b'[{"id": "acme/Evil-GGUF", "downloads": 1, "lastModified": "[b]x\\u001b]0;p\\u0007"}]'
    hub.fault("*", "answer", body=body, content_type="application/json", times=1)
    app = make_app(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_pull(app, pilot, "evil")
        await pilot.press("enter")
        await until(pilot, lambda: screen.stage == "results")
        updated = str(screen.query_one("#results", DataTable).get_row("acme/Evil-GGUF")[3])
        assert "\x1b" not in updated and "\x07" not in updated and updated.startswith("[b]x")


@sync
async def test_a_search_with_the_hub_down_shows_the_error_in_the_dialog(engine: Engine, hub: FakeHub) -> None:
    from textual.widgets import Static

    from tui.screens.pull import PullScreen

    hub.fault("*", "refuse")
    app = make_app(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_pull(app, pilot, "tiny")
        await pilot.press("enter")
        await until(pilot, lambda: screen.stage == "reference" and screen.query_one("#error").display)
        shown = str(screen.query_one("#error", Static).render())
        assert shown.startswith("search failed: cannot reach Hugging Face") and hub.url in shown
        assert isinstance(app.screen, PullScreen)  # still open: fix the words or try again
        hub.clear_faults()
        await pilot.press("enter")
        await until(pilot, lambda: screen.stage == "results")
        assert not screen.query_one("#error").display


@sync
async def test_a_search_without_results_says_so(engine: Engine) -> None:
    from textual.widgets import Static

    app = make_app(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_pull(app, pilot, "nothing-like-it")
        await pilot.press("enter")
        await until(pilot, lambda: screen.query_one("#error").display)
        assert "no GGUF repository" in str(screen.query_one("#error", Static).render())
        assert screen.stage == "reference"


# -- the pull dialog's errors: one place, the dialog's error line -------------------------------


def error_notes(app) -> list[str]:
    return [n.message for n in app._notifications if n.severity == "error"]


@sync
async def test_a_reference_that_is_not_there_shows_its_error_in_the_dialog(engine: Engine) -> None:
    from textual.widgets import Static

    from tui.screens.pull import PullScreen

    app = make_app(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_pull(app, pilot, "acme/Missing-GGUF")
        await pilot.press("enter")
        await until(pilot, lambda: screen.stage == "reference" and screen.query_one("#error").display)
        assert "acme/Missing-GGUF" in str(screen.query_one("#error", Static).render())
        await pilot.pause()
        assert isinstance(app.screen, PullScreen) and error_notes(app) == []  # nothing behind the dialog


@sync
async def test_a_download_that_fails_shows_its_error_in_the_dialog_and_enter_tries_again(
    engine: Engine, hub: FakeHub
) -> None:
    from textual.widgets import Static

    from tui.screens.pull import PullScreen

    hub.fault("Tiny-Q8_0.gguf", "status", code=403)
    app = make_app(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_pull(app, pilot, "acme/Tiny-GGUF")
        await pilot.press("enter")
        await until(pilot, lambda: screen.stage == "variants")
        screen.query_one("#variants").move_cursor(row=table_keys(screen, "#variants").index("Q8_0"))
        await pilot.press("enter")
        await until(pilot, lambda: screen.stage == "reference" and screen.query_one("#error").display)
        assert str(screen.query_one("#error", Static).render()).startswith("pull failed: ")
        assert isinstance(app.screen, PullScreen) and not screen.query_one("#reference").disabled
        await pilot.pause()
        assert error_notes(app) == []
        hub.clear_faults()
        await pilot.press("enter")  # the same reference again: its variants, then the download
        await until(pilot, lambda: screen.stage == "variants")
        screen.query_one("#variants").move_cursor(row=table_keys(screen, "#variants").index("Q8_0"))
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, PullScreen))
        assert [m.reference for m in engine.list_models()] == ["hf.co/acme/Tiny-GGUF:Q8_0"]
