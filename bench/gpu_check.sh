#!/usr/bin/env bash
# ti-tui on one GPU, side by side with the bare loop and diffusers' textual_inversion.py
# (issue 16): one JSON ($OUT/gpu_check.json) and a log ($OUT/gpu_check.log).
#
#   OUT=/tmp/gpu-out PEER_SCRIPT=/path/to/textual_inversion.py bash bench/gpu_check.sh
#   SMOKE=1 bash bench/gpu_check.sh      # the same stages on the tiny model, on a CPU
#
# The model is SD 1.5's shape with random weights at 512 px, 8 images, batch 8, bf16
# (bench/presets.py sd15, built on the GPU). Stages, most important first, each under its own
# `timeout` and all within BUDGET_S seconds (default 470, so the whole script ends within 8
# minutes; with SMOKE=1 1200, and each stage's limit x4 for a slow, shared CPU); a stage that
# would start with under 20 s left is skipped and says so:
#   info       versions, the GPU
#   model      build the sd15 preset (or tiny with SMOKE=1)
#   step_time  ti-tui vs the bare loop, DVAR off: s/step, first step, start-up pieces, peak
#              GPU memory split into latent caching and steps (bench/step_time.py)
#   peer       diffusers' examples/textual_inversion.py, unmodified, timed per optimizer step
#              (bench/peer_steps.py); its path comes from PEER_SCRIPT (never committed here);
#              skipped when PEER_SCRIPT is unset or missing
#   dvar       L_det's cost: every update and every 5, set-up left out (bench/dvar_overhead.py)
#   gpu_tests  pytest -m gpu: the tests of the CUDA paths
#   compile    ti-tui --compile: seconds to compile, s/step after (bench/compile_cost.py)
#   suite      the whole test suite (pytest -n, needs pytest-xdist), with what time is left
# SKIP_STAGES=compile,suite leaves stages out. PY picks the interpreter (default: .venv/bin/python
# when present, else python3). The GPU machine has no network: when diffusers or textual are
# missing and ./.whl holds wheels (downloaded beforehand, see docs/PERFORMANCE.md), they are
# installed into /tmp/site first and put on PYTHONPATH.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
T0=$(date +%s)
OUT=${OUT:-$(mktemp -d /tmp/gpu-check-out-XXXXXX)}
mkdir -p "$OUT"
REPORT=$OUT/gpu_check.json
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
W=${WORK_DIR:-$(mktemp -d /tmp/gpu-check-work-XXXXXX)}
mkdir -p "$W"
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export TI_TUI_CACHE_DIR=${TI_TUI_CACHE_DIR:-$W/cache}
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if [ "${SMOKE:-0}" = 1 ]; then SCALE=4; BUDGET=${BUDGET_S:-1200}; else SCALE=1; BUDGET=${BUDGET_S:-470}; fi
SKIP=",${SKIP_STAGES:-},"
elapsed() { echo $(( $(date +%s) - T0 )); }
say() { echo "=== [$(elapsed)s] $*"; }

if [ "${SMOKE:-0}" = 1 ]; then
  PRESET=tiny; PREC=no; STEPS=8; DVAR_STEPS=15; COMPILE_STEPS=5; PEER_RES=64; PEER_BATCH=2
else
  PRESET=sd15; PREC=bf16; STEPS=24; DVAR_STEPS=30; COMPILE_STEPS=30; PEER_RES=512; PEER_BATCH=8
fi

# --- the packages the GPU image lacks (pure-Python wheels brought along in ./.whl) ------------
if ! $PY -c "import diffusers, textual, plotext, tomli_w" 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    say "install: $(ls .whl/*.whl | wc -l) wheels into /tmp/site"
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl 2>&1 | tail -3
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  else
    echo "diffusers/textual are missing and ./.whl holds no wheels: see docs/PERFORMANCE.md"
  fi
fi
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}

# stage NAME LIMIT_S RESULT_FILE COMMAND...: run COMMAND under `timeout`, its stdout into
# RESULT_FILE (the stage's JSON), then record it in the report.
stage() {
  local name=$1 limit=$(( $2 * SCALE )) file=$3; shift 3
  local left=$(( BUDGET - $(elapsed) ))
  if [[ $SKIP == *",$name,"* ]]; then say "$name: skipped (SKIP_STAGES)"; return; fi
  if [ "$left" -lt 20 ]; then
    say "$name: skipped, ${left}s of the budget left"
    $PY bench/gpu_report.py add "$REPORT" "$name" --rc 125 --seconds 0
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  say "$name (limit ${limit}s)"
  local t=$(date +%s)
  timeout -k 10 "$limit" "$@" > "$file"
  local rc=$?
  tail -c 600 "$file"; echo
  $PY bench/gpu_report.py add "$REPORT" "$name" --rc $rc --seconds $(( $(date +%s) - t )) \
    --file "$file"
}

# --- info -----------------------------------------------------------------------------------
stage info 60 "$W/info.json" $PY - <<'PY'
import json, os, platform, subprocess, sys
import torch
info = {"python": sys.version.split()[0], "torch": torch.__version__,
        "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
        "cpu_count": os.cpu_count(), "platform": platform.platform()}
for name in ("diffusers", "transformers", "accelerate", "textual", "rich"):
    try:
        info[name] = __import__(name).__version__
    except Exception as exc:  # noqa: BLE001
        info[name] = f"missing: {type(exc).__name__}"
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info["gpu"] = {"name": p.name, "memory_gb": round(p.total_memory / 2**30, 1),
                   "capability": f"{p.major}.{p.minor}", "count": torch.cuda.device_count()}
    try:
        info["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:  # noqa: BLE001
        pass
print(json.dumps(info))
PY

# --- the model and images -------------------------------------------------------------------
stage model 150 "$W/model.json" $PY bench/presets.py $PRESET
MODEL=$($PY -c "import json,sys;print(json.load(open(sys.argv[1]))['$PRESET']['model_dir'])" "$W/model.json" 2>/dev/null)
DATA=$($PY -c "import json,sys;print(json.load(open(sys.argv[1]))['$PRESET']['data_dir'])" "$W/model.json" 2>/dev/null)
if [ -z "$MODEL" ]; then say "no model: the remaining stages cannot run"; exit 1; fi

# --- ti-tui against the bare loop, DVAR off -------------------------------------------------
stage step_time 170 "$W/step_time.json" \
  $PY bench/step_time.py --preset $PRESET --steps $STEPS --mixed_precision $PREC --no_pipeline_rss

# --- the peer: diffusers' example script, unmodified ------------------------------------------
peer() {  # the script's own output to peer_run.log (its tail to the log), the JSON to stdout
  "$@" > "$W/peer_run.log" 2>&1
  local rc=$?
  tail -c 1500 "$W/peer_run.log" | tr '\r' '\n' | tail -8 >&2
  cat "$W/peer.json" 2>/dev/null
  return $rc
}
export -f peer; export W
if [ -n "${PEER_SCRIPT:-}" ] && [ -f "${PEER_SCRIPT}" ]; then
  stage peer 150 "$W/peer.out" bash -c 'peer "$@"' _ \
    $PY bench/peer_steps.py "$W/peer.json" "$PEER_SCRIPT" \
    --pretrained_model_name_or_path "$MODEL" --train_data_dir "$DATA" \
    --placeholder_token "<peer-token>" --initializer_token star --resolution $PEER_RES \
    --train_batch_size $PEER_BATCH --max_train_steps $STEPS --learning_rate 5e-4 \
    --lr_scheduler constant --lr_warmup_steps 0 --save_steps 100000 \
    --checkpointing_steps 100000 --seed 0 --output_dir "$W/peer-out" --mixed_precision $PREC \
    --dataloader_num_workers 0
else
  say "peer: skipped (PEER_SCRIPT is unset or not a file)"
fi

# --- DVAR's cost ------------------------------------------------------------------------------
stage dvar 200 "$W/dvar.json" \
  $PY bench/dvar_overhead.py --preset $PRESET --steps $DVAR_STEPS --settings every_1,every_5 \
    -- --mixed_precision $PREC

# --- the CUDA tests -----------------------------------------------------------------------------
run_tests() {  # NAME LIMIT PYTEST_ARGS...
  local name=$1 limit=$(( $2 * SCALE )); shift 2
  local left=$(( BUDGET - $(elapsed) ))
  if [[ $SKIP == *",$name,"* ]]; then say "$name: skipped (SKIP_STAGES)"; return; fi
  if [ "$left" -lt 20 ]; then say "$name: skipped, ${left}s left"; return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  say "$name (limit ${limit}s)"
  local t=$(date +%s)
  # -o addopts="": pyproject's -n would need pytest-xdist, which the GPU image may lack.
  timeout -k 10 "$limit" $PY -m pytest -q -p no:cacheprovider -o addopts="" --timeout 300 \
    --junitxml "$W/$name.xml" "$@" 2>&1 | tail -25
  local rc=${PIPESTATUS[0]}
  $PY bench/gpu_report.py add "$REPORT" "$name" --rc $rc --seconds $(( $(date +%s) - t )) \
    --junit "$W/$name.xml"
}
run_tests gpu_tests 150 -m gpu tests

# --- torch.compile ------------------------------------------------------------------------------
stage compile 300 "$W/compile.json" \
  $PY bench/compile_cost.py --preset $PRESET --steps $COMPILE_STEPS -- --mixed_precision $PREC

# --- the whole suite with the time left -------------------------------------------------------
if [ "${SMOKE:-0}" = 1 ]; then
  say "suite: skipped in SMOKE mode"
elif $PY -c "import xdist" 2>/dev/null; then
  run_tests suite 600 -m "not slow" -n "$(( $(nproc) > 8 ? 8 : $(nproc) ))" --dist loadfile tests
else
  say "suite: skipped (pytest-xdist is not installed)"
fi

say "done: $REPORT"
$PY bench/gpu_report.py summary "$REPORT"
