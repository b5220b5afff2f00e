"""The predictor chooser (``P``): the loaded predictors, configured engine profiles, the
bundled local models, and a field for an engine URL or a model name.

Dismissed with the loaded predictor's index (switch to it), a name to load (str), or None.
Every string shown is plain :class:`~textual.content.Content` with controls made visible.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from loomtui.core.text import inline
from loomtui.ui.predictors import Entry

PLACEHOLDER = "engine URL (http://host:port/v1[#model]), profile or model"


class PredictorChooser(ModalScreen[int | str | None]):
    """Pick a loaded predictor to switch to, or something to load (enter), esc cancels."""

    DEFAULT_CSS = """
    PredictorChooser { align: center middle; }
    PredictorChooser OptionList { height: auto; max-height: 12; border: none; padding: 0; }
    PredictorChooser Input { margin-top: 1; }
    PredictorChooser #chooser-help { color: $text-muted; height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, entries: list[Entry]) -> None:
        super().__init__()
        self.entries = entries

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide") as box:
            box.border_title = "Predictors"
            box.border_subtitle = "enter: use · tab: type one · esc: cancel"
            yield OptionList(*(self._option(i, e) for i, e in enumerate(self.entries)),
                             id="chooser-list")
            yield Input(placeholder=PLACEHOLDER, id="chooser-input")
            yield Static("Loading runs in the background; the active predictor stays "
                         "until the new one is ready.", id="chooser-help")

    @staticmethod
    def _option(i: int, entry: Entry) -> Option:
        prompt = Content.assemble(
            (inline(entry.text), "bold" if entry.index is not None else ""),
            ("  " + inline(entry.detail), "dim"))
        return Option(prompt, id=f"entry-{i}", disabled=entry.error)

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        if any(not e.error for e in self.entries):
            options.focus()
        else:
            self.query_one(Input).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        entry = self.entries[event.option_index]
        self.dismiss(entry.index if entry.index is not None else entry.name)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if text:
            self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)
