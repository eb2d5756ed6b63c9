#!/bin/bash
# CRANE (Table 3 Baby preset) on Baby with the real item graphs' graph-consistent generated
# features (issue 20 §4), seed 9, one thread.
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
nice -n 5 /work/exp/bin/crane-f190059 compare --data-dir /work/exp/baby-real-graph --dataset baby --models crane --seeds 1 --out /work/exp/conv/brg-crane --no-progress > /work/exp/conv/brg-crane.log 2>&1
echo BRG-CRANE-DONE $(date) >> /work/exp/conv/brg-crane.log
