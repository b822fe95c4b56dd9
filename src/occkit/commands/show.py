"""``occkit show DIR --token T --out FILE.png``: a picture of one frame of a driving dataset of any
format (Occ3D, SurroundOcc, OpenOccupancy, ...: cameras with LiDAR points, occupancy in bird's-eye
view and 3D in the format's classes and palette), optionally with a prediction (a file or folder of
the format's prediction files) beside its ground truth; of a dataset of indoor scenes (a format
whose ``world`` is ``indoor``: NYUv2's layout, the indoor world), the image, its 2D classes and the
occupancy in 3D in the NYUv2 colours."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from occkit.commands.checks import positive_int
from occkit.commands.options import (
    MASKS,
    add_choice,
    add_device,
    add_mask_mode,
    add_out,
    add_pred,
    add_shown_split,
    keywords_of,
)

if TYPE_CHECKING:
    import numpy as np

    from occkit.formats import DatasetFormat

# numpy, torch and the dataset are imported when the command runs: building the parser
# (``occkit show --help``) imports neither (6.9 s on a busy 2-core machine with torch, 0.1 s without)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", type=Path, help="dataset folder, of any format (occkit finds which)")
    p.add_argument("--token", default=None, help="frame token (default: the first frame of the split)")
    add_out(
        p,
        "PNG to write (needed unless --list: occkit writes nothing where it was not told to; "
        "with it, a record .occkit-files.json beside the picture)",
        required=False,
    )
    add_shown_split(p, "which frames to look in")
    p.add_argument("--list", action="store_true", help="print the scenes and tokens of the split and exit")
    add_pred(
        p,
        "prediction: a folder of the data's format's prediction files (occkit predict's; Occ3D: <token>.npz with "
        "'semantics', uint8 X Y Z), or one such file",
    )
    p.add_argument(
        "--mask",
        default=None,
        choices=MASKS,
        help="visibility mask of the picture and the prediction's score (default: camera where the dataset has "
        "camera masks, as the official Occ3D metric scores; else none)",
    )
    add_mask_mode(p)
    add_choice(
        p,
        "--lidar-color",
        ("depth", "class", "none"),
        "depth",
        "colour of LiDAR points on the images: by depth, by class, or no points",
    )
    p.add_argument(
        "--panel-height",
        type=positive_int,
        default=400,
        help="height in pixels of the BEV and 3D panels (default: 400)",
    )
    add_device(p, "torch device for the 3D ray caster, e.g. cuda", default="cpu")


def default_mask(sample) -> str:
    """``--mask`` when none is given: the camera mask where the frame has one (what the official
    Occ3D metric and ``occkit demo``'s pictures score); the LiDAR mask where the camera mask is
    empty and the LiDAR mask is not (labels of a rig without cameras: docs/labels.md); else none."""
    if sample.mask_camera is not None and bool(sample.mask_camera.any()):
        return "camera"
    if sample.mask_camera is not None and sample.mask_lidar is not None and bool(sample.mask_lidar.any()):
        return "lidar"
    return "camera" if sample.mask_camera is not None else "none"


def mask_label(sample, mask: str, ignore: int | None) -> str | None:
    """What the picture calls the voxels of ``mask``: "labelled voxels" where the frame's mask is
    exactly the voxels whose label is known (a format with no visibility masks of its own, which
    fills ``mask_camera`` with its known voxels), else None (the mask's own name)."""
    m = {"camera": sample.mask_camera, "lidar": sample.mask_lidar}.get(mask)
    if m is None or sample.occupancy is None or ignore is None:
        return None
    return "labelled voxels" if bool((m.bool() == (sample.occupancy != ignore)).all()) else None


def run(args: argparse.Namespace) -> int:
    import torch

    from occkit.outputs import check_output_file, record_output_file
    from occkit.viz.draw import save_png
    from occkit.viz.figure import compose_frame_figure

    if not args.root.is_dir():
        raise FileNotFoundError(f"{args.root}: dataset folder not found")
    if str(args.device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: CUDA is not available here")
    if args.out is None and not args.list:
        raise ValueError(
            "--out F.png is needed: where to write the picture (e.g. --out show.png); "
            "--list prints the frames without one"
        )
    if args.panel_height < 16:
        raise ValueError(f"--panel-height must be at least 16, got {args.panel_height}")
    from occkit.commands.checks import default_split, images_where_recorded

    args.split = default_split(args.split, args.pred)
    fmt = _format_of_folder(args.root)
    if fmt.world == "indoor":
        return _run_indoor(args, fmt)
    if fmt.classes.free is None:
        raise ValueError(
            f"{args.root}: {fmt.display_name} (format {fmt.name}) has no free class, which show draws as empty space"
        )
    ds = images_where_recorded(fmt.open_split(args.root, args.split, load_extras=True))
    if args.list:
        _list_frames(ds)
        return 0
    if len(ds) == 0:
        raise ValueError(f"{args.root}: split '{args.split}' has no frames")
    token = args.token or ds.frames[0].token
    if token not in {f.token for f in ds.frames}:
        raise KeyError(f"token {token!r} is not in split '{args.split}' of the dataset {args.root} (see --list)")
    pred = None if args.pred is None else _format_prediction(fmt, args.pred, token, ds.grid.shape)
    sample = _frame(fmt, ds, args, token, with_pred=pred is not None)
    mask = args.mask or default_mask(sample)
    label = mask_label(sample, mask, fmt.classes.ignore)
    if sample.occupancy is not None and fmt.classes.ignore is not None:  # ignored voxels: not drawn
        known = sample.occupancy != fmt.classes.ignore
        sample.occupancy = sample.occupancy.where(known, torch.full_like(sample.occupancy, fmt.classes.free))
    # The ray caster is a loop of many small tensor ops: on a CPU, intra-op threads cost more
    # than they give (and stall badly on a busy machine), so cast with one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        image = compose_frame_figure(
            sample,
            pred=pred,
            mask=mask,
            **keywords_of(args, "mask_mode", "lidar_color", "panel_height", "device"),
            classes=fmt.classes,
            mask_label=label,
        )
    finally:
        torch.set_num_threads(threads)
    out = args.out
    check_output_file(out, {"DIR": args.root}, command="show")
    save_png(out, image)
    record_output_file(out, "show")
    print(f"wrote {out} ({image.shape[1]}x{image.shape[0]})")
    if sample.images is None or sample.images.numel() == 0:  # labels of a recording without cameras or images
        why = "the data record no camera" if not sample.cam_names else "the data record no camera images"
        print(f"frame {token}: {why}: the occupancy panels alone, no camera panel")
    if pred is not None and sample.occupancy is not None:
        from occkit.viz.figure import frame_scores

        vis = None if mask == "none" else sample.mask_camera if mask == "camera" else sample.mask_lidar
        sc = frame_scores(sample.occupancy.numpy(), pred, vis, fmt.classes.names, free=fmt.classes.free)
        where = f"{mask} mask" if vis is not None else "all voxels"
        print(f"frame {token}: mIoU {sc['miou']:.2f}, geometry IoU {sc['geometry_iou']:.2f} ({where})")
    return 0


def _format_of_folder(root: Path) -> DatasetFormat:
    """The format of the folder ``root``; the default format when none claims it (its reader then
    names what the folder lacks); two unrelated formats claiming it raise (never drawn as either)."""
    from occkit.formats import FormatRegistryError, default_format, detect_format
    from occkit.formats.registry import AmbiguousFormatError

    try:
        return detect_format(root, option=None)
    except AmbiguousFormatError:
        raise
    except FormatRegistryError:
        return default_format()


def _list_frames(ds) -> None:
    """``--list``: the scenes of the split, each with its frames' tokens."""
    scenes: dict[str, list[str]] = {}
    for f in ds.frames:
        scenes.setdefault(str(f.scene), []).append(str(f.token))
    for scene, tokens in scenes.items():
        print(f"{scene}: {len(tokens)} frames")
        for t in tokens:
            print(f"  {t}")


def _frame(fmt: DatasetFormat, ds, args: argparse.Namespace, token: str, with_pred: bool):
    """Frame ``token`` of ``ds``; beside a prediction, a frame whose labels are missing (e.g. a test
    split without them) is read without labels, to show the prediction alone."""
    try:
        return ds[ds.index_of(token)]
    except FileNotFoundError:
        if not with_pred:
            raise
    from occkit.commands.checks import images_where_recorded

    ds = images_where_recorded(fmt.open_split(args.root, args.split, load_gt=False, load_extras=True))
    return ds[ds.index_of(token)]


def _format_prediction(fmt: DatasetFormat, path: Path, token: str, shape: tuple[int, int, int]) -> np.ndarray:
    """Frame ``token``'s prediction in ``fmt``'s own prediction files: ``path`` a file or a folder of
    them (:attr:`DatasetFormat.predictions`); a missing or malformed file raises naming it."""
    import numpy as np

    if path.is_dir():
        found = fmt.predictions.index(path).get(token)
        if found is None:
            raise FileNotFoundError(
                f"{path}: prediction not found (no prediction of frame {token} in the folder: {fmt.name}'s files)"
            )
        path = found
    elif not path.is_file():
        raise FileNotFoundError(f"{path}: prediction not found (no such file)")
    sem = fmt.predictions.read(path)
    if sem.shape != tuple(shape):
        raise ValueError(f"{path}: prediction has shape {sem.shape}, expected {tuple(shape)}")
    n = fmt.classes.num_classes
    if sem.size and int(sem.max()) >= n:
        raise ValueError(f"{path}: prediction has classes outside [0, {n - 1}] ({fmt.name}'s): max {int(sem.max())}")
    return np.asarray(sem, dtype=np.uint8)


def _run_indoor(args: argparse.Namespace, fmt: DatasetFormat) -> int:
    """``occkit show`` on a dataset of indoor scenes (NYUv2's layout): one row (image, 2D classes,
    occupancy, prediction), its frames read through the format."""
    from occkit.outputs import check_output_file, record_output_file
    from occkit.viz.draw import save_png
    from occkit.viz.indoor import indoor_figure

    ds = fmt.open_split(args.root, args.split if args.split in fmt.splits else "all", load_extras=True)
    if args.list:
        for i in range(len(ds)):
            print(ds.token(i))
        return 0
    if len(ds) == 0:
        raise ValueError(f"{args.root}: split '{args.split}' has no frames")
    token = args.token or ds.token(0)
    sample = ds[ds.index_of(token)]
    pred = None
    if args.pred is not None:
        path = args.pred
        if path.is_dir():
            path = fmt.predictions.index(args.pred).get(token)
            if path is None:
                raise FileNotFoundError(f"{args.pred}: no prediction of frame {token} in the folder")
        pred = fmt.predictions.read(path)
    image = indoor_figure([sample], with_legend=True, preds=None if pred is None else [pred])
    out = args.out
    check_output_file(out, {"DIR": args.root}, command="show")
    save_png(out, image)
    record_output_file(out, "show")
    print(f"wrote {out} ({image.shape[1]}x{image.shape[0]})")
    return 0
