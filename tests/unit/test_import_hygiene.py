"""The engine never imports the UI, and the run's state, panels, tail, runner and Rich view
never import Textual: checked on the real import graph (import-linter contracts in
pyproject.toml) and in a fresh interpreter's sys.modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def fresh_python(code: str) -> str:
    """What `code` prints in a fresh interpreter started in the repository root."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT).stdout


def test_trainer_loads_no_ui_module():
    code = ("import sys, trainer, trainer.loop, trainer.flags, trainer.__main__\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('textual', 'rich', 'ti_tui'))\n"
            "print(','.join(bad))")
    assert fresh_python(code).strip() == ""


def test_import_trainer_is_light():
    """`import trainer` and the pure modules must not pull torch (the CLI starts fast)."""
    code = ("import sys, trainer, trainer.config, trainer.schedules, trainer.stopping, "
            "trainer.events\nprint('torch' in sys.modules)")
    assert fresh_python(code).strip() == "False"


def test_import_linter_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "KEPT" in out.stdout and " 0 broken" in out.stdout
    for contract in ("never imports the UI", "never import Textual", "plain Python (no Rich)",
                     "never import the headless Rich/Live view", "never imports the toy"):
        assert contract in " ".join(out.stdout.split()), contract


def test_the_views_without_textual_load_no_textual():
    code = ("import sys, ti_tui.state, ti_tui.panels, ti_tui.panel_format, ti_tui.text_panels, "
            "ti_tui.chart_panels, ti_tui.dashboard, ti_tui.charts, ti_tui.tail, "
            "ti_tui.runner, ti_tui.headless\n"
            "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] == 'textual')))")
    assert fresh_python(code).strip() == ""


def test_the_toy_modules_keep_their_old_names():
    """trainer/demo.py and trainer/toyworld.py moved to trainer/toy/; the old names are the
    same module objects, so old imports and monkeypatches keep working."""
    code = ("import trainer.demo, trainer.toyworld, trainer.toy.demo, trainer.toy.world\n"
            "print(trainer.demo is trainer.toy.demo, trainer.toyworld is trainer.toy.world)")
    assert fresh_python(code).split() == ["True", "True"]
