#!/bin/bash
# crane-code on Baby with the real item graphs (frozen graph from the files) and the
# graph-consistent generated features (issue 20 §4), seed 9, one thread; resumable
# (`crane compare` skips finished runs; `--resume` continues a cut one).
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
nice -n 5 /work/exp/bin/crane-d58e38c compare --data-dir /work/exp/baby-real-graph --dataset baby --models crane-code --seeds 5 \
  --set 'crane-code:model.item_graph_source={ files = { dir = "/work/shared/data/amazon-baby/real-item-graphs", image_weight = 0.1 } }' \
  --out /work/exp/conv/brg-crane-code --no-progress --resume >> /work/exp/conv/brg-crane-code.log 2>&1
echo BRG-CC-DONE $(date) >> /work/exp/conv/brg-crane-code.log
