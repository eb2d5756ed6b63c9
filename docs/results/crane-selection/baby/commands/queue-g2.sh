#!/bin/bash
# queue-g.sh with the jobs reordered (session 16): the cheap rows (without the item graph, without
# attention) before the last two DropEdge-rescaled seeds, so that more whole rows land per sitting.
# Same jobs, same folders, same done markers as queue-g.sh (the worker loop is queue-worker.sh).
source "$(dirname "$0")/queue-worker.sh"
add_row switch-dropedge-rescaled "9 672 5368"
add_row ablation-wo-item-graph
add_row ablation-wo-attention
add_row switch-dropedge-rescaled "12784 2023"
for r in ablation-wo-rca ablation-wo-gcn ablation-wo-cl ablation-wo-dual-fusion switch-refresh-every-30-steps sweep-k-5 sweep-lii-2 sweep-lui-3 sweep-r-2; do add_row $r; done
run_jobs "$1"
