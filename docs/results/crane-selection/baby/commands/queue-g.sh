#!/bin/bash
# Issue 22 on Baby (real interactions, graph-consistent generated features of the real item
# graphs): the selected point and the study's rows, five seeds each, in the order below, shared
# by workers (`queue-g.sh W1`, `queue-g.sh W2`; the worker loop is queue-worker.sh).
source "$(dirname "$0")/queue-worker.sh"
for r in selected switch-dropedge-off switch-dropedge-rescaled ablation-wo-cl ablation-wo-item-graph ablation-wo-rca ablation-wo-dual-fusion switch-refresh-every-30-steps ablation-wo-attention ablation-wo-gcn sweep-k-5 sweep-lii-2 sweep-lui-3 sweep-r-2; do add_row $r; done
run_jobs "$1"
