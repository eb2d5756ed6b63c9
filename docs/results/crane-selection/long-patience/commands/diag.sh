#!/bin/bash
# Diagnostic (issue 22): TikTok at Baby's selected point (lr 1e-3, λ 1e-3, τ 0.4, β 0.1) with a
# long patience, to see whether CRANE's BPR term breaks away from ln 2 later than the 6-epoch rung.
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
s=$1; p=$2
nice -n 5 /work/exp/bin/crane-516d59f train --data-dir /work/shared/data/tiktok --dataset tiktok --set model_preset=crane --set lr=1e-3 --set model.lambda=1e-3 --set model.tau=0.4 --set model.beta=0.1 --set seed=$s --set patience=$p --set epochs=150 --out /work/exp/tiktok-b01/p$p/seed-$s --no-progress > /work/exp/tiktok-b01/p$p-seed-$s.log 2>&1
echo "DIAG $s p$p END rc=$? $(date)"
