#!/usr/bin/env bash
# The environment SurroundOcc's released label generator
# (tools/generate_occupancy_nuscenes/generate_occupancy_nuscenes.py, commit 419bf5b) runs in, outside
# occkit's own environment: a virtualenv (default /work/anchor-venv, or $1) with
#   numpy 1.23.5   the script uses np.int, removed in numpy 1.24
#   scipy, pyyaml, pyquaternion, tqdm
#   open3d         Poisson surface reconstruction and normals (PyPI wheel; needs libusb-1.0 at import)
#   torch (CPU)    torch.from_numpy / points_in_boxes / chamfer calls; .cuda() is a no-op through
#                  standins/sitecustomize.py
#   nuscenes-devkit --no-deps, plus what the modules the script imports import (cv2, matplotlib,
#                  shapely, scikit-learn, cachetools, Pillow)
# mmcv, mmdet3d and the CUDA chamfer extension are not installed: standins/ replaces them (see
# run_generator.sh). Idempotent: an existing venv is reused and pip skips what is already there.
set -euo pipefail
VENV=${1:-/work/anchor-venv}
PY=${PYTHON:-python3}

if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
    if command -v apt-get >/dev/null; then
        apt-get install -y libusb-1.0-0 || { apt-get update && apt-get install -y libusb-1.0-0; }
    else
        echo "setup_env.sh: open3d needs libusb-1.0.so.0; install libusb-1.0 with the system's package manager" >&2
        exit 1
    fi
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)
NUMPY="numpy==1.23.5"
"${PIP[@]}" "$NUMPY" scipy pyyaml pyquaternion tqdm
"${PIP[@]}" open3d "$NUMPY"
# torch: a CPU build of torch 2.x; torch 2.13's CPU wheel works with numpy 1.23 (from_numpy, .numpy()).
"${PIP[@]}" "torch>=2.0" "$NUMPY"
"${PIP[@]}" --no-deps nuscenes-devkit==1.2.0
"${PIP[@]}" "opencv-python-headless<4.11" matplotlib pillow shapely scikit-learn cachetools "$NUMPY"
"$VENV/bin/python" -W ignore -c "
import numpy, torch, open3d, scipy, yaml, pyquaternion, tqdm
from nuscenes.nuscenes import NuScenes
from nuscenes.utils import splits
from nuscenes.utils.data_classes import LidarPointCloud
assert numpy.__version__ == '1.23.5', numpy.__version__
print('anchor env ok: numpy', numpy.__version__, 'torch', torch.__version__, 'open3d', open3d.__version__)
"
