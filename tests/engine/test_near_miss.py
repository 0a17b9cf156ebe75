"""A path or model name one slip from an existing one: the refusal says which one was meant
(trainer/paths.near_miss), for every user path that "does not exist"."""

from __future__ import annotations

import pytest

from trainer import data, discovery, formats, paths, preflight
from trainer.config import TrainConfig
from trainer.errors import UserError


@pytest.fixture
def models(tmp_path):
    for name in ("sd15-anime", "sdxl-base", "Realistic_Vision"):
        (tmp_path / name).mkdir()
    return tmp_path


@pytest.mark.parametrize("typed, meant", [
    ("sd15-anim", "sd15-anime"),          # a dropped letter
    ("sd-15-anime", "sd15-anime"),        # an added dash
    ("realistic_vision", "Realistic_Vision"),  # letter case: suggested as it is on disk
])
def test_a_near_path_is_suggested_in_full(models, typed, meant):
    assert paths.near_miss(models / typed) == f" (did you mean {models / meant}?)"


def test_nothing_is_suggested_for_an_unrelated_name_or_a_missing_parent(models):
    assert paths.near_miss(models / "kandinsky") == ""
    assert paths.near_miss(models / "no-such-folder" / "sd15-anime") == ""
    assert paths.near_miss("zzz", ["sd15-anime", "sdxl-base"]) == ""


def test_hidden_entries_are_never_suggested(models):
    (models / ".cache").mkdir()
    assert paths.near_miss(models / "cache") == ""


@pytest.mark.parametrize("refuse, typed, field", [
    (data.list_images, "sd15-anim", "train_data_dir"),
    (lambda p: preflight.check_model_path(str(p)), "sdxl-bse", "model"),
    (formats.load_embedding, "sd15-anime.safetensor", "initial_embedding"),
    (TrainConfig.from_toml, "sd15-anime.tom", "config"),
])
def test_each_does_not_exist_refusal_names_the_near_path(models, refuse, typed, field):
    (models / "sd15-anime.toml").write_text("")
    (models / "sd15-anime.safetensors").write_bytes(b"")
    with pytest.raises(UserError) as caught:
        refuse(models / typed)
    message = str(caught.value)
    assert "does not exist (did you mean " in message and str(models) in message
    assert caught.value.field == field


def test_a_model_name_typo_names_the_found_model(tmp_path, tiny_model_dir):
    root = tmp_path / "root"
    (root / "models").mkdir(parents=True)
    (root / "models" / "dreamshaper").symlink_to(tiny_model_dir)
    with pytest.raises(UserError) as caught:
        discovery.resolve_model("dreamshapr", root)
    assert '"dreamshapr" (did you mean dreamshaper?) was not found' in str(caught.value)


def test_the_forms_data_folder_note_names_the_near_folder(models):
    from ti_tui.screens.form_checks import count_images

    _, note = count_images(str(models / "sdxl-bas"))
    assert note.level == "error" and f"did you mean {models / 'sdxl-base'}?" in note.text
