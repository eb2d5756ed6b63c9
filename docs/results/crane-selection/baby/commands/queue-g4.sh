#!/bin/bash
# The rest of queue-g3.sh (nineteenth session), on a fresh machine whose /work/exp had gone: the
# binary rebuilt from 516d59f, the data regenerated bit for bit (same sha256 as the manifests),
# and the three L_II = 2 seeds the lost folders held trained again from the start (a check that
# a rerun reproduces them). Same worker (queue-worker.sh), same folders, same done markers.
source "$(dirname "$0")/queue-worker.sh"
for r in sweep-lii-2 sweep-lui-3 sweep-r-2 switch-refresh-every-30-steps; do add_row $r; done
run_jobs "$1"
