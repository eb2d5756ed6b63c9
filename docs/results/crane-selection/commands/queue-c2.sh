#!/bin/bash
# Issue 22 on TikTok: Table 5's six ablations at CRANE's validation-selected point (3 seeds each).
set -x
export RAYON_NUM_THREADS=1
B=/work/exp/bin/crane; D=/work/shared/data/tiktok; O=/work/exp/tiktok
while ! grep -q "^QUEUE-C-DONE" /work/exp/queue-c.log; do sleep 20; done
S="$(cat $O/crane-sets.txt)"
cd /work/exp
for ab in "wo-item-graph model.item_graph=false" "wo-rca model.rounds=1" "wo-attention model.fusion=concat" "wo-gcn model.ui_layers=0 model.ii_layers=0" "wo-cl model.contrastive=false" "wo-dual-fusion model.dual_fusion=false"; do
  set -- $ab; name=$1; shift
  X=""; for kv in "$@"; do X="$X --set crane:$kv"; done
  $B compare --data-dir $D --dataset tiktok --models crane --seeds 1 $S $X --out $O/ablation-$name --no-progress
done
echo QUEUE-C2-DONE
