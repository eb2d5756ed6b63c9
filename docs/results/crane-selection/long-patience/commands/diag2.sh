#!/bin/bash
# Diagnostic (issue 22): a TikTok point trained with a long patience (60 epochs, 300 at most),
# to see whether CRANE's validation curve climbs again after the early peak that patience 5 stops at.
# usage: diag2.sh NAME SEED "SETS"
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
n=$1; s=$2; sets=$3
nice -n 5 /work/exp/bin/crane-516d59f train --data-dir /work/shared/data/tiktok --dataset tiktok --set model_preset=crane $sets --set seed=$s --set patience=60 --set epochs=300 --out /work/exp/tiktok-b01/$n/seed-$s --no-progress > /work/exp/tiktok-b01/$n-seed-$s.log 2>&1
echo "DIAG $n $s END rc=$? $(date)"
