"""TrainConfig validation, the generated flags, and run.toml round trips."""

from __future__ import annotations

import dataclasses

import pytest

from trainer.config import TrainConfig, default_root
from trainer.errors import ConfigError
from trainer.flags import build_parser, parse_config

# Every flag of invokeai-ti (anchors.md 1.2), with a value and the field it must set.
INVOKEAI_FLAGS = [
    (["--root_dir", "/r"], "root", "/r"),
    (["--root", "/r2"], "root", "/r2"),
    (["--logging_dir", "tb"], "logging_dir", "tb"),
    (["--output_dir", "/o"], "output_dir", "/o"),
    (["--model", "sd-1/main/x"], "model", "sd-1/main/x"),
    (["--revision", "main"], "revision", "main"),
    (["--tokenizer_name", "/tok"], "tokenizer_name", "/tok"),
    (["--train_data_dir", "/d"], "train_data_dir", "/d"),
    (["--resolution", "768"], "resolution", 768),
    (["--center_crop"], "center_crop", True),
    (["--placeholder_token", "<x>"], "placeholder_token", "<x>"),
    (["--trigger_term", "y"], "placeholder_token", "y"),
    (["--learnable_property", "style"], "learnable_property", "style"),
    (["--initializer_token", "cat"], "initializer_token", "cat"),
    (["--checkpointing_steps", "250"], "checkpointing_steps", 250),
    (["--resume_from_checkpoint", "latest"], "resume_from_checkpoint", "latest"),
    (["--save_steps", "100"], "save_steps", 100),
    (["--repeats", "10"], "repeats", 10),
    (["--seed", "42"], "seed", 42),
    (["--train_batch_size", "3"], "train_batch_size", 3),
    (["--num_train_epochs", "7"], "num_train_epochs", 7),
    (["--max_train_steps", "3000"], "max_train_steps", 3000),
    (["--gradient_accumulation_steps", "4"], "gradient_accumulation_steps", 4),
    (["--gradient_checkpointing"], "gradient_checkpointing", True),
    (["--learning_rate", "0.0005"], "learning_rate", "0.0005"),
    (["--scale_lr"], "scale_lr", True),
    (["--no_scale_lr"], "scale_lr", False),
    (["--lr_scheduler", "cosine"], "lr_scheduler", "cosine"),
    (["--lr_warmup_steps", "10"], "lr_warmup_steps", 10),
    (["--adam_beta1", "0.8"], "adam_beta1", 0.8),
    (["--adam_beta2", "0.99"], "adam_beta2", 0.99),
    (["--adam_weight_decay", "0.01"], "adam_weight_decay", 0.01),
    (["--adam_epsilon", "1e-6"], "adam_epsilon", 1e-6),
    (["--mixed_precision", "bf16"], "mixed_precision", "bf16"),
    (["--allow_tf32"], "allow_tf32", True),
    (["--local_rank", "0"], "local_rank", 0),
    (["--enable_xformers_memory_efficient_attention"],
     "enable_xformers_memory_efficient_attention", True),
    (["--only_save_embeds"], "only_save_embeds", True),
    (["--hub_model_id", "me/x"], "hub_model_id", "me/x"),
    (["--hub_token", "t"], "hub_token", "t"),
    (["--report_to", "wandb"], "report_to", "wandb"),
    # diffusers' example flags the issue names too
    (["--num_vectors", "3"], "num_vectors", 3),
    (["--checkpoints_total_limit", "2"], "checkpoints_total_limit", 2),
    (["--lr_num_cycles", "3"], "lr_num_cycles", 3.0),
    (["--validation_prompt", "a <x> dog"], "validation_prompt", "a <x> dog"),
    (["--validation_steps", "50"], "validation_steps", 50),
    (["--save_as", "a1111"], "save_as", "a1111"),
    (["--no_safe_serialization"], "no_safe_serialization", True),
]


@pytest.mark.parametrize(("argv", "field", "value"), INVOKEAI_FLAGS,
                         ids=[a[0] for a, _, _ in INVOKEAI_FLAGS])
def test_each_invokeai_flag_sets_its_field(argv, field, value):
    config = parse_config(["--placeholder_token", "tok", *argv])
    assert getattr(config, field) == value


def test_invokeai_typical_usage_parses_exactly_as_written():
    argv = ("--model=stable-diffusion-1.5 --resolution=512 --learnable_property=style "
            "--initializer_token=* --placeholder_token=<psychedelic> "
            "--train_data_dir=~/invokeai/training-data/psychedelic "
            "--output_dir=~/invokeai/text-inversion-output/psychedelic --scale_lr "
            "--train_batch_size=8 --gradient_accumulation_steps=4 --max_train_steps=3000 "
            "--learning_rate=0.0005 --resume_from_checkpoint=latest --lr_scheduler=constant "
            "--mixed_precision=fp16 --only_save_embeds").split()
    config = parse_config(argv)
    assert config.trigger == "<psychedelic>"
    assert config.resume_from_checkpoint == "latest"
    assert config.effective_lr_scale == 32.0
    assert config.train_batch_size == 8 and config.gradient_accumulation_steps == 4
    assert config.mixed_precision == "fp16" and config.learnable_property == "style"


def test_every_config_field_has_a_flag_and_help():
    help_text = build_parser("ti-tui train").format_help()
    for f in dataclasses.fields(TrainConfig):
        assert f"--{f.name}" in help_text, f.name
        assert f.metadata["help"] and f.metadata["label"]


def test_root_defaults_to_invokeai_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("INVOKEAI_ROOT", str(tmp_path))
    assert default_root() == str(tmp_path)
    assert TrainConfig(placeholder_token="x").root == str(tmp_path)
    monkeypatch.delenv("INVOKEAI_ROOT")
    assert TrainConfig().root.endswith("invokeai")


def test_trigger_is_wrapped_and_output_defaults_under_root(tmp_path):
    config = TrainConfig(placeholder_token="my-cat", root=str(tmp_path))
    assert config.trigger == "<my-cat>" and config.trigger_name == "my-cat"
    assert config.output_path == tmp_path / "text-inversion-output" / "my-cat"
    relative = config.replace(output_dir="runs/a")
    assert relative.output_path == tmp_path / "runs" / "a"


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"train_batch_size": 0}, "train_batch_size", "at least 1"),
    ({"train_batch_size": "two"}, "train_batch_size", "whole number"),
    ({"gradient_accumulation_steps": -1}, "gradient_accumulation_steps", "at least 1"),
    ({"max_train_steps": 0}, "max_train_steps", "at least 1"),
    ({"num_train_epochs": 0}, "num_train_epochs", "at least 1"),
    ({"num_vectors": 0}, "num_vectors", "at least 1"),
    ({"resolution": 500}, "resolution", "multiple of 8"),
    ({"resolution": -8}, "resolution", "at least"),
    ({"learning_rate": "fast"}, "learning_rate", "Invalid learning rate schedule"),
    ({"learning_rate": "-1"}, "learning_rate", "rates of 0 or more"),
    ({"learning_rate": "0.01:10, nan"}, "learning_rate", "rates of 0 or more"),
    ({"clip_grad_mode": "norm", "clip_grad_value": "x"}, "clip_grad_value", "Invalid"),
    ({"dvar_threshold": 1.5}, "dvar_threshold", "between 0 and 1"),
    ({"dvar_threshold": 0}, "dvar_threshold", "between 0 and 1"),
    ({"dvar_window": 1}, "dvar_window", "at least 2"),
    ({"mixed_precision": "fp8"}, "mixed_precision", "one of no, fp16, bf16"),
    ({"lr_scheduler": "step"}, "lr_scheduler", "one of"),
    ({"optimizer": "sgd"}, "optimizer", "one of adamw, sam"),
    ({"learnable_property": "face"}, "learnable_property", "one of object, style"),
    ({"placeholder_token": "my cat"}, "placeholder_token", "letters, digits"),
    ({"placeholder_token": "cat$"}, "placeholder_token", "letters, digits"),
    ({"push_to_hub": True}, "push_to_hub", "never uploads"),
])
def test_bad_values_name_the_field(changes, field, words):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{"placeholder_token": "tok", **changes})
    assert info.value.field == field
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_form_strings_are_coerced():
    config = TrainConfig.from_dict({"train_batch_size": "4", "center_crop": "yes",
                                    "dvar_threshold": "0.15", "seed": "", "resolution": "none"})
    assert config.train_batch_size == 4 and config.center_crop is True
    assert config.dvar_threshold == 0.15 and config.seed is None and config.resolution is None


def test_unknown_setting_in_a_file_is_refused(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[training]\ntrain_batch_size = 2\nbatch_sise = 3\n')
    with pytest.raises(ConfigError, match="unknown setting 'batch_sise'"):
        TrainConfig.from_toml(path)


def test_run_toml_round_trip_and_override(tmp_path):
    config = parse_config(["--placeholder_token", "tok", "--learning_rate", "0.005:100, 1e-4",
                           "--train_batch_size", "3", "--seed", "9", "--no_scale_lr"])
    path = tmp_path / "run.toml"
    path.write_text(config.to_toml())
    assert TrainConfig.from_toml(path) == config
    rerun = parse_config(["--config", str(path), "--train_batch_size", "5"])
    assert rerun.train_batch_size == 5
    assert rerun.replace(train_batch_size=3) == config


def test_bad_toml_and_missing_file_are_one_line_errors(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        TrainConfig.from_toml(path)
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.from_toml(tmp_path / "missing.toml")


def test_unknown_flag_is_a_config_error():
    with pytest.raises(ConfigError, match="unrecognized arguments: --bogus"):
        parse_config(["--bogus", "1"])
