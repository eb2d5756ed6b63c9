#!/bin/bash
# section 11's tables: each row's report over its finished seeds (the runs copied from
# /work/exp/tiktok-b01-abl/NAME to long-patience/b01-NAME without model state), then the rows paired by
# seed: the path to LightGCN step by step (--chain), the item-graph-kept rows against the full model,
# the cross pairs the text quotes, and the item graph branch taken apart (run from the repository root with the study's binary as `crane`)
set -e
R=docs/results/crane-selection/long-patience
C="--data-dir /work/shared/data/tiktok --dataset tiktok --seeds 5 --report-only --no-progress"
P="--set crane:lr=1e-3 --set crane:model.lambda=1e-3 --set crane:model.tau=0.4 --set crane:model.beta=0.1 --set crane:patience=60 --set crane:epochs=300"
row() { n=$1; shift; crane compare $C --models crane $P "$@" --out $R/b01-$n; }
row wo-item-graph --set crane:model.item_graph=false
row wo-item-graph-dropedge-off --set crane:model.item_graph=false --set crane:model.drop_edge=off
row wo-ig-de-off-no-w --set crane:model.item_graph=false --set crane:model.drop_edge=off --set crane:model.gcn_weights=false
row wo-ig-de-off-no-w-lightgcn-reg --set crane:model.item_graph=false --set crane:model.drop_edge=off --set crane:model.gcn_weights=false --set crane:model.regularisation=batch_norms --set crane:model.lambda=1e-2
row wo-ig-de-off-no-w-lightgcn-all --set crane:model.item_graph=false --set crane:model.drop_edge=off --set crane:model.gcn_weights=false --set crane:model.regularisation=batch_norms --set crane:model.lambda=1e-2 --set crane:batch_size=2048 --set crane:round_metric=true
row dropedge-off --set crane:model.drop_edge=off
row de-off-no-w --set crane:model.drop_edge=off --set crane:model.gcn_weights=false
row de-off-wo-cl --set crane:model.drop_edge=off --set crane:model.contrastive=false
# the item graph branch taken apart (twenty-fourth session; bridge-queue6.sh to bridge-queue11.sh)
# G W: FREEDOM's frozen raw-feature graph with image weight W (1 − W to audio), as two words
G() { echo "--set crane:model.item_graph_source={raw_features={image_weight=$1}}"; }
row de-off-wo-cl-raw-graph --set crane:model.drop_edge=off --set crane:model.contrastive=false $(G 0.1)
row de-off-raw-graph --set crane:model.drop_edge=off $(G 0.1)
row raw-graph $(G 0.1)
row de-off-wo-cl-no-user-sem --set crane:model.drop_edge=off --set crane:model.contrastive=false --set crane:model.user_semantic=false
row de-off-wo-cl-raw-graph-no-w --set crane:model.drop_edge=off --set crane:model.contrastive=false --set crane:model.gcn_weights=false $(G 0.1)
row de-off-wo-cl-raw-graph-iw0-no-w --set crane:model.drop_edge=off --set crane:model.contrastive=false --set crane:model.gcn_weights=false $(G 0)
for w in 1 0; do row de-off-wo-cl-raw-graph-iw$w --set crane:model.drop_edge=off --set crane:model.contrastive=false $(G $w); done
crane compare $C --models lightgcn --set lightgcn:lr=1e-3 --set lightgcn:model.lambda=1e-2 --set lightgcn:patience=60 --set lightgcn:epochs=300 --out $R/lightgcn-p60
cd docs/results
L=crane-selection/long-patience
# the path from the full model to LightGCN, each row against the row above
python3 ../../scripts/variants-table.py --chain $L/b01:"CRANE β = 0.1, patience 60 (section 8)" $L/b01-wo-item-graph:"w/o Item Graph" $L/b01-wo-item-graph-dropedge-off:"… and DropEdge off" $L/b01-wo-ig-de-off-no-w:"… and W^(l) = I (LightGCN's propagation)" $L/b01-wo-ig-de-off-no-w-lightgcn-reg:"… and LightGCN's regulariser (\`batch_norms\`) and λ = 1e-2" $L/b01-wo-ig-de-off-no-w-lightgcn-all:"… and LightGCN's batch size (2048) and rounded validation metric" tiktok/compare@lightgcn:"LightGCN (section 2's runs)"
echo
# the item graph kept, against the full model
python3 ../../scripts/variants-table.py $L/b01:"CRANE β = 0.1, patience 60 (section 8)" $L/b01-dropedge-off:"DropEdge off" $L/b01-de-off-no-w:"DropEdge off and W^(l) = I"
echo
# LightGCN's preset at patience 60 on this binary against section 2's runs
python3 ../../scripts/variants-table.py tiktok/compare@lightgcn:"LightGCN (section 2's runs)" $L/lightgcn-p60@lightgcn:"LightGCN, patience 60"
echo
# the item graph's cost under the other two settings (pairs across the two tables above)
python3 ../../scripts/variants-table.py $L/b01-dropedge-off:"DropEdge off" $L/b01-wo-item-graph-dropedge-off:"DropEdge off, w/o Item Graph"
python3 ../../scripts/variants-table.py $L/b01-de-off-no-w:"DropEdge off and W^(l) = I" $L/b01-wo-ig-de-off-no-w:"DropEdge off and W^(l) = I, w/o Item Graph"
python3 ../../scripts/variants-table.py $L/b01-dropedge-off:"DropEdge off" $L/b01-de-off-no-w:"DropEdge off and W^(l) = I"
echo
# the item graph branch taken apart, DropEdge off: a path from the full branch to no branch
python3 ../../scripts/variants-table.py --chain $L/b01-dropedge-off:"DropEdge off (the whole branch)" $L/b01-de-off-wo-cl:"… w/o CL" $L/b01-de-off-wo-cl-raw-graph:"… and FREEDOM's frozen raw-feature graph for the learned one" $L/b01-wo-item-graph-dropedge-off:"… and no item graph (w/o Item Graph)"
echo
# the same parts measured in the other order or beside other switches
python3 ../../scripts/variants-table.py $L/b01-de-off-wo-cl:"DropEdge off, w/o CL" $L/b01-de-off-wo-cl-no-user-sem:"… and no user profiles (Eq. 16 off)" $L/b01-wo-item-graph-dropedge-off:"… and no item graph (w/o Item Graph)"
python3 ../../scripts/variants-table.py $L/b01-dropedge-off:"DropEdge off" $L/b01-de-off-raw-graph:"DropEdge off, frozen raw-feature graph"
python3 ../../scripts/variants-table.py $L/b01-de-off-raw-graph:"DropEdge off, frozen raw-feature graph" $L/b01-de-off-wo-cl-raw-graph:"… w/o CL"
python3 ../../scripts/variants-table.py $L/b01:"CRANE β = 0.1, patience 60 (section 8)" $L/b01-raw-graph:"frozen raw-feature graph"
python3 ../../scripts/variants-table.py $L/b01-wo-ig-de-off-no-w:"DropEdge off, W^(l) = I, w/o Item Graph" $L/b01-de-off-wo-cl-raw-graph-no-w:"… w/o CL, frozen graph 0.1 image + 0.9 audio" $L/b01-de-off-wo-cl-raw-graph-iw0-no-w:"… w/o CL, frozen graph audio only" tiktok/compare@lightgcn:"LightGCN (section 2's runs)"
# the frozen graph's modality weight (DropEdge off, w/o CL), against no item graph
python3 ../../scripts/variants-table.py $L/b01-wo-item-graph-dropedge-off:"DropEdge off, w/o Item Graph" $L/b01-de-off-wo-cl-raw-graph:"DropEdge off, w/o CL, frozen graph 0.1 image + 0.9 audio" $L/b01-de-off-wo-cl-raw-graph-iw1:"… image only" $L/b01-de-off-wo-cl-raw-graph-iw0:"… audio only"
