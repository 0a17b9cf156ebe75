"""Embedding files: a registry of formats keyed by name, each written for the tools that read it.

Every run writes, for any number of vectors, a file that each common tool installs unchanged
(the loading rules are restated, with their sources, in tests/tool_rules.py):

- `standalone`, `<name>.safetensors` (SD1, SD2, SDXL): InvokeAI 4+, A1111/Forge, ComfyUI,
  kohya; InvokeAI 2.3/3.x; diffusers with `token=`.
- `diffusers`, `learned_embeds.safetensors` (SD1, SD2; the SDXL clip_l half on request):
  diffusers' `load_textual_inversion` default.
- `diffusers_bin`, `learned_embeds.bin` (SD1, SD2): diffusers; InvokeAI 2.3 (one vector), 3.x.
- `diffusers_2`, `learned_embeds_2.safetensors` (SDXL, on request): the clip_g half, as
  diffusers' SDXL script writes it.
- `a1111`, `<name>.pt` (SD1, SD2, on request): AUTOMATIC1111's own `.pt` layout.

"On request" means `--save_as a1111` or `--save_as diffusers_sdxl` (TrainConfig.save_as).
`<name>` is the trigger without `<>`: A1111, Forge, ComfyUI and InvokeAI 4+ name an embedding
after its file, so that file name is what users type. Inside `standalone`, SD 1.x/2.x rows are
stored under `emb_params` (kohya's key; InvokeAI 4+ reads the width from `emb_params.shape[-1]`
for any number of vectors, while it reads a one-key diffusers file's `shape[0]`, the vector
count), and SDXL rows as `clip_l` [n, 768] + `clip_g` [n, 1280].

Writers take the trigger, the per-encoder parts (`Conditioner.split`: {"text_encoder": [n, d]}
for SD 1.x/2.x, {"clip_l": [n, 768], "clip_g": [n, 1280]} for SDXL) and the family, and return
the file's bytes; `save_embedding` writes them through the atomic writer. `load_embedding`
reads any of these layouts, and other tools', back (for --initial_embedding).
"""

from __future__ import annotations

import io
import os
import re
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainer import fsutil
from trainer.paths import near_miss, special_kind
from trainer.errors import ResumeError
from trainer.names import is_vocabulary_word

if TYPE_CHECKING:
    import torch

# torch and safetensors are imported inside the functions that use them: the file-name rules
# here are read by the UI's end-of-run lines (trainer/install_guide.py), which must not pay
# torch's import time.

FAMILIES = ("sd1", "sd2", "sdxl")
SINGLE_ENCODER = frozenset({"sd1", "sd2"})
SDXL_PARTS = ("clip_l", "clip_g")
SNAPSHOT_SUFFIX = "-steps-{step}"
"""Appended to every file name of a periodic snapshot (diffusers' and invokeai-ti's naming)."""

# AUTOMATIC1111 modules/safe.py (commit 2d2edc110fb46fcf519804f57024f9c300188f9b) accepts only
# these zip members; torch >= 2.1 also writes .format_version, .storage_alignment, byteorder
# and .data/serialization_id, which that check calls "may be malicious".
_LEGACY_MEMBER = re.compile(r"^[^/]+/(data\.pkl|version|data/\d+)$")
_ALIGNMENT = 64
"""Storages start on 64-byte boundaries, as torch's own writer places them (mmap loading)."""


def torch_bytes(obj) -> bytes:
    """`torch.save(obj)` into memory, as a zip that every torch-file reader accepts.

    The archive keeps torch's own pickle (protocol 2: plain dicts, tensors rebuilt by
    `torch._utils._rebuild_tensor_v2` from `torch.FloatStorage`) and its storages, but only
    the members `<dir>/data.pkl`, `<dir>/data/<n>` and `<dir>/version` that A1111's
    safe-unpickle allows (tests/tool_rules.py). torch.load, with or without weights_only,
    reads it: the dropped members are optional (a missing `byteorder` means little-endian,
    which every platform these tools run on is). torch's own legacy layout
    (`_use_new_zipfile_serialization=False`) would pass A1111's check too, but it cannot be
    memory-mapped by torch.load and some webui forks' checks open every .pt as a zip, so the
    zip is kept and only its extra members are dropped.
    """
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for info in source.infolist():
            if not _LEGACY_MEMBER.match(info.filename):
                continue
            member = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            member.compress_type = zipfile.ZIP_STORED
            member.extra = _padding(out.tell(), len(info.filename.encode()))
            archive.writestr(member, source.read(info))
    return out.getvalue()


def _padding(header_offset: int, name_length: int) -> bytes:
    """A zip extra field that makes the member's data start on an _ALIGNMENT boundary."""
    start = header_offset + 30 + name_length + 4  # local header + name + extra field header
    pad = -start % _ALIGNMENT
    return struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # "FB", the id torch's writer uses


def standalone_stem(trigger: str) -> str:
    """The file stem tools show as the embedding's name: the trigger without <> (as
    TrainConfig.trigger_name), moved off the diffusers names it would otherwise overwrite
    and off everyday words: A1111/Forge and ComfyUI use the file name as the prompt word, so
    `<cat>` is saved as cat-ti.safetensors, never cat.safetensors (names.is_vocabulary_word).
    This is the one place that name is made; the end lines and the summary read it."""
    name = trigger.strip("<>")
    if name in ("learned_embeds", "learned_embeds_2") or is_vocabulary_word(name):
        return f"{name}-ti"
    return name


# --- writers: (trigger, parts, family, step, model_name) -> bytes --------------------------

def _one_encoder(parts: dict[str, torch.Tensor], family: str) -> torch.Tensor:
    if family not in SINGLE_ENCODER or set(parts) != {"text_encoder"}:
        raise ValueError(f"a {family} embedding has parts {sorted(parts)}, not text_encoder")
    return parts["text_encoder"]


def _safetensors(tensors: dict[str, torch.Tensor], **metadata: str) -> bytes:
    from safetensors.torch import save

    return save(tensors, metadata={"format": "pt", **metadata})


def _write_diffusers(trigger, parts, family, step, model_name) -> bytes:
    rows = parts["clip_l"] if family == "sdxl" else _one_encoder(parts, family)
    return _safetensors({trigger: rows.clone()})


def _write_diffusers_2(trigger, parts, family, step, model_name) -> bytes:
    return _safetensors({trigger: parts["clip_g"].clone()})


def _write_diffusers_bin(trigger, parts, family, step, model_name) -> bytes:
    rows = _one_encoder(parts, family)
    # One vector is stored 1-D, as invokeai-ti writes it: InvokeAI 2.3 reads a one-key .bin's
    # width as shape[0] (ldm/modules/textual_inversion_manager.py _parse_embedding_v4).
    return torch_bytes({trigger: rows[0].clone() if rows.shape[0] == 1 else rows.clone()})


def _write_standalone(trigger, parts, family, step, model_name) -> bytes:
    if family == "sdxl":
        if set(parts) != set(SDXL_PARTS):
            raise ValueError(f"an SDXL embedding needs parts {SDXL_PARTS}, got {sorted(parts)}")
        tensors = {key: parts[key].clone() for key in SDXL_PARTS}
    else:
        tensors = {"emb_params": _one_encoder(parts, family).clone()}
    return _safetensors(tensors, trigger=trigger, step=str(step))


def _write_a1111(trigger, parts, family, step, model_name) -> bytes:
    name = standalone_stem(trigger)
    payload = {"string_to_token": {"*": 265}, "string_to_param": {"*": _one_encoder(
        parts, family).clone()}, "name": name, "step": step, "sd_checkpoint": None,
        "sd_checkpoint_name": model_name}
    return torch_bytes(payload)


@dataclass(frozen=True)
class EmbeddingFormat:
    """One embedding file layout: its registry name, file name rule, families and writer."""

    name: str
    """The registry key, e.g. "standalone", "diffusers", "a1111"."""
    pattern: str
    """File name with `{name}` (standalone_stem of the trigger) and `{suffix}` (snapshots)."""
    families: frozenset[str]
    """Families it can hold."""
    default_for: frozenset[str]
    """Families for which every run writes it; the others need `--save_as <requested_by>`."""
    requested_by: str | None
    """The --save_as value that adds it where it is not a default; None if none does."""
    write: Callable[..., bytes]
    """(trigger, parts, family, step, model_name) -> the file's bytes."""

    def file_name(self, trigger: str, suffix: str = "") -> str:
        """This format's file name for `trigger`, e.g. "my-cat.safetensors"; `suffix` marks
        a snapshot (e.g. "-500")."""
        return self.pattern.format(name=standalone_stem(trigger), suffix=suffix)


_ALL = frozenset(FAMILIES)
FORMATS: dict[str, EmbeddingFormat] = {f.name: f for f in (
    EmbeddingFormat("standalone", "{name}{suffix}.safetensors", _ALL, _ALL, None,
                    _write_standalone),
    EmbeddingFormat("diffusers", "learned_embeds{suffix}.safetensors", _ALL, SINGLE_ENCODER,
                    "diffusers_sdxl", _write_diffusers),
    EmbeddingFormat("diffusers_bin", "learned_embeds{suffix}.bin", SINGLE_ENCODER,
                    SINGLE_ENCODER, None, _write_diffusers_bin),
    EmbeddingFormat("diffusers_2", "learned_embeds_2{suffix}.safetensors", frozenset({"sdxl"}),
                    frozenset(), "diffusers_sdxl", _write_diffusers_2),
    EmbeddingFormat("a1111", "{name}{suffix}.pt", SINGLE_ENCODER, frozenset(), "a1111",
                    _write_a1111),
)}
"""Every format, keyed by name; who reads which is the module docstring's list and
trainer/install_guide.py's lines."""


def formats_for(family: str, save_as: str = "diffusers") -> list[EmbeddingFormat]:
    """The formats a run on `family` writes with `--save_as save_as`, in registry order.
    ValueError for a family not in FAMILIES."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}")
    return [f for f in FORMATS.values() if family in f.default_for
            or (family in f.families and save_as == f.requested_by)]


def earlier_embeddings(output_dir: Path, trigger: str) -> list[Path]:
    """The final files of an earlier run for `trigger` in `output_dir`, which a fresh run
    would write over: every layout FORMATS can write (whatever the family or --save_as; the
    file every tool reads first). Empty when there are none.

    Snapshots (embeddings/<name>-steps-N.*) alone do not count: a run that failed before its
    first checkpoint (a full disk) leaves only those, and the documented remedy is to start it
    again in the same folder. trainer/resume_checks.py refuses a fresh run into a folder
    holding final files; the demo picks another folder."""
    names = dict.fromkeys(f.file_name(trigger) for f in FORMATS.values())
    return [output_dir / name for name in names if (output_dir / name).is_file()]


def save_embedding(folder: Path, trigger: str, parts: dict[str, torch.Tensor], family: str, *,
                   step: int, model_name: str, suffix: str = "",
                   save_as: str = "diffusers") -> dict[str, Path]:
    """Write the embedding in every format `family` and `save_as` ask for.

    `parts` maps each encoder to its rows, [n, width] float (any device/dtype; written fp32).
    Returns {format name: path written}. Raises ValueError for NaN/inf rows (nothing is
    written) and OSError from the disk; each file appears whole or not at all.
    """
    import torch

    clean = {key: rows.detach().to("cpu", torch.float32).contiguous()
             for key, rows in parts.items()}
    if not all(torch.isfinite(rows).all() for rows in clean.values()):
        raise ValueError("refusing to save an embedding that holds NaN or inf")
    # Serialised in memory first (a few KB each), then written by fsutil: a full disk is then
    # an OSError with its errno, never a library's own exception type, and never a torn file.
    blobs = {f.name: (folder / f.file_name(trigger, suffix),
                      f.write(trigger, clean, family, step, model_name))
             for f in formats_for(family, save_as)}
    folder.mkdir(parents=True, exist_ok=True)
    for path, data in blobs.values():
        fsutil.atomic_write_bytes(path, data)
    return {name: path for name, (path, _) in blobs.items()}


# --- reading ------------------------------------------------------------------------------

WIDTHS = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL (clip_l 768 + clip_g 1280)"}
"""Token widths of the families, as the trained rows are laid out ([n, sum of part widths])."""


def load_embedding(path: str | os.PathLike[str]) -> tuple[str | None, torch.Tensor]:
    """Read an embedding file of any common layout -> (name or None, rows [n, width]).

    Layouts: diffusers/InvokeAI `{token: [n, d] or [d]}`, A1111 `string_to_param`, kohya
    `emb_params`, OneTrainer `emp_params`, and SDXL `clip_l` + `clip_g` (A1111, ComfyUI,
    kohya, OneTrainer, ours), which come back as one [n, 768 + 1280] tensor in the
    conditioner's part order (clip_l columns first). Only safetensors or
    `torch.load(weights_only=True)`: a pickle that would run code is refused, never executed.
    Raises ResumeError (field initial_embedding) with one sentence for anything else.
    """
    import torch
    from safetensors.torch import load_file

    path = Path(path).expanduser()
    if path.is_dir():
        raise ResumeError(f"Initial embedding {path} is a folder; pass the embedding file "
                          "inside it (.safetensors, .bin or .pt).", field="initial_embedding")
    kind = special_kind(path)
    if kind is not None:
        raise ResumeError(f"Initial embedding {path} is {kind}, not a file; pass a "
                          ".safetensors, .bin or .pt embedding file.", field="initial_embedding")
    if not path.is_file():
        raise ResumeError(f"Initial embedding {path} does not exist{near_miss(path)}; pass a "
                          ".safetensors, "
                          ".bin or .pt embedding file.", field="initial_embedding")
    try:
        if path.suffix.lower() == ".safetensors":
            data = load_file(str(path))
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same answer
        raise ResumeError(f"Cannot load {path}: {unreadable_reason(exc)}.",
                          field="initial_embedding") from None
    name, tensor = _pick_tensor(data)
    if (not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point()
            or tensor.dim() not in (1, 2)):
        raise ResumeError(f"{path} holds no embedding tensor this tool understands (diffusers, "
                          "InvokeAI, A1111, kohya, OneTrainer or SDXL clip_l/clip_g layouts); "
                          "pass a textual-inversion embedding file.", field="initial_embedding")
    if not torch.isfinite(tensor).all():
        raise ResumeError(f"{path} holds NaN or infinite values; pass an embedding saved "
                          "before training went wrong.", field="initial_embedding")
    tensor = tensor.detach().float()
    return name, tensor.unsqueeze(0) if tensor.dim() == 1 else tensor


def unreadable_reason(exc: BaseException) -> str:
    """Why torch.load/safetensors refused a file, as a clause for one sentence."""
    text = str(exc)
    if "GLOBAL" in text or "Unsupported global" in text:
        return ("it contains pickled code, which ti-tui never runs; use a .safetensors file or "
                "one saved as plain tensors")
    if "weights only" in text.lower() or "weights_only" in text.lower():
        return ("it holds pickled objects other than plain tensors (or is damaged), and "
                "ti-tui never unpickles those; use a .safetensors file")
    first = text.strip().splitlines()[0][:120] if text.strip() else type(exc).__name__
    return f"it is not a readable embedding or is damaged ({first})"


def _rows(value) -> torch.Tensor | None:
    import torch

    if not isinstance(value, torch.Tensor):
        return None
    return value.unsqueeze(0) if value.dim() == 1 else value


def _pick_tensor(data) -> tuple[str | None, torch.Tensor | None]:
    """The rows inside a loaded file, in the order the tools themselves look (A1111
    create_embedding_from_data, InvokeAI TextualInversionModelRaw.from_checkpoint)."""
    import torch

    if isinstance(data, torch.Tensor):
        return None, data
    if not isinstance(data, dict):
        return None, None
    if "string_to_param" in data:  # A1111
        params = data["string_to_param"]
        tensor = next(iter(params.values()), None) if isinstance(params, dict) else None
        return data.get("name"), tensor
    if "clip_l" in data and "clip_g" in data:  # SDXL: A1111, ComfyUI, kohya, OneTrainer
        left, right = _rows(data["clip_l"]), _rows(data["clip_g"])
        if left is None or right is None or left.dim() != 2 or left.shape[0] != right.shape[0]:
            return None, None
        return None, torch.cat([left, right], dim=1)
    for key in ("emb_params", "emp_params"):  # kohya, OneTrainer (sic)
        if key in data:
            return None, data[key]
    tensors = [(k, v) for k, v in data.items() if isinstance(v, torch.Tensor)]
    return (tensors[0][0], tensors[0][1]) if len(tensors) == 1 else (None, None)


def check_dimension(vectors: torch.Tensor, token_dim: int, source: str) -> None:
    """Refuse rows of another model family with one sentence (ResumeError, field
    initial_embedding). `token_dim` is the model's total width (SDXL: 768 + 1280 = 2048)."""
    got = int(vectors.shape[-1])
    if got == token_dim:
        return
    family = WIDTHS.get(got)
    if family is None and got == 1280:
        family = "the clip_g half of an SDXL embedding alone"
    made_for = f" ({family})" if family else ""
    want = f" ({WIDTHS[token_dim]})" if token_dim in WIDTHS else ""
    raise ResumeError(f"{source} was trained on a model with token dimension {got}{made_for}, "
                      f"but the current model has token dimension {token_dim}{want}; pass an "
                      "embedding made for this model family (768: SD 1.x, 1024: SD 2.x, "
                      "768 + 1280: SDXL, as one file holding clip_l and clip_g).",
                      field="initial_embedding")
