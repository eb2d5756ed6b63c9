#!/bin/bash
# Idle-core timing, crane against the real peers on the same data folder, two threads each.
# Everything else is paused (SIGSTOP) meanwhile and resumed (SIGCONT) after.
D=/work/exp/peers/data/baby; B=/work/exp/bin/crane-final; O=/work/exp/peers/speed-s4
mkdir -p $O
PIDS=$(pgrep -f "python3 main.py|crane-a00f029 train|queue2.sh" | tr '\n' ' ')
echo "pausing: $PIDS"; kill -STOP $PIDS 2>/dev/null; sleep 3
date; uptime
lscpu | grep -E "Model name|^CPU\(s\)|Flags" | cut -c1-200
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
for p in freedom crane-code; do
  /usr/bin/time -v $B bench --data-dir $D --dataset baby --set model_preset=$p --out $O/crane-$p --no-progress > $O/crane-$p.log 2>&1
  grep -E "epoch|Maximum resident|stage|seconds" $O/crane-$p.log | head -20
done
(cd /work/exp/peers/MMRec-speed/src && /usr/bin/time -v python3 main.py -m FREEDOM -d baby > $O/mmrec-freedom.log 2>&1)
grep -E "epoch . (training|evaluating)|Maximum resident" $O/mmrec-freedom.log
(cd /work/exp/peers/CRANE/src && /usr/bin/time -v python3 peer_batches.py --model crane --batches 3 --threads 2 > $O/authors-crane.log 2>&1)
grep -E "per batch|Maximum resident" $O/authors-crane.log
(cd /work/exp/peers/MMRec/src && python3 peer_batches.py --model FREEDOM --batches 5 --threads 2 > $O/mmrec-freedom-batches.log 2>&1)
grep -E "per batch" $O/mmrec-freedom-batches.log
date
kill -CONT $PIDS 2>/dev/null
echo SPEED-DONE
