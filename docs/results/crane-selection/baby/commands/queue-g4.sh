#!/bin/bash
# The rest of queue-g3.sh (nineteenth session), on a fresh machine whose /work/exp had gone: the
# binary rebuilt from 516d59f, the data regenerated (both .npy files with the manifests' sha256;
# features.json, whose only difference is the path it names, copied from
# docs/results/baby-real-graph), and the three L_II = 2 seeds the lost folders held trained again
# from the start (a check that a rerun reproduces them). Same worker (queue-worker.sh), same
# folders, same done markers. /work/exp does not outlive a machine: a seed finished in a sitting
# whose row is not complete is committed as baby/<row>/crane/seed-S (no checkpoints); copy those
# folders back under /work/exp/baby-sel/<row>/crane/ and the worker skips them (results.json).
source "$(dirname "$0")/queue-worker.sh"
for r in sweep-lii-2 sweep-lui-3 sweep-r-2 switch-refresh-every-30-steps; do add_row $r; done
run_jobs "$1"
