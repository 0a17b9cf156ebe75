"""Check boxes and radio buttons whose state reads without colour.

Textual draws both states of a toggle with the same glyph (▐X▌, ▐●▌) and tells them apart by
colour alone, which fails under NO_COLOR and on monochrome terminals. These draw `[x]`/`[ ]`
and `(•)`/`( )`, coloured as usual where colour exists.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Checkbox, RadioButton


class Tick(Checkbox):
    """A check box drawn as [x] / [ ]."""

    @property
    def _button(self) -> Content:
        style = self.get_visual_style("toggle--button")
        return Content.assemble("[", ("x" if self.value else " ", style), "]")


class ChoiceButton(RadioButton):
    """A radio button drawn as (•) / ( )."""

    @property
    def _button(self) -> Content:
        style = self.get_visual_style("toggle--button")
        return Content.assemble("(", ("•" if self.value else " ", style), ")")
