"""Only a real InvokeAI 2.3/3.x root gets the ROOT/embeddings copy, and nothing creates a root.

An empty or missing --root (the default ~/invokeai on an A1111 or ComfyUI machine) used to be
taken for a 2.3/3.x root: a run made ROOT/embeddings/<name>/ and `ti-tui models --models_dir`
made ROOT/text-inversion-output/preferences.toml, after which the folder passed for a root.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from ti_tui.preferences import preferences_path, remember_models_dirs, save_preferences
from trainer.config import TrainConfig
from trainer.install_guide import is_invokeai_legacy_root, tool_lines
from trainer.outputs import Outputs


def _kinds(tmp_path: Path) -> dict[str, Path]:
    kinds = {name: tmp_path / name for name in
             ("missing", "empty", "v23_yaml", "v23_init", "v3", "yaml_only", "v4")}
    for name, path in kinds.items():
        if name != "missing":
            path.mkdir()
    (kinds["v23_yaml"] / "configs").mkdir()
    (kinds["v23_yaml"] / "configs" / "models.yaml").write_text("{}\n")
    (kinds["v23_init"] / "invokeai.init").write_text("")
    for name in ("v3", "yaml_only", "v4"):
        (kinds[name] / "invokeai.yaml").write_text("InvokeAI:\n  Paths: {}\n")
    (kinds["v3"] / "models").mkdir()
    (kinds["v4"] / "models").mkdir()
    (kinds["v4"] / "databases").mkdir()
    sqlite3.connect(kinds["v4"] / "databases" / "invokeai.db").close()
    return kinds


def test_only_2_3_and_3_x_installs_are_legacy_roots(tmp_path):
    kinds = _kinds(tmp_path)
    legacy = {name for name, path in kinds.items() if is_invokeai_legacy_root(path)}
    assert legacy == {"v23_yaml", "v23_init", "v3"}
    assert not is_invokeai_legacy_root(None)


def _finished(tmp_path: Path, root: Path) -> TrainConfig:
    config = TrainConfig(root=str(root), placeholder_token="<star>",
                         output_dir=str(tmp_path / "out"))
    config.output_path.mkdir(parents=True)
    (config.output_path / "learned_embeds.bin").write_bytes(b"vectors")
    (config.output_path / "star-ti.safetensors").write_bytes(b"single")
    return config


def _copy(config: TrainConfig) -> Path | None:
    fake = SimpleNamespace(cfg=config, out=config.output_path, emit=lambda e: None,
                           session=SimpleNamespace(placeholder=SimpleNamespace(trigger="<star>")))
    return Outputs._copy_to_root(fake)


@pytest.mark.parametrize("kind", ["missing", "empty", "yaml_only"])
def test_no_copy_and_no_folder_for_a_root_that_is_not_an_install(tmp_path, kind):
    root = _kinds(tmp_path)[kind]
    before = sorted(p.name for p in root.iterdir()) if root.exists() else None
    config = _finished(tmp_path, root)
    assert _copy(config) is None
    assert (sorted(p.name for p in root.iterdir()) if root.exists() else None) == before
    lines = tool_lines(config.output_path, config.trigger, config.root, 1)
    assert not any("copied to" in line for line in lines)


def test_a_3_x_root_gets_the_copy_and_the_end_lines_say_so(tmp_path):
    root = _kinds(tmp_path)["v3"]
    config = _finished(tmp_path, root)
    target = root / "embeddings" / "star-ti" / "learned_embeds.bin"
    assert _copy(config) == target and target.read_bytes() == b"vectors"
    lines = tool_lines(config.output_path, config.trigger, config.root, 1)
    assert f"InvokeAI 2.3/3.x: copied to {target}" in lines


def test_saving_preferences_never_creates_the_root(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    root = tmp_path / "invokeai"
    path = save_preferences(root, TrainConfig(root=str(root), train_batch_size=3))
    remember_models_dirs(root, [str(tmp_path)])
    assert not root.exists()
    assert path == preferences_path(root) and path.is_relative_to(tmp_path / "config")
    assert "train_batch_size = 3" in path.read_text()
    root.mkdir()  # an existing root keeps its own slot, as invokeai-ti's preferences.conf
    assert preferences_path(root) == root / "text-inversion-output" / "preferences.toml"


def test_models_command_does_not_create_the_default_root(tmp_path, monkeypatch, capsys):
    from ti_tui.cli import main

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("INVOKEAI_ROOT", str(tmp_path / "invokeai"))
    (tmp_path / "ckpts").mkdir()
    try:
        main(["models", "--models_dir", str(tmp_path / "ckpts")])
    except SystemExit:
        pass
    assert not (tmp_path / "invokeai").exists()
