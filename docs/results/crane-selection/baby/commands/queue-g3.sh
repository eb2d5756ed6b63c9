#!/bin/bash
# queue-g2.sh with refresh every 30 steps (the costliest row, ~4 RCA builds per epoch) moved after
# the sweeps (seventeenth session), so that the sweeps land first. Same jobs, same folders, same
# done markers (the worker loop is queue-worker.sh).
source "$(dirname "$0")/queue-worker.sh"
add_row switch-dropedge-rescaled "9 672 5368"
add_row ablation-wo-item-graph
add_row ablation-wo-attention
add_row switch-dropedge-rescaled "12784 2023"
for r in ablation-wo-rca ablation-wo-gcn ablation-wo-cl ablation-wo-dual-fusion sweep-k-5 sweep-lii-2 sweep-lui-3 sweep-r-2 switch-refresh-every-30-steps; do add_row $r; done
run_jobs "$1"
