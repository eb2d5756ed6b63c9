#!/bin/bash
# Issue 22, TikTok: Adam's treatment of tensors without gradient (`adam_idle`) at section 2's
# selected point (patience 5, five seeds): `step` (crane's default, every run before) against
# `skip` (PyTorch >= 2's zero_grad(): RCA's tensors step only on the epoch's refresh batch), both
# with the binary that has the switch, so the pair differs in that one value.
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
B=/work/exp/bin/crane-408eb7b; D=/work/shared/data/tiktok; O=/work/exp/tiktok-adam
S="--set crane:lr=1e-3 --set crane:model.lambda=1e-3 --set crane:model.tau=1.0 --set crane:model.beta=0.5"
mkdir -p $O
for idle in step skip; do
  nice -n 15 $B compare --data-dir $D --dataset tiktok --models crane --seeds 5 $S --set crane:adam_idle=$idle --out $O/adam-idle-$idle --no-progress > $O/adam-idle-$idle.log 2>&1
  echo "ADAM-IDLE $idle END rc=$? $(date)"
done
