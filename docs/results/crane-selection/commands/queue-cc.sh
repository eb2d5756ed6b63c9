#!/bin/bash
# crane-code seeds 5368 and 2023 beside queue A (which runs 9, 672, 12784 and keeps these when it
# reaches them: same resolved config).
set -x
export RAYON_NUM_THREADS=1
B=/work/exp/bin/crane; D=/work/shared/data/tiktok; O=/work/exp/tiktok
for s in 5368 2023; do
  $B train --data-dir $D --dataset tiktok --set model_preset=crane-code --set seed=$s --out $O/compare/crane-code/seed-$s --no-progress
done
echo QUEUE-CC-DONE
