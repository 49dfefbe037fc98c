#!/usr/bin/env bash
# Regenerates the README's pictures of the paper's three applications (Ma et al., IEEE TIP 2018,
# Sec. IV-C, Figs. 10-12) with HiFST and DBM on CUHK photos:
#   bash reports/applications/make.sh [CUHK_DIR]      (default: ../shared/data/cuhk)
# writes reports/applications/segmentation.png, degree.png and magnification.png (replacing them).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:-../shared/data/cuhk}
python -m evaluation.applications figures \
    --photo "$DATA/image/out_of_focus0607.jpg" --gt "$DATA/gt/out_of_focus0607.png" \
    --degree-photos "$DATA/image" \
    --methods hifst,dbm --device cpu --out reports/applications --overwrite
