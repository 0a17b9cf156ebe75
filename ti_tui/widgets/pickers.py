"""Two composite form controls: the model picker and the resolution picker.

The model picker lists every model trainer.discovery finds (InvokeAI roots of every layout,
A1111/Forge and ComfyUI checkpoint folders) with family, format, size and source.

Each is a small container of stock widgets that posts one `Changed` message carrying its
value, so the form treats it like any other control.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Select

from ti_tui.widgets.choice_set import ChoiceSet

OTHER = "other path..."
"""The model choice that reveals a path input."""


class ModelPicker(Vertical):
    """A select of the models found under the root, plus "other path..." and a path input."""

    DEFAULT_CSS = """
    ModelPicker { height: auto; width: 1fr; }
    ModelPicker > Input { display: none; }
    ModelPicker.-other > Input { display: block; }
    """

    @dataclass
    class Changed(Message):
        picker: ModelPicker
        value: str
        """The model as TrainConfig.model takes it: a folder path, or "" for none yet."""

        @property
        def control(self) -> ModelPicker:
            return self.picker

    def __init__(self, models: Sequence, value: str = "") -> None:
        """`models` are trainer.discovery.ModelEntry objects, or (name, path) pairs; `value`
        is a path or name to start on. An entry's family, format, size and source show
        beside its name; one ti-tui cannot train on says so, and choosing it shows why."""
        super().__init__(id="model-picker")
        self.models = [(m.name, m.path) if hasattr(m, "name") else (m[0], Path(m[1]))
                       for m in models]
        self.labels = [model_label(m) if hasattr(m, "name") else m[0] for m in models]
        self._start_choice, self._start_path = self._match(value)

    def _match(self, value: str) -> tuple[str, str]:
        """(select value, other path) that show `value`."""
        if value:
            target = Path(value).expanduser()
            for name, path in self.models:
                if value in (name, name.rsplit("/", 1)[-1]) or (target.exists() and _same(target, path)):
                    return str(path), ""
            if target.exists():
                return OTHER, value
        if self.models:
            return str(self.models[0][1]), ""
        return OTHER, ""  # a saved name that is gone: start from an empty path

    def compose(self) -> ComposeResult:
        options = [(label, str(path)) for label, (_, path) in zip(self.labels, self.models)]
        options.append((OTHER, OTHER))
        yield Select(options, value=self._start_choice, allow_blank=False, compact=True,
                     id="model-select")
        yield Input(self._start_path, placeholder="a diffusers folder, .safetensors or .ckpt",
                    compact=True, id="model-path")

    def on_mount(self) -> None:
        self.set_class(self._start_choice == OTHER, "-other")

    @property
    def select(self) -> Select:
        """The drop-down of found models, plus the "other" entry."""
        return self.query_one(Select)

    @property
    def path_input(self) -> Input:
        """The path typed when "other" is chosen."""
        return self.query_one(Input)

    @property
    def value(self) -> str:
        """The chosen model's path, or the typed path (stripped) under "other"."""
        choice = self.select.value
        if choice == OTHER:
            return self.path_input.value.strip()
        return choice if isinstance(choice, str) else ""

    @on(Select.Changed)
    def _choice_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.set_class(event.value == OTHER, "-other")
        self.post_message(self.Changed(self, self.value))

    @on(Input.Changed)
    def _path_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self, self.value))

    @on(Input.Submitted)
    def _path_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.screen.focus_next()


def model_label(entry) -> str:
    """One select line for a trainer.discovery.ModelEntry: name, family, format, size, and
    where it was found; or why it cannot be trained on."""
    from trainer.discovery import SOURCES, size_text

    where = SOURCES.get(entry.source, entry.source)
    if entry.problem:
        return f"{entry.name}  (unsupported: {entry.problem.split(';')[0][:60]})"
    family = entry.family or "?"
    return f"{entry.name}  {family} · {entry.format} · {size_text(entry.size)} · {where}"


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


STANDARD_SIZES = ("512", "768", "1024")
CUSTOM = "custom"


class ResolutionPicker(Horizontal):
    """512 / 768 / 1024 / custom; custom reveals an input. Follows the model's native size."""

    DEFAULT_CSS = """
    ResolutionPicker { height: 1; width: 1fr; }
    ResolutionPicker > ChoiceSet { width: auto; }
    ResolutionPicker > Input { width: 8; display: none; }
    ResolutionPicker.-custom > Input { display: block; }
    """

    @dataclass
    class Changed(Message):
        picker: ResolutionPicker
        value: str
        """Pixels as typed ("" while the custom input is empty)."""

        @property
        def control(self) -> ResolutionPicker:
            return self.picker

    def __init__(self, value: int | None, native: int | None) -> None:
        super().__init__(id="resolution-picker")
        self.native = native
        """The selected model's native size, when known."""
        self.follows_model: bool | None = True if value is None else None
        """True until the user picks a size: then a new model does not change it. None until
        the first model is known: a saved size equal to its native size follows it."""
        start = value or native or 512
        self._start = str(start)

    def compose(self) -> ComposeResult:
        choice = self._start if self._start in STANDARD_SIZES else CUSTOM
        yield ChoiceSet([(s, s) for s in STANDARD_SIZES] + [("custom", CUSTOM)], choice,
                        id="resolution-choice")
        yield Input(self._start if choice == CUSTOM else "", type="integer", compact=True,
                    placeholder="px", id="resolution-custom")

    def on_mount(self) -> None:
        self.set_class(self.choice.value == CUSTOM, "-custom")

    @property
    def choice(self) -> ChoiceSet:
        """The standard sizes plus "custom"."""
        return self.query_one(ChoiceSet)

    @property
    def custom_input(self) -> Input:
        """The pixel size typed when "custom" is chosen."""
        return self.query_one(Input)

    @property
    def value(self) -> str:
        """The resolution in pixels as text: a standard size, or the typed one (stripped)."""
        choice = self.choice.value
        return self.custom_input.value.strip() if choice == CUSTOM else choice

    def set_native(self, native: int | None) -> None:
        """A new model was chosen: mark its size, and switch to it unless the user chose one."""
        self.native = native
        if self.follows_model is None and native:
            self.follows_model = self.value == str(native)
        if self.follows_model and native:
            self._show(str(native))

    def _show(self, size: str) -> None:
        if size in STANDARD_SIZES:
            self.choice.value = size
        else:
            self.choice.value = CUSTOM
            self.custom_input.value = size
        self.set_class(self.choice.value == CUSTOM, "-custom")

    @on(ChoiceSet.Changed)
    def _choice_changed(self, event: ChoiceSet.Changed) -> None:
        event.stop()
        custom = self.choice.value == CUSTOM
        self.set_class(custom, "-custom")
        if self.screen.focused is self.choice:
            self.follows_model = False
        if custom and not self.custom_input.value and self.native:
            self.custom_input.value = str(self.native)
        self.post_message(self.Changed(self, self.value))

    @on(Input.Changed)
    def _custom_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self.screen.focused is self.custom_input:
            self.follows_model = False
        self.post_message(self.Changed(self, self.value))

    @on(Input.Submitted)
    def _custom_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.screen.focus_next()
