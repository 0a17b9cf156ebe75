"""A bad model, trigger, initializer or prompt (issue 7, issue 15 kind c): refused in one
sentence naming the field, before anything is written (tests/bad_input_helpers.py)."""

from __future__ import annotations

import pytest

from trainer.embeddings import check_trigger
from trainer.errors import ConfigError, ModelError
from trainer.preflight import preflight

from tests.bad_input_helpers import one_sentence, refused
from tests.helpers import link_model


# --- the model --------------------------------------------------------------------------------


def test_model_path_missing(tiny_config, tmp_path):
    refused(tiny_config(model=str(tmp_path / "no-model")), ModelError, "model",
            str(tmp_path / "no-model"), "does not exist")


def test_model_relative_path_missing(tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(tiny_config(model="./models/sd15"), ModelError, "model", "models/sd15",
            "does not exist")


def test_model_not_a_diffusers_folder(tiny_config, demo_images_dir):
    refused(tiny_config(model=str(demo_images_dir)), ModelError, "model",
            "not a diffusers model folder", "model_index.json")


@pytest.mark.parametrize("missing", ["vae", "tokenizer", "unet"])
def test_model_missing_a_component(tiny_config, tiny_model_dir, tmp_path, missing):
    broken = link_model(tiny_model_dir, tmp_path / "broken", skip=(missing,))
    refused(tiny_config(model=str(broken)), ModelError, "model", f"no {missing}/ folder")


def test_model_name_not_found_lists_the_names(tiny_config, tiny_model_dir, tmp_path):
    root = tmp_path / "invokeai"
    link_model(tiny_model_dir, root / "models" / "sd-1" / "main" / "tiny-a")
    link_model(tiny_model_dir, root / "models" / "sd-1" / "main" / "tiny-b")
    refused(tiny_config(model="stable-diffusion-1.5", root=str(root)), ModelError, "model",
            "not found", "sd-1/main/tiny-a", "sd-1/main/tiny-b")
    # ...and a name that is found is used.
    assert preflight(tiny_config(model="tiny-a", root=str(root))).model_path.name == "tiny-a"


def test_model_name_with_no_models_under_root(tiny_config, tmp_path):
    refused(tiny_config(model="stable-diffusion-1.5", root=str(tmp_path / "empty-root")),
            ModelError, "model", "found no models", "empty-root")


# --- the trigger and the initializer ------------------------------------------------------------


def test_trigger_that_is_a_known_word_is_refused_with_a_new_form(tiny_config):
    tokenizer = preflight(tiny_config()).tokenizer
    with pytest.raises(ConfigError) as info:
        check_trigger(tokenizer, "cat")
    assert info.value.field == "placeholder_token"
    one_sentence(info.value, "'cat' is already a word", "<cat-ti>")


def test_bare_word_trigger_is_wrapped_so_it_is_new(tiny_config):
    # `--placeholder_token cat` means the new token <cat> (as the help says), never the word.
    config = tiny_config(placeholder_token="cat")
    assert config.trigger == "<cat>"
    preflight(config)


def test_initializer_of_several_tokens_names_them(tiny_config):
    text = refused(tiny_config(initializer_token="teddy bear"), ConfigError, "initializer_token",
                   "'teddy', 'bear'", "one token")
    assert "2 tokens" in text


def test_initializer_tokens_must_match_vectors(tiny_config):
    refused(tiny_config(initializer_token="fluffy dog house", num_vectors=2), ConfigError,
            "initializer_token", "3 tokens", "exactly 2 tokens")
    preflight(tiny_config(initializer_token="teddy bear", num_vectors=2))  # one token per vector


# --- what cannot fit what the model sees (issue 15, extra kind c) ------------------------------


def test_vectors_that_would_be_cut_from_the_77_token_window_are_refused(tiny_config):
    # "a close-up painting in the style of {}" takes 11 tokens with begin/end: 66 vectors fit.
    config = tiny_config(learnable_property="style", num_vectors=67, initializer_token="random")
    text = refused(config, ConfigError, "num_vectors", "77-token window", "use at most 66")
    assert "a close-up painting in the style of <star>" in text
    preflight(tiny_config(learnable_property="style", num_vectors=66, initializer_token="random"))


def test_a_preview_prompt_that_would_be_cut_is_refused(tiny_config):
    long_prompt = "a photo of <star> " + "on a very sunny day " * 15
    refused(tiny_config(validation_prompt=long_prompt), ConfigError, "validation_prompt",
            "more than the text encoder's 77", "shorten it")


def test_braces_in_a_preview_prompt_are_text_not_a_format_field():
    from trainer.data import fill, preview_template

    template = preview_template("a {cute} <star> in a {box}", "<star>")
    assert fill(template, "<star> <star>_1") == "a {cute} <star> <star>_1 in a {box}"
    assert preview_template("a cat on a sofa", "<star>") == "a cat on a sofa {}"
