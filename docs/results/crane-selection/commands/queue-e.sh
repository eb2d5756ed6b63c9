#!/bin/bash
# Issue 22, Fig. 5: one-at-a-time sweeps of the structural settings at the selected point, five
# seeds each (the selected point itself is R = 3, L_UI = 2, L_II = 1, k = 15; R = 1 is the
# ablation-wo-rca row). Same binary as the study's other rows.
set -x
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
B=/work/exp/bin/crane; D=/work/shared/data/tiktok; O=/work/exp/tiktok
while ! grep -q "^QUEUE-D-DONE" $O/queue-d.log 2>/dev/null; do sleep 30; done
S="$(cat $O/crane-sets.txt)"
cd /work/exp
for sw in "k 5 model.knn_k" "k 10 model.knn_k" "k 20 model.knn_k" "lii 2 model.ii_layers" "lii 3 model.ii_layers" "lui 1 model.ui_layers" "lui 3 model.ui_layers" "lui 4 model.ui_layers" "r 2 model.rounds" "r 4 model.rounds"; do
  set -- $sw
  nice -n 5 $B compare --data-dir $D --dataset tiktok --models crane --seeds 5 $S --set crane:$3=$2 --out $O/sweep-$1-$2 --no-progress
done
echo QUEUE-E-DONE $(date)
