#!/usr/bin/env bash
# Decode determinism on another CPU architecture, emulated: aarch64 (the boards' Cortex-A53) or s390x
# (big-endian). Documented in docs/determinism.md §"Other architectures".
#
#   sudo tools/cross_arch_check.sh aarch64 [IMAGE[@TOP,LEFT,HEIGHT,WIDTH] ...]
#   sudo tools/cross_arch_check.sh s390x   [IMAGE[@...] ...]
#
# What it does (needs root for debootstrap/chroot, and only the Debian and PyPI package registries):
#  1. apt-get installs qemu-user-static, debootstrap, binfmt-support if missing; enables the binfmt handler.
#  2. Builds, or reuses, a Debian bookworm root of that architecture ($CROSS_ROOT, default
#     ../fxlic-cross/<arch>-root beside the repo; never inside it) with python3.
#  3. Installs the golden path there: aarch64 — wheels for numpy ($NUMPY_SPEC, default the host's version),
#     numba, pillow, tqdm fetched on the host with `pip download --platform manylinux…_aarch64` for the
#     root's Python; s390x — PyPI has no numba/llvmlite wheels for it, so Debian's python3-numpy/-pil/-tqdm
#     and the pure-NumPy path (FXLIC_PURE_NUMPY=1). The project itself as a wheel built on the host.
#  4. In the root: `fxlic golden verify` of the bundled set; then encodes the images (default: two full
#     Kodak images) and decodes the streams the host made. On the host: the same encodes, and decodes of the
#     target's streams. SHA-256 of every stream and decoded image on both sides.
#  5. Writes results/cross-arch/<arch>.json, <arch>.table.md and <arch>-golden-verify.txt; exit 0 only if
#     the golden set verified and every stream and decoded image is identical on both sides.
#
# Environment: CROSS_ROOT, NUMPY_SPEC, PYTHON (host interpreter with fxlic installed; default .venv/bin/python),
# MIRROR (Debian mirror, default: the first Debian URI of this host's apt sources), SKIP_GOLDEN=1 (skip step 4's verify),
# REPORT (name of the result files, default <arch>; e.g. aarch64-numpy2 with NUMPY_SPEC='numpy>=2').
set -euo pipefail
# The whole script is one block, parsed before it runs: editing the file during a run cannot change the run.
{
cd "$(dirname "$0")/.."
REPO=$(pwd)
ARCH=${1:?usage: tools/cross_arch_check.sh aarch64|s390x [IMAGE[@TOP,LEFT,HEIGHT,WIDTH] ...]}
shift
case "$ARCH" in
  aarch64) DEB_ARCH=arm64; QEMU=qemu-aarch64 ;;
  s390x) DEB_ARCH=s390x; QEMU=qemu-s390x ;;
  *) echo "unsupported architecture $ARCH (aarch64 or s390x)" >&2; exit 2 ;;
esac
IMAGES=("$@")
if [ ${#IMAGES[@]} -eq 0 ]; then
  IMAGES=(../shared/data/kodak/kodim23.png ../shared/data/kodak/kodim05.png)
fi
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
CROSS_ROOT=${CROSS_ROOT:-$(dirname "$REPO")/fxlic-cross/$ARCH-root}
host_mirror() {  # the Debian archive this host's apt already uses (deb822 sources or sources.list)
  { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
    grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}'; } | grep -v security | head -n 1 || true
}
MIRROR=${MIRROR:-$(host_mirror)}
[ -n "$MIRROR" ] || { echo "no Debian mirror in this host's apt sources: set MIRROR" >&2; exit 2; }
OUT=$REPO/results/cross-arch
REPORT=${REPORT:-$ARCH}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fxlic-cross-$ARCH.XXXXXX")
mkdir -p "$OUT"
log() { echo "[cross-arch $ARCH] $*" >&2; }

# ---- 1. emulator -------------------------------------------------------------------------------------
if ! command -v qemu-aarch64-static >/dev/null || ! command -v debootstrap >/dev/null; then
  log "installing qemu-user-static debootstrap binfmt-support"
  apt-get update -q && apt-get install -y -q qemu-user-static debootstrap binfmt-support
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
update-binfmts --enable "$QEMU" >/dev/null 2>&1 || true
[ -e "/proc/sys/fs/binfmt_misc/$QEMU" ] || { echo "binfmt handler $QEMU not registered" >&2; exit 1; }

# ---- 2. root filesystem --------------------------------------------------------------------------------
case "$CROSS_ROOT" in "$REPO"/*) echo "CROSS_ROOT must lie outside the repository" >&2; exit 2 ;; esac
PACKAGES=python3,python3-venv
[ "$ARCH" = s390x ] && PACKAGES=$PACKAGES,python3-numpy,python3-pil,python3-tqdm
if [ ! -x "$CROSS_ROOT/usr/bin/python3" ]; then
  log "debootstrap $DEB_ARCH bookworm into $CROSS_ROOT (packages: $PACKAGES)"
  mkdir -p "$(dirname "$CROSS_ROOT")"
  debootstrap --arch="$DEB_ARCH" --variant=minbase --include="$PACKAGES" bookworm "$CROSS_ROOT" "$MIRROR" >&2
else
  log "reusing $CROSS_ROOT"
fi
mounted=()
cleanup() {
  for m in "${mounted[@]}"; do umount "$m" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
if ! mountpoint -q "$CROSS_ROOT/proc"; then mount -t proc proc "$CROSS_ROOT/proc"; mounted+=("$CROSS_ROOT/proc"); fi
in_root() { chroot "$CROSS_ROOT" env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
if ! in_root dpkg -s ${PACKAGES//,/ } >/dev/null 2>&1; then  # a reused root made with fewer packages
  log "apt-get install ${PACKAGES//,/ } in the root"
  in_root apt-get update -q >&2 && in_root apt-get install -y -q ${PACKAGES//,/ } >&2
fi
PYVER=$(in_root python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
log "root: $(in_root uname -m), Python $PYVER"

# ---- 3. the golden path in the root --------------------------------------------------------------------
WHEELS=$WORK/wheels
mkdir -p "$WHEELS"
"$PYTHON" -m pip wheel -q --disable-pip-version-check --no-deps -w "$WHEELS" "$REPO" >&2
VENV=/opt/fxlic-venv
ENV_VARS=()
if [ "$ARCH" = aarch64 ]; then
  NUMPY_SPEC=${NUMPY_SPEC:-numpy==$("$PYTHON" -c 'import numpy; print(numpy.__version__)')}
  log "pip download ($NUMPY_SPEC numba pillow tqdm) for manylinux aarch64, Python $PYVER"
  "$PYTHON" -m pip download -q --disable-pip-version-check --only-binary=:all: --implementation cp \
    --python-version "$PYVER" --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 \
    --platform manylinux_2_28_aarch64 -d "$WHEELS" "$NUMPY_SPEC" "numba>=0.59" "pillow>=9" "tqdm>=4.60" >&2
  VENV_FLAGS=""
else
  VENV_FLAGS="--system-site-packages"  # Debian's numpy / pillow / tqdm; no numba on s390x
  ENV_VARS=(FXLIC_PURE_NUMPY=1)
fi
WHEEL=$(basename "$(ls "$WHEELS"/fxlic-*.whl)")
rm -rf "$CROSS_ROOT/tmp/fxlic-wheels" && cp -r "$WHEELS" "$CROSS_ROOT/tmp/fxlic-wheels"
in_root rm -rf "$VENV"
in_root python3 -m venv $VENV_FLAGS "$VENV"
if [ "$ARCH" = aarch64 ]; then
  in_root "$VENV/bin/pip" install -q --disable-pip-version-check --no-index --find-links /tmp/fxlic-wheels \
    "/tmp/fxlic-wheels/$WHEEL" >&2
else
  in_root "$VENV/bin/pip" install -q --disable-pip-version-check --no-index --no-deps "/tmp/fxlic-wheels/$WHEEL" >&2
fi
in_root "$VENV/bin/python" -c 'import sys, numpy; print("target numpy", numpy.__version__, sys.byteorder)' >&2

# ---- 4. runs ----------------------------------------------------------------------------------------------
CHECK=/tmp/fxlic-check
rm -rf "$CROSS_ROOT$CHECK" && mkdir -p "$CROSS_ROOT$CHECK/images"
GOLDEN=$("$PYTHON" -c 'from fxlic.golden.cli import default_set; print(default_set())')
cp -r "$GOLDEN" "$CROSS_ROOT$CHECK/golden"
cp tools/cross_arch_hashes.py "$CROSS_ROOT$CHECK/"
TARGET_SPECS=()
for spec in "${IMAGES[@]}"; do
  path=${spec%%@*}
  cp "$path" "$CROSS_ROOT$CHECK/images/"
  TARGET_SPECS+=("$CHECK/images/$(basename "$path")${spec#"$path"}")
done
if [ "${SKIP_GOLDEN:-0}" != 1 ]; then
  log "golden verify in the $ARCH root"
  set +e
  /usr/bin/time -f "%e s wall, %U s user CPU" chroot "$CROSS_ROOT" env -i PATH=/usr/bin:/bin HOME=/root \
    "${ENV_VARS[@]}" nice -n 10 "$VENV/bin/fxlic" golden verify "$CHECK/golden" > "$OUT/$REPORT-golden-verify.txt" 2>&1
  golden_rc=$?
  set -e
  cat "$OUT/$REPORT-golden-verify.txt" >&2
else
  golden_rc=0
fi
log "host: encode + decode ${IMAGES[*]}"
"$PYTHON" tools/cross_arch_hashes.py run --images "${IMAGES[@]}" --out "$WORK/host" >&2
mkdir -p "$CROSS_ROOT$CHECK/host" && cp "$WORK"/host/*.fxl "$WORK/host/hashes.json" "$CROSS_ROOT$CHECK/host/"
log "$ARCH: encode ${TARGET_SPECS[*]} and decode the host's streams"
/usr/bin/time -f "%e s wall, %U s user CPU" chroot "$CROSS_ROOT" env -i PATH=/usr/bin:/bin HOME=/root \
  "${ENV_VARS[@]}" nice -n 10 "$VENV/bin/python" "$CHECK/cross_arch_hashes.py" run \
  --images "${TARGET_SPECS[@]}" --out "$CHECK/target" --decode "$CHECK/host" 2>&1 | tee "$WORK/target.log" >&2
cp -r "$CROSS_ROOT$CHECK/target" "$WORK/target"
log "host: decode the $ARCH streams"
"$PYTHON" tools/cross_arch_hashes.py decode "$WORK/target" --into "$WORK/host" >&2
set +e
"$PYTHON" tools/cross_arch_hashes.py compare "$WORK/host" "$WORK/target" --report "$OUT/$REPORT"
compare_rc=$?
set -e
cp "$WORK/target.log" "$OUT/$REPORT-target.log"
log "golden verify exit $golden_rc, stream/pixel comparison exit $compare_rc"
[ "$golden_rc" = 0 ] && [ "$compare_rc" = 0 ]
exit
}
