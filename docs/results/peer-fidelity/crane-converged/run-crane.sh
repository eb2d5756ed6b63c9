#!/bin/bash
# crane's FREEDOM, five seeds to convergence at the current preset, on the peers' data folder (one thread).
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
/work/exp/bin/crane-14fb436 compare --data-dir /work/exp/peers/data/baby --dataset baby --models freedom --seeds 5 --out /work/exp/conv/crane-compare --no-progress > /work/exp/conv/crane-compare.log 2>&1
echo CRANE-CONV-DONE $(date) >> /work/exp/conv/crane-compare.log
