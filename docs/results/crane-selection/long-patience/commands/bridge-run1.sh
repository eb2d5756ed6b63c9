#!/bin/bash
# Issue 22, TikTok: component costs at the point that trains (lr 1e-3, λ 1e-3, τ 0.4, β 0.1,
# patience 60, 300 epochs at most; long-patience/b01 is the full model at the same settings).
# usage: run1.sh NAME SEED "EXTRA SETS"
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
n=$1; s=$2; sets=$3
nice -n 5 /work/exp/bin/crane-516d59f train --data-dir /work/shared/data/tiktok --dataset tiktok --set model_preset=crane --set lr=1e-3 --set model.lambda=1e-3 --set model.tau=0.4 --set model.beta=0.1 $sets --set seed=$s --set patience=60 --set epochs=300 --out /work/exp/tiktok-b01-abl/$n/crane/seed-$s --no-progress > /work/exp/tiktok-b01-abl/logs/$n-seed-$s.log 2>&1
echo "RUN $n $s END rc=$? $(date)"
