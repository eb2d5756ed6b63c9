#!/bin/bash
# The cheap bridge from CRANE without its item graph to LightGCN, one switch at a time (no item
# graph: ~0.7 s per epoch), a third worker beside the DropEdge-off queue.
Q=/work/exp/tiktok-b01-abl/claims
jobs=()
for s in 9 672 2023 5368 12784; do jobs+=("wo-ig-de-off-no-w|$s|--set model.item_graph=false --set model.drop_edge=off --set model.gcn_weights=false"); done
for s in 9 672 2023 5368 12784; do jobs+=("wo-ig-de-off-no-w-lightgcn-reg|$s|--set model.item_graph=false --set model.drop_edge=off --set model.gcn_weights=false --set model.regularisation=batch_norms --set model.lambda=1e-2"); done
for j in "${jobs[@]}"; do
  IFS='|' read -r n s sets <<< "$j"
  mkdir $Q/$n-$s 2>/dev/null || continue
  bash /work/exp/tiktok-b01-abl/run1.sh $n $s "$sets"
done
