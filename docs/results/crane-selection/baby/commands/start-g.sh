#!/bin/bash
# Starts queue-g's two workers once the halving search has finished, with its selected point.
O=/work/exp/baby-sel
until grep -q HALVING-DONE $O/halving-A.log || grep -q HALVING-DONE $O/halving-B.log; do sleep 30; done
python3 $O/select.py $O/halving-crane/halving.csv > $O/crane-sets-train.txt
python3 $O/select.py $O/halving-crane/halving.csv crane > $O/crane-sets.txt
setsid nohup $O/queue-g.sh W1 >> $O/queue-g-W1.log 2>&1 &
until grep -q HALVING-DONE $O/halving-A.log && grep -q HALVING-DONE $O/halving-B.log; do sleep 30; done
setsid nohup $O/queue-g.sh W2 >> $O/queue-g-W2.log 2>&1 &
