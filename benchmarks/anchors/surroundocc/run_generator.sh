#!/usr/bin/env bash
# Run SurroundOcc's released occupancy-label generator UNCHANGED on a dataset occkit wrote as nuScenes
# tables (`occkit synth --format nuscenes --out DATAROOT ...`), outside occkit's environment.
#
#   bash benchmarks/anchors/surroundocc/run_generator.sh DATAROOT OUT
#
# The released code: github.com/weiyithu/SurroundOcc at commit 419bf5b47ee07ef0610950cce5ba99168c506753,
# tools/generate_occupancy_nuscenes/{generate_occupancy_nuscenes.py, config.yaml, nuscenes.yaml}. The
# runner copies these three files out of a bare git clone of that repository ($SURROUNDOCC_REPO, default
# /work/.mirror/weiyithu+SurroundOcc/repo) into a scratch folder (OUT/.run/released/), checks their blob
# ids, and runs the script as it is, under the anchor virtualenv ($ANCHOR_VENV, default /work/anchor-venv,
# made by setup_env.sh), with
#   --split all --dataroot <scratch view> --save_path OUT --config_path <released config.yaml>
#   --label_mapping <released nuscenes.yaml> --nusc_val_list <scratch val list> --start S --end S+1
# one scene per process (the script's --end defaults to 850 and indexes nusc.scene past its end).
#
# What the script needs and what stands in for it (standins/, on PYTHONPATH for this run only):
#   mmcv.ops.points_in_boxes.points_in_boxes_cpu  mmcv-full 1.4.0's CPU op (C++ kernel
#       mmcv/ops/csrc/pytorch/cpu/points_in_boxes.cpp): the same inside test in NumPy float32
#       (points_in_boxes_all / _part importable too); `import mmcv` gets a near-empty package
#   mmdet3d.core.bbox.box_np_ops                   imported, never used: an empty module
#   chamfer (SurroundOcc's extensions/chamfer_dist, CUDA)  chamfer.forward(x, y) -> d1, d2, idx1, idx2
#       from scipy's cKDTree nearest neighbours (exact, as the kernel; ties may differ)
#   torch.Tensor.cuda                              a no-op on a machine without a GPU (sitecustomize.py)
#   NuScenes(version='v1.0-trainval', ...)         a scratch dataroot view (OUT/.run/dataroot): symlinks,
#       the dataset's v1.0-synth tables as v1.0-trainval, samples/, sweeps/, maps/, and lidarseg/ with
#       both version names (the lidarseg rows name lidarseg/v1.0-synth/..., the devkit counts the files
#       of lidarseg/v1.0-trainval/)
#   --nusc_val_list                                the dataset's scene tokens, one a line
#   CPU count (only where the machine has fewer than 8)  the script runs open3d's Poisson with
#       n_threads=8, which segfaults in open3d 0.18-0.20 when the process sees fewer CPUs than threads
#       (SurroundOcc issue 72, Open3D issue 6828); standins/nprocs_shim.c, built here and put in
#       LD_PRELOAD, reports 8 CPUs (get_nprocs, sysconf), so the script runs with its 8 threads
# Nothing else is changed: open3d (Poisson), numpy 1.23.5 (np.int), nuscenes-devkit are the real ones.
#
# Timing: each scene's process runs under /usr/bin/time (OUT/.run/time_<scene>.txt); the script writes
# one dense_voxels_with_semantic/<LiDAR file>.npy per keyframe, and the seconds between a keyframe's
# file and the one before (the first: since the process started) are that keyframe's time; the first
# keyframe of a scene also holds the scene's aggregation pass (all sweeps, every object's points).
# OUT/.run/timing.tsv: scene, keyframe file, seconds; OUT/.run/log_<scene>.txt: the script's output.
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: run_generator.sh DATAROOT OUT" >&2
    exit 2
fi
DATAROOT=$(cd "$1" && pwd)
OUT=$(mkdir -p "$2" && cd "$2" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=${SURROUNDOCC_REPO:-/work/.mirror/weiyithu+SurroundOcc/repo}
COMMIT=419bf5b47ee07ef0610950cce5ba99168c506753
VENV=${ANCHOR_VENV:-/work/anchor-venv}
VERSION=${NUSCENES_VERSION:-v1.0-synth}
TOOL=tools/generate_occupancy_nuscenes

[ -d "$DATAROOT/$VERSION" ] || { echo "run_generator.sh: $DATAROOT/$VERSION: no nuScenes table folder" >&2; exit 1; }
[ -f "$DATAROOT/$VERSION/lidarseg.json" ] || {
    echo "run_generator.sh: $DATAROOT/$VERSION/lidarseg.json: missing (the generator reads lidarseg labels)" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || { echo "run_generator.sh: $VENV: no virtualenv (run setup_env.sh)" >&2; exit 1; }

RUN=$OUT/.run
# a scene finished by an earlier run (RUN/done_<scene>) is kept: a stopped run resumes with the scenes it lacks
rm -rf "$RUN/released" "$RUN/dataroot"
mkdir -p "$RUN/released" "$RUN/dataroot" "$RUN/dataroot/lidarseg"
# the released files, as they are at the commit (their blob ids are checked)
declare -A BLOB=(
    [generate_occupancy_nuscenes.py]=e04ba5f37f0ea1294f8509bbf904f3e43051bdf3
    [config.yaml]=c6f567abaff85e7d6796f9e2f540fddf3a654ca1
    [nuscenes.yaml]=e7e427688f893eaf3ad83905f01c407154687bde
)
for f in "${!BLOB[@]}"; do
    git -C "$REPO" show "$COMMIT:$TOOL/$f" > "$RUN/released/$f"
    got=$(git hash-object "$RUN/released/$f")
    [ "$got" = "${BLOB[$f]}" ] || { echo "run_generator.sh: $f is $got, expected ${BLOB[$f]}" >&2; exit 1; }
done

# the scratch dataroot view
ln -s "$DATAROOT/$VERSION" "$RUN/dataroot/v1.0-trainval"
for d in samples sweeps maps; do
    [ -e "$DATAROOT/$d" ] && ln -s "$DATAROOT/$d" "$RUN/dataroot/$d"
done
ln -s "$DATAROOT/lidarseg/$VERSION" "$RUN/dataroot/lidarseg/v1.0-trainval"
[ "$VERSION" = v1.0-trainval ] || ln -s "$DATAROOT/lidarseg/$VERSION" "$RUN/dataroot/lidarseg/$VERSION"

PRELOAD=
if [ "$(nproc)" -lt 8 ]; then
    cc -shared -fPIC -O2 -o "$RUN/libnprocs.so" "$HERE/standins/nprocs_shim.c" -ldl
    PRELOAD=$RUN/libnprocs.so
    echo "run_generator.sh: $(nproc) CPUs here; open3d's Poisson runs its 8 threads through $PRELOAD"
fi

"$VENV/bin/python" - "$DATAROOT/$VERSION/scene.json" "$RUN/val_list.txt" "$RUN/scenes.txt" <<'PY'
import json, sys
scenes = json.load(open(sys.argv[1]))
open(sys.argv[2], "w").write("".join(s["token"] + "\n" for s in scenes))
open(sys.argv[3], "w").write("".join(s["name"] + "\n" for s in scenes))
PY
NSCENES=$(wc -l < "$RUN/scenes.txt")
echo "run_generator.sh: $NSCENES scenes of $DATAROOT, SurroundOcc $COMMIT, out $OUT"

[ -f "$RUN/timing.tsv" ] || printf 'scene\tkeyframe_file\tseconds\n' > "$RUN/timing.tsv"
cd "$RUN/released"
# open3d's Poisson (the script's n_threads=8) now and then dies of a segmentation fault inside libOpen3D on a
# machine with fewer cores (seen on 2 cores, open3d 0.20): such a scene is run again from its start, up to
# $SURROUNDOCC_TRIES times (default 3), each try said in RUN/retries.tsv; any other failure stops the run
TRIES=${SURROUNDOCC_TRIES:-3}
for ((i = 0; i < NSCENES; i++)); do
    name=$(sed -n "$((i + 1))p" "$RUN/scenes.txt")
    if [ -f "$RUN/done_$name" ]; then
        echo "run_generator.sh: $name already done (an earlier run)"
        continue
    fi
    marker=$RUN/start_$i
    for ((try = 1; ; try++)); do
        touch "$marker"
        start=$(date +%s.%N)
        rc=0
        LD_PRELOAD=$PRELOAD PYTHONPATH=$HERE/standins PYTHONWARNINGS=ignore::DeprecationWarning \
            /usr/bin/time -v -o "$RUN/time_$name.txt" \
            "$VENV/bin/python" generate_occupancy_nuscenes.py \
            --split all --dataroot "$RUN/dataroot" --save_path "$OUT" \
            --config_path "$RUN/released/config.yaml" --label_mapping "$RUN/released/nuscenes.yaml" \
            --nusc_val_list "$RUN/val_list.txt" --start "$i" --end "$((i + 1))" \
            > "$RUN/log_$name.txt" 2>&1 || rc=$?
        [ "$rc" -eq 0 ] && break
        if grep -q "terminated by signal 11" "$RUN/time_$name.txt" && [ "$try" -lt "$TRIES" ]; then
            printf '%s\t%s\tsegmentation fault, run again\n' "$name" "$try" >> "$RUN/retries.tsv"
            echo "run_generator.sh: $name: segmentation fault in try $try (open3d), running it again" >&2
            continue
        fi
        echo "run_generator.sh: scene $name failed (try $try), see $RUN/log_$name.txt" >&2
        tail -5 "$RUN/log_$name.txt" >&2
        exit 1
    done
    # per keyframe: the outputs this process wrote, in the order of their times
    prev=$start
    while read -r t f; do
        printf '%s\t%s\t%.3f\n' "$name" "$f" "$(echo "$t - $prev" | bc -l)" >> "$RUN/timing.tsv"
        prev=$t
    done < <(find "$OUT/dense_voxels_with_semantic" -name '*.npy' -newer "$marker" -printf '%T@ %f\n' | sort -n)
    wall=$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$RUN/time_$name.txt")
    touch "$RUN/done_$name"
    echo "run_generator.sh: $name done in $wall (wall clock)"
done
column -t "$RUN/timing.tsv"
