"""Bad values and device choices (issue 7): TrainConfig refuses a bad value however it came in
(flags, run.toml, the form), preflight a device the machine does not have; each in one
sentence naming the flag, writing nothing (tests/bad_input_helpers.py)."""

from __future__ import annotations

import pytest
import torch

from trainer.config import TrainConfig
from trainer.errors import ConfigError
from trainer.preflight import preflight

from tests.bad_input_helpers import one_sentence, refused


def test_the_base_config_passes(tiny_config):
    checked = preflight(tiny_config())
    assert checked.images and not tiny_config().output_path.exists()


# --- values: TrainConfig refuses them, whichever way they came in --------------------------

VALUE_CASES = [
    ({"resolution": 30}, "resolution", "multiple of 8"),
    ({"resolution": 0}, "resolution", "at least 8"),
    ({"resolution": -512}, "resolution", "at least 8"),
    ({"resolution": "big"}, "resolution", "whole number"),
    ({"train_batch_size": 0}, "train_batch_size", "at least 1"),
    ({"train_batch_size": -2}, "train_batch_size", "at least 1"),
    ({"train_batch_size": 1.5}, "train_batch_size", "whole number"),
    ({"train_batch_size": "2.5"}, "train_batch_size", "whole number"),
    ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps", "at least 1"),
    ({"gradient_accumulation_steps": "x"}, "gradient_accumulation_steps", "whole number"),
    ({"max_train_steps": -1}, "max_train_steps", "at least 1"),
    ({"max_train_steps": "lots"}, "max_train_steps", "whole number"),
    ({"num_train_epochs": 0}, "num_train_epochs", "at least 1"),
    ({"num_train_epochs": 2.5}, "num_train_epochs", "whole number"),
    ({"num_vectors": 0}, "num_vectors", "at least 1"),
    ({"num_vectors": "two"}, "num_vectors", "whole number"),
    ({"num_vectors": 76}, "num_vectors", "at most 75"),
    ({"learning_rate": "fast"}, "learning_rate", "not a number"),
    ({"learning_rate": ""}, "learning_rate", "empty"),
    ({"learning_rate": "0.005:1.5, 1e-4"}, "learning_rate", "whole step number"),
    ({"clip_grad_mode": "norm", "clip_grad_value": "tight"}, "clip_grad_value",
     "not a number"),
    ({"clip_grad_mode": "value", "clip_grad_value": "0.1:abc"}, "clip_grad_value",
     "whole step number"),
    ({"dvar_threshold": 0}, "dvar_threshold", "strictly between 0 and 1"),
    ({"dvar_threshold": 1}, "dvar_threshold", "strictly between 0 and 1"),
    ({"dvar_threshold": -0.1}, "dvar_threshold", "strictly between 0 and 1"),
    ({"dvar_threshold": 1.5}, "dvar_threshold", "strictly between 0 and 1"),
    ({"dvar_threshold": "low"}, "dvar_threshold", "must be a number"),
    ({"dvar_window": 1}, "dvar_window", "at least 2"),
    ({"dvar_window": 0}, "dvar_window", "at least 2"),
    ({"mixed_precision": "fp8"}, "mixed_precision", "one of no, fp16, bf16"),
    ({"lr_scheduler": "exponential"}, "lr_scheduler", "one of constant"),
    ({"optimizer": "sgd"}, "optimizer", "one of adamw, sam"),
    ({"learnable_property": "face"}, "learnable_property", "one of object, style"),
    ({"placeholder_token": "my cat"}, "placeholder_token", "try <my-cat>"),
    ({"placeholder_token": "cat!"}, "placeholder_token", "letters, digits"),
    ({"placeholder_token": "<so cute>"}, "placeholder_token", "letters, digits"),
]


@pytest.mark.parametrize(("changes", "field", "words"), VALUE_CASES,
                         ids=[f"{next(iter(c))}={list(c.values())[-1]!r}"
                              for c, _, _ in VALUE_CASES])
def test_bad_value_names_its_flag(changes, field, words, tmp_path):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{"placeholder_token": "tok", "output_dir": str(tmp_path / "out"),
                       **changes})
    assert info.value.field == field
    one_sentence(info.value, words, f"--{field}" if field != "placeholder_token" else "")
    assert not (tmp_path / "out").exists()


def test_bad_value_in_run_toml_names_file_and_field(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[data]\nresolution = 500\n[token]\nplaceholder_token = "tok"\n')
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_toml(path)
    assert info.value.field == "resolution"
    one_sentence(info.value, "--resolution", "multiple of 8", "got 500")
    path.write_text('[training]\ntrain_batch_size = "four"\n')
    with pytest.raises(ConfigError, match="whole number"):
        TrainConfig.from_toml(path)


# --- device -----------------------------------------------------------------------------------


def test_fp16_on_the_cpu(tiny_config):
    """Refused on any machine: the tests' configs pin --device cpu, GPU or not."""
    refused(tiny_config(mixed_precision="fp16"), ConfigError, "mixed_precision",
            "fp16 needs a CUDA GPU", "--device cpu was chosen", "--mixed_precision no")


def test_fp16_on_auto_without_a_gpu(tiny_config, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    refused(tiny_config(mixed_precision="fp16", device="auto"), ConfigError, "mixed_precision",
            "fp16 needs a CUDA GPU", "no CUDA GPU was found")


def test_cuda_asked_on_a_machine_without_it(tiny_config, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    refused(tiny_config(device="cuda"), ConfigError, "device", "--device", "needs a CUDA GPU",
            "--device cpu")


def test_a_gpu_number_the_machine_does_not_have(tiny_config, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    refused(tiny_config(device="cuda:2"), ConfigError, "device", "cuda:2 does not exist",
            "2 CUDA GPUs", "cuda:0 to cuda:1")


def test_more_gpu_processes_than_gpus(tiny_config, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    refused(tiny_config(device="cuda", num_processes=2), ConfigError, "num_processes",
            "--num_processes", "torch sees 1")


def test_bf16_on_a_gpu_without_bf16(tiny_config, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    refused(tiny_config(mixed_precision="bf16", device="cuda"), ConfigError, "mixed_precision",
            "bf16 is not supported by this GPU", "--mixed_precision fp16")
