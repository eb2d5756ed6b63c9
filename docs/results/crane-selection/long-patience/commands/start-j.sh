#!/bin/bash
# after seed 9 (patience 60, epochs 150): continue it to 300 epochs if the cap stopped it, then the queue
while pgrep -f "tiktok-b01/p60/seed-9" > /dev/null; do sleep 20; done
if ! grep -q "early stop" /work/exp/tiktok-b01/p60-seed-9.log; then
  RAYON_NUM_THREADS=1 nice -n 5 /work/exp/bin/crane-516d59f train --data-dir /work/shared/data/tiktok --dataset tiktok --set model_preset=crane --set lr=1e-3 --set model.lambda=1e-3 --set model.tau=0.4 --set model.beta=0.1 --set seed=9 --set patience=60 --set epochs=300 --out /work/exp/tiktok-b01/p60/seed-9 --no-progress --resume >> /work/exp/tiktok-b01/p60-seed-9.log 2>&1
  echo "seed 9 continued rc=$? $(date)"
fi
bash /work/exp/tiktok-b01/queue-b01.sh
