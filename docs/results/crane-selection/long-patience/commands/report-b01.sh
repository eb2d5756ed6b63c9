#!/bin/bash
# section 8's table: the β = 0.1 patience-60 report over its finished seeds, then the paired rows beside it
# (run from the repository root with the study's binary as `crane`)
set -e
R=docs/results
crane compare --data-dir /work/shared/data/tiktok --dataset tiktok --models crane --seeds 5 --set crane:lr=1e-3 --set crane:model.lambda=1e-3 --set crane:model.tau=0.4 --set crane:model.beta=0.1 --set crane:patience=60 --set crane:epochs=300 --out $R/crane-selection/long-patience/b01 --report-only --no-progress
cd $R
python3 ../../scripts/variants-table.py crane-selection/long-patience/b01:"CRANE β = 0.1, patience 60" tiktok/compare@crane:"CRANE, selected point (β = 0.5), patience 5" tiktok/compare@lightgcn:"LightGCN (patience 20)" tiktok/compare@freedom:"FREEDOM (patience 20)" tiktok/compare@crane-code:"crane-code (patience 20)" crane-selection/ablation-wo-cl:"w/o CL (β = 0.5 point), patience 5"
