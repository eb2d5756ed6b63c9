#!/bin/bash
# The bridge's last step: LightGCN's batch size (2048, MMRec's) and validation metric rounded to 4
# decimals as MMRec does; with it every switch of the LightGCN preset is set on the crane preset.
Q=/work/exp/tiktok-b01-abl/claims
for s in 9 672 2023 5368 12784; do
  n=wo-ig-de-off-no-w-lightgcn-all
  mkdir $Q/$n-$s 2>/dev/null || continue
  bash /work/exp/tiktok-b01-abl/run1.sh $n $s "--set model.item_graph=false --set model.drop_edge=off --set model.gcn_weights=false --set model.regularisation=batch_norms --set model.lambda=1e-2 --set batch_size=2048 --set round_metric=true"
done
