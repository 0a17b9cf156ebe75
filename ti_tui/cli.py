"""The `ti-tui` command.

    ti-tui [--root R] [--runs DIR]  the home screen: the runs, and a new run, resume, watch,
                                   summary, previews, stop, delete, models from there
    ti-tui --gui [--root R] [FLAGS...]  the setup form first (filled from FLAGS), then the
                                   live dashboard
    ti-tui demo                    the form pre-filled with the built-in demo model and images
    ti-tui train FLAGS...          headless training with invokeai-ti's flags
    ti-tui FLAGS...                the same (invokeai-ti trains when given flags without --gui)
    ti-tui models [--root R]       the models found under the root
    ti-tui watch OUTPUT_DIR        re-attach to a run (the live screen and its keys on a
                                   terminal), or summarise a finished one

The root is --root, else $INVOKEAI_ROOT, else ~/invokeai. --runs DIR (repeatable) lists the
runs in DIR too. Without a terminal, `ti-tui` prints the runs as plain lines (or says there
are none, where it looked and how to start one) and exits 2.
--preview auto|kitty|sixel|iterm|half-blocks (or $TI_TUI_PREVIEW) picks how preview images are
drawn: real pixels with Kitty graphics or Sixel where the terminal has them, coloured
half-blocks elsewhere (tmux, screen, NO_COLOR, unknown terminals).

Exit codes: 0 done (early or user stop included), 2 a user error (one line, no traceback),
1 an internal failure (the traceback goes to a crash log, see ti_tui/exits.py), 128+N ended by
signal N with the terminal restored (143 SIGTERM, 129 SIGHUP, 131 SIGQUIT, 130 SIGINT).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from trainer.errors import ConfigError, UserError

COMMANDS = ("train", "demo", "models", "watch")


def main(argv: list[str] | None = None) -> int:
    """The `ti-tui` command: dispatch to train, demo, models, watch or the form, and map
    every ending to an exit code (0 done, 2 a user error as one sentence on stderr, 1 a
    logged crash, 128+N after signal N)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # ti-tui never downloads a model
    from ti_tui import exits

    try:
        return _dispatch(argv)
    except UserError as exc:
        print(f"ti-tui: {exc}", file=sys.stderr)
        return exits.USER_ERROR
    except OSError as exc:
        from trainer import paths

        if not paths.is_user_path_error(exc):
            return exits.exit_code_for(exc)
        # A path the checks did not reach (they name the field): still one sentence, exit 2.
        print(f"ti-tui: {exc.filename} cannot be used: {paths.why(exc)}.", file=sys.stderr)
        return exits.USER_ERROR
    except Exception as exc:  # noqa: BLE001  (any crash: logged, one line, exit 1)
        return exits.exit_code_for(exc)
    except (KeyboardInterrupt, exits.Signalled) as exc:
        return exits.exit_code_for(exc)


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] in COMMANDS:
        command, rest = argv[0], argv[1:]
        from ti_tui.models_command import cmd_models

        return {"train": cmd_train, "demo": cmd_demo, "models": cmd_models,
                "watch": cmd_watch}[command](rest)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    gui = _parse_gui(argv)
    if gui is not None and gui.flags:
        # `--gui` with training flags: the form opens filled with them (saved preferences
        # under them, the flags win), as `ti-tui demo` opens it filled with the demo's. A
        # value the form shows but TrainConfig refuses (--resolution 500) opens the form
        # with that field marked, as if typed there; an unknown flag is still exit 2.
        refused: dict[str, tuple[str, str]] = {}
        defaults = _form_defaults(gui.root, gui.flags, refused)
        return run_form(gui.root, defaults=defaults, preview=gui.preview, restore=False,
                        refused=refused)
    if gui is not None:
        return run_form(gui.root, home=None if gui.gui else gui.runs, preview=gui.preview)
    return cmd_train(argv)


def _form_defaults(root: Path, flags: list[str],
                   refused: dict[str, tuple[str, str]] | None = None):
    """The form's opening values for `ti-tui --gui FLAGS`: TrainConfig defaults, the saved
    preferences over them, the flags (trainer/flags.py, the same parser as `ti-tui train`)
    over those. An unknown flag or a bad value raises ConfigError (one sentence, exit 2).

    `refused`: when given, a flag's value that TrainConfig refuses for a field the form shows
    is left out (the field keeps the value under it) and recorded there instead, as field ->
    (the value as typed, the refusal), one field at a time until the rest is accepted; the
    form shows and marks it (TrainingForm's `refused`)."""
    import dataclasses

    from ti_tui.preferences import restore_preferences
    from ti_tui.screens.form_fields import FIELDS
    from trainer.config import TrainConfig
    from trainer.flags import build_parser, config_from_args

    args = vars(build_parser("ti-tui --gui").parse_args(flags))
    base = TrainConfig.from_toml(args.pop("config")) if args.get("config") else None
    args.pop("config", None)
    if base is None:
        base, _ = restore_preferences(root, TrainConfig(root=str(root)))
    while True:  # ends: each refusal takes a flag out of args
        try:
            merged = config_from_args(args, base)
            break
        except ConfigError as exc:
            if refused is None or exc.field not in FIELDS or exc.field not in args:
                raise
            refused[exc.field] = (str(args.pop(exc.field)), str(exc))
    return dataclasses.replace(merged, root=str(root)) if "root" not in args else merged


def _parse_gui(argv: list[str]) -> argparse.Namespace | None:
    """`ti-tui [--root R] [--runs DIR] [--preview P]`: the home screen; with `--gui`: the
    form. Anything else is training."""
    rest = [a for a in argv if a not in ("--gui", "--front_end")]
    parser = argparse.ArgumentParser(prog="ti-tui", add_help=False)
    parser.add_argument("--root", "--root_dir", dest="root", default=None)
    parser.add_argument("--runs", action="append", default=[], type=Path, metavar="DIR")
    parser.add_argument("--preview", default=None)
    known, unknown = parser.parse_known_args(rest)
    known.gui = "--gui" in argv or "--front_end" in argv
    if known.preview is not None:
        from ti_tui.preview_art import PREVIEW_CHOICES

        if known.preview.lower() not in PREVIEW_CHOICES:
            raise UserError(f"--preview must be one of {', '.join(PREVIEW_CHOICES)}, not "
                            f"{known.preview!r}.", field="preview")
    if unknown and "--gui" not in argv and "--front_end" not in argv:
        return None
    known.flags = unknown  # with --gui: training flags that fill the form
    from trainer.config import default_root

    known.root = Path(known.root or default_root()).expanduser()
    return known


def run_form(root: Path, *, defaults=None, demo: bool = False, home: list[Path] | None = None,
             preview: str | None = None, restore: bool = True,
             refused: dict[str, tuple[str, str]] | None = None) -> int:
    """The Textual app: the home screen first when `home` is a list (extra run folders),
    else the form (showing and marking the `refused` flag values, see _form_defaults).
    `preview`: the --preview choice (preview_art.choose_protocol; UserError for an unknown
    one). Without a terminal to draw on: one sentence on stderr, exit 2 (the first refused
    value's sentence when there is one)."""
    from ti_tui import exits, terminal

    for folder in home or []:  # a mistyped --runs would list nothing, silently
        if not folder.expanduser().is_dir():
            what = "is not a folder" if folder.expanduser().exists() else "does not exist"
            raise UserError(f"--runs {folder} {what}; pass a folder holding run folders "
                            "(or one run folder).", field="runs")
    problem = terminal.live_screen_problem(interactive=True)
    if problem is not None and home is not None:
        # No screen here (a pipe, a log, TERM=dumb): the runs as plain lines, and why.
        from ti_tui.runs_index import default_runs_folder, index_runs
        from ti_tui.runs_listing import no_runs_words, plain_lines

        places = [default_runs_folder(root), *(p.expanduser() for p in home)]
        entries = index_runs(places)
        for line in plain_lines(entries):
            print(line)
        if entries:
            print(f"ti-tui: the home screen needs a terminal it can draw on ({problem}); the "
                  "runs are listed above.", file=sys.stderr)
        else:
            print(f"ti-tui: {no_runs_words(places)}, and the home screen needs a terminal "
                  f"it can draw on ({problem}); start a run with `ti-tui train FLAGS` (see "
                  "`ti-tui train --help`) or `ti-tui demo --headless`, or run `ti-tui` in a "
                  "terminal.", file=sys.stderr)
        return exits.USER_ERROR
    if problem is not None:
        if refused:  # no form to fix it in: the refusal itself, as `ti-tui train` says it
            print(f"ti-tui: {next(iter(refused.values()))[1]}", file=sys.stderr)
            return exits.USER_ERROR
        print(f"ti-tui: the form needs a terminal it can draw on ({problem}); use "
              "`ti-tui train --help` for headless training.", file=sys.stderr)
        return exits.USER_ERROR
    from ti_tui import preview_art
    from ti_tui.app import make_app

    try:
        # Before the app starts: asking the terminal must not race Textual's input thread.
        preview_art.choose_protocol(preview)
    except ValueError as exc:
        raise UserError(f"{exc}.", field="preview") from None
    app = make_app(root=root, defaults=defaults, demo=demo, restore=restore,
                   home=[p.expanduser() for p in home] if home is not None else None,
                   refused=refused)
    return exits.run_app(app)  # signals, crashes and exit codes, as for every entry point


def cmd_train(argv: list[str]) -> int:
    """`ti-tui train FLAGS`: parse the flags (ConfigError on a bad one) and train with the
    headless view; remembered --models_dir folders apply when none is given."""
    from trainer.flags import parse_config

    if any(a in ("-h", "--help") for a in argv):
        from trainer.flags import build_parser

        build_parser("ti-tui train").print_help()
        return 0
    config = parse_config(argv, prog="ti-tui train")
    if config.models_dir is None:  # the checkpoint folders `ti-tui models` remembered
        from ti_tui.preferences import saved_models_dirs

        saved = saved_models_dirs(config.root)
        if saved:
            config = config.replace(models_dir=os.pathsep.join(saved))
    return train_headless(config)


def train_headless(config) -> int:
    """Start the trainer, show its progress here, forward Ctrl-C as a clean stop."""
    from rich.console import Console

    from ti_tui import exits, terminal
    from ti_tui.headless import FORCED_CODES, follow_run
    from ti_tui.runner import start_run, watch_hint

    fresh = not os.path.exists(config.output_path)  # False, not OSError, for a bad path
    handle = start_run(config)
    interrupts = 0

    def on_interrupt(signum, frame) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            handle.stop()  # finish the step, save checkpoint and embedding
        else:
            handle._signal(signal.SIGINT)  # the trainer exits at once on a second signal

    signal.signal(signal.SIGINT, on_interrupt)
    signal.signal(signal.SIGTERM, on_interrupt)
    console = Console(highlight=False)
    try:
        # SIGHUP and SIGQUIT leave the view (the terminal restored); the trainer goes on.
        with exits.leave_on_signals((signal.SIGHUP, signal.SIGQUIT)):
            state = follow_run(handle.events_path, console=console, handle=handle,
                               tty=terminal.can_draw_live(interactive=False),
                               log_every=config.log_every)
    except exits.Signalled:
        _say_safely(watch_hint(handle.output_dir))
        raise
    code = handle.wait()
    if code is None:
        code = handle.wait(30)
    if code in FORCED_CODES and not state.finished:
        pass  # follow_run said what the second Ctrl-C did and what is left
    elif code not in (0, None):
        _report_failure(handle.output_dir, code, recorded=state.error is not None,
                        state=state, fresh=fresh)
    return 0 if code is None else code


def _say_safely(line: str) -> None:
    """One line on stderr, unless the terminal is gone (a hang-up)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _report_failure(output_dir: Path, code: int, recorded: bool = True, state=None,
                    fresh: bool = False) -> None:
    """Say on stderr why the trainer ended with `code`.

    A user error (2) ends in its one sentence on stderr, like every refusal before the start
    (stdout's progress lines showed it too). If it struck before the first update in a
    folder this start created, the folder goes again (runner.discard_failed_start): a
    refused run leaves nothing behind.
    """
    if code == 2:
        if not recorded:
            # The trainer could not even append its error event: the disk under the output
            # folder is full or read-only, so say so from here.
            print(f"ti-tui: {_unrecorded_stop(output_dir)}", file=sys.stderr)
            return
        error = state.error if state is not None else None  # an events.Error
        if error is not None and error.message:
            hint = f" {error.hint}" if error.hint else ""
            _say_safely(f"ti-tui: {error.message}{hint}")
        if fresh and state is not None and state.step == 0 and not state.last_checkpoint:
            from ti_tui.runner import discard_failed_start

            discard_failed_start(output_dir)
        return
    print(f"ti-tui: the trainer failed (exit code {code}); its log is "
          f"{output_dir / 'trainer.log'}.", file=sys.stderr)


def _unrecorded_stop(output_dir: Path) -> str:
    """The sentence for a trainer that stopped (exit 2) without recording why."""
    import shutil

    from trainer.checkpoint_index import latest_checkpoint

    try:
        free = f"{shutil.disk_usage(output_dir).free:,} bytes free"
        latest = latest_checkpoint(output_dir)
    except OSError as exc:
        free, latest = f"unreadable: {exc.strerror or exc}", None
    then = ("resume with --resume_from_checkpoint latest" if latest is not None
            else "start the run again")
    return (f"The trainer stopped without being able to write to {output_dir} ({free}); "
            f"free some space or fix the folder's permissions, then {then}.")


def cmd_demo(argv: list[str]) -> int:
    """Build (once) the tiny demo model and images, then open the form or train headless."""
    parser = argparse.ArgumentParser(prog="ti-tui demo",
                                     description="Train on the built-in demo model and images. "
                                     "Each demo is a new run in a fresh folder (green-star, "
                                     "then green-star-2, ...); `ti-tui` lists the earlier ones.")
    parser.add_argument("--root", default=None, help="Where outputs go (default: a demo "
                        "folder in the user cache).")
    parser.add_argument("--headless", action="store_true",
                        help="Train at once and print progress instead of opening the form.")
    parser.add_argument("--max_train_steps", type=int, default=1000)
    args = parser.parse_args(argv)
    from ti_tui.demo_setup import demo_config

    print("Preparing the demo model and images (built once, then cached)...", flush=True)
    config = demo_config(root=args.root, max_train_steps=args.max_train_steps)
    from ti_tui import terminal

    problem = terminal.live_screen_problem(interactive=True)
    if not args.headless and problem is not None:
        print(f"No live screen here ({problem}): training headless.", flush=True)
    if args.headless or problem is not None:
        return train_headless(config)
    return run_form(Path(config.root), defaults=config, demo=True)


def cmd_watch(argv: list[str]) -> int:
    """`ti-tui watch OUTPUT_DIR`: follow a running trainer's events, or summarise a finished
    run; leaving the view (a signal) prints how to come back and never stops the run."""
    parser = argparse.ArgumentParser(prog="ti-tui watch",
                                     description="Re-attach to a run, or summarise it.")
    parser.add_argument("output_dir", type=Path)
    args = parser.parse_args(argv)
    from ti_tui import exits
    from ti_tui.headless import run_watch
    from ti_tui.runner import watch_hint

    from trainer.paths import check_path

    check_path("ti-tui watch OUTPUT_DIR", args.output_dir)
    from ti_tui.runs_listing import watch_problem

    problem = watch_problem(args.output_dir.expanduser())
    if problem is not None:  # one sentence, exit 2 (main)
        raise UserError(problem[:1].upper() + problem[1:], field="output_dir")
    from ti_tui import terminal
    from ti_tui.runner import run_alive

    folder = args.output_dir.expanduser().absolute()
    if run_alive(folder) and terminal.live_screen_problem(interactive=True) is None \
            and terminal.can_draw_live(interactive=False):
        # A running run, on a terminal that can take keys: the app's live screen, with its
        # keys (d leaves, F1 lists them all) and its summary at the end. Elsewhere (no
        # keyboard, a finished run, stdout sent to a file or a pipe: `ti-tui watch DIR >
        # log` asks for lines) the Rich view or plain lines below.
        return _watch_live(folder)
    try:
        with exits.leave_on_signals():  # the terminal restored; the run goes on
            return run_watch(args.output_dir.expanduser())
    except exits.Signalled:
        _say_safely(watch_hint(args.output_dir.expanduser()))
        raise


def _watch_live(folder: Path) -> int:
    """The Textual app on the live screen of the run in `folder` (TiTuiApp.watch_flow)."""
    from ti_tui import exits, preview_art
    from ti_tui.app import make_app
    from trainer.config import TrainConfig, default_root

    try:
        root = TrainConfig.from_toml(folder / "run.toml").root
    except UserError:  # the live screen needs only events.jsonl
        root = default_root()
    try:  # before the app starts, as run_form does; $TI_TUI_PREVIEW may be mistyped
        preview_art.choose_protocol(None)
    except ValueError as exc:
        raise UserError(f"{exc}.", field="preview") from None
    app = make_app(root=Path(root).expanduser(), restore=False, watch=folder)
    return exits.run_app(app)


if __name__ == "__main__":
    sys.exit(main())
