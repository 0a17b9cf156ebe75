"""The setup form checks field by field: a keystroke checks the edited field's value, the
TrainConfig rules that read it (trainer/config_rules.py) and the disk or tokenizer checks that
read it (ti_tui/screens/form_checks.py NOTE_READS), and keeps every other note.

The rule table is TrainConfig's own validation, so the form and `ti-tui train` give the same
sentences; the tests here prove both halves: what runs per keystroke (counted with
monkeypatch), and that the table says what TrainConfig says. Last, the derived line names the
embedding's file before Start when a trigger that is an everyday word renames it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from ti_tui.screens import form_checks
from ti_tui.widgets.derived import renamed_file
from trainer import config_rules, formats
from trainer.config import TrainConfig
from trainer.errors import ConfigError

from tests.form_pilot import SIZE, app_for, goto, message, ready, type_into

DISK_AND_TOKENIZER = ("writable_note", "resume_note", "count_images", "latest_checkpoint",
                      "trigger_note", "initializer_note", "model_note")


@pytest.fixture
def calls(monkeypatch) -> Counter:
    """Counts every run of each rule ("rule:<field>"), each disk or tokenizer check of
    form_checks, and each TrainConfig built, from the moment the test starts."""
    counter: Counter = Counter()

    def counted(key, function):
        def wrapper(*args, **kwargs):
            counter[key] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(config_rules, "RULES", tuple(
        dataclasses.replace(rule, check=counted(f"rule:{rule.field}", rule.check))
        for rule in config_rules.RULES))
    for name in DISK_AND_TOKENIZER:
        monkeypatch.setattr(form_checks, name, counted(name, getattr(form_checks, name)))
    monkeypatch.setattr(TrainConfig, "__post_init__",
                        counted("TrainConfig", TrainConfig.__post_init__))
    return counter


@pytest.fixture
def own_folders(root, tmp_path) -> TrainConfig:
    """Defaults whose data and output folders the user chose (they no longer follow the
    trigger), so typing the trigger changes nothing else."""
    images = tmp_path / "my-images"
    images.symlink_to(root / "text-inversion-training-data" / "cat")
    return TrainConfig(root=str(root), train_data_dir=str(images),
                       output_dir=str(tmp_path / "out"))


def ran(counter: Counter) -> dict[str, int]:
    """The checks that ran, without the zero counts."""
    return {key: n for key, n in counter.items() if n}


# --- (a) a keystroke checks its own field only ------------------------------------------------


async def test_typing_the_trigger_checks_the_trigger_only(root, own_folders, calls):
    async with app_for(root, defaults=own_folders, restore=False).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        await goto(pilot, form, "placeholder_token")
        calls.clear()
        await pilot.press(*"dog")
        await pilot.pause()
        # Before: every keystroke built TrainConfig twice and checked the output folder, its
        # checkpoints and the initializer again.
        assert ran(calls) == {"rule:placeholder_token": 3, "trigger_note": 3}
        assert message(form, "placeholder_token") == "use <dog> in your prompts"
        assert form.text("output_dir") == own_folders.output_dir


async def test_typing_the_output_folder_checks_that_folder_and_resume_only(root, own_folders,
                                                                          calls, tmp_path):
    async with app_for(root, defaults=own_folders, restore=False).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        await type_into(pilot, form, "placeholder_token", "dog")
        await goto(pilot, form, "output_dir")
        await pilot.press("end")
        calls.clear()
        await pilot.press(*"2")
        await pilot.pause()
        # The folder's own checks: writable, and its checkpoints (once to tick Resume, once
        # in the resume note). No rule reads output_dir; the trigger's note is kept.
        assert ran(calls) == {"latest_checkpoint": 2, "writable_note": 1, "resume_note": 1}
        assert form.text("output_dir") == f"{tmp_path / 'out'}2"


async def test_a_choice_checks_what_reads_it_only(root, own_folders, calls):
    async with app_for(root, defaults=own_folders, restore=False).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        await goto(pilot, form, "early_stopping")
        calls.clear()
        await pilot.press("right")                       # DVAR on -> off
        await pilot.pause()
        assert form.controls["early_stopping"].value == "none"
        # Only the resume note reads it (resuming where DVAR stopped a run), and it looks
        # for the folder's checkpoint.
        assert ran(calls) == {"resume_note": 1, "latest_checkpoint": 1}
        await goto(pilot, form, "num_vectors")
        calls.clear()
        await pilot.press("end", "2")
        await pilot.pause()
        assert ran(calls) == {"initializer_note": 1}     # one token for all vectors, or one each


async def test_typing_the_learning_rate_runs_its_rule_and_builds_no_config(root, own_folders,
                                                                          calls):
    async with app_for(root, defaults=own_folders, restore=False).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        await goto(pilot, form, "learning_rate")
        await pilot.press("home", "shift+end")
        calls.clear()
        await pilot.press(*"5e-3")
        await pilot.pause()
        # The derived line reads the plan's fact functions on the raw values: no TrainConfig.
        assert ran(calls) == {"rule:learning_rate": 4}
        assert "lr 5e-3" in str(form.derived_line.render())


async def test_start_checks_everything_again(root, own_folders, tmp_path, calls):
    async with app_for(root, defaults=own_folders, restore=False).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        await type_into(pilot, form, "placeholder_token", "dog")
        assert message(form, "output_dir") == ""
        # The disk changes behind the form's back: the output folder's place is now a file.
        (tmp_path / "out").write_text("not a folder")
        await type_into(pilot, form, "max_train_steps", "300")
        assert message(form, "output_dir") == ""         # an edit elsewhere keeps that note
        calls.clear()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert calls["writable_note"] == 1 and calls["count_images"] == 1
        assert calls["rule:learning_rate"] == 1 and calls["rule:device"] == 1
        assert message(form, "output_dir").startswith(f"Output directory {tmp_path / 'out'} is "
                                                      "blocked by the file")


# --- (b) the rule table says what TrainConfig says --------------------------------------------

BAD_VALUES = [
    ("placeholder_token", {"placeholder_token": "my cat"}),
    ("placeholder_token", {"placeholder_token": "../up"}),
    ("resolution", {"resolution": 500}),
    ("initializer_token", {"initializer_token": "   "}),
    ("dvar_threshold", {"dvar_threshold": 1.5}),
    ("dvar_threshold", {"dvar_threshold": 0.0}),
    ("adam_beta1", {"adam_beta1": 1.0}),
    ("adam_beta2", {"adam_beta2": 1.0}),
    ("device", {"device": "tpu"}),
    ("device", {"device": "cuda:1", "num_processes": 2}),
    ("push_to_hub", {"push_to_hub": True}),
    ("learning_rate", {"learning_rate": "5e-3:100, x"}),
    ("learning_rate", {"learning_rate": "-1"}),
    ("learning_rate", {"learning_rate": "5e-3:100, 1e-3:1000", "lr_scheduler": "linear"}),
    ("learning_rate", {"learning_rate": "5e-3:100, 1e-3:50", "strict_schedule": True}),
    ("learning_rate", {"learning_rate": "1e-8", "lr_scheduler": "polynomial"}),
    ("learning_rate", {"learning_rate": "5e-4:100, -1", "max_train_steps": 200}),
    ("clip_grad_value", {"clip_grad_mode": "value", "clip_grad_value": "0.1:x"}),
    ("clip_grad_value", {"clip_grad_mode": "norm", "clip_grad_value": "1:10, 2:5",
                         "strict_schedule": True}),
]


def _typed(**changes) -> dict:
    """TrainConfig's typed defaults with `changes` laid over them (not validated)."""
    return {**vars(TrainConfig()), **changes}


@pytest.mark.parametrize(("field", "bad"), BAD_VALUES,
                         ids=[f"{field}-{i}" for i, (field, _) in enumerate(BAD_VALUES)])
def test_the_rule_table_gives_trainconfigs_error(field, bad):
    with pytest.raises(ConfigError) as refused:
        TrainConfig(**bad)
    assert refused.value.field == field
    assert config_rules.problems(_typed(**bad)) == {field: str(refused.value)}
    # The form's checks of the same values as typed text say the same.
    loose = {name: str(value) for name, value in bad.items()}
    assert form_checks.config_errors(loose) == {field: str(refused.value)}


def test_every_rule_is_proven_against_trainconfig():
    assert {rule.field for rule in config_rules.RULES} == {field for field, _ in BAD_VALUES}


def test_each_rule_sees_only_what_it_reads_and_no_rule_reads_anothers_field():
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    reported = {rule.field for rule in config_rules.RULES}
    for rule in config_rules.RULES:
        assert set(rule.reads) <= fields and rule.field in rule.reads
        # Only its reads are passed: a rule reading an undeclared field would fail here.
        assert rule.problem({name: _typed()[name] for name in rule.reads}) is None
        # So checking a rule again never changes another rule's verdict.
        assert not (set(rule.reads) - {rule.field}) & reported


def test_the_form_lists_every_problem_trainconfig_finds_one_by_one():
    bad = {"resolution": "500", "max_train_steps": "ten", "dvar_threshold": "2",
           "learning_rate": "5e-4:100, -1", "device": "cuda:1", "num_processes": "2"}
    found = form_checks.config_errors(bad)
    assert list(found) == ["max_train_steps", "resolution", "dvar_threshold", "device",
                           "learning_rate"]
    # Each sentence is the one TrainConfig raises for that value alone; the refused step
    # count is taken at its default (5000), which keeps the schedule's -1 in reach.
    for name, sentence in found.items():
        alone = {key: bad[key] for key in (name, "num_processes") if key in bad}
        with pytest.raises(ConfigError) as refused:
            TrainConfig.from_dict(alone)
        assert str(refused.value) == sentence


# --- (c) a field another rule reads -----------------------------------------------------------


async def test_max_steps_rechecks_the_learning_rate_schedule(root, own_folders, calls):
    """'5e-4:100, -1' reaches its -1 only in a run longer than 100 steps, so the step
    limit decides whether the learning-rate note is an error."""
    async with app_for(root, defaults=own_folders, restore=False).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        await type_into(pilot, form, "max_train_steps", "50")
        await type_into(pilot, form, "learning_rate", "5e-4:100, -1")
        assert message(form, "learning_rate") == ""
        await goto(pilot, form, "max_train_steps")
        calls.clear()
        await pilot.press("end", "0")                    # 50 -> 500
        await pilot.pause()
        assert message(form, "learning_rate") == ("Learning rate (--learning_rate) "
                                                  "'5e-4:100, -1' gives the rate -1.0; use "
                                                  "rates of 0 or more such as 5e-4.")
        assert ran(calls) == {"rule:learning_rate": 1, "rule:clip_grad_value": 1}
        await pilot.press("backspace")                   # 500 -> 50
        await pilot.pause()
        assert message(form, "learning_rate") == ""


# --- the embedding's file name, before Start ----------------------------------------------------


async def test_the_derived_line_names_a_renamed_embedding_file(root, own_folders):
    async with app_for(root, defaults=own_folders, restore=False).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        await type_into(pilot, form, "placeholder_token", "cat")   # an everyday CLIP word
        assert "saved as cat-ti.safetensors" in str(form.derived_line.render())
        config = form.to_config()
        assert formats.FORMATS["standalone"].file_name(config.trigger) == "cat-ti.safetensors"
        await type_into(pilot, form, "placeholder_token", "my-cat")
        assert "saved as" not in str(form.derived_line.render())


@pytest.mark.parametrize(("typed", "file_name"), [
    ("<star>", "star-ti.safetensors"), ("learned_embeds", "learned_embeds-ti.safetensors"),
    ("my-cat", None), ("", None), ("my cat", None),
])
def test_renamed_file(typed, file_name):
    assert renamed_file(typed) == file_name
