#!/usr/bin/env bash
# The paper's Tables II (Configurations I-V) and IV (DBM's variants) at a CPU budget: every network
# trained on CUHK D_o and tested on D_e through the runner, into reports/ablations.
#
#   bash reports/ablations.sh CUHK_FULL_DIR [RUNS_DIR]
#
# CUHK_FULL_DIR: the 1,000-photo benchmark (image/, gt/). RUNS_DIR: training runs and feature caches
# (default ${BLUR_CACHE:-$HOME/.cache/deep-blur-mapping}/ablations; about 18 GB of features at a time).
# Rerunning continues where it stopped: finished networks are kept, an interrupted one resumes.
#
# The budget (ITERATIONS, default 2000): every VGG16 stage is frozen at HED's weights and only the
# layers DBM adds are trained (the 1x1 score layer; FCN-8s's three, the fusion variants' five and
# their fusion layer), on stage outputs computed once per photo (dbm.train --cache-features), with
# Adam at 1e-3 (the paper: SGD at 2^-10, whose steps on frozen features of norm 60-440 per pixel
# oscillate, chosen on the training loss of 32 D_o photos), bf16 autocast, no HED learning-rate
# multipliers. Training from scratch keeps its random (He) trunk frozen the same way. The paper
# fine-tunes every layer for 10,000 iterations; the shipped dbm trains conv5 too (WEIGHTS.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cuhk=${1:?usage: bash reports/ablations.sh CUHK_FULL_DIR [RUNS_DIR]}
runs=${2:-${BLUR_CACHE:-$HOME/.cache/deep-blur-mapping}/ablations}
iterations=${ITERATIONS:-2000}
mkdir -p "$runs"

# name, cache name (networks with the same frozen stages share one), dbm.train options
train() {
  local name=$1 cache=$2
  shift 2
  if [ ! -f "$runs/$name/final.pt" ]; then
    python -m dbm.train --data "$cuhk" --split odd --size 384 --iterations "$iterations" --optimizer adam \
      --lr 1e-3 --amp bf16 --no-hed-lr-mults --cache-features "$runs/features_$cache.npy" --resume \
      --note "CUHK D_o, Table II/IV budget: frozen VGG16, head only, $iterations iterations" \
      --out "$runs/$name" --quiet "$@"
  fi
}
drop() { rm -f "$runs/features_$1".*; }

train config_i config_i --config I --freeze-stages 1 ; drop config_i
train config_ii config_ii --config II --freeze-stages 2 ; drop config_ii
train config_iii config_iii --config III --freeze-stages 3 ; drop config_iii
train config_iv config_iv --config IV --freeze-stages 4 ; drop config_iv
train config_v config_v --config V --freeze-stages 5 ; drop config_v
train scratch scratch --config V --scratch --freeze-stages 5 ; drop scratch
train fcn8s fcn8s --variant fcn8s --freeze-stages 5 ; drop fcn8s
train fusion fusion --variant fusion --freeze-stages 5
train dsn fusion --variant dsn --freeze-stages 5 ; drop fusion

# Tested on D_e; "dbm" is Configuration V (= DBM in Table IV) trained with the same budget.
python -m evaluation.run --data "$cuhk" --split even --quiet --cache "$runs/maps" --out "$here/ablations" \
  --methods dbm_config_i,dbm_config_ii,dbm_config_iii,dbm_config_iv,dbm,dbm_scratch,dbm_fcn8s,dbm_fusion,dbm_dsn \
  --weights "dbm_config_i=$runs/config_i/final.pt" --weights "dbm_config_ii=$runs/config_ii/final.pt" \
  --weights "dbm_config_iii=$runs/config_iii/final.pt" --weights "dbm_config_iv=$runs/config_iv/final.pt" \
  --weights "dbm=$runs/config_v/final.pt" --weights "dbm_scratch=$runs/scratch/final.pt" \
  --weights "dbm_fcn8s=$runs/fcn8s/final.pt" --weights "dbm_fusion=$runs/fusion/final.pt" \
  --weights "dbm_dsn=$runs/dsn/final.pt"
