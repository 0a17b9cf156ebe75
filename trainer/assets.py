"""Find the data files the program ships (the CLIP tokenizer, templates), and its cache.

In a source checkout they live in `<repo>/assets`. A wheel cannot ship a top-level folder
beside the packages, so the wheel build force-includes the same folder as `trainer/_assets`.
"""

from __future__ import annotations

import os
from pathlib import Path

_CANDIDATES = (
    Path(__file__).resolve().parents[1] / "assets",  # source checkout / editable install
    Path(__file__).resolve().parent / "_assets",  # installed wheel
)


def assets_dir() -> Path:
    """The folder holding the shipped assets; FileNotFoundError if the install lacks it."""
    for candidate in _CANDIDATES:
        if candidate.is_dir():
            return candidate
    looked = " or ".join(str(c) for c in _CANDIDATES)
    raise FileNotFoundError(
        f"The ti-tui assets folder is missing (looked in {looked}); reinstall ti-tui."
    )


def asset_path(*parts: str) -> Path:
    """Path of a shipped asset, e.g. `asset_path("clip-tokenizer")`; it may not exist."""
    return assets_dir().joinpath(*parts)


def cache_root(cache_dir: Path | None = None) -> Path:
    """Where ti-tui caches what it builds (the demo model and images, config folders): `cache_dir`, else $TI_TUI_CACHE_DIR, else the user cache."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("TI_TUI_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("ti-tui"))
