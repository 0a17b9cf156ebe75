"""Training images: find them, open them safely, and turn them into square RGB tensors.

Every bad file is skipped with a warning naming it (never a crash at step 2900); only when no
image survives does the run stop with a DataError. Latents are cached elsewhere
(trainer/latents.py): this module never touches the VAE.
"""

from __future__ import annotations

import os
import re
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from trainer.errors import DataError
from trainer.paths import near_miss, special_kind

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")

# The caption templates of the textual-inversion paper, as InvokeAI and diffusers use them:
# "{}" is replaced by the placeholder tokens.
OBJECT_TEMPLATES = (
    "a photo of a {}", "a rendering of a {}", "a cropped photo of the {}", "the photo of a {}",
    "a photo of a clean {}", "a photo of a dirty {}", "a dark photo of the {}",
    "a photo of my {}", "a photo of the cool {}", "a close-up photo of a {}",
    "a bright photo of the {}", "a cropped photo of a {}", "a photo of the {}",
    "a good photo of the {}", "a photo of one {}", "a close-up photo of the {}",
    "a rendition of the {}", "a photo of the clean {}", "a rendition of a {}",
    "a photo of a nice {}", "a good photo of a {}", "a photo of the nice {}",
    "a photo of the small {}", "a photo of the weird {}", "a photo of the large {}",
    "a photo of a cool {}", "a photo of a small {}",
)
STYLE_TEMPLATES = (
    "a painting in the style of {}", "a rendering in the style of {}",
    "a cropped painting in the style of {}", "the painting in the style of {}",
    "a clean painting in the style of {}", "a dirty painting in the style of {}",
    "a dark painting in the style of {}", "a picture in the style of {}",
    "a cool painting in the style of {}", "a close-up painting in the style of {}",
    "a bright painting in the style of {}", "a good painting in the style of {}",
    "a close-up painting in the style of {}", "a rendition in the style of {}",
    "a nice painting in the style of {}", "a small painting in the style of {}",
    "a weird painting in the style of {}", "a large painting in the style of {}",
    "a painting in the style of {}",
)

# PIL refuses images over ~179 Mpx by default; we refuse anything above this, which is far
# beyond any photo yet small enough that decoding cannot exhaust memory.
MAX_PIXELS = 100_000_000


def templates_for(learnable_property: str) -> tuple[str, ...]:
    """The caption templates for --learnable_property: the style ones for "style", the
    object ones otherwise."""
    return STYLE_TEMPLATES if learnable_property == "style" else OBJECT_TEMPLATES


def preview_template(validation_prompt: str | None, trigger: str) -> str:
    """The preview prompt with "{}" where the trigger's vectors go.

    The trigger may be written in the prompt (`a <cat> on a sofa`) or left out (it is then
    appended). Only "{}" is a marker: other braces are the user's text, so the prompt is
    filled with str.replace, never str.format (which raises on `{cat}`).
    """
    prompt = (validation_prompt or "a photo of {}").replace(trigger, "{}")
    return prompt if "{}" in prompt else f"{prompt} {{}}"


def fill(template: str, text: str) -> str:
    """`template` with every "{}" replaced by `text`."""
    return template.replace("{}", text)


def tokens_needed(tokenizer, template: str, num_vectors: int) -> int:
    """Tokens a caption takes in the text encoder's window: the template's own tokens, its
    begin and end tokens, and one per vector (each placeholder token is one id)."""
    words = fill(template, " ").strip()
    ids = tokenizer(words, truncation=False, verbose=False).input_ids
    return len(ids) + num_vectors * template.count("{}")


def check_fits_window(tokenizer, *, num_vectors: int, learnable_property: str,
                      validation_prompt: str | None, trigger: str) -> None:
    """Refuse captions that CLIP's window (77 tokens: `tokenizer.model_max_length`) would cut.

    Tokenizing with truncation=True, as training must for fixed-size batches, silently drops
    the last vectors and the end token of a caption that is too long; so every caption
    template and the preview prompt are measured first. Raises ConfigError naming
    --num_vectors (templates) or --validation_prompt.
    """
    from trainer.errors import ConfigError

    window = int(tokenizer.model_max_length)
    templates = templates_for(learnable_property)
    longest = max(templates, key=lambda t: tokens_needed(tokenizer, t, num_vectors))
    needed = tokens_needed(tokenizer, longest, num_vectors)
    if needed > window:
        fits = num_vectors - (needed - window)
        raise ConfigError(
            f"Number of vectors (--num_vectors) {num_vectors} does not fit the text encoder's "
            f"{window}-token window: the {learnable_property} caption "
            f"'{fill(longest, trigger)}' would need {needed} tokens and be cut; use at most "
            f"{fits} vectors.", field="num_vectors")
    prompt = preview_template(validation_prompt, trigger)
    needed = tokens_needed(tokenizer, prompt, num_vectors)
    if needed > window:
        raise ConfigError(
            f"Preview prompt (--validation_prompt) needs {needed} tokens with the trigger's "
            f"{num_vectors} vectors, more than the text encoder's {window}; shorten it by "
            f"{needed - window} tokens (about as many words).", field="validation_prompt")


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly in `folder`, any letter case, sorted by name. DataError (field
    train_data_dir) when the folder is missing, a file, or unreadable.

    Sub-folders are not entered, so a symlink loop inside the folder cannot trap us. A link
    with an image name that cannot be followed (dangling, or a loop) is listed all the same:
    opening it fails and `load_images` skips it with a warning naming it, instead of the
    image silently not being used.
    """
    folder = Path(folder).expanduser()
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        raise DataError(f"Data directory {folder} does not exist{near_miss(folder)}; create "
                        "it and put 3-20 "
                        "images of your concept in it.", field="train_data_dir") from None
    except NotADirectoryError:
        raise DataError(f"Data directory {folder} is a file, not a folder; pass the folder "
                        "that holds your images.", field="train_data_dir") from None
    except PermissionError:
        raise DataError(f"Data directory {folder} cannot be read (permission denied); fix "
                        f"its permissions (chmod u+rx {folder}) or copy the images to a "
                        "folder you own.", field="train_data_dir") from None
    except OSError as exc:
        raise DataError(f"Data directory {folder} cannot be read ({exc.strerror or exc}); "
                        "pass a folder you can read.", field="train_data_dir") from None
    found = []
    for entry in entries:
        if entry.name.startswith(".") or not entry.name.lower().endswith(IMAGE_SUFFIXES):
            continue
        try:
            if entry.is_dir():  # follows links: a folder called "x.png" is not an image
                continue
        except OSError:
            pass  # a link that cannot be followed: listed, then skipped with a warning
        found.append(Path(entry.path))
    return sorted(found, key=lambda p: p.name)


def pixel_limit() -> int:
    """The most pixels an image may have: ours, or PIL's MAX_IMAGE_PIXELS if lower."""
    pil = Image.MAX_IMAGE_PIXELS
    return min(MAX_PIXELS, int(pil)) if pil else MAX_PIXELS


@dataclass
class LoadedImages:
    """The usable training images, in sorted-filename order, already square and RGB."""

    paths: list[Path]
    """The files kept, sorted by name (dataset item i is paths[i])."""
    images: list[Image.Image]
    """The same images, RGB, cropped or resized to resolution x resolution."""
    warnings: list[tuple[str, str]] = field(default_factory=list)
    """(message, file) for every skipped or upscaled file."""


def open_rgb(path: Path) -> Image.Image:
    """Open any supported image as 8-bit RGB: EXIF rotation applied, alpha on white.

    Raises ValueError with a short reason (a clause: "it is ...") when the file is not a
    usable image. Images over `pixel_limit()` are refused from their header, before any
    pixel is decoded.
    """
    limit = pixel_limit()
    kind = special_kind(path)
    if kind is not None:  # a pipe or /dev/zero under an image name: reading would not end
        raise ValueError(f"it is {kind}, not an image file")
    try:
        if path.stat().st_size == 0:
            raise ValueError("the file is empty (0 bytes)")
        with warnings.catch_warnings():
            # PIL warns from MAX_IMAGE_PIXELS on and refuses from twice that; we refuse at
            # `limit` with the image's size in the message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > limit:
                    raise ValueError(_too_large(f"{img.width}x{img.height} pixels", limit))
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb(img)
    except Image.DecompressionBombError as exc:
        size = re.search(r"\((\d+) pixels\)", str(exc))
        raise ValueError(_too_large(f"{int(size.group(1)):,} pixels" if size else "huge",
                                    limit)) from None
    except UnidentifiedImageError:
        raise ValueError("it is not an image PIL can read (wrong extension, or not an image "
                         "at all)") from None
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        raise ValueError(f"it cannot be read ({exc.strerror or type(exc).__name__}); fix its "
                         "permissions or remove it") from None
    except OSError as exc:
        if exc.errno is not None:  # ELOOP, EIO...: the file system, not the image
            raise ValueError(f"it cannot be read ({exc.strerror or exc})") from None
        raise ValueError(f"it is corrupt or truncated ({exc})") from None
    except (SyntaxError, struct.error, ZeroDivisionError, MemoryError) as exc:
        # Malformed headers surface as these from some PIL plugins.
        raise ValueError(f"it is corrupt ({type(exc).__name__}: {exc})") from None


def _too_large(size: str, limit: int) -> str:
    return (f"it is {size}, more than the {limit:,} pixels ti-tui decodes (a possible "
            "decompression bomb); downscale it first")


WHITE = (255, 255, 255)
"""Transparent pixels are composited on white, as A1111 and kohya do with RGBA images."""

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
"""Modes with an alpha band. Not "A" in getbands(): LAB's "A" is a colour axis."""


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB, transparent parts on white.

    Transparency is decided from the image, not its mode name: an alpha band, or a PNG
    `tRNS` chunk that PIL exposes as `info["transparency"]` (a transparent grey level in
    1-bit, 8-bit and 16-bit greyscale, a colour in RGB, alpha entries of a palette). PNG
    optimisers write greyscale + tRNS for icons and line art, which would otherwise train on
    black.
    """
    alpha = _alpha_mask(img)
    colour = _colour(img)
    if alpha is None:
        return colour
    background = Image.new("RGB", img.size, WHITE)
    background.paste(colour, mask=alpha)
    return background


def _alpha_mask(img: Image.Image) -> Image.Image | None:
    """An "L" mask (255 opaque, 0 transparent), or None when the image is fully opaque."""
    if img.mode in ("RGBa", "La"):
        return img.getchannel("a")
    if img.mode in _ALPHA_MODES:
        return img.getchannel("A")
    key = img.info.get("transparency")
    if key is None:
        return None
    if img.mode == "P":
        # A palette's tRNS (bytes per entry, or one index): PIL's own conversion reads it.
        return img.convert("RGBA").getchannel("A")
    arr = np.asarray(img)
    if img.mode == "1":
        # PNG stores the key as the 1-bit sample (0 or 1); PIL shows set pixels as True.
        transparent = arr == bool(key)
    elif arr.ndim == 2 and isinstance(key, (int, float)):
        transparent = arr == key  # L, I, I;16*, F: the key is in the image's own units
    elif arr.ndim == 3 and isinstance(key, tuple) and len(key) >= 3:
        transparent = np.all(arr[..., :3] == np.asarray(key[:3], dtype=arr.dtype), axis=-1)
    else:
        return None  # a key PIL exposes in a form no image of this mode can match
    if not transparent.any():
        return None
    return Image.fromarray(np.where(transparent, 0, 255).astype(np.uint8), "L")


def _colour(img: Image.Image) -> Image.Image:
    """The colour of every pixel as RGB, alpha ignored (it is applied by `_to_rgb`)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16/32-bit and float greyscale: scale to 8 bits instead of clipping to white.
        arr = np.asarray(img, dtype=np.float64)
        peak = float(arr.max()) if arr.size else 0.0
        if img.mode.startswith("I;16") or peak > 255:
            top = 65535.0
        elif img.mode == "F" and peak <= 1.0:
            top = 1.0  # float images in [0, 1]
        else:
            top = 255.0
        return Image.fromarray((arr / top * 255.0).clip(0, 255).astype(np.uint8),
                               "L").convert("RGB")
    if img.mode == "La":
        # Premultiplied grey + alpha, which PIL cannot convert: undo the premultiplication.
        grey = np.asarray(img.getchannel("L"), dtype=np.float64)
        a = np.asarray(img.getchannel("a"), dtype=np.float64)
        plain = np.where(a > 0, grey * 255.0 / np.maximum(a, 1), 0).clip(0, 255)
        return Image.fromarray(plain.astype(np.uint8), "L").convert("RGB")
    if img.mode in ("RGBa", "PA"):
        img = img.convert("RGBA")  # PIL un-premultiplies RGBa, and has no PA -> RGB
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, P, 1, L, LA: PIL's own rules


def square(img: Image.Image, resolution: int, center_crop: bool) -> Image.Image:
    """Bicubic resize to resolution x resolution, optionally cropping the centre square first."""
    if center_crop:
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img = img.crop((left, top, left + side, top + side))
    if img.size != (resolution, resolution):
        img = img.resize((resolution, resolution), Image.Resampling.BICUBIC)
    return img


def load_images(folder: str | os.PathLike[str], resolution: int, center_crop: bool,
                on_warning: Callable[[str, str], None] | None = None) -> LoadedImages:
    """Open every image in `folder`; skip bad ones with a warning; refuse if none is left."""
    paths = list_images(folder)
    if not paths:
        raise DataError(f"Data directory {Path(folder).expanduser()} holds no images (PNG, "
                        "JPEG, WebP, GIF or BMP); put 3-20 images of your concept in it.",
                        field="train_data_dir")
    result = LoadedImages(paths=[], images=[])
    squeezed: list[str] = []

    def warn(message: str, path: Path) -> None:
        result.warnings.append((message, str(path)))
        if on_warning is not None:
            on_warning(message, str(path))

    for path in paths:
        try:
            img = open_rgb(path)
        except ValueError as exc:
            warn(f"Skipped {path.name}: {exc}.", path)
            continue
        if min(img.size) < resolution:
            warn(f"{path.name} is {img.width}x{img.height}, smaller than {resolution}; it was "
                 "upscaled and may look soft.", path)
        result.paths.append(path)
        result.images.append(square(img, resolution, center_crop))
        if _squeezed(img.size):
            squeezed.append(f"{path.name} {img.width}x{img.height}")
    if not result.images:
        raise no_usable_image(Path(folder).expanduser(), result.warnings)
    if squeezed:
        # Never a silent change of what the model sees: say it, and which flag applies.
        shown = ", ".join(squeezed[:3]) + (f" and {len(squeezed) - 3} more"
                                           if len(squeezed) > 3 else "")
        if center_crop:
            warn(f"{len(squeezed)} image(s) are not square ({shown}): --center_crop trains on "
                 "each one's centre square only, so what lies beyond it is never seen; crop "
                 "them square yourself to choose what stays.", Path(folder))
        else:
            warn(f"{len(squeezed)} image(s) are not square ({shown}): each was squeezed to "
                 f"{resolution}x{resolution}, distorting it; crop them square, or pass "
                 "--center_crop to train on their centre square.", Path(folder))
    sidecars = caption_files(Path(folder).expanduser(), result.paths)
    if sidecars:
        warn(f"Found {len(sidecars)} caption file(s) beside the images ({sidecars[0].name}"
             f"{', ...' if len(sidecars) > 1 else ''}); ti-tui does not read them: textual "
             "inversion trains with its own caption templates, chosen by "
             "--learnable_property (object or style).", sidecars[0])
    return result


SQUEEZE_TOLERANCE = 0.05
"""Aspect ratios within 5% of square are resized without a word: the change is invisible."""


def _squeezed(size: tuple[int, int]) -> bool:
    width, height = size
    return max(width, height) / max(1, min(width, height)) > 1 + SQUEEZE_TOLERANCE


CAPTION_SUFFIXES = (".txt", ".caption")
"""Sidecar captions other trainers read (kohya, EveryDream: IMAGE.txt / IMAGE.caption)."""


def caption_files(folder: Path, images: list[Path]) -> list[Path]:
    """Caption sidecars named like one of `images` (a.png -> a.txt), sorted by name."""
    stems = {p.stem for p in images}
    found = []
    for suffix in CAPTION_SUFFIXES:
        for stem in stems:
            candidate = folder / f"{stem}{suffix}"
            if os.path.isfile(candidate):
                found.append(candidate)
    return sorted(found, key=lambda p: p.name)


def no_usable_image(folder: Path, problems: list[tuple[str, str]]) -> DataError:
    """The error for a folder whose image files are all unusable, naming each (up to 3)."""
    shown = "; ".join(message.rstrip(".") for message, _ in problems[:3])
    more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
    return DataError(f"None of the {len(problems)} image files in {folder} can be used "
                     f"({shown}{more}); replace them with readable PNG or JPEG images.",
                     field="train_data_dir")


def check_some_image_usable(folder: Path, paths: list[Path]) -> None:
    """Raise DataError unless at least one of `paths` opens (preflight's cheap check).

    Opens files in order until one works, so a healthy folder costs one decode.
    """
    problems = []
    for path in paths:
        try:
            open_rgb(path)
            return
        except ValueError as exc:
            problems.append((f"Skipped {path.name}: {exc}.", str(path)))
    raise no_usable_image(folder, problems)


def to_tensor_batch(images: list[Image.Image]):
    """Images -> float tensor [n, 3, H, W] in [-1, 1], as the VAE expects."""
    import torch

    arr = np.stack([np.asarray(img, dtype=np.float32) for img in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).div_(127.5).sub_(1.0)
