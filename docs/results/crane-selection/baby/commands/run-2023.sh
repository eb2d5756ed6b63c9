#!/bin/bash
# The selected point's fifth seed, started beside the queue's two workers (three runs on two
# cores) so that the five seeds finish together within the sitting; same command as queue-g.sh.
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
O=/work/exp/baby-sel; out=$O/selected/crane/seed-2023
nice -n 5 /work/exp/bin/crane-516d59f train --data-dir /work/exp/baby-real-graph --dataset baby --set model_preset=crane $(cat $O/crane-sets-train.txt) --set seed=2023 --out $out --no-progress > $O/logs/selected-2023.log 2>&1 && touch $O/queue-g/done/selected-2023
echo "RUN-2023 END rc=$? $(date)"
