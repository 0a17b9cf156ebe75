"""`ti-tui models`: the models ti-tui can find, as a plain table.

Looks in the InvokeAI root (a 4.x-6.x database, a 3.x models folder, a 2.3 models.yaml) and in
checkpoint folders (A1111/Forge models/Stable-diffusion, ComfyUI models/checkpoints, and every
--models_dir, which is remembered in preferences.toml under the root); trainer/discovery.py
does the finding. Unsupported families (SD3, Flux, a refiner, inpainting) are listed with why,
never hidden. The home screen's models page shows the same output.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from trainer.errors import ConfigError


def cmd_models(argv: list[str]) -> int:
    """`ti-tui models`: every model found, with family, format, size and where it was found.
    ConfigError (field models_dir) for a --models_dir that is not a folder."""
    parser = argparse.ArgumentParser(
        prog="ti-tui models",
        description="List the models ti-tui can find: an InvokeAI root (4.x-6.x database, "
                    "3.x models folder, 2.3 models.yaml) and checkpoint folders "
                    "(A1111/Forge models/Stable-diffusion, ComfyUI models/checkpoints).")
    parser.add_argument("--root", "--root_dir", dest="root", default=None,
                        help="The InvokeAI root (default $INVOKEAI_ROOT, else ~/invokeai); one "
                             "that does not exist is refused (exit 2).")
    parser.add_argument("--models_dir", action="append", default=[], metavar="DIR",
                        help="A folder of .safetensors/.ckpt checkpoints; repeatable. Given "
                             "folders are remembered (preferences.toml under the root) and "
                             "listed, and named by --model, from then on.")
    args = parser.parse_args(argv)
    from ti_tui.preferences import remember_models_dirs, saved_models_dirs
    from trainer.config import default_root
    from trainer.discovery import SOURCES, checkpoint_folders, size_text
    from trainer.models import find_models
    from trainer.paths import check_path

    root = Path(args.root or default_root()).expanduser()
    check_path("root", root)
    if not root.is_dir() and (args.root or os.environ.get("INVOKEAI_ROOT") or
                              not args.models_dir):
        # A mistyped root would list nothing and exit 0; without --root and $INVOKEAI_ROOT
        # the default ~/invokeai may be absent when --models_dir names the checkpoints.
        named = ("--root" if args.root else "$INVOKEAI_ROOT" if os.environ.get("INVOKEAI_ROOT")
                 else "the default root; set --root or $INVOKEAI_ROOT")
        what = "is not a folder" if root.exists() else "does not exist"
        raise ConfigError(f"The root {root} ({named}) {what}; pass --root your InvokeAI root, "
                          "or --models_dir a folder of .safetensors/.ckpt checkpoints.",
                          field="root")
    for folder in args.models_dir:
        check_path("models_dir", folder)
        if not Path(folder).expanduser().is_dir():
            raise ConfigError(f"Checkpoint folder (--models_dir) {folder} is not a folder; "
                              "pass the folder holding your .safetensors/.ckpt files.",
                              field="models_dir")
    folders = saved_models_dirs(root)
    if args.models_dir:
        try:
            folders = remember_models_dirs(root, args.models_dir)
        except OSError as exc:  # a full or read-only root: list them all the same
            print(f"ti-tui: could not remember {', '.join(args.models_dir)} under {root} "
                  f"({exc.strerror or exc}); listing them this time only.", file=sys.stderr)
            folders = list(dict.fromkeys(folders + list(args.models_dir)))
    found = find_models(root, folders, describe_all=True)
    if not found:
        looked = [str(root)] + [str(f) for f in checkpoint_folders(root, folders)]
        print(f"No models found (looked in {', '.join(looked)}); pass --models_dir the folder "
              "holding your checkpoints, or --root your InvokeAI root.")
        return 0
    rows = [(e.name, e.family or "-", e.format, size_text(e.size),
             SOURCES.get(e.source, e.source), str(e.path), e.problem) for e in found]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print(f"{'NAME':<{widths[0]}}  {'FAMILY':<{max(6, widths[1])}}  "
          f"{'FORMAT':<{widths[2]}}  {'SIZE':>{widths[3]}}  FOUND IN")
    for name, family, fmt, size, source, path, problem in rows:
        print(f"{name:<{widths[0]}}  {family:<{max(6, widths[1])}}  {fmt:<{widths[2]}}  "
              f"{size:>{widths[3]}}  {source}: {path}")
        if problem:
            print(f"{'':<{widths[0]}}  unsupported: {problem}")
    return 0
