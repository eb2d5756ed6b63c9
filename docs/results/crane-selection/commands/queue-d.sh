#!/bin/bash
# Issue 22: every variant row of the TikTok study completed to the five seeds (compare keeps the
# finished seeds and resumes an interrupted one). Same binary as the rows' earlier seeds.
set -x
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
B=/work/exp/bin/crane; D=/work/shared/data/tiktok; O=/work/exp/tiktok
S="$(cat $O/crane-sets.txt)"
cd /work/exp
for ab in "wo-item-graph model.item_graph=false" "wo-attention model.fusion=concat" "wo-rca model.rounds=1" "wo-dual-fusion model.dual_fusion=false" "wo-cl model.contrastive=false" "wo-gcn model.ui_layers=0 model.ii_layers=0"; do
  set -- $ab; name=$1; shift
  X=""; for kv in "$@"; do X="$X --set crane:$kv"; done
  nice -n 5 $B compare --data-dir $D --dataset tiktok --models crane --seeds 5 $S $X --out $O/ablation-$name --no-progress
done
nice -n 5 $B compare --data-dir $D --dataset tiktok --models crane --seeds 5 $S --set crane:model.drop_edge=off --out $O/switch-dropedge-off --no-progress
nice -n 5 $B compare --data-dir $D --dataset tiktok --models crane --seeds 5 --out $O/switch-table3-settings --no-progress
nice -n 5 $B compare --data-dir $D --dataset tiktok --models crane --seeds 5 $S --set crane:model.drop_edge=bernoulli_rescaled --out $O/switch-dropedge-rescaled --no-progress
nice -n 5 $B compare --data-dir $D --dataset tiktok --models crane --seeds 5 $S --set 'crane:refresh={ every_n_steps = 18 }' --out $O/switch-refresh-every-18-steps --no-progress
echo QUEUE-D-DONE $(date)
