#!/usr/bin/env bash
# Measure the shipped meanscale models on Kodak (the test set; never used for training or tuning):
#   int8 from real bitstreams; the float twins (CompressAI-coded and ideal rate); the same QAT weights in
#   float arithmetic; calibration-only (PTQ) int8 models; BD-rates; RD plot; learning curves; layer
#   equality with the QAT checkpoint; speed.
#   bash tools/measure_release.sh RUNS_DIR OUT_DIR [SPEED_IMAGES]
#   SPEED_IMAGES 0 skips the speed table; REUSE_FLOAT=1 keeps the float twins' measurement in OUT_DIR;
#   QUALITIES (default "0 2 4 6 8") names the shipped rate points, whose runs are RUNS_DIR/meanscale-qQ-*.
#   PREVIOUS=path/to/the-previous-ladder.json (its int8 meanscale.json, kept in results/ablations/) opens
#   bdrate.txt with this ladder against VTM and against the previous one, all points and the first five
#   (q0-q8, the span of every earlier release), and the int8 cost over those five; PREVIOUS_NAME names it.
#   LANES=2 (the default where nproc ≥ 2) runs the integer codec's evaluations (int8, PTQ) on one core
#   beside the float twins' on the other, instead of one after the other on both (the same figures:
#   every evaluation is deterministic; the timing columns of the per-image CSVs are one core's).
#   ONLY=Q re-measures one rate point, quality Q (a release that changed that point only): its int8 (the
#   installed model), PTQ, float twin and QAT-weights-in-float figures go to OUT_DIR/point-qQ/ and replace
#   point Q in OUT_DIR's curves and per-image CSVs (tools/rd_curve.py --replace-point; every evaluation is
#   deterministic, so the other points' committed figures stand); RUNS_DIR needs only meanscale-qQ-*.
#   The learning curves are not redrawn (they plot RUNS_DIR, which then holds one point).
#   INSTALLED_ONLY=1 re-measures only the installed int8 models, from real bitstreams, and redraws the tables
#   and the plot with every other curve as committed: for a change of the streams alone (the container
#   format), where models, float twins and PTQ are unchanged. RUNS_DIR is not read (pass any), SPEED_IMAGES 0.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
OUT=${2:-results/kodak}
SPEED_N=${3:-6}
Q=${QUALITIES:-0 2 4 6 8}
K=../shared/data/kodak
A=../shared/anchors/kodak
PY=.venv/bin/python
mkdir -p "$OUT"
ckpts() { for q in $Q; do echo "$RUNS/meanscale-q$q-$1/checkpoint.pt"; done; }
LANES=${LANES:-$(( $(nproc) >= 2 ? 2 : 1 ))}
FLOAT_THREADS=$(( LANES >= 2 ? 1 : 2 ))
integer_evals() {  # the installed int8 models (every shipped quality, or ONLY's)
  .venv/bin/fxlic eval --model meanscale ${ONLY:+--qualities "$ONLY"} --images "$K" --out "$OUT" \
    --name fxlic-meanscale-int8 > "$OUT/eval-int8.log"
  .venv/bin/fxlic eval --model-files $(for q in $Q; do echo "$RUNS/meanscale-q$q-ptq.npz"; done) --images "$K" \
    --out "$OUT/ptq" --name fxlic-meanscale-int8-ptq > "$OUT/eval-int8-ptq.log"
  mv "$OUT/ptq/meanscale.json" "$OUT/meanscale-ptq.json"
}
float_evals() {
  if [ -z "${REUSE_FLOAT:-}" ]; then  # REUSE_FLOAT=1: the float twins did not change; keep their measurement
  $PY -m fxlic.qat.evaluate_float $(ckpts float) --images "$K" --out "$OUT/meanscale-float.json" --threads "$FLOAT_THREADS" \
    --ideal-out "$OUT/meanscale-float-ideal.json" --name fxlic-meanscale-float > "$OUT/eval-float.log"
  fi
  $PY -m fxlic.qat.evaluate_float $(ckpts qat) --images "$K" --float-arithmetic --out "$OUT/meanscale-qat-float.json" \
    --ideal-out "$OUT/meanscale-qat-float-ideal.json" --name fxlic-meanscale-qat-weights-float \
    --threads "$FLOAT_THREADS" > "$OUT/eval-qat-float.log"
}
if [ -n "${ONLY:-}" ]; then  # one rate point: the evaluations below write to OUT/point-qQ, then replace it
  FULL_OUT=$OUT
  OUT="$FULL_OUT/point-q$ONLY"
  INDEX=$(echo $Q | tr ' ' '\n' | grep -nx "$ONLY" | cut -d: -f1)
  [ -n "$INDEX" ] || { echo "ONLY=$ONLY is not one of QUALITIES ($Q)" >&2; exit 2; }
  INDEX=$((INDEX - 1))
  ALL_Q=$Q
  Q=$ONLY  # the evaluations below see one quality
  mkdir -p "$OUT"
fi
lane() {  # CPU FUNCTION: run FUNCTION in a subshell pinned to CPU (its processes inherit the affinity)
  ( taskset -cp "$1" "$BASHPID" > /dev/null; "$2" )
}
if [ -n "${INSTALLED_ONLY:-}" ]; then  # the installed models' streams only; every other curve stands
  .venv/bin/fxlic eval --model meanscale --images "$K" --out "$OUT" --name fxlic-meanscale-int8 > "$OUT/eval-int8.log"
elif [ "$LANES" -ge 2 ]; then
  echo "evaluating in two lanes: integer codec (logs $OUT/eval-int8*.log) beside the float twins ($OUT/eval-*float.log)"
  NUMBA_NUM_THREADS=1 lane 0 integer_evals &
  INTEGER=$!
  lane 1 float_evals
  wait "$INTEGER"
else
  integer_evals
  float_evals
fi
if [ -n "${ONLY:-}" ]; then
  for curve in meanscale meanscale-ptq meanscale-float meanscale-float-ideal meanscale-qat-float meanscale-qat-float-ideal; do
    $PY tools/rd_curve.py "$FULL_OUT/$curve.json" "$FULL_OUT/$curve.json" --replace-point "$INDEX" "$OUT/$curve.json"
  done
  cp "$OUT"/*.csv "$FULL_OUT/"
  cp "$OUT"/ptq/*.csv "$FULL_OUT/ptq/"
  for log in "$OUT"/eval-*.log; do cp "$log" "$FULL_OUT/$(basename "$log" .log)-q$ONLY.log"; done
  OUT=$FULL_OUT
  Q=$ALL_Q
fi
{
  echo "## vs VTM (BD-rate reference)"
  .venv/bin/fxlic bdrate "$A/vtm.json" "$OUT/meanscale.json" "$OUT/meanscale-float.json" \
    "$A/compressai-mbt2018-mean_mse_cpu.json" "$A/compressai-bmshj2018-hyperprior_mse_cpu.json" \
    "$A/bpg_444_x265_ycbcr.json" "$A/webp.json" "$A/jpeg.json" || true
  echo
  echo "## int8 cost: int8 (real bitstreams) vs float, same weights (QAT weights with fake quantization off)"
  .venv/bin/fxlic bdrate "$OUT/meanscale-qat-float.json" "$OUT/meanscale.json" || true
  .venv/bin/fxlic bdrate "$OUT/meanscale-qat-float-ideal.json" "$OUT/meanscale.json" || true
  echo
  echo "## int8 cost: PTQ int8 (calibration only) vs the float model it was calibrated from"
  .venv/bin/fxlic bdrate "$OUT/meanscale-float.json" "$OUT/meanscale-ptq.json" || true
  .venv/bin/fxlic bdrate "$OUT/meanscale-float-ideal.json" "$OUT/meanscale-ptq.json" || true
  echo
  echo "## int8 (QAT) vs the float twin (float phase checkpoints; QAT adds training steps)"
  .venv/bin/fxlic bdrate "$OUT/meanscale-float.json" "$OUT/meanscale.json" || true
  .venv/bin/fxlic bdrate "$OUT/meanscale-float-ideal.json" "$OUT/meanscale.json" || true
  echo
  echo "## float twins at the ideal rate vs VTM (what the float models would reach with an ideal entropy coder)"
  .venv/bin/fxlic bdrate "$A/vtm.json" "$OUT/meanscale-float-ideal.json" || true
} | tee "$OUT/bdrate.txt"
if [ -n "${PREVIOUS:-}" ]; then
  PREV_NAME=${PREVIOUS_NAME:-previous ladder}
  five() { $PY tools/rd_curve.py "$1" "$2" --first 5 --name "$3"; }
  five "$OUT/meanscale.json" "$OUT/meanscale-q0-q8.json" "fxlic-meanscale-int8 (q0-q8)"
  five "$PREVIOUS" "$OUT/previous-q0-q8.json" "$PREV_NAME (q0-q8)"
  $PY tools/rd_curve.py "$PREVIOUS" "$OUT/previous.json" --name "$PREV_NAME"
  five "$OUT/meanscale-float-ideal.json" "$OUT/float-ideal-q0-q8.json" "float-ideal (q0-q8)"
  five "$OUT/meanscale-ptq.json" "$OUT/ptq-q0-q8.json" "ptq (q0-q8)"
  {
    echo "## Shipped ladder vs VTM and the previous ladder ($PREV_NAME)"
    .venv/bin/fxlic bdrate "$A/vtm.json" "$OUT/meanscale.json" "$OUT/meanscale-q0-q8.json" \
      "$OUT/previous-q0-q8.json" "$OUT/previous.json" || true
    .venv/bin/fxlic bdrate "$OUT/previous.json" "$OUT/meanscale.json" || true
    .venv/bin/fxlic bdrate "$OUT/previous-q0-q8.json" "$OUT/meanscale-q0-q8.json" || true
    echo
    echo "## int8 cost over q0-q8 (the span of the previous releases' comparisons)"
    .venv/bin/fxlic bdrate "$OUT/float-ideal-q0-q8.json" "$OUT/meanscale-q0-q8.json" "$OUT/ptq-q0-q8.json" || true
    echo
    cat "$OUT/bdrate.txt"
  } > "$OUT/bdrate.txt.new"
  mv "$OUT/bdrate.txt.new" "$OUT/bdrate.txt"
  rm "$OUT/previous-q0-q8.json" "$OUT/previous.json" "$OUT/float-ideal-q0-q8.json" "$OUT/ptq-q0-q8.json"
  head -30 "$OUT/bdrate.txt"
fi
.venv/bin/fxlic plot "$OUT/rd.png" "$OUT/meanscale.json" "$OUT/meanscale-float.json" \
  $(for a in vtm bpg_444_x265_ycbcr jpeg webp compressai-mbt2018-mean_mse_cpu compressai-bmshj2018-hyperprior_mse_cpu; do
    echo --anchors "$A/$a.json"; done)
[ -n "${ONLY:-}${INSTALLED_ONLY:-}" ] || $PY -m fxlic.qat.curves "$RUNS" -o "$OUT/../learning-curves.png"
if [ -e "$RUNS/meanscale-q4-qat/checkpoint.pt" ]; then  # (with ONLY=Q≠4 the committed q4 check stands)
  .venv/bin/fxlic verify-qat models/meanscale-q4.npz "$K" --checkpoint "$RUNS/meanscale-q4-qat/checkpoint.pt" \
    --json "$OUT/layer-equality-q4.json" | tee "$OUT/layer-equality-q4.txt"
fi
[ "$SPEED_N" = 0 ] || $PY benchmarks/codec_speed.py --images "$K" --limit "$SPEED_N" --threads 2 | tee "$OUT/speed.txt"
