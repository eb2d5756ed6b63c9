#!/bin/bash
# Refresh every 30 steps, seed 2023 (twenty-first session): started by queue-g4.sh on one thread,
# stopped after its epoch 18 once the other two seeds had finished and a core sat idle, and
# resumed here on two threads (the same command with --resume; round-off may differ from a
# one-thread run from epoch 19 on, the manifest records the thread count).
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
O=/work/exp/baby-sel; out=$O/switch-refresh-every-30-steps/crane/seed-2023
nice -n 5 /work/exp/bin/crane-516d59f train --data-dir /work/exp/baby-real-graph --dataset baby --set model_preset=crane $(cat $O/crane-sets-train.txt) --set refresh={every_n_steps=30} --set seed=2023 --out $out --no-progress --resume > $O/logs/switch-refresh-every-30-steps-2023-2t.log 2>&1 && touch $O/queue-g/done/switch-refresh-every-30-steps-2023
echo "R30-2023 END rc=$? $(date)"
