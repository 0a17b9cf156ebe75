"""Paths the user typed: what the operating system says about them, in one sentence.

Every path a user gives (`--train_data_dir`, `--output_dir`, `--model`, `--model_config`,
`--models_dir`, `--tokenizer_name`, `--initial_embedding`, `--resume_from_checkpoint`,
`--root`, `--config`, `ti-tui watch DIR`, ...) can be refused by the OS before ti-tui gets to
ask whether it holds the right things: a name over the file system's limit (ENAMETOOLONG), a
symbolic-link loop (ELOOP), a folder on the way that is not searchable (EACCES) or is a file
(ENOTDIR), or a pseudo file system such as /proc that accepts no new files (ENOENT/EPERM on
mkdir). pathlib's `exists()` and `is_dir()` raise on several of these, so without this module
they surfaced as tracebacks. `check_path` is run on each of them by preflight, first;
`check_creatable` proves an output folder can really be made.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from trainer.errors import ConfigError

_WHY = {
    errno.ENAMETOOLONG: "a name in it is longer than the file system allows (255 bytes per "
                        "name, 4096 for the whole path); use a shorter path",
    errno.ELOOP: "it goes through a loop of symbolic links; fix or remove the link",
    errno.EACCES: "a folder on the way cannot be entered (permission denied); fix its "
                  "permissions or use a path you own",
    errno.EPERM: "the operating system does not permit it; use a path you own",
    errno.ENOTDIR: "a part of it that should be a folder is a file; fix the path",
    errno.EINVAL: "the operating system calls it invalid; use an ordinary path",
    errno.EROFS: "it is on a read-only file system; use a folder on a writable disk",
    errno.ENOSPC: "the disk is full; free some space or use another disk",
    errno.EDQUOT: "your disk quota is exhausted; free some space or use another disk",
    errno.ENOENT: "a folder on the way does not exist and cannot be created there",
}


def why(exc: OSError) -> str:
    """A clause saying what the OS refused and what to do, for any OSError."""
    reason = _WHY.get(exc.errno)
    if reason is None:
        reason = f"the operating system refused it ({exc.strerror or exc}); use another path"
    return reason


def _label(field: str) -> str:
    """"Output directory (--output_dir)" for a TrainConfig field; other names as given."""
    from trainer.config import field_info

    try:
        label = field_info(field).metadata.get("label", field)
    except KeyError:
        # Not a TrainConfig field: --config, or a command's argument ("ti-tui watch DIR").
        return _OTHER_LABELS.get(field, field)
    return f"{label} (--{field})"


_OTHER_LABELS = {"config": "Config file (--config)"}


def refusal(field: str, path: str | os.PathLike[str], exc: OSError,
            label: str | None = None) -> ConfigError:
    """The one sentence for a user path the OS refused; `label` names where the path came
    from when it is not the field's flag (default_output_label)."""
    label = label or _label(field)
    shown = str(path)
    if len(shown) > 120:
        shown = f"{shown[:60]}...{shown[-40:]} ({len(shown)} characters)"
    if exc.errno == errno.ENOTDIR:
        blocker = _file_on_the_way(Path(path).expanduser())
        if blocker is not None:
            verb = "created" if field == "output_dir" else "used"
            return ConfigError(f"{label} {shown} cannot be {verb} because {blocker} is "
                               "a file; fix the path so that it names a folder.", field=field)
    return ConfigError(f"{label} {shown} cannot be used: {why(exc)}.", field=field)


def _file_on_the_way(path: Path) -> Path | None:
    """The first part of `path` that exists and is not a folder (what ENOTDIR is about)."""
    for part in reversed(path.parents):
        if os.path.exists(part) and not os.path.isdir(part):
            return part
    return None


def near_miss(path: str | os.PathLike[str], names: list[str] | None = None) -> str:
    """" (did you mean X?)" for a path (or a model name) that is one slip away from one that
    exists, else "". A tired user types `models/sd-15` for `models/sd15`, or drops a letter.

    `names`: the candidates; by default the entries of the path's nearest existing parent
    (one level of typo in the last missing part: the common case, and cheap). The match is
    difflib's ratio >= 0.75 (Python's standard library), case-insensitive; the suggestion is
    returned in full (a path under the same parent, or the candidate name as given), ready to
    follow the path in a message, so the message stays one sentence.
    """
    text = str(path)
    if names is None:
        target = Path(text).expanduser()
        parent = target.parent
        try:
            entries = [entry.name for entry in os.scandir(parent)]
        except OSError:
            return ""
        found = _closest(target.name, entries)
        return f" (did you mean {parent / found}?)" if found else ""
    found = _closest(text, names)
    return f" (did you mean {found}?)" if found else ""


def _closest(word: str, candidates: list[str]) -> str | None:
    import difflib

    by_lower = {c.lower(): c for c in candidates if c and not c.startswith(".")}
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.75)
    return by_lower[match[0]] if match else None


def check_path(field: str, value: str | os.PathLike[str] | None,
               label: str | None = None) -> None:
    """Raise ConfigError naming `field` (or `label`, see refusal) if the OS refuses to even
    look at `value`.

    A path that simply does not exist passes: the checks that need it say so in their own
    words ("does not exist; create it ..."). `~` is expanded as everywhere else.
    """
    if value is None or str(value) == "":
        return
    text = str(value)
    if "\0" in text:
        raise ConfigError(f"{label or _label(field)} holds a NUL character; type the path "
                          "again.", field=field)
    path = Path(text).expanduser()
    try:
        os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise refusal(field, path, exc, label) from None


def default_output_label(trigger: str) -> str:
    """How a message names an output folder the user did not type: the default one made from
    the trigger under --root (TrainConfig.output_path), so the advice names the settings that
    decided it, not an --output_dir nobody passed."""
    return (f"The default output folder for {trigger} (under --root; pass --output_dir to "
            "choose another)")


def check_creatable(field: str, path: Path, label: str | None = None) -> None:
    """Raise ConfigError unless `path` is a folder, or a folder can be made there. `label`:
    as for refusal.

    Creates and removes a hidden probe folder in the nearest existing ancestor, because
    os.access says yes for /proc and for read-only bind mounts seen as root, where mkdir then
    fails. Nothing is left behind.
    """
    check_path(field, path, label)
    label = label or _label(field)
    probe = path
    while True:
        try:
            if probe.exists() or probe == probe.parent:
                break
        except OSError as exc:
            raise refusal(field, path, exc, label) from None
        probe = probe.parent
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{label} {path} is a file; pass a folder path.", field=field)
    if not probe.is_dir():
        raise ConfigError(f"{label} {path} cannot be created because {probe} is a "
                          "file; pass a folder path.", field=field)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{label} {path} is not writable ({probe} refuses new "
                          "files); pick a folder you own.", field=field)
    try:
        # os.access says yes for /proc and for read-only bind mounts seen as root: make sure.
        made = tempfile.mkdtemp(prefix=".ti-tui-probe-", dir=probe)
    except OSError as exc:
        raise ConfigError(f"{label} {path} cannot be created: {probe} refuses new "
                          f"folders ({exc.strerror or exc}); pick a folder on an ordinary "
                          "disk that you own.", field=field) from None
    os.rmdir(made)
    if probe != path:
        # The whole missing part must fit too: each name under NAME_MAX, all under PATH_MAX.
        try:
            limit = os.pathconf(probe, "PC_NAME_MAX")
        except (OSError, ValueError):
            limit = 255
        rest = path.relative_to(probe).parts
        if any(len(os.fsencode(part)) > limit for part in rest):
            raise refusal(field, path, OSError(errno.ENAMETOOLONG, "File name too long"),
                          label)


def special_kind(path: str | os.PathLike[str]) -> str | None:
    """"a device", "a pipe" or "a socket" when `path` (links followed) is one of those, else
    None (a regular file, a folder, or nothing there).

    A user's path to /dev/zero or a FIFO looks like a file to `open()`, but reading it never
    ends (or blocks until someone writes): files ti-tui reads whole (--config, an initial
    embedding, an image) are refused as such instead of read."""
    import stat

    try:
        mode = os.stat(Path(path).expanduser()).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return None


def is_user_path_error(exc: OSError) -> bool:
    """Whether `exc` is the OS refusing a path (not a bug): it names a file and its errno is
    one of those `why` explains."""
    return bool(exc.filename) and exc.errno in _WHY


def absolute(config):
    """`config` with every relative path made absolute against the current folder.

    The trainer runs in its own process whose working folder is the output folder, and a
    run.toml is rerun from anywhere: a relative `--train_data_dir imgs` that preflight found
    here would not exist there. A --model or --resume_from_checkpoint value is made absolute
    only when it names something here: otherwise it is a model name (looked up under the
    root) or a checkpoint name (looked up in the output folder). --output_dir stays as typed:
    a relative one lives under the root, which is made absolute.
    """
    def fixed(value: str | None) -> str | None:
        if not value:
            return value
        path = os.path.expanduser(value)
        return value if os.path.isabs(path) else os.path.abspath(path)

    def if_here(value: str | None) -> str | None:
        if not value or value == "latest":
            return value
        path = os.path.expanduser(value)
        return os.path.abspath(path) if not os.path.isabs(path) and os.path.exists(path) \
            else value

    changes = {name: fixed(getattr(config, name))
               for name in ("root", "train_data_dir", "model_config", "tokenizer_name",
                            "initial_embedding")}
    if config.models_dir:
        changes["models_dir"] = os.pathsep.join(
            fixed(p) or "" for p in config.models_dir.split(os.pathsep) if p)
    changes["model"] = if_here(config.model)
    changes["resume_from_checkpoint"] = if_here(config.resume_from_checkpoint)
    changed = {k: v for k, v in changes.items() if v != getattr(config, k)}
    return config.replace(**changed) if changed else config
