#!/bin/bash
# issue 25: crane-code, five seeds to convergence at the current preset, on the peers' data folder; T=2 for two threads (seed 9 ran epochs 0-6 on one, everything after on two).
export RAYON_NUM_THREADS=${T:-1} OMP_NUM_THREADS=1
nice -n 5 /work/exp/bin/crane-516d59f compare --data-dir /work/exp/peers/data/baby --dataset baby --models crane-code --seeds 5 --out /work/exp/conv/crane-compare --no-progress >> /work/exp/conv/crane-compare.log 2>&1
echo CRANE-CODE-CONV-DONE rc=$? $(date) >> /work/exp/conv/crane-compare.log
