#!/bin/bash
# Third queue: whatever DropEdge-off seed is unclaimed, then the full model with DropEdge off and
# LightGCN's weightless propagation (W^(l) = I in Eq. 3-4), the item graph kept (~11 s per epoch).
Q=/work/exp/tiktok-b01-abl/claims
jobs=()
for s in 9 672 2023 5368 12784; do jobs+=("dropedge-off|$s|--set model.drop_edge=off"); done
for s in 9 672 2023 5368 12784; do jobs+=("de-off-no-w|$s|--set model.drop_edge=off --set model.gcn_weights=false"); done
for j in "${jobs[@]}"; do
  IFS='|' read -r n s sets <<< "$j"
  mkdir $Q/$n-$s 2>/dev/null || continue
  bash /work/exp/tiktok-b01-abl/run1.sh $n $s "$sets"
done
