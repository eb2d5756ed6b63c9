#!/usr/bin/env bash
# Run on the development machine (no GPU needed) before the one call on a GPU machine: the GPU
# machine has no Rust toolchain and no network, so everything it runs is built here.
#
# Release-builds `crane` and the test binaries that hold GPU tests (gpu/tests/kernels.rs,
# gpu/tests/device.rs, tests/parity.rs), strips them into device-bin/ (git-ignored; checked to be
# under the device's 64 MiB carry limit) and prints what to run there. Built without a CUDA
# driver, the GPU tests are marked ignored in these binaries: scripts/gpu-session.sh runs them with
# --include-ignored and fails when none of them ran.
set -euo pipefail
cd "$(dirname "$0")/.."
out=device-bin
rm -rf "$out"
mkdir -p "$out"

cargo build --release --bin crane
cp target/release/crane "$out/crane"

# The test executables, named by cargo's JSON messages.
cargo test --release --no-run --message-format=json -p crane-gpu --test kernels --test device \
  >"$out/.cargo-gpu.json"
cargo test --release --no-run --message-format=json -p crane --test parity >"$out/.cargo-parity.json"
python3 - "$out" <<'EOF'
import json, shutil, sys
out = sys.argv[1]
found = {}
for f in (".cargo-gpu.json", ".cargo-parity.json"):
    for line in open(f"{out}/{f}"):
        try:
            m = json.loads(line)
        except ValueError:
            continue
        exe = m.get("executable")
        if m.get("reason") == "compiler-artifact" and exe and m["target"]["kind"] == ["test"]:
            found[m["target"]["name"]] = exe
for name in ("kernels", "device", "parity"):
    if name not in found:
        sys.exit(f"build-for-device: no test executable named {name} in cargo's output")
    shutil.copy(found[name], f"{out}/{name}")
    print(f"{name:8} <- {found[name]}")
EOF
rm -f "$out"/.cargo-*.json
strip "$out"/* 2>/dev/null || echo "warning: strip failed; the binaries keep their symbols" >&2

total=$(du -cb "$out"/* | tail -1 | cut -f1)
ls -l "$out"
echo "device-bin: $((total / 1048576)) MiB (the device carries at most 64 MiB with the working tree)"
if [ "$total" -gt $((56 * 1048576)) ]; then
  echo "error: device-bin is too large to carry beside the working tree" >&2
  exit 1
fi
cat <<'EOF'

On the GPU machine, one call from the repository root (the device tool's `run`), e.g.
  run(command: "bash scripts/gpu-session.sh", carry: ["device-bin"], timeout_s: 540)
It writes everything under $OUT (default gpu-out/): summary.txt, env.txt, tests.log, verify.txt,
bench.txt, smi.csv, verify-tf32.txt and session.log. Rehearse it here first (no GPU): every step
must fail fast with the "no CUDA device" line and still leave its files:
  OUT=/tmp/gpu-rehearsal bash scripts/gpu-session.sh
EOF
