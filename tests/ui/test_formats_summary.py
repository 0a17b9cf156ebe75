"""The summary screen's embedding offer per kind of InvokeAI root, and its tool lines."""

from __future__ import annotations

import json
import sqlite3

from textual.app import App
from textual.widgets import Checkbox, Static

from trainer.config import TrainConfig
from ti_tui.screens.summary import SummaryScreen
from trainer.events import Stopped, StopReason


class SummaryApp(App):
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, config: TrainConfig):
        super().__init__()
        self.config = config
        self.result = None

    def on_mount(self) -> None:
        self.push_screen(SummaryScreen(self.config), callback=self._done)

    def _done(self, result) -> None:
        self.result = result
        self.exit()


def finished_run(tmp_path, root, num_vectors: int) -> TrainConfig:
    config = TrainConfig(root=str(root), placeholder_token="<star>", num_vectors=num_vectors,
                         output_dir=str(tmp_path / "out"))
    out = config.output_path
    out.mkdir(parents=True)
    names = ["star-ti.safetensors", "learned_embeds.safetensors", "learned_embeds.bin"]
    for name in names:
        (out / name).write_bytes(name.encode())
    stopped = Stopped(time=1, reason=StopReason.MAX_STEPS, step=40,
                      files=[str(out / n) for n in names])
    (out / "events.jsonl").write_text(json.dumps(stopped.to_dict()) + "\n")
    return config


async def test_an_invokeai_4_root_gets_steps_instead_of_a_copy(tmp_path):
    root = tmp_path / "root"
    (root / "databases").mkdir(parents=True)
    sqlite3.connect(root / "databases" / "invokeai.db").close()
    config = finished_run(tmp_path, root, 1)
    app = SummaryApp(config)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        tick = app.screen.query_one("#summary-copy", Checkbox)
        assert tick.disabled and not tick.value
        guide = str(app.screen.query_one("#summary-tools", Static).render())
        assert "open the Model Manager, press Add Models" in guide
        assert f"paste {config.output_path / 'star-ti.safetensors'}" in guide
        await pilot.press("ctrl+s")
    assert app.result.copied_to is None and not (root / "embeddings").exists()


async def test_an_older_root_gets_the_file_its_reader_takes(tmp_path):
    """Two vectors: InvokeAI 2.3 reads them from <name>.safetensors, so that is the copy."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "invokeai.init").write_text("")  # an InvokeAI 2.3 root
    config = finished_run(tmp_path, root, 2)
    app = SummaryApp(config)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        tick = app.screen.query_one("#summary-copy", Checkbox)
        assert tick.value and not tick.disabled
        assert f"{root / 'embeddings' / 'star-ti'}/" in str(tick.label)
        await pilot.press("ctrl+s")
    copy = root / "embeddings" / "star-ti" / "star-ti.safetensors"
    assert app.result.copied_to == copy and copy.read_bytes() == b"star-ti.safetensors"
    assert [p.name for p in copy.parent.iterdir()] == ["star-ti.safetensors"]
