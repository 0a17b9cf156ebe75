"""A real (tiny) run's embedding files, snapshots and end-of-run words, per kind of root."""

from __future__ import annotations

import io
import sqlite3

import torch
from rich.console import Console
from safetensors.torch import load_file

from trainer import train
from trainer.formats import load_embedding
from trainer.install_guide import tool_lines
from ti_tui.headless import run_watch

from tests.helpers import make_config
from tests.tool_rules import a1111_safe_unpickle, picklescan_globals


def invokeai4_root(folder):
    """A root as InvokeAI 4+ leaves it: the model database (empty here) under databases/."""
    (folder / "databases").mkdir(parents=True)
    with sqlite3.connect(folder / "databases" / "invokeai.db") as db:
        db.execute("CREATE TABLE models (id TEXT PRIMARY KEY, config TEXT)")
    return folder


# The shared finished run (tests/conftest.py `finished_run`): two vectors, --save_as a1111,
# snapshots at steps 2 and 4.


def test_every_torch_file_for_another_program_passes_a1111s_and_invokeais_checks(finished_run):
    out = finished_run.output_path
    shared = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                    if p.suffix in (".bin", ".pt") and not p.relative_to(out).as_posix()
                    .startswith("checkpoint-"))
    assert shared == ["embeddings/learned_embeds-steps-2.bin",
                      "embeddings/learned_embeds-steps-4.bin", "embeddings/star-ti-steps-2.pt",
                      "embeddings/star-ti-steps-4.pt", "learned_embeds.bin", "star-ti.pt"]
    for name in shared:
        a1111_safe_unpickle(out / name)
        picklescan_globals(out / name)  # InvokeAI's scan before it loads a .pt/.bin


def test_snapshots_have_the_final_files_layouts(finished_run):
    """Each snapshot is the same set of files as the end (the layouts the tool rules pass at
    real widths, tests/engine/test_tool_rules.py), named <file>-steps-N."""
    out = finished_run.output_path
    final = load_file(str(out / "star-ti.safetensors"))
    snapshot = load_file(str(out / "embeddings" / "star-ti-steps-4.safetensors"))
    assert set(final) == set(snapshot) == {"emb_params"}
    assert final["emb_params"].equal(snapshot["emb_params"])  # step 4 is the last step
    assert final["emb_params"].shape[0] == 2
    _, bin_rows = load_embedding(out / "learned_embeds.bin")
    assert bin_rows.equal(final["emb_params"])


def test_an_invokeai_4_root_gets_no_copy_and_the_end_says_how_to_add_it(
        tiny_model_dir, demo_images_dir, tmp_path, keep_signal_handlers):
    """One update, two vectors, --save_as a1111, an InvokeAI 4+ root; run through `python -m
    trainer`'s entry so events.jsonl is written for `ti-tui watch` (the shared finished run
    has a 2.3 root, which gets a copy)."""
    from trainer.__main__ import run

    root = invokeai4_root(tmp_path / "root")
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, root=str(root),
                         num_vectors=2, max_train_steps=1, save_steps=0, checkpointing_steps=0,
                         dvar_eval_every=0, save_as="a1111")
    assert run(config) == 0
    out = config.output_path
    assert not (root / "embeddings").exists()
    console = Console(file=io.StringIO(), width=400, force_terminal=False, color_system=None)
    assert run_watch(out, console=console) == 0
    text = console.file.getvalue()
    assert "which file for which tool:" in text
    # "star" is an everyday word: the rename and the distinct file name are said
    assert "'star' is a word the model already knows, so it trains as <star>" in text
    assert f"A1111/Forge: {out / 'star-ti.safetensors'}" in text
    assert "ComfyUI: " in text and "embedding:star-ti" in text
    assert (f"open the Model Manager, press Add Models, choose URL or Local Path, paste "
            f"{out / 'star-ti.safetensors'} and press Install; then type <star-ti> in a prompt") in text
    assert f"diffusers: {out / 'learned_embeds.safetensors'}" in text
    assert "copied to" not in text


def test_an_older_root_gets_the_file_invokeai_2_3_reads(tiny_model_dir, demo_images_dir,
                                                         tmp_path):
    """One vector: learned_embeds.bin, as invokeai-ti copied it; and the end names the copy.
    The full pipeline (--save_as_full_pipeline) is a diffusers folder that knows the word."""
    from diffusers import StableDiffusionPipeline

    (tmp_path / "root" / "configs").mkdir(parents=True)
    (tmp_path / "root" / "configs" / "models.yaml").write_text("{}\n")  # an InvokeAI 2.3 root
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=2,
                         save_steps=0, checkpointing_steps=0, dvar_eval_every=0,
                         save_as_full_pipeline=True)
    result = train(config)
    pipe = StableDiffusionPipeline.from_pretrained(str(config.output_path / "pipeline"),
                                                   local_files_only=True)
    row = pipe.text_encoder.get_input_embeddings().weight[
        pipe.tokenizer.convert_tokens_to_ids(config.trigger)]
    assert row.equal(result.vectors[0])
    copy = tmp_path / "root" / "embeddings" / "star-ti" / "learned_embeds.bin"
    assert copy.read_bytes() == (config.output_path / "learned_embeds.bin").read_bytes()
    lines = tool_lines(config.output_path, config.trigger, config.root, 1)
    assert f"InvokeAI 2.3/3.x: copied to {copy}" in lines
    assert not any("Model Manager, press" in line for line in lines)


def test_an_sdxl_run_writes_one_file_every_tool_installs(tiny_sdxl_dir, demo_images_dir,
                                                         tmp_path):
    """At the real widths (768 + 1280): InvokeAI 4+, A1111/Forge and ComfyUI take the one
    file; --save_as a1111 has no .pt for SDXL and says so."""
    from tests.tool_rules import COMFY_ENCODERS, a1111_load, comfyui_load_embed, invokeai4_install

    config = make_config(tiny_sdxl_dir, demo_images_dir, tmp_path, num_vectors=2,
                         max_train_steps=2, save_steps=0, checkpointing_steps=0,
                         dvar_eval_every=0, save_as="a1111", resolution=64)
    events: list = []
    result = train(config, emit=events.append)
    out = config.output_path
    final = next(e for e in events if e.type == "embedding_saved" and e.final)
    assert final.paths == [str(out / "star-ti.safetensors")]
    assert any(e.type == "warning" and "--save_as a1111" in e.message for e in events)
    base, clip_g, clip_l = invokeai4_install(out / "star-ti.safetensors")
    assert base == "sdxl" and clip_l.shape == (2, 768) and clip_g.shape == (2, 1280)
    assert a1111_load(out / "star-ti.safetensors", 2048) == ("star-ti", 2, 2048)
    halves = [comfyui_load_embed(out / "star-ti.safetensors", width, key)
              for width, key in COMFY_ENCODERS["sdxl"]]
    assert torch.cat(halves, dim=1).equal(result.vectors)
    assert load_embedding(out / "star-ti.safetensors")[1].equal(result.vectors)
