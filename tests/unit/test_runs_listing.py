"""How runs are listed where room or a terminal is short: the home table's fitting
(ti_tui/screens/home_fit.py), the key line, and the plain-text sentences of `ti-tui` without
a terminal, `ti-tui watch` and `ti-tui models` (ti_tui/runs_listing.py, ti_tui/cli.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.binding import ActiveBinding, Binding

from ti_tui import terminal
from ti_tui.cli import main
from ti_tui.runs_index import DAMAGED, EARLY_STOP, RunEntry, default_runs_folder
from ti_tui.runs_listing import no_runs_words, watch_problem
from ti_tui.screens.home_fit import (elide, fit, fit_keys, key_width, needs_run_column,
                                     run_names, short_count, table_width)

NOW = 1_700_000_000.0


def run(folder: str, trigger: str, step: int = 608, max_steps: int = 1000,
        place: str = "/r/text-inversion-output") -> RunEntry:
    path = Path(place) / folder
    return RunEntry(path, EARLY_STOP, f"stopped early by DVAR at step {step}", trigger=trigger,
                    model="sd-1/main/toy-model", family="sd1", step=step, max_steps=max_steps,
                    l_det=0.0789, dvar_ratio=0.368, updated=NOW - 300,
                    best_file=path / f"{trigger.strip('<>')}.safetensors")


GREEN = [run("green-star-2", "<green-star>", 211), run("green-star", "<green-star>"),
         run("green-star3", "<green-star>", 530), run("green-star2", "<green-star>", 606)]


def test_the_run_column_appears_when_the_trigger_does_not_tell_runs_apart():
    assert needs_run_column(GREEN)
    assert not needs_run_column([run("moon", "<moon>"), run("star", "<star>")])
    assert needs_run_column([run("moon-v2", "<moon>")])  # a folder named otherwise
    damaged = RunEntry(Path("/r/text-inversion-output/broken"), DAMAGED, "damaged")
    assert not needs_run_column([run("moon", "<moon>"), damaged])  # no trigger to compare
    # The same folder name in two listed places: the parent tells them apart.
    names = run_names([run("moon", "<moon>"), run("moon", "<moon>", place="/x/more")])
    assert set(names.values()) == {"text-inversion-output/moon", "more/moon"}


@pytest.mark.parametrize("room", range(24, 141))
def test_nothing_is_cut_at_any_width(room):
    plan, rows = fit(GREEN, room, NOW)
    assert table_width(rows, plan.columns) <= room or plan.name_room is not None
    for entry, row in zip(GREEN, rows):
        assert row["Step"] in (f"{entry.step}/1000", f"{entry.step}/1k", str(entry.step))
        if "Best file" in row:
            assert row["Best file"] == entry.best_file.name
        if "Ratio" in row:
            assert row["Ratio"] == "0.368"
        assert "Run" in row  # the runs stay told apart


def test_columns_give_way_in_order():
    full, _ = fit(GREEN, 200, NOW)
    assert full.columns == ("Run", "Trigger", "Model", "State", "Step", "L_det", "Ratio",
                            "Age", "Best file")
    at_100, _ = fit(GREEN, 100, NOW)  # Model goes first, then L_det; the Best file stays
    assert at_100.columns == ("Run", "Trigger", "State", "Step", "L_det", "Ratio", "Age",
                              "Best file")
    at_90, _ = fit(GREEN, 90, NOW)
    assert at_90.columns == ("Run", "Trigger", "State", "Step", "Ratio", "Age", "Best file")
    plan, rows = fit(GREEN, 40, NOW)
    assert plan.columns == ("Run", "State", "Step")
    assert rows[0] == {"Run": "green-star-2", "State": "DVAR stop @211", "Step": "211/1k"}
    assert table_width(rows, plan.columns) <= 40
    plan, rows = fit(GREEN, 32, NOW)  # the state's step and the total go before any name
    assert rows[0]["Step"] == "211" and rows[0]["State"] == "DVAR stop"
    assert rows[0]["Run"] == "green-star-2"
    plan, rows = fit(GREEN, 24, NOW)  # last of all: names, shortened in the middle
    assert rows[3]["Run"].endswith("2") and "…" in rows[3]["Run"]
    assert table_width(rows, plan.columns) <= 24


def test_short_counts_and_elision():
    assert [short_count(n) for n in (900, 1000, 1500, 2500, 12000, 12345)] == \
        ["900", "1k", "1.5k", "2.5k", "12k", "12k"]
    assert elide("green-star3", 7) == "gre…ar3" and elide("moon", 7) == "moon"


def keys(*specs) -> dict[str, ActiveBinding]:
    out = {}
    for key, action, description, show in specs:
        out[key] = ActiveBinding(None, Binding(key, action, description, show=show), True)
    return out


HOME_KEYS = keys(("enter", "choose('open')", "Open", True), ("n", "choose('new')", "New", True),
                 ("r", "choose('resume')", "Resume", True), ("s", "stop", "Stop", True),
                 ("p", "choose('previews')", "Previews", True),
                 ("x", "delete", "Delete", True), ("delete", "delete", "Delete", True),
                 ("m", "choose('models')", "Models", True),
                 ("q", "choose('quit')", "Quit", True), ("f1", "keys", "Keys", False))


def display(binding: Binding) -> str:
    return {"enter": "⏎"}.get(binding.key, binding.key)


def test_the_key_line_keeps_the_most_used_keys_and_f1():
    assert fit_keys(HOME_KEYS, 100, display) is HOME_KEYS  # all fit: unchanged
    narrow = fit_keys(HOME_KEYS, 40, display)
    shown = [k for k, a in narrow.items() if a.binding.show]
    assert shown == ["enter", "n", "r", "q", "f1"]
    assert narrow["f1"].binding.description == "Keys"
    assert sum(key_width(display(narrow[k].binding), narrow[k].binding.description, True)
               for k in shown) <= 40
    assert set(narrow) == set(HOME_KEYS)  # hidden, never removed: every key still works


def test_no_runs_words_say_which_folder_is_missing(tmp_path):
    here = tmp_path / "runs"
    here.mkdir()
    assert no_runs_words([here]) == f"no runs under {here}"
    assert no_runs_words([tmp_path / "nope"]) == f"no runs under {tmp_path / 'nope'} " \
        "(it does not exist)"


def test_watch_problem_for_each_kind_of_folder(tmp_path):
    assert "does not exist" in watch_problem(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    assert "is a file, not a run folder" in watch_problem(tmp_path / "file")
    assert "holds no run" in watch_problem(tmp_path)
    (tmp_path / "run.toml").write_text("")
    assert "never started" in watch_problem(tmp_path)
    (tmp_path / "events.jsonl").write_text("")
    assert watch_problem(tmp_path) is None


def one_sentence(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("ti-tui: ") and err.count("\n") == 0 and "Traceback" not in err
    return err


def test_no_runs_and_no_terminal_says_so_and_how_to_start(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(terminal, "live_screen_problem",
                        lambda **kw: "standard input is not a terminal")
    assert main(["--root", str(tmp_path)]) == 2
    err = one_sentence(capsys)
    assert f"no runs under {default_runs_folder(tmp_path)} (it does not exist)" in err
    assert "listed above" not in err and "ti-tui train" in err and "ti-tui demo" in err


def test_a_missing_runs_folder_is_refused(tmp_path, capsys):
    assert main(["--root", str(tmp_path), "--runs", str(tmp_path / "nope")]) == 2
    assert "--runs" in one_sentence(capsys)


def test_watch_a_missing_folder_says_it_does_not_exist(tmp_path, capsys):
    assert main(["watch", str(tmp_path / "nope")]) == 2
    assert one_sentence(capsys) == (f"ti-tui: {tmp_path / 'nope'} does not exist; pass the "
                                    "output folder of a run (`ti-tui` lists them, with their "
                                    "folders).")
    assert main(["watch", str(tmp_path)]) == 2
    assert "holds no run" in one_sentence(capsys)


def test_models_with_a_missing_root_names_root(tmp_path, capsys, monkeypatch):
    assert main(["models", "--root", str(tmp_path / "nope")]) == 2
    err = one_sentence(capsys)
    assert "--root" in err and "does not exist" in err
    monkeypatch.setenv("INVOKEAI_ROOT", str(tmp_path / "gone"))
    assert main(["models"]) == 2
    assert "$INVOKEAI_ROOT" in one_sentence(capsys)


def test_a_run_is_named_so_that_runs_of_one_trigger_differ():
    """The stop note and the delete question name the run by its label."""
    assert run("moon", "<moon>").label == "<moon>"
    assert run("green-star2", "<green-star>").label == "green-star2 (<green-star>)"
    damaged = RunEntry(Path("/r/text-inversion-output/broken"), DAMAGED, "damaged")
    assert damaged.label == "broken"
