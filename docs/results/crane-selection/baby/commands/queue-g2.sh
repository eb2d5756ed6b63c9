#!/bin/bash
# queue-g.sh with the jobs reordered (session 16): the cheap rows (without the item graph, without
# attention) before the last two DropEdge-rescaled seeds, so that more whole rows land per sitting.
# Same jobs, same folders, same done markers as queue-g.sh. The rows' settings are in rows.sh
# (moved there after the sixteenth session's runs, same values).
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
B=/work/exp/bin/crane-516d59f; D=/work/exp/baby-real-graph; O=/work/exp/baby-sel; Q=$O/queue-g
S="$(cat $O/crane-sets-train.txt)"
mkdir -p $Q/claims $Q/done
source $O/rows.sh
seeds="9 672 5368 12784 2023"
jobs=()
add_row() { for s in ${2:-$seeds}; do jobs+=("$1|$s"); done; }
add_row switch-dropedge-rescaled "9 672 5368"
add_row ablation-wo-item-graph
add_row ablation-wo-attention
add_row switch-dropedge-rescaled "12784 2023"
for r in ablation-wo-rca ablation-wo-gcn ablation-wo-cl ablation-wo-dual-fusion switch-refresh-every-30-steps sweep-k-5 sweep-lii-2 sweep-lui-3 sweep-r-2; do add_row $r; done
for j in "${jobs[@]}"; do
  name=${j%%|*}; seed=${j#*|}; args=${A[$name]}
  job=$name-$seed; out=$O/$name/crane/seed-$seed
  [ -e $Q/done/$job ] && continue
  mkdir $Q/claims/$job 2>/dev/null || continue
  echo "$1 START $job $(date)"
  resume=""; [ -e $out/manifest.json ] && resume="--resume"
  nice -n 5 $B train --data-dir $D --dataset baby --set model_preset=crane $S $args --set seed=$seed --out $out --no-progress $resume > $O/logs/$job.log 2>&1 && touch $Q/done/$job
  echo "$1 END $job rc=$? $(date)"
done
echo "$1 QUEUE-G-DONE $(date)"
