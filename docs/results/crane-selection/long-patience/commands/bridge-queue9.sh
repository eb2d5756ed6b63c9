#!/bin/bash
# A cheap third worker beside queue8's slow row: the frozen raw-feature graph beside LightGCN's
# weightless propagation (DropEdge off, w/o CL, W^(l) = I), to pair with the path's
# "W^(l) = I" row (no item graph): does a feature graph add anything to what trains best?
Q=/work/exp/tiktok-b01-abl/claims
R="--set model.item_graph_source={raw_features={image_weight=0.1}}"
for s in 9 672 2023 5368 12784; do
  n=de-off-wo-cl-raw-graph-no-w
  mkdir $Q/q9-$n-$s 2>/dev/null || continue
  bash /work/exp/tiktok-b01-abl/run1.sh $n $s "--set model.drop_edge=off --set model.contrastive=false --set model.gcn_weights=false $R"
done
