"""SDXL runs end to end on the tiny SDXL-shaped model: headless from the command line,
in-process with accumulation, DVAR and a preview, exact resume, and the result loading into
diffusers' StableDiffusionXLPipeline (each half into its own encoder) and generating."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from trainer import train
from trainer.control import Control
from trainer.event_file import read_events

from tests.helpers import make_config, stop_at

COMMON = dict(num_vectors=2, initializer_token="star", max_train_steps=4, save_steps=0,
              checkpointing_steps=0, gradient_accumulation_steps=2, dvar_window=3,
              dvar_eval_batch_size=2)


@pytest.fixture(scope="module")
def runs(tiny_sdxl_dir, demo_images_dir, tmp_path_factory):
    """A straight 4-update run (previews, a full pipeline at the end), and one stopped at 2 and
    resumed."""
    tmp = tmp_path_factory.mktemp("sdxl-runs")
    straight_events: list = []
    straight_config = make_config(tiny_sdxl_dir, demo_images_dir, tmp / "a", validation_steps=4,
                                  save_as_full_pipeline=True, **COMMON)
    straight = train(straight_config, emit=straight_events.append)
    config = make_config(tiny_sdxl_dir, demo_images_dir, tmp / "b", **COMMON)
    control = Control()
    first = train(config, emit=stop_at(2, control, []), control=control)
    resumed_events: list = []
    resumed = train(config.replace(resume_from_checkpoint="latest"), emit=resumed_events.append)
    return {"straight": straight, "straight_events": straight_events,
            "straight_config": straight_config, "first": first, "resumed": resumed,
            "resumed_events": resumed_events}


def test_an_sdxl_run_trains_both_halves_and_reports_the_family(runs):
    events, result = runs["straight_events"], runs["straight"]
    started = next(e for e in events if e.type == "run_started")
    assert started.model["family"] == "sdxl"
    assert started.model["parts"] == {"clip_l": 768, "clip_g": 1280}
    steps = [e for e in events if e.type == "step"]
    assert [s.step for s in steps] == [1, 2, 3, 4] and steps[-1].micro_batches == 8
    assert all(s.l_det is not None and torch.isfinite(torch.tensor(s.loss)) for s in steps)
    assert result.reason == "max_steps" and result.vectors.shape == (2, 2048)
    assert any(e.type == "preview" and e.step == 4 for e in events)
    preview = runs["straight_config"].output_path / "previews" / "step-4.png"
    assert preview.is_file() and preview.stat().st_size > 0


def test_an_sdxl_run_resumes_exactly(runs):
    assert runs["first"].step == 2 and runs["first"].reason == "user"
    straight, resumed = runs["straight"], runs["resumed"]
    assert resumed.step == straight.step == 4
    assert torch.equal(resumed.vectors, straight.vectors)
    tail = [(e.step, e.loss, e.l_det) for e in runs["resumed_events"] if e.type == "step"]
    full = [(e.step, e.loss, e.l_det) for e in runs["straight_events"]
            if e.type == "step" and e.step > 2]
    assert tail == full


def _sdxl_file(events) -> dict[str, torch.Tensor]:
    """The final embedding file that holds both halves (clip_l + clip_g)."""
    saved = [e for e in events if e.type == "embedding_saved" and e.final][-1]
    for path in saved.paths:
        if path.endswith(".safetensors"):
            tensors = load_file(path)
            if set(tensors) >= {"clip_l", "clip_g"}:
                return tensors
    raise AssertionError(f"no clip_l + clip_g file among {saved.paths}")


def test_the_result_loads_into_the_sdxl_pipeline_and_generates(runs, tiny_sdxl_dir):
    from diffusers import StableDiffusionXLPipeline

    vectors = runs["straight"].vectors
    halves = _sdxl_file(runs["straight_events"])
    assert halves["clip_l"].shape == (2, 768) and halves["clip_g"].shape == (2, 1280)
    assert torch.equal(torch.cat([halves["clip_l"], halves["clip_g"]], dim=1), vectors)
    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_sdxl_dir), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_textual_inversion(halves["clip_l"], token="<star>", text_encoder=pipe.text_encoder,
                                tokenizer=pipe.tokenizer)
    pipe.load_textual_inversion(halves["clip_g"], token="<star>",
                                text_encoder=pipe.text_encoder_2, tokenizer=pipe.tokenizer_2)
    for tokenizer, encoder, half in ((pipe.tokenizer, pipe.text_encoder, "clip_l"),
                                     (pipe.tokenizer_2, pipe.text_encoder_2, "clip_g")):
        ids = tokenizer.convert_tokens_to_ids(["<star>", "<star>_1"])
        rows = encoder.get_input_embeddings().weight[ids]
        assert torch.equal(rows, halves[half])
    image = pipe("a photo of <star>", height=64, width=64, num_inference_steps=2,
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)


def test_sdxl_trains_headless_from_the_command_line(tiny_sdxl_dir, demo_images_dir, tmp_path):
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "ti_tui.cli", "train", "--model", str(tiny_sdxl_dir),
            "--root", str(tmp_path / "root"), "--placeholder_token", "star",
            "--initializer_token", "star", "--train_data_dir", str(demo_images_dir),
            "--output_dir", str(out), "--train_batch_size", "2", "--max_train_steps", "2",
            "--learning_rate", "5e-3", "--early_stopping", "none", "--dvar_window", "2",
            "--save_steps", "0", "--checkpointing_steps", "0", "--seed", "0",
            "--device", "cpu"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    events = list(read_events(out / "events.jsonl"))
    started = next(e for e in events if e["type"] == "run_started")
    assert started["model"]["family"] == "sdxl"
    assert started["model"]["parts"] == {"clip_l": 768, "clip_g": 1280}
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 2]
    assert events[-1]["type"] == "stopped" and events[-1]["reason"] == "max_steps"


def test_the_real_size_bench_runs_in_smoke_mode(tiny_sdxl_dir, tmp_path):
    """bench/sdxl_real_size.py's code path on the tiny model (the full size needs a GPU)."""
    from bench.sdxl_real_size import main

    result = main(["--smoke", "--model", str(tiny_sdxl_dir), "--work", str(tmp_path),
                   "--steps", "3", "--warmup", "0", "--images", "2", "--no_preview"])
    assert result["stopped"] == "max_steps" and result["resolution"] == 64
    assert result["losses_finite"] and result["l_det_finite"]
    assert result["updates_measured"] == 2 and result["median_s_per_update"] > 0


def test_the_full_pipeline_knows_the_word_in_both_encoders(runs):
    from diffusers import StableDiffusionXLPipeline

    folder = runs["straight_config"].output_path / "pipeline"
    pipe = StableDiffusionXLPipeline.from_pretrained(str(folder), local_files_only=True)
    halves = torch.split(runs["straight"].vectors, [768, 1280], dim=1)
    for tokenizer, encoder, half in ((pipe.tokenizer, pipe.text_encoder, halves[0]),
                                     (pipe.tokenizer_2, pipe.text_encoder_2, halves[1])):
        ids = tokenizer.convert_tokens_to_ids(["<star>", "<star>_1"])
        assert ids == [49408, 49409]
        assert torch.equal(encoder.get_input_embeddings().weight[ids], half)
    assert pipe.tokenizer_2.pad_token == "!"
    # Saved with the real end-of-text id: transformers then pools at EOS, not at the new word.
    assert pipe.text_encoder_2.config.eos_token_id == 49407
    ids = pipe.tokenizer_2(["a photo of <star>"], padding="max_length", max_length=77,
                           return_tensors="pt").input_ids
    eos = int((ids[0] == 49407).nonzero()[0])
    with torch.no_grad():
        out = pipe.text_encoder_2(ids)
        at_eos = pipe.text_encoder_2.text_projection(out.last_hidden_state[0, eos])
    torch.testing.assert_close(out.text_embeds[0], at_eos)


def test_previews_decode_in_float32_even_under_half_precision_autocast(tiny_sdxl_dir):
    """The SDXL VAE overflows in fp16: decode_latents leaves autocast off."""
    from diffusers import AutoencoderKL

    from trainer.preview import decode_latents

    vae = AutoencoderKL.from_pretrained(str(tiny_sdxl_dir), subfolder="vae")
    latents = torch.randn(1, 4, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pixels = decode_latents(vae, latents)
    assert pixels.dtype == torch.float32 and pixels.shape == (1, 3, 16, 16)
    with torch.no_grad():
        expected = vae.decode(latents / vae.config.scaling_factor).sample
    assert torch.allclose(pixels, expected)


@pytest.mark.slow
def test_two_processes_train_sdxl_together(tiny_sdxl_dir, demo_images_dir, tmp_path):
    """`accelerate launch` with two CPU processes (gloo): the one [n, 2048] parameter is
    all-reduced like SD's, and both halves move."""
    from trainer.formats import load_embedding
    from ti_tui.runner import prepare_output, trainer_command
    from trainer.config import TrainConfig

    config = TrainConfig(model=str(tiny_sdxl_dir), root=str(tmp_path / "root"),
                         placeholder_token="star", initializer_token="star",
                         train_data_dir=str(demo_images_dir), output_dir=str(tmp_path / "out"),
                         train_batch_size=1, max_train_steps=2, learning_rate="5e-3", seed=3,
                         save_steps=0, checkpointing_steps=0, num_processes=2,
                         early_stopping="none", dvar_window=2, device="cpu")
    config = prepare_output(config)
    command, env = trainer_command(config, config.output_path / "run.toml")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    events = list(read_events(config.output_path / "events.jsonl"))
    started = [e for e in events if e["type"] == "run_started"]
    assert len(started) == 1 and started[0]["num_processes"] == 2
    assert started[0]["model"]["family"] == "sdxl"
    assert [s["images_seen"] for s in events if s["type"] == "step"] == [2, 4]
    assert events[-1]["type"] == "stopped" and events[-1]["reason"] == "max_steps"
    final = next(e for e in reversed(events) if e["type"] == "embedding_saved")
    _, vectors = load_embedding(next(p for p in final["paths"] if p.endswith(".safetensors")
                                     and "learned_embeds" not in p))
    assert vectors.shape == (1, 2048) and torch.isfinite(vectors).all()
    from trainer.models import load_tokenizer

    star = load_tokenizer(tiny_sdxl_dir).encode("star", add_special_tokens=False)[0]
    for part, folder in ((vectors[0, :768], "text_encoder"), (vectors[0, 768:], "text_encoder_2")):
        with safe_open(str(tiny_sdxl_dir / folder / "model.safetensors"), "pt") as f:
            key = next(k for k in f.keys() if k.endswith("token_embedding.weight"))
            start = f.get_slice(key)[star]
        assert not torch.allclose(part, start)


def test_an_sdxl_v_prediction_fine_tune_trains_and_previews(tiny_sdxl_dir, demo_images_dir,
                                                            tmp_path):
    """SDXL fine-tunes with v-prediction and zero terminal SNR (as NoobAI-XL V-Pred ships):
    the scheduler config decides the target, the conditioner is the same."""
    import json

    from tests.helpers import link_model

    model = link_model(tiny_sdxl_dir, tmp_path / "vpred", skip=("scheduler",))
    (model / "scheduler").mkdir()
    config = json.loads((tiny_sdxl_dir / "scheduler" / "scheduler_config.json").read_text())
    config |= {"prediction_type": "v_prediction", "rescale_betas_zero_snr": True,
               "timestep_spacing": "trailing"}
    (model / "scheduler" / "scheduler_config.json").write_text(json.dumps(config))
    events: list = []
    result = train(make_config(model, demo_images_dir, tmp_path, max_train_steps=2,
                               save_steps=0, checkpointing_steps=0, validation_steps=2,
                               dvar_window=2, dvar_eval_batch_size=2),
                   emit=events.append)
    started = next(e for e in events if e.type == "run_started")
    assert started.model["family"] == "sdxl"
    assert started.model["prediction_type"] == "v_prediction"
    steps = [e for e in events if e.type == "step"]
    assert result.reason == "max_steps" and all(math.isfinite(s.loss) for s in steps)
    assert any(e.type == "preview" and e.step == 2 for e in events)
