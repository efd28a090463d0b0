#!/usr/bin/env bash
# Measure a shipped lite decoder (docs/lite-decoders.md) on Kodak, the test set (never used for training):
#   bash tools/measure_lite.sh NAME [OUT_DIR] [RUNS_DIR]
# 1. fxlic eval with --decoder NAME at every quality that ships it: the default encoder's real bitstreams (the
#    same bytes as the full decoder's), decoded by the lite g_s → OUT/meanscale.NAME.json, per-image CSVs.
#    Every stream is decoded by the full g_s as well (--with-full) → OUT/meanscale-full-NAME-qualities.json.
# 2. BD-rate against the full decoder on the same streams and against VTM → OUT/bdrate-NAME.txt.
# 3. Layer equality of the decoder file with its QAT checkpoint (models/float/lite/meanscale-q4.NAME-qat.pt,
#    else RUNS/q4-NAME-qat) at q4 on all 24 images,
#    decoder side (fxlic verify-qat --decoder-file … --decoder-checkpoint …) → OUT/layer-equality-q4.NAME.json.
# 4. hw-report (fitted DPU timing): decode MACs per pixel and modelled fps → OUT/hw-NAME.json (entropy decoding on
#    one A53 core) and OUT/hw-NAME-entropy4.json (its substreams on four).
# 5. The bundled golden set of the decoder at q4: golden/vectors/meanscale-q4.NAME (tools/make_bundled_golden.sh's
#    crops).
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=$1
OUT=${2:-results/kodak-lite}
RUNS=${3:-runs/lite}
K=${FXLIC_DATA:-../shared/data}/kodak
A=${FXLIC_ANCHORS:-../shared/anchors}/kodak
PY=.venv/bin/python
mkdir -p "$OUT"
QS=$($PY -c "from fxlic import models; print(','.join(str(q) for q in sorted(models.available()['meanscale'])
  if '$NAME' in models.decoders('meanscale', q)))")
echo "decoder $NAME at qualities $QS"
.venv/bin/fxlic eval --model meanscale --decoder "$NAME" --with-full --qualities "$QS" --images "$K" --out "$OUT" \
  > "$OUT/eval-$NAME.log"
mv "$OUT/meanscale.json" "$OUT/meanscale-full-$NAME-qualities.json"  # the full decoder on the same streams
{
  echo "# Kodak, decoder $NAME against the full decoder on the same streams (qualities $QS)"
  $PY - "$OUT/meanscale-full-$NAME-qualities.json" "$OUT/meanscale.$NAME.json" <<'PY'
import json, sys
full, lite = (json.load(open(f))["results"] for f in sys.argv[1:])
print("bpp (same streams)   PSNR full   PSNR lite   delta dB")
for bpp, a, b in zip(full["bpp"], full["psnr-rgb"], lite["psnr-rgb"]):
    print(f"{bpp:18.4f}   {a:9.3f}   {b:9.3f}   {b - a:+8.3f}")
PY
  if [ "$(echo "$QS" | tr ',' '\n' | wc -l)" -ge 4 ]; then  # a BD-rate needs four points
    .venv/bin/fxlic bdrate "$OUT/meanscale-full-$NAME-qualities.json" "$OUT/meanscale.$NAME.json"
    echo
    echo "# against VTM"
    .venv/bin/fxlic bdrate "$A/vtm.json" "$OUT/meanscale-full-$NAME-qualities.json" "$OUT/meanscale.$NAME.json"
  fi
} | tee "$OUT/bdrate-$NAME.txt"
STUDENT=models/float/lite/meanscale-q4.$NAME-qat.pt  # the committed QAT checkpoint the decoder file came from
[ -f "$STUDENT" ] || STUDENT=$RUNS/q4-$NAME-qat/best.pt  # the checkpoint tools/lite_recipe.sh exported
[ -f "$STUDENT" ] || STUDENT=$RUNS/q4-$NAME-qat/checkpoint.pt
if [ -f "$STUDENT" ]; then
  .venv/bin/fxlic verify-qat models/meanscale-q4.npz "$K" --decoder-file "models/decoders/meanscale-q4.$NAME.npz" \
    --decoder-checkpoint "$STUDENT" --json "$OUT/layer-equality-q4.$NAME.json" \
    | tail -n 1 | tee "$OUT/layer-equality-q4.$NAME.txt"
fi
.venv/bin/fxlic hw-report --model meanscale --decoder "$NAME" --json > "$OUT/hw-$NAME.json"
.venv/bin/fxlic hw-report --model meanscale --decoder "$NAME" --entropy-cores 4 --json > "$OUT/hw-$NAME-entropy4.json"
G=golden/vectors/meanscale-q4.$NAME
.venv/bin/fxlic golden make --quality 4 --decoder "$NAME" --out "$G" --images \
  "$K/kodim23.png@100,200,80,112" "$K/kodim04.png@300,200,100,72" "$K/kodim13.png@200,400,64,64"
.venv/bin/fxlic golden verify "$G"
