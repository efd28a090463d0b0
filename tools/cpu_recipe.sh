#!/usr/bin/env bash
# CPU recipe for the shipped meanscale models (2 cores, no GPU): one float model at quality 4, float
# fine-tunes to qualities 2 and 6 from it (a λ change converges far faster than training from scratch),
# then calibration + QAT for each, then export to integer model files. Every step resumes.
#
#   bash tools/cpu_recipe.sh RUNS_DIR [FLOAT_MINUTES] [FT_MINUTES] [QAT_MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
FLOAT_MIN=${2:-58}
FT_MIN=${3:-8}
QAT_MIN=${4:-6}
DATA=../shared/data/train
TRAIN=".venv/bin/python -m fxlic.qat.train --data $DATA --crop 128 --batch 8 --threads 2"

if [ "$FLOAT_MIN" != 0 ]; then  # 0: the float model is already trained
  $TRAIN --out "$RUNS/meanscale-q4-float" --phase float --quality 4 --N 96 --M 128 --steps 12000 \
    --minutes "$FLOAT_MIN" --lr 5e-4
fi
$TRAIN --out "$RUNS/meanscale-q4-qat" --phase qat --quality 4 --init "$RUNS/meanscale-q4-float/checkpoint.pt" \
  --steps 3000 --minutes "$QAT_MIN" --lr 1e-4
for q in 2 6; do
  $TRAIN --out "$RUNS/meanscale-q$q-float" --phase float --quality $q \
    --init "$RUNS/meanscale-q4-float/checkpoint.pt" --steps 3000 --minutes "$FT_MIN" --lr 2e-4
  $TRAIN --out "$RUNS/meanscale-q$q-qat" --phase qat --quality $q --init "$RUNS/meanscale-q$q-float/checkpoint.pt" \
    --steps 3000 --minutes "$QAT_MIN" --lr 1e-4
done
for q in 2 4 6; do
  .venv/bin/python -m fxlic.qat.export "$RUNS/meanscale-q$q-qat/checkpoint.pt" -o "$RUNS/meanscale-q$q.npz" \
    --name meanscale --quality $q
done
