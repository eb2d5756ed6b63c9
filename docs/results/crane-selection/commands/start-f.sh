#!/bin/bash
# Starts queue-f's workers as the TikTok crane-code seeds free the cores.
L=/work/exp/conv
until cat $L/tiktok-cc-A.log $L/tiktok-cc-B.log | grep -qE "crane-code seed (672|12784): test"; do sleep 30; done
setsid nohup /work/exp/tiktok/queue-f.sh W1 >> /work/exp/tiktok/queue-f-W1.log 2>&1 &
until grep -q TT-CC-DONE $L/tiktok-cc-A.log && grep -q TT-CC-DONE $L/tiktok-cc-B.log; do sleep 30; done
setsid nohup /work/exp/tiktok/queue-f.sh W2 >> /work/exp/tiktok/queue-f-W2.log 2>&1 &
