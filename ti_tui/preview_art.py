"""Show a preview PNG in any colour terminal: each cell paints two pixels with "▀".

The upper pixel is the foreground colour and the lower one the background, so a W x H cell
area holds a W x 2H picture. It works over SSH in every terminal with 256 colours or more
(Rich downgrades truecolour itself); no image protocol is needed.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style


def resolve(path: str, base_dir: str, output_dir: str = "") -> Path:
    """Where a file named in an event lies on this machine. Relative paths, and paths under
    the run's output dir when that dir was moved or is mounted elsewhere, resolve against
    `base_dir` (the folder events.jsonl was read from)."""
    p = Path(path)
    base = Path(base_dir or ".")
    if not p.is_absolute():
        return base / p
    if not p.exists() and output_dir:
        try:
            return base / p.relative_to(output_dir)
        except ValueError:
            pass
    return p


def fit(size: tuple[int, int], width: int, height: int) -> tuple[int, int]:
    """Pixel size of an image of `size` scaled into width x (2*height) pixels, ratio kept."""
    w, h = size
    scale = min(width / w, (2 * height) / h)
    return max(1, int(w * scale)), max(2, int(h * scale) // 2 * 2)


class HalfBlocks:
    """A picture as rows of "▀" cells; renders straight to Segments (fast, ~1 ms)."""

    def __init__(self, rows: list[list[Style]]):
        self.rows = rows
        """One Style per cell: colour = upper pixel, bgcolor = lower pixel."""
        self.width = len(rows[0]) if rows else 0

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for row in self.rows:
            yield from (Segment("▀", style) for style in row[: options.max_width])
            yield Segment.line()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.width, self.width)


def half_blocks(path: str, width: int, height: int) -> HalfBlocks | None:
    """The picture at `path` in at most width x height cells, or None if it cannot be read.

    Cached on the file's size and modification time, so the dashboard can ask every frame.
    """
    if width < 1 or height < 1:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return _render(path, info.st_mtime_ns, info.st_size, width, height)


@lru_cache(maxsize=8)
def _render(path: str, _mtime: int, _size: int, width: int, height: int) -> HalfBlocks | None:
    try:
        from PIL import Image  # imported here: the text views never need it

        with Image.open(path) as img:
            img = img.convert("RGB")
            img = img.resize(fit(img.size, width, height), Image.Resampling.LANCZOS)
    except (OSError, ValueError):
        return None  # missing, half-written or not an image: the panel says so
    w, h = img.size
    pixels = img.load()
    return HalfBlocks([[Style(color=_hex(pixels[x, y]), bgcolor=_hex(pixels[x, y + 1]))
                        for x in range(w)] for y in range(0, h - 1, 2)])


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb[:3])


# --- real-resolution previews: which terminal graphics protocol, decided once -----------------
HALF_BLOCKS, KITTY, SIXEL = "half-blocks", "kitty", "sixel"
PREVIEW_CHOICES = ("auto", HALF_BLOCKS, KITTY, SIXEL, "iterm")
"""--preview / $TI_TUI_PREVIEW values. "iterm" is Sixel: iTerm2 (3.3 and later) shows Sixel
images, and the library used here (textual-image) draws Kitty graphics and Sixel."""
PREVIEW_ENV = "TI_TUI_PREVIEW"
DETECT_LIMIT_S = 2.0
"""The most the terminal queries may take before the half-block drawing is used: a terminal
that never answers (some SSH clients, serial consoles) must not hang the start. The
library's modules are imported before the clock starts, so a busy machine's slow import is
not taken for a silent terminal."""

protocol = HALF_BLOCKS
"""What preview images are drawn with in this process: set once by `choose_protocol`, before
the Textual app starts (the query must not compete with Textual's input thread)."""


def decide_by_environment(choice: str, env: dict[str, str], tty: bool) -> str | None:
    """The protocol when the environment alone decides it, else None (ask the terminal).

    Forced choices win; then no graphics where they cannot work or must not be tried: not a
    terminal, NO_COLOR (https://no-color.org: no colour pictures either), TERM dumb/linux,
    tmux and GNU screen (they swallow graphics unless passthrough is set up, and answer the
    query themselves), and a terminal that says who it is by its variables.
    """
    choice = (choice or "auto").lower()
    if choice == "iterm":
        return SIXEL
    if choice in (HALF_BLOCKS, KITTY, SIXEL):
        return choice
    term = env.get("TERM", "")
    if not tty or "NO_COLOR" in env or term in ("", "dumb", "linux", "unknown"):
        return HALF_BLOCKS
    if env.get("TMUX") or env.get("STY") or term.startswith(("screen", "tmux")):
        return HALF_BLOCKS
    if term == "xterm-kitty" or env.get("KITTY_WINDOW_ID"):
        return KITTY
    if env.get("TERM_PROGRAM") in ("iTerm.app", "WezTerm") or term in ("foot", "mlterm"):
        return SIXEL
    return None


def choose_protocol(choice: str | None = None, env: dict[str, str] | None = None) -> str:
    """Decide (once, before the app starts) how previews are drawn, and remember it.

    `choice`: the --preview value (None reads $TI_TUI_PREVIEW, default "auto"). An unknown
    terminal is asked by textual-image's own queries (Sixel in the device attributes, a Kitty
    graphics query), cut off after DETECT_LIMIT_S; any failure means half-blocks.
    Raises ValueError for a choice not in PREVIEW_CHOICES.
    """
    global protocol

    env = dict(os.environ) if env is None else env
    choice = (choice or env.get(PREVIEW_ENV) or "auto").lower()
    if choice not in PREVIEW_CHOICES:
        raise ValueError(f"--preview must be one of {', '.join(PREVIEW_CHOICES)}, not "
                         f"{choice!r}")
    from ti_tui.terminal import can_draw_live

    tty = can_draw_live(interactive=True, env=env)  # the one test every entry point uses
    decided = decide_by_environment(choice, env, tty)
    if decided in (None, KITTY, SIXEL):
        detected = _load_library()
        # A forced protocol stands, unless the library could not even load.
        decided = detected if decided is None or detected is None else decided
    protocol = decided or HALF_BLOCKS
    return protocol


def _load_library() -> str | None:
    """Import textual-image (importing it queries the terminal), within DETECT_LIMIT_S.

    Returns what it detected (KITTY, SIXEL, or HALF_BLOCKS), or None when the library is
    missing, failed (textual-image 0.12 divides by zero on a terminal that reports a 0x0
    size) or the time ran out: then only the half-block drawing is safe.
    """
    import signal

    try:
        # Everything but the two modules whose import asks the terminal, outside the clock.
        import textual.widget  # noqa: F401
        import textual_image._pixeldata  # noqa: F401
        import textual_image._sixel  # noqa: F401
        import textual_image._terminal  # noqa: F401
    except Exception:  # noqa: BLE001 - not installed or broken: no graphics
        return None

    def too_slow(signum, frame):
        raise TimeoutError

    from ti_tui.exits import leave_on_signals

    try:
        previous = signal.signal(signal.SIGALRM, too_slow)
    except ValueError:  # not the main thread: cannot time it, so do not ask
        return None
    signal.setitimer(signal.ITIMER_REAL, DETECT_LIMIT_S)
    saved = _terminal_modes()
    try:
        # While it asks, the terminal is in cbreak mode (no echo, no line editing): SIGTERM,
        # SIGHUP or SIGQUIT now must not kill the process by default and leave it so. They
        # unwind from here (exits.Signalled; cli.main exits 128+N) and the modes come back.
        with leave_on_signals():
            import textual_image.renderable as renderables
            import textual_image.widget  # noqa: F401 - measures the cell size while it can
    except Exception:  # noqa: BLE001 - missing, timed out, or broken by an odd terminal
        return None  # (a stray non-UTF-8 byte typed meanwhile too: UnicodeDecodeError)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        _restore_terminal_modes(saved)
    if renderables.Image is renderables.TGPImage:
        return KITTY
    if renderables.Image is renderables.SixelImage:
        return SIXEL
    return HALF_BLOCKS


def _terminal_modes() -> list | None:
    """Standard input's terminal modes (termios), to put back after the query; None when it
    is not a terminal."""
    try:
        import termios

        return termios.tcgetattr(sys.__stdin__.fileno())
    except (ImportError, OSError, ValueError, AttributeError):
        return None


def _restore_terminal_modes(saved: list | None) -> None:
    """Put back modes saved by _terminal_modes (textual-image restores its own on a normal
    exit; this covers a query cut off anywhere)."""
    if saved is None:
        return
    try:
        import termios

        termios.tcsetattr(sys.__stdin__.fileno(), termios.TCSANOW, saved)
    except (ImportError, OSError, ValueError, AttributeError):
        pass


def list_previews(folder: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """The preview images of a run, (step, path) from step 0 on: OUTPUT_DIR/previews/
    step-N.png as trainer/outputs.py names them (each is written whole, then renamed)."""
    found = []
    try:
        for path in (Path(folder) / "previews").glob("step-*.png"):
            number = path.stem.split("-", 1)[1]
            if number.isdigit():
                found.append((int(number), path))
    except OSError:
        return []
    return sorted(found)
