#!/bin/bash
# crane-code on TikTok, five seeds, converged (issue 20); one thread, nice 5; resumable. Start it
# twice (`run-tt-cc.sh A`, `run-tt-cc.sh B`): the two compare processes share the run folders
# (each puts off a run the other holds) and both write the report.
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
nice -n 5 /work/exp/bin/crane-f43d36d compare --data-dir /work/shared/data/tiktok --dataset tiktok --models crane-code --seeds 5 --out /work/exp/conv/tiktok-cc --no-progress >> /work/exp/conv/tiktok-cc-$1.log 2>&1
echo TT-CC-DONE $(date) >> /work/exp/conv/tiktok-cc-$1.log
