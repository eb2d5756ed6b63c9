# The Baby study's worker (issue 22), sourced by queue-g.sh, queue-g2.sh and queue-g3.sh, which
# differ only in the order of their jobs. Each worker (`queue-gN.sh W1`, `W2`, ...) claims the
# next unclaimed (row, seed) job (an atomic mkdir under queue-g/claims) and trains it with `crane
# train` into $O/<row>/crane/seed-S, the folder `crane compare --out $O/<row>` keeps as its own
# (same resolved config); report-rows.sh writes each row's compare report. The rows' settings
# are in rows.sh. Resumable: after a kill, `rm -rf queue-g/claims` and restart (train --resume
# continues an interrupted seed; a finished job has its queue-g/done marker, or its results.json,
# which train writes only at a run's end, for seeds brought back from the repository).
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
B=/work/exp/bin/crane-516d59f; D=/work/exp/baby-real-graph; O=/work/exp/baby-sel; Q=$O/queue-g
S="$(cat $O/crane-sets-train.txt)"
mkdir -p $Q/claims $Q/done
source $O/rows.sh
seeds="9 672 5368 12784 2023"
jobs=()
# add_row ROW [SEEDS]: queue ROW for SEEDS (default: all five).
add_row() { for s in ${2:-$seeds}; do jobs+=("$1|$s"); done; }
# run_jobs WORKER: train every queued job not done and not claimed by another worker.
run_jobs() {
  for j in "${jobs[@]}"; do
    local name=${j%%|*} seed=${j#*|}
    local args=${A[$name]} job=$name-$seed out=$O/$name/crane/seed-$seed
    [ -e $Q/done/$job ] || [ -e $out/results.json ] && continue
    mkdir $Q/claims/$job 2>/dev/null || continue
    echo "$1 START $job $(date)"
    local resume=""; [ -e $out/manifest.json ] && resume="--resume"
    nice -n 5 $B train --data-dir $D --dataset baby --set model_preset=crane $S $args --set seed=$seed --out $out --no-progress $resume > $O/logs/$job.log 2>&1 && touch $Q/done/$job
    echo "$1 END $job rc=$? $(date)"
  done
  echo "$1 QUEUE-G-DONE $(date)"
}
