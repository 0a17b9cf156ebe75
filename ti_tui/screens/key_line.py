"""A screen's key line fitted to the terminal's width, for every screen that has more keys
than a narrow terminal can show.

Textual's Footer draws the keys left to right and cuts whatever does not fit, so on a narrow
terminal the last keys, F1 among them, silently vanish. Instead, when a screen's shown keys do
not all fit, the line turns compact (one blank less per key) and keeps the most used keys, in
the screen's own order of priority, that fit beside F1, which is then labelled "Keys": its
page lists every key. Only a binding's `show` changes, so every key still works whether it is
on the line or not.

Screens take it by the FittedKeyLine mixin. Widths follow textual/widgets/_footer.py (Textual 8): a FooterKey is a blank, the key, a blank,
the description and a blank; compact, the key, a blank, the description and a blank.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import ClassVar

from rich.cells import cell_len
from textual.binding import ActiveBinding, Binding
from textual.events import Resize
from textual.widgets import Footer

KeyDisplay = Callable[[Binding], str]
"""The key as the line shows it (App.get_key_display)."""


def key_width(key_display: str, description: str, compact: bool = False) -> int:
    """The cells one key takes on the key line (see the module doc)."""
    return cell_len(key_display) + cell_len(description) + (2 if compact else 3)


def shown_keys(bindings: dict[str, ActiveBinding]) -> dict[str, ActiveBinding]:
    """The first shown binding of each action, as the key line draws them (one per action)."""
    firsts: dict[str, ActiveBinding] = {}
    for active in bindings.values():
        if active.binding.show:
            firsts.setdefault(active.binding.action, active)
    return firsts


def keys_fit(bindings: dict[str, ActiveBinding], width: int, display: KeyDisplay) -> bool:
    """Whether every shown key fits on a (not compact) key line `width` cells wide."""
    return sum(key_width(display(a.binding), a.binding.description)
               for a in shown_keys(bindings).values()) <= width


def fit_keys(bindings: dict[str, ActiveBinding], width: int, display: KeyDisplay,
             first: Sequence[str]) -> dict[str, ActiveBinding]:
    """`bindings` (Screen.active_bindings) with the shown keys cut down to what fits in
    `width` cells: all of them when they fit; else, for a compact key line, the actions of
    `first` (most used first) that fit beside F1, shown as "Keys". An action missing from
    `bindings` (not active now) is passed over; one that does not fit ends the line, so a
    cheaper key further down never jumps ahead of a more used one."""
    help_key = bindings.get("f1")
    if help_key is None or keys_fit(bindings, width, display):
        return bindings
    firsts = shown_keys(bindings)
    room = width - key_width(display(help_key.binding), "Keys", compact=True)
    keep = set()
    for action in first:
        active = firsts.get(action)
        if active is None:
            continue
        cost = key_width(display(active.binding), active.binding.description, compact=True)
        if cost > room:
            break
        keep.add(action)
        room -= cost
    fitted = {}
    for key, active in bindings.items():
        show = active.binding.action in keep if active.binding.show else False
        fitted[key] = active._replace(binding=dataclasses.replace(active.binding, show=show))
    f1 = dataclasses.replace(help_key.binding, show=True, description="Keys")
    fitted["f1"] = help_key._replace(binding=f1)
    return fitted


class FittedKeyLine:
    """Mixin for a Screen with a Footer (put it before Screen in the bases): its key line
    fitted to the width by `fit_keys`, compact when the keys do not all fit, redone on every
    resize. `KEYS_FIRST`: the screen's actions, most used first; empty keeps the line's own
    order (the first keys stay)."""

    KEYS_FIRST: ClassVar[Sequence[str]] = ()

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        """The screen's bindings with the shown keys fitted to its width (Footer draws these)."""
        bindings = super().active_bindings  # type: ignore[misc]
        first = self.KEYS_FIRST or tuple(shown_keys(bindings))
        return fit_keys(bindings, self.size.width, self.app.get_key_display,  # type: ignore[attr-defined]
                        first)

    def _on_resize(self, event: Resize) -> None:
        # Textual calls the handler of every class in the MRO: the screen's own on_resize too.
        self.fit_key_line(event.size.width)

    def fit_key_line(self, width: int) -> None:
        """Make the key line compact exactly when the keys do not all fit in `width` cells,
        and draw it again (call it when the screen's keys change, too)."""
        for footer in self.query(Footer):  # type: ignore[attr-defined]
            footer.compact = not keys_fit(super().active_bindings,  # type: ignore[misc]
                                          width, self.app.get_key_display)  # type: ignore[attr-defined]
        self.refresh_bindings()  # type: ignore[attr-defined]
