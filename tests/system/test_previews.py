"""Previews you can see (ti_tui/preview_art.py, ti_tui/screens/preview_grid.py): which
protocol a terminal gets, that asking never hangs, and what reaches the terminal for Kitty
graphics, Sixel and the half-block fallback."""

from __future__ import annotations

import base64
import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.form_pilot import until
from tests.home_runs import write_png
from ti_tui import preview_art
from ti_tui.preview_art import HALF_BLOCKS, KITTY, SIXEL, decide_by_environment

XTERM = {"TERM": "xterm-256color"}


@pytest.mark.parametrize("choice, env, tty, expected", [
    ("auto", XTERM | {"TMUX": "/tmp/tmux-0/default,1,0"}, True, HALF_BLOCKS),
    ("auto", {"TERM": "screen-256color"}, True, HALF_BLOCKS),
    ("auto", XTERM | {"STY": "1.pts-0"}, True, HALF_BLOCKS),
    ("auto", XTERM | {"NO_COLOR": "1"}, True, HALF_BLOCKS),
    ("auto", {"TERM": "dumb"}, True, HALF_BLOCKS),
    ("auto", XTERM, False, HALF_BLOCKS),
    ("auto", {"TERM": "xterm-kitty"}, True, KITTY),
    ("auto", XTERM | {"KITTY_WINDOW_ID": "1"}, True, KITTY),
    ("auto", XTERM | {"TERM_PROGRAM": "iTerm.app"}, True, SIXEL),
    ("auto", XTERM | {"TERM_PROGRAM": "WezTerm"}, True, SIXEL),
    ("auto", XTERM, True, None),  # unknown: ask the terminal
    ("half-blocks", {"TERM": "xterm-kitty"}, True, HALF_BLOCKS),
    ("sixel", XTERM | {"TMUX": "x"}, True, SIXEL),  # forced: a tmux built with Sixel
    ("iterm", XTERM, True, SIXEL),
])
def test_the_environment_decides_when_it_can(choice, env, tty, expected):
    assert decide_by_environment(choice, env, tty) == expected


def test_a_bad_choice_is_one_sentence_and_exit_2():
    result = subprocess.run([sys.executable, "-m", "ti_tui.cli", "--preview", "pictures"],
                            capture_output=True, text=True, timeout=120,
                            env=os.environ | {"PYTHONPATH": str(Path.cwd())})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "ti-tui: --preview must be one of auto, half-blocks, kitty, sixel, iterm, not "
        "'pictures'."]


DETECT = """
import sys
import termios
from ti_tui import preview_art
chosen = preview_art.choose_protocol(sys.argv[1])
print("CHOSEN", chosen, "textual_image" in sys.modules, flush=True)
"""


def run_in_pty(choice: str, env: dict[str, str], answer: bytes | None = None,
               size: tuple[int, int] = (24, 80), limit: float = 60.0) -> tuple[str, bytes]:
    """Run choose_protocol(choice) in a child on a pseudo-terminal of `size` (rows, columns;
    (0, 0) as some serial consoles report); reply `answer` to the first query it writes
    (None: never answer, like a terminal that ignores queries); the answer is queued in the
    terminal's input before the child starts.
    Returns (the CHOSEN line, every byte the child wrote)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
        os.execve(sys.executable, [sys.executable, "-c", DETECT, choice],
                  {**env, "PYTHONPATH": str(Path.cwd()), "PATH": os.environ["PATH"]})
    written = b""
    answered = False
    if answer is not None:
        # Typed ahead: the answer waits in the terminal's input before the child asks, so
        # the library's 0.1 s wait for it never depends on how busy this machine is.
        os.write(fd, answer)
        answered = True
    deadline = time.monotonic() + limit  # a hang detector only: a hang fails the test
    try:
        while b"CHOSEN" not in written or not written.endswith(b"\n"):
            if time.monotonic() > deadline:
                raise AssertionError(f"choose_protocol hung; it wrote {written!r}")
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            written += chunk
            if answer is not None and not answered and b"\x1b[c" in written:
                os.write(fd, answer)
                answered = True
    finally:
        os.waitpid(pid, 0)
        os.close(fd)
    line = re.search(r"CHOSEN [a-z-]+ (True|False)", written.decode(errors="replace"))
    assert line, f"no answer; the child wrote {written!r}"
    return line.group(0), written


def test_a_terminal_that_never_answers_gets_half_blocks():
    line, written = run_in_pty("auto", XTERM)
    assert line == "CHOSEN half-blocks True"
    assert b"\x1b[c" in written  # it did ask (device attributes), and gave up


def test_a_terminal_that_reports_no_size_gets_half_blocks():
    """textual-image divides by a 0x0 size; that must not end the program."""
    line, _ = run_in_pty("auto", XTERM, size=(0, 0))
    # terminal.live_screen_problem already rules a 0x0 terminal out (no library import).
    assert line.startswith("CHOSEN half-blocks")


def test_a_terminal_that_answers_sixel_gets_sixel():
    # A VT340-like answer to the primary device attributes: 4 = Sixel graphics.
    line, _ = run_in_pty("auto", XTERM, answer=b"\x1b[?63;1;4c")
    assert line == "CHOSEN sixel True"


def test_forced_half_blocks_never_asks_nor_loads_the_library():
    line, written = run_in_pty("half-blocks", XTERM)
    assert line == "CHOSEN half-blocks False"
    assert b"\x1b[" not in written.split(b"CHOSEN")[0]


def test_tmux_gets_half_blocks_without_a_query():
    line, written = run_in_pty("auto", XTERM | {"TMUX": "/tmp/x,1,0"})
    assert line == "CHOSEN half-blocks False"
    assert b"\x1b" not in written.split(b"CHOSEN")[0]


# --- what is written to the terminal ----------------------------------------------------------
@pytest.fixture
def picture(tmp_path) -> Path:
    return write_png(tmp_path / "step-10.png", 10, size=128)


def test_kitty_sends_the_png_at_real_resolution(picture, monkeypatch):
    from rich.console import Console
    from textual_image.renderable.tgp import Image as TGPImage

    terminal = io.StringIO()
    monkeypatch.setattr(sys, "__stdout__", terminal)  # where textual-image sends the image
    screen = io.StringIO()
    Console(file=screen, width=80, force_terminal=True, color_system="truecolor").print(
        TGPImage(str(picture), width=16, height=8))
    sent = terminal.getvalue()
    chunks = re.findall(r"\x1b_G([^;]*);([^\x1b]*)\x1b\\", sent)
    assert chunks and all("f=100" in keys for keys, _ in chunks)  # f=100: PNG data
    png = base64.b64decode("".join(payload for keys, payload in chunks if "a=p" not in keys))
    with Image.open(io.BytesIO(png)) as img:
        # Pixels, not cells: 16 x 8 cells of 10 x 20 px (the cell size off a terminal).
        assert img.size == (160, 160)
    assert re.search(r"\x1b_Ga=p,i=\d+,c=16,r=8,U=1", sent)  # a placement of 16 x 8 cells
    assert screen.getvalue().count(chr(0x10EEEE)) == 16 * 8  # one placeholder per cell


def test_sixel_writes_a_sixel_image_in_place(picture):
    from rich.console import Console
    from textual_image.renderable.sixel import Image as SixelImage

    screen = io.StringIO()
    Console(file=screen, width=80, force_terminal=True).print(
        SixelImage(str(picture), width=16, height=8))
    out = screen.getvalue()
    start = out.index("\x1bP")
    assert out[start:].split("\x1b\\")[0].count("q") >= 1  # DCS ... q <sixels> ST
    assert "#0;2;" in out  # a colour register: the picture's own colours


def test_half_blocks_draw_two_pixels_per_cell(picture):
    from rich.console import Console

    art = preview_art.half_blocks(str(picture), 16, 8)
    screen = io.StringIO()
    Console(file=screen, width=80, force_terminal=True, color_system="truecolor").print(art)
    out = screen.getvalue()
    assert out.count("▀") == 16 * 8
    assert "38;2;128;128;128;48;2;128;128;128m▀" in out  # grey above and below
    assert re.search(r"38;2;\d+;(1[5-9]\d|2\d\d);\d+;48;2;", out)  # the green square


@pytest.mark.parametrize("protocol, kind", [(KITTY, "TGPImage"), (SIXEL, "Image"),
                                            (HALF_BLOCKS, "HalfBlockImage")])
def test_each_protocol_gets_its_widget(picture, monkeypatch, protocol, kind):
    from ti_tui.screens.preview_grid import preview_image

    monkeypatch.setattr(preview_art, "protocol", protocol)
    widget = preview_image(picture)
    assert type(widget).__name__ == kind
    if protocol == SIXEL:
        assert type(widget).__module__ == "textual_image.widget.sixel"


async def test_the_grid_in_sixel_mode_writes_sixels(tmp_path, monkeypatch):
    """The grid screen in a Textual app, Sixel chosen: the frames written carry DCS sixel
    data, one image per preview."""
    from textual.app import App

    from ti_tui.screens.preview_grid import PreviewGridScreen, PreviewTile

    for step in (0, 5):
        write_png(tmp_path / "previews" / f"step-{step}.png", step)
    monkeypatch.setattr(preview_art, "protocol", SIXEL)

    class One(App):
        def on_mount(self):
            self.push_screen(PreviewGridScreen(tmp_path))

    app = One()
    async with app.run_test(size=(80, 24)) as pilot:
        def frame() -> str:
            # The frame a real terminal driver would write (the headless one writes none).
            return app.screen._compositor.render_full_update().render_segments(app.console)

        await until(pilot, lambda: len(app.screen.query(PreviewTile)) == 2
                    and frame().count("\x1bP") == 2, "two sixel pictures drawn")
        assert [tile.step for tile in app.screen.query(PreviewTile)] == [0, 5]
        assert "#0;2;" in frame()


async def test_the_grid_in_kitty_mode_sends_each_png_once(tmp_path, monkeypatch):
    """Kitty chosen: each preview goes to the terminal as PNG data (Kitty graphics), and the
    frame holds the cells that place it."""
    from textual.app import App

    from ti_tui.screens.preview_grid import PreviewGridScreen, PreviewTile

    for step in (0, 5):
        write_png(tmp_path / "previews" / f"step-{step}.png", step)
    monkeypatch.setattr(preview_art, "protocol", KITTY)
    terminal = io.StringIO()
    monkeypatch.setattr(sys, "__stdout__", terminal)  # where textual-image sends images

    class One(App):
        def on_mount(self):
            self.push_screen(PreviewGridScreen(tmp_path))

    app = One()
    def sent_images() -> set[str]:
        return set(re.findall(r"\x1b_Gi=(\d+),m=0,f=100", terminal.getvalue()))

    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: len(app.screen.query(PreviewTile)) == 2
                    and len(sent_images()) >= 2, "both pictures sent")
        frame = app.screen._compositor.render_full_update().render_segments(app.console)
    assert len(sent_images()) >= 2  # one transmission per picture
    assert chr(0x10EEEE) in frame  # Kitty's placeholder cells carry the pictures


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_every_picture_fits_inside_its_tile(tmp_path, monkeypatch, size):
    """Rows of the grid are as tall as a tile: no picture is clipped by the next row."""
    from textual.app import App

    from ti_tui.screens.preview_grid import PreviewGridScreen, PreviewTile

    for step in range(0, 45, 5):
        write_png(tmp_path / "previews" / f"step-{step}.png", step)
    monkeypatch.setattr(preview_art, "protocol", HALF_BLOCKS)

    class One(App):
        def on_mount(self):
            self.push_screen(PreviewGridScreen(tmp_path))

    app = One()
    async with app.run_test(size=size) as pilot:
        seen: list = []

        def laid_out() -> bool:
            """Nine tiles with their pictures placed, and the same places one turn later."""
            tiles = list(app.screen.query(PreviewTile))
            places = [(t.region, t.children[1].region) for t in tiles]
            settled = len(tiles) == 9 and all(p.area for _, p in places) and seen[-1:] == [places]
            seen.append(places)
            return settled

        await until(pilot, laid_out, "nine tiles laid out with their pictures")
        tiles = list(app.screen.query(PreviewTile))
        assert [t.step for t in tiles] == list(range(0, 45, 5))
        for tile in tiles:
            picture = tile.children[1].region
            assert tile.region.contains_region(picture), (tile.step, tile.region, picture)
        rows = sorted({t.region.y for t in tiles})
        assert all(b - a > tiles[0].region.height - 1 for a, b in zip(rows, rows[1:]))
