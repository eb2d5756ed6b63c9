#!/bin/bash
# Baby rows at the selected point (issue 22, sixteenth session): each finished row's compare
# report (`crane compare --report-only` keeps the five seeds queue-g.sh / queue-g2.sh trained,
# same resolved config), then one table of the rows against the selected point, paired by seed.
# Usage: report-rows.sh ROW[:LABEL] ...   (rows whose five seeds are done)
export RAYON_NUM_THREADS=1
O=/work/exp/baby-sel; B=/work/exp/bin/crane-516d59f
source $O/rows.sh
cols=("$O/selected:selected point")
for spec in "$@"; do
  row=${spec%%:*}; label=${spec#*:}; [ "$label" = "$spec" ] && label=$row
  $B compare --data-dir /work/exp/baby-real-graph --dataset baby --models crane --seeds 5 $(cat $O/crane-sets.txt) ${A[$row]//--set /--set crane:} --out $O/$row --report-only --no-progress > /dev/null || exit 1
  cols+=("$O/$row:$label")
done
python3 /work/main/scripts/variants-table.py "${cols[@]}"
