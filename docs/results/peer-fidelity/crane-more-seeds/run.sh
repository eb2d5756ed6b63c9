#!/bin/bash
# issue 25: crane's FREEDOM at the current preset, ten more seeds, ten epochs each, one thread (binary 516d59f)
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
for s in 1 2 3 4 5 6 7 8 10 11; do
  nice -n 5 crane train --data-dir /work/exp/peers/data/baby --dataset baby --set model_preset=freedom --set seed=$s --set epochs=10 --out /work/exp/freedom-seeds2/freedom/seed-$s --no-progress
done
echo FREEDOM-SEEDS2-DONE $(date)
