#!/usr/bin/env bash
# Prepare the ignored folders a GPU call carries (tools/gpu_oneshot.sh): the cp312 wheels the device lacks
# (.whl/), the half-resolution training photographs and the Kodak test set (.gpu/), and the weights returned
# by earlier calls (.gpu/runs/, filled by hand from the device's returned files). About 36 MiB with the
# working tree's ~20 MiB, under the 64 MiB a call may carry.
#
#   bash tools/gpu_prepare.sh [SHARED_DIR]      # default ../shared
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${1:-../shared}
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; printf '/.whl/\n/.gpu/\n' >> .git/info/exclude; }
mkdir -p .whl .gpu/runs
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl compressai==1.2.8 constriction==0.5.0 pytorch-msssim==1.0.0
rm -rf .gpu/train-half .gpu/kodak
cp -r "$SHARED/data/train-half" .gpu/train-half
cp -r "$SHARED/data/kodak" .gpu/kodak
du -sh .whl .gpu
