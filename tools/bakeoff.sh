#!/usr/bin/env bash
# Architecture and precision bake-off: equal steps, equal seed, equal data and recipe; Kodak RD of each.
#
#   bash tools/bakeoff.sh RUNS_DIR OUT_DIR [STEPS] [THREADS] [NAMES...]
#
# Runs (from scratch, seed 0, 8×128² crops of ../shared/data/train, lr 5e-4 then ÷10 for the last 20 %):
#   ms96-128-bf16   the current MeanScaleHyperprior (N=96, M=128, ReLU hyper), the trainer's fast path
#   ms96-128-fp32   the same in plain float32: the fast path's convergence check (equal-step curves)
#   ms128-192-bf16  a larger latent (N=128, M=192: CompressAI's mbt2018-mean size for mid rates)
#   charm96-128-bf16  the channel-conditional model (Minnen & Singh 2020, docs/charm.md) on the same
#                   transforms, 4 slices; measured at the ideal rate like the others
#   ms96-128-bf16-3930, ms96-128-bf16-5010  the current model for as many steps as charm's and the larger
#                   latent's 3,000 steps take in CPU time (their s/step are 1.31× and 1.67× the current
#                   model's: `python benchmarks/train_speed.py --threads 1 --shapes 8x128 --architectures
#                   ms96-128 ms128-192 charm96-128`): the comparison per CPU-minute
# NAMES (optional) picks runs by name; default: all.
# Each run's Kodak RD (float model, ideal rate, 24 images) goes to OUT_DIR/NAME.json; training minutes
# are in each run's log.csv (elapsed_s). A run already finished (checkpoint at STEPS) is not retrained.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/bakeoff}
OUT=${2:-results/bakeoff}
STEPS=${3:-3000}
THREADS=${4:-1}
shift $(( $# < 4 ? $# : 4 ))
ONLY=" $* "
PY=.venv/bin/python
mkdir -p "$RUNS" "$OUT"
run() {  # NAME PRECISION N M [ARCH] [STEPS]
  local name=$1 precision=$2 n=$3 m=$4 arch=${5:-meanscale} steps=${6:-$STEPS}
  if [ "$ONLY" != "  " ] && [[ "$ONLY" != *" $name "* ]]; then return 0; fi
  OMP_NUM_THREADS=$THREADS $PY -m fxlic.qat.train --data ../shared/data/train --crop 128 --batch 8 \
    --steps "$steps" --threads "$THREADS" --out "$RUNS/$name" --phase float --quality 4 --N "$n" --M "$m" \
    --lr 5e-4 --seed 0 --precision "$precision" --arch "$arch" --hyper-activation relu --log-every 25 > "$RUNS/$name.out" 2>&1
  OMP_NUM_THREADS=$THREADS $PY -m fxlic.qat.evaluate_float "$RUNS/$name/checkpoint.pt" \
    --images ../shared/data/kodak --out "$OUT/$name.json" --rate ideal --threads "$THREADS" --name "$name" \
    > "$RUNS/$name-eval.out" 2>&1
  tail -n 3 "$RUNS/$name-eval.out"
}
run ms96-128-bf16 bf16 96 128
run ms96-128-fp32 fp32 96 128
run ms128-192-bf16 bf16 128 192
run charm96-128-bf16 bf16 96 128 charm
run ms96-128-bf16-3930 bf16 96 128 meanscale 3930
run ms96-128-bf16-5010 bf16 96 128 meanscale 5010
