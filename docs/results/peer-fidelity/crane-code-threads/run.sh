#!/bin/bash
# crane-code seed 9 for two epochs on one and on two threads, the same binary (516d59f) and data folder:
# the histories' losses and validation metrics are identical (only seconds and memory differ).
for t in 1 2; do
  RAYON_NUM_THREADS=$t OMP_NUM_THREADS=1 crane train --data-dir /work/exp/peers/data/baby --dataset baby \
    --set model_preset=crane-code --set seed=9 --set epochs=2 --out threads-$t --no-progress
done
