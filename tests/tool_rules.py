"""How other programs load a textual-inversion file, restated from their public source.

Each function below is our own code that follows one tool's loading rule, step for step, so a
test can ask "would this tool install this file unchanged?" without the tool itself. The
source each rule was read from is named with its repository and commit; only facts were taken.
A function raises `Refused` with the tool's reason where the tool would refuse or skip the file.
diffusers is not restated: tests call the real `load_textual_inversion`. Rules: A1111/Forge,
InvokeAI 4+, picklescan (InvokeAI's scan), InvokeAI 2.3, ComfyUI, kohya sd-scripts.
"""

from __future__ import annotations

import collections
import io
import pickle
import re
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load_file


class Refused(Exception):
    """The tool would refuse (or silently skip) the file; the message says why."""


# --- AUTOMATIC1111 / Forge ---------------------------------------------------------------------
# AUTOMATIC1111/stable-diffusion-webui modules/safe.py at 2d2edc110fb46fcf519804f57024f9c300188f9b
# (the same member rule at 05933840f0676dd1a90a7e2ad3f2a0672624b2cd). Before torch.load, the
# webui's default check ("safe-unpickle", on unless --disable-safe-unpickle) opens a .pt/.bin
# as a zip and accepts only members `<dir>/data.pkl`, `<dir>/version`, `<dir>/data/<digits>`
# (some later forks add `byteorder` and `.data/serialization_id`; the strict rule is the one
# most installs run), exactly one data.pkl, and a pickle whose globals are all on its list;
# persistent ids must be ("storage", ...). A file that is not a zip is read as the legacy
# format: five pickles in a row, same globals rule.
A1111_MEMBER = re.compile(r"^([^/]+)/((data/\d+)|version|(data\.pkl))$")
A1111_DATA_PKL = re.compile(r"^([^/]+)/data\.pkl$")
A1111_GLOBALS = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_device_tensor_from_numpy"),
    *(("torch", n) for n in ("FloatStorage", "HalfStorage", "IntStorage", "LongStorage",
                              "DoubleStorage", "ByteStorage", "float32")),
    ("torch.nn.modules.container", "ParameterDict"),
    ("numpy.core.multiarray", "scalar"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "dtype"), ("numpy", "ndarray"), ("_codecs", "encode"), ("__builtin__", "set"),
}


class _A1111Unpickler(pickle.Unpickler):
    def persistent_load(self, saved_id):
        if saved_id[0] != "storage":
            raise Refused(f"persistent id {saved_id[0]!r} is not a storage")
        return None

    def find_class(self, module, name):
        if (module, name) not in A1111_GLOBALS:
            raise Refused(f"global '{module}/{name}' is forbidden")
        # Only which globals appear is checked; nothing is rebuilt.
        return collections.OrderedDict if name == "OrderedDict" else _anything


def _anything(*args, **kwargs):
    return None


def a1111_safe_unpickle(path: Path) -> None:
    """modules/safe.py check_pt: raises Refused ("may be malicious") or returns."""
    data = Path(path).read_bytes()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        stream = io.BytesIO(data)
        for _ in range(5):
            _A1111Unpickler(stream).load()
        return
    names = archive.namelist()
    for name in names:
        if not A1111_MEMBER.match(name):
            raise Refused(f"bad file inside {path}: {name}")
    pickles = [n for n in names if A1111_DATA_PKL.match(n)]
    if len(pickles) != 1:
        raise Refused(f"{len(pickles)} data.pkl found in {path}")
    _A1111Unpickler(io.BytesIO(archive.read(pickles[0]))).load()


def a1111_load(path: Path, model_width: int) -> tuple[str, int, int]:
    """EmbeddingDatabase.load_from_file, modules/textual_inversion/textual_inversion.py at
    22ecb78b51f7e6f0234cbc0efbde4ee9a2dc466f -> (prompt word, vectors, width). Forge
    (lllyasviel/stable-diffusion-webui-forge) has the same rule, split into
    `create_embedding_from_data` (textual_inversion.py at 77a4980f08538522b1437c7490ede817c1ea0973),
    and stubs safe.py out (2129c64aede6818bb7df8221af4acf05c8df3322): a file A1111 takes, Forge
    takes.

    .pt/.bin go through safe-unpickle then torch.load (weights_only is the default from torch
    2.6); .safetensors through safetensors; other suffixes are ignored. The prompt word is the
    file name's stem. Rows come from `string_to_param` (exactly one term), else `clip_g` +
    `clip_l` (width = their sum, every value must be a tensor), else a one-key dict of a
    tensor. An embedding whose width is not the model's is skipped.
    """
    path = Path(path)
    suffix = path.suffix.upper()
    if suffix in (".PT", ".BIN"):
        a1111_safe_unpickle(path)
        data = torch.load(path, map_location="cpu", weights_only=True)
    elif suffix == ".SAFETENSORS":
        data = load_file(str(path), device="cpu")
    else:
        raise Refused(f"{path.name}: not an embedding suffix")
    if "string_to_param" in data:
        params = data["string_to_param"]
        if len(params) != 1:
            raise Refused("embedding file has multiple terms in it")
        vec = next(iter(params.values()))
        width, count = vec.shape[-1], vec.shape[0]
    elif type(data) is dict and "clip_g" in data and "clip_l" in data:
        for value in data.values():
            value.detach()  # every value is used as a tensor
        width = data["clip_g"].shape[-1] + data["clip_l"].shape[-1]
        count = data["clip_g"].shape[0]
    elif type(data) is dict and isinstance(next(iter(data.values())), torch.Tensor):
        if len(data) != 1:
            raise Refused("embedding file has multiple terms in it")
        vec = next(iter(data.values()))
        vec = vec.unsqueeze(0) if vec.dim() == 1 else vec
        width, count = vec.shape[-1], vec.shape[0]
    else:
        raise Refused(f"Couldn't identify {path.name} as textual inversion embedding")
    if width != model_width:
        raise Refused(f"skipped: width {width}, model {model_width}")
    return path.stem, int(count), int(width)


# --- InvokeAI 4.0 and later --------------------------------------------------------------------
# invoke-ai/InvokeAI at 8e71a8a519399d6db32054ae9afc7c6c4e2355af:
# invokeai/backend/model_manager/configs/textual_inversion.py (probe) and
# invokeai/backend/textual_inversion.py (TextualInversionModelRaw.from_checkpoint); the probe's
# width rule is the same in v4.0.0 invokeai/backend/model_manager/probe.py.
# model_on_disk.py loads .pt/.bin with torch.load after a picklescan pass (below) and uses the
# dict's "state_dict" entry when there is one.
INVOKEAI_BASES = {768: "sd-1", 1024: "sd-2", 1280: "sdxl"}

# mmaitre314/picklescan src/picklescan/scanner.py at 05c3514d381c1d2233d697e7e77ccee368d2a834:
# every GLOBAL in every pickle of the file is classed innocuous (this list), dangerous (its
# deny-list: builtins eval/exec/..., os, subprocess, ...) or suspicious; InvokeAI aborts the
# install on any dangerous one or on a scan error. Holding the file to the innocuous list is
# stricter than InvokeAI needs.
PICKLESCAN_SAFE = {
    ("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
    ("numpy", "dtype"), ("numpy", "ndarray"), ("numpy.core.multiarray", "_reconstruct"),
    *(("torch", f"{kind}Storage") for kind in (
        "Long", "Float", "Half", "QUInt2x4", "QUInt4x2", "QInt32", "QInt8", "QUInt8",
        "ComplexFloat", "ComplexDouble", "Double", "BFloat16", "Bool", "Char", "Short", "Int",
        "Byte")),
}


def picklescan_globals(path: Path) -> set[tuple[str, str]]:
    """The (module, name) of every GLOBAL opcode in the file's pickles; Refused if any is
    outside picklescan's innocuous list or a pickle does not parse."""
    import pickletools

    data = Path(path).read_bytes()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        pickles = [archive.read(n) for n in archive.namelist() if n.endswith(".pkl")]
    except zipfile.BadZipFile:
        pickles = [data]
    found = set()
    for blob in pickles:
        try:
            for opcode, arg, _ in pickletools.genops(io.BytesIO(blob)):
                if opcode.name in ("GLOBAL", "INST"):
                    found.add(tuple(arg.split(" ", 1)))
                elif opcode.name == "STACK_GLOBAL":
                    raise Refused("STACK_GLOBAL: picklescan reads its names from the memo")
        except ValueError as exc:
            raise Refused(f"scan error: {exc}") from None
    if found - PICKLESCAN_SAFE:
        raise Refused(f"not innocuous to picklescan: {sorted(found - PICKLESCAN_SAFE)}")
    return found


def invokeai4_install(path: Path) -> tuple[str, torch.Tensor, torch.Tensor | None]:
    """Install a file as InvokeAI 4+ does -> (base, embedding, embedding_2).

    Looks like an embedding: a key among string_to_param/emb_params/clip_g, or fewer than 10
    values all tensors. Width: `string_to_param`'s first value shape[-1] only when
    `string_to_token` is present, else `emb_params` shape[-1], else `clip_g` shape[-1], else the
    FIRST value's shape[0]; 768/1024/1280 name the base, anything else is refused. Loader:
    string_to_param's first value, else emb_params, else clip_g (embedding) + clip_l
    (embedding_2), else the first value (1-D made [1, d]).
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        state = load_file(str(path), device="cpu")
    elif path.suffix in (".ckpt", ".pt", ".pth", ".bin"):
        picklescan_globals(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    else:
        raise Refused(f"Unrecognized model extension: {path.suffix}")
    state = state.get("state_dict", state)
    looks = (any(k in ("string_to_param", "emb_params", "clip_g") for k in state)
             or (len(state) < 10 and all(isinstance(v, torch.Tensor) for v in state.values())))
    if not looks:
        raise Refused("model does not look like a textual inversion embedding file")
    if "string_to_token" in state:
        token_dim = list(state["string_to_param"].values())[0].shape[-1]
    elif "emb_params" in state:
        token_dim = state["emb_params"].shape[-1]
    elif "clip_g" in state:
        token_dim = state["clip_g"].shape[-1]
    else:
        token_dim = list(state.values())[0].shape[0]
    if token_dim not in INVOKEAI_BASES:
        raise Refused(f"unrecognized token dimension {token_dim}")
    second = None
    if "string_to_param" in state:
        first = next(iter(state["string_to_param"].values()))
    elif "emb_params" in state:
        first = state["emb_params"]
    elif "clip_g" in state and "clip_l" in state:
        first, second = state["clip_g"], state["clip_l"]
    else:
        first = next(iter(state.values()))
        first = first.unsqueeze(0) if first.dim() == 1 else first
    return INVOKEAI_BASES[token_dim], first, second


# --- InvokeAI 2.3 ------------------------------------------------------------------------------
# invoke-ai/InvokeAI tag v2.3.5, ldm/modules/textual_inversion_manager.py: every file under
# ROOT/embeddings/ is parsed by _parse_embedding, and refused when its token_dim differs from
# the text encoder's width.

def invokeai23_load(path: Path, model_width: int) -> tuple[str, torch.Tensor]:
    """-> (trigger, embedding [n, d]). v1: string_to_token+string_to_param+name+step (trigger
    `name`, width size()[1]); v2: string_to_token+string_to_param; v3: emb_params (trigger
    `<stem>`, width size()[1]); v4, anything else (diffusers .bin): trigger = the key, width =
    the value's size()[0] (so only a 1-D single vector fits)."""
    path = Path(path)
    if path.suffix in (".pt", ".ckpt", ".bin"):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    else:
        ckpt = load_file(str(path))
    keys = list(ckpt)
    if all(k in keys for k in ("string_to_token", "string_to_param", "name", "step")):
        emb = list(ckpt["string_to_param"].values())[0]
        trigger, token_dim = ckpt["name"], emb.size()[1]
    elif all(k in keys for k in ("string_to_token", "string_to_param")):
        raise Refused("v2 layout (not written by ti-tui)")
    elif "emb_params" in keys:
        emb = ckpt["emb_params"]
        trigger, token_dim = f"<{path.stem}>", emb.size()[1]
    else:
        trigger = keys[-1]
        emb = ckpt[trigger]
        token_dim = emb.size()[0]
    if token_dim != model_width:
        raise Refused(f"incompatible token dimension: {model_width} vs {token_dim}")
    return trigger, emb.unsqueeze(0) if emb.dim() == 1 else emb


# --- ComfyUI -----------------------------------------------------------------------------------
# comfyanonymous/ComfyUI comfy/sd1_clip.py at b55c2247654476fbc744e572ba7a834fd9378745:
# load_embed, and SDClipModel.set_up_textual_embeddings (a row whose width differs from the
# encoder's is ignored with "shape mismatch"). Each tokenizer passes its (width, key): SD 1.x
# (768, "clip_l"); SD 2.x (1024, SDTokenizer's default key "clip_l", comfy/sd2_clip.py at
# 01312a55a43596dd0077a1d4c0c97856c5610167); SDXL's two (768, "clip_l") and (1280, "clip_g")
# (comfy/sdxl_clip.py).
COMFY_ENCODERS = {"sd1": [(768, "clip_l")], "sd2": [(1024, "clip_l")],
                  "sdxl": [(768, "clip_l"), (1280, "clip_g")]}


def comfyui_load_embed(path: Path, width: int, key: str) -> torch.Tensor:
    """`embedding:<stem>` in a prompt -> the rows one encoder uses, [n, width]."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        embed = load_file(str(path), device="cpu")
    else:
        # ComfyUI falls back to reading raw storages when this fails; a file made for it must
        # not need that guess, so the fallback is not restated.
        embed = torch.load(path, weights_only=True, map_location="cpu")
    if "string_to_param" in embed:
        out = next(iter(embed["string_to_param"].values()))
    elif key in embed:
        out = embed[key]
    else:
        bundled = [v for k, v in embed.items()
                   if k.startswith("bundle_emb.") and k.endswith(".string_to_param.*")]
        out = torch.cat(bundled) if bundled else next(iter(embed.values()))
    rows = [out] if out.dim() == 1 else list(out)
    if any(row.shape[0] != width for row in rows):
        raise Refused(f"shape mismatch when trying to apply embedding, embedding will be "
                      f"ignored {rows[0].shape[0]} != {width}")
    return torch.stack(rows)


# --- kohya-ss/sd-scripts -----------------------------------------------------------------------
# `--weights FILE` (start from an embedding): train_textual_inversion.py at
# 0010c81a3353b6bb51e698ca649442e730817a8f, TextualInversionTrainer.load_weights (safetensors,
# else torch.load with A1111's string_to_param unwrapped; then the FIRST value, 1-D made
# [1, d]; its row count must equal --num_vectors_per_token), and sdxl_train_textual_inversion.py
# at 04ed9ed15877bfe5944d9da049405ee928f4b00d (the `clip_l` and `clip_g` entries, one per
# encoder).

def kohya_weights(path: Path, family: str, num_vectors: int) -> list[torch.Tensor]:
    """-> the rows for each text encoder, as kohya's trainer copies them in."""
    path = Path(path)
    if path.suffix == ".safetensors":
        data = load_file(str(path))
    else:
        data = torch.load(path, map_location="cpu", weights_only=True)
        if "string_to_param" in data:
            data = data["string_to_param"]
    if family == "sdxl":
        rows = [data.get("clip_l"), data.get("clip_g")]
        if rows[0] is None and rows[1] is None:
            raise Refused("weight file does not contain weights for text encoder 1 or 2")
    else:
        first = next(iter(data.values()))
        rows = [first.unsqueeze(0) if first.dim() == 1 else first]
    if len(rows[0]) != num_vectors:
        raise Refused("num_vectors_per_token is mismatch for weights")
    return rows
