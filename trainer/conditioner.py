"""The model family's one seam: tokenizers + text encoders -> the UNet's text conditioning.

SD 1.x, SD 2.x and SDXL differ, for textual inversion, only in how a caption becomes the
UNet's conditioning. A `Conditioner`, built by the loader (trainer/models.py) for the model's
family, holds the tokenizer(s) and frozen text encoder(s) and answers everything that
depends on the family; the loop, DVAR's L_det, previews, checkpoints and outputs only call it.

- SD 1.x / 2.x: one encoder; conditioning = its last hidden state [B, 77, 768 | 1024].
- SDXL (Podell et al. 2023, sec. 2.1; diffusers StableDiffusionXLPipeline.encode_prompt):
  the penultimate hidden states of CLIP-L and OpenCLIP-bigG concatenated [B, 77, 2048], plus
  the added conditioning of the UNet's "text_time" embedding: `text_embeds`, bigG's projected
  pooled output [B, 1280], and `time_ids` [B, 6].

The trained vectors are always ONE fp32 parameter [num_vectors, sum(parts.values())]; each
encoder's SplicedEmbedding reads its own columns (`parts` gives their widths in order), so the
optimizer, clipping, SAM, the all-reduce, checkpoints and resume never see the family.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainer import embeddings
from trainer.errors import ConfigError

FAMILIES = ("sd1", "sd2", "sdxl")


@dataclass
class Conditioning:
    """What the UNet is conditioned on for one batch."""

    hidden: torch.Tensor
    """[B, 77, D] encoder hidden states (cross-attention input); D = sum of the part widths."""
    added: dict[str, torch.Tensor] | None
    """SDXL's `added_cond_kwargs` ({"text_embeds": [B, 1280], "time_ids": [B, 6]}), else None."""

    def for_unet(self, dtype: torch.dtype) -> dict[str, Any]:
        """Keyword arguments of UNet2DConditionModel.forward, cast to the UNet's dtype."""
        added = None if self.added is None else {k: v.to(dtype) for k, v in self.added.items()}
        return {"encoder_hidden_states": self.hidden.to(dtype), "added_cond_kwargs": added}


class Conditioner(ABC):
    """Tokenizers and frozen text encoders of one model, in the order of `parts`.

    Subclasses decide the family's conditioning (`encode`, `time_ids`, `pipeline`); the rest
    (placeholder tokens in every tokenizer, start vectors from every encoder's own table, one
    shared trainable parameter spliced into every encoder, split/join) is common.
    """

    family: str
    parts: dict[str, int]
    """Ordered widths of the trained rows per encoder: {"text_encoder": 768} for SD 1.x,
    {"text_encoder": 1024} for SD 2.x, {"clip_l": 768, "clip_g": 1280} for SDXL."""

    def __init__(self, tokenizers: list, encoders: list, part_names: list[str]):
        self.tokenizers = list(tokenizers)
        self.encoders = list(encoders)
        self.parts = {name: int(enc.config.hidden_size)
                      for name, enc in zip(part_names, self.encoders, strict=True)}
        self.vectors: nn.Parameter | None = None
        self.spliced: list[embeddings.SplicedEmbedding] = []
        self.first_ids: list[int] = []

    # --- conveniences for code that needs "the" tokenizer (trigger checks, the form) -------
    @property
    def tokenizer(self):
        """The first tokenizer (CLIP-L on SDXL): the one trigger checks and the form use."""
        return self.tokenizers[0]

    @property
    def text_encoder(self):
        """The first text encoder (CLIP-L on SDXL)."""
        return self.encoders[0]

    @property
    def width(self) -> int:
        """Columns of the trained parameter: the sum of the part widths."""
        return sum(self.parts.values())

    def _columns(self) -> list[slice]:
        out, start = [], 0
        for width in self.parts.values():
            out.append(slice(start, start + width))
            start += width
        return out

    # --- the trained rows ------------------------------------------------------------------
    def split(self, vectors: torch.Tensor) -> dict[str, torch.Tensor]:
        """[n, width] -> {part: [n, part width]} (views), keys in `parts` order; ValueError
        for another width."""
        if vectors.shape[-1] != self.width:
            raise ValueError(f"vectors are {vectors.shape[-1]} wide, this model's {self.width}")
        return {name: vectors[..., cols]
                for name, cols in zip(self.parts, self._columns(), strict=True)}

    def join(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """{part: [n, part width]} -> [n, width]; the inverse of `split`. ValueError unless
        the keys are exactly `parts`."""
        if set(parts) != set(self.parts):
            raise ValueError(f"expected parts {list(self.parts)}, got {list(parts)}")
        return torch.cat([parts[name] for name in self.parts], dim=-1)

    def add_placeholder(self, trigger: str, num_vectors: int) -> embeddings.Placeholder:
        """Add the trigger's tokens to every tokenizer; returns them as tokenizer 1 numbers
        them. ConfigError (field placeholder_token) if any tokenizer already knows them."""
        placeholder = embeddings.add_placeholder(self.tokenizers[0], trigger, num_vectors)
        self.first_ids = [placeholder.ids[0]]
        for tokenizer in self.tokenizers[1:]:
            self.first_ids.append(embeddings.add_placeholder(tokenizer, trigger,
                                                             num_vectors).ids[0])
        return placeholder

    def initial_vectors(self, initializer: str, num_vectors: int, seed: int) -> torch.Tensor:
        """[n, width] start rows: each part copies the initializer's token(s) from its own
        encoder's table, tokenized by its own tokenizer (ConfigError if it does not fit)."""
        rows = []
        for tokenizer, encoder in zip(self.tokenizers, self.encoders, strict=True):
            ids = embeddings.initializer_ids(tokenizer, initializer, num_vectors, seed)
            table = encoder.get_input_embeddings().weight
            rows.append(table[torch.tensor(ids)].detach().float())
        return torch.cat(rows, dim=-1).clone()

    def splice(self, placeholder: embeddings.Placeholder,
               start_vectors: torch.Tensor) -> nn.Parameter:
        """Splice one trainable fp32 parameter [n, width] into every encoder; return it.
        ValueError when `start_vectors` is not [len(placeholder.ids), width]."""
        if start_vectors.shape != (len(placeholder.ids), self.width):
            raise ValueError(f"start vectors {tuple(start_vectors.shape)}, expected "
                             f"({len(placeholder.ids)}, {self.width})")
        self.vectors = nn.Parameter(start_vectors.detach().clone().float())
        first_ids = self.first_ids or [placeholder.ids[0]] * len(self.encoders)
        self.spliced = [
            embeddings.splice_into(encoder, tokenizer, placeholder, self.vectors, cols, first)
            for encoder, tokenizer, cols, first in zip(
                self.encoders, self.tokenizers, self._columns(), first_ids, strict=True)]
        return self.vectors

    @contextmanager
    def unspliced(self):
        """Plain token tables holding the learned rows, for saving a whole pipeline.

        The encoders' configs also get the tokenizer's real end-of-text id while inside: with
        the legacy `eos_token_id: 2` that SD and SDXL configs ship, transformers pools at
        `argmax(input_ids)`, i.e. at the new word (transformers#21029); with the real id it
        pools at the end-of-text token, so the saved pipeline conditions SDXL as training did.
        """
        saved = [encoder.config.eos_token_id for encoder in self.encoders]
        for encoder, tokenizer, spliced in zip(self.encoders, self.tokenizers, self.spliced,
                                               strict=True):
            embeddings.unsplice(encoder, spliced)
            encoder.config.eos_token_id = int(tokenizer.eos_token_id)
        try:
            yield
        finally:
            for encoder, spliced, eos in zip(self.encoders, self.spliced, saved, strict=True):
                encoder.set_input_embeddings(spliced)
                encoder.config.eos_token_id = eos

    def to(self, device: torch.device) -> Conditioner:
        """Move every text encoder to `device`; returns self."""
        for encoder in self.encoders:
            encoder.to(device)
        return self

    @property
    def device(self) -> torch.device:
        """The device of the first text encoder's weights."""
        return next(self.encoders[0].parameters()).device

    # --- captions -> conditioning ------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """Token ids [B, E, 77], one row per encoder (each tokenizer pads its own way)."""
        rows = [tok(texts, padding="max_length", truncation=True,
                    max_length=tok.model_max_length, return_tensors="pt").input_ids
                for tok in self.tokenizers]
        return torch.stack(rows, dim=1)

    def time_ids(self, batch_size: int, resolution: int) -> torch.Tensor | None:
        """The added time conditioning [batch_size, 6] for images of `resolution` pixels, or
        None if the family has none (SD 1.x/2.x)."""
        return None

    @abstractmethod
    def encode(self, input_ids: torch.Tensor,
               time_ids: torch.Tensor | None = None) -> Conditioning:
        """Conditioning for token ids [B, E, 77] (from `tokenize`) and, for families with
        added conditioning, time ids [B, 6] (from `time_ids`)."""

    @abstractmethod
    def pipeline(self, *, vae, unet, scheduler):
        """A diffusers text-to-image pipeline around these encoders and the given parts."""

    @abstractmethod
    def prompt_embeds(self, prompts: list[str], resolution: int) -> dict[str, torch.Tensor]:
        """Keyword arguments giving `pipeline(...)` our own encoding of `prompts`, so previews
        see exactly the conditioning training optimised."""


class ClipConditioner(Conditioner):
    """SD 1.x and 2.x: one CLIP text encoder, its last hidden state (after the final norm)."""

    def __init__(self, tokenizer, text_encoder):
        super().__init__([tokenizer], [text_encoder], ["text_encoder"])
        self.family = "sd2" if self.parts["text_encoder"] == 1024 else "sd1"

    def encode(self, input_ids: torch.Tensor,
               time_ids: torch.Tensor | None = None) -> Conditioning:
        """The encoder's last hidden state [B, 77, 768 or 1024]; no added conditioning
        (`time_ids` is ignored)."""
        return Conditioning(hidden=self.encoders[0](input_ids[:, 0])[0], added=None)

    def pipeline(self, *, vae, unet, scheduler):
        """A StableDiffusionPipeline without safety checker or feature extractor."""
        from diffusers import StableDiffusionPipeline

        return StableDiffusionPipeline(
            vae=vae, text_encoder=self.encoders[0], tokenizer=self.tokenizers[0], unet=unet,
            scheduler=scheduler, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False)

    def prompt_embeds(self, prompts: list[str], resolution: int) -> dict[str, torch.Tensor]:
        """`prompt_embeds` and `negative_prompt_embeds` (the empty prompt's), each
        [len(prompts), 77, width]; `resolution` is unused (no size conditioning)."""
        ids = self.tokenize(prompts + [""] * len(prompts)).to(self.device)
        hidden = self.encode(ids).hidden
        n = len(prompts)
        return {"prompt_embeds": hidden[:n], "negative_prompt_embeds": hidden[n:]}


class SDXLConditioner(Conditioner):
    """SDXL: CLIP-L ("clip_l", 768) and OpenCLIP-bigG with projection ("clip_g", 1280).

    Conditioning as diffusers' StableDiffusionXLPipeline.encode_prompt builds it (diffusers
    v0.30, pipeline_stable_diffusion_xl.py): `hidden_states[-2]` of both encoders,
    concatenated; `text_embeds` = bigG's text projection of its final-norm hidden state at
    the EOS token. That pipeline takes transformers' own pooled output instead, which, with
    SDXL's legacy `eos_token_id: 2` config, pools at `argmax(input_ids)`: the placeholder
    token, since added tokens get the highest ids (transformers#21029, diffusers#10754). So
    the EOS position is found here, as the first `<|endoftext|>` of each row.
    """

    def __init__(self, tokenizers: list, encoders: list, *,
                 force_zeros_for_empty_prompt: bool = True):
        super().__init__(tokenizers, encoders, ["clip_l", "clip_g"])
        self.family = "sdxl"
        self.force_zeros_for_empty_prompt = force_zeros_for_empty_prompt
        # SDXL's tokenizer_2 pads with "!" (id 0), as do A1111, ComfyUI and the SDXL reference
        # (Stability's generative-models open_clip tokenizer): folders converted with another
        # pad token would otherwise condition on different padding than the model saw.
        self.tokenizers[1].pad_token = "!"
        self.eos_id = int(self.tokenizers[1].eos_token_id)

    def time_ids(self, batch_size: int, resolution: int) -> torch.Tensor:
        """[B, 6] float32: original (h, w), crop (top, left), target (h, w) (SDXL paper,
        sec. 2.2). Original = target = the training size and crop = (0, 0): what a user's
        prompt at that size sends at inference (diffusers' defaults), so the embedding does
        not learn a "small, cropped photo" condition."""
        row = torch.tensor([resolution, resolution, 0, 0, resolution, resolution],
                           dtype=torch.float32)
        return row.repeat(batch_size, 1)

    def pooled_at_eos(self, input_ids: torch.Tensor, last_hidden: torch.Tensor) -> torch.Tensor:
        """bigG's projected pooled output [B, 1280], read at each row's first EOS token."""
        eos = (input_ids == self.eos_id).int().argmax(dim=-1)
        pooled = last_hidden[torch.arange(last_hidden.shape[0], device=last_hidden.device), eos]
        return self.encoders[1].text_projection(pooled)

    def encode(self, input_ids: torch.Tensor,
               time_ids: torch.Tensor | None = None) -> Conditioning:
        """Both encoders' penultimate hidden states concatenated, [B, 77, 2048], plus
        `text_embeds` [B, 1280] (pooled at EOS) and `time_ids` [B, 6]. ValueError without
        `time_ids`."""
        if time_ids is None:
            raise ValueError("SDXL conditioning needs time_ids (Conditioner.time_ids)")
        first = self.encoders[0](input_ids[:, 0], output_hidden_states=True)
        ids_2 = input_ids[:, 1]
        second = self.encoders[1](ids_2, output_hidden_states=True)
        hidden = torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1)
        pooled = self.pooled_at_eos(ids_2, second.last_hidden_state)
        return Conditioning(hidden=hidden, added={"text_embeds": pooled,
                                                  "time_ids": time_ids.to(hidden.device)})

    def pipeline(self, *, vae, unet, scheduler):
        """A StableDiffusionXLPipeline without the invisible watermarker."""
        from diffusers import StableDiffusionXLPipeline

        return StableDiffusionXLPipeline(
            vae=vae, text_encoder=self.encoders[0], text_encoder_2=self.encoders[1],
            tokenizer=self.tokenizers[0], tokenizer_2=self.tokenizers[1], unet=unet,
            scheduler=scheduler,
            force_zeros_for_empty_prompt=self.force_zeros_for_empty_prompt,
            add_watermarker=False)

    def prompt_embeds(self, prompts: list[str], resolution: int) -> dict[str, torch.Tensor]:
        """`prompt_embeds` [n, 77, 2048] and `pooled_prompt_embeds` [n, 1280] at `resolution`;
        the negative pair (the empty prompt's) only when the model does not force zeros for
        an empty prompt."""
        n = len(prompts)
        texts = prompts if self.force_zeros_for_empty_prompt else prompts + [""] * n
        ids = self.tokenize(texts).to(self.device)
        cond = self.encode(ids, self.time_ids(len(texts), resolution))
        out = {"prompt_embeds": cond.hidden[:n],
               "pooled_prompt_embeds": cond.added["text_embeds"][:n]}
        if not self.force_zeros_for_empty_prompt:
            out |= {"negative_prompt_embeds": cond.hidden[n:],
                    "negative_pooled_prompt_embeds": cond.added["text_embeds"][n:]}
        # Otherwise the pipeline's own zeros are the negative conditioning, as in the reference.
        return out


def make_conditioner(tokenizers: list, encoders: list, *,
                     force_zeros_for_empty_prompt: bool = True) -> Conditioner:
    """The conditioner for a model with these tokenizers and text encoders, by their count:
    one encoder is SD 1.x/2.x, two (CLIP-L, then bigG with projection) are SDXL. ConfigError
    (field model) for any other count."""
    if len(encoders) == 1:
        return ClipConditioner(tokenizers[0], encoders[0])
    if len(encoders) == 2:
        return SDXLConditioner(tokenizers, encoders,
                               force_zeros_for_empty_prompt=force_zeros_for_empty_prompt)
    raise ConfigError(f"A model with {len(encoders)} text encoders is not supported; use an "
                      "SD 1.x, SD 2.x or SDXL model.", field="model")
