#!/bin/bash
# CRANE (Table 3 Baby preset) on Baby with the real item graphs' graph-consistent generated
# features (issue 20 §4), five seeds (seed 9 already finished is skipped), one thread.
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
nice -n 5 /work/exp/bin/crane-f190059 compare --data-dir /work/exp/baby-real-graph --dataset baby --models crane --seeds 5 --out /work/exp/conv/brg-crane --no-progress > /work/exp/conv/brg-crane5.log 2>&1
echo BRG-CRANE5-DONE $(date) >> /work/exp/conv/brg-crane5.log
