#!/bin/bash
# LightGCN (its preset, at its TikTok-selected lr 1e-3, λ 1e-2) with the bridge rows' patience 60
# and 300-epoch cap, on this binary: the end of the bridge against the baseline itself.
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
for s in 9 672 2023 5368 12784; do
  nice -n 5 /work/exp/bin/crane-516d59f train --data-dir /work/shared/data/tiktok --dataset tiktok --set model_preset=lightgcn --set lr=1e-3 --set model.lambda=1e-2 --set seed=$s --set patience=60 --set epochs=300 --out /work/exp/tiktok-b01-abl/lightgcn-p60/lightgcn/seed-$s --no-progress > /work/exp/tiktok-b01-abl/logs/lightgcn-p60-seed-$s.log 2>&1
  echo "RUN lightgcn-p60 $s END rc=$? $(date)"
done
