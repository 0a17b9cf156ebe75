"""Finding models (issue 14 section 2): an InvokeAI 4+/6.x root's database, A1111/Forge and
ComfyUI checkpoint folders, `ti-tui models`, and `--model NAME` resolved for every source."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.discovery import find_models, resolve_model
from trainer.errors import ModelError

from tests.helpers import link_model
from tests.ldm_layout import write_single_file

TI_TUI = [sys.executable, "-m", "ti_tui.cli"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def make_invokeai6_root(root: Path, tiny_model_dir: Path, checkpoint: Path, *,
                        db_dir: str = "databases", models_dir: str = "models") -> Path:
    """An InvokeAI 6.x-shaped root: invokeai.yaml, a WAL-mode invokeai.db whose `models` table
    holds JSON `config` records (invoke-ai/InvokeAI model_records_sql.py at ae4bc060)."""
    models = root / models_dir
    link_model(tiny_model_dir, models / "sd-1" / "main" / "tiny-folder")
    (root / "invokeai.yaml").parent.mkdir(parents=True, exist_ok=True)
    (root / "invokeai.yaml").write_text(
        f"schema_version: 4.0.2\ndb_dir: {db_dir}\nmodels_dir: {models_dir}\n")
    records = [
        {"key": "a1", "name": "Tiny Folder", "type": "main", "base": "sd-1",
         "format": "diffusers", "path": "sd-1/main/tiny-folder", "variant": "normal",
         "prediction_type": "epsilon"},
        {"key": "a2", "name": "Tiny Checkpoint", "type": "main", "base": "sd-1",
         "format": "checkpoint", "path": str(checkpoint), "variant": "normal",
         "prediction_type": "epsilon"},
        {"key": "a3", "name": "FLUX Dev", "type": "main", "base": "flux",
         "format": "checkpoint", "path": "flux/main/flux1-dev.safetensors"},
        {"key": "a4", "name": "Paint", "type": "main", "base": "sd-1", "format": "checkpoint",
         "path": "sd-1/main/paint.safetensors", "variant": "inpaint"},
        {"key": "a5", "name": "Some LoRA", "type": "lora", "base": "sd-1",
         "format": "lycoris", "path": "sd-1/lora/x.safetensors"},
    ]
    db = root / db_dir / "invokeai.db"
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE models (id TEXT NOT NULL PRIMARY KEY, config TEXT NOT NULL)")
        conn.executemany("INSERT INTO models VALUES (?, ?)",
                         [(r["key"], json.dumps(r)) for r in records])
    conn.close()
    return root


@pytest.fixture(scope="module")
def sd1_file(tiny_model_dir, tmp_path_factory) -> Path:
    return write_single_file(tiny_model_dir, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


def test_invokeai6_database_lists_main_models_read_only(tmp_path, tiny_model_dir, sd1_file):
    root = make_invokeai6_root(tmp_path / "invokeai", tiny_model_dir, sd1_file,
                               db_dir="data/db", models_dir="store")
    db_files = sorted((root / "data" / "db").iterdir())
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in db_files}
    found = {e.name: e for e in find_models(root, describe_all=True)}
    assert set(found) == {"Tiny Folder", "Tiny Checkpoint", "FLUX Dev", "Paint"}
    folder, single = found["Tiny Folder"], found["Tiny Checkpoint"]
    assert (folder.family, folder.format, folder.path) == (
        "SD1", "diffusers", root / "store" / "sd-1" / "main" / "tiny-folder")
    assert (single.family, single.format, single.source) == ("SD1", "checkpoint", "invokeai-db")
    assert single.size == sd1_file.stat().st_size and folder.size > 0
    assert found["FLUX Dev"].problem == "a Flux model"
    assert "inpaint" in found["Paint"].problem
    # Never written: the same files, bytes and times (no -wal/-shm left by us either).
    assert sorted((root / "data" / "db").iterdir()) == db_files
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in db_files} == before
    assert resolve_model("Tiny Checkpoint", root) == sd1_file
    with pytest.raises(ModelError, match="a Flux model"):
        resolve_model("FLUX Dev", root)


def test_a1111_and_comfyui_folders(tmp_path, sd1_file):
    a1111 = tmp_path / "webui"
    (a1111 / "models" / "Stable-diffusion" / "sd15").mkdir(parents=True)
    (a1111 / "models" / "Stable-diffusion" / "sd15" / "tiny.safetensors").symlink_to(sd1_file)
    comfy = tmp_path / "ComfyUI" / "models" / "checkpoints"
    comfy.mkdir(parents=True)
    shutil.copyfile(sd1_file, comfy / "other.safetensors")  # a link would be the same model
    (comfy / "notes.txt").write_text("not a model")
    found = {e.name: e for e in find_models(a1111, [comfy], describe_all=True)}
    assert set(found) == {"sd15/tiny.safetensors", "other.safetensors"}
    assert all(e.family == "SD1" and e.format == "checkpoint" for e in found.values())
    assert resolve_model("tiny", a1111) == a1111 / "models/Stable-diffusion/sd15/tiny.safetensors"
    assert resolve_model("other", tmp_path / "nowhere", models_dirs=[comfy]) == \
        comfy / "other.safetensors"


def test_models_command_lists_and_remembers_folders(tmp_path, tiny_model_dir, sd1_file):
    root = make_invokeai6_root(tmp_path / "invokeai", tiny_model_dir, sd1_file)
    comfy = tmp_path / "checkpoints"
    comfy.mkdir()
    shutil.copyfile(sd1_file, comfy / "comfy-tiny.safetensors")
    first = subprocess.run([*TI_TUI, "models", "--root", str(root), "--models_dir", str(comfy)],
                           capture_output=True, text=True, timeout=120, env=ENV)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "FAMILY", "FORMAT", "SIZE"]
    row = next(line for line in lines if line.startswith("Tiny Checkpoint"))
    assert "SD1" in row and "checkpoint" in row and "14.2 MB" in row and "InvokeAI 4+" in row
    assert "unsupported: a Flux model" in first.stdout
    again = subprocess.run([*TI_TUI, "models", "--root", str(root)], capture_output=True,
                           text=True, timeout=120, env=ENV)
    assert "comfy-tiny.safetensors" in again.stdout  # the folder was remembered


def test_database_checkpoint_trains_by_name(tmp_path, tiny_model_dir, sd1_file,
                                            demo_images_dir):
    root = make_invokeai6_root(tmp_path / "invokeai", tiny_model_dir, sd1_file)
    run = subprocess.run(
        [*TI_TUI, "train", "--root", str(root), "--model", "Tiny Checkpoint", "--model_config",
         str(tiny_model_dir), "--train_data_dir", str(demo_images_dir), "--output_dir",
         str(tmp_path / "out"), "--placeholder_token", "star", "--max_train_steps", "2",
         "--train_batch_size", "1", "--device", "cpu", "--early_stopping", "none"],
        capture_output=True, text=True, timeout=600, env=ENV)
    assert run.returncode == 0, run.stdout + run.stderr
    assert any((tmp_path / "out").glob("*.safetensors"))


async def test_form_lists_described_models_refuses_unsupported_and_trains_a_checkpoint(
        tmp_path, tiny_model_dir, sd1_file, demo_images_dir, keep_signal_handlers):
    """The form's model list from an InvokeAI 6.x database: family, format, size and source
    shown; a Flux entry listed and refused with its reason; the SD1 checkpoint picked by
    name, handed to the runner, and trained (2 updates, in-process)."""
    from trainer import train
    from trainer.config import TrainConfig

    from tests.form_pilot import SIZE, FakeRunner, app_for, ready, started, until

    root = make_invokeai6_root(tmp_path / "r", tiny_model_dir, sd1_file)
    shutil.copytree(demo_images_dir, root / "text-inversion-training-data" / "cat")
    defaults = TrainConfig(root=str(root), model="Tiny Checkpoint",
                           model_config=str(tiny_model_dir), device="cpu", max_train_steps=2,
                           train_batch_size=1, early_stopping="none", save_steps=0,
                           checkpointing_steps=0, scale_lr=False)
    runner = FakeRunner()
    async with app_for(root, runner, restore=False, defaults=defaults).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        picker = form.model_picker
        labels = dict(zip([name for name, _ in picker.models], picker.labels, strict=True))
        assert "SD1 · checkpoint · 14.2 MB · InvokeAI 4+ database" in labels["Tiny Checkpoint"]
        assert "SD1 · diffusers" in labels["Tiny Folder"]
        assert "unsupported: a Flux model" in labels["FLUX Dev"]
        assert picker.value == str(sd1_file) and form.facts.format == "checkpoint"
        flux = dict(picker.models)["FLUX Dev"]
        picker.select.value = str(flux)
        await until(pilot, lambda: "FLUX Dev is a Flux model" in (form.model_problem or ""),
                    "the Flux refusal")
        picker.select.value = str(sd1_file)
        form = await ready(pilot)
        assert form.model_problem is None
        await pilot.press("tab", *"cat")
        await pilot.press("ctrl+s")
        await started(pilot, runner)
    config = runner.configs[0]
    assert (config.model, config.model_config) == (str(sd1_file), str(tiny_model_dir))
    events: list = []
    result = train(config, emit=events.append)
    assert result.reason == "max_steps" and result.step == 2


def test_invokeai3_folders_of_other_pipelines_are_listed_as_unsupported(tmp_path,
                                                                        tiny_model_dir):
    root = tmp_path / "invokeai"
    link_model(tiny_model_dir, root / "models" / "sd-1" / "main" / "tiny")
    for name, cls, parts in (("flux/main/FLUX.1-dev", "FluxPipeline", ("transformer", "vae")),
                             ("sdxl-refiner/main/refiner", "StableDiffusionXLImg2ImgPipeline",
                              ("unet", "text_encoder_2", "vae"))):
        folder = root / "models" / name
        for part in parts:
            (folder / part).mkdir(parents=True)
        (folder / "model_index.json").write_text(json.dumps({"_class_name": cls}))
    found = {e.name: e for e in find_models(root, describe_all=True)}
    assert found["sd-1/main/tiny"].family == "SD1" and found["sd-1/main/tiny"].problem is None
    assert found["flux/main/FLUX.1-dev"].problem == "a Flux model"
    assert found["sdxl-refiner/main/refiner"].problem == "an SDXL refiner"
    with pytest.raises(ModelError, match="is a Flux model"):
        resolve_model("FLUX.1-dev", root)


@pytest.mark.parametrize("layout", ["a1111", "comfyui"])
def test_a1111_and_comfyui_checkpoints_train_by_name(layout, tmp_path, tiny_model_dir, sd1_file,
                                                     demo_images_dir):
    """`--root webui --model tiny` (A1111/Forge install as the root) and `--models_dir
    ComfyUI/models/checkpoints --model tiny` both find the file by its name and train."""
    if layout == "a1111":
        home = tmp_path / "webui"
        folder = home / "models" / "Stable-diffusion"
        where = ["--root", str(home)]
    else:
        folder = tmp_path / "ComfyUI" / "models" / "checkpoints"
        where = ["--root", str(tmp_path / "no-invokeai"), "--models_dir", str(folder)]
    folder.mkdir(parents=True)
    (folder / "tiny.safetensors").symlink_to(sd1_file)
    run = subprocess.run(
        [*TI_TUI, "train", *where, "--model", "tiny", "--model_config", str(tiny_model_dir),
         "--train_data_dir", str(demo_images_dir), "--output_dir", str(tmp_path / "out"),
         "--placeholder_token", "star", "--max_train_steps", "2", "--train_batch_size", "1",
         "--device", "cpu", "--early_stopping", "none", "--checkpointing_steps", "0"],
        capture_output=True, text=True, timeout=600, env=ENV)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "stopped at step 2" in run.stdout
