#!/usr/bin/env bash
# A full simulated board session on the default model: what an engineer runs on a ZCU102 / KV260,
# with the DPU replaced by the integer reference (--simulate). Paste the output into a report.
#
#   bash tools/board_session.sh [WORKDIR] [IMAGE@TOP,LEFT,HEIGHT,WIDTH ...]
#
# Steps: golden set (fxlic golden make) -> export-golden (XLNX_GOLDEN_DIR + deploy_check layouts) ->
# partition -> board run --simulate -> board compare -> board decode (per image, against the golden
# set) -> the alternative LeakyReLU rounding (--assume leaky=double), which the shipped ReLU models are
# immune to. Exit code 0 only if the session is bit-exact.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-out/board-session}
shift || true
KODAK=../shared/data/kodak
IMAGES=("$@")
if [ ${#IMAGES[@]} -eq 0 ]; then
  IMAGES=("$KODAK/kodim23.png@100,200,120,176" "$KODAK/kodim07.png@0,0,256,384")
fi
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
FX="$PY -m fxlic.cli"
rm -rf "$WORK"
mkdir -p "$WORK"

step() { echo; echo "\$ fxlic $*"; }

step golden make --images "${IMAGES[@]}" --out "$WORK/golden"
$FX golden make --images "${IMAGES[@]}" --out "$WORK/golden"

step board export-golden --golden "$WORK/golden" --out "$WORK/vitis"
$FX board export-golden --golden "$WORK/golden" --out "$WORK/vitis"

step board partition --size 120x176
$FX board partition --size 120x176

step board run --simulate --golden "$WORK/golden" --out "$WORK/dump"
$FX board run --simulate --golden "$WORK/golden" --out "$WORK/dump"

step board compare --golden "$WORK/golden" --dump "$WORK/dump"
$FX board compare --golden "$WORK/golden" --dump "$WORK/dump"

for stream in "$WORK"/golden/*/bitstream.fxl; do
  name=$(basename "$(dirname "$stream")")
  step board decode --simulate --stream "$stream" --out "$WORK/$name.png" --golden "$WORK/golden"
  $FX board decode --simulate --stream "$stream" --out "$WORK/$name.png" --golden "$WORK/golden" | tail -n 2
done

echo
echo "# a board whose LeakyReLU rounds twice (FXP-A-LEAKY), simulated: the shipped models use ReLU in h_a/h_s,"
echo "# so this open point cannot change them and compare must still pass (fault localization on a LeakyReLU"
echo "# model: tests/test_board.py::test_leaky_double_rounding_diverges_first_at_the_first_leaky_layer)"
step board run --simulate --assume leaky=double --golden "$WORK/golden" --out "$WORK/dump-leaky"
$FX board run --simulate --assume leaky=double --golden "$WORK/golden" --out "$WORK/dump-leaky" | tail -n 1
step board compare --golden "$WORK/golden" --dump "$WORK/dump-leaky"
$FX board compare --golden "$WORK/golden" --dump "$WORK/dump-leaky" | tail -n 1
echo
echo "board session: bit-exact on the simulated DPU, also under the alternative LeakyReLU rounding"
