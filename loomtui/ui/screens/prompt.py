"""Prompts: a line of text, a block of text (multi-line, no escape language), a choice.

Every string a prompt shows that came from a file or a model is passed as plain
:class:`~textual.content.Content` (never parsed as markup) with controls made visible.
"""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Input, Label, Static, TextArea

from loomtui.core.text import terminal_safe


def plain(text: str) -> Content:
    """Untrusted text for a widget: no markup, controls made visible."""
    return Content(terminal_safe(text))


class LinePrompt(ModalScreen[str | None]):
    """One line of input (a file name, a note); enter submits, escape cancels (None)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str = "", placeholder: str = "",
                 hint: str = "enter: OK · esc: cancel") -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.placeholder = placeholder
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            box.border_title = plain(self.title_text)
            box.border_subtitle = self.hint
            yield Input(self.value, placeholder=self.placeholder, id="prompt-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class TextPrompt(ModalScreen[str | None]):
    """A block of text taken exactly as typed or pasted (newlines, backslashes and all);
    ctrl+s or F2 applies, escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s,f2", "submit", "Apply", priority=True),
    ]

    def __init__(self, title: str, value: str = "", hint: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.hint = hint or "ctrl+s / F2: apply · esc: cancel"

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog tall") as box:
            box.border_title = plain(self.title_text)
            box.border_subtitle = self.hint
            yield TextArea(self.value, id="prompt-text", soft_wrap=True, language=None)

    def on_mount(self) -> None:
        area = self.query_one(TextArea)
        area.focus()
        area.move_cursor(area.document.end)

    def action_submit(self) -> None:
        self.dismiss(self.query_one(TextArea).text)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PromptScreen(Screen[str | None]):
    """No session yet: the prompt that starts one (multi-line). ctrl+s / F2 starts, escape
    quits (None)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Quit"),
        Binding("ctrl+s,f2", "submit", "Start", priority=True),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-box") as box:
            box.border_title = "New session: the prompt"
            box.border_subtitle = "ctrl+s / F2: start · esc: quit"
            yield Static("Write or paste the text the model continues; enter makes a new line.",
                         id="prompt-help")
            yield TextArea("", id="prompt-text", soft_wrap=True, language=None)
            yield Static("", id="prompt-error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def action_submit(self) -> None:
        text = self.query_one(TextArea).text
        if not text.strip():
            self.query_one("#prompt-error", Static).update("the prompt is empty")
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)


class Choose(ModalScreen[str]):
    """A question with a few answers, each a button and a key; escape answers "cancel"."""

    def __init__(self, title: str, message: str, choices: list[tuple[str, str, str]]) -> None:
        """``choices``: (answer id, key, button label)."""
        super().__init__()
        self.title_text = title
        self.message = message
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            box.border_title = plain(self.title_text)
            yield Label(plain(self.message))
            with Horizontal(classes="buttons"):
                for i, (answer, key, label) in enumerate(self.choices):
                    shown = "esc" if key == "escape" else key
                    yield Button(f"{label} ({shown})", id=f"choice-{answer}",
                                 variant="primary" if i == 0 else "default")

    def on_key(self, event: events.Key) -> None:
        keys = {key: answer for answer, key, _ in self.choices}
        keys["escape"] = "cancel"
        if event.key in keys:
            event.stop()
            self.dismiss(keys[event.key])

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss((event.button.id or "choice-cancel").removeprefix("choice-"))



def confirm_quit(what: str) -> Choose:
    """Unsaved changes: answers "save", "discard" or "cancel"."""
    return Choose("Unsaved changes", f"{what} has unsaved changes.",
                  [("save", "s", "Save and quit"), ("discard", "d", "Quit without saving"),
                   ("cancel", "escape", "Cancel")])
