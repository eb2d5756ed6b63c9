#!/bin/bash
# crane-code seed 2023 on the Baby real-graph folder, beside the compare process (which reaches
# seed 2023 last); resumable with --resume.
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
R=""; [ -f /work/exp/conv/brg-crane-code/crane-code/seed-2023/state.safetensors ] && R="--resume"
nice -n 5 /work/exp/bin/crane-d58e38c train --data-dir /work/exp/baby-real-graph --dataset baby --set model_preset=crane-code --set seed=2023 \
  --set 'model.item_graph_source={ files = { dir = "/work/shared/data/amazon-baby/real-item-graphs", image_weight = 0.1 } }' \
  --out /work/exp/conv/brg-crane-code/crane-code/seed-2023 --no-progress $R >> /work/exp/conv/brg-cc-2023.log 2>&1
echo BRG-CC-2023-DONE $(date) >> /work/exp/conv/brg-cc-2023.log
