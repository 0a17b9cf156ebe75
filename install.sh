#!/usr/bin/env bash
# Install ti-tui for this user, in one command: its own virtual environment, the torch build
# this machine can use, and the `ti-tui` command on your PATH. Run it again to update;
# `--uninstall` removes exactly what it made. It never touches another program's environment,
# your InvokeAI root or your runs, and needs no root rights.
#
#   bash install.sh                      install or update (torch picked for this machine)
#   bash install.sh --torch cpu          the CPU build even on a GPU machine (or: cuda)
#   bash install.sh --uninstall          remove the environment and the command
#
# Options (each also an environment variable):
#   --torch auto|cpu|cuda    TI_TUI_TORCH        auto: CUDA when `nvidia-smi` lists a GPU
#   --torch-spec SPEC        TI_TUI_TORCH_SPEC   the pip requirement, e.g. torch==2.13.0
#   --torch-index URL|none   TI_TUI_TORCH_INDEX  where torch comes from (cpu: PyTorch's CPU
#                                                wheel index; cuda: PyPI, whose Linux wheels
#                                                are CUDA builds; none: pip's own settings)
#   --home DIR               TI_TUI_HOME         default ~/.local/share/ti-tui (venv inside)
#   --bin-dir DIR            TI_TUI_BIN_DIR      default ~/.local/bin (the `ti-tui` link)
#   --from SOURCE            TI_TUI_SOURCE       what pip installs: default this script's
#                                                folder (a ti-tui checkout), or a wheel/URL
#   --python PYTHON          PYTHON              a Python 3.11 or newer
# Exit codes: 0 done, 2 a problem you can fix (one line says which), 1 pip failed.
set -euo pipefail

say() { printf 'ti-tui install: %s\n' "$*"; }
die() { printf 'ti-tui install: %s\n' "$*" >&2; exit 2; }

TORCH=${TI_TUI_TORCH:-auto}
TORCH_SPEC=${TI_TUI_TORCH_SPEC:-torch}
TORCH_INDEX=${TI_TUI_TORCH_INDEX:-}
HOME_DIR=${TI_TUI_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/ti-tui}
BIN_DIR=${TI_TUI_BIN_DIR:-$HOME/.local/bin}
SOURCE=${TI_TUI_SOURCE:-}
PY=${PYTHON:-}
ACTION=install

while [ $# -gt 0 ]; do
  case "$1" in
    --torch) TORCH=${2:?--torch needs auto, cpu or cuda}; shift 2 ;;
    --torch-spec) TORCH_SPEC=${2:?--torch-spec needs a requirement}; shift 2 ;;
    --torch-index) TORCH_INDEX=${2:?--torch-index needs a URL or none}; shift 2 ;;
    --home) HOME_DIR=${2:?--home needs a folder}; shift 2 ;;
    --bin-dir) BIN_DIR=${2:?--bin-dir needs a folder}; shift 2 ;;
    --from) SOURCE=${2:?--from needs a folder, wheel or URL}; shift 2 ;;
    --python) PY=${2:?--python needs a command}; shift 2 ;;
    --uninstall) ACTION=uninstall; shift ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1; see bash install.sh --help." ;;
  esac
done

VENV="$HOME_DIR/venv"
LINK="$BIN_DIR/ti-tui"
MANIFEST="$HOME_DIR/installed.txt"

# --- uninstall: exactly what the manifest says we made --------------------------------------
if [ "$ACTION" = uninstall ]; then
  if [ ! -f "$MANIFEST" ]; then
    say "nothing to remove: $MANIFEST does not exist (ti-tui was not installed there)."
    exit 0
  fi
  while IFS= read -r line; do
    kind=${line%% *}; path=${line#* }
    case "$kind" in
      link)  # only our link: one that still points into our environment
        if [ -L "$path" ] && [ "$(readlink "$path")" = "$VENV/bin/ti-tui" ]; then
          rm -f -- "$path"; say "removed $path"
        elif [ -e "$path" ] || [ -L "$path" ]; then
          say "left $path: it is not the link this script made"
        fi ;;
      venv)
        if [ -f "$path/pyvenv.cfg" ]; then rm -rf -- "$path"; say "removed $path"; fi ;;
    esac
  done < "$MANIFEST"
  rm -f -- "$MANIFEST"
  rmdir -- "$HOME_DIR" 2>/dev/null || true
  say "ti-tui is uninstalled. Your InvokeAI root and your runs were not touched."
  exit 0
fi

# --- what to install --------------------------------------------------------------------------
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "$SOURCE" ]; then
  grep -qs '^name = "ti-tui"' "$here/pyproject.toml" \
    || die "no ti-tui source next to this script; pass --from (a ti-tui folder, wheel or URL)."
  SOURCE=$here
fi

if [ -z "$PY" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PY=$candidate; break; fi
  done
fi
[ -n "$PY" ] || die "no python3 found; install Python 3.11 or newer, or pass --python."
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || die "$PY is older than Python 3.11; pass --python with a newer one."
"$PY" -c 'import venv, ensurepip' 2>/dev/null \
  || die "$PY cannot make virtual environments; install its venv package (e.g. python3-venv)."

case "$TORCH" in
  auto)
    if command -v nvidia-smi >/dev/null 2>&1 && gpu=$(nvidia-smi -L 2>/dev/null | head -n 1) \
        && [ -n "$gpu" ]; then
      TORCH=cuda; why="nvidia-smi found ${gpu%% (UUID*}"
    else
      TORCH=cpu; why="no NVIDIA GPU found (nvidia-smi)"
    fi ;;
  cpu|cuda) why="asked for" ;;
  *) die "--torch must be auto, cpu or cuda, not '$TORCH'." ;;
esac
if [ -z "$TORCH_INDEX" ]; then
  if [ "$TORCH" = cpu ]; then TORCH_INDEX=https://download.pytorch.org/whl/cpu; else TORCH_INDEX=none; fi
fi
say "torch: the $TORCH build ($why). To change it: --torch cpu|cuda or TI_TUI_TORCH=cpu|cuda."

# Another program's `ti-tui` in the bin folder is never replaced.
if [ -e "$LINK" ] && ! [ -L "$LINK" ]; then
  die "$LINK exists and is not a link; move it away or pass --bin-dir."
fi
if [ -L "$LINK" ] && [ "$(readlink "$LINK")" != "$VENV/bin/ti-tui" ]; then
  die "$LINK points to $(readlink "$LINK"), not to this install; remove it or pass --bin-dir."
fi

# --- the environment ------------------------------------------------------------------------
mkdir -p "$HOME_DIR" "$BIN_DIR"
if [ -x "$VENV/bin/python" ]; then
  say "updating $VENV"
  updating=1
else
  say "making $VENV"
  "$PY" -m venv "$VENV"
  updating=0
fi
printf 'venv %s\n' "$VENV" > "$MANIFEST.tmp" && mv "$MANIFEST.tmp" "$MANIFEST"

pip() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@"; }
if [ "$TORCH_INDEX" = none ]; then
  say "installing $TORCH_SPEC (a few minutes the first time)"
else
  say "installing $TORCH_SPEC from $TORCH_INDEX (a few minutes the first time)"
fi
# torchvision is left out on purpose: ti-tui does not need it (see docs/ARCHITECTURE.md).
if [ "$TORCH_INDEX" = none ]; then set -- "$TORCH_SPEC"; else set -- --index-url "$TORCH_INDEX" "$TORCH_SPEC"; fi
pip install --quiet "$@" \
  || { echo "ti-tui install: pip could not install $TORCH_SPEC" >&2; exit 1; }
say "installing ti-tui from $SOURCE"
# Built once into a wheel, so an update does not build it twice.
wheels=$(mktemp -d)
trap 'rm -rf -- "$wheels"' EXIT
pip wheel --quiet --no-deps --wheel-dir "$wheels" "$SOURCE" \
  || { echo "ti-tui install: pip could not build ti-tui from $SOURCE" >&2; exit 1; }
wheel=$(ls "$wheels"/*.whl)
pip install --quiet "$wheel" || { echo "ti-tui install: pip could not install ti-tui" >&2; exit 1; }
if [ "$updating" = 1 ]; then
  # The same version number from a newer checkout: replace ti-tui itself, keep the rest.
  pip install --quiet --force-reinstall --no-deps "$wheel" || exit 1
fi
"$VENV/bin/python" -c 'import torch, ti_tui' \
  || { echo "ti-tui install: the new environment cannot import ti-tui" >&2; exit 1; }
"$VENV/bin/python" -c 'import torch; print("ti-tui install: torch", torch.__version__, "CUDA" if torch.cuda.is_available() else "CPU only")'

# --- the command on PATH (checked before anything was installed) ---------------------------
ln -sfn "$VENV/bin/ti-tui" "$LINK"
printf 'venv %s\nlink %s\n' "$VENV" "$LINK" > "$MANIFEST.tmp" && mv "$MANIFEST.tmp" "$MANIFEST"
say "installed: $LINK -> $VENV/bin/ti-tui"
case ":$PATH:" in
  *":$BIN_DIR:"*) say "start it with: ti-tui   (the home screen of your runs)" ;;
  *) say "$BIN_DIR is not on your PATH; add this line to ~/.bashrc or ~/.profile:"
     printf '    export PATH="%s:$PATH"\n' "$BIN_DIR" ;;
esac
