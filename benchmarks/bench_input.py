"""The input pipeline at nuScenes' size: JPEG decoders side by side, and what one loader worker
delivers for each GPU preset.

1. Decoders: the six camera JPEGs of each frame (900x1600 in a world made by ``occkit synth
   --image-size 900 1600``), decoded to ``(H, W, 3) uint8`` on one thread, and decoded + resized
   to a preset's input width (704: 0.44 of 1600) as the augmentation does. Compared: Pillow
   (what occkit uses), Pillow's ``draft`` (the JPEG decoded at 1/2, 1/4 or 1/8 scale straight from
   the DCT, where the input is that much smaller), ``torchvision.io.decode_jpeg``, and
   ``simplejpeg`` (libjpeg-turbo) when installed.
2. Per preset: frames per second of one loader worker (one process, one thread; from its CPU time,
   which is what a worker with a core of its own runs at, and steadier than the wall time on a
   shared machine; both are recorded): the dataset's ``__getitem__`` with the preset's training
   transforms (read and decode six images, resize,
   crop, flip, BEV augmentation, labels, LiDAR and priors where the preset reads them), and the
   workers one GPU step needs at the preset's batch: ``batch / (step seconds x frames/s per
   worker)`` for the step times given (``--gpu-step``; the GPU check measures them); and the
   bytes of one frame's tensors (``sample_mib``: every entry counted, as frames with distinct
   neighbours need; ``sample_unique_mib``: tensors shared within the frame counted once;
   ``temporal_mib``: the neighbour keyframes' fields of LangOcc's temporal rays).
   ``--set KEY=VALUE`` overrides every timed preset (e.g. ``langocc.temporal_gather=maps``).

    python benchmarks/bench_input.py --data runs/fullsize/stages/world --frames 6
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _pil(data: bytes, target_w: int | None) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
        if target_w:
            h = round(im.height * target_w / im.width)
            im = im.resize((target_w, h), Image.BILINEAR)
        return np.asarray(im)


def _pil_draft(data: bytes, target_w: int | None) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if target_w:
            h = round(im.height * target_w / im.width)
            im.draft("RGB", (target_w, h))  # the largest DCT scale-down that keeps at least this size
        im = im.convert("RGB")
        if target_w and im.width != target_w:
            im = im.resize((target_w, round(im.height * target_w / im.width)), Image.BILINEAR)
        return np.asarray(im)


def _torchvision(data: bytes, target_w: int | None) -> np.ndarray:
    from torchvision.io import decode_jpeg

    t = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))  # (3, H, W)
    if target_w:
        h = round(t.shape[1] * target_w / t.shape[2])
        t = (
            torch.nn.functional.interpolate(
                t[None].float(), size=(h, target_w), mode="bilinear", antialias=True, align_corners=False
            )[0]
            .round()
            .clamp(0, 255)
            .to(torch.uint8)
        )
    return t.permute(1, 2, 0).numpy()


def _simplejpeg(data: bytes, target_w: int | None) -> np.ndarray:
    import simplejpeg
    from PIL import Image

    if not target_w:
        return simplejpeg.decode_jpeg(data, colorspace="RGB")
    h0, w0 = simplejpeg.decode_jpeg_header(data)[:2]
    h = round(h0 * target_w / w0)
    a = simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=h, min_width=target_w)  # DCT scale-down, as draft
    if a.shape[1] != target_w:
        a = np.asarray(Image.fromarray(a).resize((target_w, h), Image.BILINEAR))
    return a


DECODERS = {
    "pillow": _pil,
    "pillow draft": _pil_draft,
    "torchvision.io.decode_jpeg": _torchvision,
    "simplejpeg": _simplejpeg,
}


def decoders(files: list[Path], target_w: int, seconds: float) -> list[dict]:
    blobs = [f.read_bytes() for f in files]
    ref_full = [_pil(b, None) for b in blobs[:6]]
    ref_small = [_pil(b, target_w) for b in blobs[:6]]
    rows = []
    for name, fn in DECODERS.items():
        for tw in (None, target_w):
            try:
                fn(blobs[0], tw)
            except ImportError as e:
                rows.append({"decoder": name, "resize_to": tw, "error": f"not installed ({e.name})"})
                break
            n, t0, c0 = 0, time.perf_counter(), time.process_time()
            while time.perf_counter() - t0 < seconds or n < 6:
                fn(blobs[n % len(blobs)], tw)
                n += 1
            dt = (time.process_time() - c0) / n  # CPU time: one thread, steadier than wall time on a shared machine
            ref = ref_full if tw is None else ref_small
            outs = [fn(b, tw) for b in blobs[:6]]
            same_shape = all(o.shape == r.shape for o, r in zip(outs, ref))
            diff = (
                max(float(np.abs(o.astype(np.int16) - r.astype(np.int16)).mean()) for o, r in zip(outs, ref))
                if same_shape
                else None
            )
            rows.append(
                {
                    "decoder": name,
                    "resize_to": tw,
                    "ms_per_image": round(dt * 1000, 2),
                    "frames_per_s": round(1 / (6 * dt), 2),
                    "out_hw": list(outs[0].shape[:2]),
                    "mean_abs_diff_vs_pillow": None if diff is None else round(diff, 2),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def sample_bytes(sample) -> dict:
    """MiB of a :class:`~occkit.data.sample.Sample`'s tensors (lists of tensors included): every
    entry, each storage once, and the ``temporal_*`` fields' (every entry)."""
    from dataclasses import fields

    total, temporal, seen, unique = 0, 0, set(), 0
    for f in fields(sample):
        v = getattr(sample, f.name)
        todo = [v] if isinstance(v, torch.Tensor) else list(v) if isinstance(v, (list, tuple)) else []
        for t in todo:
            if not isinstance(t, torch.Tensor):
                continue
            n = t.numel() * t.element_size()
            total += n
            temporal += n if f.name.startswith("temporal_") else 0
            key = t.untyped_storage().data_ptr()
            if key not in seen:
                seen.add(key)
                unique += t.untyped_storage().nbytes()
    mib = 2**20
    return {
        "sample_mib": round(total / mib, 1),
        "sample_unique_mib": round(unique / mib, 1),
        "temporal_mib": round(temporal / mib, 1),
    }


def worker_rate(preset: str, data: Path, sets: list[str], frames: int) -> dict:
    from occkit.engine.data import seed_everything
    from occkit.experiment import build_train_set, load_experiment

    cfg = load_experiment(preset, sets)
    ds = build_train_set(cfg, data)
    seed_everything(0)
    ds[0]  # opens files, caches calibration
    n = min(frames, len(ds))
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        s = ds[(i + 1) % len(ds)]
    dt, dc = (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
    size = sample_bytes(s)  # the last frame timed
    # a worker on a core of its own runs at its CPU time: the rate that sizes the workers
    return {
        "preset": preset,
        "batch_size": cfg.data.batch_size,
        "frames_per_s": round(1 / dc, 2),
        "cpu_s_per_frame": round(dc, 3),
        "wall_s_per_frame": round(dt, 3),
        "cameras": len(cfg.data.cameras),
        "input_hw": list(cfg.data.image_aug.out_hw),
        "frames_timed": n,
        **size,
        "sets": sets,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="an Occ3D-layout world (its train split's JPEGs)")
    ap.add_argument(
        "--stages",
        type=Path,
        default=None,
        help="full_size.py's stage folder (priors, pseudo-labels, teacher), "
        "for the presets that read them (default: DATA/..)",
    )
    ap.add_argument("--frames", type=int, default=6, help="frames timed per preset")
    ap.add_argument("--seconds", type=float, default=4.0, help="seconds per decoder")
    ap.add_argument("--target-width", type=int, default=704)
    ap.add_argument(
        "--gpu-step", type=float, nargs="*", default=[0.25, 0.5, 1.0], help="GPU step seconds to size workers for"
    )
    ap.add_argument("--presets", nargs="*", default=None)
    ap.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="override every preset"
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    files = sorted(args.data.rglob("*.jpg"))[:36]
    if not files:
        print(f"bench_input: no .jpg under {args.data}", file=sys.stderr)
        return 2
    out = {
        "images": f"{len(files)} JPEGs under {args.data}",
        "decoders": decoders(files, args.target_width, args.seconds),
        "presets": [],
    }
    from preset_bench import ROWS, STAGES

    stages = args.stages or args.data.parent
    folders = {n: stages / n for n in STAGES}
    for row in ROWS:
        if args.presets is not None and row.label not in args.presets:
            continue
        if row.data != "world" and not folders[row.data].is_dir():
            continue
        if any(not folders[s].is_dir() for s in row.stages()):
            print(f"{row.label}: skipped (stages {row.stages()} not all under {stages})", flush=True)
            continue
        try:
            r = worker_rate(row.preset, folders[row.data], [*row.resolved_sets(folders), *args.sets], args.frames)
        except Exception as e:  # noqa: BLE001 - a preset that fails is reported, the others still run
            r = {"preset": row.preset, "error": f"{type(e).__name__}: {e}"[:300]}
        r["row"] = row.label
        if "frames_per_s" in r:
            r["workers_for_gpu_step"] = {
                str(t): math.ceil(r["batch_size"] / (t * r["frames_per_s"])) for t in args.gpu_step
            }
        out["presets"].append(r)
        print(json.dumps(r), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
