"""`ti-tui --gui FLAGS` opens the form filled from the flags, and refuses an unknown one.

It used to drop every flag silently: the form opened empty with no notice.
"""

from __future__ import annotations

from ti_tui.cli import _form_defaults, main

from tests.form_pilot import SIZE, app_for, ready

FLAGS = ["--model", "sd-1/main/tiny", "--placeholder_token", "<lv>",
         "--learning_rate", "0.002", "--train_batch_size", "3"]


def test_the_flags_become_the_form_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    images = tmp_path / "images"
    images.mkdir()
    config = _form_defaults(tmp_path, [*FLAGS, "--train_data_dir", str(images)])
    assert (config.model, config.placeholder_token, config.learning_rate,
            config.train_batch_size) == ("sd-1/main/tiny", "<lv>", "0.002", 3)
    assert config.train_data_dir == str(images) and config.root == str(tmp_path)


def test_an_unknown_flag_is_refused_in_one_sentence(tmp_path, capsys):
    code = main(["--gui", "--root", str(tmp_path), "--placeholder_token", "<lv>", "--bogus", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--bogus" in err and len(err.splitlines()) == 1
    assert "Traceback" not in err


async def test_the_form_opens_with_the_flag_values(root, demo_images_dir):
    defaults = _form_defaults(root, [*FLAGS, "--train_data_dir", str(demo_images_dir)])
    async with app_for(root, defaults=defaults, restore=False).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        assert form.text("placeholder_token") == "<lv>"
        assert form.text("learning_rate") == "0.002"
        assert form.text("train_batch_size") == "3"
        assert form.text("train_data_dir") == str(demo_images_dir)
