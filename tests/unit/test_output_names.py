"""More text that becomes a folder name (issue 15, extra kind a), found after the first sweep:
a trigger named like the file ti-tui keeps beside the run folders, and the demo's choice of a
fresh folder, which must skip a finished run whose checkpoints were deleted (a fresh run there
is now refused: it would write over that run's embedding)."""

from __future__ import annotations

import pytest

from trainer.config import TrainConfig
from trainer.errors import ConfigError
from trainer.formats import earlier_embeddings
from trainer.names import OUTPUT_FOLDER_FILES, check_trigger_text


@pytest.mark.parametrize("text", ["preferences.toml", "<Preferences.TOML>"])
def test_a_trigger_named_like_the_preferences_file_is_refused(text, tmp_path):
    with pytest.raises(ConfigError) as info:
        TrainConfig(placeholder_token=text)
    message = str(info.value)
    assert info.value.field == "placeholder_token" and "form's values" in message
    offered = message.rsplit("try ", 1)[1].rstrip(".")
    check_trigger_text(offered)  # the suggestion passes every rule
    assert offered.strip("<>").lower() not in OUTPUT_FOLDER_FILES


def test_the_preferences_file_name_is_the_one_the_rule_protects():
    from ti_tui.preferences import PREFERENCES_NAME

    assert PREFERENCES_NAME in OUTPUT_FOLDER_FILES


def test_earlier_embeddings_are_the_trigger_s_own_files_only(tmp_path):
    (tmp_path / "embeddings").mkdir()
    for name in ("other.safetensors", "embeddings/other-steps-5.safetensors", "run.toml"):
        (tmp_path / name).write_bytes(b"x")
    assert earlier_embeddings(tmp_path, "<my-moon>") == []
    for name in ("my-moon.pt", "learned_embeds.bin", "embeddings/my-moon-steps-5.safetensors"):
        (tmp_path / name).write_bytes(b"x")
    # Final files only: snapshots alone are what a run that failed early leaves, and it may
    # be started again in its folder.
    assert [p.relative_to(tmp_path).as_posix() for p in earlier_embeddings(tmp_path, "<my-moon>")
            ] == ["learned_embeds.bin", "my-moon.pt"]
    assert earlier_embeddings(tmp_path / "missing", "<my-moon>") == []


def test_the_demo_skips_a_finished_run_whose_checkpoints_were_deleted(tmp_path):
    from trainer.formats import standalone_stem
    from ti_tui.demo_setup import DEMO_CONCEPT, demo_output_dir

    first = tmp_path / DEMO_CONCEPT
    first.mkdir()
    (first / f"{standalone_stem(f'<{DEMO_CONCEPT}>')}.safetensors").write_bytes(b"x")
    assert demo_output_dir(tmp_path) == (tmp_path / f"{DEMO_CONCEPT}-2", False)
