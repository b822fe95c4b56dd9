"""What ``occupied_threshold: auto`` picks for a trained langocc run, and what that threshold scores.

Usage: OMP_NUM_THREADS=1 python benchmarks/langocc_calibration.py RUN DATA [train_frames] [--score]

Loads the run's last checkpoint, empties its calibration histograms and fills them as training
would (``training_step`` without gradients, the run's weights fixed) on ``train_frames`` training
frames with the cache's 2D prior depth maps (``data.prior_kinds`` gains ``depth``); prints the
threshold and, with ``--score``, the zero-shot mIoU and geometry IoU on the validation split at it
(camera mask). The calibration reads no 3D label; the score does (a diagnostic, not a training signal).
"""

import json
import sys

import torch

from occkit.data.sample import collate
from occkit.engine.data import eval_batches
from occkit.engine.evaluate import autocast, evaluate, resolve_amp
from occkit.experiment import build_dataset, load_checkpoint_method

torch.set_num_threads(1)
args = [a for a in sys.argv[1:] if not a.startswith("--")]
run, data = args[0], args[1]
frames = int(args[2]) if len(args) > 2 else 32
method, cfg, folder, dev = load_checkpoint_method(run, "cpu")
if "depth" not in cfg.data.prior_kinds:
    cfg.data.prior_kinds = [*cfg.data.prior_kinds, "depth"]
amp = resolve_amp(dev, cfg.optim.amp, cfg.optim.cpu_bf16)
before = method.threshold()
method.cfg.occupied_threshold = "auto"
method.calibration.zero_()
train = build_dataset(cfg, data, "train", train=True)
step = max(1, len(train) // frames)
method.train()
with torch.no_grad():
    for i in range(0, step * frames, step):
        batch = collate([train[i % len(train)]])
        with autocast(dev, amp):
            method.training_step(batch)
method.eval()
out = {
    "checkpoint": str(folder),
    "threshold_before": before,
    "train_frames": frames,
    "threshold_auto": method.threshold(),
}
if "--score" in sys.argv:
    val = build_dataset(cfg, data, "val")
    s = evaluate(
        method, eval_batches(val, 1), dev, amp, mask="camera", num_classes=cfg.model.num_classes, progress=False
    )
    out.update(miou=s["miou"], geometry_iou=s["geometry_iou"], val_frames=s["frames"])
print(json.dumps(out, indent=1))
