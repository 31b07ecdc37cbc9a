#!/usr/bin/env bash
# Build Horovod 0.28.1 (the last release) for the project's TensorFlow and install it.
#
#   bash scripts/build_horovod.sh .venv/bin/python      (what `make horovod` runs)
#
# No Horovod wheel exists for current TensorFlow, so this builds the PyPI source distribution
# against the TensorFlow already installed in the environment (--no-build-isolation), with Gloo
# and without MPI; NCCL is used when a CUDA toolkit (nvcc) is found. Horovod 0.28.1's
# horovod/tensorflow/xla_mpi_ops.cc includes XLA headers that TF 2.21 does not ship, so that one
# source is dropped from horovod/tensorflow/CMakeLists.txt (it only serves XLA-compiled MPI ops,
# which a Gloo build never uses).
#
# The built wheel is cached OUTSIDE the checkout, keyed by Python, TensorFlow and CPU/CUDA:
#   ${FFJORD_KIT_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ffjord_kit/wheels}/<key>/
# A later run (or CI) installs from that cache in seconds. Set HOROVOD_REBUILD=1 to ignore it.
# Needs: cmake >= 3.13, a C++17 compiler, network access to PyPI on the first build only.
set -euo pipefail

PY="${1:-}"
if [[ -z "$PY" || ! -x "$PY" ]]; then
    echo "usage: bash scripts/build_horovod.sh PATH/TO/venv/bin/python (got '${PY}')" >&2
    exit 2
fi
# Absolute, but not symlink-resolved: the venv's python is a symlink that must stay in the venv.
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
HOROVOD_VERSION=0.28.1

for tool in cmake g++ make; do
    if ! command -v "$tool" >/dev/null; then
        echo "build_horovod: '$tool' not found; install it (e.g. apt-get install cmake g++ make)" >&2
        exit 2
    fi
done

TF_VERSION=$("$PY" -c 'import tensorflow as tf; print(tf.__version__)' 2>/dev/null) || {
    echo "build_horovod: TensorFlow is not importable with $PY; run 'make test' (or pip install -e .) first" >&2
    exit 2
}
PY_TAG=$("$PY" -c 'import sys; print(f"cp{sys.version_info.major}{sys.version_info.minor}")')

# NCCL only where a CUDA toolkit, a CUDA-built TensorFlow and NCCL itself are all present
# (a CPU-only machine with a stray nvcc gets the Gloo-only build). NCCL comes from
# HOROVOD_NCCL_HOME, the nvidia-nccl-cu* wheel a CUDA TensorFlow pulls in, or /usr/include.
# Override with HOROVOD_FLAVOUR=cpu|cuda-nccl.
TF_CUDA=$("$PY" -c 'import tensorflow as tf; print(int(tf.test.is_built_with_cuda()))' 2>/dev/null)
NCCL_PIP=$("$PY" -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null || true)
HAVE_NCCL=0
if [[ -n "${HOROVOD_NCCL_HOME:-}" || -n "$NCCL_PIP" || -e /usr/include/nccl.h ]]; then HAVE_NCCL=1; fi
if [[ -z "${HOROVOD_FLAVOUR:-}" ]]; then
    if command -v nvcc >/dev/null && [[ "$TF_CUDA" == 1 && "$HAVE_NCCL" == 1 ]]; then
        HOROVOD_FLAVOUR=cuda-nccl
    else
        HOROVOD_FLAVOUR=cpu
    fi
fi
case "$HOROVOD_FLAVOUR" in
    cpu) ;;
    cuda-nccl)
        export HOROVOD_GPU_OPERATIONS=NCCL
        # NCCL from the nvidia-nccl-cu* wheel that a CUDA TensorFlow pulls in, unless the site
        # provides one (on Perlmutter: HOROVOD_NCCL_HOME=$NCCL_DIR after `module load nccl`).
        if [[ -z "${HOROVOD_NCCL_HOME:-}" ]]; then
            if [[ -n "$NCCL_PIP" ]]; then
                export HOROVOD_NCCL_HOME="$NCCL_PIP"
                [[ -e "$NCCL_PIP/lib/libnccl.so" ]] || ln -sf libnccl.so.2 "$NCCL_PIP/lib/libnccl.so"
            fi
        fi
        ;;
    *) echo "build_horovod: HOROVOD_FLAVOUR must be cpu or cuda-nccl, got '$HOROVOD_FLAVOUR'" >&2
       exit 2 ;;
esac
FLAVOUR=$HOROVOD_FLAVOUR

CACHE_ROOT="${FFJORD_KIT_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ffjord_kit/wheels}"
CACHE_DIR="$CACHE_ROOT/horovod-${HOROVOD_VERSION}-${PY_TAG}-tf${TF_VERSION}-${FLAVOUR}"

verify() {
    # Loading the TensorFlow ops library proves the wheel matches this TensorFlow's ABI.
    "$PY" - <<'EOF'
import horovod.tensorflow as hvd
hvd.init()
print(f"horovod {__import__('horovod').__version__} OK: gloo={hvd.gloo_built()} "
      f"mpi={hvd.mpi_built()} nccl={hvd.nccl_built()} size={hvd.size()}")
EOF
}

install_cached() {
    local wheel
    wheel=$(ls "$CACHE_DIR"/horovod-*.whl 2>/dev/null | head -n1 || true)
    [[ -n "$wheel" ]] || return 1
    echo "build_horovod: installing cached wheel $wheel"
    "$PY" -m pip install -q --force-reinstall --no-deps "$wheel"
    # Horovod's own runtime requirements (small, pure Python).
    "$PY" -m pip install -q cloudpickle psutil pyyaml packaging
    verify
}

if [[ "${HOROVOD_REBUILD:-0}" != 1 ]] && install_cached; then
    exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ffjord_kit_horovod.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
echo "build_horovod: building Horovod $HOROVOD_VERSION for TF $TF_VERSION ($FLAVOUR) in $WORK"
echo "build_horovod: this takes about 11 minutes on 2 cores"

"$PY" -m pip download -q --no-deps --no-binary :all: "horovod==${HOROVOD_VERSION}" -d "$WORK" || {
    echo "build_horovod: could not download the horovod==${HOROVOD_VERSION} sdist from PyPI (no network?)" >&2
    exit 2
}
tar -xzf "$WORK/horovod-${HOROVOD_VERSION}.tar.gz" -C "$WORK"
SRC="$WORK/horovod-${HOROVOD_VERSION}"

CMAKE_TF="$SRC/horovod/tensorflow/CMakeLists.txt"
if ! grep -q 'xla_mpi_ops.cc' "$CMAKE_TF"; then
    echo "build_horovod: expected xla_mpi_ops.cc in $CMAKE_TF; the sdist changed, update this script" >&2
    exit 2
fi
sed -i '/xla_mpi_ops\.cc/d' "$CMAKE_TF"

# Build-time helpers Horovod's setup.py imports (cmake comes from the system).
"$PY" -m pip install -q cloudpickle psutil pyyaml packaging wheel

export HOROVOD_WITH_TENSORFLOW=1
export HOROVOD_WITHOUT_PYTORCH=1
export HOROVOD_WITHOUT_MXNET=1
export HOROVOD_WITHOUT_MPI=1
export HOROVOD_WITH_GLOO=1
# setup.py defaults to make -j8; respect the machine instead.
export MAKEFLAGS="-j$(nproc 2>/dev/null || echo 2)"

mkdir -p "$WORK/dist"
(cd "$SRC" && "$PY" -m pip wheel --no-build-isolation --no-deps -w "$WORK/dist" .) \
    >"$WORK/build.log" 2>&1 || {
    tail -n 40 "$WORK/build.log" >&2
    echo "build_horovod: the Horovod build failed (log above)" >&2
    exit 1
}

# Atomic cache fill: copy into a temporary sibling, then rename.
mkdir -p "$CACHE_ROOT"
STAGE=$(mktemp -d "$CACHE_ROOT/.stage.XXXXXX")
chmod 755 "$STAGE"
cp "$WORK"/dist/horovod-*.whl "$STAGE/"
rm -rf "$CACHE_DIR"
mv "$STAGE" "$CACHE_DIR"
echo "build_horovod: cached $(ls "$CACHE_DIR")"
install_cached
