#!/usr/bin/env bash
# Every arm of the OccScene ablation (benchmarks/bench_occscene.py), in dependency order, two
# seeds. At most two at a time on a shared 2-core machine; each arm resumes nothing but skips a
# training whose run folder already has checkpoints.
#   bash benchmarks/run_occscene_arms.sh [DATA] [OUT]
set -euo pipefail
DATA=${1:-runs/abl_world}
OUT=${2:-runs/occscene_bench}
B="${PYTHON:-.venv/bin/python} benchmarks/bench_occscene.py --data $DATA --out $OUT"
export OMP_NUM_THREADS=1
$B --arm judge --seed 0 & $B --arm perc_real --seed 0; wait
$B --arm gen_mda --seed 0 & $B --arm gen_text --seed 0; wait
$B --arm gen_mda --seed 1 & $B --arm gen_text --seed 1; wait
$B --arm feedback --seed 0 & $B --arm feedback --seed 1; wait
$B --arm perc_realgen --seed 0 & $B --arm perc_realgen --seed 1; wait
$B --arm perc_blankgen --seed 0 & $B --arm perc_blankgen --seed 1; wait
$B --arm perc_real --seed 1; wait
