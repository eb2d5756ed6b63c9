#!/bin/bash
# A cheap third worker: the frozen raw-feature graph of one modality only (DropEdge off, w/o CL),
# against queue7's 0.1 image + 0.9 audio mix (FREEDOM's Baby weight, never selected for TikTok).
Q=/work/exp/tiktok-b01-abl/claims
for w in 1 0; do
  n=de-off-wo-cl-raw-graph-iw$w
  for s in 9 672 2023 5368 12784; do
    mkdir $Q/q10-$n-$s 2>/dev/null || continue
    bash /work/exp/tiktok-b01-abl/run1.sh $n $s "--set model.drop_edge=off --set model.contrastive=false --set model.item_graph_source={raw_features={image_weight=$w}}"
  done
done
