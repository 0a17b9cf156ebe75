"""Issue 14's done-when: the InvokeAI 4+ database's *diffusers* entry trains headless by its
name too (tests/system/test_discovery.py trains its checkpoint entry; the form picks both)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.ldm_layout import write_single_file
from tests.system.test_discovery import make_invokeai6_root


def test_a_database_diffusers_entry_trains_by_name(tmp_path, tiny_model_dir, demo_images_dir):
    sd1 = write_single_file(tiny_model_dir, tmp_path / "ckpt" / "tiny.safetensors")
    root = make_invokeai6_root(tmp_path / "invokeai", tiny_model_dir, sd1)
    run = subprocess.run(
        [sys.executable, "-m", "ti_tui.cli", "train", "--root", str(root), "--model",
         "Tiny Folder", "--train_data_dir", str(demo_images_dir), "--output_dir",
         str(tmp_path / "out"), "--placeholder_token", "my-star", "--max_train_steps", "2",
         "--train_batch_size", "1", "--device", "cpu", "--early_stopping", "none"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "stopped at step 2" in run.stdout
    assert "InvokeAI 4+" in run.stdout  # the end says how to add the file in its manager
    assert (tmp_path / "out" / "my-star.safetensors").is_file()
