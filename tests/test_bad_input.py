"""Bad input (issue 7), in-process: every case ends in one sentence naming the field or file,
and nothing is written. The same errors through the real `ti-tui train` command (exit code 2,
one line on stderr) are checked for a representative subset in tests/test_cli_errors.py.

Value errors are raised by TrainConfig itself (flags, run.toml and the form all build one);
path, model, image, resume and device errors by `preflight(config)`, which runs before the
output folder is created.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainer import lock
from trainer.config import TrainConfig
from trainer.embeddings import check_trigger
from trainer.formats import save_embedding
from trainer.errors import ConfigError, DataError, ModelError, ResumeError, UserError
from trainer.preflight import preflight

from .helpers import link_model, make_config

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def one_sentence(error: BaseException, *words: str) -> str:
    """The message: one line, no traceback, containing every word given."""
    text = str(error)
    assert "\n" not in text and "Traceback" not in text, text
    assert text.rstrip().endswith((".", ")")), text
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"
    return text


def refused(config: TrainConfig, kind: type[UserError], field: str, *words: str) -> str:
    """preflight refuses `config` with `kind` on `field`, and wrote nothing."""
    out = config.output_path
    existed = out.exists()
    with pytest.raises(kind) as info:
        preflight(config)
    assert info.value.field == field, (info.value.field, str(info.value))
    assert out.exists() == existed, "preflight must not create the output folder"
    return one_sentence(info.value, *words)


@pytest.fixture
def cfg(tiny_model_dir, demo_images_dir, tmp_path):
    """A valid tiny config; tests break one thing with `cfg(field=value)`."""
    def make(**changes) -> TrainConfig:
        model = changes.pop("model", tiny_model_dir)
        return make_config(model, demo_images_dir, tmp_path, **changes)
    return make


def test_the_base_config_passes(cfg):
    checked = preflight(cfg())
    assert checked.images and not cfg().output_path.exists()


# --- values: TrainConfig refuses them, whichever way they came in --------------------------

VALUE_CASES = [
    ({"resolution": 30}, "resolution", "multiple of 8"),
    ({"resolution": 0}, "resolution", "at least 8"),
    ({"resolution": -512}, "resolution", "at least 8"),
    ({"resolution": "big"}, "resolution", "whole number"),
    ({"train_batch_size": 0}, "train_batch_size", "at least 1"),
    ({"train_batch_size": -2}, "train_batch_size", "at least 1"),
    ({"train_batch_size": 1.5}, "train_batch_size", "whole number"),
    ({"train_batch_size": "2.5"}, "train_batch_size", "whole number"),
    ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps", "at least 1"),
    ({"gradient_accumulation_steps": "x"}, "gradient_accumulation_steps", "whole number"),
    ({"max_train_steps": -1}, "max_train_steps", "at least 1"),
    ({"max_train_steps": "lots"}, "max_train_steps", "whole number"),
    ({"num_train_epochs": 0}, "num_train_epochs", "at least 1"),
    ({"num_train_epochs": 2.5}, "num_train_epochs", "whole number"),
    ({"num_vectors": 0}, "num_vectors", "at least 1"),
    ({"num_vectors": "two"}, "num_vectors", "whole number"),
    ({"num_vectors": 76}, "num_vectors", "at most 75"),
    ({"learning_rate": "fast"}, "learning_rate", "not a number"),
    ({"learning_rate": ""}, "learning_rate", "empty"),
    ({"learning_rate": "0.005:1.5, 1e-4"}, "learning_rate", "whole step number"),
    ({"clip_grad_mode": "norm", "clip_grad_value": "tight"}, "clip_grad_value",
     "not a number"),
    ({"clip_grad_mode": "value", "clip_grad_value": "0.1:abc"}, "clip_grad_value",
     "whole step number"),
    ({"dvar_threshold": 0}, "dvar_threshold", "strictly between 0 and 1"),
    ({"dvar_threshold": 1}, "dvar_threshold", "strictly between 0 and 1"),
    ({"dvar_threshold": -0.1}, "dvar_threshold", "strictly between 0 and 1"),
    ({"dvar_threshold": 1.5}, "dvar_threshold", "strictly between 0 and 1"),
    ({"dvar_threshold": "low"}, "dvar_threshold", "must be a number"),
    ({"dvar_window": 1}, "dvar_window", "at least 2"),
    ({"dvar_window": 0}, "dvar_window", "at least 2"),
    ({"mixed_precision": "fp8"}, "mixed_precision", "one of no, fp16, bf16"),
    ({"lr_scheduler": "exponential"}, "lr_scheduler", "one of constant"),
    ({"optimizer": "sgd"}, "optimizer", "one of adamw, sam"),
    ({"learnable_property": "face"}, "learnable_property", "one of object, style"),
    ({"placeholder_token": "my cat"}, "placeholder_token", "try <my-cat>"),
    ({"placeholder_token": "cat!"}, "placeholder_token", "letters, digits"),
    ({"placeholder_token": "<so cute>"}, "placeholder_token", "letters, digits"),
]


@pytest.mark.parametrize(("changes", "field", "words"), VALUE_CASES,
                         ids=[f"{next(iter(c))}={list(c.values())[-1]!r}"
                              for c, _, _ in VALUE_CASES])
def test_bad_value_names_its_flag(changes, field, words, tmp_path):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{"placeholder_token": "tok", "output_dir": str(tmp_path / "out"),
                       **changes})
    assert info.value.field == field
    one_sentence(info.value, words, f"--{field}" if field != "placeholder_token" else "")
    assert not (tmp_path / "out").exists()


def test_bad_value_in_run_toml_names_file_and_field(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[data]\nresolution = 500\n[token]\nplaceholder_token = "tok"\n')
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_toml(path)
    assert info.value.field == "resolution"
    one_sentence(info.value, "--resolution", "multiple of 8", "got 500")
    path.write_text('[training]\ntrain_batch_size = "four"\n')
    with pytest.raises(ConfigError, match="whole number"):
        TrainConfig.from_toml(path)


# --- the data folder ------------------------------------------------------------------------


def test_data_dir_missing(cfg, tmp_path):
    refused(cfg(train_data_dir=str(tmp_path / "nope")), DataError, "train_data_dir",
            str(tmp_path / "nope"), "does not exist")


def test_data_dir_empty(cfg, tmp_path):
    (tmp_path / "empty").mkdir()
    refused(cfg(train_data_dir=str(tmp_path / "empty")), DataError, "train_data_dir",
            "holds no images")


def test_data_dir_holds_no_images(cfg, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub.png").mkdir()  # a folder with an image name is not an image
    refused(cfg(train_data_dir=str(folder)), DataError, "train_data_dir", "holds no images",
            "PNG, JPEG")


def test_data_dir_is_a_file(cfg, tmp_path):
    (tmp_path / "file.png").write_bytes(b"x")
    refused(cfg(train_data_dir=str(tmp_path / "file.png")), DataError, "train_data_dir",
            "is a file, not a folder")


def test_data_dir_holding_only_broken_images_names_them(cfg, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("hello")
    refused(cfg(train_data_dir=str(folder)), DataError, "train_data_dir",
            "None of the 2 image files", "empty.png", "text.jpg", "0 bytes")


def test_data_dir_unreadable_simulated(cfg, tmp_path, monkeypatch):
    # Tests run as root, where chmod 000 does not stop reads: simulate what a user gets.
    folder = tmp_path / "locked"
    folder.mkdir()
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    refused(cfg(train_data_dir=str(folder)), DataError, "train_data_dir",
            "cannot be read", "permission", "chmod")


@pytest.mark.skipif(IS_ROOT, reason="root reads a chmod 000 folder anyway; the simulated "
                                    "test above covers the message")
def test_data_dir_unreadable_for_real(cfg, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0)
    try:
        refused(cfg(train_data_dir=str(folder)), DataError, "train_data_dir", "cannot be read")
    finally:
        folder.chmod(0o755)


# --- the model --------------------------------------------------------------------------------


def test_model_path_missing(cfg, tmp_path):
    refused(cfg(model=str(tmp_path / "no-model")), ModelError, "model",
            str(tmp_path / "no-model"), "does not exist")


def test_model_relative_path_missing(cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(cfg(model="./models/sd15"), ModelError, "model", "models/sd15", "does not exist")


def test_model_not_a_diffusers_folder(cfg, demo_images_dir):
    refused(cfg(model=str(demo_images_dir)), ModelError, "model",
            "not a diffusers model folder", "model_index.json")


@pytest.mark.parametrize("missing", ["vae", "tokenizer", "unet"])
def test_model_missing_a_component(cfg, tiny_model_dir, tmp_path, missing):
    broken = link_model(tiny_model_dir, tmp_path / "broken", skip=(missing,))
    refused(cfg(model=str(broken)), ModelError, "model", f"no {missing}/ folder")


def test_model_name_not_found_lists_the_names(cfg, tiny_model_dir, tmp_path):
    root = tmp_path / "invokeai"
    link_model(tiny_model_dir, root / "models" / "sd-1" / "main" / "tiny-a")
    link_model(tiny_model_dir, root / "models" / "sd-1" / "main" / "tiny-b")
    refused(cfg(model="stable-diffusion-1.5", root=str(root)), ModelError, "model",
            "not found", "sd-1/main/tiny-a", "sd-1/main/tiny-b")
    # ...and a name that is found is used.
    assert preflight(cfg(model="tiny-a", root=str(root))).model_path.name == "tiny-a"


def test_model_name_with_no_models_under_root(cfg, tmp_path):
    refused(cfg(model="stable-diffusion-1.5", root=str(tmp_path / "empty-root")), ModelError,
            "model", "found no models", "empty-root")


# --- the trigger and the initializer ------------------------------------------------------------


def test_trigger_that_is_a_known_word_is_refused_with_a_new_form(cfg):
    tokenizer = preflight(cfg()).tokenizer
    with pytest.raises(ConfigError) as info:
        check_trigger(tokenizer, "cat")
    assert info.value.field == "placeholder_token"
    one_sentence(info.value, "'cat' is already a word", "<cat-ti>")


def test_bare_word_trigger_is_wrapped_so_it_is_new(cfg):
    # `--placeholder_token cat` means the new token <cat> (as the help says), never the word.
    config = cfg(placeholder_token="cat")
    assert config.trigger == "<cat>"
    preflight(config)


def test_initializer_of_several_tokens_names_them(cfg):
    text = refused(cfg(initializer_token="teddy bear"), ConfigError, "initializer_token",
                   "'teddy', 'bear'", "one token")
    assert "2 tokens" in text


def test_initializer_tokens_must_match_vectors(cfg):
    refused(cfg(initializer_token="fluffy dog house", num_vectors=2), ConfigError,
            "initializer_token", "3 tokens", "exactly 2 tokens")
    preflight(cfg(initializer_token="teddy bear", num_vectors=2))  # one token per vector


# --- the output folder ----------------------------------------------------------------------


def test_output_dir_is_a_file(cfg, tmp_path):
    (tmp_path / "taken").write_text("x")
    refused(cfg(output_dir=str(tmp_path / "taken")), ConfigError, "output_dir", "is a file")


def test_output_dir_below_a_file(cfg, tmp_path):
    (tmp_path / "taken").write_text("x")
    refused(cfg(output_dir=str(tmp_path / "taken" / "run")), ConfigError, "output_dir",
            "cannot be created", "is a file")


def test_output_dir_not_writable_simulated(cfg, tmp_path, monkeypatch):
    # As root every folder is writable: simulate a read-only parent the way preflight sees it.
    parent = tmp_path / "readonly"
    parent.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == parent
                        else real_access(p, mode, **kw))
    refused(cfg(output_dir=str(parent / "run")), ConfigError, "output_dir", "not writable",
            str(parent))


@pytest.mark.skipif(IS_ROOT, reason="root writes into a read-only folder anyway")
def test_output_dir_not_writable_for_real(cfg, tmp_path):
    parent = tmp_path / "readonly"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        refused(cfg(output_dir=str(parent / "run")), ConfigError, "output_dir", "not writable")
    finally:
        parent.chmod(0o755)


# --- resume and initial embeddings ------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir, demo_images_dir, tmp_path_factory):
    """A 2-step run with a checkpoint at step 2 (trigger <star>, one vector)."""
    from trainer import train

    tmp = tmp_path_factory.mktemp("finished")
    config = make_config(tiny_model_dir, demo_images_dir, tmp, max_train_steps=2,
                         checkpointing_steps=2, save_steps=0, dvar_eval_every=0)
    train(config)
    assert (config.output_path / "checkpoint-2" / "meta.json").is_file()
    return config


def test_resume_latest_without_checkpoint_starts_fresh_and_says_so(cfg, tmp_path):
    """As diffusers' textual_inversion.py and invokeai-ti do (README's typical usage)."""
    (tmp_path / "out").mkdir()
    checked = preflight(cfg(resume_from_checkpoint="latest"))
    assert checked.resume_dir is None
    (warning,) = checked.warnings
    assert "fresh run" in warning and str(tmp_path / "out") in warning


def test_a_fresh_run_into_a_finished_run_is_refused(finished_run):
    before = sorted(p.name for p in finished_run.output_path.iterdir())
    refused(finished_run, ConfigError, "output_dir", "already holds a run", "checkpoint-2",
            "--resume_from_checkpoint latest", "--output_dir")
    assert sorted(p.name for p in finished_run.output_path.iterdir()) == before


def test_resume_named_checkpoint_missing(cfg, tmp_path):
    refused(cfg(resume_from_checkpoint="checkpoint-300"), ResumeError,
            "resume_from_checkpoint", "checkpoint-300", "does not exist")


def test_resume_checkpoint_of_another_trigger(finished_run):
    before = sorted(p.name for p in finished_run.output_path.iterdir())
    refused(finished_run.replace(placeholder_token="moon", resume_from_checkpoint="latest",
                                 max_train_steps=4),
            ResumeError, "resume_from_checkpoint", "trigger '<star>'", "'<moon>'")
    assert sorted(p.name for p in finished_run.output_path.iterdir()) == before


def test_resume_checkpoint_of_another_model(finished_run, tiny_vpred_model_dir):
    refused(finished_run.replace(model=str(tiny_vpred_model_dir), resume_from_checkpoint="latest",
                                 max_train_steps=4),
            ResumeError, "resume_from_checkpoint", "was made with model", "tiny-vpred")


def test_resume_same_model_through_a_symlink_is_accepted(finished_run, tmp_path):
    from trainer import train

    link = tmp_path / "same-model"
    link.symlink_to(finished_run.model)
    out = tmp_path / "copy"
    shutil.copytree(finished_run.output_path, out)
    config = finished_run.replace(model=str(link), output_dir=str(out),
                                  resume_from_checkpoint="latest", max_train_steps=3)
    assert preflight(config).resume_dir.name == "checkpoint-2"
    assert train(config).step == 3


def test_resume_checkpoint_with_other_vector_count(finished_run):
    refused(finished_run.replace(num_vectors=3, resume_from_checkpoint="latest",
                                 max_train_steps=4),
            ResumeError, "resume_from_checkpoint", "number of vectors 1", "--num_vectors 1")


def test_initial_embedding_of_wrong_dimension(cfg, tmp_path):
    save_embedding(tmp_path / "sd2", "<old>", {"text_encoder": torch.zeros(1, 1024)}, "sd2",
                   step=0, model_name="x")
    refused(cfg(initial_embedding=str(tmp_path / "sd2" / "learned_embeds.safetensors")),
            ResumeError, "initial_embedding", "token dimension 1024", "token dimension 32",
            "SD 2.x")


def test_initial_embedding_with_other_vector_count(cfg, tmp_path):
    save_embedding(tmp_path / "two", "<old>", {"text_encoder": torch.zeros(2, 32)}, "sd1",
                   step=0, model_name="x")
    refused(cfg(initial_embedding=str(tmp_path / "two" / "learned_embeds.bin")), ResumeError,
            "initial_embedding", "holds 2 vectors", "--num_vectors 2")


def test_initial_embedding_missing_or_a_folder(cfg, tmp_path):
    refused(cfg(initial_embedding=str(tmp_path / "nope.pt")), ResumeError, "initial_embedding",
            "does not exist")
    refused(cfg(initial_embedding=str(tmp_path)), ResumeError, "initial_embedding",
            "is a folder")


def test_initial_embedding_that_is_not_an_embedding(cfg, tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    refused(cfg(initial_embedding=str(tmp_path / "junk.safetensors")), ResumeError,
            "initial_embedding", "junk.safetensors", "not a readable embedding")
    torch.save({"a": torch.zeros(2, 32), "b": torch.zeros(2, 32)}, tmp_path / "two.bin")
    refused(cfg(initial_embedding=str(tmp_path / "two.bin")), ResumeError, "initial_embedding",
            "holds no embedding tensor")


# --- device -----------------------------------------------------------------------------------


def test_fp16_on_the_cpu(cfg):
    """Refused on any machine: the tests' configs pin --device cpu, GPU or not."""
    refused(cfg(mixed_precision="fp16"), ConfigError, "mixed_precision", "fp16 needs a CUDA GPU",
            "--device cpu was chosen", "--mixed_precision no")


def test_fp16_on_auto_without_a_gpu(cfg, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    refused(cfg(mixed_precision="fp16", device="auto"), ConfigError, "mixed_precision",
            "fp16 needs a CUDA GPU", "no CUDA GPU was found")


def test_cuda_asked_on_a_machine_without_it(cfg, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    refused(cfg(device="cuda"), ConfigError, "device", "--device", "needs a CUDA GPU",
            "--device cpu")


def test_a_gpu_number_the_machine_does_not_have(cfg, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    refused(cfg(device="cuda:2"), ConfigError, "device", "cuda:2 does not exist",
            "2 CUDA GPUs", "cuda:0 to cuda:1")


def test_more_gpu_processes_than_gpus(cfg, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    refused(cfg(device="cuda", num_processes=2), ConfigError, "num_processes",
            "--num_processes", "torch sees 1")


def test_bf16_on_a_gpu_without_bf16(cfg, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    refused(cfg(mixed_precision="bf16", device="cuda"), ConfigError, "mixed_precision",
            "bf16 is not supported by this GPU", "--mixed_precision fp16")


# --- a folder another run is writing -----------------------------------------------------------


def test_output_dir_of_a_live_run_is_refused(cfg, tmp_path):
    config = cfg()
    config.output_path.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = lock.Owner(holder.pid, lock.start_time(holder.pid), socket.gethostname())
        (config.output_path / lock.LOCK_NAME).write_text(owner.text())
        refused(config, UserError, "output_dir", f"pid {holder.pid}", "ti-tui watch")
    finally:
        holder.kill()
        holder.wait()
    preflight(config)  # its owner is gone: the lock is stale and no longer refuses


def test_stale_lock_with_a_reused_pid_is_not_respected(cfg):
    config = cfg()
    config.output_path.mkdir()
    parent = os.getppid()  # alive, but started long before this "lock" says
    stale = lock.Owner(parent, (lock.start_time(parent) or 0) - 3600, socket.gethostname())
    (config.output_path / lock.LOCK_NAME).write_text(stale.text())
    preflight(config)
    taken = lock.RunLock.acquire(config.output_path)
    assert lock.read_owner(taken.path) == os.getpid()
    taken.release()
    assert not taken.path.exists()


# --- what cannot fit what the model sees (issue 15, extra kind c) ------------------------------


def test_vectors_that_would_be_cut_from_the_77_token_window_are_refused(cfg):
    # "a close-up painting in the style of {}" takes 11 tokens with begin/end: 66 vectors fit.
    config = cfg(learnable_property="style", num_vectors=67, initializer_token="random")
    text = refused(config, ConfigError, "num_vectors", "77-token window", "use at most 66")
    assert "a close-up painting in the style of <star>" in text
    preflight(cfg(learnable_property="style", num_vectors=66, initializer_token="random"))


def test_a_preview_prompt_that_would_be_cut_is_refused(cfg):
    long_prompt = "a photo of <star> " + "on a very sunny day " * 15
    refused(cfg(validation_prompt=long_prompt), ConfigError, "validation_prompt",
            "more than the text encoder's 77", "shorten it")


def test_braces_in_a_preview_prompt_are_text_not_a_format_field():
    from trainer.data import fill, preview_template

    template = preview_template("a {cute} <star> in a {box}", "<star>")
    assert fill(template, "<star> <star>_1") == "a {cute} <star> <star>_1 in a {box}"
    assert preview_template("a cat on a sofa", "<star>") == "a cat on a sofa {}"


def test_non_square_images_and_ignored_caption_files_are_said(tmp_path):
    from PIL import Image

    from trainer import data

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (128, 64), (9, 9, 9)).save(folder / "wide.png")
    Image.new("RGB", (64, 66), (9, 9, 9)).save(folder / "nearly.png")  # within 5%: silent
    (folder / "wide.txt").write_text("a photo of a cat, kohya style caption")
    said: list[str] = []
    data.load_images(folder, 64, False, on_warning=lambda message, file: said.append(message))
    squeezed = [m for m in said if "not square" in m]
    assert len(squeezed) == 1 and "wide.png 128x64" in squeezed[0]
    assert "nearly.png" not in squeezed[0] and "--center_crop" in squeezed[0]
    captions = [m for m in said if "caption file" in m]
    assert len(captions) == 1 and "wide.txt" in captions[0]
    assert "--learnable_property" in captions[0]
    said.clear()
    data.load_images(folder, 64, True, on_warning=lambda message, file: said.append(message))
    assert not [m for m in said if "not square" in m]  # cropped, not squeezed


# --- advice names the setting that applies (issue 15, extra kind b) ----------------------------


@pytest.mark.parametrize("changes, field, words", [
    (dict(max_train_steps=2), "max_train_steps",
     ("already at step 2", "raise --max_train_steps")),
    (dict(max_train_steps=100, num_train_epochs=1, repeats=1, train_batch_size=8),
     "num_train_epochs", ("already at step 2", "set by --num_train_epochs 1 x --repeats 1",
                          "raise --num_train_epochs")),
    (dict(max_train_steps=100, learning_rate="5e-3:2"), "learning_rate",
     ("(--learning_rate)", "ends at or before step 2", "a rate that has no step")),
], ids=["steps", "epochs", "schedule"])
def test_a_resume_past_the_end_names_the_limit_that_ends_the_run(finished_run, changes, field,
                                                                 words):
    from trainer import train

    config = finished_run.replace(resume_from_checkpoint="latest", **changes)
    with pytest.raises(UserError) as info:
        train(config)
    assert info.value.field == field, str(info.value)
    one_sentence(info.value, *words)
    if field != "max_train_steps":
        assert "--max_train_steps" not in str(info.value)


def test_a_schedule_that_ends_first_names_the_limit_it_cuts(tiny_model_dir, demo_images_dir,
                                                             tmp_path):
    from trainer import train

    sink: list = []
    train(make_config(tiny_model_dir, demo_images_dir, tmp_path, learning_rate="5e-3:2",
                      max_train_steps=4, save_steps=0, checkpointing_steps=0,
                      dvar_eval_every=0), emit=sink.append)
    said = [e.message for e in sink if e.type == "warning" and "schedule ends" in e.message]
    assert said == ["The --learning_rate schedule ends at step 2, before the --max_train_steps "
                    "limit (4); training stops there."]
