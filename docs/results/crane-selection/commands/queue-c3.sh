#!/bin/bash
# After the ablations: the refresh switch on a second seed (B2 runs seed 9), then the ablations' second seed.
set -x
export RAYON_NUM_THREADS=1
B=/work/exp/bin/crane; D=/work/shared/data/tiktok; O=/work/exp/tiktok
while ! grep -q "^QUEUE-C2-DONE" $O/queue-c2.log; do sleep 20; done
S="$(cat $O/crane-sets.txt | sed 's/crane://g')"
cd /work/exp
$B train --data-dir $D --dataset tiktok --set model_preset=crane --set seed=672 $S --set 'refresh={ every_n_steps = 18 }' --out $O/switch-refresh-every-18-steps/crane/seed-672 --no-progress
S="$(cat $O/crane-sets.txt)"
for ab in "wo-item-graph model.item_graph=false" "wo-cl model.contrastive=false" "wo-rca model.rounds=1" "wo-attention model.fusion=concat" "wo-gcn model.ui_layers=0 model.ii_layers=0" "wo-dual-fusion model.dual_fusion=false"; do
  set -- $ab; name=$1; shift
  X=""; for kv in "$@"; do X="$X --set crane:$kv"; done
  $B compare --data-dir $D --dataset tiktok --models crane --seeds 2 $S $X --out $O/ablation-$name --no-progress
done
echo QUEUE-C3-DONE
