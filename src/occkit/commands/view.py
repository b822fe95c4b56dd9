"""``occkit view DATA [--pred PRED] [--ckpt RUN]``: a live 3D viewer in the browser (viser).

Voxels by class in the dataset format's palette (surface voxels only; the format's ignored voxels,
such as the unknown ones outside a NYUv2 room, left out), a frame slider, class toggles, ground
truth and prediction (either, side by side, or the prediction's errors coloured), camera
frustums with their images, the camera or LiDAR mask (outside voxels shown, hidden or dimmed),
LiDAR points. ``--ckpt`` of a run predicts the frames on the fly (when no ``--pred`` is given);
a ``langocc`` run adds a text box that colours the occupied voxels by their similarity to the
typed text (the ``occkit query`` machinery).

It serves on ``--host`` (default 127.0.0.1, this machine only) and ``--port`` and prints the
URL; a port in use is an error, never silently another port. ``--html FILE`` writes a
self-contained HTML file instead (viser's client with the frames recorded in it, one per second
on a time slider) that opens from disk without a Python server.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from occkit.commands.options import (
    DEVICE_HELP,
    add_choice,
    add_device,
    add_mask,
    add_mask_mode,
    add_pred,
    add_shown_split,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", type=Path, help="dataset folder, of any dataset format (occkit.formats)")
    add_pred(p, "prediction: a folder of <token>.npz submission files (one per frame shown), or one .npz")
    p.add_argument(
        "--ckpt",
        default=None,
        help="a run or checkpoint folder: predicts the frames when no --pred is given; a langocc run adds a text query",
    )
    add_shown_split(p, "which frames")
    p.add_argument("--scene", default=None, help="only the frames of this scene")
    p.add_argument("--token", default=None, help="start at this frame (default: the first)")
    p.add_argument(
        "--frames",
        type=int,
        default=None,
        help="at most this many frames from the start (default: all; 10 with --html)",
    )
    add_choice(
        p,
        "--view",
        ("ground truth", "prediction", "side by side", "errors"),
        None,
        "the first view (default: side by side with a prediction, else ground truth)",
    )
    add_mask(p, "visibility mask")
    add_mask_mode(p)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to serve on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)",
    )
    p.add_argument("--port", type=int, default=8080, help="port to serve on (default 8080; an error when it is in use)")
    p.add_argument(
        "--html",
        type=Path,
        default=None,
        help="write a self-contained HTML file of the frames (opens without a server) instead of serving",
    )
    p.add_argument(
        "--exit-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop serving after this many seconds (for scripts and tests; default: until Ctrl-C)",
    )
    add_device(p, f"device of --ckpt's network: {DEVICE_HELP}")


def _check_host(host: str) -> bool:
    """Whether ``host`` is a loopback address (``localhost`` included); ``ValueError`` for a
    name that is not an address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise ValueError(
            f"--host {host!r}: not an IP address (give e.g. 127.0.0.1, or 0.0.0.0 for every interface)"
        ) from None


class _CkptPredictor:
    """Predictions (and, for langocc, text similarities) of a run's network, frame by frame."""

    def __init__(self, ckpt: str, data: Path, split: str, device: str) -> None:
        from occkit.data.wrappers import base_dataset
        from occkit.experiment import build_dataset, load_checkpoint_method
        from occkit.methods.langocc import LangOccMethod

        self.method, cfg, self.folder, self.device = load_checkpoint_method(ckpt, device)
        if not hasattr(self.method, "predict"):
            raise ValueError(f"--ckpt {self.folder}: a {cfg.method!r} run, which predicts no occupancy grid")
        cfg.data.priors, cfg.data.prior_kinds = None, ()
        self.recipe = cfg.method
        self.dataset = build_dataset(cfg, data, split, load_gt=False)
        self.base = base_dataset(self.dataset)
        self.langocc = isinstance(self.method, LangOccMethod)
        self._text: dict[str, object] = {}
        self._feats: dict[str, tuple] = {}

    def _batch(self, token: str):
        from occkit.data.sample import collate

        return collate([self.dataset[self.base.index_of(token)]]).to(self.device)

    def predict(self, token: str):
        import numpy as np
        import torch

        with torch.no_grad():
            labels = self.method.predict(self._batch(token)).argmax(1)[0]  # (X, Y, Z)
        return labels.cpu().numpy().astype(np.uint8)

    def similarity(self, token: str, text: str, grid):
        """(centres ``(M, 3)``, cosine similarity ``(M,)``) of the frame's occupied voxels."""
        import torch

        from occkit.viz.viewer_scene import voxel_centres

        with torch.no_grad():
            if token not in self._feats:
                out = self.method.forward(self._batch(token))
                occ = self.method.p_occupied(out.logits)[0] >= self.method.threshold()  # (X, Y, Z)
                f = self.method.voxel_features(out.features[0], occ)  # (M, d)
                self._feats = {token: (voxel_centres(occ.nonzero().cpu().numpy(), grid), f)}
            if text not in self._text:
                self._text[text] = self.method.encode_text([text]).to(self.device)[0]  # (d,)
            centres, f = self._feats[token]
            sim = (f @ self._text[text].to(f.dtype)).float().cpu().numpy()
        return centres, sim


def run(args: argparse.Namespace) -> int:
    """Check the inputs, pick the frames shown and what is shown of them, then write ``--html`` or serve."""
    fmt, loopback = _check_inputs(args)
    shown = _frames_shown(args, fmt)
    load_prediction = _prediction_reader(args, fmt, shown)
    predictor = _checkpoint_predictor(args, shown)
    has_pred = load_prediction is not None or predictor is not None
    view = _view_of(args, shown, has_pred)

    from occkit.viz.viewer import FrameCache, ViewState
    from occkit.viz.viewer_scene import ClassStyle

    state = ViewState(view=view, mask=args.mask, mask_mode=args.mask_mode, style=ClassStyle.of(fmt.classes))
    frames = FrameCache(_frame_loader(shown, load_prediction, predictor, fmt.classes.ignore, state), len(shown.refs))
    if args.html is not None:
        return _write_html(args, frames, shown, state)
    query = None
    if predictor is not None and predictor.langocc:
        query = lambda i, text: predictor.similarity(shown.refs[i].token, text, shown.ds.grid)  # noqa: E731
    return _serve(args, frames, shown, state, has_pred, query, loopback)


def _check_inputs(args: argparse.Namespace) -> tuple[Any, bool]:
    """The data's format and whether ``--host`` is this machine only; what is wrong with the
    arguments (or a missing viser) raises first."""
    if not args.data.is_dir():
        raise FileNotFoundError(f"{args.data}: dataset folder not found")
    from occkit.formats import detect_format

    fmt = detect_format(args.data, option=None)  # a folder of no known format: one line listing the formats tried
    if args.frames is not None and args.frames < 1:
        raise ValueError(f"--frames must be at least 1, got {args.frames}")
    loopback = _check_host(args.host)
    if args.pred is not None and not args.pred.exists():
        raise FileNotFoundError(f"--pred {args.pred}: no such folder or file")
    try:
        import viser  # noqa: F401
    except ImportError as e:
        raise ValueError(f"needs viser ({e}): pip install 'occkit[view]'") from e
    return fmt, loopback


@dataclass
class _Shown:
    """The frames shown and the dataset they are read from."""

    ds: Any
    refs: list[Any]
    """The frames, in order."""
    start: int
    """The frame the viewer opens on."""
    has_gt: bool
    gt_missing: str
    """Why the frames have no ground truth (the error reading the first one's labels), or ""."""


def _frames_shown(args: argparse.Namespace, fmt: Any) -> _Shown:
    """The frames of ``--split`` (of ``--scene``; from ``--token``; ``--frames`` of them, 10 for
    ``--html``), read with their ground truth where the first has one."""
    from occkit.commands.checks import default_split, images_where_recorded

    args.split = default_split(args.split, args.pred)
    ds = images_where_recorded(fmt.open_split(args.data, args.split, load_extras=True))
    refs = [f for f in ds.frames if args.scene is None or f.scene == args.scene]
    if args.scene is not None and not refs:
        scenes = list(dict.fromkeys(f.scene for f in ds.frames))
        raise ValueError(
            f"--scene {args.scene}: not a scene of split '{args.split}' of {args.data} (scenes: "
            f"{', '.join(scenes[:8])}{', ...' if len(scenes) > 8 else ''})"
        )
    if not refs:
        raise ValueError(f"{args.data}: split '{args.split}' has no frames")
    start = 0
    if args.token is not None:
        tokens = [f.token for f in refs]
        if args.token not in tokens:
            raise ValueError(
                f"--token {args.token}: not a frame of split "
                f"'{args.split}'{' of scene ' + args.scene if args.scene else ''}"
            )
        start = tokens.index(args.token)
    limit = args.frames or (10 if args.html else None)
    if args.html is not None or limit is not None:
        refs = refs[start : start + limit] if limit else refs[start:]
        start = 0
    try:
        ds.frame_labels(ds.index_of(refs[0].token))
        has_gt, gt_missing = True, ""
    except FileNotFoundError as e:  # a test split without labels: predictions alone
        has_gt, gt_missing = False, str(e)
        ds = images_where_recorded(fmt.open_split(args.data, args.split, load_gt=False, load_extras=True))
    return _Shown(ds, refs, start, has_gt, gt_missing)


def _prediction_reader(args: argparse.Namespace, fmt: Any, shown: _Shown) -> Callable[[str], Any] | None:
    """``token -> labels`` from ``--pred`` (a folder of the format's prediction files, or one file
    for one frame), checked to cover the frames shown and read once for its grid; None without it."""
    if args.pred is None:
        return None
    refs, shape = shown.refs, shown.ds.grid.shape
    pred_files: dict[str, Path] = {}
    if args.pred.is_dir():
        pred_files = fmt.predictions.index(args.pred)
        missing = [f.token for f in refs if f.token not in pred_files]
        if missing:
            first = fmt.predictions.relpath(missing[0]) if fmt.predictions.relpath else missing[0]
            raise FileNotFoundError(
                f"--pred {args.pred}: no prediction for {len(missing)} of the {len(refs)} frames shown "
                f"(first: {first}); pick the frames it covers with --split, --scene or --token"
            )
    elif len(refs) > 1:
        raise ValueError(
            f"--pred {args.pred}: one file for {len(refs)} frames; give a folder of the format's prediction "
            "files, or one frame with --token T --frames 1"
        )

    def load_prediction(token: str) -> Any:
        path = pred_files[token] if args.pred.is_dir() else args.pred
        pred = fmt.predictions.read(path)
        if pred.shape != tuple(shape):
            raise ValueError(f"{path}: prediction has shape {pred.shape}, expected {tuple(shape)}")
        return pred

    load_prediction(refs[0].token)  # its grid, before anything starts
    return load_prediction


def _checkpoint_predictor(args: argparse.Namespace, shown: _Shown) -> _CkptPredictor | None:
    """The ``--ckpt`` run's network, checked to know the frames shown (and, with ``--pred``, to be
    a langocc run, which adds only its text query); None without it."""
    if args.ckpt is None:
        return None
    predictor = _CkptPredictor(args.ckpt, args.data, args.split, args.device)
    if args.pred is not None and not predictor.langocc:
        raise ValueError(
            f"--ckpt {predictor.folder}: a {predictor.recipe!r} run gives a prediction, and so does --pred; "
            "give one of them (a langocc run with --pred adds only its text query)"
        )
    known = set(predictor.base.tokens)
    missing = [f.token for f in shown.refs if f.token not in known]
    if missing:
        raise ValueError(f"--ckpt: frame {missing[0]} is not in the run's view of {args.data}")
    print(f"occkit view: predicting with the {predictor.recipe} run {predictor.folder} (each frame when first shown)")
    return predictor


def _view_of(args: argparse.Namespace, shown: _Shown, has_pred: bool) -> str:
    """``--view`` (by default side by side, else what there is), checked against what there is, as is ``--mask``."""
    has_gt = shown.has_gt
    if not has_gt and not has_pred:
        raise ValueError(f"{args.data}: its frames have no ground truth ({shown.gt_missing}); give --pred or --ckpt")
    view = args.view or ("side by side" if has_pred and has_gt else "ground truth" if has_gt else "prediction")
    if view != "ground truth" and not has_pred:
        raise ValueError(f"--view {view}: needs a prediction (--pred or --ckpt)")
    if view != "prediction" and not has_gt:
        raise ValueError(f"--view {view}: needs ground truth, and {args.data} has none")
    if args.mask != "none" and not has_gt:
        raise ValueError(f"--mask {args.mask}: the masks come with the ground truth, and {args.data} has none")
    return view


def _frame_loader(
    shown: _Shown,
    load_prediction: Callable[[str], Any] | None,
    predictor: _CkptPredictor | None,
    ignore: int | None,
    state: Any,
) -> Callable[[int], Any]:
    """``i -> FrameData`` of the ``i``-th frame shown: its sample, and the prediction of ``--pred``
    or of the run; the format's ignored class (unknown, unlabelled) is drawn as free."""
    import numpy as np

    from occkit.viz.cameras import images_uint8
    from occkit.viz.viewer_scene import FrameData

    ds, refs = shown.ds, shown.refs
    ignore = ignore if ignore is not None and 0 <= ignore < 256 else None

    def load(i: int) -> FrameData:
        ref = refs[i]
        s = ds[ds.index_of(ref.token)]
        pred = None
        if load_prediction is not None:
            pred = load_prediction(ref.token)
        elif predictor is not None:
            pred = predictor.predict(ref.token)
        as_u8 = lambda t: None if t is None else t.numpy().astype(np.uint8)
        gt = as_u8(s.occupancy)
        if gt is not None and ignore is not None:  # ignored voxels (unknown, unlabelled) are not drawn
            gt = np.where(gt == ignore, np.uint8(min(state.style.free, 255)), gt)
        images = images_uint8(s.images) if s.images.numel() else None
        return FrameData(
            token=ref.token,
            scene=ref.scene,
            gt=gt,
            pred=pred,
            mask_camera=None if s.mask_camera is None else s.mask_camera.numpy(),
            mask_lidar=None if s.mask_lidar is None else s.mask_lidar.numpy(),
            cam_names=tuple(s.cam_names),
            images=images,
            intrinsics=s.intrinsics.numpy(),
            T_ego_from_cam=s.T_ego_from_cam.numpy(),
            lidar=None if s.lidar is None else s.lidar.numpy(),
            lidar_labels=None if s.lidar_labels is None else s.lidar_labels.numpy(),
        )

    return load


def _write_html(args: argparse.Namespace, frames: Any, shown: _Shown, state: Any) -> int:
    """``--html``: every frame shown in one file that opens without a server."""
    from occkit.outputs import check_output_file, record_output_file
    from occkit.viz.viewer import write_html

    check_output_file(args.html, what="--html", command="view")
    t0 = time.perf_counter()
    size = write_html(args.html, [frames[i] for i in range(len(frames))], shown.ds.grid, state)
    record_output_file(args.html, "view")
    print(
        f"occkit view: wrote {args.html} ({size / 2**20:.1f} MiB, {len(shown.refs)} frame(s), view {state.view!r}) in "
        f"{time.perf_counter() - t0:.1f} s; open it in a browser (no server needed)"
    )
    return 0


def _serve(
    args: argparse.Namespace,
    frames: Any,
    shown: _Shown,
    state: Any,
    has_pred: bool,
    query: Callable | None,
    loopback: bool,
) -> int:
    """Serve the viewer on ``--host``/``--port`` until Ctrl-C (or ``--exit-after`` seconds)."""
    from occkit.viz.viewer import Viewer, start_server, stop_server

    server = start_server(args.host, args.port)
    try:
        Viewer(
            server,
            frames,
            shown.ds.grid,
            has_pred=has_pred,
            has_gt=shown.has_gt,
            query=query,
            state=state,
            start=shown.start,
        )
        host = "localhost" if args.host in ("127.0.0.1", "localhost") else args.host
        print(
            f"occkit view: {len(shown.refs)} frame(s) of {args.data} at http://{host}:{server.get_port()}"
            f"{'' if loopback else ' (reachable from the network)'}; Ctrl-C stops",
            flush=True,
        )
        t_end = None if args.exit_after is None else time.monotonic() + args.exit_after
        try:
            while t_end is None or time.monotonic() < t_end:
                time.sleep(0.2)
        except KeyboardInterrupt:
            print("occkit view: stopped", file=sys.stderr)
    finally:
        stop_server(server)
    return 0
