#!/bin/bash
# Issue 22, TikTok: the paper's four-way grid searched again with rungs long enough to see
# CRANE's late climb (section 8): the first 9 points of section 1's 27-point sample (same sample
# seed 2024, so a subset of it), rungs of 40 and 120 epochs, the best third going on, patience 60.
# Validation only. Two copies of this command share the run folders (one thread each).
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
B=/work/exp/bin/crane-516d59f
nice -n 5 $B grid --data-dir /work/shared/data/tiktok --dataset tiktok --set model_preset=crane --set patience=60 --grid lr=1e-3,5e-4,1e-4,5e-5 --grid model.lambda=1e-3,1e-4,1e-5 --grid model.tau=0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0 --grid model.beta=0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9 --halving --sample 9 --rungs 40,120 --eta 3 --out /work/exp/tiktok-long/halving-p60 --no-progress
echo HALVING-DONE $(date)
