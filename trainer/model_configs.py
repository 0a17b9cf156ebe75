"""The diffusers config folders single-file checkpoints load against, offline.

diffusers' `from_single_file` needs a diffusers config folder (`config=`); without one it
fetches it from the Hub (diffusers#8752). ti-tui ships one per family in
assets/model-configs/ (values from the Hugging Face model repos named in its README.md):
sd1 (stable-diffusion-v1-5), sd2 (stable-diffusion-2-1-base, 512, epsilon), sd2-v
(stable-diffusion-2-1, 768, v-prediction) and sdxl (stable-diffusion-xl-base-1.0). Their
tokenizer folders hold only each tokenizer's settings; the vocabulary is joined in on use.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from trainer.assets import asset_path


def shipped_config(family: str, prediction_type: str) -> Path:
    """The shipped diffusers config folder for a family (assets/model-configs/...)."""
    name = "sd2-v" if family == "sd2" and prediction_type == "v_prediction" else family
    return asset_path("model-configs", name)


def tokenizer_folder(facts) -> Path:
    """Where the first tokenizer of a checked model lives: the model folder, or for a single
    file its config folder with the vocabulary filled in (`complete_config`)."""
    if getattr(facts, "config_path", None) is None:
        return Path(facts.path)
    return complete_config(Path(facts.config_path))


def _tokenizer_dirs(config_dir: Path) -> list[str]:
    return [n for n in ("tokenizer", "tokenizer_2") if (config_dir / n).is_dir()]


def complete_config(config_dir: Path) -> Path:
    """`config_dir`, or a cached copy whose tokenizer folders also hold the CLIP vocabulary.

    The shipped folders keep only each tokenizer's settings (SD 2.x and SDXL's second
    tokenizer pad with "!"); the 1.5 MB vocab.json + merges.txt, the same for every CLIP
    tokenizer of SD 1.x/2.x/SDXL, ship once in assets/clip-tokenizer. The copy lives in the
    ti-tui cache (trainer.assets.cache_root), written atomically, made once per folder.
    """
    from trainer import model_check
    from trainer.assets import cache_root
    from trainer.fsutil import atomic_dir

    config_dir = Path(config_dir)
    missing = [n for n in _tokenizer_dirs(config_dir)
               if not model_check.has_tokenizer_files(config_dir / n)]
    if not missing:
        return config_dir
    stamp = json.dumps(sorted((str(p.relative_to(config_dir)), p.stat().st_mtime_ns)
                              for p in config_dir.rglob("*") if p.is_file()))
    digest = hashlib.sha256((str(config_dir.resolve()) + stamp).encode()).hexdigest()[:16]
    target = cache_root() / "model-configs" / f"{config_dir.name}-{digest}"
    if target.is_dir():
        return target

    def fill(folder: Path) -> None:
        shutil.copytree(config_dir, folder, dirs_exist_ok=True)
        for name in missing:
            for vocab in ("vocab.json", "merges.txt"):
                shutil.copyfile(asset_path("clip-tokenizer", vocab), folder / name / vocab)

    try:
        with atomic_dir(target) as tmp:
            fill(tmp)
    except OSError:
        # A read-only or full cache: a private temporary copy serves this process.
        import atexit
        import tempfile

        target = Path(tempfile.mkdtemp(prefix="ti-tui-config-"))
        atexit.register(shutil.rmtree, target, True)
        fill(target)
    return target
