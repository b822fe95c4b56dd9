"""Where a camera network's forward spends its work, part by part: FLOPs and bytes, and a roofline estimate.

    python benchmarks/bench_breakdown.py                                  # occ3d-r50, batch 1 and 8, bf16 autocast
    python benchmarks/bench_breakdown.py --batches 1 8 --json breakdown.json --set model.encoder_fuse=split

Nothing is computed: the network (its real weights) runs under ``FakeTensorMode`` (activations with
shapes and dtypes, no data), so occ3d-r50 at batch 8 takes seconds on any CPU. Per part of the forward (image
backbone, FPN neck, depth net, the lift's geometry and splat, each stage and fusion of the 3D encoder,
the head, the rest: normalisation and the labels' argmax):

- FLOPs from ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products; an
  elementwise op counts 0), per module, its children's counts subtracted;
- bytes read and written by every ATen operator the part runs (views excluded), as an eager,
  unfused run moves them: the inputs each operator reads and the outputs it writes, the largest
  tensor the part writes. ``torch.compile`` fuses elementwise chains, so its traffic is lower;
- a roofline time per part, ``max(FLOPs / peak FLOP/s, bytes / peak bandwidth)``, at the peaks
  given (default: H100 SXM5, bf16 dense tensor cores 989.4 TFLOP/s and HBM3 3.35 TB/s, NVIDIA's
  H100 datasheet). An estimate of the best a part could do, not a measurement: real kernels reach a
  fraction of either peak, atomics (the splat's ``index_add``) and small launches are not modelled.

The autocast is the CPU's (a CUDA autocast needs a CUDA device); it casts the same operators to bf16
(convolutions, matrix products), except that CUDA's also runs ``softmax`` and ``softplus`` in float32:
the depth net's softmax and the head's softplus write twice the bytes counted here on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

# H100 SXM5 (NVIDIA H100 Tensor Core GPU datasheet): 989.4 TFLOP/s bf16 dense, 3.35 TB/s HBM3
PEAK_TFLOPS = 989.4
PEAK_TBPS = 3.35
CAMERAS = 6


def part_paths(pred: torch.nn.Module) -> list[tuple[str, str]]:
    """(label, module path under the predictor) of every part, outer parts before the parts inside them."""
    net = pred.net
    parts = [("backbone (ResNet)", "net.backbone"), ("neck (FPN)", "net.neck")]
    vt = getattr(net, "view_transform", None)
    if vt is not None:
        parts.append(("lift: geometry + splat", "net.view_transform"))
        if hasattr(vt, "depth_net"):
            parts.append(("depth net", "net.view_transform.depth_net"))
    parts.append(("3D encoder: up + concat / split", "net.encoder"))  # the decoder's own ops
    for i in range(len(net.encoder.stages)):
        parts.append((f"3D encoder: stage {i}", f"net.encoder.stages.{i}"))
    for i in range(len(net.encoder.fuse)):
        parts.append((f"3D encoder: fuse {i}", f"net.encoder.fuse.{i}"))
    parts.append(("head", "net.head"))
    return parts


ORDER = ("backbone", "neck", "depth net", "lift", "3D encoder: stage", "3D encoder: up", "3D encoder: fuse", "head")


def _order(label: str) -> tuple[int, str]:
    for i, p in enumerate(ORDER):
        if label.startswith(p):
            return i, label
    return len(ORDER), label


#: Operators whose tensor input gives only a dtype and device (nothing read).
FACTORIES = {"new_zeros", "new_empty", "new_ones", "new_full", "zeros_like", "empty_like", "ones_like", "full_like"}


class ByteCounter(TorchDispatchMode):
    """Bytes every non-view ATen operator reads (its tensor inputs) and writes (its outputs), and the
    largest tensor it writes, attributed to the innermost part running (forward hooks keep the stack)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack = ["rest: normalise, reshape, labels"]
        self.read: dict[str, int] = defaultdict(int)
        self.written: dict[str, int] = defaultdict(int)
        self.largest: dict[str, tuple[int, str]] = {}
        self.ops: dict[str, int] = defaultdict(int)
        self.each: list[tuple[int, str, str]] = []  # (bytes moved, part, "op shape dtype") per operator

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        part = self.stack[-1]
        ins = [t for t in tree_flatten((args, kwargs or {}))[0] if isinstance(t, torch.Tensor)]
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if not outs or func.namespace == "prim":  # metadata (prim.device, sizes): no data moved
            return out
        if getattr(func, "is_view", False):
            # an operator that may alias (contiguous, reshape, to, under inference_mode not decomposed):
            # a view when its output shares an input's storage, else a copy, counted
            have = {t.untyped_storage()._cdata for t in ins}
            if all(t.untyped_storage()._cdata in have for t in outs):
                return out
        if func.overloadpacket.__name__ in FACTORIES:  # reads only its input's dtype and device
            ins = []
        self.read[part] += sum(t.numel() * t.element_size() for t in ins)
        self.written[part] += sum(t.numel() * t.element_size() for t in outs)
        self.ops[part] += 1
        moved = sum(t.numel() * t.element_size() for t in ins + outs)
        what = ", ".join(f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}" for t in outs[:1])
        self.each.append((moved, part, f"{func.overloadpacket.__name__} -> {what}"))
        for t in outs:
            n = t.numel() * t.element_size()
            if n > self.largest.get(part, (0, ""))[0]:
                dt = str(t.dtype).replace("torch.", "")
                self.largest[part] = (n, f"{func.overloadpacket.__name__} {tuple(t.shape)} {dt}")
        return out


def breakdown(
    preset: str,
    sets: list[str],
    batch: int,
    hw: tuple[int, int] | None = None,
    dtype: str = "bf16",
    peaks: tuple[float, float] = (PEAK_TFLOPS, PEAK_TBPS),
    top: int = 12,
    fold: bool = False,
) -> tuple[list[dict], dict]:
    """One fake forward of ``preset``'s exported predictor at ``batch``: its rows (one per part) and totals."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    from occkit.experiment import build_method, load_experiment
    from occkit.export.onnx import OccPredictor

    cfg = load_experiment(preset, sets)
    H, W = hw or tuple(cfg.data.image_aug.out_hw)
    # the weights are real (a memory layout cannot be set on fake parameters), the activations fake
    pred = OccPredictor(build_method(cfg), cfg.method).eval()
    if fold:
        from occkit.models.fold import fold_batchnorms

        fold_batchnorms(pred)
    with FakeTensorMode(allow_non_fake_inputs=True):
        parts = part_paths(pred)
        label_of = {path: label for label, path in parts}
        counter = ByteCounter()
        hooks = []

        def enter(label: str):
            def pre(_mod, _args) -> None:
                counter.stack.append(label)

            return pre

        def leave(_mod, _args, _out) -> None:  # returns None: the output stays the module's
            counter.stack.pop()

        for label, path in parts:
            mod = pred.get_submodule(path)
            hooks += [mod.register_forward_pre_hook(enter(label)), mod.register_forward_hook(leave)]
        images = torch.rand(batch, CAMERAS, 3, H, W)
        K = torch.eye(3).expand(batch, CAMERAS, 3, 3).clone()
        T = torch.eye(4).expand(batch, CAMERAS, 4, 4).clone()
        flops = FlopCounterMode(display=False, depth=None)
        ac = (
            torch.autocast("cpu", dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[dtype])
            if dtype != "float32"
            else torch.autocast("cpu", enabled=False)
        )
        with torch.inference_mode(), ac, flops, counter:
            pred(images, K, T)
        for h in hooks:
            h.remove()
    # FlopCounterMode counts per module including its children: subtract the parts inside a part
    inclusive = {k: sum(v.values()) for k, v in flops.get_flop_counts().items()}
    total_flops = inclusive.get("Global", 0)
    root = type(pred).__name__
    incl = {path: inclusive.get(f"{root}.{path}", 0) for _, path in parts}
    excl = dict(incl)
    for _, path in parts:
        outer = [p for _, p in parts if p != path and path.startswith(p + ".")]
        if outer:
            excl[max(outer, key=len)] -= incl[path]
    excl_by_label = {label_of[p]: v for p, v in excl.items()}
    rest_label = counter.stack[0]
    excl_by_label[rest_label] = total_flops - sum(incl[p] for _, p in parts if p.count(".") == 1)
    rows = []
    for label in sorted(set(excl_by_label) | set(counter.written), key=_order):
        f, r, w = excl_by_label.get(label, 0), counter.read.get(label, 0), counter.written.get(label, 0)
        if not (f or counter.ops.get(label)):  # a part that did not run (the fuse modules under encoder_fuse=split)
            continue
        t_c, t_m = f / (peaks[0] * 1e12), (r + w) / (peaks[1] * 1e12)
        big = counter.largest.get(label, (0, ""))
        rows.append(
            {
                "part": label,
                "gflop": round(f / 1e9, 2),
                "gb_read": round(r / 1e9, 3),
                "gb_written": round(w / 1e9, 3),
                "ops": counter.ops.get(label, 0),
                "largest_written_mb": round(big[0] / 1e6, 1),
                "largest_written": big[1],
                "roofline_ms": round(max(t_c, t_m) * 1e3, 4),
                "bound": "compute" if t_c >= t_m else "memory",
            }
        )
    t_sum = sum(r["roofline_ms"] for r in rows)
    for r in rows:
        r["share_of_roofline"] = round(r["roofline_ms"] / t_sum, 3) if t_sum else 0.0
    totals = {
        "batch": batch,
        "input": f"{batch} x {CAMERAS} x 3 x {H} x {W}",
        "gflop": round(total_flops / 1e9, 1),
        "gflop_per_frame": round(total_flops / 1e9 / batch, 1),
        "gb_moved": round(sum(counter.read.values()) / 1e9 + sum(counter.written.values()) / 1e9, 2),
        "roofline_ms": round(t_sum, 3),
        "roofline_frames_per_s": round(batch / (t_sum / 1e3), 1) if t_sum else None,
        "largest_ops": [
            {"mb_moved": round(n / 1e6, 1), "part": part, "op": what}
            for n, part, what in sorted(counter.each, key=lambda e: -e[0])[:top]
        ],
    }
    return rows, totals


def table(rows: list[dict], totals: dict) -> str:
    head = (
        f"{'part':<32} {'GFLOP':>8} {'GB read':>8} {'GB writ':>8} {'ops':>5} {'roof ms':>8} {'bound':>7} {'share':>6}"
        "  largest tensor written"
    )
    out = [head, "-" * len(head)]
    for r in rows:
        out.append(
            f"{r['part']:<32} {r['gflop']:>8.1f} {r['gb_read']:>8.3f} {r['gb_written']:>8.3f} {r['ops']:>5} "
            f"{r['roofline_ms']:>8.3f} {r['bound']:>7} {r['share_of_roofline']:>6.1%}  "
            f"{r['largest_written_mb']:.0f} MB {r['largest_written']}"
        )
    out.append(
        f"{'total':<32} {totals['gflop']:>8.1f} {totals['gb_moved']:>17.2f} {'':>5} {totals['roofline_ms']:>8.3f}"
        f"   -> at most {totals['roofline_frames_per_s']} frames/s (roofline, batch {totals['batch']})"
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="occ3d-r50")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--hw", type=int, nargs=2, default=None, help="input H W (default: the preset's out_hw)")
    ap.add_argument("--dtype", choices=("bf16", "fp16", "float32"), default="bf16", help="autocast (default bf16)")
    ap.add_argument("--set", dest="sets", nargs="*", default=[], help="config overrides (key=value)")
    ap.add_argument("--peak-tflops", type=float, default=PEAK_TFLOPS, help="default: H100 SXM5 bf16 dense")
    ap.add_argument("--peak-tbps", type=float, default=PEAK_TBPS, help="default: H100 SXM5 HBM3")
    ap.add_argument(
        "--fold-batchnorms", action="store_true", help="fold the BatchNorms into their convolutions (inference)"
    )
    ap.add_argument("--top", type=int, default=12, help="list the operators that move the most bytes (0: none)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows and totals here")
    args = ap.parse_args(argv)
    if any(b < 1 for b in args.batches):
        print(f"bench_breakdown: error: --batches {args.batches}: expected positive sizes", file=sys.stderr)
        return 2
    try:
        results = []
        for b in args.batches:
            hw = tuple(args.hw) if args.hw else None
            peaks = (args.peak_tflops, args.peak_tbps)
            rows, totals = breakdown(args.preset, args.sets, b, hw, args.dtype, peaks, args.top, args.fold_batchnorms)
            print(
                f"\n{args.preset}, {totals['input']}, {args.dtype} autocast, {totals['gflop_per_frame']} GFLOP a frame"
            )
            print(table(rows, totals))
            if args.top:
                print(f"the {args.top} operators that move the most bytes (read + written):")
                for e in totals["largest_ops"]:
                    print(f"  {e['mb_moved']:>8.1f} MB  {e['part']:<32} {e['op']}")
            results.append({"totals": totals, "parts": rows})
    except (ValueError, KeyError, FileNotFoundError) as e:
        print(f"bench_breakdown: error: {e}", file=sys.stderr)
        return 2
    print(
        f"\nroofline: max(FLOPs / {args.peak_tflops} TFLOP/s, bytes / {args.peak_tbps} TB/s) per part, summed; "
        "an estimate (eager, unfused bytes; no atomics, launches or kernel efficiency)"
    )
    if args.json:
        doc: dict[str, Any] = {
            "preset": args.preset,
            "sets": args.sets,
            "fold_batchnorms": args.fold_batchnorms,
            "dtype": args.dtype,
            "torch": torch.__version__,
            "peaks": {
                "tflops": args.peak_tflops,
                "tb_per_s": args.peak_tbps,
                "source": "H100 SXM5 datasheet: bf16 dense tensor cores, HBM3" if args.peak_tflops == 989.4 else "",
            },
            "results": results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=args.json.parent, delete=False, suffix=".tmp") as fh:
            json.dump(doc, fh, indent=1)
        os.replace(fh.name, args.json)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
