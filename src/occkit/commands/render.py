"""``occkit render``: volume-render an occupancy grid into a frame's camera views.

The grid is the frame's ground truth (``--data DIR --token T``, a dataset of any format: its
reader, class table, palette and grid come from the format), a predicted label grid (``--pred
FILE``: a ``.npz`` with ``semantics`` (an Occ3D submission), a ``.npy``, or a prediction file of the
format's own layout) or a checkpoint's logits (``--ckpt``). Writes into ``--out``:

- ``<CAM>_depth.npy``: ``(H, W)`` float32 camera z-depth in metres (0 = no surface in the grid);
- ``<CAM>_semantics.npy``: ``(H, W)`` uint8 class ids of the format's table (its free id, Occ3D's
  17, SurroundOcc's 0, = no surface in the grid);
- ``render.png``: each camera image beside its rendered semantics and depth.

Label grids render as a hard density (exact surfaces); logits as ``sigma = -log p(free) / voxel``
(see :mod:`occkit.rendering`).

``--teacher`` (with ``--ckpt`` of a ``radocc`` run) renders the frozen teacher's logits as well and
writes ``compare.png`` instead: per camera (``--cameras``), the image, then the ground truth's,
the teacher's and the student's rendered semantics, and below them their rendered depths (the
teacher's maps also as ``<CAM>_teacher_depth.npy`` / ``_teacher_semantics.npy``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from occkit.commands.checks import holding_outputs, positive_float, positive_int
from occkit.commands.options import add_cameras, add_ckpt, add_data, add_device, add_out


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data(p, "dataset root (any format: Occ3D's annotations.json, SurroundOcc, ...): cameras, ground truth")
    p.add_argument("--token", required=True, help="the frame to render")
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--pred", type=Path, help="predicted labels: <token>.npz with 'semantics' (X, Y, Z) uint8, or a .npy"
    )
    add_ckpt(src, "checkpoint folder or run folder: render the method's logits", required=False)
    add_out(p, "output folder")
    p.add_argument(
        "--stride", type=positive_int, default=1, help="render every N-th pixel (maps are (H/N, W/N); default 1)"
    )
    p.add_argument("--step", type=positive_float, default=None, help="metres between samples (default half a voxel)")
    add_device(p)
    p.add_argument("--no-picture", action="store_true", help="write the .npy maps only")
    p.add_argument(
        "--teacher",
        action="store_true",
        help="with --ckpt of a radocc run: render its teacher too; compare.png = ground truth | teacher | student",
    )
    add_cameras(p, "drawn in compare.png")


def _load_pred(path: Path, shape: tuple[int, int, int], num_classes: int, fmt=None):

    from occkit.fileio import load_npz

    if path.suffix == ".npy" and fmt is not None:
        try:  # the format's own prediction file (SurroundOcc's dense .npy, ...), checked by its reader
            arr = fmt.predictions.read(path)
        except (ValueError, OSError):
            arr = None
        if arr is not None and arr.shape == shape:
            return _check_labels(path, arr, num_classes)
    if path.suffix == ".npz":
        arr = load_npz(path, keys=("semantics",))["semantics"]
    elif path.suffix == ".npy":
        from occkit.fileio import load_npy

        arr = load_npy(path)
    else:
        raise ValueError(f"{path}: expected a .npz (with 'semantics') or a .npy file")
    if arr.shape != shape:
        raise ValueError(f"{path}: labels have shape {arr.shape}, expected {shape}")
    return _check_labels(path, arr, num_classes)


def _check_labels(path: Path, arr, num_classes: int):
    import numpy as np

    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{path}: labels have dtype {arr.dtype}, expected integers")
    if arr.min(initial=0) < 0 or arr.max(initial=0) > num_classes - 1:
        raise ValueError(f"{path}: labels must lie in [0, {num_classes - 1}] (the data's classes)")
    return arr


def _save_views(out: Path, cameras: tuple[str, ...], maps: Any, prefix: str) -> tuple[Any, Any]:
    """Write each camera's ``<cam>_<prefix>depth.npy`` (float32) and ``<cam>_<prefix>semantics.npy``
    (uint8) of rendered ``maps`` (``depth``, ``semantics``: ``(N, H, W)`` tensors) into ``out``,
    atomically; returns the two ``(N, H, W)`` arrays."""
    import numpy as np

    from occkit.fileio import save_npy_atomic
    from occkit.outputs import path_under

    depth = maps.depth.cpu().numpy().astype(np.float32)
    sem = maps.semantics.cpu().numpy().astype(np.uint8)
    for i, cam in enumerate(cameras):
        save_npy_atomic(path_under(out, f"{cam}_{prefix}depth.npy", what=f"camera {cam!r}"), depth[i])
        save_npy_atomic(path_under(out, f"{cam}_{prefix}semantics.npy", what=f"camera {cam!r}"), sem[i])
    return depth, sem


@holding_outputs  # the output's lock, taken once --out is checked, released at the end
def run(args: argparse.Namespace, held: Any) -> int:
    """Check the arguments and the frame, take ``--out``, render, then write the maps and the picture."""
    fmt = _format_of(args)
    ds = fmt.open_split(args.data, "all", load_gt=args.pred is None and args.ckpt is None, load_extras=False)
    sample = ds[ds.index_of(args.token)]
    written = _files_written(args, ds.cameras)  # refused before any rendering: a file of the user's is never replaced
    from occkit.locks import locked_output

    held.enter_context(locked_output(args.out, "render"))  # a second writer of --out now is refused, naming this one
    written = _files_written(args, ds.cameras)  # again under the lock: what another writer left meanwhile counts
    rendered = (
        _render_checkpoint(args, fmt, ds, sample) if args.ckpt is not None else _render_labels(args, fmt, ds, sample)
    )
    depth = _write_outputs(args, fmt, ds, sample, rendered)
    from occkit.outputs import record_output_file

    for path in written:
        if path.is_file():
            record_output_file(path, "render")
    hit = (depth > 0).mean()
    print(
        f"occkit render: {rendered.source} of frame {args.token} -> {args.out} ({sample.images.shape[0]} cameras, "
        f"{depth.shape[1]}x{depth.shape[2]} maps, {100 * hit:.1f}% of pixels see a surface in the grid)"
    )
    return 0


def _format_of(args: argparse.Namespace) -> Any:
    """The data's format, after checking ``--stride`` and ``--step``; one without a free class is refused."""
    from occkit.formats import detect_format

    if args.stride < 1:
        raise ValueError(f"--stride must be >= 1, got {args.stride}")
    if args.step is not None and not args.step > 0:
        raise ValueError(f"--step must be > 0, got {args.step}")
    fmt = detect_format(args.data, option=None)
    if fmt.classes.free is None:
        raise ValueError(
            f"--data {args.data}: {fmt.display_name} (format {fmt.name}) has no free class, which render draws as "
            "'no surface'; it renders formats with one"
        )
    return fmt


@dataclass
class _Rendered:
    """The rendered views of a frame (:class:`~occkit.rendering.views.ViewMaps`) and what they show."""

    maps: Any
    source: str
    """What was rendered, in words (``ground truth``, ``prediction FILE``, ``checkpoint RUN``)."""
    teacher: Any = None
    """With ``--teacher``: the teacher's maps ..."""
    ground_truth: Any = None
    """... and the ground truth's, for compare.png."""


def _render_checkpoint(args: argparse.Namespace, fmt: Any, ds: Any, sample: Any) -> _Rendered:
    """``--ckpt``: the method's logits of the frame rendered (with ``--teacher``, its teacher's and the
    ground truth's as well)."""
    import torch

    from occkit.data.sample import collate
    from occkit.experiment import base_dataset, build_dataset, load_checkpoint_method
    from occkit.rendering.views import render_logits_views, render_occupancy_views

    table, grid = fmt.classes, ds.grid
    method, cfg, folder, device = load_checkpoint_method(args.ckpt, args.device)
    if tuple(cfg.data.cameras) != tuple(ds.cameras):
        raise ValueError(f"{folder}: the checkpoint uses cameras {cfg.data.cameras}, the render uses {ds.cameras}")
    mds = build_dataset(cfg, args.data, "all", load_gt=False)
    batch = collate([mds[base_dataset(mds).index_of(args.token)]]).to(device)
    with torch.no_grad():
        logits = method.predict(batch)[0].float()  # (C, X, Y, Z)
        if args.teacher:
            if not hasattr(method, "teacher_outputs"):
                raise ValueError(f"--teacher: {folder} is a {cfg.method} run, not a radocc run (no teacher)")
            if cfg.data.load_extras is False and cfg.data.lidar_infos is None and method.teacher.model.uses_lidar:
                raise ValueError(f"--teacher: {folder}'s data config loads no LiDAR for its LiDAR teacher")
            teacher_logits = method.teacher_outputs(batch).logits[0].float()
    if tuple(logits.shape[1:]) != grid.shape:
        raise ValueError(
            f"{folder}: the method predicts a {tuple(logits.shape[1:])} grid, the dataset's is {grid.shape}"
        )
    if logits.shape[0] != table.num_classes:
        raise ValueError(
            f"{folder}: the method predicts {logits.shape[0]} classes, {fmt.display_name} (format {fmt.name}) "
            f"has {table.num_classes}"
        )
    views = _camera_views(ds, sample, device)
    kw = dict(stride=args.stride, step=args.step)
    rendered = _Rendered(render_logits_views(logits, *views, free=table.free, **kw), f"checkpoint {folder}")
    if args.teacher:
        rendered.teacher = render_logits_views(teacher_logits, *views, free=table.free, **kw)
        gt_sample = fmt.open_split(args.data, "all", load_gt=True, load_extras=False)
        occ = gt_sample[gt_sample.index_of(args.token)].occupancy
        if occ is None:
            raise ValueError(f"{args.data}: frame {args.token} has no ground truth to compare with")
        rendered.ground_truth = render_occupancy_views(
            _known(occ, table).to(device), *views, free=table.free, num_classes=table.num_classes, **kw
        )
    return rendered


def _render_labels(args: argparse.Namespace, fmt: Any, ds: Any, sample: Any) -> _Rendered:
    """``--pred``'s label grid rendered, or without it the frame's ground truth."""
    import numpy as np
    import torch

    from occkit.rendering.views import render_occupancy_views

    table = fmt.classes
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    if args.pred is not None:
        occ = torch.from_numpy(_load_pred(args.pred, ds.grid.shape, table.num_classes, fmt).astype(np.int64))
        source = f"prediction {args.pred}"
    else:
        if sample.occupancy is None:
            raise ValueError(f"{args.data}: frame {args.token} has no ground truth")
        occ = _known(sample.occupancy, table)
        source = "ground truth"
    maps = render_occupancy_views(
        occ.to(device),
        *_camera_views(ds, sample, device),
        free=table.free,
        num_classes=table.num_classes,
        stride=args.stride,
        step=args.step,
    )
    return _Rendered(maps, source)


def _camera_views(ds: Any, sample: Any, device: Any) -> tuple[Any, ...]:
    """The render's grid and the frame's cameras: ``(grid, intrinsics, T_ego_from_cam, H, W)`` on ``device``."""
    _, _, H, W = sample.images.shape
    return ds.grid, sample.intrinsics.to(device), sample.T_ego_from_cam.to(device), H, W


def _write_outputs(args: argparse.Namespace, fmt: Any, ds: Any, sample: Any, rendered: _Rendered) -> Any:
    """Write the maps into ``--out`` and, unless ``--no-picture``, render.png (with ``--teacher``:
    the teacher's maps and compare.png); returns the depth maps ``(N, H, W)``."""
    import numpy as np

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    depth, sem = _save_views(out, ds.cameras, rendered.maps, "")
    if args.teacher:
        t_depth, t_sem = _save_views(out, ds.cameras, rendered.teacher, "teacher_")
        if not args.no_picture:
            cams = args.cameras.split(",") if args.cameras else list(ds.cameras)
            bad = [c for c in cams if c not in ds.cameras]
            if bad:
                raise ValueError(f"--cameras: {bad} are not cameras of {args.data} ({', '.join(ds.cameras)})")
            gt_maps = rendered.ground_truth
            gt = (gt_maps.depth.cpu().numpy().astype(np.float32), gt_maps.semantics.cpu().numpy().astype(np.uint8))
            _compare_picture(
                out / "compare.png",
                sample.images,
                [("ground truth", *gt), ("teacher", t_depth, t_sem), ("student", depth, sem)],
                [ds.cameras.index(c) for c in cams],
                list(cams),
                f"{rendered.source} (student) and its teacher",
                args.token,
                fmt.classes,
            )
    elif not args.no_picture:
        _picture(out / "render.png", sample.images, depth, sem, ds.cameras, rendered.source, args.token, fmt.classes)
    return depth


def _files_written(args: argparse.Namespace, cameras) -> list[Path]:
    """The files this render writes into ``--out``, each checked first: a file of that name is
    replaced only when an earlier ``occkit render`` wrote it and it is unchanged since."""
    from occkit.outputs import check_output_file

    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise FileExistsError(
            f"--out {out}: is a file; occkit render writes a folder of maps there: give a folder's path"
        )
    if args.teacher and args.cameras and not args.no_picture:
        bad = [c for c in args.cameras.split(",") if c not in cameras]
        if bad:
            raise ValueError(f"--cameras: {bad} are not cameras of {args.data} ({', '.join(cameras)})")
    names = [f"{cam}_{kind}.npy" for cam in cameras for kind in ("depth", "semantics")]
    if args.teacher:
        names += [f"{cam}_teacher_{kind}.npy" for cam in cameras for kind in ("depth", "semantics")]
    if not args.no_picture:
        names.append("compare.png" if args.teacher else "render.png")
    from occkit.outputs import path_under

    for cam in cameras:  # a camera name of the data that leads outside --out (absolute, ..): refused
        path_under(out, f"{cam}_depth.npy", what=f"--data {args.data}: camera {cam!r}")
    paths = [out / n for n in names]
    for p in paths:
        check_output_file(p, {"--data": args.data}, what="--out", command="render")
    return paths


def _default_table():
    from occkit.formats import default_format

    return default_format().classes


def _known(occ, table):
    """Labels with the ignored value (SurroundOcc's noise, 255) drawn as free: render draws surfaces."""
    import torch

    if table.ignore is None:
        return occ
    return torch.where(occ == table.ignore, torch.full_like(occ, table.free), occ)


def _picture(path: Path, images, depth, sem, cameras, source: str, token: str, table=None) -> None:
    """One row per camera: the image, the rendered semantics, the rendered depth; ``table`` the
    class table of the semantics (a format's ``classes``; None: Occ3D's)."""
    table = table if table is not None else _default_table()
    import numpy as np
    import torch

    from occkit.viz.draw import BACKGROUND, colorbar, colormap, hstack, resize, save_png, titled, vstack
    from occkit.viz.figure import class_legend, default_palette

    imgs = (images.permute(0, 2, 3, 1).clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
    H, W = imgs.shape[1:3]
    pal = np.asarray(table.palette, dtype=np.uint8) if table.palette else default_palette(table.num_classes)
    vmax = float(max(1.0, np.percentile(depth[depth > 0], 99))) if (depth > 0).any() else 1.0
    rows = []
    for i, cam in enumerate(cameras):
        s = pal[sem[i]]
        s[sem[i] == table.free] = BACKGROUND
        d = colormap(depth[i], 0.0, vmax)
        d[depth[i] <= 0] = BACKGROUND
        row = hstack([imgs[i], resize(s, W, H, nearest=True), resize(d, W, H, nearest=True)], gap=4)
        rows.append(titled(row, f"{cam}: image | rendered semantics | rendered depth"))
    fig = titled(vstack(rows, gap=6), f"{source}, frame {token}")
    fig = vstack(
        [fig, colorbar(0.0, vmax), class_legend(table.names, table.palette, table.free, sem, width=fig.shape[1])], gap=4
    )
    save_png(path, np.ascontiguousarray(fig))


def _compare_picture(
    path: Path, images, sources, cam_idx: list[int], cam_names: list[str], title: str, token: str, table=None
) -> None:
    """Per camera: the image and each source's rendered semantics on one row, their rendered depths
    on the next (one depth scale for all, from the first source)."""
    table = table if table is not None else _default_table()
    import numpy as np
    import torch

    from occkit.viz.draw import BACKGROUND, colorbar, colormap, hstack, resize, save_png, titled, vstack
    from occkit.viz.figure import class_legend, default_palette

    imgs = (images.permute(0, 2, 3, 1).clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
    H, W = imgs.shape[1:3]
    pal = np.asarray(table.palette, dtype=np.uint8) if table.palette else default_palette(table.num_classes)
    ref = sources[0][1]
    vmax = float(max(1.0, np.percentile(ref[ref > 0], 99))) if (ref > 0).any() else 1.0
    blank = np.full_like(imgs[0], BACKGROUND)
    rows = []
    for i, cam in zip(cam_idx, cam_names):
        sem_tiles, depth_tiles = [imgs[i]], [blank]
        for _, d, s in sources:
            c = pal[s[i]]
            c[s[i] == table.free] = BACKGROUND
            sem_tiles.append(resize(c, W, H, nearest=True))
            dm = colormap(d[i], 0.0, vmax)
            dm[d[i] <= 0] = BACKGROUND
            depth_tiles.append(resize(dm, W, H, nearest=True))
        names = " | ".join(n for n, _, _ in sources)
        rows.append(
            titled(
                vstack([hstack(sem_tiles, gap=4), hstack(depth_tiles, gap=4)], gap=4),
                f"{cam}: image | rendered semantics and depth of {names}",
            )
        )
    fig = titled(vstack(rows, gap=6), f"{title}, frame {token}")
    fig = vstack(
        [
            fig,
            colorbar(0.0, vmax),
            class_legend(table.names, table.palette, table.free, *(s for _, _, s in sources), width=fig.shape[1]),
        ],
        gap=4,
    )
    save_png(path, np.ascontiguousarray(fig))
