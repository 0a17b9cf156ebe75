"""The previews of a run as a grid over steps (step 0 to now), so a user sees the embedding
converge: full screen from the home screen (p) and the live screen (v), and inline in the
summary of a finished run.

Each tile shows OUTPUT_DIR/previews/step-N.png at the terminal's real resolution where it
can (Kitty graphics or Sixel, through textual-image), else in coloured half-blocks
(ti_tui/preview_art.py decides which once, before the app starts). The grid reads the folder
again every few seconds, so a running run's new previews appear as they are written.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Label, Static

from ti_tui import preview_art
from ti_tui.screens.key_line import FittedKeyLine

RESCAN_S = 2.0
"""How often the previews folder is listed again for new images."""
TILE_SIZES = ((18, 9), (26, 13), (38, 19), (58, 29))
"""(columns, rows) of one tile's picture, smallest first; + and - step through them."""


class HalfBlockImage(Widget):
    """A picture drawn with "▀" cells at this widget's size (the fallback everywhere)."""

    DEFAULT_CSS = "HalfBlockImage { width: 1fr; height: 1fr; }"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def render(self):
        width, height = self.size
        art = preview_art.half_blocks(str(self.path), width, height)
        return art if art is not None else f"cannot read {self.path.name}"


def preview_image(path: Path) -> Widget:
    """A widget showing the image at `path` with the protocol chosen for this terminal."""
    if preview_art.protocol == preview_art.KITTY:
        from textual_image.widget import TGPImage

        return TGPImage(str(path))
    if preview_art.protocol == preview_art.SIXEL:
        from textual_image.widget import SixelImage

        return SixelImage(str(path))
    return HalfBlockImage(path)


class PreviewTile(Vertical):
    """One preview: "step N" over its picture."""

    DEFAULT_CSS = """
    PreviewTile { height: auto; width: auto; }
    PreviewTile > Label { width: 100%; text-style: bold; }
    PreviewTile > .preview-picture { width: 26; height: 13; }
    """

    def __init__(self, step: int, path: Path, size: tuple[int, int]) -> None:
        super().__init__()
        self.step, self.path, self.tile_size = step, path, size
        # The label's row plus the picture's: a grid row must not clip the picture's last row.
        self.styles.width, self.styles.height = size[0], size[1] + 1

    def compose(self) -> ComposeResult:
        yield Label(f"step {self.step}")
        picture = preview_image(self.path)
        picture.add_class("preview-picture")
        picture.styles.width, picture.styles.height = self.tile_size
        yield picture


class PreviewGrid(Widget):
    """Every preview of the run in `folder`, in step order, wrapped to the width."""

    DEFAULT_CSS = """
    PreviewGrid { layout: grid; grid-size: 3; height: auto; grid-gutter: 1 2; }
    PreviewGrid > .preview-none { color: $text-muted; column-span: 3; }
    """

    def __init__(self, folder: Path, size: tuple[int, int] = TILE_SIZES[1],
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.folder = Path(folder)
        self.tile_size = size
        self.shown: list[tuple[int, Path]] = []

    def compose(self) -> ComposeResult:
        yield Static("no previews (the run was started without --validation_steps, or none "
                     "is written yet)", classes="preview-none")

    def on_mount(self) -> None:
        self.rescan()
        self.set_interval(RESCAN_S, self.rescan)

    def on_resize(self) -> None:
        self._fit_columns()

    def _fit_columns(self) -> None:
        """As many tiles a row as fit; every row as tall as a tile (label + picture)."""
        columns = max(1, (self.size.width + 2) // (self.tile_size[0] + 2)) \
            if self.size.width else 3
        self.styles.grid_size_columns = columns
        self.styles.grid_rows = str(self.tile_size[1] + 1)

    def rescan(self) -> None:
        """Add the tiles of previews written since the last look."""
        found = preview_art.list_previews(self.folder)
        if found == self.shown:
            return
        self.query(".preview-none").set(display=not found)
        new = [item for item in found if item not in self.shown]
        if any(item not in found for item in self.shown) or \
                (self.shown and new and new[0][0] < self.shown[-1][0]):
            self.query(PreviewTile).remove()  # a preview removed or re-made: lay out anew
            new = found
        self.mount_all([PreviewTile(step, path, self.tile_size) for step, path in new])
        self.shown = found
        self._fit_columns()

    def resize_tiles(self, size: tuple[int, int]) -> None:
        """Redraw every tile at `size` (columns, rows), one of TILE_SIZES."""
        self.tile_size = size
        self.query(PreviewTile).remove()
        self.shown = []
        self.rescan()


class PreviewGridScreen(FittedKeyLine, Screen[None]):
    """The preview grid of one run, full screen."""

    DEFAULT_CSS = """
    PreviewGridScreen #grid-title { height: 1; padding: 0 1; text-style: bold; }
    PreviewGridScreen VerticalScroll { padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", key_display="q"),
        Binding("plus,equals_sign", "bigger", "Bigger", key_display="+"),
        Binding("minus", "smaller", "Smaller", key_display="-"),
        Binding("r", "reload", "Reload"),
    ]
    HELP_TITLE = "the previews over steps"

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.size_index = 1

    def compose(self) -> ComposeResult:
        how = {preview_art.KITTY: "Kitty graphics", preview_art.SIXEL: "Sixel"}.get(
            preview_art.protocol, "half-blocks (--preview sets real images)")
        yield Static(f"Previews of {self.folder.name} · step 0 to now · {how}",
                     id="grid-title", markup=False)
        with VerticalScroll():
            yield PreviewGrid(self.folder, TILE_SIZES[self.size_index])
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_reload(self) -> None:
        self.query_one(PreviewGrid).rescan()

    def action_bigger(self) -> None:
        self._resize(+1)

    def action_smaller(self) -> None:
        self._resize(-1)

    def _resize(self, step: int) -> None:
        index = min(len(TILE_SIZES) - 1, max(0, self.size_index + step))
        if index != self.size_index:
            self.size_index = index
            self.query_one(PreviewGrid).resize_tiles(TILE_SIZES[index])
