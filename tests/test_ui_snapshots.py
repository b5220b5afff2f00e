"""Snapshot tests: the main screen, the distribution panel, help and an error notification.

The app runs on a session built from fixed data (no model, no clock, no sampling), so every
screenshot is the same on every run. Regenerate with ``pytest --snapshot-update``.
"""

from __future__ import annotations

from loomtui.ui.app import LoomApp
from loomtui.ui.demo import demo_tree

SIZE = (120, 34)


def make_app() -> LoomApp:
    return LoomApp(tree=demo_tree(), autosave=False)


def test_main_screen(snap_compare):
    assert snap_compare(make_app(), terminal_size=SIZE)


def test_distribution_panel_focused(snap_compare):
    assert snap_compare(make_app(), press=["tab", "down", "down"], terminal_size=SIZE)


def test_alternatives_at_token_cursor(snap_compare):
    assert snap_compare(make_app(), press=["left_square_bracket"] * 3, terminal_size=SIZE)


def test_help_screen(snap_compare):
    assert snap_compare(make_app(), press=["f1"], terminal_size=SIZE)


def test_error_notification(snap_compare):
    assert snap_compare(make_app(), press=["e"], terminal_size=SIZE)


def test_sampler_settings_error(snap_compare):
    async def bad_value(pilot) -> None:
        await pilot.press("s")
        pilot.app.screen.query_one("#f-temperature").value = "-1"
        await pilot.press("ctrl+s")
        await pilot.pause()

    assert snap_compare(make_app(), run_before=bad_value, terminal_size=SIZE)


def test_main_screen_80x24(snap_compare):
    assert snap_compare(make_app(), terminal_size=(80, 24))


def test_sampler_dialog_80x24(snap_compare):
    assert snap_compare(make_app(), press=["s"], terminal_size=(80, 24))


def test_prompt_screen(snap_compare):
    async def type_prompt(pilot) -> None:
        pilot.app.screen.query_one("TextArea").text = "ROMEO:\nBut, soft! what light"
        await pilot.pause()

    assert snap_compare(LoomApp(autosave=False), run_before=type_prompt, terminal_size=SIZE)
