"""Does an occscene run's generator use the layout yet? A diagnostic of MDA and the autoencoder.

On val frames of DATA, with the same image latents, noise and timesteps for every case:

- the denoiser's noise-prediction error (the diffusion loss, MSE) with the frame's own layout
  through MDA, with a different layout (the frame's own, mirrored left-right), with an empty layout
  (every voxel free: what MDA adds from the camera rays alone, a positional signal), and without a
  layout (text only): MDA uses the layout when the own layout gives a lower error than the others;
- how much the layout moves the prediction: ``|eps(layout) - eps(text only)| / |eps(text only)|``;
- the autoencoder's reconstruction of the real images (PSNR in dB, images in [0, 1]): the
  sharpest a generated image can be;
- the layout's share of MDA's image-plane features (``to_image``'s output, which the
  zero-initialised convolutions turn into the residuals): ``mean |f(own) - f(mirrored)| / mean |f(own)|``
  (0: MDA adds the same for every layout).

``--init``: instead, MDA of the run's config at initialisation, once per variant of
``camera_modulation`` x ``ray_spacing``: how much of the layout reaches the image plane before any
training.

Usage: OMP_NUM_THREADS=1 python benchmarks/occscene_mda_effect.py RUN_OR_CKPT DATA [frames=8] [--init]
"""

from __future__ import annotations

import json
import sys

import torch


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    from occkit.data.sample import collate
    from occkit.experiment import build_dataset, data_format, load_checkpoint_method
    from occkit.generation.autoencoder import to_image_range, to_model_range
    from occkit.generation.generate import conditioning_frames
    from occkit.generation.losses import one_hot_occupancy

    init = "--init" in argv
    argv = [a for a in argv if a != "--init"]
    ckpt, data = argv[0], argv[1]
    frames = int(argv[2]) if len(argv) > 2 else 8
    method, cfg, folder, _ = load_checkpoint_method(ckpt, "cpu")
    gen = method.generator
    ds, picks = conditioning_frames(
        lambda root, split: build_dataset(cfg, root, split, train=False), data, "val", "val", frames
    )
    batch = collate([ds[j] for j in picks])
    B, N = batch.images.shape[:2]
    images = batch.images.flatten(0, 1)  # (B*N, 3, H, W) in [0, 1]
    occ = one_hot_occupancy(batch.occupancy, method.model_cfg.num_classes).float()
    z = torch.randn(
        (B * N, gen.cfg.autoencoder.latent_channels, *(s // gen.stride for s in images.shape[-2:])),
        generator=torch.Generator().manual_seed(0),
    )
    if init:
        import dataclasses

        from occkit.generation.model import SceneGenerator

        rows = {}
        for modulation in ("plain", "residual"):
            for spacing in ("inverse", "log"):
                mda_cfg = dataclasses.replace(gen.cfg.mda, camera_modulation=modulation, ray_spacing=spacing)
                torch.manual_seed(0)
                fresh = SceneGenerator(
                    dataclasses.replace(gen.cfg, mda=mda_cfg), method.model_cfg.num_classes, method.model.output_grid
                )
                rows[f"{modulation}, {spacing}"] = layout_share(fresh, z, occ, batch)
        print(json.dumps({"run_config": str(folder), "frames": B, "layout_share_at_init": rows}, indent=1))
        return 0
    free = 0 if data_format(cfg, data) == "semantickitti" else method.model_cfg.num_classes - 1  # as the trainers do
    texts = [d or "" for d in batch.descriptions]
    text, mask = gen.encode_text([t for t in texts for _ in range(N)])
    g = torch.Generator().manual_seed(0)
    out: dict = {
        "checkpoint": str(folder),
        "frames": B,
        "timesteps": {},
        "voxels_changed_by_mirroring": float((occ.argmax(1) != other_layout(occ).argmax(1)).float().mean()),
    }
    with torch.no_grad():
        z0 = gen.encode(to_model_range(images), sample=False)
        rec = to_image_range(gen.decode(z0))
        mse = (rec - images).pow(2).flatten(1).mean(1)
        out["vae_psnr_db"] = float((10 * torch.log10(1 / mse.clamp_min(1e-10))).mean())
        ac = method.alphas_cumprod
        for t in (100, 300, 500, 700, 900):
            noise = torch.randn(z0.shape, generator=g)
            tt = torch.full((B * N,), t, dtype=torch.long)
            a = ac[t].to(z0.dtype)
            zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
            args = (batch.intrinsics, batch.T_ego_from_cam)
            e_own = gen.denoise(zt, tt, text, mask, occ, *args)
            e_other = gen.denoise(zt, tt, text, mask, other_layout(occ), *args)
            e_empty = gen.denoise(zt, tt, text, mask, empty_layout(occ, free), *args)
            e_none = gen.denoise(zt, tt, text, mask, None, *args)
            out["timesteps"][t] = {
                "mse_own_layout": float((e_own - noise).pow(2).mean()),
                "mse_other_layout": float((e_other - noise).pow(2).mean()),
                "mse_empty_layout": float((e_empty - noise).pow(2).mean()),
                "mse_text_only": float((e_none - noise).pow(2).mean()),
                "layout_moves_eps": float((e_own - e_none).norm() / e_none.norm()),
            }
        out["layout_share_of_mda_features"] = layout_share(gen, z, occ, batch)
    print(json.dumps(out, indent=1))
    return 0


def other_layout(occ: torch.Tensor) -> torch.Tensor:
    """The layout mirrored left-right (y): the same classes in other places."""
    return occ.flip(-2)


def empty_layout(occ: torch.Tensor, free: int) -> torch.Tensor:
    """Every voxel ``free`` (Occ3D's 17, SemanticKITTI's 0): MDA's input without any object or surface."""
    empty = torch.zeros_like(occ)
    empty[:, free] = 1
    return empty


def layout_share(gen, z: torch.Tensor, occ: torch.Tensor, batch) -> float:
    """mean |f(own) - f(mirrored)| / mean |f(own)| of MDA's image-plane features f (the output of
    ``to_image``, which the zero-initialised convolutions turn into residuals)."""
    seen: list[torch.Tensor] = []
    hook = gen.mda.to_image.register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        with torch.no_grad():
            gen.residuals(z, occ, batch.intrinsics, batch.T_ego_from_cam)
            gen.residuals(z, other_layout(occ), batch.intrinsics, batch.T_ego_from_cam)
    finally:
        hook.remove()
    own, other = seen
    return float((own - other).abs().mean() / own.abs().mean().clamp_min(1e-12))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
