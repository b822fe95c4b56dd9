"""``occkit query``: find free text in 3D with a ``langocc`` run.

``occkit query --ckpt RUN --data DIR --token T --text "fire hydrant" --out F.png`` predicts the
frame's grid (density and per-voxel vision-language features), scores every occupied voxel
(``p(occupied)`` at the run's threshold) by the cosine similarity of its feature with the text
(embedded in the vocabulary's templates, as the zero-shot classes are), and draws:

- bird's-eye view: each column's highest matching voxel coloured by its similarity, other
  occupied columns grey;
- a 3D view of the matching voxels over the occupied voxels of the two lowest layers (grey);
- the camera images with the matching voxels volume-rendered into them (occlusion included);
- the similarity scale (cosine).

Matching voxels: similarity >= ``--min-sim`` when given, else the ``--top`` fraction of the
occupied voxels with the highest similarity (default 2 %). ``--json`` also writes the matching
voxels' indices and similarities.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from occkit.commands.checks import finite_float, unit_float
from occkit.commands.options import add_ckpt, add_data, add_device, add_out


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_ckpt(p, "a langocc checkpoint folder or run folder")
    add_data(p, "dataset root (holding annotations.json)")
    p.add_argument("--token", required=True, help="the frame")
    p.add_argument(
        "--text", required=True, help='what to look for, e.g. "fire hydrant" (non-empty, at most 500 characters)'
    )
    add_out(p, "picture (.png)")
    p.add_argument(
        "--top", type=unit_float, default=0.02, help="fraction of occupied voxels shown as matches (default 0.02)"
    )
    p.add_argument(
        "--min-sim", type=finite_float, default=None, help="show voxels with cosine similarity >= this instead of --top"
    )
    p.add_argument(
        "--occupied",
        type=unit_float,
        default=None,
        help="p(occupied) threshold of the voxels shown (default: the run's)",
    )
    p.add_argument(
        "--json", type=Path, default=None, help="also write the matching voxels (indices, similarities) here"
    )
    add_device(p)


def similarity_grid(method, batch, text: str, occupied: float | None = None) -> tuple:
    """(occupied ``(X, Y, Z)`` bool, similarity ``(X, Y, Z)`` float (NaN where free)) of one frame."""
    import torch

    with torch.no_grad():
        q = method.encode_text([text]).to(batch.images.device)[0]  # (d,)
        out = method.forward(batch)
        occ = method.p_occupied(out.logits)[0] >= (method.threshold() if occupied is None else occupied)  # (X, Y, Z)
        f = method.voxel_features(out.features[0], occ)  # (M, d)
        sim = torch.full(occ.shape, float("nan"), device=occ.device)
        sim[occ] = f @ q
    return occ.cpu(), sim.cpu()


def query_picture(
    images, intrinsics, T_ego_from_cam, cam_names, grid, occ, sim, match, text: str, vmin: float, vmax: float
):
    """The picture: ``(H, W, 3) uint8``. ``images (N, 3, H, W)`` in [0, 1]; ``occ``, ``match``
    ``(X, Y, Z)`` bool; ``sim`` ``(X, Y, Z)`` float."""
    import numpy as np
    import torch

    from occkit.rendering.rays import camera_rays
    from occkit.rendering.volrend import render_grid
    from occkit.viz.cameras import camera_mosaic
    from occkit.viz.draw import colorbar, colormap, hstack, titled, vstack
    from occkit.viz.figure import images_uint8
    from occkit.viz.perspective import perspective_image

    X, Y, Z = occ.shape
    s = sim.numpy()
    col = colormap(np.nan_to_num(s, nan=vmin), vmin, vmax)  # (X, Y, Z, 3)
    grey = np.array([150, 150, 150], np.uint8)
    # bird's-eye view: the highest matching voxel of each column, else grey where occupied
    z_idx = np.arange(Z)[None, None, :]
    m, o = match.numpy(), occ.numpy()
    top_m = np.where(m, z_idx, -1).max(-1)
    bev = np.full((X, Y, 3), 250, np.uint8)
    bev[o.any(-1)] = grey
    xs, ys = np.nonzero(top_m >= 0)
    bev[xs, ys] = col[xs, ys, top_m[xs, ys]]
    bev = np.repeat(np.repeat(bev, 2, 0), 2, 1)  # row 0 = front (+x), column 0 = left (+y)
    # 3D view: similarity bins as classes of a palette, other occupied voxels grey
    bins = 16
    labels = np.full((X, Y, Z), bins + 1, np.uint8)
    labels[:, :, :2][o[:, :, :2]] = bins  # context: the occupied voxels of the two lowest layers (ground), grey
    idx = np.clip(((np.nan_to_num(s, nan=vmin) - vmin) / max(vmax - vmin, 1e-6) * bins).astype(np.int64), 0, bins - 1)
    labels[m] = idx[m]
    palette = [
        tuple(int(v) for v in colormap(np.array([vmin + (i + 0.5) * (vmax - vmin) / bins]), vmin, vmax)[0])
        for i in range(bins)
    ]
    palette += [(185, 185, 185), (0, 0, 0)]
    view = perspective_image(labels, palette=palette, grid=grid, width=400, height=400, free=bins + 1)
    # cameras: matches rendered into each view (first surface along each pixel's ray)
    N, _, H, W = images.shape
    imgs = images_uint8(images)
    density = torch.where(occ, torch.tensor(50.0), torch.tensor(0.0))
    values = torch.stack([match.float(), torch.nan_to_num(sim, nan=vmin).float()])  # (2, X, Y, Z)
    tiles = []
    for n in range(N):
        rays = camera_rays(intrinsics[n : n + 1].float(), T_ego_from_cam[n : n + 1].float(), H, W, stride=1)
        r = render_grid(density, grid, rays.origins, rays.dirs, values, mode="nearest", step=0.2, chunk=16384)
        hit = r.opacity.clamp(min=1e-6)
        is_match = (r.values[:, 0] / hit > 0.5) & (r.opacity > 0.5)
        sv = (r.values[:, 1] / hit).view(H, W).numpy()
        tile = imgs[n].astype(np.float32) * 0.55 + 0.45 * 255 * (imgs[n].mean(-1, keepdims=True) / 255)
        c = colormap(sv, vmin, vmax).astype(np.float32)
        mm = is_match.view(H, W).numpy()
        tile[mm] = 0.25 * imgs[n][mm] + 0.75 * c[mm]
        tiles.append(tile.clip(0, 255).astype(np.uint8))
    mosaic = camera_mosaic(np.stack(tiles), list(cam_names))
    top = hstack([titled(bev, "bird's-eye view (front up)"), titled(view, "3D view")], gap=8)
    lo, hi = round(vmin, 3), round(vmax, 3)
    bar = colorbar(lo, hi if hi > lo else lo + 0.001, width=240, unit="cos")
    body = vstack([top, bar, mosaic], gap=6)
    return titled(
        body, f'occkit query: "{text}" - matching voxels coloured by cosine similarity, other occupied voxels grey'
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from occkit.commands.checks import check_text
    from occkit.data.sample import collate
    from occkit.experiment import base_dataset, build_dataset, load_checkpoint_method
    from occkit.fileio import write_json_atomic
    from occkit.methods.langocc import LangOccMethod
    from occkit.outputs import check_output_file, record_output_file
    from occkit.viz.draw import save_png

    if not 0 < args.top <= 1:
        raise ValueError(f"--top: expected a fraction in (0, 1], got {args.top}")
    check_text(args.text)
    if args.min_sim is not None and not -1.0 <= args.min_sim <= 1.0:
        raise ValueError(f"--min-sim: a cosine similarity lies in [-1, 1], got {args.min_sim}")
    if args.occupied is not None and not 0.0 <= args.occupied <= 1.0:
        raise ValueError(f"--occupied: a probability lies in [0, 1], got {args.occupied}")
    check_output_file(args.out, {"--data": args.data}, command="query")
    if args.json is not None:
        check_output_file(args.json, {"--data": args.data}, what="--json", command="query")
    method, cfg, folder, device = load_checkpoint_method(args.ckpt, args.device)
    if not isinstance(method, LangOccMethod):
        raise ValueError(f"--ckpt {folder}: a {cfg.method!r} run; occkit query needs a langocc run")
    cfg.data.priors, cfg.data.prior_kinds = None, ()
    ds = build_dataset(cfg, args.data, "all", load_gt=False)
    base = base_dataset(ds)
    try:
        i = base.index_of(args.token)
    except (KeyError, ValueError) as e:
        raise ValueError(f"--token {args.token}: not a frame of {args.data}") from e
    sample = ds[i]
    batch = collate([sample]).to(device)
    occ, sim = similarity_grid(method, batch, args.text, args.occupied)
    if not bool(occ.any()):
        raise ValueError(
            f"frame {args.token}: no voxel is occupied at the threshold {args.occupied or method.threshold():.2f} "
            "(--occupied)"
        )
    vals = sim[occ]
    thr = args.min_sim if args.min_sim is not None else float(torch.quantile(vals, 1 - args.top))
    match = occ & (torch.nan_to_num(sim, nan=-2) >= thr)
    vmin, vmax = float(vals.min()), float(vals.max())
    if vmax - vmin < 1e-3:
        vmax = vmin + 1e-3
    pic = query_picture(
        sample.images,
        sample.intrinsics,
        sample.T_ego_from_cam,
        sample.cam_names,
        method.grid,
        occ,
        sim,
        match,
        args.text,
        vmin,
        vmax,
    )
    save_png(args.out, pic)
    record_output_file(args.out, "query")
    print(
        f'occkit query: "{args.text}" in {args.token}: {int(match.sum())} of {int(occ.sum())} occupied voxels match '
        f"(cosine >= {thr:.3f}; range {vmin:.3f} .. {vmax:.3f}); picture {args.out}"
    )
    if args.json is not None:
        idx = match.nonzero()
        write_json_atomic(
            args.json,
            {
                "text": args.text,
                "token": args.token,
                "threshold": thr,
                "voxels": idx.tolist(),
                "similarity": sim[match].tolist(),
            },
        )
    return 0
