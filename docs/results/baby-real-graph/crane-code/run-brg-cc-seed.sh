#!/bin/bash
# crane-code seed $1 on the Baby real-graph folder, as `crane compare` would run it (same config
# as run-brg-cc-2023.sh); resumable with --resume. One thread, nice 5.
S=$1
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
D=/work/exp/conv/brg-crane-code/crane-code/seed-$S
R=""; [ -f $D/state.safetensors ] && R="--resume"
nice -n 5 /work/exp/bin/crane-d58e38c train --data-dir /work/exp/baby-real-graph --dataset baby --set model_preset=crane-code --set seed=$S \
  --set 'model.item_graph_source={ files = { dir = "/work/shared/data/amazon-baby/real-item-graphs", image_weight = 0.1 } }' \
  --out $D --no-progress $R >> /work/exp/conv/brg-cc-$S.log 2>&1
echo BRG-CC-$S-DONE $(date) >> /work/exp/conv/brg-cc-$S.log
