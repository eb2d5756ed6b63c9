#!/usr/bin/env bash
# The whole test suite. It first puts NVRTC 13.0 (PyPI wheel `nvidia-cuda-nvrtc`, the lent GPU
# machines' CUDA version) under target/nvrtc and on LD_LIBRARY_PATH, so that every CUDA kernel
# is compiled by the tests even on a machine without a GPU. Without pip or network the
# kernel-compile tests are reported as ignored, never as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
nvrtc_dir="$PWD/target/nvrtc"
if [ ! -e "$nvrtc_dir/nvidia/cu13/lib/libnvrtc.so.13" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$nvrtc_dir" \
    'nvidia-cuda-nvrtc==13.0.*' \
    || echo "warning: could not install NVRTC 13.0; the kernel-compile tests will be ignored" >&2
fi
export LD_LIBRARY_PATH="$nvrtc_dir/nvidia/cu13/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cargo test --workspace "$@"
# The kernels dispatch at run time to the widest build the CPU has (AVX-512, AVX2, baseline).
# The attention's products use fused multiply-adds in the AVX2 and AVX-512 builds only, so the
# baseline differs in round-off: run its parity tests on each narrower build too (`--workspace`
# keeps the first run's feature set, so nothing is rebuilt).
CRANE_NO_AVX2=1 cargo test --workspace --test parity attention
CRANE_NO_AVX512=1 cargo test --workspace --test parity attention
# The sparse products' and element-wise kernels' narrower builds, against the same plain loops.
CRANE_NO_AVX2=1 cargo test --workspace --test simd
CRANE_NO_AVX512=1 cargo test --workspace --test simd
