"""The Textual live screen on a real run, for bench/ui_overhead.py (run it under a pty).

    python bench/textual_live.py TI-TUI-TRAIN-FLAGS...

Starts the trainer with `ti_tui.runner.start_run` (as the app does after the form), shows
`ti_tui.screens.train.TrainScreen` on it, and quits by itself once the run has ended (the real
screen waits for a key there).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str]) -> int:
    from textual.app import App

    from ti_tui.runner import start_run
    from ti_tui.screens.train import TrainScreen
    from trainer.flags import parse_config

    config = parse_config(argv, prog="textual_live")

    class LiveApp(App[int]):
        CSS_PATH = str(Path(__file__).resolve().parents[1] / "ti_tui" / "app.tcss")

        def on_mount(self) -> None:
            self.handle = start_run(config)
            self.live = TrainScreen(self.handle)
            self.push_screen(self.live)
            self.set_interval(0.5, self._check)

        def _check(self) -> None:
            if self.live.ended:
                self.exit(self.handle.wait(30) or 0)

    app = LiveApp()
    code = app.run()
    return code if isinstance(code, int) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
