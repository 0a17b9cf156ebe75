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
  under a deep root stay within the 255-byte name limit.
"""

from __future__ import annotations

import re

from trainer.errors import ConfigError

MAX_NAME = 100
"""Longest trigger name (without <>): 255-byte file names minus the longest suffix added."""

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
    if len(name) > MAX_NAME:
        raise refuse(f"is {len(name)} characters long; file names allow at most {MAX_NAME}")
