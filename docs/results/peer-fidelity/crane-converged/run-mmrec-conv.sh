#!/bin/bash
# MMRec's FREEDOM to convergence (its own early stopping, patience 20), seeds 9 and 672, one thread.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
cd /work/exp/peers/MMRec-conv/src && /usr/bin/time -v python3 main.py -m FREEDOM -d baby > /work/exp/conv/mmrec-conv.log 2>&1
echo MMREC-CONV-DONE $(date) >> /work/exp/conv/mmrec-conv.log
