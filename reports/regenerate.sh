#!/usr/bin/env bash
# Regenerate the reports in this folder.
#
#   bash reports/regenerate.sh [CUHK_DIR] [HELDOUT_DIR]
#
# CUHK_DIR: the CUHK benchmark (image/, gt/); default ../shared/data/cuhk (12 photos + all masks +
#   the HiFST authors' published maps). With all 1000 photos present, the paper's full protocol
#   (Table III: test on D_e, learned methods trained on D_o; Table V: the reverse) is run too.
# HELDOUT_DIR: optional, the held-out part of DBM's synthetic corpus (python -m dbm.corpus build ...).
#
# Caches go to ${BLUR_CACHE:-$HOME/.cache/deep-blur-mapping/reports}, never into reports/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
cuhk=${1:-$repo/../shared/data/cuhk}
heldout=${2:-}
cache=${BLUR_CACHE:-$HOME/.cache/deep-blur-mapping/reports}
run() { python -m evaluation.run --quiet --cache "$cache/$1" "${@:2}" --out "$here/$1"; }

# 1. The paper's HiFST rows from the authors' published maps (masks only): Tables III and V.
if [ -d "$cuhk/published_maps/hifst" ]; then
  for split in even odd; do
    rm -rf "$here/hifst_published_$split"
    run "hifst_published_$split" --data "$cuhk" --split "$split" --methods hifst_published \
        --maps "hifst_published=$cuhk/published_maps/hifst:sharp"
  done
fi

# 2. Every method on the CUHK photos that are present (all 1000 for the full protocol).
n_photos=$(find "$cuhk/image" -maxdepth 1 -type f | wc -l)
maps=()
[ -d "$cuhk/published_maps/hifst" ] && maps=(--maps "hifst_published=$cuhk/published_maps/hifst:sharp")
if [ "$n_photos" -ge 1000 ]; then
  run table3 --data "$cuhk" --split even --methods all "${maps[@]}"
  run table5 --data "$cuhk" --split odd --methods all "${maps[@]}"
else
  # the paper's protocol on the photos present: each half tested with the other half's training
  # (learned methods, and the shipped DBM network that never saw the tested photos)
  rm -rf "$here/cuhk_available_photos"
  for split in even odd; do
    run cuhk_available_photos --data "$cuhk" --split "$split" --allow-missing --methods all "${maps[@]}"
  done
fi

# 3. The built-in synthetic demo benchmark (what `python -m evaluation.run --methods all` shows).
rm -rf "$here/demo"
run demo --methods all

# 4. DBM's held-out synthetic pairs, if given.
if [ -n "$heldout" ]; then
  rm -rf "$here/heldout_synthetic"
  run heldout_synthetic --data "$heldout" --split all --methods all
fi

# 5. Fig. 2 statistics and Table VI timing on the CUHK photos.
python -m evaluation.fig2 --data "$cuhk" --split all --allow-missing --overwrite --out "$here/fig2"
python -m evaluation.speed --data "$cuhk" --images 10 --repeats 3 --cache "$cache/speed" --overwrite --out "$here/table6"
# the measured speeds ship with the package (blur-map --list-methods shows them)
cp "$here/table6/speed.csv" "$repo/evaluation/data/speed_384.csv"
echo "reports regenerated in $here"
