"""Issue 14's done-when "each trains 2-4 steps headless, and from the form", for the sources
the other form tests do not pick: an A1111/Forge install as the root, a ComfyUI checkpoints
folder (--models_dir, as `ti-tui models` remembers it), an InvokeAI 4+ database's diffusers
entry, and an SDXL single file. Each is listed with its family, picked in the form, handed to
the runner, and the config the form built trains 2 updates in-process.

(The SD1 single file with --model_config and the database's checkpoint entry are picked in
tests/system/test_discovery.py, the SDXL diffusers folder in tests/ui/test_sdxl_form.py.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from trainer import train
from trainer.config import TrainConfig

from tests.form_pilot import SIZE, FakeRunner, app_for, ready, started, type_into
from tests.ldm_layout import write_single_file


@pytest.fixture(scope="module")
def sd1_file(tiny_model_dir, tmp_path_factory) -> Path:
    return write_single_file(tiny_model_dir, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


def _a1111(tmp: Path, ctx: dict) -> tuple[Path, dict, str, str]:
    root = tmp / "webui"
    folder = root / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    (folder / "tiny-a1111.safetensors").symlink_to(ctx["sd1_file"])
    return root, {"model_config": str(ctx["tiny"])}, "tiny-a1111.safetensors", "SD1"


def _comfyui(tmp: Path, ctx: dict) -> tuple[Path, dict, str, str]:
    folder = tmp / "ComfyUI" / "models" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "tiny-comfy.safetensors").symlink_to(ctx["sd1_file"])
    root = tmp / "no-invokeai"
    root.mkdir()
    return (root, {"model_config": str(ctx["tiny"]), "models_dir": str(folder)},
            "tiny-comfy.safetensors", "SD1")


def _invokeai4_diffusers(tmp: Path, ctx: dict) -> tuple[Path, dict, str, str]:
    from tests.system.test_discovery import make_invokeai6_root

    root = make_invokeai6_root(tmp / "invokeai", ctx["tiny"], ctx["sd1_file"])
    return root, {}, "Tiny Folder", "SD1"


def _sdxl_file(tmp: Path, ctx: dict) -> tuple[Path, dict, str, str]:
    sdxl = ctx["request"].getfixturevalue("tiny_sdxl_dir")
    folder = tmp / "checkpoints"
    folder.mkdir()
    write_single_file(sdxl, folder / "tiny-xl.safetensors")
    root = tmp / "no-invokeai"
    root.mkdir()
    return (root, {"model_config": str(sdxl), "models_dir": str(folder)},
            "tiny-xl.safetensors", "SDXL")


SOURCES = {"a1111": _a1111, "comfyui": _comfyui, "invokeai4-diffusers": _invokeai4_diffusers,
           "sdxl-single-file": _sdxl_file}


@pytest.mark.parametrize("source", SOURCES)
async def test_a_model_from_each_source_is_picked_in_the_form_and_trains(
        source, request, tmp_path, tiny_model_dir, sd1_file, demo_images_dir,
        keep_signal_handlers):
    ctx = {"tiny": tiny_model_dir, "sd1_file": sd1_file, "request": request}
    root, extra, name, family = SOURCES[source](tmp_path, ctx)
    data = tmp_path / "images"
    shutil.copytree(demo_images_dir, data)
    defaults = TrainConfig(root=str(root), train_data_dir=str(data),
                           output_dir=str(tmp_path / "out"), device="cpu", max_train_steps=2,
                           train_batch_size=1, early_stopping="none", save_steps=0,
                           checkpointing_steps=0, scale_lr=False, resolution=64, **extra)
    runner = FakeRunner()
    async with app_for(root, runner, restore=False, defaults=defaults).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        picker = form.model_picker
        models = dict(picker.models)
        labels = dict(zip([n for n, _ in picker.models], picker.labels, strict=True))
        assert name in models, labels
        assert labels[name].split(" · ")[0].endswith(family), labels[name]
        picker.select.value = str(models[name])
        form = await ready(pilot)
        assert form.model_problem is None, form.model_problem
        await type_into(pilot, form, "placeholder_token", "cat")
        await pilot.press("ctrl+s")
        await started(pilot, runner)
    config = runner.configs[0]
    assert Path(config.model) == Path(models[name])
    result = train(config)
    assert result.reason == "max_steps" and result.step == 2
    assert result.vectors.shape[1] == (2048 if family == "SDXL" else 32)
