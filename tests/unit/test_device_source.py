"""Advice names the setting that applies (issue 15, extra kind b): a device that is also
$TI_TUI_DEVICE's value (--device's default, trainer/devices.py) names the variable too. Before,
`ti-tui train` with TI_TUI_DEVICE=cpu and --mixed_precision fp16 said only "--device cpu was
chosen" to a user who never typed --device, and TI_TUI_DEVICE=gpu was reported as a bad
--device value alone."""

from __future__ import annotations

import pytest

from trainer import devices
from trainer.config import TrainConfig
from trainer.errors import ConfigError
from trainer.preflight import check_precision


def test_a_bad_value_from_the_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv(devices.DEVICE_ENV, "gpu")
    with pytest.raises(ConfigError) as info:
        TrainConfig()
    assert info.value.field == "device"
    assert str(info.value).startswith("Device (--device, or $TI_TUI_DEVICE, its default) "
                                      "must be")


def test_a_typed_value_is_named_as_the_flag(monkeypatch):
    monkeypatch.delenv(devices.DEVICE_ENV, raising=False)
    with pytest.raises(ConfigError, match=r"^Device \(--device\) must be one of"):
        TrainConfig(device="gpu")


def test_fp16_on_a_cpu_the_environment_chose_names_the_variable(monkeypatch):
    monkeypatch.setenv(devices.DEVICE_ENV, "cpu")
    with pytest.raises(ConfigError) as info:
        check_precision("fp16", "cpu")
    assert "--device cpu was chosen (or $TI_TUI_DEVICE=cpu, its default)" in str(info.value)
    monkeypatch.delenv(devices.DEVICE_ENV)
    with pytest.raises(ConfigError) as info:
        check_precision("fp16", "cpu")
    assert "--device cpu was chosen;" in str(info.value)


def test_a_missing_gpu_the_environment_asked_for_says_how_to_change_it(monkeypatch):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    monkeypatch.setenv(devices.DEVICE_ENV, "cuda")
    with pytest.raises(ConfigError) as info:
        devices.check_device("cuda")
    assert "set $TI_TUI_DEVICE=cpu" in str(info.value)
