#!/bin/bash
# The selected point's compare report (keeps the five seeds trained by queue-g.sh / run-2023.sh),
# then the table beside the Baby baselines (paired by seed on the same split).
export RAYON_NUM_THREADS=1
O=/work/exp/baby-sel; R=/work/main/docs/results
/work/exp/bin/crane-516d59f compare --data-dir /work/exp/baby-real-graph --dataset baby --models crane --seeds 5 $(cat $O/crane-sets.txt) --out $O/selected --report-only --no-progress
python3 /work/main/scripts/variants-table.py $O/selected:"CRANE, selected point" $R/baby-real-graph/crane-paper:"CRANE, Table 3's point" $R/baby-planted-runs@lightgcn:"LightGCN (L = 4, λ = 1e-4)" $R/baby-planted-runs@bpr:"BPR-MF (λ = 0.1)" $R/baby-real-graph/torch-defaults@freedom:"FREEDOM (real frozen item graph)" $R/baby-real-graph/crane-code@crane-code:"crane-code (real frozen item graph)"
