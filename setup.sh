#!/usr/bin/env bash
# Set up ti-tui in ./.venv (once; again when pyproject.toml changes), then run it.
#   bash setup.sh demo            build the tiny demo model and open the form pre-filled
#   bash setup.sh test [ARGS]     run the test suite (ARGS go to pytest)
#   bash setup.sh                 only set up
# TORCH_SPEC picks the torch build: the default pin is the CPU build these machines carry;
# on a GPU box use e.g. TORCH_SPEC=torch to get pip's CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
stamp="$VENV/.ti-tui-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "Installing ti-tui and its dependencies into $VENV (about a minute the first time)..."
  # torchvision is deliberately absent: see docs/ARCHITECTURE.md (it breaks diffusers here).
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "$TORCH_SPEC" -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -c "import torch, diffusers, textual, trainer, ti_tui" 
  touch "$stamp"
fi
export HF_HUB_OFFLINE=1
case "${1:-}" in
  demo) shift; exec "$VENV/bin/ti-tui" demo "$@" ;;
  # Everything, the slow layer included (plain pytest leaves it out: see pyproject.toml).
  # pytest-xdist runs one test file per worker, one worker per core (at most 4: each builds
  # the tiny models once); a file's module fixtures stay in one worker (--dist loadfile).
  test) shift
        workers=$("$VENV/bin/python" -c "import os; n = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count(); print(max(1, min(4, n or 1)))")
        exec "$VENV/bin/python" -m pytest -m "slow or not slow" -n "$workers" --dist loadfile "$@" ;;
  "") echo "Set up. Run: $VENV/bin/ti-tui --help" ;;
  *) echo "usage: bash setup.sh [demo|test] [ARGS...]" >&2; exit 2 ;;
esac
