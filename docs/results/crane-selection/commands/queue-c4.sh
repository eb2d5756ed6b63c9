#!/bin/bash
# Second seeds of the single-seed ablations.
set -x
export RAYON_NUM_THREADS=1
B=/work/exp/bin/crane; D=/work/shared/data/tiktok; O=/work/exp/tiktok
S="$(cat $O/crane-sets.txt)"
cd /work/exp
for ab in "wo-attention model.fusion=concat" "wo-dual-fusion model.dual_fusion=false" "wo-gcn model.ui_layers=0 model.ii_layers=0"; do
  set -- $ab; name=$1; shift
  X=""; for kv in "$@"; do X="$X --set crane:$kv"; done
  $B compare --data-dir $D --dataset tiktok --models crane --seeds 2 $S $X --out $O/ablation-$name --no-progress
done
echo QUEUE-C4-DONE
