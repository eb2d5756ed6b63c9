#!/bin/bash
# Baby rows at the selected point (issue 22, sixteenth session): each finished row's compare
# report (`crane compare --report-only` keeps the five seeds queue-g.sh / queue-g2.sh trained,
# same resolved config), then one table of the rows against the selected point, paired by seed.
# Usage: report-rows.sh ROW[:LABEL] ...   (rows whose five seeds are done)
export RAYON_NUM_THREADS=1
O=/work/exp/baby-sel; B=/work/exp/bin/crane-516d59f
declare -A A=(
  [switch-dropedge-off]="--set crane:model.drop_edge=off"
  [switch-dropedge-rescaled]="--set crane:model.drop_edge=bernoulli_rescaled"
  [ablation-wo-cl]="--set crane:model.contrastive=false"
  [ablation-wo-item-graph]="--set crane:model.item_graph=false"
  [ablation-wo-rca]="--set crane:model.rounds=1"
  [ablation-wo-dual-fusion]="--set crane:model.dual_fusion=false"
  [switch-refresh-every-30-steps]="--set crane:refresh={every_n_steps=30}"
  [ablation-wo-attention]="--set crane:model.fusion=concat"
  [ablation-wo-gcn]="--set crane:model.ui_layers=0 --set crane:model.ii_layers=0"
  [sweep-k-5]="--set crane:model.knn_k=5"
  [sweep-lii-2]="--set crane:model.ii_layers=2"
  [sweep-lui-3]="--set crane:model.ui_layers=3"
  [sweep-r-2]="--set crane:model.rounds=2"
)
cols=("$O/selected:selected point")
for spec in "$@"; do
  row=${spec%%:*}; label=${spec#*:}; [ "$label" = "$spec" ] && label=$row
  $B compare --data-dir /work/exp/baby-real-graph --dataset baby --models crane --seeds 5 $(cat $O/crane-sets.txt) ${A[$row]} --out $O/$row --report-only --no-progress > /dev/null || exit 1
  cols+=("$O/$row:$label")
done
python3 /work/main/scripts/variants-table.py "${cols[@]}"
