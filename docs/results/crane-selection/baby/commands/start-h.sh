#!/bin/bash
# waits for the selected-12784 resume to end, then one queue-g worker (one core)
while pgrep -f "seed-12784 --no-progress" > /dev/null; do sleep 20; done
bash /work/exp/baby-sel/queue-g.sh W3 >> /work/exp/baby-sel/queue-g-W3.log 2>&1
