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
from occkit.commands.options import MASKS, add_choice, add_device, add_mask_mode, add_out, add_pred, add_shown_split

if TYPE_CHECKING:
    import numpy as np

    from occkit.formats import DatasetFormat

# numpy, torch and the dataset are imported when the command runs: building the parser
# (``occkit show --help``) imports neither (6.9 s on a busy 2-core machine with torch, 0.1 s without)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", type=Path, help="dataset folder (holds annotations.json)")
    p.add_argument("--token", default=None, help="frame token (default: the first frame of the split)")
    add_out(
        p,
        "PNG to write (needed unless --list: occkit writes nothing where it was not told to; "
        "with it, a record .occkit-files.json beside the picture)",
        required=False,
    )
    add_shown_split(p, "which frames to look in")
    p.add_argument("--list", action="store_true", help="print the scenes and tokens of the split and exit")
    add_pred(p, "prediction: a folder of <token>.npz submission files, or one .npz (key 'semantics', uint8 X Y Z)")
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


def load_prediction(path: Path, token: str, shape: tuple[int, int, int]) -> np.ndarray:
    """The predicted grid of ``token``: ``path`` is a ``<token>.npz`` file or a folder of them.

    Returns:
        ``(X, Y, Z)`` uint8 class ids. Raises naming the file for a missing or corrupt file, a
        missing ``semantics`` key, or a wrong shape / dtype / class range.
    """
    import numpy as np

    from occkit.fileio import load_npz

    f = path / f"{token}.npz" if path.is_dir() else path
    if not f.is_file():
        where = f"no file {f.name} in folder {path}" if path.is_dir() else "no such file"
        raise FileNotFoundError(f"{f}: prediction not found ({where})")
    z = load_npz(f)
    if "semantics" not in z:
        raise KeyError(f"{f}: missing array 'semantics' (has {sorted(z)})")
    sem = z["semantics"]
    if sem.shape != tuple(shape):
        raise ValueError(f"{f}: 'semantics' has shape {sem.shape}, expected {tuple(shape)}")
    if not np.issubdtype(sem.dtype, np.integer):
        raise ValueError(f"{f}: 'semantics' has dtype {sem.dtype}, expected integer class ids (uint8)")
    from occkit.formats import default_format

    top = default_format().classes.num_classes - 1  # the Occ3D layout's table (this reader's)
    if sem.size and (sem.min() < 0 or sem.max() > top):
        raise ValueError(f"{f}: 'semantics' has classes outside [0, {top}]: [{sem.min()}, {sem.max()}]")
    return sem.astype(np.uint8)


def default_mask(sample) -> str:
    """``--mask`` when none is given: the camera mask where the frame has one (what the official
    Occ3D metric and ``occkit demo``'s pictures score), else none."""
    return "camera" if sample.mask_camera is not None else "none"


def run(args: argparse.Namespace) -> int:
    import torch

    from occkit.data.occ3d import Occ3DDataset
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
    from occkit.commands.checks import default_split

    args.split = default_split(args.split, args.pred)
    from occkit.formats import FormatRegistryError, detect_format
    from occkit.formats.registry import AmbiguousFormatError

    try:
        fmt = detect_format(args.root)
    except AmbiguousFormatError:
        raise  # two layouts in one folder: never drawn as Occ3D's in silence
    except FormatRegistryError:
        fmt = None  # the Occ3D reader names what the folder lacks
    if fmt is not None and fmt.world == "indoor":
        return _run_indoor(args, fmt)
    from occkit.formats import default_format

    own = fmt is not None and fmt.name != default_format().name  # a format of its own files, classes, palette
    if own and fmt.classes.free is None:
        raise ValueError(
            f"{args.root}: {fmt.display_name} (format {fmt.name}) has no free class, which show draws as empty space"
        )
    ds = fmt.open_split(args.root, args.split, load_extras=True) if own else Occ3DDataset(args.root, split=args.split)
    if args.list:
        scenes: dict[str, list[str]] = {}
        for f in ds.frames:
            scenes.setdefault(str(f.scene), []).append(str(f.token))
        for scene, tokens in scenes.items():
            print(f"{scene}: {len(tokens)} frames")
            for t in tokens:
                print(f"  {t}")
        return 0
    if len(ds) == 0:
        raise ValueError(f"{args.root}: split '{args.split}' has no frames")
    token = args.token or ds.frames[0].token
    if token not in {f.token for f in ds.frames}:
        raise KeyError(f"token {token!r} is not in split '{args.split}' of the dataset {args.root} (see --list)")
    pred = None
    if args.pred is not None and own:
        pred = _format_prediction(fmt, args.pred, token, ds.grid.shape)
    elif args.pred is not None:
        pred = load_prediction(args.pred, token, ds.grid.shape)
        if not ds.gt_path(token).is_file():  # e.g. a test split without labels: the prediction alone
            ds = Occ3DDataset(args.root, split=args.split, load_gt=False)
    sample = ds[ds.index_of(token)]
    if own and sample.occupancy is not None and fmt.classes.ignore is not None:  # ignored voxels: not drawn
        known = sample.occupancy != fmt.classes.ignore
        sample.occupancy = sample.occupancy.where(known, torch.full_like(sample.occupancy, fmt.classes.free))
    mask = args.mask or default_mask(sample)
    # The ray caster is a loop of many small tensor ops: on a CPU, intra-op threads cost more
    # than they give (and stall badly on a busy machine), so cast with one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        image = compose_frame_figure(
            sample,
            pred=pred,
            mask=mask,
            mask_mode=args.mask_mode,
            lidar_color=args.lidar_color,
            panel_height=args.panel_height,
            device=args.device,
            classes=fmt.classes if own else None,
        )
    finally:
        torch.set_num_threads(threads)
    out = args.out
    check_output_file(out, {"DIR": args.root}, command="show")
    save_png(out, image)
    record_output_file(out, "show")
    print(f"wrote {out} ({image.shape[1]}x{image.shape[0]})")
    if pred is not None and sample.occupancy is not None:
        from occkit.viz.figure import frame_scores

        vis = None if mask == "none" else sample.mask_camera if mask == "camera" else sample.mask_lidar
        table = fmt.classes if own else None
        sc = (
            frame_scores(sample.occupancy.numpy(), pred, vis, table.names, table.free)
            if table is not None
            else frame_scores(sample.occupancy.numpy(), pred, vis)
        )
        where = f"{mask} mask" if vis is not None else "all voxels"
        print(f"frame {token}: mIoU {sc['miou']:.2f}, geometry IoU {sc['geometry_iou']:.2f} ({where})")
    return 0


def _format_prediction(fmt: DatasetFormat, path: Path, token: str, shape: tuple[int, int, int]) -> np.ndarray:
    """Frame ``token``'s prediction in ``fmt``'s own prediction files: ``path`` a file or a folder of
    them (:attr:`DatasetFormat.predictions`); a missing or malformed file raises naming it."""
    import numpy as np

    if path.is_dir():
        found = fmt.predictions.index(path).get(token)
        if found is None:
            raise FileNotFoundError(f"{path}: no prediction of frame {token} in the folder ({fmt.name}'s files)")
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
