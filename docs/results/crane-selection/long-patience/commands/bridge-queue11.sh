#!/bin/bash
# The best item graph measured (frozen, audio only) beside LightGCN's weightless propagation
# (DropEdge off, w/o CL, W^(l) = I): to pair with the path's "W^(l) = I" row (no item graph).
Q=/work/exp/tiktok-b01-abl/claims
for s in 9 672 2023 5368 12784; do
  n=de-off-wo-cl-raw-graph-iw0-no-w
  mkdir $Q/q11-$n-$s 2>/dev/null || continue
  bash /work/exp/tiktok-b01-abl/run1.sh $n $s "--set model.drop_edge=off --set model.contrastive=false --set model.gcn_weights=false --set model.item_graph_source={raw_features={image_weight=0}}"
done
