#!/usr/bin/env bash
# Measure the shipped meanscale models on Kodak (the test set; never used for training or tuning):
#   int8 real bitstreams, the float twins, BD-rates, layer equality with the QAT checkpoint, speed.
#   bash tools/measure_release.sh RUNS_DIR OUT_DIR [SPEED_IMAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
OUT=${2:-results/kodak}
SPEED_N=${3:-24}
K=../shared/data/kodak
A=../shared/anchors/kodak
PY=.venv/bin/python
mkdir -p "$OUT"
.venv/bin/fxlic eval --model meanscale --images "$K" --out "$OUT" --name fxlic-meanscale-int8 | tee "$OUT/eval-int8.log"
$PY -m fxlic.qat.evaluate_float "$RUNS"/meanscale-q{2,4,6}-float/checkpoint.pt --images "$K" \
  --out "$OUT/meanscale-float.json" --name fxlic-meanscale-float | tee "$OUT/eval-float.log"
$PY -m fxlic.qat.evaluate_float "$RUNS"/meanscale-q{2,4,6}-float/checkpoint.pt --images "$K" --rate ideal \
  --out "$OUT/meanscale-float-ideal.json" --name fxlic-meanscale-float-ideal | tee "$OUT/eval-float-ideal.log"
{
  echo "## int8 (real bitstreams) vs its float twin (CompressAI-coded, and ideal rate)"
  .venv/bin/fxlic bdrate "$OUT/meanscale-float.json" "$OUT/meanscale.json" || true
  .venv/bin/fxlic bdrate "$OUT/meanscale-float-ideal.json" "$OUT/meanscale.json" || true
  echo "## vs VTM (BD-rate reference)"
  .venv/bin/fxlic bdrate "$A/vtm.json" "$OUT/meanscale.json" "$OUT/meanscale-float.json" \
    "$A/compressai-mbt2018-mean_mse_cpu.json" "$A/jpeg.json" "$A/bpg_444_x265_ycbcr.json" || true
} | tee "$OUT/bdrate.txt"
.venv/bin/fxlic plot "$OUT/rd.png" "$OUT/meanscale.json" "$OUT/meanscale-float.json" \
  --anchors "$A/vtm.json" "$A/bpg_444_x265_ycbcr.json" "$A/jpeg.json" "$A/webp.json" \
  "$A/compressai-mbt2018-mean_mse_cpu.json" "$A/compressai-bmshj2018-hyperprior_mse_cpu.json"
.venv/bin/fxlic verify-qat models/meanscale-q4.npz "$K" --checkpoint "$RUNS/meanscale-q4-qat/checkpoint.pt" \
  --json "$OUT/layer-equality-q4.json" | tee "$OUT/layer-equality-q4.txt"
$PY benchmarks/codec_speed.py --images "$K" --limit "$SPEED_N" --threads 2 | tee "$OUT/speed.txt"
