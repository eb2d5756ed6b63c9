#!/bin/bash
# Baselines on TikTok: validation-selected grid points, then 5 seeds (and crane-code at its preset).
set -x
export RAYON_NUM_THREADS=1
B=/work/exp/bin/crane; D=/work/shared/data/tiktok; O=/work/exp/tiktok
cd /work/exp
$B grid --data-dir $D --dataset tiktok --set model_preset=bpr --grid model.lambda=2,1,1e-1,1e-2,1e-3,1e-4,1e-5 --out $O/grid-bpr --no-progress
$B grid --data-dir $D --dataset tiktok --set model_preset=lightgcn --grid model.ui_layers=1,2,3,4 --grid model.lambda=1e-2,1e-3,1e-4,1e-5,1e-6 --halving --rungs 20,60,1000 --eta 3 --out $O/halving-lightgcn --no-progress
$B grid --data-dir $D --dataset tiktok --set model_preset=freedom --grid model.drop_edge.freedom.keep_ratio=0.2,0.1 --grid model.modality_bpr=0,1e-5,1e-4,1e-3 --halving --rungs 20,1000 --eta 3 --out $O/halving-freedom --no-progress
S="$(python3 /work/exp/select.py $O/grid-bpr/grid.csv bpr) $(python3 /work/exp/select.py $O/halving-lightgcn/halving.csv lightgcn) $(python3 /work/exp/select.py $O/halving-freedom/halving.csv freedom)"
echo "$S" > $O/baseline-sets.txt
$B compare --data-dir $D --dataset tiktok --models bpr,lightgcn,freedom --seeds 5 $S --out $O/compare --no-progress
$B compare --data-dir $D --dataset tiktok --models crane-code --seeds 5 --out $O/compare --no-progress
echo QUEUE-A-DONE
