#!/usr/bin/env bash
# One call of a lent GPU (the `device` tool): install what the machine lacks, resume a run, train for the
# minutes given, export, evaluate, and write weights + log + summary to $OUT. A device call is limited to
# 10 minutes and a lease to 30, so a longer training is several calls: each one resumes from the weights
# the previous one returned. docs/training.md §4 gives the plan and the commands.
#
#   bash tools/gpu_oneshot.sh RUN PHASE QUALITY MINUTES [INIT]
#
#   RUN      run name, e.g. meanscale-q8-float; resumes from .gpu/runs/RUN.pt when that file exists
#   PHASE    float | qat
#   QUALITY  1..8 (CompressAI's λ for that quality)
#   MINUTES  training wall time of this call (the LR drops ÷10 for the last 20 % of it)
#   INIT     weights to start a new run from (float: a float run; qat: the float run it fine-tunes)
#
# Prepared here, before the call (ignored paths, carried):
#   bash tools/gpu_prepare.sh                   # .whl/ (cp312 wheels) and .gpu/train-half, .gpu/kodak
# On the device: run(command="bash tools/gpu_oneshot.sh meanscale-q4-float float 4 8 models/float/meanscale-q4-float.pt",
#                    carry=[".whl", ".gpu"])
# Off the device (a CPU dry run of the same path): FXLIC_DEVICE=cpu OUT=/tmp/out bash tools/gpu_oneshot.sh ...
#
# Environment: OUT (default ./out), FXLIC_DEVICE (default cuda), BATCH (16), CROP (256), LR (float 1e-4 when
# resuming or fine-tuning, 5e-4 from scratch; qat 1e-4), STEPS (200000: time is the limit), KODAK (.gpu/kodak).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=$1; PHASE=$2; QUALITY=$3; MINUTES=$4; INIT=${5:-}
OUT=${OUT:-$PWD/out}
DEVICE=${FXLIC_DEVICE:-cuda}
BATCH=${BATCH:-16}; CROP=${CROP:-256}; STEPS=${STEPS:-200000}
DATA=${DATA:-.gpu/train-half}; KODAK=${KODAK:-.gpu/kodak}
mkdir -p "$OUT"
T0=$(date +%s)
exec > >(tee -a "$OUT/$RUN-console.txt") 2>&1
export PYTHONUNBUFFERED=1

# 1. Packages: the device has torch, numba and hypothesis but not compressai or constriction (carried
#    as cp312 wheels); the project itself installs without its dependencies and without the network.
if [ "$DEVICE" = cuda ]; then
  SITE=/tmp/site
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --target "$SITE" .
  export PYTHONPATH=$SITE
  PY=python3
  THREADS=8
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
else
  PY=${PY:-.venv/bin/python}
  THREADS=2
fi
$PY -c "import fxlic, compressai, torch; print('torch', torch.__version__, 'compressai', compressai.__version__, \
'cuda', torch.cuda.is_available())"

# 2. Resume or start.
WORK=/tmp/fxlic-runs/$RUN
mkdir -p "$WORK"
if [ -f ".gpu/runs/$RUN.pt" ]; then
  cp ".gpu/runs/$RUN.pt" "$WORK/checkpoint.pt"
  [ -f ".gpu/runs/$RUN-log.csv" ] && cp ".gpu/runs/$RUN-log.csv" "$WORK/log.csv"
  START=(); echo "resuming $RUN from .gpu/runs/$RUN.pt"
elif [ -n "$INIT" ]; then
  START=(--init "$INIT"); echo "starting $RUN from $INIT"
else
  START=(); echo "starting $RUN from scratch"
fi
if [ "$PHASE" = qat ]; then LR=${LR:-1e-4}; elif [ -n "$INIT" ] || [ -f "$WORK/checkpoint.pt" ]; then
  LR=${LR:-1e-4}; else LR=${LR:-5e-4}; fi
AMP=(); [ "$DEVICE" = cuda ] && [ "$PHASE" = float ] && AMP=(--amp)

# 3. Train for the time given.
$PY -m fxlic.qat.train --data "$DATA" --out "$WORK" --phase "$PHASE" --quality "$QUALITY" "${START[@]}" \
  --steps "$STEPS" --minutes "$MINUTES" --lr "$LR" --batch "$BATCH" --crop "$CROP" --threads "$THREADS" \
  --device "$DEVICE" "${AMP[@]}" --log-every 100 --ckpt-every 2000 2>&1 | tr '\r' '\n' | grep -v "step/s\|s/step" || true
test -f "$WORK/checkpoint.pt"

# 4. Weights back: float16 for float runs (a starting point), float32 for QAT (the int8 export rounds them).
DTYPE=float16; [ "$PHASE" = qat ] && DTYPE=float32
$PY -m fxlic.qat.slim "$WORK/checkpoint.pt" "$OUT/$RUN.pt" --dtype "$DTYPE"
cp "$WORK/log.csv" "$OUT/$RUN-log.csv"

# 5. A QAT run is exported to an integer model file and measured on Kodak with real bitstreams.
if [ "$PHASE" = qat ]; then
  $PY -m fxlic.qat.export "$WORK/checkpoint.pt" -o "$OUT/meanscale-q$QUALITY.npz" --name meanscale \
    --quality "$QUALITY"
  if [ -d "$KODAK" ]; then
    $PY -m fxlic.cli eval --model-files "$OUT/meanscale-q$QUALITY.npz" --images "$KODAK" --out "$OUT/eval" \
      --name "$RUN" 2>&1 | tr '\r' '\n' | grep -v "img/s\|s/img" || true
    mv "$OUT"/eval/*.json "$OUT/$RUN-kodak.json" 2>/dev/null || true
    rm -rf "$OUT/eval"
  fi
fi

# 6. Summary: steps, minutes and last logged training point of this call.
$PY - "$WORK/checkpoint.pt" "$RUN" "$T0" <<'PY' | tee "$OUT/$RUN-summary.txt"
import sys, time, torch
state = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
print(f"{sys.argv[2]}: step {state['step']}, λ {state['lmbda']}, training minutes in total "
      f"{state.get('elapsed_s', 0) / 60:.1f}, this call {(time.time() - int(sys.argv[3])) / 60:.1f} min wall")
PY
ls -la "$OUT"
