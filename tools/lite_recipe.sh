#!/usr/bin/env bash
# One lite decoder (docs/lite-decoders.md): a narrower g_s for the streams of a shipped meanscale model,
# trained on CPU from the shipped int8 encoder's ŷ of the training photos, QAT'd and exported.
#
#   bash tools/lite_recipe.sh QUALITY NAME "C1 C2 C3" FLOAT_MIN QAT_MIN [INIT_FROM]
#
# 1. Cache (ŷ, photo, teacher's x̂) of the 40 training photos with the shipped q QUALITY model (golden path;
#    RUNS/cache-qQ, about 3 minutes on 2 threads; kept), and of the same photos at half resolution with their
#    three flips (RUNS/cache-qQ-half, 160 pairs): the ŷ of a flipped or rescaled photo is a new photo's. More
#    photos to the encoder from the same 40 (docs/lite-decoders.md §10): at 0.7× (Kodak's scale) as is, turned
#    by a half turn, transposed and anti-transposed (RUNS/cache-qQ-s07, 160), and at half resolution transposed
#    with its three flips (RUNS/cache-qQ-half-t, 160). Every fifth photo (all its flips and scales) is held out of
#    training; the validation is its full- and half-resolution photos as they are (docs/lite-decoders.md).
# 2. Float student, FLOAT_MIN minutes on one thread: from INIT_FROM (a lite checkpoint of the same quality and
#    widths, to go on training it) or, without it, pruned from the teacher's g_s by channel energy and refitted
#    by least squares. lr 1e-4 (÷10 for the last 20 %), 8 × 128² crops with one latent of context, drawn per
#    latent from both caches.
# 3. QAT, QAT_MIN minutes: fix positions calibrated on 16 batches, each layer's weight step then searched among
#    +0, +1, +2 by the student's MSE on 16 batches of training crops (WEIGHT_STEPS), then fake-quantized
#    fine-tuning at QAT_LR; the moving average of the weights (QAT_EMA) is what is validated and exported.
# 4. Export of the QAT student with the best validation on training photos (RUNS/qQ-NAME-qat/best.pt):
#    models/decoders/meanscale-qQUALITY.NAME.npz (the decoder file names the model it decodes).
# Re-running skips finished steps (DIR/.done); an interrupted step resumes from its checkpoint for its minutes.
#
# Environment: RUNS [runs/lite], QAT_LR [5e-5], QAT_EMA [0.999: validate and export the weights' moving average;
# 0: the weights themselves], WEIGHT_STEPS [search; calibrated: the weight steps of least weight error],
# THREADS [1] (training), LR [1e-4], FXLIC_DATA [../shared/data].
set -euo pipefail
cd "$(dirname "$0")/.."
Q=$1 NAME=$2 WIDTHS=$3 FLOAT_MIN=$4 QAT_MIN=$5 INIT=${6:-}
RUNS=${RUNS:-runs/lite}
QAT_LR=${QAT_LR:-5e-5}
QAT_EMA=${QAT_EMA:-0.999}
WEIGHT_STEPS=${WEIGHT_STEPS:-search}
LR=${LR:-1e-4}
THREADS=${THREADS:-1}
PY=.venv/bin/python
CACHE=$RUNS/cache-q$Q
HALF=$RUNS/cache-q$Q-half
FLOAT=$RUNS/q$Q-$NAME
QAT=$RUNS/q$Q-$NAME-qat
OUT=models/decoders/meanscale-q$Q.$NAME.npz

step() {  # step NAME DIR COMMAND…: run once; DIR/.done marks it finished (an interrupted run resumes)
  local what=$1 dir=$2
  shift 2
  if [ -f "$dir/.done" ]; then echo "$what: done ($dir)"; return; fi
  "$@"
  touch "$dir/.done"
}
count() { find -L "$1" -name '*.npz' ! -name '*.tmp.npz' 2>/dev/null | wc -l; }
[ "$(count "$CACHE")" -ge 40 ] || $PY -m fxlic.qat.lite_data --quality "$Q" --out "$CACHE" --threads 2
[ "$(count "$HALF")" -ge 160 ] || $PY -m fxlic.qat.lite_data --quality "$Q" \
  --data "${FXLIC_DATA:-../shared/data}/train-half" --flips "" h v hv --out "$HALF" --threads 2
S07=$RUNS/cache-q$Q-s07
HALF_T=$RUNS/cache-q$Q-half-t
[ "$(count "$S07")" -ge 160 ] || $PY -m fxlic.qat.lite_data --quality "$Q" --scale 0.7 --flips "" hv t thv \
  --out "$S07" --threads 2
[ "$(count "$HALF_T")" -ge 160 ] || $PY -m fxlic.qat.lite_data --quality "$Q" \
  --data "${FXLIC_DATA:-../shared/data}/train-half" --flips t th tv thv --out "$HALF_T" --threads 2
DATA=(--cache "$CACHE" "$HALF" "$S07" "$HALF_T" --val-cache "$CACHE" "$HALF" --holdout-every 5 --quality "$Q"
  --threads "$THREADS")
# shellcheck disable=SC2086
step float "$FLOAT" $PY -m fxlic.qat.lite "${DATA[@]}" --out "$FLOAT" --widths $WIDTHS --minutes "$FLOAT_MIN" \
  --lr "$LR" --warmup 200 --val-every 2000 ${INIT:+--init-from "$INIT"}
step qat "$QAT" $PY -m fxlic.qat.lite "${DATA[@]}" --out "$QAT" --init-from "$FLOAT/checkpoint.pt" --phase qat \
  --minutes "$QAT_MIN" --lr "$QAT_LR" --val-every 500 --ema "$QAT_EMA" --weight-steps "$WEIGHT_STEPS"
BEST=$QAT/best.pt  # the QAT student of the best validation on training photos (fxlic.qat.lite keep_best)
[ -f "$BEST" ] || BEST=$QAT/checkpoint.pt
$PY -m fxlic.qat.lite export "$BEST" --quality "$Q" --name "$NAME" -o "$OUT"
