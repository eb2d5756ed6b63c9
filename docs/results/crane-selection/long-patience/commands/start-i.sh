#!/bin/bash
while pgrep -f "queue-g.sh W3" > /dev/null; do sleep 20; done
bash /work/exp/tiktok-b01/diag2.sh sel-p60 9 "--set lr=1e-3 --set model.lambda=1e-3 --set model.tau=1.0 --set model.beta=0.5"
bash /work/exp/tiktok-b01/queue-b01.sh
