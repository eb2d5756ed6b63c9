#!/bin/bash
# Fourth sitting (session 5): crane at f190059 (blocked sparse products) beside MMRec's FREEDOM on
# TikTok, and crane's FREEDOM on Baby (planted, and the real item graph); two threads, one
# process at a time, everything else paused (SIGSTOP) meanwhile and resumed (SIGCONT) after.
B=/work/exp/bin/crane-f190059; O=/work/exp/peers/speed-s5; P=/work/exp/peers
mkdir -p $O
PIDS=$(pgrep -f "python3 main.py|crane-14fb436 compare" | tr '\n' ' ')
echo "pausing: $PIDS"; kill -STOP $PIDS 2>/dev/null; sleep 3
date; uptime
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
for i in 1 2 3 4 5; do
  /usr/bin/time -v $B bench --data-dir $P/data/tiktok --dataset tiktok --set model_preset=freedom --out $O/crane-freedom --no-progress > $O/crane-tiktok-freedom-$i.log 2>&1
  grep -E "^epoch \(|evaluation|Maximum resident" $O/crane-tiktok-freedom-$i.log | tr '\n' ' '; echo
done
for i in 1 2; do
(cd $P/MMRec-speed/src && /usr/bin/time -v python3 main.py -m FREEDOM -d tiktok > $O/mmrec-tiktok-freedom-$i.log 2>&1)
grep -E "epoch . (training|evaluating)|Maximum resident" $O/mmrec-tiktok-freedom-$i.log
done
for i in 1 2; do
/usr/bin/time -v $B bench --data-dir $P/data/baby --dataset baby --set model_preset=freedom --out $O/crane-baby-freedom --no-progress > $O/crane-baby-freedom-$i.log 2>&1
grep -E "^epoch \(|evaluation|Maximum resident" $O/crane-baby-freedom-$i.log | tr '\n' ' '; echo
done
/usr/bin/time -v $B bench --data-dir $P/data/baby --dataset baby --set model_preset=freedom \
  --set 'model.item_graph_source={ files = { dir = "/work/shared/data/amazon-baby/real-item-graphs", image_weight = 0.1 } }' \
  --out $O/crane-freedom-real-graph --no-progress > $O/crane-baby-real-graph-freedom.log 2>&1
grep -E "^epoch \(|evaluation|Maximum resident" $O/crane-baby-real-graph-freedom.log | tr '\n' ' '; echo
(cd $P/MMRec-speed/src && /usr/bin/time -v python3 main.py -m FREEDOM -d baby > $O/mmrec-baby-freedom.log 2>&1)
grep -E "epoch . (training|evaluating)|Maximum resident" $O/mmrec-baby-freedom.log
date
kill -CONT $PIDS 2>/dev/null
echo SPEED-DONE
