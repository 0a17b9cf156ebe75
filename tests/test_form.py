"""The setup form (ti_tui/screens/form.py) and the app flow around it, driven by keys only.

A fake runner records the TrainConfig it is handed and a fake live screen stands in for the
trainer, so nothing is ever trained here. The model is the tiny demo model, linked into a
temporary InvokeAI root as ROOT/models/sd-1/main/tiny.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import ClassVar

import pytest

from trainer import checkpoint_index
from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import Static

from ti_tui.app import make_app
from ti_tui.preferences import preferences_path, save_preferences
from ti_tui.screens.form import FIELDS, TrainingForm
from ti_tui.screens.help import HelpScreen
from ti_tui.screens.summary import SummaryScreen
from ti_tui.screens.too_small import TooSmallScreen
from ti_tui.widgets.derived import derive_facts, describe_facts, format_rate
from trainer.config import TrainConfig
from trainer.errors import ConfigError

SIZE = (100, 40)


class FakeTrainScreen(Screen[str]):
    """Stands in for the live screen: shows the handle, dismisses with `outcome` on "d"."""

    BINDINGS: ClassVar[list[BindingType]] = [("d", "done", "Done")]

    def __init__(self, handle, outcome: str = "finished"):
        super().__init__()
        self.handle, self.outcome = handle, outcome

    def compose(self):
        yield Static(f"training {self.handle}")

    def action_done(self) -> None:
        self.dismiss(self.outcome)


class FakeRunner:
    """Records every config; raises `error` instead when one is set."""

    def __init__(self, error: Exception | None = None):
        self.configs: list[TrainConfig] = []
        self.error = error

    def __call__(self, config: TrainConfig) -> str:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        self.configs.append(config)
        return "fake-handle"


@pytest.fixture
def root(tiny_model_dir, demo_images_dir) -> Path:
    """An InvokeAI root holding the tiny model and a data folder `cat` with 6 images.

    It lives at a short path (/tmp/tiXXXX) because the tests type paths key by key.
    """
    root = Path(tempfile.mkdtemp(prefix="ti", dir="/tmp"))
    models = root / "models" / "sd-1" / "main"
    models.mkdir(parents=True)
    (models / "tiny").symlink_to(tiny_model_dir, target_is_directory=True)
    shutil.copytree(demo_images_dir, root / "text-inversion-training-data" / "cat")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def app_for(root: Path, runner: FakeRunner | None = None, outcome: str = "finished", **kw):
    app = make_app(root=root, runner=runner or FakeRunner(),
                   train_screen=lambda handle: FakeTrainScreen(handle, outcome), **kw)
    app.animation_level = "none"   # focus scrolls the form; the pilot would wait for each glide
    return app


async def ready(pilot) -> TrainingForm:
    """Wait until the form is up and its tokenizer loaded (one load per session: cached)."""
    for _ in range(400):
        await pilot.pause(0.02)
        form = pilot.app.screen
        if isinstance(form, TrainingForm) and not form.tokenizer_pending:
            await pilot.pause()
            return form
    raise AssertionError(f"the form did not become ready: {pilot.app.screen}")


async def goto(pilot, form: TrainingForm, name: str, control: int = 0) -> None:
    """Tab or Shift-Tab (keys only), the shorter way round, until the `control`-th control of
    row `name` has focus."""
    focused = pilot.app.focused
    here = form._field_of(focused) if focused is not None else None
    position = FIELDS.index(here) if here in FIELDS else len(FIELDS)  # the buttons: the end
    ahead = (FIELDS.index(name) - position) % (len(FIELDS) + 2)
    key = "tab" if ahead <= (len(FIELDS) + 2) // 2 else "shift+tab"
    for _ in range(80):
        focused = pilot.app.focused
        targets = [w for w in form.rows[name].query("*") if w.focusable]
        if focused is not None and targets and focused is targets[control]:
            return
        await pilot.press(key)
    raise AssertionError(f"could not tab to {name}")


async def type_into(pilot, form: TrainingForm, name: str, text: str) -> None:
    """Tab to the row, select what is there and type `text` over it."""
    await goto(pilot, form, name)
    await pilot.press("home", "shift+end", *(text or ["backspace"]))
    await pilot.pause()


def message(form: TrainingForm, name: str) -> str:
    return form.rows[name].message


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
        await pilot.pause(0.2)
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
        await pilot.pause(0.2)
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


# --- preferences, runner errors, keys, sizes ------------------------------------------------


async def test_preferences_are_restored_except_the_trigger(root):
    saved = TrainConfig(root=str(root), placeholder_token="<old>", train_batch_size=3,
                        learning_rate="0.005:100, 1e-3", mixed_precision="fp16",
                        train_data_dir="/data/mine", early_stopping="none")
    save_preferences(root, saved)
    async with app_for(root).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        assert form.text("placeholder_token") == ""
        assert form.text("train_batch_size") == "3"
        assert form.text("learning_rate") == "0.005:100, 1e-3"
        assert form.controls["mixed_precision"].value == "fp16"
        assert form.controls["early_stopping"].value == "none"
        assert form.rows["dvar_window"].disabled
        await type_into(pilot, form, "placeholder_token", "cat")
        assert form.text("train_data_dir") == "/data/mine"   # a folder the user chose stays


async def test_runner_refusal_returns_to_the_form_at_the_field(root):
    runner = FakeRunner(error=ConfigError("Data directory has a broken image x.png; remove it.",
                                          field="train_data_dir"))
    async with app_for(root, runner, restore=False).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        await type_into(pilot, form, "placeholder_token", "cat")
        await pilot.press("ctrl+s")
        form = await ready(pilot)
        assert form.text("placeholder_token") == "<cat>"
        assert message(form, "train_data_dir").startswith("Data directory has a broken image")
        assert pilot.app.focused.id == "f-train_data_dir"
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
    assert len(runner.configs) == 1


async def test_f1_help_and_escape_quits(root):
    app = app_for(root, restore=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, TrainingForm)
        await pilot.press("escape")
    assert app.return_value == "quit"


async def test_too_small_then_resized_back(root):
    app = app_for(root, restore=False)
    async with app.run_test(size=(70, 20)) as pilot:
        await pilot.pause(0.2)
        assert isinstance(app.screen, TooSmallScreen)
        assert "make the window at least 80x24" in str(app.screen.query_one(Static).render())
        await pilot.resize_terminal(80, 24)
        await ready(pilot)
        await pilot.resize_terminal(79, 24)
        await pilot.pause()
        assert isinstance(app.screen, TooSmallScreen)
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert isinstance(app.screen, TrainingForm)


async def test_focused_field_stays_visible_at_80x24(root):
    async with app_for(root, restore=False).run_test(size=(80, 24)) as pilot:
        form = await ready(pilot)
        await goto(pilot, form, "num_processes")
        scroll = form.query_one("#form-fields")
        row = form.rows["num_processes"].region
        assert scroll.region.contains_region(row)


async def test_after_training_the_summary_copies_the_embedding(root):
    runner = FakeRunner()
    app = app_for(root, runner, restore=False)
    async with app.run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        await type_into(pilot, form, "placeholder_token", "cat")
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        out = runner.configs[0].output_path
        (out / "checkpoint-10").mkdir(parents=True)
        (out / "learned_embeds.bin").write_bytes(b"vectors")
        (out / "events.jsonl").write_text(
            '{"type":"stopped","version":1,"time":1,"reason":"early_stop","step":40,'
            '"files":["learned_embeds.bin"],"ratio":0.2,"threshold":0.39}\n')
        await pilot.press("d")                      # the fake live screen: run finished
        await pilot.pause(0.2)
        assert isinstance(app.screen, SummaryScreen)
        assert pilot.app.focused.id == "summary-copy"
        await pilot.press("ctrl+s")
    assert app.return_value == "finished" and app.return_code == 0
    assert (root / "embeddings" / "cat" / "learned_embeds.bin").read_bytes() == b"vectors"
    assert (out / "checkpoint-10").is_dir()         # deleting checkpoints defaults to no


async def test_detaching_prints_how_to_reattach(root):
    app = app_for(root, outcome="detached", restore=False)
    async with app.run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        await type_into(pilot, form, "placeholder_token", "cat")
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        await pilot.press("d")
        await pilot.pause(0.2)
    assert app.return_value == "detached"
    assert app.watch_hint().endswith(f"ti-tui watch {root / 'text-inversion-output' / 'cat'}")


# --- the derived line -------------------------------------------------------------------------


def test_derived_facts_arithmetic():
    values = {"train_batch_size": "2", "gradient_accumulation_steps": "3", "num_processes": "1",
              "max_train_steps": "100", "learning_rate": "5e-4", "scale_lr": True,
              "early_stopping": "dvar", "dvar_window": "50", "num_train_epochs": "100"}
    facts = derive_facts(values, 6)
    assert facts.images_per_update == 6 and facts.full_cycle
    assert facts.effective_lr == pytest.approx(3e-3)
    assert facts.epochs == pytest.approx(100.0) and facts.earliest_stop == 51
    text = describe_facts(facts)
    assert "6 images" in text and "full-cycle" in text and "DVAR can stop from step 51" in text
    assert "lr 5e-4×6 = 3e-3" in text
    half = derive_facts({**values, "max_train_steps": "7", "early_stopping": "none"}, 4)
    assert half.epochs == pytest.approx(10.5) and not half.full_cycle
    assert "no early stopping" in describe_facts(half)
    assert derive_facts({**values, "train_batch_size": "x"}, None).images_per_update is None
    short = derive_facts({**values, "learning_rate": "0.01:40, 0.001:60"}, 6)
    assert (short.steps, short.limited_by, short.base_lr) == (60, "schedule", 0.01)
    assert format_rate(0.0005) == "5e-4" and format_rate(0.016) == "0.016"


async def test_demo_opens_prefilled_and_starts(tmp_path):
    from ti_tui.demo_setup import demo_data_dir
    from trainer.toyworld import toy_model_dir

    runner = FakeRunner()
    app = app_for(tmp_path / "root", runner, demo=True)
    async with app.run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        assert form.controls["model"].value == str(toy_model_dir())
        assert form.text("train_data_dir") == str(demo_data_dir())
        assert form.text("placeholder_token") == "<green-star>"
        await pilot.press("shift+tab", "shift+tab")       # from the model, back round to Start
        assert pilot.app.focused.id == "start"
        await pilot.press("enter")
        await pilot.pause(0.2)
    config = runner.configs[0]
    assert config.resolution == 32 and config.output_path == \
        tmp_path / "root" / "text-inversion-output" / "green-star"
    assert not preferences_path(tmp_path / "root").exists()   # the demo keeps user settings
