#!/bin/bash
# Issue 22: queue-d's rows (every TikTok study row to five seeds) then queue-e's (Fig. 5 sweeps),
# as one job list shared by workers: `queue-f.sh W1` and `queue-f.sh W2` each claim the next
# unclaimed job (an atomic mkdir under queue-f/claims) and run it; a job is one `crane compare`
# over its own --out, so no two workers ever train into one folder (the study's binary predates
# run-folder locks). Resumable: compare keeps finished seeds and resumes an interrupted one;
# before restarting after a kill, `rm -rf queue-f/claims` (finished jobs are in queue-f/done).
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
B=/work/exp/bin/crane; D=/work/shared/data/tiktok; O=/work/exp/tiktok; Q=$O/queue-f
S="$(cat $O/crane-sets.txt)"
mkdir -p $Q/claims $Q/done
cd /work/exp
jobs=(
  "ablation-wo-gcn|--set crane:model.ui_layers=0 --set crane:model.ii_layers=0"
  "switch-refresh-every-18-steps|--set crane:refresh={every_n_steps=18}"
  "ablation-wo-cl|--set crane:model.contrastive=false"
  "switch-dropedge-rescaled|--set crane:model.drop_edge=bernoulli_rescaled"
  "ablation-wo-dual-fusion|--set crane:model.dual_fusion=false"
  "switch-table3-settings|TABLE3"
  "ablation-wo-rca|--set crane:model.rounds=1"
  "ablation-wo-attention|--set crane:model.fusion=concat"
  "ablation-wo-item-graph|--set crane:model.item_graph=false"
  "switch-dropedge-off|--set crane:model.drop_edge=off"
  "sweep-k-5|--set crane:model.knn_k=5"
  "sweep-k-10|--set crane:model.knn_k=10"
  "sweep-k-20|--set crane:model.knn_k=20"
  "sweep-lii-2|--set crane:model.ii_layers=2"
  "sweep-lii-3|--set crane:model.ii_layers=3"
  "sweep-lui-1|--set crane:model.ui_layers=1"
  "sweep-lui-3|--set crane:model.ui_layers=3"
  "sweep-lui-4|--set crane:model.ui_layers=4"
  "sweep-r-2|--set crane:model.rounds=2"
  "sweep-r-4|--set crane:model.rounds=4"
)
for j in "${jobs[@]}"; do
  name=${j%%|*}; args=${j#*|}
  [ -e $Q/done/$name ] && continue
  mkdir $Q/claims/$name 2>/dev/null || continue
  echo "$1 START $name $(date)"
  if [ "$args" = TABLE3 ]; then
    nice -n 5 $B compare --data-dir $D --dataset tiktok --models crane --seeds 5 --out $O/$name --no-progress
  else
    nice -n 5 $B compare --data-dir $D --dataset tiktok --models crane --seeds 5 $S $args --out $O/$name --no-progress
  fi && touch $Q/done/$name
  echo "$1 END $name rc=$? $(date)"
done
echo "$1 QUEUE-F-DONE $(date)"
