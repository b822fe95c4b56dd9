#!/usr/bin/env bash
# The downstream label study on the lent machine (docs/gpu.md, "The downstream study on the lent machine"), from
# the repository's root, with OUT set:
#   OUT=out bash benchmarks/gpu_downstream.sh
# Unpacks the carried wheels (.gpucarry/, made by benchmarks/gpu_carry.py; skipped when the folder is absent),
# writes the synthetic world (occkit synth) and its labels (occkit label), each timed, then runs
# benchmarks/label_downstream.py (both arms, the same losses, the seeds in parallel on the one device, the
# checkpoints at DS_EVAL_STEPS scored, the trainings stopped at the deadline and every run scored at the last
# step all reached). Everything small it writes is copied into OUT (JSON, settings, the logs' last lines).
# A hard stop (DS_LIMIT_S seconds from the start, default 520) ends every part; what was written stays.
# Environment (default): DS_DEVICE (cuda; cpu for a smoke test), DS_SCENES (10), DS_FRAMES (8),
#   DS_IMAGE ("192 512"), DS_SWEEPS (10), DS_WORKERS (10: synth and label processes), DS_SEEDS (0,1,2),
#   DS_PARALLEL (6: trainings at once), DS_LOADERS (2: data.workers of each training), DS_STEPS (3000),
#   DS_EVAL_STEPS (300,1000,2000,3000), DS_CKPT_EVERY (100), DS_DEADLINE_S (the study's deadline, seconds from
#   its start; default: what is left of DS_LIMIT_S then, less DS_SCORE_S, default 150, for the scoring),
#   DS_SCHEDULE (steps: the cosine over DS_STEPS; time: over the time left to the deadline less DS_STARTUP_S, 60,
#   optim.schedule=time with train.max_minutes, each run then ending where its rate has decayed),
#   DS_ROOT (/tmp/ds: the world, labels and runs), PYTHON (python3), OCCKIT_SITE (/tmp/occkit_site).
set -u
OUT=${OUT:-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
SITE=${OCCKIT_SITE:-/tmp/occkit_site}
ROOT=${DS_ROOT:-/tmp/ds}
LIMIT=${DS_LIMIT_S:-520}
START=$(date +%s)
left() { echo $((LIMIT - ($(date +%s) - START))); }
timed() {  # timed NAME CMD...: runs CMD under what is left of the hard stop; its seconds into times.txt
  local name=$1 t0 rc
  shift
  if [ "$(left)" -le 5 ]; then
    echo "gpu_downstream: $name not started: the hard stop (${LIMIT} s) is reached"
    echo "$name skipped" >>"$OUT/times.txt"
    return 124
  fi
  t0=$(date +%s.%N)
  timeout -s TERM -k 15 "$(left)" "$@"
  rc=$?
  echo "$name $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}") s exit $rc" | tee -a "$OUT/times.txt"
  return $rc
}
: >"$OUT/times.txt"
{
  echo "gpu_downstream: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname), device ${DS_DEVICE:-cuda}"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -2
    # the GPU's load every 10 s: whether the six runs wait for it or for their loaders
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 10 >"$OUT/gpu_util.csv" 2>&1 &
    SMI=$!
  fi
  echo "$(nproc --all) CPU cores"
  if [ -d .gpucarry ]; then
    timed unpack "$PY" benchmarks/gpu_carry.py --unpack .gpucarry --into "$SITE"
  else
    echo "gpu_downstream: no .gpucarry here: occkit's dependencies from this Python"
  fi
  COMMIT=$(cat .gpucarry/COMMIT 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo unknown)
  echo "commit $COMMIT"
  export PYTHONPATH="src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
  rm -rf "$ROOT/W" "$ROOT/L" "$ROOT/runs"  # a fresh world: runs trained on an earlier one are not resumed
  mkdir -p "$ROOT"
  # shellcheck disable=SC2086  # DS_IMAGE is two numbers
  timed synth "$PY" -m occkit synth --out "$ROOT/W" --scenes "${DS_SCENES:-10}" --frames "${DS_FRAMES:-8}" \
    --seed 11 --image-size ${DS_IMAGE:-192 512} --sweeps "${DS_SWEEPS:-10}" --workers "${DS_WORKERS:-10}" \
    >"$OUT/synth.log" 2>&1 &&
    timed label "$PY" -m occkit label --data "$ROOT/W" --out "$ROOT/L" --workers "${DS_WORKERS:-10}" \
      >"$OUT/label.log" 2>&1 &&
    {
      DEADLINE=${DS_DEADLINE_S:-$(($(left) - ${DS_SCORE_S:-150}))}
      SCHED=()
      if [ "${DS_SCHEDULE:-steps}" = time ]; then  # the cosine over the time left, not over DS_STEPS
        SCHED=("optim.schedule=time" "train.max_minutes=$(awk "BEGIN{printf \"%.2f\", ($DEADLINE - ${DS_STARTUP_S:-60}) / 60}")")
      fi
      echo "study: deadline ${DEADLINE} s, hard stop in $(left) s ${SCHED[*]+${SCHED[*]}}"
      timed study "$PY" -u benchmarks/label_downstream.py --world "$ROOT/W" --labels "$ROOT/L" \
        --out "$ROOT/runs" --same-losses --seeds "${DS_SEEDS:-0,1,2}" --parallel "${DS_PARALLEL:-6}" \
        --steps "${DS_STEPS:-3000}" --eval-steps "${DS_EVAL_STEPS:-300,1000,2000,3000}" \
        --ckpt-every "${DS_CKPT_EVERY:-100}" --deadline-s "$DEADLINE" \
        --set "train.device=${DS_DEVICE:-cuda}" "data.workers=${DS_LOADERS:-2}" "train.tensorboard=false" \
        ${SCHED[@]+"${SCHED[@]}"}
    }
  echo "gpu_downstream: exit code $? after $(($(date +%s) - START)) s"
  [ -n "${SMI:-}" ] && kill "$SMI"
} 2>&1 | tee "$OUT/downstream.log"
# What the study wrote that is small: its JSON, each run's settings and scores, the logs' last lines.
if [ -d "$ROOT/runs" ]; then
  cp "$ROOT"/runs/*.json "$OUT"/ 2>/dev/null
  for run in "$ROOT"/runs/*-s*/; do
    name=$(basename "$run")
    mkdir -p "$OUT/$name"
    cp "$run"/*.json "$OUT/$name"/ 2>/dev/null
    for f in train.log predict.log eval.log; do
      [ -f "$run/$f" ] && tail -n 40 "$run/$f" >"$OUT/$name/$f"
    done
    [ -f "$run/train/train.jsonl" ] && tail -n 30 "$run/train/train.jsonl" >"$OUT/$name/train.jsonl.tail"
    ls "$run/train/checkpoints" >"$OUT/$name/checkpoints.txt" 2>/dev/null
    du -sh "$run/train/checkpoints" >>"$OUT/$name/checkpoints.txt" 2>/dev/null
  done
fi
du -sh "$ROOT/W" "$ROOT/L" >>"$OUT/times.txt" 2>/dev/null
exit 0
