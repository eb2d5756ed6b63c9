#!/bin/bash
# Issue 22 on Baby (real interactions, graph-consistent generated features of the real item
# graphs): the selected point and the study's rows, five seeds each, as one list of (row, seed)
# jobs shared by workers: `queue-g.sh W1` and `queue-g.sh W2` each claim the next unclaimed job
# (an atomic mkdir under queue-g/claims) and train it with `crane train` into
# $O/<row>/crane/seed-S, the folder `crane compare --out $O/<row>` keeps as its own (same resolved
# config); report.sh writes each row's compare report. Resumable: after a kill,
# `rm -rf queue-g/claims` and restart (train --resume continues an interrupted seed).
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
B=/work/exp/bin/crane-516d59f; D=/work/exp/baby-real-graph; O=/work/exp/baby-sel; Q=$O/queue-g
S="$(cat $O/crane-sets-train.txt)"
mkdir -p $Q/claims $Q/done
rows=(
  "selected|"
  "switch-dropedge-off|--set model.drop_edge=off"
  "switch-dropedge-rescaled|--set model.drop_edge=bernoulli_rescaled"
  "ablation-wo-cl|--set model.contrastive=false"
  "ablation-wo-item-graph|--set model.item_graph=false"
  "ablation-wo-rca|--set model.rounds=1"
  "ablation-wo-dual-fusion|--set model.dual_fusion=false"
  "switch-refresh-every-30-steps|--set refresh={every_n_steps=30}"
  "ablation-wo-attention|--set model.fusion=concat"
  "ablation-wo-gcn|--set model.ui_layers=0 --set model.ii_layers=0"
  "sweep-k-5|--set model.knn_k=5"
  "sweep-lii-2|--set model.ii_layers=2"
  "sweep-lui-3|--set model.ui_layers=3"
  "sweep-r-2|--set model.rounds=2"
)
for j in "${rows[@]}"; do
  name=${j%%|*}; args=${j#*|}
  for seed in 9 672 5368 12784 2023; do
    job=$name-$seed; out=$O/$name/crane/seed-$seed
    [ -e $Q/done/$job ] && continue
    mkdir $Q/claims/$job 2>/dev/null || continue
    echo "$1 START $job $(date)"
    resume=""; [ -e $out/manifest.json ] && resume="--resume"
    nice -n 5 $B train --data-dir $D --dataset baby --set model_preset=crane $S $args --set seed=$seed --out $out --no-progress $resume > $O/logs/$job.log 2>&1 && touch $Q/done/$job
    echo "$1 END $job rc=$? $(date)"
  done
done
echo "$1 QUEUE-G-DONE $(date)"
