#!/bin/bash
# Issue 22 on TikTok: one-switch runs at CRANE's validation-selected point (5 seeds each).
set -x
export RAYON_NUM_THREADS=1
B=/work/exp/bin/crane; D=/work/shared/data/tiktok; O=/work/exp/tiktok
while ! grep -q "^QUEUE-B-DONE" $O/queue-b.log; do sleep 20; done
S="$(cat $O/crane-sets.txt)"
cd /work/exp
$B compare --data-dir $D --dataset tiktok --models crane --seeds 3 $S --set crane:model.drop_edge=off --out $O/switch-dropedge-off --no-progress
$B compare --data-dir $D --dataset tiktok --models crane --seeds 3 $S --set crane:model.drop_edge=bernoulli_rescaled --out $O/switch-dropedge-rescaled --no-progress
$B compare --data-dir $D --dataset tiktok --models crane --seeds 3 --out $O/switch-table3-settings --no-progress
$B compare --data-dir $D --dataset tiktok --models crane --seeds 1 $S --set 'crane:refresh={ every_n_steps = 18 }' --out $O/switch-refresh-every-18-steps --no-progress
echo QUEUE-B2-DONE
