#!/bin/bash
# Refresh every 30 steps, seed 2023 (twenty-second session): the twenty-first session's run
# (one thread to epoch 18, then two threads) was lost with the machine's scratch folder before it
# finished, so this one trains the seed again from scratch, on two threads throughout (round-off
# may differ from a one-thread run; the manifest records the thread count).
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
O=/work/exp/baby-sel; out=$O/switch-refresh-every-30-steps/crane/seed-2023
nice -n 5 /work/exp/bin/crane-516d59f train --data-dir /work/exp/baby-real-graph --dataset baby --set model_preset=crane $(cat $O/crane-sets-train.txt) --set refresh={every_n_steps=30} --set seed=2023 --out $out --no-progress > $O/logs/switch-refresh-every-30-steps-2023-fresh-2t.log 2>&1 && touch $O/queue-g/done/switch-refresh-every-30-steps-2023
echo "R30-2023 END rc=$? $(date)"
