"""The new word: placeholder tokens, their starting vectors, and the spliced token table.

Only the placeholder rows ever change. Rather than giving AdamW the whole 49408-row table and
restoring the other rows after every step (diffusers' way), the text encoder's token table is
wrapped in `SplicedEmbedding`: the frozen table plus a small trainable [n, dim] parameter that
replaces the rows of the new tokens. Gradients, optimizer state and checkpoints then hold only
those n rows. The embedding files are trainer/formats.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trainer.errors import ConfigError


@dataclass(frozen=True)
class Placeholder:
    """The tokens added to the tokenizer for one trigger."""

    trigger: str
    """The trigger as typed in prompts, e.g. "<my-cat>"."""
    tokens: list[str]
    """"<my-cat>", "<my-cat>_1", ... as diffusers names extra vectors."""
    ids: list[int]
    """The tokens' ids in the (first) tokenizer: consecutive, one per vector."""

    @property
    def prompt_text(self) -> str:
        """What the trigger expands to inside training captions: every vector, in order."""
        return " ".join(self.tokens)


def token_names(trigger: str, num_vectors: int) -> list[str]:
    """The tokens for `num_vectors` vectors: the trigger, then "<trigger>_1"... as diffusers'
    textual_inversion.py names them."""
    return [trigger] + [f"{trigger}_{i}" for i in range(1, num_vectors)]


def is_known_word(tokenizer, word: str) -> bool:
    """True when `word` is already one token of the vocabulary (with or without `</w>`).

    Asked token by token: an unknown token maps to the unknown token's id. (`get_vocab()`
    builds a 49408-entry dict per call, 0.1-0.7 s each with transformers 5.)
    """
    unk = tokenizer.unk_token_id
    return any(form == tokenizer.unk_token or tokenizer.convert_tokens_to_ids(form) != unk
               for form in (word, f"{word}</w>", word.lower() + "</w>"))


def check_trigger(tokenizer, trigger: str) -> None:
    """ConfigError (field placeholder_token) when the trigger is already one token of the
    tokenizer's vocabulary: training would overwrite a word the model uses."""
    if is_known_word(tokenizer, trigger):
        bare = trigger.strip("<>")
        raise ConfigError(f"Trigger term {trigger!r} is already a word the model knows; use a "
                          f"new form such as <{bare}-ti> or <my-{bare}>.",
                          field="placeholder_token")


def initializer_ids(tokenizer, initializer: str, num_vectors: int, seed: int) -> list[int]:
    """The vocabulary ids each vector starts from.

    One token is copied to every vector (diffusers); exactly `num_vectors` tokens give one each
    (A1111 spreads init text over the vectors); "random" draws a random ordinary token (DVAR
    paper, Table 2). Anything else is refused, naming the tokens it splits into.
    """
    if initializer.strip().lower() == "random":
        generator = torch.Generator().manual_seed(seed)
        # Skip the 512 byte-level symbols and the two special tokens at the end.
        low, high = 512, len(tokenizer) - 2  # len() counts what get_vocab() holds
        return [int(torch.randint(low, high, (1,), generator=generator))] * num_vectors
    ids = tokenizer.encode(initializer, add_special_tokens=False)
    if len(ids) == 1:
        return ids * num_vectors
    if len(ids) == num_vectors:
        return list(ids)
    pieces = ", ".join(repr(t.replace("</w>", "")) for t in tokenizer.convert_ids_to_tokens(ids))
    want = "one token" if num_vectors == 1 else f"one token or exactly {num_vectors} tokens"
    raise ConfigError(f"Initializer {initializer!r} splits into {len(ids)} tokens ({pieces}), "
                      f"but it must be {want}: pick a single word such as 'cat' or 'painting'.",
                      field="initializer_token")


def add_placeholder(tokenizer, trigger: str, num_vectors: int) -> Placeholder:
    """Add the trigger's `num_vectors` tokens to `tokenizer` (consecutive new ids).

    Raises ConfigError (field placeholder_token) when the trigger is a known word, a token
    name clashes with an existing one, or the new ids are not consecutive (SplicedEmbedding
    maps every id from the first one on to a trained row).
    """
    check_trigger(tokenizer, trigger)
    names = token_names(trigger, num_vectors)
    added = tokenizer.add_tokens(names)
    if added != num_vectors:
        raise ConfigError(f"Trigger term {trigger!r} clashes with tokens already in the "
                          "tokenizer; pick another name.", field="placeholder_token")
    ids = tokenizer.convert_tokens_to_ids(names)
    if ids != list(range(ids[0], ids[0] + num_vectors)):
        raise ConfigError(f"Tokens for {trigger!r} did not get consecutive ids; pick another "
                          "name.", field="placeholder_token")
    return Placeholder(trigger=trigger, tokens=names, ids=ids)


class SplicedEmbedding(nn.Module):
    """A frozen token table whose rows from `first_id` on come from a trainable parameter.

    `vectors` is either a tensor (copied into a new fp32 parameter) or an existing
    `nn.Parameter` shared with other tables: SDXL trains one [n, 768 + 1280] parameter, and
    each encoder's table reads its own `columns` of it (trainer/conditioner.py), so the
    optimizer, checkpoints and the all-reduce see one tensor whatever the model family.
    """

    def __init__(self, base: nn.Embedding, first_id: int, vectors: torch.Tensor,
                 columns: slice | None = None):
        super().__init__()
        self.base = base
        self.first_id = first_id
        if not isinstance(vectors, nn.Parameter):
            vectors = nn.Parameter(vectors.detach().clone().float())
        self.vectors = vectors
        self.columns = columns if columns is not None else slice(None)
        self.embedding_dim = base.embedding_dim
        self.num_embeddings = base.num_embeddings
        if self.rows.shape[1] != self.embedding_dim:
            raise ValueError(f"spliced rows are {self.rows.shape[1]} wide, the table "
                             f"{self.embedding_dim}")

    @property
    def weight(self) -> torch.Tensor:
        """The frozen base table [num_embeddings, embedding_dim] (not the trained rows)."""
        # Some callers read `.weight` (e.g. to learn the dtype); give them the frozen table.
        return self.base.weight

    @property
    def rows(self) -> torch.Tensor:
        """This table's trained rows, [n, embedding_dim] (a view of `vectors`)."""
        return self.vectors[:, self.columns]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token ids [B, 77] -> embeddings [B, 77, embedding_dim] in the table's dtype; ids
        from `first_id` on read the trained rows (gradients flow into `vectors`)."""
        frozen = self.base(input_ids)
        is_new = input_ids >= self.first_id
        # No "any new token?" shortcut: reading that bool would make the host wait for the GPU
        # at every forward; a row gather and a select over 77 tokens cost next to nothing.
        new = self.rows[(input_ids - self.first_id).clamp(min=0)].to(frozen.dtype)
        return torch.where(is_new.unsqueeze(-1), new, frozen)


def splice_into(text_encoder, tokenizer, placeholder: Placeholder,
                start_vectors: torch.Tensor, columns: slice | None = None,
                first_id: int | None = None) -> SplicedEmbedding:
    """Grow the text encoder's table for the new tokens and splice in the trainable rows.

    `first_id` is the id of the first new token in `tokenizer` (default: the placeholder's);
    `start_vectors` and `columns` are passed to SplicedEmbedding.
    """
    # The new rows are replaced by the spliced parameter, so their initial values do not matter.
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    base = text_encoder.get_input_embeddings()
    base.weight.requires_grad_(False)
    first = placeholder.ids[0] if first_id is None else first_id
    spliced = SplicedEmbedding(base, first, start_vectors, columns)
    text_encoder.set_input_embeddings(spliced)
    return spliced


def unsplice(text_encoder, spliced: SplicedEmbedding) -> None:
    """Write the learned rows into the plain table and put it back (for saving a pipeline)."""
    with torch.no_grad():
        rows = spliced.rows
        spliced.base.weight[spliced.first_id:spliced.first_id + rows.shape[0]] = rows.to(
            spliced.base.weight.dtype)
    text_encoder.set_input_embeddings(spliced.base)
