#!/usr/bin/env bash
# The paper's three applications (Sec. IV-C, Figs. 10-12) with HiFST and DBM, for the README:
#   bash reports/applications/make.sh [CUHK_DIR]
# writes reports/applications/segmentation.png, degree.png and magnification.png (replacing them).
# Only photos of D_e (even index) are used: the shipped DBM was trained on D_o.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:-../shared/data/cuhk}
shopt -s nullglob nocaseglob
even=()
for p in "$DATA"/image/*.jpg; do
    n=$(basename "${p%.*}" | grep -o '[0-9]*$')
    (( 10#$n % 2 == 0 )) && even+=("$p")
done
python -m evaluation.applications figures \
    --photo "$DATA/image/out_of_focus0080.JPG" --gt "$DATA/gt/out_of_focus0080.png" \
    --degree-photos "${even[@]}" \
    --methods hifst,dbm --device cpu --out reports/applications --overwrite
