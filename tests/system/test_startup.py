"""One process pays for the start-up (issue 16 goal 4): trainer/start.py.

`ti-tui train` and the form start the trainer with `python -m trainer --start FD`; the trainer
runs every check, writes the folder only when they pass, and answers. So the UI process never
imports torch, diffusers or transformers, a refused run still leaves nothing behind with the
same sentence and field, and `python -m trainer run.toml` alone still checks everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "diffusers", "transformers", "accelerate", "safetensors")

UI_SIDE = """
import json, sys
from ti_tui.runner import start_run
from trainer.errors import UserError
from trainer.flags import parse_config

config = parse_config(sys.argv[1:], prog="ti-tui train")
answer = {}
try:
    handle = start_run(config)
    answer["code"] = handle.wait(600)
except UserError as exc:
    answer["error"] = [type(exc).__name__, exc.field, str(exc)]
answer["heavy"] = [m for m in %r if m in sys.modules]
print(json.dumps(answer))
""" % (HEAVY,)


def _ui(flags: list[str]) -> dict:
    """Run the UI's side of a start in a fresh interpreter; its answer and imports."""
    done = subprocess.run([sys.executable, "-c", UI_SIDE, *flags], capture_output=True,
                          text=True, cwd=ROOT, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _flags(tiny_model_dir, demo_images_dir, out: Path, **extra) -> list[str]:
    flags = ["--model", str(tiny_model_dir), "--train_data_dir", str(demo_images_dir),
             "--root", str(out.parent), "--output_dir", str(out), "--placeholder_token",
             "<startup>", "--initializer_token", "star", "--max_train_steps", "2",
             "--train_batch_size", "2", "--save_steps", "0", "--checkpointing_steps", "0",
             "--dvar_eval_every", "0", "--no_copy_to_embeddings", "--seed", "3"]
    for key, value in extra.items():
        flags += [f"--{key}", str(value)]
    return flags


def test_the_ui_starts_a_run_without_importing_torch(tmp_path, tiny_model_dir,
                                                     demo_images_dir):
    out = tmp_path / "run"
    answer = _ui(_flags(tiny_model_dir, demo_images_dir, out))
    assert answer.get("code") == 0, (out / "trainer.log").read_text(errors="replace")[-3000:]
    assert answer["heavy"] == [], "the UI process imported the trainer's libraries"
    # The trainer wrote the folder itself, as the UI used to: run.toml (seed kept), its log.
    run_toml = (out / "run.toml").read_text()
    assert "seed = 3" in run_toml
    assert (out / "trainer.log").exists()
    types = [json.loads(line)["type"] for line in (out / "events.jsonl").read_text().splitlines()]
    assert types.count("step") == 2 and types[-1] == "stopped"


@pytest.mark.parametrize("extra, kind, field, words", [
    ({"initializer_token": "zzqx qqz"}, "ConfigError", "initializer_token", "splits into"),
    ({"resume_from_checkpoint": "checkpoint-500"}, "ResumeError", "resume_from_checkpoint",
     "does not exist"),
])
def test_a_refused_run_raises_the_same_error_in_the_ui_and_writes_nothing(
        tmp_path, tiny_model_dir, demo_images_dir, extra, kind, field, words):
    out = tmp_path / "deep" / "run"
    answer = _ui(_flags(tiny_model_dir, demo_images_dir, out, **extra))
    name, got_field, sentence = answer["error"]
    assert (name, got_field) == (kind, field)
    assert words in sentence and "\n" not in sentence
    assert not (tmp_path / "deep").exists(), "a refused run must write nothing"
    assert answer["heavy"] == []


def test_a_missing_data_folder_is_refused_with_its_field(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    answer = _ui(_flags(tiny_model_dir, tmp_path / "no-such-folder", out))
    assert answer["error"][1] == "train_data_dir"
    assert not out.exists()


def test_the_trainer_alone_still_checks_a_hand_edited_run_toml(tmp_path, tiny_model_dir,
                                                               demo_images_dir):
    """`python -m trainer run.toml` never trusts that somebody checked before it."""
    from trainer.flags import parse_config

    out = tmp_path / "run"
    config = parse_config(_flags(tiny_model_dir, demo_images_dir, out,
                                 initializer_token="zzqx qqz"), prog="t")
    out.mkdir()
    (out / "run.toml").write_text(config.to_toml())
    done = subprocess.run([sys.executable, "-m", "trainer", str(out / "run.toml")],
                          capture_output=True, text=True, cwd=ROOT, timeout=900, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("ti-tui: Initializer 'zzqx qqz'")


def test_start_mode_without_its_answer_descriptor_is_a_usage_error():
    done = subprocess.run([sys.executable, "-m", "trainer", "--start"], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "--start" in done.stderr


# --- latents on a CPU: encoded when a batch first draws them (trainer/latents.py) -------------


def test_the_lazy_cache_encodes_only_what_a_batch_draws_and_matches_the_eager_one():
    import torch

    from trainer.demo import tiny_vae
    from trainer.latents import LatentCache, LazyLatentCache

    torch.manual_seed(0)
    vae = tiny_vae()
    calls: list[int] = []
    encode = vae.encode
    vae.encode = lambda x: calls.append(x.shape[0]) or encode(x)
    pixels = torch.rand(3, 3, 32, 32) * 2 - 1
    lazy = LazyLatentCache(vae, pixels, torch.device("cpu"))
    assert lazy.num_images == 3 and lazy.encoded == 0 and calls == []
    drawn = lazy.sample(torch.tensor([2, 2, 0]), torch.tensor([1, 1, 0]),
                        torch.Generator().manual_seed(1))
    assert lazy.encoded == 2 and calls == [1, 1]  # two pictures, one per VAE call
    eager = LatentCache.encode(vae, pixels, torch.device("cpu"))
    expected = eager.sample(torch.tensor([2, 2, 0]), torch.tensor([1, 1, 0]),
                            torch.Generator().manual_seed(1))
    torch.testing.assert_close(drawn, expected)
    # Drawn again: nothing encoded twice.
    before = len(calls)
    lazy.sample(torch.tensor([0]), torch.tensor([0]), torch.Generator())
    assert lazy.encoded == 2 and len(calls) == before
    # The latents of a picture do not depend on the order pictures were drawn in.
    other = LazyLatentCache(vae, pixels, torch.device("cpu"))
    other.fill(torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([0, 0, 0, 1, 1, 1]))
    full = lazy.to(torch.device("cpu"))
    assert torch.equal(full.mean, other.mean) and torch.equal(full.std, other.std)
    torch.testing.assert_close(full.mean, eager.mean)


def test_the_lazy_cache_refuses_overflowing_latents_when_first_drawn():
    from types import SimpleNamespace

    import torch

    from trainer.errors import ConfigError
    from trainer.latents import LazyLatentCache

    class OverflowingVAE:
        config = SimpleNamespace(scaling_factor=0.13025)

        def encode(self, pixels):
            inf = torch.full((pixels.shape[0], 4, 2, 2), float("inf"), dtype=pixels.dtype)
            return SimpleNamespace(latent_dist=SimpleNamespace(mean=inf, std=inf))

    cache = LazyLatentCache(OverflowingVAE(), torch.zeros(2, 3, 4, 4), torch.device("cpu"),
                            dtype=torch.bfloat16)
    with pytest.raises(ConfigError, match="overflowed in bfloat16.*--vae_precision fp32"):
        cache.sample(torch.tensor([1]), torch.tensor([0]), torch.Generator())


FAKE_TRAINER = """
import pathlib, sys, time
out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True)
(out / "run.toml").write_text("")
(out / "trainer.log").write_text("")
time.sleep(120)  # never answers: still checking when Ctrl-C comes
"""


def test_ctrl_c_while_the_trainer_checks_ends_it_and_leaves_no_folder(tmp_path, monkeypatch,
                                                                      tiny_model_dir,
                                                                      demo_images_dir):
    import signal
    import time

    from ti_tui import runner
    from trainer import start
    from trainer.flags import parse_config

    out = tmp_path / "run"
    config = parse_config(_flags(tiny_model_dir, demo_images_dir, out), prog="t")
    real_launch = start.launch
    started = []

    def fake_launch(config, trainer, env):
        started.append(True)
        return real_launch(config, [sys.executable, "-c", FAKE_TRAINER, str(out)], env)

    deadline = time.monotonic() + 60

    def arm(signum, frame):
        """Ctrl-C once the fake trainer wrote its folder (polled every 50 ms)."""
        if (out / "trainer.log").exists() or time.monotonic() > deadline:
            raise KeyboardInterrupt
        signal.setitimer(signal.ITIMER_REAL, 0.05)

    monkeypatch.setattr(start, "launch", fake_launch)
    previous = signal.signal(signal.SIGALRM, arm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(KeyboardInterrupt):
            runner.start_run(config)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert started and not out.exists()
