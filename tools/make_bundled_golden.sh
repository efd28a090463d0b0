#!/usr/bin/env bash
# Regenerate the bundled golden set of the default model (run after shipping a new default model).
set -euo pipefail
cd "$(dirname "$0")/.."
K=../shared/data/kodak
name=$(.venv/bin/python -c "from fxlic import models; n = models.default_model(); print(f'{n}-q{models.default_quality(n)}')")
.venv/bin/fxlic golden make --out "golden/vectors/$name" --images \
  "$K/kodim23.png@100,200,80,112" "$K/kodim04.png@300,200,100,72" "$K/kodim13.png@200,400,64,64"
