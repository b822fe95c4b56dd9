#!/bin/bash
# Every arm of the EasyOcc ablation (benchmarks/ablation_easyocc.py), two at a time, one torch
# thread each, on the ablation world (occkit synth --scenes 10 --frames 8 --seed 0 --image-size 96 256)
# and its oracle:typical prior cache. Usage: bash benchmarks/run_easyocc_ablation.sh [STEPS]
#   STEPS: training steps of every training arm (default 600).
# Outputs: runs/easyocc_abl/<arm>[_s<seed>]/result.json (+ log.txt with the commands' output).
# Arms whose result.json exists are skipped. With a world prior (runs/world_prior_s7) its cache is made with
#   occkit priors run --data runs/abl_world --prior world:runs/world_prior_s7 --kinds semantics,depth --out runs/abl_world_priors_world_s7_semdepth
# and the label arms run again on it (outputs under runs/easyocc_abl_world).
set -u
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
STEPS=${1:-600}
PY=.venv/bin/python
A="$PY benchmarks/ablation_easyocc.py"
while [ ! -f runs/abl_world_priors_typical/prior.json ] || ! grep -q '"complete": true' runs/abl_world_priors_typical/prior.json; do sleep 30; done
# 1. the labels the training arms need, then the rest of the label-quality arms (two at a time)
$A --arm labels-K13-filter &
$A --arm labels-K0-filter &
wait
# 2. training arms, equal steps, seeds 0 and 1, two at a time
for seed in 0 1; do
  $A --arm easyocc-dense --seed $seed --steps $STEPS &
  $A --arm easyocc-single --seed $seed --steps $STEPS &
  wait
  $A --arm rendersup-priors --seed $seed --steps $STEPS &
  $A --arm rendersup-pseudo --seed $seed --steps $STEPS &
  wait
  $A --arm supervised-real --seed $seed --steps $STEPS &
  $A --arm easyocc-real --seed $seed --steps $STEPS &
  wait
done
for pair in "labels-K3-filter labels-K7-filter" "labels-K0-keep labels-K3-keep" "labels-K7-keep labels-K13-keep" "labels-K13F13-filter"; do
  for arm in $pair; do $A --arm $arm & done
  wait
done
# the world prior (occkit's own 2D net): its cache of the ablation world, then the same label arms
if [ -f runs/world_prior_s7/model.safetensors ]; then
  [ -f runs/abl_world_priors_world_s7_semdepth/prior.json ] || .venv/bin/occkit priors run --data runs/abl_world \
      --prior world:runs/world_prior_s7 --kinds semantics,depth --out runs/abl_world_priors_world_s7_semdepth --no-progress
  for pair in "labels-K0-filter labels-K13-filter" "labels-K3-filter labels-K13-keep"; do
    for arm in $pair; do $A --arm $arm --priors runs/abl_world_priors_world_s7_semdepth --labels-root runs/easyocc_abl_world & done
    wait
  done
fi
# 3. step time and peak memory, easyocc against render_sup, side by side
$PY benchmarks/bench_easyocc.py --data runs/easyocc_abl/labels-K13-filter/dataset --priors runs/abl_world_priors_typical --steps 5 \
  --json runs/easyocc_abl/bench_easyocc.json
