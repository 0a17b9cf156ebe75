"""`--device auto|cpu|cuda|cuda:N`: which device a run trains on, checked before anything starts.

- `auto` (the default): the first CUDA GPU when torch sees one, else the CPU; with
  `--num_processes K` each process of `accelerate launch` takes its own GPU, as accelerate
  assigns them (or K CPU processes on a machine without CUDA).
- `cpu`: the CPU even on a machine with a GPU (what the test suite runs on).
- `cuda`: the current CUDA GPU; refused when torch sees none.
- `cuda:N`: GPU number N of the ones torch sees (after CUDA_VISIBLE_DEVICES); one process only.

The default comes from $TI_TUI_DEVICE when it is set, so a machine or a test session can pin the
device for every run without a flag. `check_device_text` is pure (no torch) and runs in
TrainConfig's validation; `check_device` and `resolve_device` need torch.
"""

from __future__ import annotations

import os
import re

DEVICE_ENV = "TI_TUI_DEVICE"
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def default_device() -> str:
    """The default of --device: $TI_TUI_DEVICE when set, else auto."""
    return os.environ.get(DEVICE_ENV, "").strip().lower() or "auto"


def from_environment(device: str) -> bool:
    """Whether `device` is the value $TI_TUI_DEVICE gives --device's default: a message then
    names the variable, since the user may never have typed --device."""
    return os.environ.get(DEVICE_ENV, "").strip().lower() == device.strip().lower() != ""


def device_label(device: str) -> str:
    """"Device (--device)", or "Device (--device, or $TI_TUI_DEVICE, its default)" when the
    value is also the environment variable's (from_environment): the flag or the variable
    set it, and only the user knows which."""
    return (f"Device (--device, or ${DEVICE_ENV}, its default)" if from_environment(device)
            else "Device (--device)")


def _instead(device: str, value: str) -> str:
    """The advice to use `value`: the flag, or also the variable when that set `device`."""
    if from_environment(device):
        return f"pass --device {value} or set ${DEVICE_ENV}={value}"
    return f"use --device {value}"


def check_device_text(text: str, num_processes: int) -> str | None:
    """Why `text` is not a usable --device value for `num_processes` processes, or None."""
    if not DEVICE_PATTERN.match(text):
        return (f"{device_label(text)} must be one of {DEVICE_CHOICES}; got {text!r}.")
    if ":" in text and num_processes > 1:
        return (f"{device_label(text)} {text} picks one GPU, but --num_processes is "
                f"{num_processes}; {_instead(text, 'cuda')} to give each process its own GPU.")
    return None


def check_device(device: str, num_processes: int = 1) -> None:
    """Refuse a device this machine does not have (ConfigError naming --device)."""
    from trainer.errors import ConfigError

    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        build = "this torch was built without CUDA" if torch.version.cuda is None else \
            "no CUDA GPU or driver was found"
        raise ConfigError(f"{device_label(device)} {device} needs a CUDA GPU, but {build}; "
                          f"{_instead(device, 'cpu')} (or auto).", field="device")
    count = torch.cuda.device_count()
    if ":" in device and int(device.split(":")[1]) >= count:
        raise ConfigError(f"{device_label(device)} {device} does not exist: torch sees {count} "
                          f"CUDA GPU{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1}); "
                          "pick one of them.", field="device")
    if num_processes > count:
        raise ConfigError(f"Processes (--num_processes) {num_processes} need as many GPUs with "
                          f"--device {device}, but torch sees {count}; lower --num_processes "
                          "or use --device cpu.", field="num_processes")


def device_type(device: str) -> str:
    """'cuda' or 'cpu': where `device` (auto resolved on this machine) puts the run."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if device.startswith("cuda") else "cpu"


def resolve_device(device: str, accelerator=None):
    """The torch.device a process trains on.

    With several processes accelerate has already placed each on its own device (CPU processes
    when the runner set ACCELERATE_USE_CPU for --device cpu), so its choice is used. In one
    process ti-tui decides itself, so that runs on different devices can follow each other in
    one Python process (accelerate keeps its first device for the life of the process).
    """
    import torch

    if accelerator is not None and accelerator.num_processes > 1:
        return accelerator.device
    if device_type(device) == "cpu":
        return torch.device("cpu")
    if ":" in device:
        return torch.device(device)
    return torch.device("cuda", torch.cuda.current_device())
