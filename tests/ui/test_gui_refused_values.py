"""`ti-tui --gui FLAGS` with a value TrainConfig refuses (`--resolution 500`) opens the form
with that value in its field, marked with why and focused, instead of exiting 2 before the
form could help fix it. An unknown flag is still refused in one sentence (test_gui_flags.py).
"""

from __future__ import annotations

import pytest

from ti_tui.cli import _form_defaults, main
from trainer.errors import ConfigError

from tests.form_pilot import SIZE, app_for, ready

GOOD = ["--model", "sd-1/main/tiny", "--placeholder_token", "<lv>", "--train_batch_size", "3"]
BAD = ["--resolution", "500", "--learning_rate", "abc", "--lr_scheduler", "bogus"]


def test_each_refused_value_is_kept_apart_and_the_rest_applies(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    refused: dict[str, tuple[str, str]] = {}
    config = _form_defaults(tmp_path, [*GOOD, *BAD], refused)
    assert (config.placeholder_token, config.train_batch_size) == ("<lv>", 3)
    assert set(refused) == {"resolution", "learning_rate", "lr_scheduler"}
    assert refused["resolution"][0] == "500"
    assert "multiple of 8" in refused["resolution"][1]
    assert refused["learning_rate"][0] == "abc" and refused["lr_scheduler"][0] == "bogus"
    # Without a place to put them (the old callers), the first refusal is still raised.
    with pytest.raises(ConfigError):
        _form_defaults(tmp_path, [*GOOD, *BAD])


async def test_the_form_opens_with_the_refused_values_marked(root, demo_images_dir):
    refused: dict[str, tuple[str, str]] = {}
    defaults = _form_defaults(root, [*GOOD, "--train_data_dir", str(demo_images_dir), *BAD],
                              refused)
    app = app_for(root, defaults=defaults, restore=False, refused=refused)
    async with app.run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        # Typed fields show the value as given, so it can be fixed in place.
        assert form.text("resolution") == "500"
        assert form.text("learning_rate") == "abc"
        # A set of choices cannot show "bogus": it keeps its value and says why.
        assert form.text("lr_scheduler") == defaults.lr_scheduler
        for name, words in (("resolution", "multiple of 8"), ("learning_rate", "abc"),
                            ("lr_scheduler", "bogus")):
            row = form.rows[name]
            assert row.level == "error" and words in row.message, (name, row.message)
        # The first refused field in form order has the focus.
        assert form._field_of(app.focused) == "resolution"
        # Start is refused until they are fixed.
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is form
        # Fixing the resolution clears its mark.
        form.resolution_picker.custom_input.value = "496"
        await pilot.pause()
        assert form.rows["resolution"].level != "error"


def test_without_a_terminal_the_refusal_itself_is_the_sentence(tmp_path, capsys):
    # pytest's stdin is not a terminal: no form to fix it in, so the refusal is said (exit 2).
    code = main(["--gui", "--root", str(tmp_path), *GOOD, "--resolution", "500"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "--resolution" in err and "multiple of 8" in err and "Traceback" not in err
