#!/usr/bin/env bash
# CPU recipe for the shipped meanscale models (2 cores, no GPU), five rate points q0 q2 q4 q6 q8
# (λ 0.0009 … 0.18, ×3.7 apart). Every step resumes where it stopped.
#
#   bash tools/cpu_recipe.sh RUNS_DIR [FLOAT_MIN] [FT_MIN] [QAT_MIN]
#
# 1. One float model at quality 4 (FLOAT_MIN minutes; 0 = already trained).
# 2. Two lanes at once, one thread each: float fine-tunes that walk the λ ladder from q4 (a λ step converges
#    far faster than a model from scratch), q4→q6→q8 and q4→q2→q0; then calibration + QAT for each quality,
#    and a calibration-only (PTQ) checkpoint for each, which measures what QAT buys.
# 3. Export every QAT checkpoint to an integer model file RUNS_DIR/meanscale-qQ.npz.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
FLOAT_MIN=${2:-58}
FT_MIN=${3:-14}
QAT_MIN=${4:-8}
DATA=../shared/data/train
TRAIN=".venv/bin/python -m fxlic.qat.train --data $DATA --crop 128 --batch 8 --steps 100000"

if [ "$FLOAT_MIN" != 0 ]; then
  $TRAIN --threads 2 --out "$RUNS/meanscale-q4-float" --phase float --quality 4 --N 96 --M 128 \
    --minutes "$FLOAT_MIN" --lr 5e-4
fi

finetune() {  # QUALITY FROM_QUALITY
  $TRAIN --threads 1 --out "$RUNS/meanscale-q$1-float" --phase float --quality "$1" \
    --init "$RUNS/meanscale-q$2-float/checkpoint.pt" --minutes "$FT_MIN" --lr 2e-4
}
qat() {  # QUALITY
  $TRAIN --threads 1 --out "$RUNS/meanscale-q$1-qat" --phase qat --quality "$1" \
    --init "$RUNS/meanscale-q$1-float/checkpoint.pt" --minutes "$QAT_MIN" --lr 1e-4
}
ptq() {  # QUALITY: calibration only, zero QAT steps
  $TRAIN --threads 1 --out "$RUNS/meanscale-q$1-ptq" --phase qat --quality "$1" \
    --init "$RUNS/meanscale-q$1-float/checkpoint.pt" --steps 0
}
(finetune 6 4 && finetune 8 6 && qat 8 && qat 6 && qat 4) > "$RUNS/lane-high.out" 2>&1 &
HIGH=$!
(finetune 2 4 && finetune 0 2 && qat 0 && qat 2 && for q in 0 2 4 6 8; do ptq $q; done) > "$RUNS/lane-low.out" 2>&1 &
LOW=$!
wait $HIGH
wait $LOW

for q in 0 2 4 6 8; do
  for kind in qat ptq; do
    .venv/bin/python -m fxlic.qat.export "$RUNS/meanscale-q$q-$kind/checkpoint.pt" -o "$RUNS/meanscale-q$q-$kind.npz" \
      --name meanscale --quality $q
  done
done
