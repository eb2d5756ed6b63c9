#!/bin/bash
# A queue shared by two workers (atomic mkdir claims): the cheap rows (no item graph, ~2 s per
# epoch) first, then DropEdge off with the item graph (~22 s per epoch).
Q=/work/exp/tiktok-b01-abl/claims
jobs=()
for s in 9 672 2023 5368 12784; do jobs+=("wo-item-graph|$s|--set model.item_graph=false"); done
for s in 9 672 2023 5368 12784; do jobs+=("wo-item-graph-dropedge-off|$s|--set model.item_graph=false --set model.drop_edge=off"); done
for s in 9 672 2023 5368 12784; do jobs+=("dropedge-off|$s|--set model.drop_edge=off"); done
for j in "${jobs[@]}"; do
  IFS='|' read -r n s sets <<< "$j"
  mkdir $Q/$n-$s 2>/dev/null || continue
  bash /work/exp/tiktok-b01-abl/run1.sh $n $s "$sets"
done
