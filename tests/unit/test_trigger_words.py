"""A trigger that is an everyday word never becomes the A1111/ComfyUI prompt word.

`--placeholder_token cat` trains as <cat>; it used to say nothing about the rename and to
write cat.safetensors, which A1111/Forge and ComfyUI load under the prompt word "cat",
taking over that word in every prompt.
"""

from __future__ import annotations

from trainer.config import TrainConfig, wrap_trigger
from trainer.formats import FORMATS, standalone_stem
from trainer.install_guide import tool_lines
from trainer.names import is_vocabulary_word, rename_notice


def test_a_vocabulary_word_gets_a_distinct_file_name():
    assert is_vocabulary_word("cat") and is_vocabulary_word("Cat")
    assert not is_vocabulary_word("cat-ti") and not is_vocabulary_word("zorblax")
    assert standalone_stem("<cat>") == "cat-ti"
    assert standalone_stem("<zorblax>") == "zorblax"
    assert FORMATS["standalone"].file_name("<cat>") == "cat-ti.safetensors"
    assert FORMATS["a1111"].file_name("<cat>", "-steps-5") == "cat-ti-steps-5.pt"


def test_the_end_lines_name_the_distinct_word(tmp_path):
    (tmp_path / "cat-ti.safetensors").write_bytes(b"x")
    (tmp_path / "learned_embeds.bin").write_bytes(b"x")
    lines = "\n".join(tool_lines(tmp_path, "<cat>"))
    assert "prompt word cat-ti)" in lines and "embedding:cat-ti)" in lines
    assert "prompt word cat)" not in lines


def test_the_rename_is_said():
    config = TrainConfig(placeholder_token="cat")
    assert config.trigger == "<cat>"
    notice = rename_notice(config.placeholder_token, config.trigger, standalone_stem("<cat>"))
    assert notice is not None and "<cat>" in notice and "cat-ti" in notice
    assert "already knows" in notice
    assert rename_notice("<my-cat>", "<my-cat>", "my-cat") is None


def test_a_bracketed_vocabulary_word_is_told_its_file_name():
    # Typed as <gs>: the trigger is unchanged, but the files and the A1111 word are gs-ti.
    notice = rename_notice("<gs>", "<gs>", standalone_stem("<gs>"))
    assert notice is not None and "gs-ti.safetensors" in notice and "already knows" in notice


def test_the_runs_list_reads_a_trigger_as_the_config_wraps_it(tmp_path):
    from ti_tui.runs_index import _toml_trigger

    for typed in ("cat", "<cat", "<cat>"):
        (tmp_path / "run.toml").write_text(f'placeholder_token = "{typed}"\n')
        assert _toml_trigger(tmp_path) == wrap_trigger(typed)
