"""Test helper: turn a tiny diffusers folder into a single-file checkpoint (LDM/SGM layout).

Real single files (A1111, ComfyUI, InvokeAI 4+ "checkpoint" models) use the original
Stable Diffusion names. The mapping below is restated from the facts in diffusers'
scripts/convert_diffusers_to_original_stable_diffusion.py and
convert_diffusers_to_original_sdxl.py (diffusers 58eb52c080): UNet blocks numbered
input_blocks / middle_block / output_blocks with (layers_per_block + 1) slots per level,
resnet parts renamed (in_layers, emb_layers, out_layers, skip_connection), the VAE's up
blocks counted in reverse and its attention as 1x1 convolutions (q, k, v, proj_out), CLIP-L
under `transformer.text_model.` and OpenCLIP with fused `in_proj` and a transposed
`text_projection`. It is written for any number of blocks, so the tiny test models fit.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
           ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
           ("conv_shortcut", "skip_connection"))
_VAE_ATTN = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"),
             ("to_out.0", "proj_out"))


def _weights(folder: Path, state: dict | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a component folder, or `state` when given (meta tensors in tests)."""
    if state is not None:
        return dict(state)
    state = {}
    for file in sorted(folder.glob("*.safetensors")):
        state.update(load_file(str(file)))
    return state


def _rename(key: str, prefixes: list[tuple[str, str]], inner=()) -> str:
    for old, new in prefixes:
        if key.startswith(old + "."):
            rest = key[len(old) + 1:]
            for a, b in inner:
                if rest.startswith(a + "."):
                    rest = b + rest[len(a):]
                    break
            return f"{new}.{rest}"
    return key


def unet_to_ldm(folder: Path, state: dict | None = None) -> dict[str, torch.Tensor]:
    """The UNet of a diffusers folder under `model.diffusion_model.` in LDM names."""
    config = json.loads((folder / "config.json").read_text())
    per, levels = config["layers_per_block"], len(config["block_out_channels"])
    attn_up = ["CrossAttn" in t for t in config["up_block_types"]]
    resnets = [("mid_block.resnets.0", "middle_block.0"), ("mid_block.resnets.1", "middle_block.2")]
    others = [("time_embedding.linear_1", "time_embed.0"), ("time_embedding.linear_2", "time_embed.2"),
              ("add_embedding.linear_1", "label_emb.0.0"), ("add_embedding.linear_2", "label_emb.0.2"),
              ("conv_in", "input_blocks.0.0"), ("conv_norm_out", "out.0"), ("conv_out", "out.2"),
              ("mid_block.attentions.0", "middle_block.1")]
    for i in range(levels):
        for j in range(per):
            slot = (per + 1) * i + j + 1
            resnets.append((f"down_blocks.{i}.resnets.{j}", f"input_blocks.{slot}.0"))
            others.append((f"down_blocks.{i}.attentions.{j}", f"input_blocks.{slot}.1"))
        if i < levels - 1:
            others.append((f"down_blocks.{i}.downsamplers.0.conv",
                           f"input_blocks.{(per + 1) * (i + 1)}.0.op"))
        for j in range(per + 1):
            slot = (per + 1) * i + j
            resnets.append((f"up_blocks.{i}.resnets.{j}", f"output_blocks.{slot}.0"))
            others.append((f"up_blocks.{i}.attentions.{j}", f"output_blocks.{slot}.1"))
        if i < levels - 1:
            others.append((f"up_blocks.{i}.upsamplers.0",
                           f"output_blocks.{(per + 1) * i + per}.{2 if attn_up[i] else 1}"))
    out = {}
    for key, value in _weights(folder, state).items():
        new = _rename(key, resnets, _RESNET)
        if new == key:
            new = _rename(key, others)
        out["model.diffusion_model." + new] = value
    return out


def vae_to_ldm(folder: Path, state: dict | None = None) -> dict[str, torch.Tensor]:
    """The VAE of a diffusers folder under `first_stage_model.` in LDM names."""
    levels = len(json.loads((folder / "config.json").read_text())["block_out_channels"])
    names = []
    for part in ("encoder", "decoder"):
        names += [(f"{part}.mid_block.resnets.{j}", f"{part}.mid.block_{j + 1}") for j in (0, 1)]
        names += [(f"{part}.mid_block.attentions.0", f"{part}.mid.attn_1"),
                  (f"{part}.conv_norm_out", f"{part}.norm_out")]
    for i in range(levels):
        names += [(f"encoder.down_blocks.{i}.resnets.{j}", f"encoder.down.{i}.block.{j}")
                  for j in range(4)]
        names.append((f"encoder.down_blocks.{i}.downsamplers.0", f"encoder.down.{i}.downsample"))
        up = levels - 1 - i
        names += [(f"decoder.up_blocks.{i}.resnets.{j}", f"decoder.up.{up}.block.{j}")
                  for j in range(4)]
        names.append((f"decoder.up_blocks.{i}.upsamplers.0", f"decoder.up.{up}.upsample"))
    out = {}
    for key, value in _weights(folder, state).items():
        new = _rename(key, names, (("conv_shortcut", "nin_shortcut"), *_VAE_ATTN))
        if ".mid.attn_1." in new and value.dim() == 2:
            value = value[:, :, None, None]  # LDM keeps the attention as 1x1 convolutions
        out["first_stage_model." + new] = value
    return out


def clip_to_ldm(folder: Path, prefix: str, state: dict | None = None) -> dict[str, torch.Tensor]:
    """A CLIP-L text encoder under `prefix` + `text_model.` (SD 1.x, SDXL's first)."""
    return {prefix + ("" if k.startswith("text_model.") else "text_model.") + k: v
            for k, v in _weights(folder, state).items() if not k.startswith("text_projection")}


def open_clip_to_ldm(folder: Path, prefix: str,
                     state: dict | None = None) -> dict[str, torch.Tensor]:
    """An OpenCLIP text encoder (SD 2.x, SDXL's bigG) under `prefix` in open_clip names."""
    state = {k.removeprefix("text_model."): v for k, v in _weights(folder, state).items()}
    out = {prefix + "token_embedding.weight": state.pop("embeddings.token_embedding.weight"),
           prefix + "positional_embedding": state.pop("embeddings.position_embedding.weight"),
           prefix + "ln_final.weight": state.pop("final_layer_norm.weight"),
           prefix + "ln_final.bias": state.pop("final_layer_norm.bias")}
    if "text_projection.weight" in state:
        out[prefix + "text_projection"] = state.pop("text_projection.weight").T.contiguous()
    layers = sorted({int(k.split(".")[2]) for k in state if k.startswith("encoder.layers.")})
    for i in layers:
        src, dst = f"encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat(
                [state.pop(src + f"self_attn.{p}_proj.{kind}") for p in "qkv"])
            for old, new in (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"),
                             ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"),
                             ("mlp.fc2", "mlp.c_proj")):
                out[dst + f"{new}.{kind}"] = state.pop(src + f"{old}.{kind}")
    return out


def write_single_file(model: Path, target: Path, *, extra: dict | None = None) -> Path:
    """Write the diffusers folder `model` (SD 1.x-shaped or SDXL-shaped) as one .safetensors
    (or .ckpt, by `target`'s suffix, saved as plain tensors) in the original layout."""
    model, target = Path(model), Path(target)
    state = {**unet_to_ldm(model / "unet"), **vae_to_ldm(model / "vae")}
    if (model / "text_encoder_2").is_dir():
        state.update(clip_to_ldm(model / "text_encoder", "conditioner.embedders.0.transformer."))
        state.update(open_clip_to_ldm(model / "text_encoder_2", "conditioner.embedders.1.model."))
    else:
        state.update(clip_to_ldm(model / "text_encoder", "cond_stage_model.transformer."))
    state.update(extra or {})
    state = {k: v.contiguous() for k, v in state.items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".safetensors":
        save_file(state, str(target))
    else:
        torch.save({"state_dict": state}, target)
    return target
