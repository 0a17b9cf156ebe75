"""The live training screen (ti_tui/screens/train.py), driven by a fake RunHandle that points
at the recorded events.jsonl."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from textual.app import App

from ti_tui import panels
from ti_tui.screens.train import ConfirmStop, PanelView, ProgressView, StatusLine, TrainScreen
from trainer.events import Stopped, StopReason

DATA = Path(__file__).parents[1] / "data"
SAMPLE_LINES = (DATA / "events_sample.jsonl").read_text().splitlines(keepends=True)


class FakeHandle:
    """A trainer that records what it is asked to do; `alive` is what is_alive() says."""

    def __init__(self, output_dir: Path, alive: bool = True, code: int | None = None):
        self.output_dir = output_dir
        self.events_path = output_dir / "events.jsonl"
        self.alive, self.code = alive, code
        self.calls: list[str] = []

    def request(self, action: str) -> None:
        self.calls.append(action)

    def stop(self) -> None:
        self.calls.append("stop")

    def is_alive(self) -> bool:
        return self.alive

    def wait(self, timeout: float | None = None) -> int | None:
        return self.code


class TrainApp(App):
    """Pushes TrainScreen and keeps what it dismisses with."""

    ENABLE_COMMAND_PALETTE = False

    def __init__(self, handle: FakeHandle):
        super().__init__()
        self.handle = handle
        self.outcome: str | None = None

    def on_mount(self) -> None:
        self.push_screen(TrainScreen(self.handle), self._done)

    def _done(self, outcome: str | None) -> None:
        self.outcome = outcome


def run_dir(tmp_path: Path, lines: int | None = None, partial: str = "") -> Path:
    """An output folder with the sample's first `lines` lines, then `partial` (no newline)."""
    body = "".join(SAMPLE_LINES[:lines] if lines else SAMPLE_LINES) + partial
    (tmp_path / "events.jsonl").write_text(body)
    shutil.copytree(DATA / "previews", tmp_path / "previews", dirs_exist_ok=True)
    return tmp_path


async def settle(pilot, screen: TrainScreen, *, ended: bool | None = None) -> None:
    """Wait until the worker has read the file and every panel has been redrawn."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        await pilot.pause(0.05)
        drawn = all(v.drawn_version == screen.state.events for v in screen.views)
        if screen.state.events and drawn and not screen._dirty \
                and (ended is None or screen.ended == ended):
            break
    await pilot.pause()


def train_screen(app: TrainApp) -> TrainScreen:
    return next(s for s in app.screen_stack if isinstance(s, TrainScreen))


async def test_keys_ask_the_trainer(tmp_path):
    app = TrainApp(FakeHandle(run_dir(tmp_path, lines=300)))
    async with app.run_test(size=(100, 32)) as pilot:
        screen = train_screen(app)
        await settle(pilot, screen, ended=False)
        assert screen.state.step > 200 and not screen.ended
        await pilot.press("s")
        await pilot.press("p")
        assert app.handle.calls == ["save", "preview"]


async def test_q_asks_and_y_stops(tmp_path):
    app = TrainApp(FakeHandle(run_dir(tmp_path, lines=300)))
    async with app.run_test(size=(100, 32)) as pilot:
        screen = train_screen(app)
        await settle(pilot, screen, ended=False)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmStop)
        await pilot.press("y")
        await pilot.pause()
        assert app.handle.calls == ["stop"] and app.screen is screen
        assert "Stopping" in str(screen.query_one(StatusLine).render())
        # The trainer saves and writes its stopped event; the screen then offers to close.
        with open(app.handle.events_path, "a") as fh:
            fh.write(json.dumps(Stopped(time=1700000200.0, reason=StopReason.USER,
                                        step=280).to_dict()) + "\n")
        await settle(pilot, screen, ended=True)
        await pilot.press("q")
        assert app.outcome == "stopped"


async def test_n_keeps_training(tmp_path):
    app = TrainApp(FakeHandle(run_dir(tmp_path, lines=300)))
    async with app.run_test(size=(100, 32)) as pilot:
        screen = train_screen(app)
        await settle(pilot, screen, ended=False)
        await pilot.press("ctrl+c")
        assert isinstance(app.screen, ConfirmStop)
        await pilot.press("n")
        await pilot.pause()
        assert app.handle.calls == [] and app.screen is screen and app.outcome is None


async def test_d_detaches(tmp_path):
    app = TrainApp(FakeHandle(run_dir(tmp_path, lines=300)))
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot, train_screen(app), ended=False)
        await pilot.press("d")
        await pilot.pause()
        assert app.outcome == "detached" and app.handle.calls == []


async def test_a_finished_run_closes_without_asking(tmp_path):
    app = TrainApp(FakeHandle(run_dir(tmp_path)))
    async with app.run_test(size=(100, 32)) as pilot:
        screen = train_screen(app)
        await settle(pilot, screen, ended=True)
        assert screen.state.converged_step == 437
        assert "Run finished: stopped early by DVAR" in str(screen.status_line.render())
        await pilot.press("s", "q")
        assert app.outcome == "finished" and app.handle.calls == []


async def test_a_partial_line_waits_for_its_end(tmp_path):
    half = SAMPLE_LINES[300][:40]
    app = TrainApp(FakeHandle(run_dir(tmp_path, lines=300, partial=half)))
    async with app.run_test(size=(100, 32)) as pilot:
        screen = train_screen(app)
        await settle(pilot, screen)
        before = screen.state.events
        with open(app.handle.events_path, "a") as fh:
            fh.write(SAMPLE_LINES[300][40:])
        deadline = time.monotonic() + 5
        while screen.state.events == before and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert screen.state.events == before + 1


async def test_a_trainer_that_dies_is_reported(tmp_path):
    app = TrainApp(FakeHandle(run_dir(tmp_path, lines=200), alive=False, code=-9))
    async with app.run_test(size=(100, 32)) as pilot:
        screen = train_screen(app)
        await settle(pilot, screen, ended=True)
        assert "exited without a stopped event (exit code -9)" in str(screen.status_line.render())
        await pilot.press("q")
        assert app.outcome == "finished"


async def test_redraws_are_capped_at_10_hz(tmp_path, monkeypatch):
    draws = []
    original = ProgressView.render
    monkeypatch.setattr(ProgressView, "render", lambda self: draws.append(1) or original(self))
    app = TrainApp(FakeHandle(run_dir(tmp_path, lines=120)))
    async with app.run_test(size=(100, 32)) as pilot:
        screen = train_screen(app)
        await settle(pilot, screen, ended=False)
        draws.clear()
        start = time.monotonic()
        for i in range(120, 320, 5):  # 200 events in ~40 writes, as fast as they come
            with open(app.handle.events_path, "a") as fh:
                fh.write("".join(SAMPLE_LINES[i:i + 5]))
            await pilot.pause(0.02)
        await settle(pilot, screen)
        seconds = time.monotonic() - start
        assert screen.state.step > 280
        assert len(draws) <= 10 * seconds + 3
        assert all(isinstance(v, PanelView) for v in screen.views)


@pytest.mark.parametrize("size", [(80, 24), (120, 32), (140, 45)])
async def test_the_screen_lays_out_the_panels_as_the_headless_view_does(tmp_path, size):
    # One declaration (ti_tui/panels.py): same panels shown, same header and top-row heights,
    # same preview width as panels.arrange gives render_dashboard.
    app = TrainApp(FakeHandle(run_dir(tmp_path)))
    async with app.run_test(size=size) as pilot:
        screen = train_screen(app)
        await settle(pilot, screen, ended=True)
        shown = {view.spec.name: view.size for view in screen.views if view.display}
        rows = panels.arrange(*size)
        expected = {spec.name: (width, height) for height, row in rows for spec, width in row}
        assert set(shown) == set(expected)
        assert shown["progress"].height == expected["progress"][1]
        if "header" in expected:
            assert shown["header"].height == expected["header"][1]
        if "preview" in expected:
            assert shown["preview"].width == expected["preview"][0]


# --- snapshots of the recorded (finished) run: its clocks use event times only --------------
async def _until_drawn(pilot) -> None:
    await settle(pilot, train_screen(pilot.app), ended=True)


def test_snapshot_80x24(snap_compare, tmp_path):
    app = TrainApp(FakeHandle(run_dir(tmp_path)))
    assert snap_compare(app, terminal_size=(80, 24), run_before=_until_drawn)


@pytest.mark.parametrize("size", [(80, 23), (60, 20), (39, 10)])
def test_snapshot_small_terminals(snap_compare, tmp_path, size):
    """80x23 (80x24 under tmux), a 60x20 split, and the 39x10 minimum (ti_tui/terminal.py):
    progress, loss and DVAR, narrower and shorter, never the "too small" notice."""
    app = TrainApp(FakeHandle(run_dir(tmp_path)))
    assert snap_compare(app, terminal_size=size, run_before=_until_drawn)


def test_snapshot_140x45(snap_compare, tmp_path):
    app = TrainApp(FakeHandle(run_dir(tmp_path)))
    assert snap_compare(app, terminal_size=(140, 45), run_before=_until_drawn)
