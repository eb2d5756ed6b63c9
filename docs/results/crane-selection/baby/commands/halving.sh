#!/bin/bash
# CRANE on Baby (real interactions, graph-consistent generated features of the real item graphs):
# the paper's four-way grid by successive halving (validation only), as on TikTok. Two copies of
# this command share the run folders (one thread each).
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
B=/work/exp/bin/crane-516d59f
D=/work/exp/baby-real-graph
nice -n 5 $B grid --data-dir $D --dataset baby --set model_preset=crane --grid lr=1e-3,5e-4,1e-4,5e-5 --grid model.lambda=1e-3,1e-4,1e-5 --grid model.tau=0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0 --grid model.beta=0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9 --halving --sample 27 --rungs 2,6,18 --eta 3 --out /work/exp/baby-sel/halving-crane --no-progress
echo HALVING-DONE $(date)
