"""The new word: placeholder tokens, their starting vectors, and the embedding files.

Only the placeholder rows ever change. Rather than giving AdamW the whole 49408-row table and
restoring the other rows after every step (diffusers' way), the text encoder's token table is
wrapped in `SplicedEmbedding`: the frozen table plus a small trainable [n, dim] parameter that
replaces the rows of the new tokens. Gradients, optimizer state and checkpoints then hold only
those n rows.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from trainer import fsutil
from trainer.errors import ConfigError, ResumeError

SAFETENSORS_NAME = "learned_embeds.safetensors"
BIN_NAME = "learned_embeds.bin"


@dataclass(frozen=True)
class Placeholder:
    """The tokens added to the tokenizer for one trigger."""

    trigger: str
    """The trigger as typed in prompts, e.g. "<my-cat>"."""
    tokens: list[str]
    """"<my-cat>", "<my-cat>_1", ... as diffusers names extra vectors."""
    ids: list[int]

    @property
    def prompt_text(self) -> str:
        """What the trigger expands to inside training captions: every vector, in order."""
        return " ".join(self.tokens)


def token_names(trigger: str, num_vectors: int) -> list[str]:
    return [trigger] + [f"{trigger}_{i}" for i in range(1, num_vectors)]


def is_known_word(tokenizer, word: str) -> bool:
    """True when `word` is already one token of the vocabulary (with or without `</w>`)."""
    vocab = tokenizer.get_vocab()
    return word in vocab or f"{word}</w>" in vocab or word.lower() + "</w>" in vocab


def check_trigger(tokenizer, trigger: str) -> None:
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
        low, high = 512, len(tokenizer.get_vocab()) - 2
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
        # Some callers read `.weight` (e.g. to learn the dtype); give them the frozen table.
        return self.base.weight

    @property
    def rows(self) -> torch.Tensor:
        """This table's trained rows, [n, embedding_dim] (a view of `vectors`)."""
        return self.vectors[:, self.columns]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
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


# --- files -------------------------------------------------------------------------------

def save_embedding(folder: Path, trigger: str, vectors: torch.Tensor, *, step: int,
                   model_name: str, stem: str = "learned_embeds", a1111: bool = False) -> list[Path]:
    """Write the embedding in every format asked for; returns the paths written.

    - `<stem>.safetensors`: diffusers layout {trigger: [n, dim]}.
    - `<stem>.bin`: torch {trigger: tensor}; one vector is 1-D, as InvokeAI writes it.
    - `<trigger>.pt` (a1111): A1111's dict with string_to_param, name, step, checkpoint name.
    """
    vectors = vectors.detach().to("cpu", torch.float32).contiguous()
    if not torch.isfinite(vectors).all():
        raise ValueError("refusing to save an embedding that holds NaN or inf")
    folder.mkdir(parents=True, exist_ok=True)
    # Serialised in memory (a few KB), then written by fsutil: a full disk is then an OSError
    # with its errno, never a library's own exception type, and never a torn file.
    written = []
    target = folder / f"{stem}.safetensors"
    fsutil.atomic_write_bytes(target, safetensors_bytes({trigger: vectors.clone()},
                                                        metadata={"format": "pt"}))
    written.append(target)
    target = folder / f"{stem}.bin"
    single = vectors[0].clone() if vectors.shape[0] == 1 else vectors.clone()
    fsutil.atomic_write_bytes(target, torch_bytes({trigger: single}))
    written.append(target)
    if a1111:
        name = trigger.strip("<>")
        suffix = "" if stem == "learned_embeds" else stem.removeprefix("learned_embeds")
        target = folder / f"{name}{suffix}.pt"
        payload = {"string_to_token": {"*": 265}, "string_to_param": {"*": vectors.clone()},
                   "name": name, "step": step, "sd_checkpoint": None,
                   "sd_checkpoint_name": model_name}
        fsutil.atomic_write_bytes(target, torch_bytes(payload))
        written.append(target)
    return written


def torch_bytes(obj) -> bytes:
    """`torch.save(obj)` into memory."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def load_embedding(path: str | os.PathLike[str]) -> tuple[str | None, torch.Tensor]:
    """Read an embedding file of any common layout -> (name or None, tensor [n, dim]).

    Only safetensors or `torch.load(weights_only=True)`: a pickle that would run code is
    refused, never executed.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise ResumeError(f"Initial embedding {path} is a folder; pass the embedding file "
                          "inside it (.safetensors, .bin or .pt).", field="initial_embedding")
    if not path.is_file():
        raise ResumeError(f"Initial embedding {path} does not exist; pass a .safetensors, "
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
                          "InvokeAI, A1111 or kohya layouts); pass a textual-inversion "
                          "embedding file.", field="initial_embedding")
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


def _pick_tensor(data) -> tuple[str | None, torch.Tensor | None]:
    if isinstance(data, torch.Tensor):
        return None, data
    if not isinstance(data, dict):
        return None, None
    if "string_to_param" in data:  # A1111
        params = data["string_to_param"]
        tensor = next(iter(params.values()), None) if isinstance(params, dict) else None
        return data.get("name"), tensor
    if "emb_params" in data:  # kohya
        return None, data["emb_params"]
    tensors = [(k, v) for k, v in data.items() if isinstance(v, torch.Tensor)]
    return (tensors[0][0], tensors[0][1]) if len(tensors) == 1 else (None, None)


def check_dimension(vectors: torch.Tensor, token_dim: int, source: str) -> None:
    """Refuse an embedding from another model family, in InvokeAI's words."""
    if vectors.shape[-1] != token_dim:
        raise ResumeError(f"{source} was trained on a model with token dimension "
                          f"{vectors.shape[-1]}, but the current model has token dimension "
                          f"{token_dim}; pass an embedding made for this model family "
                          "(768: SD 1.x, 1024: SD 2.x).", field="initial_embedding")
