#!/usr/bin/env bash
# RadOcc's ablation on runs/abl_world: every arm of benchmarks/ablate_radocc.py at STEPS steps,
# seeds 0 and 1, in two lanes of one process each (1 torch thread), resumable (an arm whose
# result.json exists is skipped). Lane 1 trains the LiDAR teacher first (lidar-teacher, TEACHER_STEPS = 1000 steps: at 250 its val mIoU, 10.95, was barely above the 300-step student's 8.57)
# and evaluates it; the distillation arms wait for the teacher's final checkpoint.
#   nohup benchmarks/run_radocc_ablation.sh 1 > runs/radocc_abl_lane1.log 2>&1 &
#   nohup benchmarks/run_radocc_ablation.sh 2 > runs/radocc_abl_lane2.log 2>&1 &
#   .venv/bin/python benchmarks/ablate_radocc.py --summary runs/radocc_abl
set -u
LANE=${1:?lane 1 or 2}
STEPS=${STEPS:-300}
DATA=${DATA:-runs/abl_world}
TEACHER=${TEACHER:-runs/radocc_teacher_lidar_1000}
TEACHER_STEPS=${TEACHER_STEPS:-1000}
OUT=${OUT:-runs/radocc_abl}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1

arm() {  # arm seed
  if [ -f "$OUT/$1_s$2/result.json" ]; then echo "skip $1 s$2"; return; fi
  rm -rf "$OUT/$1_s$2"  # an interrupted arm starts again
  echo "$(date -u +%H:%M:%S) start $1 s$2"
  $PY benchmarks/ablate_radocc.py --arm "$1" --seed "$2" --steps "$STEPS" --data "$DATA" --teacher "$TEACHER" \
      --priors runs/abl_world_priors_typical --priors-sp runs/abl_world_priors_sp --out "$OUT"
  echo "$(date -u +%H:%M:%S) done $1 s$2"
}

wait_teacher() {
  until [ -f "$TEACHER/checkpoints/step_$(printf %06d "$TEACHER_STEPS")/checksums.json" ]; do sleep 60; done
}

if [ "$LANE" = 1 ]; then
  if [ ! -f "$TEACHER/checkpoints/step_$(printf %06d "$TEACHER_STEPS")/checksums.json" ] && ! pgrep -f "occkit train lidar-teacher" > /dev/null; then
    .venv/bin/occkit train lidar-teacher --data "$DATA" --out "$TEACHER" --max-steps "$TEACHER_STEPS" --no-progress \
        --set train.threads=1 train.seed=0 train.val_every="$TEACHER_STEPS" train.ckpt_every="$TEACHER_STEPS"
  fi
  wait_teacher
  [ -f "$OUT/teacher/result.json" ] || $PY benchmarks/ablate_radocc.py --arm teacher --data "$DATA" --teacher "$TEACHER" --out "$OUT"
  for a in rdc_rsc rdc rsc feat3d logit3d rsc_sp rsc_kl; do arm $a 0; done
else
  arm student 0
  arm student 1
  wait_teacher
  for a in rdc_rsc rdc rsc feat3d logit3d rsc_sp rsc_kl; do arm $a 1; done
fi
