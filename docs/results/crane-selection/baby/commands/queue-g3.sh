#!/bin/bash
# queue-g2.sh with refresh every 30 steps (the costliest row, ~4 RCA builds per epoch) moved after
# the sweeps (seventeenth session), so that the sweeps land first. Otherwise as queue-g2.sh:
# same jobs, same folders, same done markers. The rows' settings are in rows.sh.
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
for r in ablation-wo-rca ablation-wo-gcn ablation-wo-cl ablation-wo-dual-fusion sweep-k-5 sweep-lii-2 sweep-lui-3 sweep-r-2 switch-refresh-every-30-steps; do add_row $r; done
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
