"""ti_tui/preferences.py: the last settings, saved on start and restored (all but the trigger)."""

from __future__ import annotations

import tomllib

from ti_tui.preferences import (
    NOT_SAVED,
    apply_preferences,
    load_preferences,
    preferences_path,
    restore_preferences,
    save_preferences,
)
from trainer.config import TrainConfig


def test_round_trip_leaves_out_the_trigger_root_and_resume(tmp_path):
    config = TrainConfig(root=str(tmp_path), placeholder_token="<cat>", train_batch_size=3,
                         learning_rate="0.005:100, 1e-3", resume_from_checkpoint="latest",
                         hub_token="secret", mixed_precision="bf16", seed=7)
    path = save_preferences(tmp_path, config)
    assert path == tmp_path / "text-inversion-output" / "preferences.toml"
    data = tomllib.loads(path.read_text())
    assert not NOT_SAVED & set(data)
    assert [p.name for p in path.parent.iterdir()] == ["preferences.toml"]  # no temp files
    restored, notes = restore_preferences(tmp_path, TrainConfig(root=str(tmp_path)))
    assert notes == []
    assert restored.placeholder_token == "" and restored.resume_from_checkpoint is None
    assert restored.hub_token is None
    assert (restored.train_batch_size, restored.learning_rate, restored.mixed_precision,
            restored.seed) == (3, "0.005:100, 1e-3", "bf16", 7)


def test_no_file_changes_nothing(tmp_path):
    base = TrainConfig(root=str(tmp_path))
    assert restore_preferences(tmp_path, base) == (base, [])


def test_unreadable_file_is_ignored_with_a_note(tmp_path):
    preferences_path(tmp_path).parent.mkdir(parents=True)
    preferences_path(tmp_path).write_text("this is = = not toml")
    values, notes = load_preferences(tmp_path)
    assert values == {} and len(notes) == 1 and "Ignored saved settings" in notes[0]


def test_stale_values_are_dropped_one_by_one(tmp_path):
    base = TrainConfig(root=str(tmp_path))
    config, notes = apply_preferences(base, {"train_batch_size": 0, "no_such_setting": 1,
                                             "num_vectors": 4, "placeholder_token": "<x>"})
    assert config.num_vectors == 4
    assert config.train_batch_size == base.train_batch_size
    assert config.placeholder_token == ""
    assert len(notes) == 2
    assert any("Batch size" in n and "at least 1" in n for n in notes)
    assert any("no_such_setting" in n for n in notes)
