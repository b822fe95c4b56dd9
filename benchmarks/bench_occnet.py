"""Speed of the camera occupancy network (supervised method): one training step and inference.

Reads the ``model`` and ``supervised`` sections and ``data.image_aug.out_hw`` of a preset YAML,
builds the method, feeds a random batch of 6 cameras (random labels, camera mask, depth maps) and
prints median times of: model forward, losses, backward, optimiser step (training, batch 1) and
inference frames per second (eval mode, no grad, batch 1).

    python benchmarks/bench_occnet.py --preset configs/synth-cpu.yaml --steps 5
    python benchmarks/bench_occnet.py --preset configs/occ3d-r50.yaml --device cuda
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from occkit.config import from_dict, load_yaml, merge, parse_overrides, to_dict
from occkit.data.sample import Batch
from occkit.engine.config import OptimConfig
from occkit.engine.evaluate import autocast, resolve_amp
from occkit.experiment import find_preset
from occkit.formats import default_format
from occkit.geometry.transforms import make_transform, rotation_z
from occkit.methods.supervised import SupervisedConfig, SupervisedMethod
from occkit.models.occnet import OccNetConfig


def random_batch(model_cfg: OccNetConfig, hw: tuple[int, int], cams: int, device: str) -> Batch:
    H, W = hw
    R0 = torch.tensor([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])
    R = rotation_z(torch.arange(cams) * (2 * math.pi / cams)).float() @ R0
    T = make_transform(R, torch.tensor([0.0, 0.0, 1.6]).expand(cams, 3))[None]
    f = 0.55 * W
    K = torch.tensor([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]]).expand(1, cams, 3, 3)
    from occkit.geometry.grid import Grid

    X, Y, Z = Grid.from_range(model_cfg.point_range, model_cfg.voxel_size).shape
    occ = torch.full((1, X, Y, Z), 17)
    occ[..., :2] = torch.randint(11, 15, (1, X, Y, 2))
    occ[:, X // 2 + 10 : X // 2 + 20, Y // 2 - 5 : Y // 2 + 5, 2:6] = 4
    return Batch(
        tokens=["bench"],
        scenes=["bench"],
        timestamps=[0],
        cam_names=tuple(f"CAM{i}" for i in range(cams)),
        images=torch.rand(1, cams, 3, H, W),
        intrinsics=K.clone(),
        T_ego_from_cam=T.clone(),
        T_global_from_ego=torch.eye(4, dtype=torch.float64)[None],
        occupancy=occ,
        mask_camera=torch.rand(1, X, Y, Z) < 0.4,
        depth=torch.rand(1, cams, H, W) * 40 + 2,
    ).to(device)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", required=True, help="preset name (synth-cpu, occ3d-r50) or YAML path")
    ap.add_argument("--steps", type=int, default=5, help="timed steps")
    ap.add_argument("--cams", type=int, default=6)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--no-train", action="store_true", help="only inference")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    ap.add_argument(
        "--amp",
        choices=("preset", "none", "bf16", "fp16"),
        default="preset",
        help="autocast of the timed steps: the preset's optim.amp / optim.cpu_bf16 as training "
        "resolves them (default), or this one (CPU: bf16 only, and only with native bf16)",
    )
    ap.add_argument(
        "--compare-lovasz",
        action="store_true",
        help="also time Lovasz-softmax (forward + backward) on all kept voxels vs the preset's subset",
    )
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="overrides of the preset, e.g. model.head=bev supervised.lovasz_max_voxels=20000",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = merge(load_yaml(find_preset(args.preset)), parse_overrides(args.set))
    if preset.get("supervised", {}).get("class_counts") == "auto":
        # random batches, no dataset to count: uniform weights (the weights do not change the speed)
        preset["supervised"]["class_counts"] = None
    model_cfg = from_dict(OccNetConfig, {**to_dict(OccNetConfig()), **preset.get("model", {})})
    # random batches, no data whose format fills in the free class (fit_to_format): the default format's
    sup = {**to_dict(SupervisedConfig()), "free": default_format().classes.free, **preset.get("supervised", {})}
    method_cfg = from_dict(SupervisedConfig, sup)
    hw = tuple(preset.get("data", {}).get("image_aug", {}).get("out_hw", (256, 704)))
    optim = from_dict(OptimConfig, {**to_dict(OptimConfig()), **preset.get("optim", {})})  # the engine's defaults
    amp = resolve_amp(
        torch.device(args.device),
        optim.amp if args.amp == "preset" else args.amp,
        optim.cpu_bf16 if args.amp == "preset" else True,
    )
    torch.manual_seed(0)
    method = SupervisedMethod(model_cfg, method_cfg).to(args.device)
    batch = random_batch(model_cfg, hw, args.cams, args.device)
    n_params = sum(p.numel() for p in method.parameters()) / 1e6
    print(
        f"preset {args.preset}: {model_cfg.backbone}, head {model_cfg.head}, input {args.cams}x{hw[0]}x{hw[1]}, "
        f"lift grid {method.model.lift_grid.shape}, output {method.model.output_grid.shape}, "
        f"{method.model.depth_bins.numel()} depth bins, {n_params:.2f} M parameters, "
        f"device {args.device}, torch threads {torch.get_num_threads()}, autocast {amp}"
    )
    if not args.no_train:
        method.train()
        opt = torch.optim.AdamW(method.parameters(), lr=1e-4)
        rows = []
        for i in range(args.steps + args.warmup):
            sync(args.device)
            t0 = time.perf_counter()
            c0 = time.process_time()
            with autocast(torch.device(args.device), amp):
                out = method.model(batch.images, batch.intrinsics, batch.T_ego_from_cam)
            sync(args.device)
            t1 = time.perf_counter()
            # the method's losses on the same batch (it runs the model again: time only the losses)
            from occkit.losses.depth import depth_loss
            from occkit.losses.occupancy import lovasz_softmax, voxel_cross_entropy

            losses = {"ce": voxel_cross_entropy(out.logits, batch.occupancy, batch.mask_camera, method.class_weight)}
            if method_cfg.lovasz:
                losses["lovasz"] = lovasz_softmax(
                    out.logits, batch.occupancy, batch.mask_camera, max_voxels=method_cfg.lovasz_max_voxels
                )
            target = method.depth_targets(batch)
            if target is not None:
                losses["depth"] = depth_loss(out.depth_prob, target, method_cfg.depth_loss)
            total = sum(losses.values())
            sync(args.device)
            t2 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            total.backward()
            sync(args.device)
            t3 = time.perf_counter()
            opt.step()
            sync(args.device)
            t4 = time.perf_counter()
            if i >= args.warmup:
                rows.append((t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0, time.process_time() - c0))
        med = [statistics.median(c) for c in zip(*rows)]
        print(
            f"train step (batch 1, median of {args.steps}): forward {med[0]:.3f} s, losses {med[1]:.3f} s, "
            f"backward {med[2]:.3f} s, optimiser {med[3]:.3f} s, total {med[4]:.3f} s "
            f"(min {min(r[4] for r in rows):.3f} s); process CPU time {med[5]:.3f} s per step "
            f"(all threads; on a busy machine wall time >> CPU time / threads)"
        )
        t0 = time.perf_counter()
        with autocast(torch.device(args.device), amp):
            losses = method.training_step(batch)
        sync(args.device)
        print(
            f"method.training_step forward+losses: {time.perf_counter() - t0:.3f} s; "
            + ", ".join(f"{k}={v.item():.3f}" for k, v in losses.items())
        )
        if args.device.startswith("cuda"):
            print(f"peak GPU memory (training): {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    if args.compare_lovasz:
        from occkit.losses.occupancy import lovasz_softmax

        X, Y, Z = method.model.output_grid.shape
        logits = torch.randn(1, model_cfg.num_classes, X, Y, Z, device=args.device, requires_grad=True)
        for label, cap in (
            ("all kept voxels", None),
            (f"max_voxels={method_cfg.lovasz_max_voxels}", method_cfg.lovasz_max_voxels),
        ):
            ts = []
            for _ in range(3):
                sync(args.device)
                t0 = time.perf_counter()
                lovasz_softmax(logits, batch.occupancy, batch.mask_camera, max_voxels=cap).backward()
                sync(args.device)
                ts.append(time.perf_counter() - t0)
            print(
                f"Lovasz-softmax fwd+bwd, {label} ({int(batch.mask_camera.sum())} kept): {statistics.median(ts):.3f} s"
            )
    method.eval()
    times = []
    with torch.no_grad():
        for i in range(args.steps + args.warmup):
            sync(args.device)
            t0 = time.perf_counter()
            c0 = time.process_time()
            with autocast(torch.device(args.device), amp):
                method.predict(batch)
            sync(args.device)
            if i >= args.warmup:
                times.append((time.perf_counter() - t0, time.process_time() - c0))
    m = statistics.median(t for t, _ in times)
    c = statistics.median(c for _, c in times)
    print(
        f"inference (batch 1, median of {args.steps}): {m:.3f} s per frame = {1 / m:.2f} FPS; "
        f"process CPU time {c:.3f} s per frame"
    )


if __name__ == "__main__":
    main()
