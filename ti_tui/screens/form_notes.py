"""The form's notes: which check speaks for each field, and which run again after an edit.

`FormNotes.check_notes` gives one note per field: a value TrainConfig refuses (its own
sentence), else an error found outside the form (the runner's preflight, a refused
command-line value) until the field is edited, else the form's own note from the checks that
need the disk, the model or its tokenizer (ti_tui/screens/form_checks.py). An edit runs again
only the checks that read the edited fields (`form_checks.NOTE_READS`); every other note is
kept. `TrainingForm` mixes this in (ti_tui/screens/form.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ti_tui.screens import form_checks as checks


class FormNotes:
    """The checking half of the training form (a mixin of `TrainingForm`).

    The form provides `values()`, `config_values()`, `_data_changed()`, and the state read
    here: `models`, `models_problem`, `root`, `facts`, `model_problem`, `tokenizer`,
    `n_images`, `_data_note`, `external`, `_value_checks` (TrainConfig's checks, kept per
    field) and `_own_notes` (the form's own note per field, kept between edits).
    """

    def check_notes(self, changed: Iterable[str] | None = None) -> dict[str, checks.Note | None]:
        """One note per field (None: nothing to say), plus "config" for other settings.

        `changed`: the fields edited since the last call (and checks.TOKENIZER when the
        model's tokenizer arrived); only the checks that read them run again, every other
        note is kept from before. None checks everything afresh, the image count included
        (opening the form, a new model, Start: the disk may have changed)."""
        values = self.values()
        return self._checked_notes(changed, values, self.config_values(values))

    def _checked_notes(self, changed: Iterable[str] | None, values: dict[str, Any],
                       config_values: dict[str, Any]) -> dict[str, checks.Note | None]:
        if changed is None or not self._own_notes:
            changed = None
            self._data_changed()
        refused = set(self._value_checks.problems())
        errors = self._value_checks.check(config_values, changed)
        if changed is None:
            again = list(checks.NOTE_READS)
        else:  # the notes that read an edit, and those whose value became refused or fine
            stale = set(checks.notes_reading(changed)) | refused.symmetric_difference(errors)
            again = [name for name in checks.NOTE_READS if name in stale]
        for name in again:
            self._own_notes[name] = self._own_note(name, values, errors)
        return self._gather_notes(values, errors)

    def _own_note(self, name: str, values: dict[str, Any],
                  errors: dict[str, str]) -> checks.Note | None:
        """The note of field `name` from the checks that need the disk, the model or its
        tokenizer (checks.NOTE_READS says what each reads)."""
        if name == "model":
            if not values["model"] and not self.models:
                return checks.error(self.models_problem or checks.no_models_note(self.root))
            return checks.model_note(values["model"], self.facts, self.model_problem)
        if name in errors:
            return None  # the value itself is refused: that sentence is the one shown
        if name == "placeholder_token":
            return checks.trigger_note(values["placeholder_token"], self.tokenizer)
        if name == "initializer_token":
            return checks.initializer_note(values["initializer_token"], values["num_vectors"],
                                           self.tokenizer)
        if name == "train_data_dir":
            return self._data_note
        if name == "output_dir":
            return checks.writable_note(values["output_dir"])
        if name == "resume_from_checkpoint":
            return checks.resume_note(bool(values["resume_from_checkpoint"]),
                                      values["output_dir"], values["early_stopping"])
        if name == "resolution":
            if values["resolution"] == "":
                return checks.error("Type a size in pixels, a multiple of 8 such as 640.")
            native = self.facts.native_resolution if self.facts is not None else None
            if native and values["resolution"] != str(native):
                return checks.Note("info", f"the model's native size is {native} px.")
            return None
        if name == "num_processes":
            if values["num_processes"] in ("", "1"):
                return None
            return checks.Note("info", f"runs `accelerate launch` with "
                                       f"{values['num_processes']} processes.")
        if name == "early_stopping":
            return self._dvar_note(errors)
        raise KeyError(name)

    def _dvar_note(self, errors: dict[str, str]) -> checks.Note | None:
        """DVAR's warning for a rate it stops too early at, else the published setting that
        kept more of the best score at the nearest measured rate (trainer/dvar_advice.py),
        from the run's plan; nothing while a value the plan reads is refused."""
        from types import SimpleNamespace

        from trainer.dvar_advice import advice_for_plan, preset_for_plan
        from trainer.plan import make_plan
        from trainer.schedules import ScheduleError

        if any(name in errors for name in checks.NOTE_READS["early_stopping"]):
            return None  # a value the plan reads is refused: its own sentence is shown
        # The plan reads the typed values by name: no TrainConfig is built per keystroke.
        values = SimpleNamespace(**self._value_checks.typed())
        try:
            run_plan = make_plan(values, n_images=self.n_images)  # type: ignore[arg-type]
        except ScheduleError:
            return None
        if text := advice_for_plan(run_plan):
            return checks.Note("warning", text[0].upper() + text[1:])
        if text := preset_for_plan(run_plan, values.dvar_window, values.dvar_threshold):
            return checks.Note("info", text[0].upper() + text[1:])
        return None

    def _gather_notes(self, values: dict[str, Any],
                      errors: dict[str, str]) -> dict[str, checks.Note | None]:
        """Each field's note: a refused value first, then an error found outside the form
        (until edited), then the form's own note."""
        notes: dict[str, checks.Note | None] = {
            name: checks.error(text) for name, text in errors.items()}
        notes.update({name: checks.error(text) for name, text in self.external.items()})
        own = self._own_notes
        if not values["model"] and not self.models:
            notes["model"] = own["model"]  # nothing to pick from: say where we looked
        for name in checks.NOTE_READS:
            if name not in notes:
                notes[name] = own[name]
        return notes
