#!/bin/bash
# CRANE on TikTok: the paper's four-way grid by successive halving (validation only), then 5 seeds.
set -x
export RAYON_NUM_THREADS=1
B=/work/exp/bin/crane; D=/work/shared/data/tiktok; O=/work/exp/tiktok
cd /work/exp
$B grid --data-dir $D --dataset tiktok --set model_preset=crane --grid lr=1e-3,5e-4,1e-4,5e-5 --grid model.lambda=1e-3,1e-4,1e-5 --grid model.tau=0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0 --grid model.beta=0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9 --halving --sample 27 --rungs 2,6,18 --eta 3 --out $O/halving-crane --no-progress
S="$(python3 /work/exp/select.py $O/halving-crane/halving.csv crane)"
echo "$S" > $O/crane-sets.txt
$B compare --data-dir $D --dataset tiktok --models crane --seeds 5 $S --out $O/compare --no-progress
echo QUEUE-B-DONE
