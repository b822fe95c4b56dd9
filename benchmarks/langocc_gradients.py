"""Where does a langocc run's feature loss send its gradient? A diagnostic of the flat density.

The rendered feature is L2-normalised, so the density only learns from differences between the
language features along a ray (tests/methods/test_langocc.py::test_density_learns_only_from_features_
that_differ_along_a_ray). This measures, on training frames of a checkpoint:

- the gradient of the feature loss at the density logits and at the latent grid (mean |grad| per
  voxel), and per parameter group (the density head, the language MLP, the rest);
- how alike the language features are along the training rays: ``1 - cos(f_i, mean_i f)`` averaged
  over 32 uniform samples per ray between the grid's entry and exit (0 = all alike), and the same
  for the 2D targets of neighbouring rays as a scale.

Usage: OMP_NUM_THREADS=1 python benchmarks/langocc_gradients.py RUN_OR_CKPT DATA [frames=4] [--init]

``--init``: the run's network at its initialisation (its config and seed, no weights loaded).
"""

from __future__ import annotations

import json
import sys

import torch

from occkit.data.sample import collate
from occkit.experiment import build_dataset, load_checkpoint_method
from occkit.losses.language import normalize_features
from occkit.rendering.sampling import ray_box, uniform_samples


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    init = "--init" in argv
    argv = [a for a in argv if a != "--init"]
    ckpt, data = argv[0], argv[1]
    frames = int(argv[2]) if len(argv) > 2 else 4
    if init:
        from occkit.engine.checkpoint import CONFIG_FILE, load_config_dict, resolve_checkpoint
        from occkit.experiment import build_method, experiment_from_dict

        folder = resolve_checkpoint(ckpt)
        cfg = experiment_from_dict(load_config_dict(folder), where=str(folder / CONFIG_FILE))
        torch.manual_seed(cfg.train.seed)
        method = build_method(cfg)
    else:
        method, cfg, folder, _ = load_checkpoint_method(ckpt, "cpu", ema=False)
    method.train()
    ds = build_dataset(cfg, data, "train", train=True)
    torch.manual_seed(0)
    kept: dict = {}
    orig = method.forward

    def forward(batch):
        o = orig(batch)
        o.logits.retain_grad()
        o.features.retain_grad()
        kept["out"] = o
        return o

    method.forward = forward
    groups = {"density head": [], "language MLP": [], "rest": []}
    for n, p in method.named_parameters():
        key = (
            "language MLP"
            if n.startswith("language")
            else ("density head" if n.startswith("model.head") or n == "density_bias" else "rest")
        )
        groups[key].append(p)
    rows = []
    for i in [round(k * (len(ds) - 1) / max(frames - 1, 1)) for k in range(frames)]:
        batch = collate([ds[i]])
        method.zero_grad(set_to_none=True)
        loss = method.training_step(batch)["loss_feat"]
        loss.backward()
        out = kept["out"]
        row = {
            "frame": i,
            "loss": float(loss.detach()),
            "grad_density_logits": float(out.logits.grad.abs().mean()),
            "grad_latent": float(out.features.grad.abs().mean()),
        }
        for k, ps in groups.items():
            row[f"grad_norm {k}"] = float(
                torch.sqrt(sum((p.grad.float() ** 2).sum() for p in ps if p.grad is not None))
            )
        with torch.no_grad():
            rays, target = method.frame_rays(batch, 0)["current"]
            o, d = rays.origins.float(), rays.dirs.float()
            near, far = ray_box(o, d, method.grid, min_near=cfg.langocc.near)
            s = uniform_samples(near, far, num_samples=32)
            pts = o[:, None] + d[:, None] * s.t[..., None]  # (R, 32, 3)
            f = method.language(method.latent_field(out.features[0].detach())(pts.reshape(-1, 3))).view(
                *pts.shape[:2], -1
            )
            mean = normalize_features(f.mean(1))
            row["feature_spread_along_rays"] = float((1 - (f * mean[:, None]).sum(-1)).mean())
            t = normalize_features(method.project(target))
            row["target_spread_between_rays"] = float((1 - (t * normalize_features(t.mean(0))[None]).sum(-1)).mean())
        rows.append(row)
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0] if k != "frame"}
    print(
        json.dumps(
            {"checkpoint": str(folder), "init": init, "frames": len(rows), "mean": mean, "per_frame": rows}, indent=1
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
