#!/usr/bin/env bash
# The one prepared call on a GPU machine (run from the repository root, after
# scripts/build-for-device.sh has filled device-bin/ on the development machine).
#
# Everything goes to $OUT (default gpu-out/), in eight files at most (what the device tool brings
# back): summary.txt (one line per step: verdict, seconds, file), env.txt, tests.log, verify.txt,
# bench.txt, smi.csv, verify-tf32.txt, session.log. Each step has its own time limit and the
# whole session a budget ($BUDGET seconds, default 420), so a hang costs one step, and the steps
# run most important first: the kernel and device-op tests, `crane verify --gpu`, the parity
# tests, then timings, then TF32.
#
# Rehearse on a machine without a GPU: every step must fail fast with the "no CUDA device" line
# and still leave its files (`OUT=/tmp/gpu-rehearsal bash scripts/gpu-session.sh`).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
BIN=${BIN:-device-bin}
BUDGET=${BUDGET:-420}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BIN=$(cd "$BIN" 2>/dev/null && pwd || echo "$PWD/$BIN")
start=$(date +%s)
summary="$OUT/summary.txt"
: >"$summary"
exec > >(tee -a "$OUT/session.log") 2>&1
failures=0

remaining() { echo $((BUDGET - ($(date +%s) - start))); }

# step NAME LIMIT FILE COMMAND...: runs COMMAND for at most LIMIT seconds (less if the budget is
# nearly spent), its output appended to $OUT/FILE, and records the verdict in summary.txt.
step() {
  local name=$1 limit=$2 file=$3
  shift 3
  local left
  left=$(remaining)
  if ((left < 5)); then
    printf '%-36s %-18s %5s  %s\n' "$name" "SKIPPED (budget)" "-" "$file" | tee -a "$summary"
    failures=$((failures + 1))
    return 99
  fi
  ((limit > left)) && limit=$left
  echo "=== $name (limit ${limit}s, $(date -u +%T) UTC): $*" >>"$OUT/$file"
  local t0 rc verdict
  t0=$(date +%s)
  timeout -k 5 "$limit" "$@" >>"$OUT/$file" 2>&1
  rc=$?
  case $rc in
    0) verdict=ok ;;
    124 | 137) verdict="TIMEOUT" ;;
    *) verdict="FAILED (exit $rc)" ;;
  esac
  ((rc != 0)) && failures=$((failures + 1))
  printf '%-36s %-18s %4ss  %s\n' "$name" "$verdict" "$(($(date +%s) - t0))" "$file" | tee -a "$summary"
  return $rc
}

# The folders holding a library, first match per candidate location.
find_lib() {
  local lib=$1 d
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64 \
    /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 $PY_NVIDIA_LIBS; do
    if compgen -G "$d/$lib*" >/dev/null; then
      echo "$d"
    fi
  done
}

# ---- 0. The machine, and LD_LIBRARY_PATH from what is there ----
PY_NVIDIA_LIBS=""
if command -v python3 >/dev/null; then
  site=$(python3 -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null || true)
  if [ -n "$site" ]; then
    PY_NVIDIA_LIBS=$(ls -d "$site"/nvidia/*/lib "$site"/nvidia/cu13/lib 2>/dev/null | sort -u | tr '\n' ' ')
  fi
fi
libpath=""
{
  echo "date: $(date -u)"
  echo "host: $(uname -a)"
  echo "budget: ${BUDGET}s; binaries: $BIN"
  ls -l "$BIN" 2>&1
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
    nvidia-smi 2>&1 | head -20
  else
    echo "nvidia-smi: not found"
  fi
  command -v nvcc >/dev/null && nvcc --version | tail -2
  # The toolkit's folder first: its NVRTC matches the driver (a newer NVRTC's PTX is refused
  # by an older driver with CUDA_ERROR_UNSUPPORTED_PTX_VERSION); Python wheels second.
  for lib in libcuda.so libcublas.so libcublasLt.so libnvrtc.so; do
    dirs=$(find_lib "$lib" | tr '\n' ' ')
    echo "$lib: ${dirs:-NOT FOUND}"
    first=${dirs%% *}
    if [ -n "$first" ] && [[ ":$libpath:" != *":$first:"* ]]; then
      libpath="${libpath:+$libpath:}$first"
    fi
  done
} >"$OUT/env.txt" 2>&1
export LD_LIBRARY_PATH="${libpath}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >>"$OUT/env.txt"
cat "$OUT/env.txt"

# How many tests of a libtest log passed, and whether the named GPU tests ran and passed.
passed_in() { grep -Eo '[0-9]+ passed' "$1" | awk '{s += $1} END {print s + 0}'; }

# ---- 1. Kernels and device ops (with --include-ignored: built here without libcuda) ----
step "kernel tests (NVRTC, device probe)" 60 tests.log "$BIN/kernels" --include-ignored --test-threads 1
step "device ops vs host ops" 60 tests.log "$BIN/device" --include-ignored --test-threads 1 cuda_

# ---- 2. The parity table ----
step "crane verify --gpu" 90 verify.txt "$BIN/crane" verify --gpu --graphs 2

# ---- 3. The GPU engine's parity tests; failures rerun alone for their messages ----
before=$(wc -l <"$OUT/tests.log")
if step "parity tests (gpu_cuda)" 120 tests.log "$BIN/parity" --include-ignored gpu_cuda --test-threads 8; then
  :
else
  # Only this step's failures (the log also holds the kernel and device-op tests above).
  failed=$(tail -n +"$((before + 1))" "$OUT/tests.log" | grep -Eo '^test [^ ]+ \.\.\. FAILED' | awk '{print $2}' |
    sort -u | head -5)
  for t in $failed; do
    step "rerun $t" 30 tests.log "$BIN/parity" --include-ignored --exact "$t" --test-threads 1 --nocapture
  done
fi
gpu_ran=$(grep -Ec '^test [^ ]*(gpu_cuda|cuda_ops_match_the_host_ops) \.\.\. ok' "$OUT/tests.log")
if ((gpu_ran == 0)); then
  echo "NO GPU TEST RAN: no gpu_cuda or cuda_ops test passed (see tests.log)" | tee -a "$summary"
  failures=$((failures + 1))
else
  echo "GPU tests passed: $gpu_ran (every libtest 'passed' in tests.log: $(passed_in "$OUT/tests.log"))" | tee -a "$summary"
fi

# ---- 4. Timings: one epoch at the Baby and Electronics shapes, FP32 then TF32 ----
smi_pid=""
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,memory.used,memory.total,utilization.gpu --format=csv -lms 500 \
    >"$OUT/smi.csv" 2>&1 &
  smi_pid=$!
else
  echo "nvidia-smi not found: no samples" >"$OUT/smi.csv"
fi
bench_dir=$(mktemp -d)
for shape in baby electronics; do
  for math in fp32 tf32; do
    limit=75
    [ "$shape" = electronics ] && limit=150
    step "crane bench $shape $math" $limit bench.txt \
      "$BIN/crane" bench --like "$shape" --set engine=gpu --set tf32=$([ $math = tf32 ] && echo true || echo false) \
      --no-progress --out "$bench_dir/$shape-$math"
  done
done
[ -n "$smi_pid" ] && kill "$smi_pid" 2>/dev/null

# ---- 5. TF32 against its bounds ----
step "crane verify --gpu --tf32" 60 verify-tf32.txt "$BIN/crane" verify --gpu --tf32 --graphs 1

echo "---- summary ($(($(date +%s) - start)) s of $BUDGET) ----"
cat "$summary"
for f in verify.txt verify-tf32.txt; do
  [ -f "$OUT/$f" ] && { echo "---- tail of $f"; tail -5 "$OUT/$f"; }
done
exit $((failures > 0))
