#!/bin/bash
# issue 25: the authors' code (MKC-Lab/CRANE cdd6da3, peers.patch + the PEER_RESUME patch) to its
# own early stop (stopping_step 20, epochs 1000), seed 999, T threads (default 1; epochs 0-1 ran on one, the rest on two); resumable: rerun this script.
export OMP_NUM_THREADS=${T:-1} MKL_NUM_THREADS=${T:-1} PEER_RESUME=/work/exp/peers/authors-seed999.pt
cd /work/exp/peers/CRANE/src
nice -n 5 python3 main.py -m crane -d baby >> /work/exp/peers/authors-seed999.out 2>&1
echo "AUTHORS END rc=$? $(date)" >> /work/exp/peers/authors-seed999.out
