"""`--device auto|cpu|cuda|cuda:N` (issue 16), and the CUDA paths (tests marked `gpu`).

The suite runs on the CPU on any machine: tests/conftest.py sets TI_TUI_DEVICE=cpu (the default
of --device) and tests/helpers.make_config says device="cpu". The `gpu` tests below ask for
"cuda" and are skipped where torch sees no GPU (`pytest -m gpu` selects them on a GPU machine).
"""

from __future__ import annotations

import pytest
import torch

from ti_tui.runner import trainer_command
from trainer import train
from trainer.config import TrainConfig
from trainer.control import Control
from trainer.devices import resolve_device
from trainer.errors import ConfigError

from tests.helpers import make_config

CUDA_RESUME_TOLERANCE = 1e-4
"""A resumed CUDA run against a straight one: the embedding backward on CUDA adds with atomics
(the order of the additions varies) and cuDNN may pick other algorithms in a new process, so
the two agree to float tolerance, not bit for bit (on the CPU they agree to 1e-6:
tests/engine/test_resume.py)."""


# --- the option ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value, kept", [("auto", "auto"), ("cpu", "cpu"), ("cuda", "cuda"),
                                         (" CUDA:1 ", "cuda:1")])
def test_device_values(value, kept):
    assert TrainConfig(placeholder_token="x", device=value).device == kept


@pytest.mark.parametrize("value, words", [
    ("gpu", ("Device (--device)", "auto, cpu, cuda or cuda:N", "'gpu'")),
    ("cuda:x", ("auto, cpu, cuda or cuda:N",)),
    ("mps", ("auto, cpu, cuda or cuda:N",)),
])
def test_bad_device_values_are_refused_in_one_sentence(value, words):
    with pytest.raises(ConfigError) as info:
        TrainConfig(placeholder_token="x", device=value)
    assert info.value.field == "device" and "\n" not in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_one_gpu_number_cannot_serve_several_processes():
    with pytest.raises(ConfigError, match="use --device cuda to give each process its own GPU"):
        TrainConfig(placeholder_token="x", device="cuda:1", num_processes=2)


def test_the_default_comes_from_ti_tui_device(monkeypatch):
    assert TrainConfig(placeholder_token="x").device == "cpu"  # conftest pins the suite
    monkeypatch.setenv("TI_TUI_DEVICE", "cuda:0")
    assert TrainConfig(placeholder_token="x").device == "cuda:0"
    monkeypatch.delenv("TI_TUI_DEVICE")
    assert TrainConfig(placeholder_token="x").device == "auto"


def test_the_device_round_trips_through_run_toml(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(TrainConfig(placeholder_token="x", device="cuda:1").to_toml())
    assert TrainConfig.from_toml(path).device == "cuda:1"


def test_resolving_the_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)


def test_cpu_processes_on_a_gpu_machine_use_gloo(tmp_path, monkeypatch):
    """--device cpu with --num_processes 2 runs CPU processes even where CUDA exists."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cpu = TrainConfig(placeholder_token="x", output_dir=str(tmp_path), num_processes=2,
                      device="cpu")
    assert trainer_command(cpu, tmp_path / "run.toml")[1]["ACCELERATE_USE_CPU"] == "true"
    auto = cpu.replace(device="auto")
    assert "ACCELERATE_USE_CPU" not in trainer_command(auto, tmp_path / "run.toml")[1]


def test_a_cpu_run_reports_the_cpu_and_returns_cpu_vectors(tiny_model_dir, demo_images_dir,
                                                           tmp_path):
    events: list = []
    result = train(make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=1,
                               save_steps=0, checkpointing_steps=0), emit=events.append)
    started = next(e for e in events if e.type == "run_started")
    assert started.device == "cpu" and started.config["device"] == "cpu"
    assert result.vectors.device.type == "cpu"


# --- the CUDA paths -------------------------------------------------------------------------------
def capture_session(monkeypatch) -> dict:
    """What the run set up before its first update (read from the loop's session)."""
    import trainer.loop as loop

    seen: dict = {}
    original = loop._Loop.run

    def run(self):
        components = self.session.components
        seen["device"] = self.session.device
        seen["unet_dtype"] = next(components.unet.parameters()).dtype
        seen["channels_last"] = components.unet.conv_in.weight.is_contiguous(
            memory_format=torch.channels_last)
        seen["vae_device"] = next(components.vae.parameters()).device
        seen["text_encoder_device"] = next(components.text_encoder.parameters()).device
        return original(self)

    monkeypatch.setattr(loop._Loop, "run", run)
    return seen


def gpu_config(tiny_model_dir, demo_images_dir, tmp_path, **changes):
    values = dict(device="cuda", save_steps=0, checkpointing_steps=0, validation_steps=0)
    return make_config(tiny_model_dir, demo_images_dir, tmp_path, **(values | changes))


@pytest.mark.gpu
def test_bf16_on_cuda(tiny_model_dir, demo_images_dir, tmp_path, monkeypatch):
    """bf16: the frozen UNet in bf16 and channels_last on the GPU, the VAE back on the CPU once
    the latents are cached (no previews asked for), the trained rows in fp32."""
    seen = capture_session(monkeypatch)
    events: list = []
    result = train(gpu_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=3,
                              mixed_precision="bf16"), emit=events.append)
    assert seen["device"].type == "cuda" and seen["text_encoder_device"].type == "cuda"
    assert seen["unet_dtype"] == torch.bfloat16 and seen["channels_last"]
    assert seen["vae_device"].type == "cpu"
    started = next(e for e in events if e.type == "run_started")
    assert started.device.startswith("cuda") and started.precision == "bf16"
    assert result.vectors.dtype == torch.float32 and torch.isfinite(result.vectors).all()
    steps = [e for e in events if e.type == "step"]
    assert len(steps) == 3 and all(s.memory_mb > 0 for s in steps)


@pytest.mark.gpu
def test_fp16_on_cuda_skips_an_overflowing_update_through_the_grad_scaler(
        tiny_model_dir, demo_images_dir, tmp_path, monkeypatch):
    import trainer.loop as loop

    original = loop.diffusion_loss
    calls = {"n": 0}

    def poisoned(**kwargs):
        calls["n"] += 1
        loss = original(**kwargs)
        return loss * float("inf") if calls["n"] == 2 else loss

    monkeypatch.setattr(loop, "diffusion_loss", poisoned)
    events: list = []
    result = train(gpu_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=4,
                              mixed_precision="fp16", dvar_eval_every=0), emit=events.append)
    steps = [e for e in events if e.type == "step"]
    assert [s.skipped for s in steps] == [False, True, False, False]
    assert steps[-1].skipped_total == 1
    assert torch.isfinite(result.vectors).all()


@pytest.mark.gpu
def test_a_gpu_number_is_used_and_reported(tiny_model_dir, demo_images_dir, tmp_path):
    events: list = []
    train(gpu_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=1,
                     device="cuda:0"), emit=events.append)
    started = next(e for e in events if e.type == "run_started")
    assert started.device == "cuda:0"


@pytest.mark.gpu
def test_resume_on_cuda_matches_a_straight_run(tiny_model_dir, demo_images_dir, tmp_path):
    common = dict(max_train_steps=6, gradient_accumulation_steps=2, dvar_window=3)
    straight = train(gpu_config(tiny_model_dir, demo_images_dir, tmp_path / "a", **common))
    config = gpu_config(tiny_model_dir, demo_images_dir, tmp_path / "b", **common)
    control = Control()

    def stop_at_4(event):
        if event.type == "step" and event.step == 4:
            control.request_stop()

    first = train(config, emit=stop_at_4, control=control)
    assert first.reason == "user" and first.step == 4
    resumed = train(config.replace(resume_from_checkpoint="latest"))
    assert resumed.step == straight.step == 6
    gap = (resumed.vectors.cpu() - straight.vectors.cpu()).abs().max().item()
    assert gap <= CUDA_RESUME_TOLERANCE


@pytest.mark.gpu
@pytest.mark.slow
def test_compile_on_cuda_matches_the_plain_forward(tiny_model_dir, demo_images_dir, tmp_path):
    """--compile on the GPU (inductor with Triton kernels) ends where the plain run ends."""
    common = dict(max_train_steps=3)  # fp32: the two forwards differ only by their kernels
    plain_events: list = []
    plain = train(gpu_config(tiny_model_dir, demo_images_dir, tmp_path / "a", **common),
                  emit=plain_events.append)
    compiled_events: list = []
    compiled = train(gpu_config(tiny_model_dir, demo_images_dir, tmp_path / "b", compile=True,
                                **common), emit=compiled_events.append)
    assert torch.allclose(compiled.vectors.cpu(), plain.vectors.cpu(), atol=1e-3)
    l_det = [[e.l_det for e in ev if e.type == "step"] for ev in (plain_events, compiled_events)]
    assert l_det[1] == pytest.approx(l_det[0], rel=1e-3)
