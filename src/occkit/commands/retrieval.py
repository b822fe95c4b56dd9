"""``occkit retrieval``: open-vocabulary retrieval mAP of a ``langocc`` run or of the lifted-2D baseline.

Each query of the query set (``--queries``, default ``configs/queries/synth.yaml``) ranks the
candidate points of every frame of ``--split`` by the cosine similarity of their 3D feature with
its text embedding (:mod:`occkit.metrics.retrieval`):

- ``--protocol voxels`` (default): the voxel centres the ground truth says are occupied, relevant
  when their instance (``extras/.../instances.npz``) has a fine name the query means; visible =
  inside the camera mask;
- ``--protocol points`` (POP-3D): the LiDAR points inside the grid, with the instance of their
  voxel (needs the LiDAR extras).

Features come from a checkpoint (``--ckpt RUN``: the language MLP at the points; the
geometry does not matter, the truth chooses the points) or, with ``--lifted``, straight from
the 2D features of a prior cache (``--priors``): each point the mean of the features at its
projections into the cameras (:func:`occkit.methods.langocc.lifted_features`), the baseline
without rendering. Prints mAP (seen / held-out names; all / visible points) and writes the
per-query APs to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from occkit.commands.checks import nonneg_int
from occkit.commands.options import add_choice, add_ckpt, add_data, add_device, add_out, add_split


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data(p, "dataset root with per-voxel instances (the synthetic world)")
    src = p.add_mutually_exclusive_group(required=True)
    add_ckpt(src, "a langocc checkpoint folder or run folder", required=False)
    src.add_argument("--lifted", action="store_true", help="the baseline: 2D features of --priors lifted into the grid")
    p.add_argument("--priors", type=Path, help="prior cache with features (for --lifted)")
    p.add_argument("--queries", type=Path, default=None, help="query set YAML (default: configs/queries/synth.yaml)")
    add_choice(p, "--protocol", ("voxels", "points"), "voxels", "candidates: occupied voxels or LiDAR points (POP-3D)")
    add_split(p, "split")
    p.add_argument("--max-frames", type=nonneg_int, default=0, help="at most this many frames, evenly spaced (0 = all)")
    add_out(p, "write the result JSON here", required=False)
    add_device(p)


def _features_fn(args: argparse.Namespace, queries):
    """(dataset, text embeddings (Q, d), fn(sample, points (P, 3)) -> (P, d), description)."""
    import torch

    from occkit.data.sample import collate
    from occkit.experiment import build_dataset, load_checkpoint_method
    from occkit.methods.langocc import LangOccMethod, lifted_features
    from occkit.priors.quality import load_class_vocabulary
    from occkit.priors.text import encode_prompts

    texts = [q.text for q in queries]
    if args.ckpt:
        method, cfg, folder, device = load_checkpoint_method(args.ckpt, args.device)
        if not isinstance(method, LangOccMethod):
            raise ValueError(f"--ckpt {folder}: a {cfg.method!r} run; retrieval needs a langocc run (or --lifted)")
        cfg.data.priors, cfg.data.prior_kinds = None, ()
        cfg.data.load_extras = args.protocol == "points"
        ds = build_dataset(cfg, args.data, args.split, load_gt=True)
        with torch.no_grad():
            text = method.encode_text(texts).to(device)

        @torch.no_grad()
        def feats(sample, points):
            batch = collate([sample]).to(device)
            field = method.feature_field(method.forward(batch).features[0])  # heads: latent or separate
            pts = points.to(device)
            return torch.cat(
                [field(pts[i : i + 65536]) for i in range(0, len(pts), 65536)] or [pts.new_zeros(0, text.shape[1])]
            )

        return ds, text, feats, f"langocc {folder}"
    if args.priors is None:
        raise ValueError("--lifted needs --priors (a prior cache with features)")
    from occkit.priors.cache import PriorCache, WithPriors

    cache = PriorCache(args.priors, kinds=["features"])
    base = served_format(args.data).open_split(
        args.data, args.split, cameras=cache.cameras, load_gt=True, load_extras=args.protocol == "points"
    )
    ds = WithPriors(base, cache)
    text = encode_prompts(cache.text_encoder(), texts, load_class_vocabulary()[2])

    def feats(sample, points):
        H, W = sample.images.shape[-2:] if sample.images.shape[-1] > 0 else cache.image_size
        f, _ = lifted_features(
            sample.prior_features,
            sample.intrinsics,
            sample.T_ego_from_cam,
            (int(H), int(W)),
            sample.prior_feature_stride,
            points,
        )
        return f

    return ds, text, feats, f"lifted 2D features of {args.priors}"


def served_format(data):
    """The format of ``data``, when retrieval can score it: its queries name the driving world's class
    ids (``classes:``; those of the format its 2D maps are drawn in, Occ3D's: ``WORLD_PRIOR_TABLES``)
    and it scores the per-voxel instance ids of the synthetic world, which only formats of that class
    table carry; any other is a one-line error naming the format."""
    from occkit.formats import detect_format, get_format
    from occkit.formats.spec import WORLD_PRIOR_TABLES

    fmt = detect_format(data, option=None)
    world = get_format(WORLD_PRIOR_TABLES["driving"])
    if tuple(fmt.classes.names) != tuple(world.classes.names):
        raise ValueError(
            f"--data {data}: {fmt.display_name} (format {fmt.name}); retrieval's queries name the class ids of "
            f"{world.display_name} and it scores the per-voxel instance ids the synthetic world carries in the "
            f"{world.display_name} layout (occkit synth --format {world.name}), which this format's frames do not"
        )
    return fmt


def run(args: argparse.Namespace) -> int:
    import torch

    from occkit.commands.summary import figure, frames_to_score, write_result
    from occkit.experiment import base_dataset
    from occkit.metrics.retrieval import RetrievalAccumulator, load_queries
    from occkit.outputs import check_output_file

    if args.max_frames < 0:
        raise ValueError(f"--max-frames: expected an integer >= 0 (0 = all), got {args.max_frames}")
    if args.out is not None:
        check_output_file(args.out, {"--data": args.data, "--priors": args.priors}, command="retrieval")
    free = served_format(args.data).classes.free
    queries = load_queries(args.queries)
    ds, text, feats, what = _features_fn(args, queries)
    base = base_dataset(ds)
    idx = frames_to_score(ds, args.data, args.split, args.max_frames)
    acc = RetrievalAccumulator(queries)
    grid = base.grid
    centres = grid.centers().reshape(-1, 3)
    for i in idx:
        s = ds[i]
        inst_np = base.read_instances(s.token)
        if inst_np is None:
            raise FileNotFoundError(
                f"{base.extras_dir(s.token)}: no instances.npz (retrieval needs per-voxel instance ids: the synthetic "
                "world)"
            )
        inst = torch.from_numpy(inst_np).long()
        names = base.instance_names(s.token)
        sem = s.occupancy.long()
        cam = s.mask_camera.bool()
        if args.protocol == "voxels":
            sel = (sem != free).reshape(-1)
            points = centres[sel]
            inst_p, sem_p, vis = inst.reshape(-1)[sel], sem.reshape(-1)[sel], cam.reshape(-1)[sel]
        else:
            if s.lidar is None:
                raise ValueError(f"frame {s.token}: no LiDAR points (--protocol points needs the LiDAR extras)")
            pts = s.lidar[:, :3].float()
            vi, inside = grid.point_to_index(pts)
            points, vi = pts[inside], vi[inside]
            inst_p, sem_p, vis = (t[vi[:, 0], vi[:, 1], vi[:, 2]] for t in (inst, sem, cam))
        f = feats(s, points).float().cpu()
        acc.add(f @ text.float().cpu().t(), inst_p, names, sem_p, vis)
    result = acc.compute()
    result.update({"features": what, "protocol": args.protocol, "split": args.split, "data": str(args.data)})
    for row in result["queries"]:
        ap = "  n/a" if row["ap_all"] is None else f"{row['ap_all']:5.1f}"
        apv = "  n/a" if row["ap_visible"] is None else f"{row['ap_visible']:5.1f}"
        print(
            f"  {row['text'][:40]:40s} {'held-out' if row['heldout'] else 'seen    '} AP {ap} (visible {apv})  "
            f"relevant {row['relevant_all']}"
        )
    print(
        f"occkit retrieval: {what}, {args.protocol}, {result['frames']} frames, "
        f"{result['queries_scored']}/{len(queries)} queries with relevant points"
    )
    print(
        f"  mAP all {figure(result['map_all'])} (seen {figure(result['map_seen_all'])}, held-out "
        f"{figure(result['map_heldout_all'])}); "
        f"visible {figure(result['map_visible'])} (seen {figure(result['map_seen_visible'])}, held-out "
        f"{figure(result['map_heldout_visible'])})"
    )
    return write_result(args.out, result, "retrieval")
