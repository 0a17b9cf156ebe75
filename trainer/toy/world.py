"""A toy visual world that the shipped toy model really knows (PIL only, no torch).

32 px RGB scenes: one shape in one colour at one of five places, slightly jittered in size and
position, on a plain light background. Captions read like "a red circle on the left", often
wrapped in a textual-inversion template ("a photo of a red circle on the left") so that the
template words mean nothing special to the model.

Three shapes are *erased*: the model was trained on star, heart and moon like any other shape,
names included, and then tools/train_toy_model.py overwrote the token rows of "star", "heart"
and "moon" with fresh random vectors. The knowledge stays in the UNet and the text encoder's
layers, but no word reaches it any more: a concept that textual inversion can learn (a vector
that works exists, and the erased rows are kept as an answer key) and that prompts cannot.
(Hidden shapes that are drawn in training but never named, captioned "a red thing", were tried
first: the model then draws them only at random, no text feature selects one, and TI drifted
to the nearest named shape. See docs/RESULTS.md.) Three named colour-shape pairs
(`HELD_OUT_PAIRS`) never appear in a training image; they test whether the model composes.

tools/train_toy_model.py trains the model on `training_set(...)`, tools/toy_scorer.py trains a
classifier on `random_scene` renders, and `ti-tui demo` trains on `toy_concept_images(...)`.
Everything is seeded: the same seed gives the same scenes, captions and pixels.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from trainer.assets import asset_path

SIZE = 32
"""Pixels per side of every world image (the toy model's native resolution)."""

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (214, 39, 40),
    "green": (44, 160, 44),
    "blue": (31, 90, 220),
    "yellow": (232, 190, 20),
    "purple": (148, 60, 189),
    "orange": (245, 127, 14),
}
NAMED_SHAPES = ("circle", "square", "triangle", "cross", "ring")
ERASED_SHAPES = ("star", "heart", "moon")
"""Trained with their names like the others; the shipped model has those words erased."""
SHAPES = NAMED_SHAPES + ERASED_SHAPES
POSITIONS: dict[str, tuple[float, float]] = {
    "left": (0.27, 0.5), "right": (0.73, 0.5), "top": (0.5, 0.27), "bottom": (0.5, 0.73),
    "center": (0.5, 0.5),
}
POSITION_PHRASES = {"left": "on the left", "right": "on the right", "top": "at the top",
                    "bottom": "at the bottom", "center": "in the center"}
HELD_OUT_PAIRS = (("blue", "triangle"), ("orange", "ring"), ("purple", "cross"))
"""Colour-shape pairs that never appear in a training image (composition tests)."""

CONCEPTS: dict[str, tuple[str, str]] = {
    "green-star": ("green", "star"),
    "orange-heart": ("orange", "heart"),
    "blue-moon": ("blue", "moon"),
    "red-star": ("red", "star"),
    "purple-heart": ("purple", "heart"),
    "yellow-moon": ("yellow", "moon"),
}
"""Textual-inversion targets: an erased shape in one colour (the model knows it, no word
reaches it)."""

# Caption-making odds (tools/train_toy_model.py relies on them; changing them means retraining).
P_TEMPLATE = 0.5
P_DROP_COLOUR = 0.1
P_DROP_POSITION = 0.25

_SCALE = 4  # draw 4x larger and downsample: cheap antialiasing


@dataclass(frozen=True)
class Scene:
    """One toy picture's content: `render` draws it, `describe` and `caption` put it in words."""

    colour: str
    """A COLOURS name, e.g. "red"."""
    shape: str
    """A SHAPES name, e.g. "circle" (or an erased one: star, heart, moon)."""
    position: str
    """A POSITIONS name, e.g. "left" (captions say POSITION_PHRASES: "on the left")."""
    radius: float
    """Shape radius in pixels of the 32 px image."""
    dx: float
    """Horizontal jitter of the shape's centre, in pixels (positive is right)."""
    dy: float
    """Vertical jitter of the shape's centre, in pixels (positive is down)."""
    background: tuple[int, int, int]
    """Light grey RGB, each channel 0-255."""

    @property
    def concept(self) -> str:
        """The colour-shape pair as parse_concept reads it, e.g. "green-star"."""
        return f"{self.colour}-{self.shape}"


def random_scene(rng: random.Random, *, colour: str | None = None, shape: str | None = None,
                 position: str | None = None) -> Scene:
    """One scene; unspecified attributes are drawn uniformly."""
    grey = rng.uniform(222, 250)
    background = tuple(int(max(0, min(255, grey + rng.uniform(-8, 8)))) for _ in range(3))
    return Scene(colour=colour or rng.choice(list(COLOURS)), shape=shape or rng.choice(SHAPES),
                 position=position or rng.choice(list(POSITIONS)),
                 radius=5.6 * rng.uniform(0.85, 1.15), dx=rng.uniform(-1.5, 1.5),
                 dy=rng.uniform(-1.5, 1.5), background=background)


def _star(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    points = []
    for k in range(10):
        radius = r * 1.2 if k % 2 == 0 else r * 0.5
        angle = k * math.pi / 5 - math.pi / 2
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def _draw(draw: ImageDraw.ImageDraw, scene: Scene, cx: float, cy: float, r: float,
          fill: tuple[int, int, int]) -> None:
    bg = scene.background
    shape = scene.shape
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        h = r * 0.88
        draw.rectangle([cx - h, cy - h, cx + h, cy + h], fill=fill)
    elif shape == "triangle":
        R = r * 1.25
        pts = [(cx + R * math.cos(a), cy + R * math.sin(a) + r * 0.12)
               for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
        draw.polygon(pts, fill=fill)
    elif shape == "cross":
        w = r * 0.34
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        i = r * 0.55
        draw.ellipse([cx - i, cy - i, cx + i, cy + i], fill=bg)
    elif shape == "star":
        draw.polygon(_star(cx, cy, r), fill=fill)
    elif shape == "heart":
        lobe = r * 0.52
        top = cy - r * 0.35
        draw.ellipse([cx - 2 * lobe, top - lobe, cx, top + lobe], fill=fill)
        draw.ellipse([cx, top - lobe, cx + 2 * lobe, top + lobe], fill=fill)
        draw.polygon([(cx - 2 * lobe + r * 0.04, top + lobe * 0.35),
                      (cx + 2 * lobe - r * 0.04, top + lobe * 0.35), (cx, cy + r * 1.0)],
                     fill=fill)
    elif shape == "moon":
        # A crescent opening upward, mirror-symmetric like every shape here (training flips
        # images left-right, so no shape may change under a flip).
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        o = r * 0.8
        draw.ellipse([cx - o, cy - r * 0.5 - o, cx + o, cy - r * 0.5 + o], fill=bg)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def render(scene: Scene, size: int = SIZE) -> Image.Image:
    """The scene as an RGB image of `size` pixels per side."""
    big = size * _SCALE
    k = big / SIZE
    image = Image.new("RGB", (big, big), scene.background)
    fx, fy = POSITIONS[scene.position]
    cx = (fx * SIZE + scene.dx) * k
    cy = (fy * SIZE + scene.dy) * k
    _draw(ImageDraw.Draw(image), scene, cx, cy, scene.radius * k, COLOURS[scene.colour])
    return image.resize((size, size), Image.Resampling.BOX)


def describe(scene: Scene, *, colour: bool = True, position: bool = True) -> str:
    """"red circle on the left"."""
    words = ([scene.colour] if colour else []) + [scene.shape]
    if position:
        words.append(POSITION_PHRASES[scene.position])
    return " ".join(words)


def caption(scene: Scene, rng: random.Random) -> str:
    """A training caption: sometimes without colour or position, often in a TI template."""
    from trainer.data import OBJECT_TEMPLATES

    text = describe(scene, colour=rng.random() >= P_DROP_COLOUR,
                    position=rng.random() >= P_DROP_POSITION)
    template = rng.choice(OBJECT_TEMPLATES) if rng.random() < P_TEMPLATE else "a {}"
    return template.format(text)


def training_set(count: int, seed: int) -> list[tuple[Scene, str]]:
    """The world model's training data: `count` (scene, caption) pairs, no held-out pair."""
    rng = random.Random(f"toyworld-train:{seed}")
    held_out = set(HELD_OUT_PAIRS)
    out = []
    while len(out) < count:
        scene = random_scene(rng)
        if (scene.colour, scene.shape) in held_out:
            continue
        out.append((scene, caption(scene, rng)))
    return out


def parse_concept(concept: str) -> tuple[str, str]:
    """"green-star", "green star" or a CONCEPTS key -> (colour, shape); ValueError naming
    the colours and shapes for anything else."""
    key = concept.strip().strip("<>").replace(" ", "-").lower()
    if key in CONCEPTS:
        return CONCEPTS[key]
    colour, _, shape = key.partition("-")
    if colour not in COLOURS or shape not in SHAPES:
        raise ValueError(f"unknown toy concept {concept!r}; use colour-shape such as "
                         f"'green-star' (colours: {', '.join(COLOURS)}; shapes: "
                         f"{', '.join(SHAPES)})")
    return colour, shape


def concept_scenes(concept: str, count: int = 5, seed: int = 0) -> list[Scene]:
    """`count` views of one concept: positions cycle through the five places."""
    colour, shape = parse_concept(concept)
    rng = random.Random(f"toyworld-concept:{colour}-{shape}:{seed}")
    places = list(POSITIONS)
    rng.shuffle(places)
    return [random_scene(rng, colour=colour, shape=shape, position=places[i % len(places)])
            for i in range(count)]


def toy_concept_images(folder: str | Path, concept: str, count: int = 5,
                       seed: int = 0) -> list[Path]:
    """Write `count` 32 px PNGs of `concept` (e.g. "green-star") into `folder`.

    Deterministic for (concept, count, seed); identical files are left untouched.
    """
    from trainer.fsutil import atomic_write_bytes

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    colour, shape = parse_concept(concept)
    paths = []
    for i, scene in enumerate(concept_scenes(concept, count, seed)):
        buf = io.BytesIO()
        render(scene).save(buf, format="PNG")
        data = buf.getvalue()
        path = folder / f"{colour}-{shape}-{i:02d}.png"
        if not (path.is_file() and path.read_bytes() == data):
            atomic_write_bytes(path, data)
        paths.append(path)
    return paths


def toy_model_dir() -> Path:
    """The shipped toy model: a diffusers folder that knows this world (assets/toy-model)."""
    return asset_path("toy-model")


def scorer_path() -> Path:
    """The shipped classifier weights (tools/toy_scorer.py loads them)."""
    return asset_path("toy-model", "scorer.safetensors")
