#!/usr/bin/env bash
# CIGOcc's training cost per arm of its ablation (configs/ablations/cigocc.yaml), side by side in
# one job: every arm's step time (benchmarks/bench_train_step.py, 1 torch thread, STEPS timed steps
# after 2; the arms' starting weights, model.backbone_weights, do not change a step's cost and are
# left out), the arms interleaved over ROUNDS rounds so that a change in the machine's load hits
# every arm alike. Each arm's overrides are read from the spec (its prior cache, ${priors}, is PRIORS).
#   bash benchmarks/bench_cigocc_step.sh > runs/cigocc_step.log
set -eu
STEPS=${STEPS:-8}
ROUNDS=${ROUNDS:-2}
DATA=${DATA:-runs/abl_kitti}
PRIORS=${PRIORS:-runs/abl_kitti_priors_typical}
SPEC=${SPEC:-configs/ablations/cigocc.yaml}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1
for r in $(seq "$ROUNDS"); do
  for arm in baseline depth seg full full_sam full_sam_masks concat; do
    sets=$($PY -c "import sys, yaml; a = yaml.safe_load(open(sys.argv[1]))['arms'][sys.argv[2]]; print(' '.join(s.replace('\${priors}', sys.argv[3]) for s in a.get('set') or [] if not s.startswith('model.backbone_weights=')))" "$SPEC" "$arm" "$PRIORS")
    echo "== round $r arm $arm"
    $PY benchmarks/bench_train_step.py --preset cigocc --data "$DATA" --threads 1 --steps "$STEPS" --warmup 2 --set $sets | tail -1
  done
done
