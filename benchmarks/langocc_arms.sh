#!/bin/bash
# Every arm of the LangOcc ablation (benchmarks/bench_langocc.py), on the ablation world
# (occkit synth --scenes 10 --frames 8 --seed 0 --image-size 96 256 -> runs/abl_world).
# Equal budget: STEPS training steps per arm (default 1000), seeds 0 and 1, one torch thread each.
# Run from the repository root; arms are independent (run two at a time on 2 cores: JOBS=2).
set -euo pipefail
export OMP_NUM_THREADS=1
PY=.venv/bin/python
DATA=runs/abl_world
STEPS=${STEPS:-1000}
OUT=${OUT:-runs/bench_langocc}
JOBS=${JOBS:-1}
DEVICE=${DEVICE:-cpu}                           # where each arm is scored (training picks CUDA when it has one); on a GPU: DEVICE=auto JOBS=4
TYPICAL=runs/abl_world_priors_typical          # occkit priors run --data runs/abl_world --prior oracle:typical --out runs/abl_world_priors_typical
WORLD=runs/abl_world_priors_world_s7           # made below from the world prior run, if it exists

if [ -d runs/world_prior_s7 ] && [ ! -f $WORLD/prior.json ]; then
  .venv/bin/occkit priors run --data $DATA --prior world:runs/world_prior_s7 --kinds features --out $WORLD --no-progress
fi

arms=()
# the lifted-2D baseline first: no training, retrieval only
arms+=("--arm lifted --priors $TYPICAL --out $OUT/lifted_typical")
[ -f $WORLD/prior.json ] && arms+=("--arm lifted --priors $WORLD --out $OUT/lifted_world")
for s in 0 1; do
  arms+=("--arm langocc --priors $TYPICAL --seed $s --out $OUT/langocc_typical_s$s")
  arms+=("--arm render_sup --seed $s --out $OUT/render_sup_s$s")
  [ -f $WORLD/prior.json ] && arms+=("--arm langocc --priors $WORLD --seed $s --out $OUT/langocc_world_s$s")
done
# the temporal-ray ablation: the preset's rays from the previous and next keyframes vs the current frame only
for s in 0 1; do
  arms+=("--arm langocc --priors $TYPICAL --seed $s --out $OUT/langocc_typical_notemporal_s$s --set langocc.temporal_offsets=[]")
done
# options (one seed): rays from LiDAR-projected pixels as the paper; threshold calibrated from 2D prior depth
arms+=("--arm langocc --priors $TYPICAL --seed 0 --out $OUT/langocc_typical_lidar_s0 --set data.load_extras=true langocc.ray_pixels=lidar")
arms+=("--arm langocc --priors $TYPICAL --seed 0 --out $OUT/langocc_typical_auto_s0 --set data.prior_kinds=[features,depth] langocc.occupied_threshold=auto")

for a in "${arms[@]}"; do
  name=$(echo "$a" | sed -E 's/.*--out ([^ ]+).*/\1/')
  [ -f "$name/result.json" ] && { echo "done: $name"; continue; }
  mkdir -p "$name"
  echo "$PY benchmarks/bench_langocc.py --data $DATA --steps $STEPS --device $DEVICE $a"
  $PY benchmarks/bench_langocc.py --data $DATA --steps $STEPS --device $DEVICE $a > "$name.log" 2>&1 &
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 10; done
done
wait
