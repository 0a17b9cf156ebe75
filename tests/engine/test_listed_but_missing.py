"""A model InvokeAI's database still lists but whose file was deleted or moved (issue 15,
extra kind b: advice names what applies). `--model "Gone Model"` said "Model folder
.../gone.safetensors does not exist; pass --model a diffusers folder", as if the user had typed
that path; `ti-tui models` listed the checkpoint as "diffusers, 0 B". Now the sentence says
where the name was listed and that the file is gone, and the listing keeps the recorded format
with an unknown size."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from trainer.discovery import find_models, resolve_model
from trainer.errors import ModelError

from tests.ldm_layout import write_single_file
from tests.system.test_discovery import make_invokeai6_root


@pytest.fixture
def root_with_a_gone_model(tmp_path, tiny_model_dir) -> Path:
    sd1 = write_single_file(tiny_model_dir, tmp_path / "ckpt" / "tiny.safetensors")
    root = make_invokeai6_root(tmp_path / "invokeai", tiny_model_dir, sd1)
    record = {"key": "g1", "name": "Gone Model", "type": "main", "base": "sdxl",
              "format": "checkpoint", "path": "sdxl/main/gone.safetensors"}
    with sqlite3.connect(root / "databases" / "invokeai.db") as conn:
        conn.execute("INSERT INTO models VALUES (?, ?)", ("g1", json.dumps(record)))
    conn.close()
    return root


def test_a_listed_model_whose_file_is_gone_is_named_with_its_listing(root_with_a_gone_model):
    root = root_with_a_gone_model
    with pytest.raises(ModelError) as info:
        resolve_model("Gone Model", root)
    message = str(info.value)
    assert info.value.field == "model" and "\n" not in message
    assert message.startswith('Model "Gone Model" is listed in the InvokeAI 4+ database '
                              f'{root / "databases" / "invokeai.db"} at '
                              f'{root / "models" / "sdxl" / "main" / "gone.safetensors"}, but '
                              "nothing is there any more")
    assert "Model folder" not in message


def test_the_listing_keeps_the_recorded_format_and_an_unknown_size(root_with_a_gone_model):
    found = {e.name: e for e in find_models(root_with_a_gone_model, describe_all=True)}
    gone = found["Gone Model"]
    assert (gone.format, gone.size, gone.problem) == ("checkpoint", None, "missing on disk")
    assert found["Tiny Checkpoint"].format == "checkpoint" and found["Tiny Checkpoint"].size
    assert found["Tiny Folder"].format == "diffusers"
