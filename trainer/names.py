"""Text a user types that becomes a file or folder name: the trigger.

The trigger names the run's files and folders: ROOT/text-inversion-output/<name> (the default
--output_dir), ROOT/embeddings/<name>/ (the copy for InvokeAI 2.3/3.x), <name>.safetensors and
<name>.pt (the standalone and A1111 files, trainer/formats.py). So besides being one new
token, it must be a name that stays inside the folder it is meant for and means the same file
on every system the embedding travels to:

- only ASCII letters, digits, dot, underscore and hyphen (no `/`, `\\`, NUL, spaces or
  look-alike Unicode, which normalisation could fold onto another name);
- not `.` or `..`, nor starting or ending with a dot: `..` would make the default output
  folder ROOT itself, a leading dot hides the files, and Windows drops a trailing dot, so
  `cat.` and `cat` would be one folder there;
- not a name Windows reserves for a device (CON, PRN, AUX, NUL, COM1-9, LPT1-9, with any
  extension; Microsoft, "Naming Files, Paths, and Namespaces"), where `con.pt` cannot be
  created at all;
- at most `MAX_NAME` characters, so that `<name>-steps-10000000.safetensors` and the folder
  under a deep root stay within the 255-byte name limit;
- not the name of a file ti-tui keeps beside the runs in ROOT/text-inversion-output
  (`OUTPUT_FOLDER_FILES`, any letter case for case-insensitive disks): `<preferences.toml>`'s
  default output folder would take the form's preferences file's place.
"""

from __future__ import annotations

import functools
import json
import re

from trainer.errors import ConfigError

MAX_NAME = 100
"""Longest trigger name (without <>): 255-byte file names minus the longest suffix added."""

OUTPUT_FOLDER_FILES = ("preferences.toml",)
"""Files ti-tui keeps in ROOT/text-inversion-output beside the run folders (the form's saved
values, ti_tui/preferences.py); no trigger may name its default output folder like them."""

_ALLOWED = re.compile(r"<?([A-Za-z0-9._-]+)>?")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
             *(f"lpt{i}" for i in range(1, 10))}


def suggestion(text: str) -> str:
    """A trigger close to `text` that passes every rule, e.g. 'my cat' -> '<my-cat>'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-<>.")[:MAX_NAME].strip("-.")
    if not name:
        name = "my-concept"
    first, dot, rest = name.partition(".")
    if first.lower() in _RESERVED:
        name = f"{first}-ti{dot}{rest}"
    if name.lower() in OUTPUT_FOLDER_FILES:
        name = name.replace(".", "-")
    return f"<{name}>"


def check_trigger_text(text: str) -> None:
    """Raise ConfigError (field placeholder_token) unless `text` is a safe trigger name."""
    if not text:
        return
    match = _ALLOWED.fullmatch(text)

    def refuse(why: str) -> ConfigError:
        return ConfigError(f"Trigger term {text!r} {why}; try {suggestion(text)}.",
                           field="placeholder_token")

    if match is None:
        raise refuse("may hold only letters, digits, dot, underscore and hyphen (optionally "
                     "inside <...>)")
    name = match.group(1)
    if name.startswith(".") or name.endswith("."):
        raise refuse("may not start or end with a dot: it names the run's folder and files, "
                     "and '..' would be the folder above")
    if name.split(".")[0].lower() in _RESERVED:
        raise refuse("is a device name Windows reserves, so its files could not be copied "
                     "there")
    if name.lower() in OUTPUT_FOLDER_FILES:
        raise refuse("is the name of the file ti-tui keeps the form's values in, beside the "
                     "run folders, so its default output folder would take that file's place")
    if len(name) > MAX_NAME:
        raise refuse(f"is {len(name)} characters long; file names allow at most {MAX_NAME}")


@functools.lru_cache(maxsize=1)
def _clip_words() -> frozenset[str]:
    """The whole words of the shipped CLIP vocabulary (assets/clip-tokenizer/vocab.json, the
    one SD 1.x, SD 2.x's OpenCLIP and both SDXL encoders share), lower case, without `</w>`."""
    from trainer.assets import asset_path

    try:
        vocab = json.loads(asset_path("clip-tokenizer", "vocab.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return frozenset()  # no shipped vocabulary: no name is moved off a word
    return frozenset(token[:-4] for token in vocab if token.endswith("</w>"))


def is_vocabulary_word(name: str) -> bool:
    """True when `name` (without <>) is one whole word of CLIP's vocabulary, e.g. "cat".

    A1111/Forge and ComfyUI take an embedding's file name as its prompt word and match it
    wherever its tokens appear (A1111 modules/textual_inversion/textual_inversion.py
    `EmbeddingDatabase.find_embedding_at_position`), so a file called cat.safetensors would
    take over every "cat" in every prompt."""
    return name.lower() in _clip_words()


def rename_notice(token: str, trigger: str, a1111_stem: str) -> str | None:
    """The warning line for a trigger that is not what the user typed ("cat" trains as
    `<cat>`), or whose file name is not the trigger's bare name (`<gs>` is saved as gs-ti:
    A1111/Forge and ComfyUI would take "gs" for the embedding everywhere); None when both are
    as typed. `a1111_stem` is formats.standalone_stem(trigger), the A1111/ComfyUI file name
    and prompt word."""
    typed = token.strip()
    bare = trigger.strip("<>")
    if typed == trigger and a1111_stem == bare:
        return None
    if typed == trigger:
        return (f"{trigger}'s files are named {a1111_stem} ({a1111_stem}.safetensors), not "
                f"{bare}, because {bare!r} is a word the model already knows and A1111/Forge "
                f"and ComfyUI would take every {bare!r} in a prompt for the embedding; the "
                f"prompt word there is {a1111_stem} (<{a1111_stem}> in InvokeAI 4+, {trigger} "
                "with diffusers).")
    why = (f"{typed!r} is a word the model already knows, so" if is_vocabulary_word(typed)
           else "a trigger is written in angle brackets, so")
    return (f"--placeholder_token {why} it trains as {trigger}; its files are named "
            f"{a1111_stem} ({a1111_stem}.safetensors), the prompt word in A1111/Forge and "
            f"ComfyUI (<{a1111_stem}> in InvokeAI 4+, {trigger} with diffusers).")
