#!/bin/bash
# crane-code on TikTok, five seeds, converged (issue 20); one thread, nice 5; resumable (compare resumes).
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
nice -n 5 /work/exp/bin/crane-c8718ff compare --data-dir /work/shared/data/tiktok --dataset tiktok --models crane-code --seeds 5 --out /work/exp/conv/tiktok-cc --no-progress >> /work/exp/conv/tiktok-cc.log 2>&1
echo TT-CC-DONE $(date) >> /work/exp/conv/tiktok-cc.log
