"""TrainConfig: the one description of a training run.

The `ti-tui train` flags (trainer/flags.py), the Textual form and the trainer all read this
dataclass. Each field carries its help text, label, limits and invokeai-ti flag aliases in
`field(metadata=...)`, so nothing is written twice. `__post_init__` checks every value that
can be checked without touching the disk; trainer/preflight.py checks paths, images and the
model. The checks that span fields are a table of rules (trainer/config_rules.py) that the
setup form runs field by field. The config round-trips through OUTPUT_DIR/run.toml.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from trainer import config_rules, dvar_advice, rate_schedule
from trainer.devices import default_device
from trainer.errors import ConfigError
from trainer.fields import coerce, opt

PRECISIONS = ("no", "fp16", "bf16")
VAE_PRECISIONS = ("fp32", "fp16", "bf16")
PROPERTIES = ("object", "style")
OPTIMIZERS = ("adamw", "sam")
CLIP_MODES = ("none", "value", "norm")
EARLY_STOPPING = ("dvar", "none")
PREDICTION_TYPES = ("epsilon", "v_prediction")
MAX_CONFIG_BYTES = 1 << 20
"""The largest --config file read: a run.toml is a few KB; a model file passed by mistake is
GBs that would all be read before being found not to be TOML."""
SAVE_AS = ("diffusers", "a1111", "diffusers_sdxl")
"""Extra embedding formats beside the standard files (trainer/formats.py registers them);
"diffusers", the default, adds none (its files are among the standard ones)."""


def default_root() -> str:
    """The InvokeAI root, as invokeai-ti finds it: $INVOKEAI_ROOT, else ~/invokeai."""
    return os.environ.get("INVOKEAI_ROOT") or str(Path("~/invokeai").expanduser())


@dataclass
class TrainConfig:
    """Everything a run needs. Defaults follow invokeai-ti unless a comment says why not."""

    # --- model and paths -------------------------------------------------------------
    model: str = opt("stable-diffusion-1.5", "A diffusers model folder, or a model name found "
                     "under --root (see `ti-tui models`).", label="Model", group="model")
    """Path or name of the base model; resolved by trainer.models.resolve_model."""
    root: str = opt(None, "The InvokeAI root: models, training data and outputs live here "
                    "(default $INVOKEAI_ROOT, else ~/invokeai).", label="Root", group="model",
                    flags=("--root_dir",), factory=default_root)
    """Where models are looked up and where the final embedding is copied to."""
    revision: str | None = opt(None, "Accepted for invokeai-ti compatibility; local folders "
                               "have no revisions.", label="Revision", group="model",
                               accepted_only=True)
    variant: str | None = opt(None, "Accepted for diffusers compatibility; the weights found in "
                              "the folder are used (plain ones, else a variant's such as "
                              "model.fp16.safetensors).", label="Variant", group="model",
                              accepted_only=True)
    tokenizer_name: str | None = opt(None, "A tokenizer folder to use instead of the model's "
                                     "own.", label="Tokenizer", group="model")
    model_config: str | None = opt(None, "For a single-file checkpoint: a diffusers folder "
                                   "whose JSON configs describe it (fine-tunes with unusual "
                                   "shapes); default: the config shipped for its family.",
                                   label="Model config", group="model")
    prediction_type: str | None = opt(None, "What the model predicts: epsilon or v_prediction "
                                      "(default: its scheduler config; for an SD 2.x single "
                                      "file, a guess from its weights, with a warning).",
                                      label="Prediction type", group="model",
                                      choices=PREDICTION_TYPES)
    models_dir: str | None = opt(None, "A folder of single-file checkpoints (A1111/Forge "
                                 "models/Stable-diffusion, ComfyUI models/checkpoints) whose "
                                 "models `ti-tui models` lists and --model names; repeat the "
                                 f"flag (or join folders with '{os.pathsep}') for several.",
                                 label="Checkpoint folders", group="model", repeatable=True)
    train_data_dir: str = opt("", "Folder of training images (PNG, JPEG, WebP, GIF, BMP).",
                              label="Data directory", group="data")
    output_dir: str = opt("", "Where run.toml, events.jsonl, checkpoints and embeddings go "
                          "(relative paths are under --root; default "
                          "ROOT/text-inversion-output/<trigger>).", label="Output directory",
                          group="output")

    # --- the new word -----------------------------------------------------------------
    placeholder_token: str = opt("", "The trigger term to learn, e.g. <my-cat> (wrapped in <> "
                                 "if you leave them out).", label="Trigger term",
                                 group="token", flags=("--trigger_term",))
    initializer_token: str = opt("*", "A word to start from: one token for all vectors, or "
                                 "one token per vector; 'random' picks a random vocabulary "
                                 "token.", label="Initializer", group="token")
    num_vectors: int = opt(1, "How many embedding vectors the trigger gets (captions must "
                           "fit CLIP's 77 tokens: at most 68 for object, 66 for style).",
                           label="Number of vectors", group="token", minimum=1, maximum=75)
    learnable_property: str = opt("object", "What the images share: an object or a style "
                                  "(picks the caption templates).", label="Learnable property",
                                  group="token", choices=PROPERTIES)

    # --- data ---------------------------------------------------------------------------
    resolution: int | None = opt(None, "Training size in pixels, a multiple of 8 (default: "
                                 "the model's native size, 512 for SD 1.5).",
                                 label="Resolution", group="data", minimum=8, maximum=4096)
    center_crop: bool = opt(False, "Crop the centre square before resizing.",
                            label="Center crop", group="data")
    repeats: int = opt(100, "invokeai-ti's dataset repeats: one --num_train_epochs epoch is "
                       "this many passes over the images.", label="Repeats", group="data",
                       minimum=1)
    dataloader_num_workers: int = opt(0, "Accepted for compatibility; latents are cached, so "
                                      "no loader workers are needed.", label="Loader workers",
                                      group="data", minimum=0, accepted_only=True)

    # --- run length -----------------------------------------------------------------------
    max_train_steps: int = opt(5000, "Total optimizer updates (one step = one update, "
                               "whatever the accumulation).", label="Max training steps",
                               group="training", minimum=1, maximum=10_000_000)
    num_train_epochs: int = opt(100, "Also stop after this many epochs of --repeats passes "
                                "over the images, if that comes first.",
                                label="Number of epochs", group="training", minimum=1)
    train_batch_size: int = opt(8, "Images per micro-batch on each process.",
                                label="Batch size", group="training", minimum=1)
    gradient_accumulation_steps: int = opt(1, "Micro-batches per optimizer update.",
                                           label="Gradient accumulation", group="training",
                                           minimum=1)
    seed: int | None = opt(None, "Random seed; a run with the same seed is repeatable "
                           "(default: one is drawn and recorded in run.toml).", label="Seed",
                           group="training", minimum=0)

    # --- optimisation ---------------------------------------------------------------------
    learning_rate: str = opt("5e-4", "A rate (5e-4) or an A1111 schedule such as "
                             "'0.005:100, 1e-3:1000, 1e-5'.", label="Learning rate",
                             group="optim")
    scale_lr: bool = opt(True, "Multiply the rate by batch x accumulation x processes "
                         "(--no_scale_lr turns it off).", label="Scale learning rate",
                         group="optim")
    lr_scheduler: str = opt("constant", "HF learning-rate shape applied to a plain rate.",
                            label="LR scheduler", group="optim",
                            choices=tuple(rate_schedule.HF_SCHEDULERS))
    lr_warmup_steps: int = opt(500, "Warmup updates (ignored by 'constant', as in HF).",
                               label="Warmup steps", group="optim", minimum=0)
    lr_num_cycles: float = opt(1.0, "Cycles for cosine_with_restarts.", label="LR cycles",
                               group="optim", minimum=0)
    lr_power: float = opt(1.0, "Power for the polynomial scheduler.", label="LR power",
                          group="optim", minimum=0)
    strict_schedule: bool = opt(False, "Refuse schedule strings A1111 would silently "
                                "misread (decimal comma, 3 fields, ...).",
                                label="Strict schedules", group="optim")
    optimizer: str = opt("adamw", "adamw, or sam (sharpness-aware AdamW, ~20% slower).",
                         label="Optimizer", group="optim", choices=OPTIMIZERS)
    sam_rho: float = opt(0.05, "SAM neighbourhood size.", label="SAM rho", group="optim",
                         minimum=0)
    adam_beta1: float = opt(0.9, "AdamW beta1.", label="Adam beta1", group="optim",
                            minimum=0, maximum=1)
    adam_beta2: float = opt(0.999, "AdamW beta2.", label="Adam beta2", group="optim",
                            minimum=0, maximum=1)
    # Only the new rows train, so weight decay has nothing to protect (invokeai-ti used 1e-2).
    adam_weight_decay: float = opt(0.0, "AdamW weight decay.", label="Weight decay",
                                   group="optim", minimum=0)
    adam_epsilon: float = opt(1e-8, "AdamW epsilon.", label="Adam epsilon", group="optim",
                              minimum=0)
    clip_grad_mode: str = opt("none", "Gradient clipping: none, value or norm.",
                              label="Gradient clipping", group="optim", choices=CLIP_MODES)
    clip_grad_value: str = opt("0.1", "Clip value: a number or a schedule string (the last "
                               "value is held).", label="Clip value", group="optim")

    # --- precision and speed ------------------------------------------------------------
    mixed_precision: str = opt("no", "no, fp16 or bf16 for the frozen models.",
                               label="Mixed precision", group="speed", choices=PRECISIONS)
    vae_precision: str = opt("fp32", "fp32, fp16 or bf16 for the VAE, which encodes each image "
                             "once and decodes previews; fp32 by default whatever "
                             "--mixed_precision says, because SDXL's VAE overflows in fp16.",
                             label="VAE precision", group="speed", choices=VAE_PRECISIONS)
    allow_tf32: bool = opt(False, "Allow TF32 matmuls on Ampere and newer GPUs.",
                           label="Allow TF32", group="speed")
    gradient_checkpointing: bool = opt(False, "Trade time for memory in the UNet.",
                                       label="Gradient checkpointing", group="speed")
    enable_xformers_memory_efficient_attention: bool = opt(
        False, "Accepted; PyTorch's scaled-dot-product attention is used either way.",
        label="xformers", group="speed", accepted_only=True)
    compile: bool = opt(False, "torch.compile the UNet's training forward (about a minute "
                        "to compile; for long GPU runs, slower on CPU).",
                        label="Compile", group="speed")
    device: str = opt(None, "auto (a CUDA GPU when there is one, else the CPU), cpu, cuda or "
                      "cuda:N (default: auto, or $TI_TUI_DEVICE when set).", label="Device",
                      group="speed", factory=default_device)
    num_processes: int = opt(1, "Processes/GPUs; more than 1 runs `accelerate launch`.",
                             label="Processes", group="speed", minimum=1, maximum=64)
    cpu_threads: int = opt(0, "CPU threads per trainer process (0: the cores it may use, "
                           "shared among --num_processes, fewer while other processes use "
                           "them; OMP_NUM_THREADS when set). A fixed count repeats a CPU run "
                           "bit for bit.",
                           label="CPU threads", group="speed", minimum=0, maximum=1024)
    local_rank: int = opt(-1, "Accepted for compatibility; accelerate sets the rank.",
                          label="Local rank", group="speed", accepted_only=True)

    # --- early stopping -------------------------------------------------------------------
    early_stopping: str = opt("dvar", "dvar stops when the deterministic loss stops moving; "
                              "none runs to the step limit. " + dvar_advice.help_text(),
                              label="Early stopping",
                              group="stopping", choices=EARLY_STOPPING)
    dvar_window: int = opt(282, "DVAR window N (paper v1: 282; authors' later TI setting: "
                           "310).", label="DVAR window", group="stopping", minimum=2)
    dvar_threshold: float = opt(0.39, "DVAR threshold (paper v1: 0.39; later: 0.15); stop "
                                "when the ratio falls below it.", label="DVAR threshold",
                                group="stopping")
    dvar_ddof: int = opt(0, "Variance ddof: 0 as the published code, 1 as torch.var.",
                         label="DVAR ddof", group="stopping", minimum=0, maximum=1)
    dvar_eval_batch_size: int = opt(4, "Images in the fixed evaluation batch.",
                                    label="DVAR eval batch", group="stopping", minimum=1)
    dvar_eval_every: int = opt(1, "Evaluate L_det every N updates (0 turns it off).",
                               label="DVAR eval every", group="stopping", minimum=0)
    dvar_eval_seed: int | None = opt(None, "Seed of the evaluation batch (default: --seed).",
                                     label="DVAR eval seed", group="stopping", minimum=0)

    # --- saving -------------------------------------------------------------------------
    save_steps: int = opt(500, "Save an embedding snapshot every N steps (0: never).",
                          label="Save embedding every", group="output", minimum=0)
    checkpointing_steps: int = opt(500, "Save a resumable checkpoint every N steps (0: never).",
                                   label="Checkpoint every", group="output", minimum=0)
    checkpoints_total_limit: int | None = opt(None, "Keep only the newest K checkpoints.",
                                              label="Keep checkpoints", group="output",
                                              minimum=1)
    resume_from_checkpoint: str | None = opt(None, "'latest' or a checkpoint folder to "
                                             "continue from ('latest' with none yet starts "
                                             "fresh).", label="Resume", group="output")
    initial_embedding: str | None = opt(None, "Start from this embedding file (.safetensors, "
                                        ".bin or A1111 .pt).", label="Initial embedding",
                                        group="output")
    save_as: str = opt("diffusers", "diffusers: the standard files only; a1111: also "
                       "A1111's own <trigger>.pt (SD 1.x/2.x); diffusers_sdxl: also, for SDXL, "
                       "diffusers' two-file learned_embeds(_2).safetensors.",
                       label="Also save as", group="output", choices=SAVE_AS)
    only_save_embeds: bool = opt(True, "Accepted; ti-tui writes only the embedding unless "
                                 "--save_as_full_pipeline.", label="Only save embeds",
                                 group="output")
    save_as_full_pipeline: bool = opt(False, "Also write a full diffusers pipeline holding "
                                      "the new token.", label="Save full pipeline",
                                      group="output")
    no_safe_serialization: bool = opt(False, "Accepted for diffusers compatibility; the "
                                      ".safetensors files are always written.",
                                      label="No safetensors", group="output", accepted_only=True)
    copy_to_embeddings: bool = opt(True, "Copy the final embedding to ROOT/embeddings/"
                                   "<trigger>/ for an InvokeAI 2.3/3.x root (a 4.x+ root "
                                   "installs it in its Model Manager instead).",
                                   label="Copy to embeddings", group="output")
    validation_prompt: str | None = opt(None, "Prompt for preview images (default 'a photo "
                                        "of <trigger>').", label="Preview prompt",
                                        group="output")
    validation_steps: int = opt(0, "Render a preview every N steps (0: never).",
                                label="Preview every", group="output", minimum=0)
    validation_guidance: float = opt(7.5, "Classifier-free guidance scale of the previews.",
                                     label="Preview guidance", group="output", minimum=0,
                                     maximum=30)
    num_validation_images: int = opt(1, "Images per preview.", label="Preview images",
                                     group="output", minimum=1, maximum=16)
    log_every: int = opt(10, "Plain-text progress line every N steps when not on a TTY.",
                         label="Log every", group="output", minimum=1)
    logging_dir: str = opt("logs", "Accepted for compatibility; ti-tui logs to events.jsonl.",
                           label="Logging dir", group="output", accepted_only=True)
    report_to: str = opt("tensorboard", "Accepted for compatibility; ti-tui logs to "
                         "events.jsonl.", label="Report to", group="output",
                         accepted_only=True)
    push_to_hub: bool = opt(False, "Not supported: ti-tui never uploads.", label="Push to hub",
                            group="output", accepted_only=True)
    hub_model_id: str | None = opt(None, "Accepted; unused.", label="Hub model id",
                                   group="output", accepted_only=True)
    hub_token: str | None = opt(None, "Accepted; unused.", label="Hub token", group="output",
                                accepted_only=True)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, coerce(f, getattr(self, f.name)))
        self._check()

    # --- derived values -----------------------------------------------------------------
    @property
    def trigger(self) -> str:
        """The placeholder token as it appears in prompts, always wrapped in <...>."""
        return wrap_trigger(self.placeholder_token)

    @property
    def trigger_name(self) -> str:
        """The trigger without <...>: the folder name under ROOT/embeddings."""
        return self.trigger.strip("<>")

    @property
    def output_path(self) -> Path:
        """The output dir; relative paths are under the root, as invokeai-ti does."""
        if not self.output_dir:
            return Path(self.root).expanduser() / "text-inversion-output" / self.trigger_name
        path = Path(self.output_dir).expanduser()
        return path if path.is_absolute() else Path(self.root).expanduser() / path

    @property
    def models_dirs(self) -> list[Path]:
        """The --models_dir folders, in the order given."""
        return [Path(p).expanduser() for p in (self.models_dir or "").split(os.pathsep) if p]

    @property
    def data_path(self) -> Path:
        """--train_data_dir as a Path, with `~` expanded."""
        return Path(self.train_data_dir).expanduser()

    @property
    def effective_lr_scale(self) -> float:
        """Diffusers' --scale_lr rule: batch x accumulation x processes (trainer/plan.py)."""
        from trainer import plan

        return plan.lr_scale(self.scale_lr, plan.images_per_update(
            self.train_batch_size, self.gradient_accumulation_steps, self.num_processes))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with `changes` applied; validated again, so it raises ConfigError as the
        constructor does."""
        return dataclasses.replace(self, **changes)

    # --- TOML ---------------------------------------------------------------------------
    def to_toml(self) -> str:
        """run.toml text, one table per group; None values are left out (TOML has no null)."""
        tables: dict[str, dict[str, Any]] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                tables.setdefault(f.metadata["group"], {})[f.name] = value
        return tomli_w.dumps(tables)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> TrainConfig:
        """Read a run.toml written by to_toml (or by hand: flat keys work too).

        Raises ConfigError (field config) for a missing, unreadable or invalid file, and as
        the constructor does for bad values."""
        from trainer.paths import special_kind

        kind = special_kind(path)
        if kind is not None:  # /dev/zero or a pipe: reading would never end
            raise ConfigError(f"Config file {path} is {kind}, not a file; pass the run.toml "
                              "of an earlier run.", field="config")
        try:
            size = Path(path).expanduser().stat().st_size
            if size > MAX_CONFIG_BYTES:  # a model or image passed by a slip of tab completion
                raise ConfigError(f"Config file {path} is {size / 2**20:.0f} MB, far more than "
                                  "any run.toml; pass the run.toml of an earlier run.",
                                  field="config")
            data = tomllib.loads(Path(path).expanduser().read_text(encoding="utf-8"))
        except FileNotFoundError:
            from trainer.paths import near_miss

            raise ConfigError(f"Config file {path} does not exist{near_miss(path)}; pass the "
                              "run.toml of an "
                              "earlier run.", field="config") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"Config file {path} is not valid TOML ({exc}); fix or delete "
                              "it.", field="config") from None
        except IsADirectoryError:
            raise ConfigError(f"Config file {path} is a folder; pass the run.toml inside it.",
                              field="config") from None
        except OSError as exc:  # too long, a link loop, no permission: the OS's reason
            from trainer.paths import refusal

            raise refusal("config", path, exc) from None
        return cls.from_toml_data(data, source=str(path))

    @classmethod
    def from_toml_data(cls, data: dict[str, Any], *, source: str = "config") -> TrainConfig:
        """Build from parsed run.toml data: one table per group, or flat keys."""
        flat: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, dict):
                flat.update(value)
            else:
                flat[key] = value
        return cls.from_dict(flat, source=source)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "config") -> TrainConfig:
        """Build from loose values (TOML, form strings); unknown keys are refused by name."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"{source}: unknown setting {unknown[0]!r}; see `ti-tui train "
                              "--help` for the names.", field=unknown[0])
        return cls(**values)

    # --- validation -------------------------------------------------------------------------
    def _check(self) -> None:
        # The cross-field checks are one table (trainer/config_rules.py) that the setup form
        # runs too, a rule at a time, so both say the same words.
        self.device = config_rules.normal_device(self.device)
        config_rules.raise_first(vars(self))


def wrap_trigger(token: str) -> str:
    """The trigger in angle brackets ("cat" -> "<cat>"), the diffusers examples' convention
    for a placeholder token; already bracketed or empty input is returned stripped."""
    token = token.strip()
    if not token:
        return token
    return token if token.startswith("<") and token.endswith(">") else f"<{token.strip('<>')}>"


def field_info(name: str) -> dataclasses.Field:
    """The dataclass field of TrainConfig called `name` (metadata: help, label, limits...)."""
    return {f.name: f for f in dataclasses.fields(TrainConfig)}[name]
