"""Preflight's model checks that need more than the first tokenizer: SDXL's second tokenizer
refuses a trigger it already holds before anything is written, and --model_config given with
a diffusers folder is reported as ignored instead of silently dropped."""

from __future__ import annotations

import pytest

from tests.helpers import link_model, make_config
from trainer.errors import ConfigError
from trainer.preflight import preflight


def test_an_sdxl_second_tokenizer_that_already_knows_the_trigger_is_refused_before_writing(
        tiny_sdxl_dir, demo_images_dir, tmp_path):
    from transformers import CLIPTokenizer

    model = link_model(tiny_sdxl_dir, tmp_path / "fine-tune", skip=("tokenizer_2",))
    second = CLIPTokenizer.from_pretrained(str(tiny_sdxl_dir / "tokenizer_2"))
    second.add_tokens(["<star>"])  # a fine-tune that baked an embedding into tokenizer 2 only
    second.save_pretrained(str(model / "tokenizer_2"))
    config = make_config(model, demo_images_dir, tmp_path)
    with pytest.raises(ConfigError) as caught:
        preflight(config, check_device=False)
    assert caught.value.field == "placeholder_token" and "<star>" in str(caught.value)
    assert not config.output_path.exists()


def test_the_same_trigger_passes_an_sdxl_model_whose_tokenizers_do_not_know_it(
        tiny_sdxl_dir, demo_images_dir, tmp_path):
    checked = preflight(make_config(tiny_sdxl_dir, demo_images_dir, tmp_path),
                        check_device=False)
    assert checked.facts.family == "sdxl"


def test_model_config_with_a_diffusers_folder_is_reported_as_ignored(
        tiny_model_dir, demo_images_dir, tmp_path):
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path,
                         model_config=str(tiny_model_dir))
    warnings = preflight(config, check_device=False).warnings
    assert any("--model_config" in w and "ignored" in w for w in warnings)
    plain = preflight(make_config(tiny_model_dir, demo_images_dir, tmp_path / "plain"),
                      check_device=False).warnings
    assert not any("--model_config" in w for w in plain)
