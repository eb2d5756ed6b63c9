#!/bin/bash
# TikTok at lr 1e-3, λ 1e-3, τ 0.4, β 0.1 with patience 60: the remaining seeds, as a queue shared
# by workers (atomic mkdir claims).
Q=/work/exp/tiktok-b01/claims; mkdir -p $Q
for s in 672 5368 12784 2023; do
  mkdir $Q/b01-$s 2>/dev/null || continue
  bash /work/exp/tiktok-b01/diag2.sh b01-p60 $s "--set lr=1e-3 --set model.lambda=1e-3 --set model.tau=0.4 --set model.beta=0.1"
done
