"""Text a user types that becomes a file or folder name (issue 15, extra kind a).

The trigger names ROOT/text-inversion-output/<name>, ROOT/embeddings/<name>/ and
<name>.safetensors / <name>.pt: it must never escape the folder meant for it, reuse another
(`..` is the root itself), hide its files, or be a name another system cannot create.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from trainer.config import TrainConfig
from trainer.errors import ConfigError
from trainer.names import MAX_NAME, check_trigger_text, suggestion

BAD = {
    "..": "start or end with a dot", "<..>": "start or end with a dot",
    ".": "start or end with a dot", "<.>": "start or end with a dot",
    ".hidden": "start or end with a dot", "cat.": "start or end with a dot",
    "../x": "letters, digits", "a/b": "letters, digits", "a\\b": "letters, digits",
    "a\0b": "letters, digits", "ca\u0301t": "letters, digits", "\uff43at": "letters, digits",
    "cat\n": "letters, digits", "<<cat>>": "letters, digits",
    "con": "Windows reserves", "<NUL>": "Windows reserves", "com1.x": "Windows reserves",
    "Lpt9": "Windows reserves", "a" * (MAX_NAME + 1): f"at most {MAX_NAME}",
}


@pytest.mark.parametrize("text", BAD, ids=[repr(t)[:20] for t in BAD])
def test_a_trigger_that_would_escape_or_reuse_a_folder_is_refused(text):
    with pytest.raises(ConfigError) as info:
        TrainConfig(placeholder_token=text)
    message = str(info.value)
    assert info.value.field == "placeholder_token" and "\n" not in message
    assert BAD[text] in message
    # The suggested trigger passes every rule itself.
    offered = message.rsplit("try ", 1)[1].rstrip(".")
    assert offered == suggestion(text)
    check_trigger_text(offered)
    assert TrainConfig(placeholder_token=offered).trigger_name not in ("", ".", "..")


@pytest.mark.parametrize("text", ["<cat>", "cat", "my-cat_2", "v1.5-style", "a" * MAX_NAME,
                                  "learned_embeds", "-x"])
def test_ordinary_triggers_pass_and_stay_inside_the_root(text, tmp_path):
    config = TrainConfig(placeholder_token=text, root=str(tmp_path))
    out = config.output_path.resolve()
    assert out.parent == (tmp_path / "text-inversion-output").resolve()


def test_the_command_refuses_dot_dot_before_touching_the_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    done = subprocess.run([sys.executable, "-m", "ti_tui.cli", "train", "--root", str(root),
                           "--placeholder_token", "..", "--train_data_dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert done.returncode == 2
    assert done.stderr.startswith("ti-tui: Trigger term '..'") and "Traceback" not in done.stderr
    assert list(root.iterdir()) == []
