"""The setup form: every setting of a run on one scrolling screen, checked as the user types.

`TrainingForm` is a typed screen: it dismisses with a validated `TrainConfig` (posting's
`RequestOptions` shape: the controls are built from a config (form_fields.py), `values()` reads
them back as raw values, `to_config()` builds the dataclass). Labels, help and choices come
from the TrainConfig field metadata. Checks run on every change (form_checks.py), field by
field: an edit checks again that field's value, the TrainConfig rules that read it (trainer/
config_rules.py) and the disk or tokenizer checks that read it, and keeps every other note
(form_notes.py); opening the form, a new model and Start check everything. Start is refused
while any check fails, and focus jumps to the first problem. The chosen model is checked when
picked and its tokenizer read in a worker thread, cached per model folder (form_model.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.events import DescendantFocus
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Footer, Input, RadioSet, Select, Static

from ti_tui.screens import form_checks as checks
from ti_tui.screens.form_fields import (
    FIELDS,
    FOLLOW_TRIGGER,
    LABELS,
    TYPED_KINDS,
    control_kind,
    make_control,
    text_of,
)
from ti_tui.screens.form_model import ModelChoice
from ti_tui.screens.form_notes import FormNotes
from ti_tui.screens.key_line import FittedKeyLine
from ti_tui.widgets.derived import DerivedLine
from ti_tui.widgets.field_row import FieldRow
from ti_tui.widgets.pickers import ModelPicker, ResolutionPicker
from trainer.config import TrainConfig, wrap_trigger
from trainer.errors import UserError


def _trigger_name(trigger: str) -> str:
    """The trigger as a folder name: "<green-star>" and "green-star" are both "green-star"."""
    return trigger.strip().strip("<>").strip()


class TrainingForm(ModelChoice, FormNotes, FittedKeyLine, Screen[TrainConfig]):
    """Fill in a run; dismisses with the TrainConfig when the user starts it."""

    CSS_PATH = "../form.tcss"
    AUTO_FOCUS = "#model-select"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "start", "Start", priority=True, tooltip="start training (refused, "
                "with the first problem focused, while any is left)"),
        Binding("escape", "quit", "Quit", tooltip="quit without starting"),
        Binding("escape", "runs", "Runs",  # instead of Quit when the home screen opened it
                tooltip="back to the runs without starting"),
        Binding("ctrl+n", "app.focus_next", "Next", key_display="Tab/^N", tooltip="next field"),
        Binding("ctrl+p", "app.focus_previous", "Back", key_display="S-Tab/^P",
                tooltip="previous field"),
    ]
    HELP_TITLE = "the training form"
    HELP_KEYS = (("Tab", "next field"), ("Shift-Tab", "previous field"),
                 ("← → ↑ ↓", "move inside a choice; open a list (Enter picks, Esc closes it)"),
                 ("Space", "tick or untick a box"),
                 ("Enter", "next field; on Start training, start"))
    """F1's rows for the keys that are no binding here (ti_tui/screens/help.py)."""
    HELP_FOOT = "Every field's help shows under the form when it has focus."

    def __init__(self, *, root: Path, defaults: TrainConfig, models: list | None = None,
                 models_problem: str | None = None, problem: UserError | None = None,
                 refused: dict[str, tuple[str, str]] | None = None) -> None:
        """`models`: ModelEntry list (found under `root` when None); `problem`: an error to
        show at once (e.g. the runner refused the last attempt); `refused`: values given on
        the command line that TrainConfig refused, field -> (as typed, why): the form opens
        with each in its field (a choice field keeps its value, it cannot show another),
        marked with why, and the first focused (`ti-tui --gui --resolution 500`)."""
        super().__init__()
        self.root = Path(root).expanduser()
        """The InvokeAI root: where models were looked for and folders are suggested."""
        self.defaults = defaults
        """The config the form starts from; fields the form does not show pass through."""
        if models is None:
            models, models_problem = self._find_models()
        self.models = models
        self.models_problem = models_problem
        self.problem = problem
        self.rows: dict[str, FieldRow] = {}
        """The form's rows by TrainConfig field."""
        self.controls: dict[str, Widget] = {}
        """The control that holds each field's value."""
        self.facts: Any = None
        """trainer.models.ModelFacts of the chosen model, when it checks out."""
        self.model_problem: str | None = None
        self.tokenizer: Any = None
        self._tokenizer_key: str | None = None
        self._loading_key: str | None = None
        self.n_images: int | None = None
        self._data_note: checks.Note | None = None
        self._value_checks = checks.ValueChecks()
        """TrainConfig's checks of the form's values, kept per field between edits."""
        self._own_notes: dict[str, checks.Note | None] = {}
        """The form's own note of each field of checks.NOTE_READS, kept between edits."""
        self._touched: set[str] = set()
        self._start_tried = False
        self._start_when_ready = False
        self.refused = dict(refused or {})
        self.external: dict[str, str] = {name: why for name, (_, why) in self.refused.items()}
        """Errors found outside the form (the runner's preflight, a refused command-line
        value), by field, until edited."""
        self._auto: dict[str, str] = {}
        """The value last filled in automatically, per trigger-following folder."""
        self._follow = {name: self._follows(text_of(getattr(defaults, name)), base)
                        for name, base in FOLLOW_TRIGGER.items()}
        self._opening_trigger = _trigger_name(text_of(defaults.placeholder_token))
        self._kept = self._kept_folders(defaults)
        """Folders of the opening config kept as given while the trigger is the opening one."""

    def _find_models(self) -> tuple[list, str | None]:
        from trainer.errors import ModelError
        from trainer.models import find_models

        try:
            # Described (family, format, size): the picker shows them, and lists models
            # ti-tui cannot train on as such rather than hiding them.
            return find_models(self.root, self.defaults.models_dirs, describe_all=True), None
        except ModelError as exc:
            return [], str(exc)

    def _follows(self, value: str, base: str) -> bool:
        """Whether a folder of the opening config follows the trigger: empty, ROOT/<base> or
        a folder in it. One named otherwise than the opening trigger (a run's own green-star2,
        the demo's fresh green-star-2 beside a finished green-star, ti_tui/demo_setup.py)
        stays as given until the trigger is edited (_kept_folders). Saved preferences never
        keep the trigger: without one, their folder in ROOT/<base> follows the typed trigger,
        so the last run's folder is not offered (Resume ticked) to a new word. A folder
        elsewhere was chosen and stays."""
        if not value.strip():
            return True
        path = Path(value).expanduser()
        return path == self.root / base or path.parent == self.root / base

    def _kept_folders(self, defaults: TrainConfig) -> dict[str, str]:
        """The opening config's folders in ROOT/<base> under another name than its trigger's
        (green-star2 of <green-star>: a run's own folder when resuming, from --config, or
        after a refused start). Rebuilt from the trigger they would name another run, so
        they stay as given until the trigger is edited. Without a trigger (saved preferences
        never keep one) the folders follow the trigger the user types."""
        if not self._opening_trigger:
            return {}
        kept = {}
        for field, base in FOLLOW_TRIGGER.items():
            value = text_of(getattr(defaults, field)).strip()
            if value and self._follows(value, base) and \
                    Path(value).expanduser() != self.root / base / self._opening_trigger:
                kept[field] = value
        return kept

    # --- building ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        d = self.defaults
        yield Static(f"Textual inversion: new embedding   root {self.root}", id="form-title",
                     markup=False)
        with VerticalScroll(id="form-fields") as fields:
            fields.can_focus = False  # Tab goes from field to field, never to the container
            for name in FIELDS:
                value = getattr(d, name)
                if name in self.refused and control_kind(name) in TYPED_KINDS:
                    value = self.refused[name][0]  # as typed, so it can be fixed in place
                control = make_control(name, value, models=self.models, root=self.root)
                self.controls[name] = control
                row = FieldRow(name, control, label=LABELS.get(name))
                self.rows[name] = row
                yield row
            yield Static("", id="form-problems", markup=False)
            with Horizontal(id="form-buttons"):
                yield Button("Start training", id="start", variant="primary", compact=True)
                yield Button("Quit", id="quit", compact=True)
        yield DerivedLine("", id="derived", markup=False)
        yield Static("", id="hint", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self._fill_following(self.text("placeholder_token"))
        self._output_changed()
        self._model_changed(self.model_picker.value)
        self._dvar_toggled()
        self.refresh_checks()
        if self.problem is not None:
            self._show_problem(self.problem)
        elif self.refused:
            first = next(name for name in FIELDS if name in self.refused)
            self.rows[first].first_control.focus()
            self.notify(self.refused[first][1], title="Fix this first", severity="error")

    # --- typed accessors ------------------------------------------------------------------------

    @property
    def model_picker(self) -> ModelPicker:
        """The model row's control: the list of found models plus a path input."""
        return self.controls["model"]  # type: ignore[return-value]

    @property
    def resolution_picker(self) -> ResolutionPicker:
        """The resolution row's control: the model's native size, presets or a custom value."""
        return self.controls["resolution"]  # type: ignore[return-value]

    @property
    def derived_line(self) -> DerivedLine:
        """The line of derived facts under the form (images per update, end step...)."""
        return self.query_one(DerivedLine)

    def text(self, name: str) -> str:
        """The current value of the control for TrainConfig field `name`, as typed."""
        return self.controls[name].value  # type: ignore[attr-defined]

    # --- reading the form -------------------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        """The form's values as TrainConfig takes them (raw strings where the user types)."""
        values: dict[str, Any] = {}
        for name in FIELDS:
            value = self.controls[name].value  # type: ignore[attr-defined]
            if isinstance(value, str):
                value = value.strip()
            values[name] = value
        values["resume_from_checkpoint"] = "latest" if values["resume_from_checkpoint"] else None
        return values

    def config_values(self, values: dict[str, Any] | None = None) -> dict[str, Any]:
        """Every TrainConfig value: the defaults, overlaid with the form (`values`, read
        now when None) and the root."""
        base = {f.name: getattr(self.defaults, f.name) for f in dataclasses.fields(self.defaults)}
        return {**base, **(self.values() if values is None else values), "root": str(self.root)}

    def to_config(self) -> TrainConfig:
        """The validated config (raises ConfigError naming the field when a value is bad)."""
        values = self.config_values()
        values["placeholder_token"] = wrap_trigger(values["placeholder_token"])
        return TrainConfig.from_dict(values, source="form")

    # --- reacting to edits ------------------------------------------------------------------------

    def _field_of(self, widget: Widget) -> str | None:
        for node in widget.ancestors_with_self:
            if isinstance(node, FieldRow):
                return node.field
        return None

    def _touch(self, widget: Widget) -> str | None:
        """The field `widget` edits; marked touched when the user is on it (not a fill-in)."""
        name = self._field_of(widget)
        if name is not None and self.focused is not None and self._field_of(self.focused) == name:
            self._touched.add(name)
            self.external.pop(name, None)
        return name

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        name = self._touch(event.input)
        if name == "placeholder_token":
            # The folders that follow the trigger post their own Changed when they change,
            # which counts the images and looks for checkpoints there.
            self._fill_following(event.value)
        elif name in FOLLOW_TRIGGER:
            if name in self._touched and event.value != self._auto.get(name):
                self._follow[name] = False
            if name == "train_data_dir":
                self._data_changed()
            else:
                self._output_changed()
        self.refresh_checks(None if name is None else {name})

    @on(Input.Submitted)
    def _input_submitted(self, event: Input.Submitted) -> None:
        self.focus_next()

    @on(ModelPicker.Changed)
    def _model_picked(self, event: ModelPicker.Changed) -> None:
        self._touch(event.picker)
        self._model_changed(event.value)
        self.refresh_checks()  # a new model: its tokenizer, native size... everything again

    @on(RadioSet.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    @on(ResolutionPicker.Changed)
    def _choice_changed(self, event: Message) -> None:
        name = self._touch(event.control)  # type: ignore[attr-defined]
        self._dvar_toggled()
        self.refresh_checks(None if name is None else {name})

    def _fill_following(self, trigger: str) -> None:
        """Point the data and output folders at ROOT/<base>/<trigger> while they follow it
        (a folder that changes posts Input.Changed, handled as an edit of that folder)."""
        name = _trigger_name(trigger)
        for field, base in FOLLOW_TRIGGER.items():
            if self._follow[field]:
                value = str(self.root / base / name) if name else ""
                if field in self._kept and name == self._opening_trigger:
                    value = self._kept[field]  # the opening run's own folder
                self._auto[field] = value
                control = self.controls[field]
                if control.value != value:  # type: ignore[attr-defined]
                    control.value = value  # type: ignore[attr-defined]

    def _data_changed(self) -> None:
        self.n_images, self._data_note = checks.count_images(self.text("train_data_dir"))

    def _output_changed(self) -> None:
        """Tick Resume exactly when the output folder holds a real checkpoint."""
        has_checkpoint = checks.latest_checkpoint(self.text("output_dir")) is not None \
            if self.text("output_dir").strip() else False
        self.controls["resume_from_checkpoint"].value = has_checkpoint  # type: ignore[attr-defined]

    def _dvar_toggled(self) -> None:
        off = self.controls["early_stopping"].value == "none"  # type: ignore[attr-defined]
        for name in ("dvar_window", "dvar_threshold"):
            self.rows[name].disabled = off

    # --- checking ---------------------------------------------------------------------------------

    def refresh_checks(self, changed: Iterable[str] | None = None) -> list[tuple[str, checks.Note]]:
        """Check what `changed` can alter (None: everything; see check_notes), show every
        field's note and the derived line; return the errors in form order."""
        values = self.values()
        config_values = self.config_values(values)
        notes = self._checked_notes(changed, values, config_values)
        errors = []
        for name in FIELDS:
            note = notes.get(name)
            if note is not None and note.level == "error":
                errors.append((name, note))
            empty = values[name] in ("", None)
            hidden = note is not None and note.level == "error" and empty \
                and name not in self._touched and not self._start_tried \
                and not (name == "model" and not self.models)
            if self.rows[name].disabled or hidden or note is None:
                self.rows[name].set_message()
            else:
                self.rows[name].set_message(note.text, note.level)
        others = [(n, note) for n, note in notes.items() if n not in FIELDS and note is not None]
        problems = self.query_one("#form-problems", Static)
        problems.update("\n".join(f"✗ {note.text}" for _n, note in others))
        problems.display = bool(others)
        errors += others
        # Every setting, not only the form's: the run's plan reads repeats, dvar_eval_every...
        # (trainer/plan.py's fact functions on the raw values: no TrainConfig is built).
        self.derived_line.show(config_values, self.n_images)
        return errors

    # --- actions ---------------------------------------------------------------------------------

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        name = self._field_of(event.widget)
        hint = self.query_one("#hint", Static)
        if name is not None:
            hint.update(self.rows[name].help_text)
        elif isinstance(event.widget, Button):
            hint.update("Enter on Start training starts the run (Ctrl-S from anywhere); "
                        "Esc or Ctrl-Q quits.")

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        """Start: refused (focus on the first problem) while anything is invalid."""
        self._start_tried = True
        self.external.clear()  # the runner checks those again; the user may have fixed them
        errors = self.refresh_checks()
        if errors:
            name, note = errors[0]
            if name in self.rows:
                self.rows[name].first_control.focus()
            self.notify(note.text, title="Fix this first", severity="error")
            self.app.bell()
            return
        if self.tokenizer_pending:
            self._start_when_ready = True
            self.notify("Checking the trigger against the model's tokenizer...")
            return
        try:
            config = self.to_config()
        except UserError as exc:
            self._show_problem(exc)
            return
        self.dismiss(config)

    def _show_problem(self, exc: UserError) -> None:
        """Show an error found outside the form's own checks (the runner's preflight)."""
        name = exc.field if exc.field in self.rows else "config"
        self.external[name] = str(exc)
        self.refresh_checks(())  # nothing to check again: only this sentence is new
        if name in self.rows:
            self.rows[name].first_control.focus()
        self.notify(str(exc), title="Cannot start", severity="error")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Textual's hook for which bindings apply: Esc is "Quit" when the form opened first
        (--gui), "Runs" when the home screen opened it; every other action is allowed."""
        if action in ("quit", "runs"):
            return (action == "runs") == (getattr(self.app, "home", None) is not None)
        return True

    @on(Button.Pressed, "#quit")
    def action_quit(self) -> None:
        # The Quit button too: back to the home screen when it opened the form.
        if getattr(self.app, "home", None) is not None:
            self.action_runs()
        else:
            self.app.exit(result="quit")

    def action_runs(self) -> None:
        """Back to the home screen's list of runs, starting nothing."""
        self.dismiss(None)
