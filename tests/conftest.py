"""Shared pytest fixtures.

The environment lines run at import time, before any test module imports huggingface_hub,
so no test can reach a model hub and the demo cache never touches the user's real cache.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
# One thread per torch process: the tiny model gains nothing from two, and tests that start
# trainer subprocesses then never fight over the two cores (2 threads each ran ~5x slower).
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
# Every run of the suite trains on the CPU, on a machine with a GPU too: the product's own
# default of --device (trainer/devices.py), so subprocesses, the form and the CLI follow it.
# The tests helpers' configs also say device="cpu"; tests marked `gpu` ask for "cuda".
os.environ["TI_TUI_DEVICE"] = "cpu"
_SESSION_CACHE = tempfile.mkdtemp(prefix="ti-tui-test-cache-")
os.environ["TI_TUI_CACHE_DIR"] = _SESSION_CACHE
atexit.register(shutil.rmtree, _SESSION_CACHE, ignore_errors=True)

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _private_user_folders(tmp_path_factory, monkeypatch):
    """Each test gets its own config, state and data folders ($XDG_*_HOME, which platformdirs
    follows): preferences and last-exit notes saved by one test (or by the developer's own use
    of ti-tui) must never be read by another. Subprocesses inherit the setting."""
    base = tmp_path_factory.mktemp("user")
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(name, str(base / name.split("_")[1].lower()))


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` exercise CUDA: skipped, with the reason, on a machine without it."""
    gpu_tests = [item for item in items if "gpu" in item.keywords]
    if not gpu_tests:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (a `gpu` test); this machine has none")
    for item in gpu_tests:
        item.add_marker(skip)

# --- tiny models and demo images (trainer/demo.py) -------------------------------------------
# Built once per session (the first ~2.5 s with imports, then ~0.1 s). Tests that need to
# break a model make their own linked copy (see tests/engine/test_models.py), never modify these.


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny SD-1.x-shaped diffusers folder (epsilon prediction, 64 px native)."""
    from trainer.toy.demo import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_vpred_model_dir(tmp_path_factory):
    """The same tiny model with a v-prediction scheduler (like SD 2.x-768)."""
    from trainer.toy.demo import build_tiny_model

    out = tmp_path_factory.mktemp("models") / "tiny-vpred"
    return build_tiny_model(out, seed=0, prediction_type="v_prediction")


@pytest.fixture(scope="session")
def tiny_sdxl_dir(tmp_path_factory):
    """A tiny SDXL-shaped diffusers folder (trainer/tiny_sdxl.py): real 768/1280 token widths,
    64 px native; about 460 MB and 10 s to build, once per session."""
    from trainer.tiny_sdxl import build_tiny_sdxl

    return build_tiny_sdxl(tmp_path_factory.mktemp("models") / "tiny-sdxl", seed=0)


@pytest.fixture(scope="session")
def demo_images_dir(tmp_path_factory):
    """A folder holding the 6 demo training images (64 px PNGs)."""
    from trainer.toy.demo import write_demo_images

    folder = tmp_path_factory.mktemp("demo-images")
    write_demo_images(folder, count=6)
    return folder


# --- an InvokeAI root for the form's pilot tests (tests/ui/test_form*.py) -------------------------
@pytest.fixture
def root(tiny_model_dir, demo_images_dir) -> Path:
    """An InvokeAI root holding the tiny model and a data folder `cat` with 6 images.

    It lives at a short path (/tmp/tiXXXX) because the tests type paths key by key.
    """
    from tests.helpers import fill_invokeai_root

    root = Path(tempfile.mkdtemp(prefix="ti", dir="/tmp"))
    yield fill_invokeai_root(root, tiny_model_dir, demo_images_dir, "cat")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def tiny_config(tiny_model_dir, demo_images_dir, tmp_path):
    """Make a valid tiny config (tests/helpers.py `make_config`, into tmp_path); a test breaks
    one thing with `tiny_config(field=value)`, `model=` included (tests/engine/test_bad_input_*.py)."""
    from tests.helpers import make_config

    def make(**changes):
        model = changes.pop("model", tiny_model_dir)
        return make_config(model, demo_images_dir, tmp_path, **changes)
    return make


# --- one finished run, trained once per session ---------------------------------------------
@pytest.fixture(scope="session")
def finished_run(tiny_model_dir, demo_images_dir, tmp_path_factory):
    """A finished tiny run (tests/helpers.py `FinishedRun`: its config, events and vectors),
    shared by every test that only reads a run's files; a test that writes uses `.copy()`.

    Its files are compared at the end of the session: a test that wrote into the shared folder
    fails the session here instead of silently changing what later tests read.
    """
    from tests.helpers import train_finished_run, tree_state

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        run = train_finished_run(tiny_model_dir, demo_images_dir,
                                 tmp_path_factory.mktemp("finished-run"))
    finally:  # trainer.__main__.run installs its own SIGINT/SIGTERM handlers
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    folder = run.output_path.parent
    before = tree_state(folder)
    yield run
    assert tree_state(folder) == before, "a test wrote into the shared finished_run folder"


@pytest.fixture
def keep_signal_handlers():
    """trainer.__main__.run installs SIGINT/SIGTERM handlers: put pytest's back after."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)
