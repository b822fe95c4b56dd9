#!/usr/bin/env bash
# The GPU check on the lent machine (docs/gpu.md), from the repository's root, with OUT set:
#   bash benchmarks/gpu_run.sh [gpu_check.py options]
# Unpacks the carried wheels the machine lacks (.gpucarry/, made by benchmarks/gpu_carry.py), runs the
# check (its JSON written after every figure), and keeps its whole log beside the JSON. A hard stop
# (GPU_CHECK_LIMIT_S, default 420 s) sends SIGTERM: the check then kills the part running and writes the JSON.
set -u
OUT=${OUT:-out}
mkdir -p "$OUT"
SITE=${OCCKIT_SITE:-/tmp/occkit_site}
{
  echo "gpu_run: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -2
  python3 benchmarks/gpu_carry.py --unpack .gpucarry --into "$SITE"
  COMMIT=$(cat .gpucarry/COMMIT 2>/dev/null || true)
  PYTHONPATH="src:$SITE${PYTHONPATH:+:$PYTHONPATH}" timeout -s TERM -k 20 "${GPU_CHECK_LIMIT_S:-420}" \
    python3 -u benchmarks/gpu_check.py --device "${GPU_CHECK_DEVICE:-cuda}" --out "$OUT/gpu_check.json" ${COMMIT:+--commit "$COMMIT"} "$@"
  echo "gpu_run: exit code $?"
} 2>&1 | tee "$OUT/gpu_check.log"
