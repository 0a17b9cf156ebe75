"""Is a trained vector still usable? "Finite" is not enough.

One update at an absurd learning rate (`--learning_rate 1e30`) moves the trained rows to
~1e30 while the loss of that update is still finite. Such rows are finite, so a NaN check keeps
them, but every prompt that holds them encodes to NaN: CLIP's first LayerNorm squares them
(1e60 overflows float32), and fp16 inference overflows from 65504 on. A resume from them fails
at once.

The rule, computed once per run from the frozen token table (the vocabulary the vectors must
live beside): a trained row is usable while

- every value is finite and within fp16's range (|x| <= 65504, `torch.finfo(torch.float16)`),
  because diffusers and InvokeAI commonly run the text encoder in fp16, and
- its L2 norm is at most `NORM_FACTOR` times the largest row norm of the vocabulary. Word
  embeddings of CLIP ViT-L/14 have norms of about 0.2-0.6 (SD 1.x; OpenCLIP-H similar); an
  embedding trained at sane rates stays within a few times that, while a diverged one is
  orders of magnitude out. The factor leaves ample room for strong embeddings.

With several text encoders (SDXL: one [n, 768 + 1280] parameter, split per encoder), each
part is measured against its own encoder's vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

NORM_FACTOR = 100.0
"""How far beyond the vocabulary's largest row norm a trained row may go."""

FP16_MAX = float(torch.finfo(torch.float16).max)
"""65504: the largest value fp16 inference can hold."""


@dataclass(frozen=True)
class VocabularyRange:
    """The largest row norm of each encoder's frozen token table, and each table's width.

    `widths[i]` is the token dimension of encoder i (768 for SD 1.x, 1024 for SD 2.x,
    768 and 1280 for SDXL); trained vectors are [n, sum(widths)].
    """

    widths: tuple[int, ...]
    """Token dimension of each encoder's table, in encoder order."""
    max_norms: tuple[float, ...]
    """Largest finite L2 row norm of each table (1.0 for a table with none)."""

    @classmethod
    def from_tables(cls, tables: Sequence[torch.Tensor]) -> VocabularyRange:
        """Measure frozen tables, each [vocab, width] (the vocabulary rows only)."""
        norms = []
        for table in tables:
            with torch.no_grad():
                row_norms = table.detach().float().norm(dim=1)
                finite = row_norms[torch.isfinite(row_norms)]
                norms.append(float(finite.max()) if finite.numel() else 1.0)
        return cls(widths=tuple(int(t.shape[1]) for t in tables), max_norms=tuple(norms))

    def limits(self) -> tuple[float, ...]:
        """The largest usable row norm of each part."""
        return tuple(NORM_FACTOR * n for n in self.max_norms)

    def split(self, vectors: torch.Tensor) -> list[torch.Tensor]:
        """[n, sum(widths)] -> one [n, width] part per encoder."""
        if len(self.widths) == 1 or vectors.shape[-1] != sum(self.widths):
            return [vectors]
        return list(torch.split(vectors, list(self.widths), dim=-1))

    def problem(self, vectors: torch.Tensor) -> str | None:
        """Why `vectors` ([n, sum(widths)]) are not usable, as a clause, or None if they are.

        The clause reads after "the trained vectors ...", e.g. "have a row of norm 3.2e+31,
        more than 100 times the largest word of the vocabulary (0.61)".
        """
        with torch.no_grad():
            values = vectors.detach().float()
            if not bool(torch.isfinite(values).all()):
                return "hold NaN or infinite values"
            largest = float(values.abs().max()) if values.numel() else 0.0
            if largest > FP16_MAX:
                return (f"hold a value of {largest:.3g}, beyond the {FP16_MAX:g} that fp16 "
                        "inference can represent")
            parts = self.split(values)
            for part, vocab_max, limit in zip(parts, self.max_norms, self.limits()):
                norm = float(part.norm(dim=-1).max()) if part.numel() else 0.0
                if norm > limit:
                    return (f"have a row of norm {norm:.3g}, more than {NORM_FACTOR:g} times "
                            f"the largest word of the vocabulary ({vocab_max:.3g})")
        return None


def frozen_tables(text_encoders: Sequence[torch.nn.Module]) -> list[torch.Tensor]:
    """The vocabulary rows of each text encoder's input table, [vocab, width] each, without
    the new tokens.

    A SplicedEmbedding (trainer.embeddings) keeps the frozen table as `.base` and the new
    tokens from `.first_id` on; the rows past that are placeholders and are left out.
    """
    tables = []
    for encoder in text_encoders:
        embedding = encoder.get_input_embeddings()
        base = getattr(embedding, "base", embedding)
        first_new = getattr(embedding, "first_id", None)
        weight = base.weight
        tables.append(weight[:first_new] if first_new is not None else weight)
    return tables


def advice(rate: float, lr_scale: float) -> str:
    """What to change after a divergence at learning rate `rate` (after --scale_lr).

    AdamW moves each value by about the learning rate per update whatever the gradient, so
    the rate is the setting that applies (gradient clipping would not bound the step).
    """
    scaled = ""
    if lr_scale != 1.0:
        scaled = (f"; --scale_lr multiplied your rate by batch x accumulation x processes = "
                  f"{lr_scale:g}, which --no_scale_lr turns off")
    return (f"Lower --learning_rate (this update used {rate:.3g}{scaled}), then resume with "
            "--resume_from_checkpoint latest.")
