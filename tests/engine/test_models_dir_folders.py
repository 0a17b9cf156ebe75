"""A diffusers folder inside a --models_dir is one model, never a heap of broken checkpoints.

`ti-tui models --models_dir DIR` used to list a diffusers folder's unet/, vae/ and
text_encoder/ weight files each as "not a full Stable Diffusion checkpoint".
"""

from __future__ import annotations

from trainer.discovery import find_models, resolve_model

from tests.helpers import link_model


def test_a_diffusers_folder_in_a_models_dir_is_listed_as_one_model(tmp_path, tiny_model_dir):
    folder = tmp_path / "checkpoints"
    model = link_model(tiny_model_dir, folder / "diffusers" / "tiny-base")
    weights = [p.name for p in (model / "unet").resolve().iterdir()]
    assert any(n.endswith((".safetensors", ".bin")) for n in weights)  # the old code listed it
    entries = find_models(tmp_path / "no-root", [folder], describe_all=True)
    assert [(e.name, e.format, e.problem) for e in entries] == [
        ("diffusers/tiny-base", "diffusers", None)]
    assert entries[0].family == "SD1" and entries[0].path == model
    assert resolve_model("tiny-base", tmp_path / "no-root", models_dirs=[folder]) == model


def test_a_models_dir_that_is_itself_a_diffusers_folder(tmp_path, tiny_model_dir):
    model = link_model(tiny_model_dir, tmp_path / "sd-base")
    entries = find_models(tmp_path / "no-root", [model])
    assert [(e.name, e.path) for e in entries] == [("sd-base", model)]
