"""Where a finished embedding goes: the copy into an InvokeAI root, and which file each tool takes.

InvokeAI 2.3 loaded every file under ROOT/embeddings/ at start-up, and invokeai-ti (2.3 and
3.x) copied its `learned_embeds.bin` to ROOT/embeddings/<trigger>/; ti-tui keeps that copy for
those roots. InvokeAI 4.0 and later install embeddings only through the model manager, which
records them in ROOT/databases/invokeai.db (or invokeai.yaml's db_dir), so for such a root
the run's end says how to add the file there instead of copying it anywhere (ti-tui never
writes another program's database).
The run summary (ti_tui/screens/summary.py) and the headless end lines (ti_tui/headless.py)
both read `tool_lines` so they say the same thing.
"""

from __future__ import annotations

from pathlib import Path

from trainer.formats import FORMATS, standalone_stem
from trainer.invokeai_db import database_path


def is_invokeai4_root(root: str | Path) -> bool:
    """True when `root` is an InvokeAI 4.x-6.x root: it has the model database
    (trainer/invokeai_db.py finds it, honouring invokeai.yaml's db_dir)."""
    return database_path(Path(root).expanduser()).is_file()


def is_invokeai_legacy_root(root: str | Path | None) -> bool:
    """True when `root` really is an InvokeAI 2.3 or 3.x install, the only kind that gets a
    copy in ROOT/embeddings: 2.3 has configs/models.yaml or invokeai.init, 3.x has
    invokeai.yaml next to models/ (and no 4+ database, `is_invokeai4_root`). An empty or
    missing folder is not a root, so nothing is created there (the default ~/invokeai may
    simply not exist on an A1111 or ComfyUI machine)."""
    if root is None:
        return False
    path = Path(root).expanduser()
    if not path.is_dir() or is_invokeai4_root(path):
        return False
    if (path / "configs" / "models.yaml").is_file() or (path / "invokeai.init").is_file():
        return True
    return (path / "invokeai.yaml").is_file() and (path / "models").is_dir()


def root_copy_source(output_dir: str | Path, trigger: str, num_vectors: int) -> Path | None:
    """The final file an InvokeAI 2.3/3.x root gets: `learned_embeds.bin` when it holds one
    vector (the file invokeai-ti copied), else `<name>.safetensors`, because InvokeAI 2.3 reads
    a diffusers .bin's width from shape[0] and so refuses one with several vectors
    (v2.3.5 ldm/modules/textual_inversion_manager.py `_parse_embedding_v4`), while it reads
    `emb_params` files for any count (`_parse_embedding_v3`). None when neither exists."""
    folder = Path(output_dir)
    names = [FORMATS["standalone"].file_name(trigger)]
    if num_vectors == 1:
        names.insert(0, FORMATS["diffusers_bin"].file_name(trigger))
    return next((folder / n for n in names if (folder / n).is_file()), None)


def root_copy_target(root: str | Path, trigger: str, source: Path) -> Path:
    """ROOT/embeddings/<name>/<source file name>: where invokeai-ti put its copy."""
    return Path(root).expanduser() / "embeddings" / standalone_stem(trigger) / source.name


def earlier_root_copies(root: str | Path, trigger: str) -> list[Path]:
    """The copies an earlier run of `trigger` left in ROOT/embeddings/<name>/ (either name
    root_copy_source picks); InvokeAI 2.3 loads every file there, so a new run's copy must
    replace them, not sit beside them as a second embedding of the same trigger."""
    folder = Path(root).expanduser() / "embeddings" / standalone_stem(trigger)
    names = (FORMATS["diffusers_bin"].file_name(trigger), FORMATS["standalone"].file_name(trigger))
    return [folder / n for n in names if (folder / n).is_file()]


def invokeai4_steps(path: str | Path, trigger: str) -> str:
    """One sentence: how to add `path` in InvokeAI 4+'s model manager (its web UI labels,
    invokeai/frontend/web/public/locales/en.json at 8e71a8a519)."""
    return (f"To use it in InvokeAI 4+, open the Model Manager, press Add Models, choose "
            f"URL or Local Path, paste {path} and press Install; then type "
            f"<{standalone_stem(trigger)}> in a prompt.")


def tool_lines(output_dir: str | Path, trigger: str, root: str | Path | None = None,
               num_vectors: int = 1) -> list[str]:
    """"Which file for which tool" for a finished run, from the files present in output_dir.

    `root` is the InvokeAI root the run used: a 4+ root gets the Model Manager steps (and no
    2.3/3.x line), an older one is named where its ROOT/embeddings copy is."""
    folder = Path(output_dir)
    modern = root is not None and is_invokeai4_root(root)
    present = {name: folder / f.file_name(trigger) for name, f in FORMATS.items()
               if (folder / f.file_name(trigger)).is_file()}
    stem = standalone_stem(trigger)
    single = present.get("standalone")
    # Every SD 1.x/2.x run writes the .bin; an SDXL run never does.
    sdxl = single is not None and "diffusers_bin" not in present
    lines: list[str] = []
    if single is not None:
        lines += [f"A1111/Forge: {single} (put it in the webui's embeddings/ folder; prompt "
                  f"word {stem})",
                  f"ComfyUI: {single} (models/embeddings/; prompt embedding:{stem})",
                  f"kohya sd-scripts: {single} (--weights)"]
        if not modern:
            lines.append(f"InvokeAI 4+: {single} (Model Manager > Add Models > URL or Local "
                         "Path)")
    if "a1111" in present:
        lines.append(f"A1111/Forge, its own .pt: {present['a1111']}")
    if "diffusers" in present and "diffusers_2" in present:
        lines.append(f"diffusers: {present['diffusers']} into text_encoder and "
                     f"{present['diffusers_2']} into text_encoder_2 (load_textual_inversion)")
    elif "diffusers" in present:
        lines.append(f"diffusers: {present['diffusers']} (pipe.load_textual_inversion)")
    elif single is not None:
        lines.append(f"diffusers: {single}, clip_l into text_encoder and clip_g into "
                     "text_encoder_2 (load_textual_inversion with token=)")
    source = root_copy_source(folder, trigger, num_vectors)
    if source is not None and not modern:
        older = "InvokeAI 3.x" if sdxl else "InvokeAI 2.3/3.x"  # 2.3 has no SDXL
        target = (root_copy_target(root, trigger, source) if is_invokeai_legacy_root(root)
                  else None)
        lines.append(f"{older}: copied to {target}" if target is not None and target.is_file()
                     else f"{older}: {source}")
    if modern and single is not None:
        lines.append(invokeai4_steps(single, trigger))
    return lines
