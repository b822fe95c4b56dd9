#!/usr/bin/env bash
# Every arm of CIGOcc's ablation (benchmarks/ablation_cigocc.py), 2 seeds, at most two processes at a
# time (1 thread each), on the synthetic world in the SemanticKITTI layout. Make the data once:
#   OMP_NUM_THREADS=1 .venv/bin/occkit synth --format semantickitti --out runs/abl_kitti --scenes 10 --frames 8 --seed 0 --image-size 96 320 --workers 1
#   OMP_NUM_THREADS=1 .venv/bin/occkit priors run --data runs/abl_kitti --prior oracle:typical --out runs/abl_kitti_priors_typical
# Then: bash benchmarks/run_cigocc_ablation.sh [STEPS] ; the table: .venv/bin/python benchmarks/ablation_cigocc.py --summary runs/cigocc_abl
set -u
STEPS=${1:-300}
OUT=${OUT:-runs/cigocc_abl}
mkdir -p "$OUT"
run() {  # arm seed
  if [ -f "$OUT/$1_s$2/result.json" ]; then echo "skip $1 s$2 (done)"; return; fi
  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ablation_cigocc.py --arm "$1" --seed "$2" --steps "$STEPS" --out "$OUT" > "$OUT/$1_s$2.log" 2>&1
}
lane() {  # seed: every arm in turn
  for arm in baseline full_sam full depth seg concat; do run "$arm" "$1"; done
}
lane 0 & lane 1 & wait
.venv/bin/python benchmarks/ablation_cigocc.py --summary "$OUT"
