#!/bin/bash
# crane-code seed $1 on TikTok, as `crane compare` (run-tt-cc.sh) runs it, into the same run folder
# (compare keeps it: same resolved config); resumable. One thread, nice 5.
S=$1
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
D=/work/exp/conv/tiktok-cc/crane-code/seed-$S
R=""; [ -f $D/state.safetensors ] && R="--resume"
nice -n 5 /work/exp/bin/crane-c8718ff train --data-dir /work/shared/data/tiktok --dataset tiktok --set model_preset=crane-code --set seed=$S \
  --out $D --no-progress $R >> /work/exp/conv/tt-cc-$S.log 2>&1
echo TT-CC-$S-DONE $(date) >> /work/exp/conv/tt-cc-$S.log
