"""The toy world's ground truth: a small CNN that reads colour, shape and place off an image,
plus the helpers that generate images with the toy model and score them.

    nice -n 10 .venv/bin/python tools/toy_scorer.py train      # -> assets/toy-model/scorer.safetensors
    nice -n 10 .venv/bin/python tools/toy_scorer.py evaluate   # generation accuracy (JSON)

The classifier is trained on clean renders of `trainer.toyworld.random_scene` (every colour,
shape and place, erased shapes and held-out pairs included: it is the judge, not the model),
with mild blur, noise and brightness jitter so that slightly soft generated images read the
same. A concept score is the fraction of generated images whose colour and shape are the
concept's.

Other scripts import this file (bench/dvar_outcome.py, tests/engine/test_toy_world.py): put tools/ on
sys.path and `import toy_scorer`.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from trainer import toyworld  # noqa: E402

COLOURS = list(toyworld.COLOURS)
SHAPES = list(toyworld.SHAPES)
PLACES = list(toyworld.POSITIONS)
GUIDANCE = 4.0
STEPS = 20


class Scorer(nn.Module):
    """Four conv layers and three heads (colour, shape, place); about 0.2M parameters."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 16
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 8
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 4
            nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU())
        self.colour = nn.Linear(128, len(COLOURS))
        self.shape = nn.Linear(128, len(SHAPES))
        self.place = nn.Linear(128, len(PLACES))

    def forward(self, x: torch.Tensor):
        h = self.features(x)
        return self.colour(h), self.shape(h), self.place(h)

    @torch.no_grad()
    def classify(self, images) -> list[dict]:
        """PIL images (or uint8 [n, 3, 32, 32]) -> [{colour, shape, place}, ...]."""
        x = images if isinstance(images, torch.Tensor) else to_uint8(images)
        logits = self(prepare(x))
        picks = [head.argmax(dim=1).tolist() for head in logits]
        return [{"colour": COLOURS[c], "shape": SHAPES[s], "place": PLACES[p]}
                for c, s, p in zip(*picks)]


def to_uint8(images) -> torch.Tensor:
    arr = np.stack([np.asarray(img.convert("RGB").resize((32, 32)), dtype=np.uint8)
                    for img in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def prepare(x: torch.Tensor) -> torch.Tensor:
    return x.float().div(127.5).sub(1.0)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Soften, shift brightness and add noise, as a generated image may be."""
    x = prepare(x)
    n = x.shape[0]
    blur = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0
    soft = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"),
                    blur.view(1, 1, 3, 3).repeat(3, 1, 1, 1), groups=3)
    amount = torch.rand(n, 1, 1, 1, generator=gen)
    x = x + amount * (soft - x)
    x = x + 0.08 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
    x = x + 0.04 * torch.rand(n, 1, 1, 1, generator=gen) * torch.randn(x.shape, generator=gen)
    return x


def _labelled(count: int, seed: str):
    rng = random.Random(seed)
    scenes = [toyworld.random_scene(rng) for _ in range(count)]
    arr = np.stack([np.asarray(toyworld.render(s), dtype=np.uint8) for s in scenes])
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor([[COLOURS.index(s.colour), SHAPES.index(s.shape), PLACES.index(s.position)]
                      for s in scenes])
    return x, y


def accuracy(model: Scorer, x: torch.Tensor, y: torch.Tensor) -> dict:
    model.eval()
    with torch.no_grad():
        logits = model(prepare(x))
    right = torch.stack([head.argmax(dim=1) == y[:, k] for k, head in enumerate(logits)])
    return {"colour": float(right[0].float().mean()), "shape": float(right[1].float().mean()),
            "place": float(right[2].float().mean()), "all": float(right.all(dim=0).float().mean())}


def train_scorer(out: Path, *, seed: int = 0, images: int = 20000, steps: int = 800,
                 batch: int = 128, log=print) -> dict:
    torch.manual_seed(seed)
    x, y = _labelled(images, f"scorer-train:{seed}")
    x_test, y_test = _labelled(2000, f"scorer-test:{seed}")
    model = Scorer()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    model.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = 2e-3 * 0.5 * (1 + np.cos(np.pi * step / steps))
        idx = torch.randint(0, x.shape[0], (batch,), generator=gen)
        logits = model(_augment(x[idx], gen))
        loss = sum(F.cross_entropy(head, y[idx, k]) for k, head in enumerate(logits))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"scorer step {step} loss {loss.item():.4f}")
    seconds = time.perf_counter() - started
    result = {"held_out_accuracy": accuracy(model, x_test, y_test), "train_seconds": round(seconds, 1),
              "images": images, "steps": steps, "batch": batch, "seed": seed,
              "parameters": sum(p.numel() for p in model.parameters())}
    from safetensors.torch import save_file

    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out),
              metadata={"info": json.dumps(result)})
    return result


def load_scorer(path: Path | None = None) -> Scorer:
    from safetensors.torch import load_file

    model = Scorer()
    model.load_state_dict(load_file(str(path or toyworld.scorer_path())))
    model.eval()
    return model


# --- generating with the toy model -------------------------------------------------------------

def load_pipeline(model_dir: Path | None = None):
    """The toy model as a StableDiffusionPipeline with DPM-Solver++ (offline)."""
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline
    from diffusers.utils import logging as dl
    from transformers.utils import logging as tl

    dl.set_verbosity_error()
    tl.set_verbosity_error()
    tl.disable_progress_bar()
    pipe = StableDiffusionPipeline.from_pretrained(
        str(model_dir or toyworld.toy_model_dir()), local_files_only=True, safety_checker=None,
        requires_safety_checker=False)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def add_token(pipe, token: str) -> int:
    """Add `token` to the pipeline's tokenizer and text encoder; returns its id."""
    if token not in pipe.tokenizer.get_vocab():
        pipe.tokenizer.add_tokens([token])
        pipe.text_encoder.resize_token_embeddings(len(pipe.tokenizer), mean_resizing=False)
    return pipe.tokenizer.convert_tokens_to_ids(token)


def set_token(pipe, token: str, vector: torch.Tensor) -> None:
    token_id = add_token(pipe, token)
    with torch.no_grad():
        pipe.text_encoder.get_input_embeddings().weight[token_id] = vector.reshape(-1)


def load_vector(path: Path) -> torch.Tensor:
    from trainer.formats import load_embedding

    return load_embedding(path)[1][0]


@torch.no_grad()
def generate(pipe, prompts: list[str], seed: int = 0, batch: int = 64,
             guidance: float = GUIDANCE, steps: int = STEPS) -> torch.Tensor:
    """uint8 [n, 3, 32, 32]; image i uses the i-th draw of one seeded generator stream."""
    out = []
    gen = torch.Generator().manual_seed(seed)
    for start in range(0, len(prompts), batch):
        chunk = prompts[start:start + batch]
        images = pipe(chunk, num_inference_steps=steps, guidance_scale=guidance,
                      generator=gen, output_type="np").images
        out.append(torch.from_numpy((images * 255).round().astype(np.uint8)).permute(0, 3, 1, 2))
    return torch.cat(out)


def concept_score(scorer: Scorer, images: torch.Tensor, concept: str) -> float:
    colour, shape = toyworld.parse_concept(concept)
    labels = scorer.classify(images)
    return sum(lab["colour"] == colour and lab["shape"] == shape for lab in labels) / len(labels)


def caption_accuracy(scorer: Scorer, images: torch.Tensor, targets: list[tuple]) -> dict:
    """targets: (colour, shape, place) per image -> the fraction right per attribute."""
    labels = scorer.classify(images)
    rows = [(lab["colour"] == c, lab["shape"] == s, lab["place"] == p)
            for lab, (c, s, p) in zip(labels, targets)]
    arr = np.array(rows, dtype=bool)
    return {"n": len(rows), "colour": float(arr[:, 0].mean()), "shape": float(arr[:, 1].mean()),
            "place": float(arr[:, 2].mean()), "all": float(arr.all(axis=1).mean())}


def caption_sets() -> dict[str, list[tuple]]:
    """Evaluation captions: every seen named colour-shape-place (135), the held-out pairs at
    every place (x4 = 60), and every colour-place with an erased shape (90)."""
    held = set(toyworld.HELD_OUT_PAIRS)
    seen = [(c, s, p) for c in COLOURS for s in toyworld.NAMED_SHAPES for p in PLACES
            if (c, s) not in held]
    unseen = [(c, s, p) for c, s in toyworld.HELD_OUT_PAIRS for p in PLACES] * 4
    erased = [(c, s, p) for c in COLOURS for s in toyworld.ERASED_SHAPES for p in PLACES]
    return {"seen_named": seen, "held_out_pairs": unseen, "erased_shapes": erased}


def prompt_for(colour: str, shape: str, place: str) -> str:
    return f"a {colour} {shape} {toyworld.POSITION_PHRASES[place]}"


def erased_rows(model_dir: Path | None = None) -> dict[str, torch.Tensor]:
    """The answer key: the token rows the erased words had before they were erased."""
    from safetensors.torch import load_file

    return load_file(str(Path(model_dir or toyworld.toy_model_dir()) / "erased_words.safetensors"))


def set_words(pipe, rows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Overwrite the rows of existing one-token words; returns what they held before."""
    table = pipe.text_encoder.get_input_embeddings().weight
    before = {}
    with torch.no_grad():
        for word, row in rows.items():
            token_id = pipe.tokenizer.encode(word, add_special_tokens=False)[0]
            before[word] = table[token_id].clone()
            table[token_id] = row
    return before


def evaluate(model_dir: Path | None = None, seed: int = 0, guidance: float = GUIDANCE) -> dict:
    """Generation accuracy per caption set; erased shapes with and without the answer key."""
    pipe = load_pipeline(model_dir)
    scorer = load_scorer()
    result = {"guidance": guidance, "steps": STEPS, "sampler": "DPMSolverMultistep", "seed": seed}

    def run(targets):
        return caption_accuracy(scorer, generate(pipe, [prompt_for(*t) for t in targets],
                                                 seed=seed, guidance=guidance), targets)

    sets = caption_sets()
    result["seen_named"] = run(sets["seen_named"])
    result["held_out_pairs"] = run(sets["held_out_pairs"])
    result["erased_shapes_by_words"] = run(sets["erased_shapes"])
    concept_prompts = {c: f"a photo of a {col} {shape}" for c, (col, shape) in toyworld.CONCEPTS.items()}
    words = {c: concept_score(scorer, generate(pipe, [p] * 32, seed=seed, guidance=guidance), c)
             for c, p in concept_prompts.items()}
    erased = set_words(pipe, erased_rows(model_dir))
    result["erased_shapes_with_answer_key"] = run(sets["erased_shapes"])
    key = {c: concept_score(scorer, generate(pipe, [p] * 32, seed=seed, guidance=guidance), c)
           for c, p in concept_prompts.items()}
    set_words(pipe, erased)
    result["concept_scores"] = {
        c: {"prompt": concept_prompts[c], "words_only": words[c], "with_answer_key": key[c]}
        for c in toyworld.CONCEPTS}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train or use the toy-world scorer.")
    parser.add_argument("command", choices=("train", "evaluate"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--guidance", type=float, default=GUIDANCE)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.command == "train":
        result = train_scorer(args.out or toyworld.scorer_path(), seed=args.seed,
                              log=lambda m: print(m, file=sys.stderr, flush=True))
    else:
        result = evaluate(args.model, seed=args.seed, guidance=args.guidance)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
