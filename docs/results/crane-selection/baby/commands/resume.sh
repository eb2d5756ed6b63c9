#!/bin/bash
# Resumes a selected-point seed stopped at the end of a sitting (train --resume: same result as
# an uninterrupted run).
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
O=/work/exp/baby-sel; s=$1; out=$O/selected/crane/seed-$s
nice -n 5 /work/exp/bin/crane-516d59f train --data-dir /work/exp/baby-real-graph --dataset baby --set model_preset=crane $(cat $O/crane-sets-train.txt) --set seed=$s --out $out --no-progress --resume >> $O/logs/selected-$s.log 2>&1 && touch $O/queue-g/done/selected-$s
echo "RESUME $s END rc=$? $(date)"
