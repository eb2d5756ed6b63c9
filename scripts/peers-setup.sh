#!/usr/bin/env bash
# Lays out the two peers crane is checked against (docs/results/peer-fidelity/), ready to run on
# a CPU: MMRec's FREEDOM (enoche/MMRec) and the authors' released CRANE code (MKC-Lab/CRANE).
#
# Usage: scripts/peers-setup.sh MMREC_GIT_DIR CRANE_GIT_DIR DATA_DIR OUT_DIR
#   MMREC_GIT_DIR, CRANE_GIT_DIR: git directories (a clone's .git or a bare mirror) of the two
#     repositories; HEAD is used (the report names the commits).
#   DATA_DIR: a folder in MMRec's layout (baby.inter, image_feat.npy, text_feat.npy), the same
#     folder crane is given; linked as OUT_DIR/{MMRec,CRANE}/data/baby.
# Then: cd OUT_DIR/MMRec/src && python3 main.py -m FREEDOM -d baby
#       cd OUT_DIR/CRANE/src && python3 main.py -m crane -d baby
#   (the authors' class is `crane` and its config `CRANE.yaml`: one name loads on a
#   case-insensitive file system only, so the patch adds `crane.yaml`, a copy.)
#   A run made resumable across sittings: PEER_RESUME=FILE (the patch's addition to the authors'
#   trainer: the whole state after each epoch's evaluation, model, optimiser, scheduler, early
#   stopping, random states and the shuffled training order; rerun the same command to go on).
# Timing a few batches of either (benches/pytorch/peer_batches.py, copied into each src/):
#       python3 peer_batches.py --model FREEDOM|crane --batches 3 --threads 2
# Python packages: torch, numpy, scipy, pandas, pyyaml, torchvision, lmdb, matplotlib (pip).
# The changes made to the peers are the patch beside the report (peers.patch): two library
# renames for current scipy and numpy, the authors' config under its class's name, and each
# model's grid reduced to the point crane's preset uses. Both peers cache their frozen kNN graph (mm_adj_*.pt) in DATA_DIR.
set -euo pipefail
[ $# -eq 4 ] || { sed -n 2,22p "$0"; exit 2; }
mmrec_git=$1 crane_git=$2 data=$(cd "$3" && pwd) out=$4
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out/MMRec"
git --git-dir="$mmrec_git" archive HEAD src | tar -x -C "$out/MMRec"
git --git-dir="$crane_git" archive HEAD CRANE/src | tar -x -C "$out"
(cd "$out" && patch -p0 < "$here/docs/results/peer-fidelity/peers.patch")
for p in MMRec CRANE; do
  cp "$here/benches/pytorch/peer_batches.py" "$out/$p/src/"
  mkdir -p "$out/$p/data"
  ln -sfn "$data" "$out/$p/data/baby"
done
echo "MMRec $(git --git-dir="$mmrec_git" rev-parse HEAD), CRANE $(git --git-dir="$crane_git" rev-parse HEAD) laid out in $out"
