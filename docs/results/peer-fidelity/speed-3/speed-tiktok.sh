#!/bin/bash
# Idle-core timing on TikTok (all real: image + audio, 128-d each) and on Baby with the real item
# graph: crane beside MMRec's FREEDOM and the authors' code, two threads each, one process at a
# time, everything else paused (SIGSTOP) meanwhile and resumed (SIGCONT) after.
B=/work/exp/bin/crane-final; O=/work/exp/peers/speed-s4-tiktok; P=/work/exp/peers
mkdir -p $O
PIDS=$(pgrep -f "python3 main.py|crane-a00f029 train|queue2.sh|cargo test|rustc|/target/release/deps|/target/debug/deps" | tr '\n' ' ')
echo "pausing: $PIDS"; kill -STOP $PIDS 2>/dev/null; sleep 3
date; uptime
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
for p in freedom crane-code; do
  /usr/bin/time -v $B bench --data-dir $P/data/tiktok --dataset tiktok --set model_preset=$p --out $O/crane-$p --no-progress > $O/crane-tiktok-$p.log 2>&1
  grep -E "^epoch \(|evaluation|Maximum resident" $O/crane-tiktok-$p.log
done
/usr/bin/time -v $B bench --data-dir $P/data/baby --dataset baby --set model_preset=freedom \
  --set 'model.item_graph_source={ files = { dir = "/work/shared/data/amazon-baby/real-item-graphs", image_weight = 0.1 } }' \
  --out $O/crane-freedom-real-graph --no-progress > $O/crane-baby-real-graph-freedom.log 2>&1
grep -E "^epoch \(|evaluation|Maximum resident" $O/crane-baby-real-graph-freedom.log
(cd $P/MMRec-speed/src && /usr/bin/time -v python3 main.py -m FREEDOM -d tiktok > $O/mmrec-tiktok-freedom.log 2>&1)
grep -E "epoch . (training|evaluating)|Maximum resident" $O/mmrec-tiktok-freedom.log
(cd $P/CRANE/src && /usr/bin/time -v python3 peer_batches.py --model crane --dataset tiktok --batches 5 --threads 2 > $O/authors-tiktok-crane.log 2>&1)
grep -E "per batch|Maximum resident" $O/authors-tiktok-crane.log
date
kill -CONT $PIDS 2>/dev/null
echo SPEED-DONE
