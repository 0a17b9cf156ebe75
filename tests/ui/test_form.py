"""The setup form (ti_tui/screens/form.py), driven by keys only: every field, the values it
fills in from the trigger, and what it says about wrong ones.

The model is the tiny demo model, linked into a temporary InvokeAI root as
ROOT/models/sd-1/main/tiny (the `root` fixture of conftest.py); tests/form_pilot.py has the
fake runner and the key helpers.
"""

from __future__ import annotations

import shutil

from trainer import checkpoint_index
from trainer.config import TrainConfig
from ti_tui.preferences import preferences_path
from ti_tui.screens.form import TrainingForm

from tests.form_pilot import SIZE, FakeRunner, app_for, goto, message, ready, started, type_into

# --- the whole form by keys ------------------------------------------------------------------


async def test_focus_starts_on_the_model(root):
    async with app_for(root, restore=False).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        assert pilot.app.focused.id == "model-select"
        assert form.text("placeholder_token") == ""


async def test_fill_every_field_by_keys_then_ctrl_s_hands_over_the_config(root):
    runner = FakeRunner()
    app = app_for(root, runner, restore=False)
    async with app.run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        await pilot.press("tab", *"cat")                       # trigger
        await pilot.press("tab", *"dog")                       # initializer
        await pilot.press("tab")                               # resume: left unticked
        await pilot.press("tab", "right")                      # learnable property -> style
        await goto(pilot, form, "resolution")
        await pilot.press("left", "left", "left")              # custom -> 1024 -> 768 -> 512
        await pilot.press("tab", "space")                      # center crop on
        await pilot.press("tab", "right", "right")             # mixed precision -> bf16
        for name, text in [("max_train_steps", "1200"), ("num_train_epochs", "40"),
                           ("train_batch_size", "2"), ("gradient_accumulation_steps", "3"),
                           ("learning_rate", "1e-3")]:
            await type_into(pilot, form, name, text)
        await pilot.press("tab", "enter", "down", "enter")     # scheduler -> constant_with_warmup
        await type_into(pilot, form, "lr_warmup_steps", "10")
        await pilot.press("tab", "space")                      # scale lr off
        await pilot.press("tab")                               # early stopping: DVAR on
        for name, text in [("dvar_window", "50"), ("dvar_threshold", "0.2"),
                           ("num_vectors", "2"), ("save_steps", "100"),
                           ("checkpointing_steps", "200"), ("seed", "7"),
                           ("num_processes", "1")]:
            await type_into(pilot, form, name, text)
        assert form.check_notes()["placeholder_token"].text == "use <cat> in your prompts"
        await pilot.press("ctrl+s")
        await started(pilot, runner)
    assert len(runner.configs) == 1
    config = runner.configs[0]
    assert config.model == str(root / "models" / "sd-1" / "main" / "tiny")
    assert config.root == str(root)
    assert config.placeholder_token == "<cat>" and config.initializer_token == "dog"
    assert config.resume_from_checkpoint is None
    assert config.learnable_property == "style"
    assert config.train_data_dir == str(root / "text-inversion-training-data" / "cat")
    assert config.output_dir == str(root / "text-inversion-output" / "cat")
    assert config.resolution == 512 and config.center_crop is True
    assert config.mixed_precision == "bf16"
    assert (config.max_train_steps, config.num_train_epochs) == (1200, 40)
    assert (config.train_batch_size, config.gradient_accumulation_steps) == (2, 3)
    assert config.learning_rate == "1e-3" and config.lr_scheduler == "constant_with_warmup"
    assert config.lr_warmup_steps == 10 and config.scale_lr is False
    assert config.early_stopping == "dvar"
    assert (config.dvar_window, config.dvar_threshold, config.num_vectors) == (50, 0.2, 2)
    assert (config.save_steps, config.checkpointing_steps, config.seed) == (100, 200, 7)
    assert config.num_processes == 1
    # Saved for next time, without the trigger.
    saved = preferences_path(root).read_text()
    assert "train_batch_size = 2" in saved and "placeholder_token" not in saved


async def test_ctrl_n_and_ctrl_p_move_between_fields(root):
    async with app_for(root, restore=False).run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+n")
        assert pilot.app.focused.id == "f-placeholder_token"
        await pilot.press("ctrl+n", "ctrl+p", "ctrl+p")
        assert pilot.app.focused.id == "model-select"


# --- prepopulation from the trigger ----------------------------------------------------------


async def test_trigger_fills_folders_until_the_user_edits_them(root):
    async with app_for(root, restore=False).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        await type_into(pilot, form, "placeholder_token", "cat")
        assert form.text("train_data_dir") == str(root / "text-inversion-training-data" / "cat")
        assert form.text("output_dir") == str(root / "text-inversion-output" / "cat")
        assert message(form, "placeholder_token") == "use <cat> in your prompts"
        assert message(form, "train_data_dir") == "6 images found."
        assert "6 images" in str(form.derived_line.render())
        # The user edits the output folder; the data folder keeps following the trigger.
        await type_into(pilot, form, "output_dir", "/tmp/elsewhere")
        await type_into(pilot, form, "placeholder_token", "<dog>")
        assert form.text("train_data_dir") == str(root / "text-inversion-training-data" / "dog")
        assert form.text("output_dir") == "/tmp/elsewhere"
        assert message(form, "placeholder_token") == "use <dog> in your prompts"


async def test_resume_is_ticked_only_for_a_real_checkpoint(root):
    out = root / "text-inversion-output"
    (out / "cat" / "checkpoint-300").mkdir(parents=True)
    for name in checkpoint_index.FILES:  # a complete checkpoint holds all of these
        (out / "cat" / "checkpoint-300" / name).write_text("{}")
    (out / "partial" / "checkpoint-9").mkdir(parents=True)  # half a checkpoint is not one
    (out / "partial" / "checkpoint-9" / "meta.json").write_text("{}")
    (out / "empty" / "checkpoint-100").mkdir(parents=True)   # an empty folder is not one
    (out / "file").mkdir()
    (out / "file" / "checkpoint-5").write_text("not a folder")
    runner = FakeRunner()
    async with app_for(root, runner, restore=False).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        resume = form.controls["resume_from_checkpoint"]
        for trigger in ("empty", "file", "partial"):
            await type_into(pilot, form, "placeholder_token", trigger)
            assert resume.value is False
        await type_into(pilot, form, "placeholder_token", "cat")
        assert resume.value is True
        assert message(form, "resume_from_checkpoint") == "continues from checkpoint-300."
        await pilot.press("ctrl+s")
        await started(pilot, runner)
    assert runner.configs[0].resume_from_checkpoint == "latest"


# --- validation messages -------------------------------------------------------------------


async def test_each_field_says_what_is_wrong(root):
    (root / "two").mkdir()
    for name in ("a.PNG", "b.jpg"):
        shutil.copy(next((root / "text-inversion-training-data" / "cat").iterdir()),
                    root / "two" / name)
    (root / "none").mkdir()
    (root / "file").write_text("a file")
    async with app_for(root, restore=False).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        await type_into(pilot, form, "placeholder_token", "my cat!")
        assert "may hold only letters, digits, dot, underscore and hyphen" in \
            message(form, "placeholder_token")
        await type_into(pilot, form, "placeholder_token", "cat")
        await type_into(pilot, form, "initializer_token", "two words")
        assert "splits into 2 tokens ('two', 'words')" in message(form, "initializer_token")
        await type_into(pilot, form, "initializer_token", "random")
        assert message(form, "initializer_token") == ""
        await type_into(pilot, form, "train_data_dir", str(root / "nil"))
        assert "does not exist" in message(form, "train_data_dir")
        await type_into(pilot, form, "train_data_dir", str(root / "none"))
        assert "holds no images" in message(form, "train_data_dir")
        await type_into(pilot, form, "train_data_dir", str(root / "two"))
        assert form.rows["train_data_dir"].level == "warning"
        assert message(form, "train_data_dir").startswith("Only 2 images")
        await type_into(pilot, form, "output_dir", str(root / "file" / "o"))
        assert "is blocked by the file" in message(form, "output_dir")
        await type_into(pilot, form, "train_batch_size", "0")
        assert message(form, "train_batch_size") == \
            "Batch size (--train_batch_size) must be at least 1; got 0."
        await type_into(pilot, form, "learning_rate", "0.005:abc")
        assert message(form, "learning_rate").startswith(
            'Learning rate (--learning_rate): Invalid learning rate schedule "0.005:abc"')
        await type_into(pilot, form, "dvar_threshold", "1.5")
        assert "must lie strictly between 0 and 1" in message(form, "dvar_threshold")
        # The warning does not block; the errors do, and Start focuses the first of them.
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert pilot.app.focused.id == "f-initializer_token" or \
            pilot.app.focused.id == "f-output_dir"
        assert isinstance(pilot.app.screen, TrainingForm)


async def test_start_is_refused_until_the_trigger_is_typed(root):
    runner = FakeRunner()
    async with app_for(root, runner, restore=False).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        assert message(form, "placeholder_token") == ""   # no nagging before a key is pressed
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert pilot.app.focused.id == "f-placeholder_token"
        assert message(form, "placeholder_token").startswith("Type a trigger term")
        assert runner.configs == []


async def test_known_word_trigger_is_refused(root, tiny_model_dir, tmp_path):
    from trainer.models import load_tokenizer

    model = tmp_path / "merged"
    shutil.copytree(tiny_model_dir, model)
    tokenizer = load_tokenizer(model)
    tokenizer.add_tokens(["<cat>"])    # a model saved with an embedding already merged in
    tokenizer.save_pretrained(str(model / "tokenizer"))
    defaults = TrainConfig(model=str(model))
    async with app_for(root, defaults=defaults, restore=False).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        assert pilot.app.focused.id == "model-select"
        assert form.controls["model"].value == str(model)   # shown as "other path..."
        await type_into(pilot, form, "placeholder_token", "cat")
        assert "is already a word the model knows" in message(form, "placeholder_token")


async def test_no_models_says_where_it_looked_and_offers_other_path(root, tiny_model_dir):
    shutil.rmtree(root / "models")
    (root / "m").symlink_to(tiny_model_dir, target_is_directory=True)
    async with app_for(root, restore=False).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        assert f"No diffusers models found in {root / 'models'}" in message(form, "model")
        await pilot.press("tab")                  # the path input, shown for "other path..."
        assert pilot.app.focused.id == "model-path"
        await pilot.press(*str(root / "x"))
        assert "does not exist" in message(form, "model")
        await pilot.press("backspace", "m")
        await pilot.pause()
        assert message(form, "model").startswith("SD 1.x")
        assert form.resolution_picker.value == "64"       # the model's native size


def test_each_fields_control_comes_from_its_type_and_metadata():
    from ti_tui.screens.form_fields import FIELDS, control_kind
    from trainer.config import field_info

    kinds = {name: control_kind(name) for name in FIELDS}
    assert kinds["max_train_steps"] == kinds["dvar_threshold"] == kinds["seed"] == "number"
    assert kinds["lr_scheduler"] == "select" and kinds["early_stopping"] == "choices"
    assert kinds["scale_lr"] == kinds["center_crop"] == "tick"
    assert kinds["learning_rate"] == "text"  # a schedule string, not a number
    for name, kind in kinds.items():
        base = str(field_info(name).type).replace("| None", "").strip()
        if kind == "number":
            assert base in ("int", "float"), name
        if base in ("int", "float") and name != "resolution":
            assert kind == "number", name
