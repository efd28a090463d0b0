#!/usr/bin/env bash
# A/B after the ladder: the trunk continued 30 min at 8×128² (a, the recipe so far) or 2×256² (b, the same
# pixels per step), both resumed from step 221,559 with its optimizer state; then both and the start
# evaluated (float, ideal rate) on the 40 half-resolution training photos.
#   bash results/bakeoff/crop-size/ab.sh START_RUN_DIR   (a run folder with checkpoint.pt and log.csv; here
#   the trunk at step 221,559 with its optimizer state; `git show 0cf537e:models/float/meanscale-q4-float.pt`
#   is its weights-only copy, which resumes with fresh Adam moments)
set -e
START=${1:?usage: ab.sh START_RUN_DIR}
cd "$(dirname "$0")/../../.."
date > runs10/ab.start
for arm in a:128:8 b:256:2; do
  IFS=: read -r name crop batch <<< "$arm"
  mkdir -p runs10/ab-$name/meanscale-q4-float
  cp "$START"/{checkpoint.pt,log.csv} runs10/ab-$name/meanscale-q4-float/
  .venv/bin/python -m fxlic.qat.train --data ../shared/data/train --crop "$crop" --batch "$batch" --steps 1000000 \
    --threads 1 --out runs10/ab-$name/meanscale-q4-float --phase float --quality 4 --minutes 30 --lr 1e-4 \
    > runs10/ab-$name.out 2>&1 &
done
wait
for ck in a:runs10/ab-a/meanscale-q4-float b:runs10/ab-b/meanscale-q4-float "start:$START"; do
  .venv/bin/python -m fxlic.qat.evaluate_float "${ck#*:}/checkpoint.pt" --images ../shared/data/train-half --rate ideal \
    --out "runs10/ab-eval-${ck%%:*}.json" --name "ab-${ck%%:*}" --threads 1 > "runs10/ab-eval-${ck%%:*}.out" 2>&1
done
date > runs10/ab.done
