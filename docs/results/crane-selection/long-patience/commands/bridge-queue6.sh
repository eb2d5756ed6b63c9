#!/bin/bash
# The item graph kept, DropEdge off, the contrastive terms off (w/o CL): what of the item graph
# branch's cost is the contrastive terms'.
Q=/work/exp/tiktok-b01-abl/claims
for s in 9 672 2023 5368 12784; do
  n=de-off-wo-cl
  mkdir $Q/$n-$s 2>/dev/null || continue
  bash /work/exp/tiktok-b01-abl/run1.sh $n $s "--set model.drop_edge=off --set model.contrastive=false"
done
