"""The form's chosen model: checked when picked, its tokenizer loaded once per folder.

Picking a model checks its folder or file at once (JSON and headers only: trainer.models.
check_model); a model the list shows as unsupported (SD3, Flux, a refiner) is refused with its
reason. The tokenizer, which the trigger and initializer checks need, takes about a second to
load, so a worker thread loads it and posts `TokenizerLoaded`; tokenizers are kept per model
folder, so switching back costs nothing. `TrainingForm` mixes this in (ti_tui/screens/form.py).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from textual import work
from textual.message import Message

from ti_tui.screens import form_checks as checks
from trainer.errors import UserError

_TOKENIZERS: dict[str, Any] = {}
"""Loaded tokenizers by model folder: switching back to a model costs nothing."""
_TOKENIZERS_LOCK = threading.Lock()


class TokenizerLoaded(Message):
    """The worker finished loading the tokenizer of the model folder `key`."""

    def __init__(self, key: str, tokenizer: Any, problem: str | None) -> None:
        super().__init__()
        self.key = key
        self.tokenizer = tokenizer
        self.problem = problem


class ModelChoice:
    """The model half of the training form (a mixin of `TrainingForm`).

    The form provides `models`, `defaults`, `resolution_picker`, `refresh_checks`,
    `action_start` and the state this sets: `facts` (trainer.models.ModelFacts of the chosen
    model, when it checks out), `model_problem` (why it does not, one sentence), `tokenizer`,
    and the bookkeeping `_tokenizer_key` (the folder whose tokenizer the form wants),
    `_loading_key` (the one a worker is loading) and `_start_when_ready` (Start was pressed
    while it loaded).
    """

    def _model_changed(self, model: str) -> None:
        """Check the chosen folder now (JSON only) and load its tokenizer in the background."""
        from trainer.models import check_model
        from trainer.single_file import tokenizer_folder

        self.facts, self.model_problem, self.tokenizer = None, None, None
        self._tokenizer_key = None
        if not model:
            return
        same = [m for m in self.models if str(getattr(m, "path", "")) == model]
        listed = same[0] if same and all(getattr(m, "problem", None) for m in same) else None
        if listed is not None:  # SD3, Flux, a refiner...: listed, and refused with its reason
            self.model_problem = (f"{listed.name} is {listed.problem}; ti-tui trains SD 1.x, "
                                  "SD 2.x and SDXL base models and their fine-tunes.")
            return
        try:
            self.facts = check_model(Path(model), model_config=self.defaults.model_config,
                                     prediction_type=self.defaults.prediction_type)
        except UserError as exc:
            self.model_problem = str(exc)
            return
        self.resolution_picker.set_native(self.facts.native_resolution)
        key = str(Path(self.facts.path).resolve())
        self._tokenizer_key = key
        with _TOKENIZERS_LOCK:
            self.tokenizer = _TOKENIZERS.get(key)
        if self.tokenizer is None and key != self._loading_key:
            self._loading_key = key
            self._load_tokenizer(tokenizer_folder(self.facts), key)

    @work(thread=True, exclusive=True, group="tokenizer", exit_on_error=False)
    def _load_tokenizer(self, path: Path, key: str) -> None:
        from trainer.models import load_tokenizer
        from trainer.names import is_vocabulary_word

        try:
            tokenizer = load_tokenizer(path)
            import trainer.embeddings  # noqa: F401  (warm the torch import off the UI thread)
            # The derived line asks whether the trigger is a CLIP word (its file gets -ti):
            # read that vocabulary (about 0.1 s, once) here, not on the first keystroke.
            is_vocabulary_word("")
        except UserError as exc:
            self.post_message(TokenizerLoaded(key, None, str(exc)))
            return
        with _TOKENIZERS_LOCK:
            _TOKENIZERS[key] = tokenizer
        self.post_message(TokenizerLoaded(key, tokenizer, None))

    def on_tokenizer_loaded(self, message: TokenizerLoaded) -> None:
        if message.key == self._loading_key:
            self._loading_key = None
        if message.key != self._tokenizer_key:
            return  # the user has moved on to another model
        self.tokenizer = message.tokenizer
        self.model_problem = message.problem
        self.refresh_checks({checks.TOKENIZER})
        if self._start_when_ready:
            self._start_when_ready = False
            self.action_start()

    @property
    def tokenizer_pending(self) -> bool:
        """Whether the chosen model passed its checks and its tokenizer is still loading
        (trigger and initializer checks wait for it)."""
        return self._tokenizer_key is not None and self.tokenizer is None \
            and self.model_problem is None
