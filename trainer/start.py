"""Start a run with one process paying for the checks: check, then write the folder, then train.

Before this module, `ti-tui train` ran every check itself (importing torch, transformers and
diffusers, loading the tokenizer, building meta models for the weight shapes) and then started
`python -m trainer run.toml`, which imported all of it again and repeated every check. On an
H200 the UI's share was 5.2 s of a 31 s start (issue 16). Now a single trainer process does it:

    UI                                     python -m trainer --start FD
    ──                                     ────────────────────────────
    writes the settings (TOML) to stdin →  reads them, runs preflight (every user error),
                                           creates OUTPUT_DIR, writes run.toml
    reads one JSON line from FD        ←   {"ok": true}   or   {"error": ..., "field": ...}
    shows the run / raises UserError       moves its output to trainer.log, trains

Nothing is written before the checks pass, exactly as when the UI checked: a refused run exits
2 with the same one sentence, which the UI raises again as the same UserError class with the
same field (so the form marks the same field). The trainer's checks and the model load then
share one interpreter, one torch import and one Preflight (tokenizer included).

`python -m trainer run.toml` (by hand, or every process of `accelerate launch`) still checks
everything itself: the trainer never trusts that somebody else did.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Callable

from trainer import errors, paths
from trainer.config import TrainConfig
from trainer.errors import ConfigError, UserError, write_failed
from trainer.events import EVENTS_FILE

START_FLAG = "--start"
"""`python -m trainer --start FD`: the settings on stdin, the one-line answer on file
descriptor FD."""
RUN_FILE = "run.toml"
LOG_FILE = "trainer.log"


def prepare_output(config: TrainConfig):
    """Check everything, then create the output folder and write run.toml.

    Returns (config with its seed fixed, the Preflight). Raises UserError before anything is
    written. The seed is fixed here so that run.toml reruns the same run.
    """
    from trainer.preflight import preflight

    # Relative paths are the caller's: fixed now, since the trainer works in the output
    # folder and run.toml may be rerun from anywhere (trainer/paths.py).
    config = paths.absolute(config)
    checked = preflight(config)
    if config.seed is None:
        config = config.replace(seed=int.from_bytes(os.urandom(4), "little") % 2**31)
    out = config.output_path
    created = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        events = out / EVENTS_FILE
        if events.exists():
            # A new run starts a new event log; the old one is kept beside it.
            events.rename(out / f"events-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
        from trainer.fsutil import atomic_write_text

        atomic_write_text(out / RUN_FILE, config.to_toml())
    except OSError as exc:
        # A full or read-only disk: one sentence, and no empty folders left behind.
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise write_failed(exc.filename or out, exc, out) from None
    return config, checked


# --- the UI's side ---------------------------------------------------------------------------


def launch(config: TrainConfig, trainer: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start `trainer` (e.g. [python, -m, trainer]) in START_FLAG mode; return it once its
    checks passed and it wrote run.toml.

    The process runs in its own session (a closed terminal does not end it) with the caller's
    working directory until the folder exists. Raises the trainer's UserError (same class,
    sentence and field) when a check refused the run; RuntimeError with the end of its output
    when it failed before answering. Ctrl-C while waiting ends the trainer at once (SIGKILL to
    its session) and is raised again; a folder it had already written then holds only a start's
    files (run.toml, trainer.log), which ti_tui.runner.start_run removes.
    """
    read_fd, write_fd = os.pipe()
    early = tempfile.TemporaryFile()  # its output until trainer.log exists
    try:
        process = subprocess.Popen([*trainer, START_FLAG, str(write_fd)],
                                   stdin=subprocess.PIPE, stdout=early,
                                   stderr=subprocess.STDOUT, env=env, pass_fds=(write_fd,),
                                   start_new_session=True)
    except BaseException:
        os.close(read_fd)
        early.close()
        raise
    finally:
        os.close(write_fd)
    with early, os.fdopen(read_fd, "r", encoding="utf-8") as status:
        try:
            with contextlib.suppress(BrokenPipeError):  # it died at once: its output says why
                process.stdin.write(config.to_toml().encode("utf-8"))
                process.stdin.close()
            line = status.readline()
        except BaseException:
            _end(process)
            raise
        answer = _parse(line)
        if answer.get("ok"):
            return process
        code = process.wait()
        if "error" in answer:
            raise _rebuild(answer)
        early.seek(0)
        tail = early.read()[-4000:].decode("utf-8", "replace").strip()
    raise RuntimeError(f"The trainer ended (exit {code}) before its start-up checks finished:"
                       f"\n{tail}")


def _end(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _parse(line: str) -> dict:
    try:
        answer = json.loads(line) if line.strip() else {}
    except json.JSONDecodeError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _rebuild(answer: dict) -> UserError:
    """The UserError the trainer raised: its class from trainer.errors, sentence and field."""
    cls = getattr(errors, str(answer.get("kind")), UserError)
    if not (isinstance(cls, type) and issubclass(cls, UserError)):
        cls = UserError
    return cls(str(answer["error"]), field=answer.get("field"))


# --- the trainer's side ----------------------------------------------------------------------


def serve(argv: list[str], *, plan_threads: Callable[[TrainConfig], None],
          run: Callable[..., int]) -> int:
    """`python -m trainer --start FD`: check, write the folder, answer on FD, then train.

    `plan_threads(config)` runs before anything imports torch; `run(config, checked)` is the
    trainer's run (trainer/__main__.py), handed the Preflight so nothing is checked twice.
    """
    try:
        status = os.fdopen(int(argv[0]), "w", encoding="utf-8")
    except (IndexError, ValueError, OSError):
        print(f"ti-tui: {START_FLAG} needs the file descriptor to answer on.", file=sys.stderr)
        return 2
    with status:
        try:
            config = _read_settings(sys.stdin.buffer.read())
            plan_threads(config)
            config, checked = prepare_output(config)
        except UserError as exc:
            _answer(status, {"error": str(exc), "field": exc.field, "kind": type(exc).__name__})
            return 2
        _into_log(config.output_path)
        _answer(status, {"ok": True})
    return run(config, checked)


def _read_settings(data: bytes) -> TrainConfig:
    try:
        values = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The run settings on stdin are not valid TOML ({exc}).",
                          field="config") from None
    return TrainConfig.from_toml_data(values, source="run settings")


def _answer(status, answer: dict) -> None:
    with contextlib.suppress(OSError):  # the UI is gone: the run goes on regardless
        status.write(json.dumps(answer) + "\n")
        status.flush()


def _into_log(out: Path) -> None:
    """From now on stdout and stderr are OUTPUT_DIR/trainer.log (what the checks printed
    first goes at its top), and the working directory is the output folder, as for a run the
    runner starts with run.toml."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        log = os.open(out / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:
        return  # nowhere better to write: keep the UI's temporary file
    with contextlib.suppress(OSError):
        if _is_regular(1):  # the UI's temporary file (a terminal when started by hand)
            os.lseek(1, 0, os.SEEK_SET)
            while chunk := os.read(1, 1 << 16):
                os.write(log, chunk)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    with contextlib.suppress(OSError):
        os.chdir(out)


def _is_regular(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode)
