#!/bin/bash
# After queue7's frozen-graph row (which ran at ~1.3 s per epoch against ~13 s with RCA): the
# frozen raw-feature graph with the contrastive terms on (DropEdge off), and in the full model
# (only the graph's source changed); then queue7's row (b), no user profiles.
Q=/work/exp/tiktok-b01-abl/claims
R="--set model.item_graph_source={raw_features={image_weight=0.1}}"
jobs=()
for s in 9 672 2023 5368 12784; do jobs+=("de-off-raw-graph|$s|--set model.drop_edge=off $R"); done
for s in 9 672 2023 5368 12784; do jobs+=("raw-graph|$s|$R"); done
for s in 9 672 2023 5368 12784; do jobs+=("de-off-wo-cl-no-user-sem|$s|--set model.drop_edge=off --set model.contrastive=false --set model.user_semantic=false"); done
for j in "${jobs[@]}"; do
  IFS='|' read -r n s sets <<< "$j"
  mkdir $Q/q8-$n-$s 2>/dev/null || continue
  bash /work/exp/tiktok-b01-abl/run1.sh $n $s "$sets"
done
