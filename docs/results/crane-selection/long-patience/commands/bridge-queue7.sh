#!/bin/bash
# The item graph kept, DropEdge off, w/o CL; then which part of what is left costs:
# (a) FREEDOM's frozen kNN graph on the raw features (image weight 0.1, as section 2's FREEDOM)
#     in place of the graph learned through RCA (Eq. 5-14);
# (b) no user profiles (Eq. 16 off: h_u = 0), the learned graph kept.
# As it ran, row (b)'s five claims were made by hand before the workers reached them, so that
# bridge-queue8.sh's cheap rows went first; bridge-queue8.sh ran row (b). Run both from empty
# claims and row (b) is claimed twice: the second `crane train` is refused (its folder exists).
Q=/work/exp/tiktok-b01-abl/claims
for n in de-off-wo-cl-raw-graph de-off-wo-cl-no-user-sem; do
  case $n in
    de-off-wo-cl-raw-graph) x="--set model.item_graph_source={raw_features={image_weight=0.1}}";;
    de-off-wo-cl-no-user-sem) x="--set model.user_semantic=false";;
  esac
  for s in 9 672 2023 5368 12784; do
    mkdir $Q/$n-$s 2>/dev/null || continue
    bash /work/exp/tiktok-b01-abl/run1.sh $n $s "--set model.drop_edge=off --set model.contrastive=false $x"
  done
done
