"""F1: the keys of the screen under it, on one page. Any of Esc, F1, q or Enter closes it.

The page is built from that screen's own BINDINGS (and the app's), so it cannot drift from
what the keys do: a binding's tooltip, else its description, says what it does, and only the
bindings the screen would run now are listed (the live screen's q stops a running trainer and
closes an ended run's screen). A screen adds the keys that are no binding of its own (Tab
between fields, Space on a box) as HELP_KEYS, and a closing sentence as HELP_FOOT.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.table import Table
from textual.actions import parse
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

KeyRow = tuple[str, str]
"""(keys as a person types them, what they do)."""

_KEY_NAMES = {"escape": "Esc", "enter": "Enter", "space": "Space", "tab": "Tab",
              "delete": "Delete", "backspace": "Backspace", "plus": "+", "minus": "-",
              "equals_sign": "=", "question_mark": "?", "up": "↑", "down": "↓", "left": "←",
              "right": "→", "home": "Home", "end": "End", "pageup": "PgUp",
              "pagedown": "PgDn"}
"""Textual key names that read better spelled another way."""


def key_words(key: str) -> str:
    """One Textual key name as a person reads it: "ctrl+s" -> "Ctrl-S", "escape" -> "Esc",
    "f1" -> "F1", "equals_sign" -> "="; a letter stays as it is."""
    *mods, base = key.split("+")
    name = _KEY_NAMES.get(base, base.upper() if base[:1] == "f" and base[1:].isdigit()
                          else base if len(base) == 1 else base.capitalize())
    if mods and len(name) == 1:
        name = name.upper()
    return "-".join([*(m.capitalize() for m in mods), name])


def binding_keys(binding: Binding) -> str:
    """Every key of a binding ("escape,q" -> "Esc / q"), whatever its footer shows."""
    return " / ".join(key_words(k.strip()) for k in binding.key.split(",") if k.strip())


def _bindings(owner: object) -> Iterable[Binding]:
    for entry in getattr(type(owner), "BINDINGS", ()):
        if isinstance(entry, Binding):
            yield entry
        elif isinstance(entry, tuple):  # Textual's (key, action, description) shorthand
            yield Binding(*entry)


def screen_keys(screen: Screen) -> list[KeyRow]:
    """The help rows of `screen`: its HELP_KEYS, then each of its bindings that applies now
    (its `check_action` says so; hidden ones too, the footer has no room for every key),
    then the app's own (F1). Bindings that do the same thing are merged into one row."""
    rows: list[KeyRow] = list(getattr(screen, "HELP_KEYS", ()))
    seen = {what: index for index, (_, what) in enumerate(rows)}
    owners = [(screen, _bindings(screen))]
    try:
        owners.append((screen.app, _bindings(screen.app)))
    except Exception:  # noqa: BLE001 - a screen not mounted in an app (tests) has no app keys
        pass
    for owner, bindings in owners:
        for binding in bindings:
            what = binding.tooltip or binding.description
            if not what:
                continue
            _, action, params = parse(binding.action)
            check = getattr(owner, "check_action", None)
            if check is not None and check(action, params) is False:
                continue
            keys = binding_keys(binding)
            if what in seen:  # q and Ctrl-C both stop: one row "q / Ctrl-C  stop"
                index = seen[what]
                rows[index] = (f"{rows[index][0]} / {keys}", what)
                continue
            seen[what] = len(rows)
            rows.append((keys, what))
    return rows


def keys_table(rows: Iterable[KeyRow]) -> Table:
    """Help rows as a two-column Rich grid: the keys in bold, what they do beside them."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for keys, what in rows:
        table.add_row(keys, what)
    return table


class HelpScreen(ModalScreen[None]):
    """The key map of one screen, over it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; padding: 0 1; background: $surface;
    }
    HelpScreen #help-title { text-style: bold; padding: 0 0 1 0; }
    HelpScreen #help-foot { color: $text-muted; padding: 1 0 0 0; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,f1,q,enter", "close", "Close")]

    def __init__(self, title: str, rows: list[KeyRow], foot: str = "") -> None:
        super().__init__()
        self.title_words = title
        """The page's first line: which screen these keys are for."""
        self.rows = rows
        """(keys, what they do), in the order shown."""
        self.foot = foot

    @classmethod
    def of(cls, screen: Screen) -> HelpScreen:
        """The help page of `screen`: its HELP_TITLE (else its class name), keys and foot."""
        title = getattr(screen, "HELP_TITLE", "") or type(screen).__name__
        return cls(f"Keys: {title}", screen_keys(screen), getattr(screen, "HELP_FOOT", ""))

    def compose(self) -> ComposeResult:
        with VerticalScroll():  # scrolls in a terminal shorter than the page
            yield Static(self.title_words, id="help-title", markup=False)
            yield Static(keys_table(self.rows), id="help-keys")
            foot = f"{self.foot} " if self.foot else ""
            yield Static(f"{foot}Esc closes this page.", id="help-foot", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)
