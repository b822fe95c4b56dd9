"""ONNX export of a run's camera network, and its parity with PyTorch under onnxruntime.

The exported graph is :class:`OccPredictor`: the recipe's network and the labels its ``predict``
gives, nothing else (no data loading, no resizing)::

    images          (B, N, 3, H, W) float32 in [0, 1]
    intrinsics      (B, N, 3, 3)    float32, of these images
    T_ego_from_cam  (B, N, 4, 4)    float32, camera (OpenCV) -> ego
      -> logits     (B, C, X, Y, Z) float32, the network's class logits (render_sup: free logit
                                    offset by its learnt bias, as its ``forward`` gives them)
      -> labels     (B, X, Y, Z)    uint8, the classes the recipe's ``predict`` gives (argmax of
                                    the logits; render_sup: free where p(occupied) is below its
                                    threshold, else the best non-free class)

B is 1 unless exported with a dynamic batch; N, H and W are fixed at export. The geometry (the
LSS frustum, the voxel-centre projections) is computed in the graph from the intrinsics and poses,
in float32, so one export serves any camera rig of N cameras at that image size.

Exportable recipes (their prediction is the camera network): ``supervised``, ``render_sup``,
``radocc`` (its camera student; the LiDAR teacher is not needed), ``easyocc``, ``cigocc``.
Refused, with the reason (:func:`unexportable_reason`): LiDAR and fusion networks, a lift that
reads sensor depth, ``langocc`` and ``occscene``.

Exporters: the ``torch.export``-based exporter (``torch.onnx.export(dynamo=True)``) first, the
TorchScript-based one when it fails; which one wrote the file is recorded in the model's
``metadata_props`` with the checkpoint, its SHA-256, the recipe, grid, classes and image size.
Two model parts have an export path (eager PyTorch is unchanged): the sampling lift's pose
inverse (ONNX has no matrix inverse: :func:`occkit.models.lift.invert_poses`) and, under the
TorchScript exporter only, the LSS splat's scatter (``occkit.models.lift._scatter_sum``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from occkit.data.sample import Batch

INPUT_NAMES: tuple[str, ...] = ("images", "intrinsics", "T_ego_from_cam")
OUTPUT_NAMES: tuple[str, ...] = ("logits", "labels")
#: GridSample (the sampling lift) and the summing ScatterND / ScatterElements (the LSS splat).
MIN_OPSET = 16
EXPORTERS: tuple[str, ...] = ("auto", "dynamo", "torchscript")


def exportable_methods() -> tuple[str, ...]:
    """The registered methods whose runs export (their prediction is the camera network's output)."""
    from occkit.methods.registry import registry

    return tuple(name for name, spec in registry().items() if spec.export is not None)


def unexportable_reason(cfg: Any) -> str | None:
    """Why the run of ``cfg`` (an :class:`occkit.experiment.ExperimentConfig`) cannot be exported,
    in one sentence, or None when it can. The method's registry entry says whether and why not."""
    from occkit.methods.registry import get_method

    spec = get_method(cfg.method)
    ok = ", ".join(exportable_methods())
    if spec.export is None:
        return f"a {cfg.method} run is not exported: {spec.export_refused} (exported: {ok})"
    if cfg.model.modality != "camera":
        return (
            f"model.modality is {cfg.model.modality!r}: the network reads LiDAR points (a list of a varying number "
            "per frame), and the exported graph takes the camera inputs only (images, intrinsics, T_ego_from_cam)"
        )
    reason = spec.export.check(cfg)
    if reason is not None:
        return reason
    if cfg.model.num_classes > 256:
        return f"model.num_classes is {cfg.model.num_classes}: the uint8 labels output holds at most 256 classes"
    return None


# ------------------------------------------------------------------------------------------ loading
@dataclass
class ExportSource:
    """A loaded run to export.

    Attributes:
        method: the recipe (radocc: its camera student, a ``SupervisedMethod``), CPU, eval mode.
        cfg: its :class:`occkit.experiment.ExperimentConfig`.
        folder: the checkpoint folder.
        weights: the weights file loaded (``ema.safetensors`` or ``model.safetensors``).
        sha256: that file's SHA-256, from the checkpoint's ``checksums.json`` (verified on loading)
            or computed when the checkpoint predates checksums (``sha256_recorded`` False).
    """

    method: nn.Module
    cfg: Any
    folder: Path
    weights: Path
    sha256: str
    sha256_recorded: bool


def load_source(ckpt: str | os.PathLike, ema: bool = True) -> ExportSource:
    """The run at ``ckpt`` (checkpoint folder, run folder or weights file), refused in one line
    when it cannot be exported (:func:`unexportable_reason`) before anything is built.

    A run is loaded by :func:`occkit.experiment.load_checkpoint_method`, unless its method's
    export support loads it itself (``ExportSupport.load``: a radocc run is its camera student,
    built without loading the teacher run its config names).
    """
    from occkit.engine.checkpoint import (
        CHECKSUM_FILE,
        CONFIG_FILE,
        file_sha256,
        load_config_dict,
        resolve_checkpoint,
        weights_file,
    )
    from occkit.experiment import experiment_from_dict, load_checkpoint_method
    from occkit.fileio import read_json
    from occkit.methods.registry import get_method

    folder = resolve_checkpoint(ckpt)
    cfg = experiment_from_dict(load_config_dict(folder), where=str(folder / CONFIG_FILE))
    reason = unexportable_reason(cfg)
    if reason is not None:
        raise ValueError(f"{folder}: {reason}")
    weights = weights_file(folder, ema)
    load = get_method(cfg.method).export.load
    if load is not None:
        method = load(cfg, weights)
    else:
        method, cfg, folder, _ = load_checkpoint_method(folder, "cpu", ema=ema)
    sums = folder / CHECKSUM_FILE
    record = read_json(sums) if sums.is_file() else {}
    recorded = isinstance(record, dict) and isinstance(record.get(weights.name), str)
    sha = record[weights.name] if recorded else file_sha256(weights)
    return ExportSource(method.eval(), cfg, folder, weights, sha, recorded)


# ------------------------------------------------------------------------------------------ the graph
class OccPredictor(nn.Module):
    """What is exported: a recipe's network, its logits and the labels its ``predict`` gives.

    Args:
        method: a loaded exportable recipe (see :func:`exportable_methods`) in eval mode; its
            network is shared, not copied.
        recipe: its name (``cfg.method``).

    ``forward(images (B, N, 3, H, W), intrinsics (B, N, 3, 3), T_ego_from_cam (B, N, 4, 4))``
    returns ``logits (B, C, X, Y, Z)`` float32 and ``labels (B, X, Y, Z)`` uint8.
    """

    def __init__(self, method: nn.Module, recipe: str) -> None:
        super().__init__()
        from occkit.methods.registry import get_method

        spec = get_method(recipe)
        if spec.export is None:
            raise ValueError(f"recipe: {recipe!r} is not exported ({', '.join(exportable_methods())})")
        head = spec.export.head(method)
        self.recipe = recipe
        self.net = head.net
        self.output_index = head.output_index
        self.num_classes = int(method.model_cfg.num_classes)
        self.backbone_name = str(method.model_cfg.backbone)
        self.threshold = float(head.threshold)
        self.free = int(head.free)
        self.free_bias: nn.Parameter | None = head.free_bias
        if self.free_bias is not None:
            self.register_buffer(
                "free_onehot", F.one_hot(torch.tensor(self.free), self.num_classes).float(), persistent=False
            )

    def forward(
        self, images: torch.Tensor, intrinsics: torch.Tensor, T_ego_from_cam: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(images, intrinsics, T_ego_from_cam)
        logits = (out if self.output_index is None else out[self.output_index]).logits  # (B, C, X, Y, Z)
        if self.free_bias is not None:  # the method's forward adds it (render_sup)
            logits = logits + (self.free_bias * self.free_onehot.to(logits)).view(1, -1, 1, 1, 1)
        return logits, self.labels(logits)

    def labels(self, logits: torch.Tensor) -> torch.Tensor:
        """``(B, X, Y, Z)`` uint8: the argmax of what the recipe's ``predict`` scores."""
        if self.threshold <= 0:
            return logits.argmax(1).to(torch.uint8)
        # a calibrated predict (render_sup's): free where p(occupied) < tau, else the best class given occupied
        f = self.free
        log_p = torch.log_softmax(logits.float(), 1)
        occupied = -torch.expm1(log_p[:, f]) >= self.threshold  # (B, X, Y, Z)
        others = torch.cat([logits[:, :f], logits[:, f + 1 :]], 1).float()  # (B, C-1, X, Y, Z)
        best = torch.log_softmax(others, 1).argmax(1)
        best = best + (best >= f).to(best.dtype)  # back to class ids
        return torch.where(occupied, best, torch.full_like(best, f)).to(torch.uint8)


def largest_stride(predictor: OccPredictor) -> int:
    """The largest stride of the network's backbone: input sizes must be multiples of it."""
    return int(predictor.net.backbone.strides[-1])


def check_image_size(predictor: OccPredictor, image_hw: tuple[int, int], what: str = "--image-size") -> None:
    """Refuse (``ValueError`` naming ``what``) an input size the network cannot take."""
    H, W = (int(v) for v in image_hw)
    s = largest_stride(predictor)
    if H <= 0 or W <= 0 or H % s or W % s:
        near = (max(s, round(H / s) * s), max(s, round(W / s) * s))
        raise ValueError(
            f"{what} {H} {W}: H and W must be positive multiples of {s}, the largest stride of the backbone "
            f"{predictor.backbone_name} (nearest: {near[0]} {near[1]})"
        )


# ------------------------------------------------------------------------------------------ inputs
def random_frames(num: int, cam_names: tuple[str, ...], image_hw: tuple[int, int], seed: int = 0) -> list[Batch]:
    """``num`` one-frame batches of random images seen by a plausible rig: ``len(cam_names)``
    level cameras 1.5 m above the ground, evenly spaced in yaw, 90 degrees of horizontal view.
    For tracing and for a parity check without data (the geometry puts the frustum points in
    the grid, so the splat and the samples carry real work)."""
    from occkit.geometry.transforms import make_transform, rotation_z

    H, W = image_hw
    N = len(cam_names)
    g = torch.Generator().manual_seed(seed)
    R0 = torch.tensor(
        [[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]
    )  # camera (x right, y down, z forward) -> ego
    R = rotation_z(torch.arange(N) * (2 * math.pi / N), dtype=torch.float32) @ R0  # (N, 3, 3)
    T = make_transform(R, torch.tensor([0.0, 0.0, 1.5]).expand(N, 3))[None]  # (1, N, 4, 4)
    f = W / 2.0
    K = torch.tensor([[f, 0.0, W / 2.0], [0.0, f, H / 2.0], [0.0, 0.0, 1.0]]).expand(1, N, 3, 3).clone()
    out = []
    for i in range(num):
        out.append(
            Batch(
                tokens=[f"random_{i}"],
                scenes=["random"],
                timestamps=[i],
                cam_names=tuple(cam_names),
                images=torch.rand(1, N, 3, H, W, generator=g),
                intrinsics=K.clone(),
                T_ego_from_cam=T.clone(),
                T_global_from_ego=torch.eye(4, dtype=torch.float64)[None],
            )
        )
    return out


def dataset_frames(cfg: Any, root: str | os.PathLike, num: int, image_hw: tuple[int, int]) -> tuple[list[Batch], str]:
    """``num`` validation frames of the dataset at ``root`` (evenly spaced over ``cfg.data.val_split``),
    each a one-frame batch at ``image_hw`` (the evaluation resize/crop at that size). Returns the
    batches and the split."""
    import copy

    from occkit.data.sample import collate
    from occkit.experiment import build_dataset

    c = copy.deepcopy(cfg)
    c.data.image_aug.out_hw = (int(image_hw[0]), int(image_hw[1]))
    split = c.data.val_split
    ds = build_dataset(c, root, split, load_gt=False)
    if len(ds) == 0:
        raise ValueError(f"--check-data {root}: split '{split}' has no frames")
    n = min(num, len(ds))
    idx = sorted({round(i * (len(ds) - 1) / max(1, n - 1)) for i in range(n)})
    return [collate([ds[i]]) for i in idx], split


# ------------------------------------------------------------------------------------------ export
@dataclass
class ExportResult:
    """How the file was made: ``exporter`` ('dynamo' or 'torchscript'), ``opset``, ``seconds``,
    ``bytes``, and ``fallback`` (why the dynamo exporter failed, when the TorchScript one was used)."""

    exporter: str
    opset: int
    seconds: float
    bytes: int
    fallback: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def _first_line(e: BaseException, limit: int = 240) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    # the exporters' errors start with a generic banner; the cause is named further down
    cause = next((ln for ln in lines if "No ONNX function" in ln or "Unsupported" in ln or "unrecognized" in ln), None)
    text = f"{type(e).__name__}: {cause or (lines[0] if lines else '')}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def _no_channels_last(module: nn.Module):
    """Leave out the 3D path's channels-last layout (``model.channels_last``) while exporting: a
    memory layout is no part of an ONNX graph (the runtime picks its own), and the TorchScript
    exporter refuses the ``contiguous(memory_format=...)`` that asks for it. Values are the same."""
    flags = ("channels_last", "image_channels_last")  # the 3D path's and the image path's (model.image_channels_last)
    nets = [(m, a) for m in module.modules() for a in flags if getattr(m, a, False) is True]
    for m, a in nets:
        setattr(m, a, False)
    try:
        yield
    finally:
        for m, a in nets:
            setattr(m, a, True)


def _export_once(
    predictor: OccPredictor,
    example: tuple[torch.Tensor, ...],
    path: Path,
    exporter: str,
    opset: int | None,
    dynamic_batch: bool,
) -> None:
    kw: dict[str, Any] = dict(
        input_names=list(INPUT_NAMES),
        output_names=list(OUTPUT_NAMES),
        opset_version=opset,
        external_data=False,
        verbose=False,
    )
    if exporter == "dynamo":
        if dynamic_batch:
            batch = torch.export.Dim("batch", min=1, max=4096)
            kw["dynamic_shapes"] = {name: {0: batch} for name in INPUT_NAMES}
        torch.onnx.export(predictor, example, str(path), dynamo=True, **kw)
    else:
        if dynamic_batch:
            kw["dynamic_axes"] = {name: {0: "batch"} for name in (*INPUT_NAMES, *OUTPUT_NAMES)}
        torch.onnx.export(predictor, example, str(path), dynamo=False, **kw)


def export_onnx(
    predictor: OccPredictor,
    example: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    path: str | os.PathLike,
    *,
    opset: int | None = None,
    dynamic_batch: bool = False,
    exporter: str = "auto",
    metadata: dict[str, Any] | None = None,
) -> ExportResult:
    """Export ``predictor`` traced on ``example`` (images, intrinsics, T_ego_from_cam) to ``path``
    (written atomically: a temporary file, then renamed; one file, weights inside).

    Args:
        opset: ONNX opset (None: the exporter's default); at least :data:`MIN_OPSET`.
        dynamic_batch: the batch axis of inputs and outputs left free (else fixed to the example's).
        exporter: 'auto' (dynamo, then TorchScript when it fails), 'dynamo' or 'torchscript'.
        metadata: recorded in the model's ``metadata_props`` (values JSON-encoded unless strings),
            with ``exporter``, ``opset``, ``torch_version`` (and ``dynamo_error`` after a fallback) added.
    Returns:
        :class:`ExportResult`. Raises ``ValueError`` naming each exporter's failure when none works.
    """
    import onnx

    from occkit.fileio import disk_nearly_full, write_bytes_atomic

    if exporter not in EXPORTERS:
        raise ValueError(f"--exporter: expected one of {EXPORTERS}, got {exporter!r}")
    if opset is not None and opset < MIN_OPSET:
        raise ValueError(f"--opset {opset}: the graph needs opset >= {MIN_OPSET} (GridSample, summing scatters)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    order = ("dynamo", "torchscript") if exporter == "auto" else (exporter,)
    errors: dict[str, str] = {}
    t0 = time.perf_counter()
    predictor = predictor.eval()
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
        raw = Path(tmp) / "model.onnx"
        used = None
        for name in order:
            try:
                with warnings.catch_warnings(), torch.no_grad(), _no_channels_last(predictor):
                    warnings.simplefilter("ignore")  # tracer and deprecation chatter; failures raise
                    _export_once(predictor, example, raw, name, opset, dynamic_batch)
                used = name
                break
            except Exception as e:  # noqa: BLE001 - every exporter failure is reported, the next one tried
                if "No space left on device" in str(e) or disk_nearly_full(path.parent):
                    raise OSError(errno.ENOSPC, "No space left on device", str(path)) from e  # not the graph
                errors[name] = _first_line(e)
        if used is None:
            raise ValueError("cannot export to ONNX: " + "; ".join(f"{k} exporter: {v}" for k, v in errors.items()))
        model = onnx.load(str(raw))
    opset_used = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), -1)
    fallback = errors.get("dynamo") if used == "torchscript" and exporter == "auto" else None
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    meta.update(exporter=used, opset=str(opset_used), torch_version=torch.__version__)
    if fallback:
        meta["dynamo_error"] = fallback
    del model.metadata_props[:]
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    write_bytes_atomic(path, data)
    return ExportResult(used, opset_used, time.perf_counter() - t0, len(data), fallback, meta)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (without loading the weights)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


# ------------------------------------------------------------------------------------------ parity
def ort_session(path: str | os.PathLike, provider: str = "CPUExecutionProvider", threads: int = 1):
    """An onnxruntime session on ``provider`` with ``threads`` intra-op threads (one inter-op)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, int(threads))
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=[provider])


def available_providers() -> list[str]:
    """onnxruntime's CPU provider, and its CUDA provider when this onnxruntime has it and a GPU is
    present (with PyTorch on the same GPU for the eager side)."""
    import onnxruntime as ort

    out = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers() and torch.cuda.is_available():
        out.append("CUDAExecutionProvider")
    return out


def _feeds(b: Batch) -> dict[str, Any]:
    return {
        "images": b.images.float().numpy(),
        "intrinsics": b.intrinsics.float().numpy(),
        "T_ego_from_cam": b.T_ego_from_cam.float().numpy(),
    }


def stack_frames(frames: list[Batch]) -> Batch:
    """One batch of the one-frame batches' camera tensors (for a dynamic batch)."""
    return Batch(
        tokens=[t for b in frames for t in b.tokens],
        scenes=[s for b in frames for s in b.scenes],
        timestamps=[t for b in frames for t in b.timestamps],
        cam_names=frames[0].cam_names,
        images=torch.cat([b.images for b in frames]),
        intrinsics=torch.cat([b.intrinsics for b in frames]),
        T_ego_from_cam=torch.cat([b.T_ego_from_cam for b in frames]),
        T_global_from_ego=torch.cat([b.T_global_from_ego for b in frames]),
    )


def _median_ms(times: list[float]) -> float:
    return round(1000.0 * statistics.median(times), 2)


def check_parity(
    path: str | os.PathLike,
    predictor: OccPredictor,
    method: nn.Module,
    frames: list[Batch],
    *,
    threads: int = 1,
    runs: int = 5,
    providers: list[str] | None = None,
    batch_check: bool = False,
) -> dict[str, Any]:
    """PyTorch eager against onnxruntime on the same frames.

    Per frame: the ONNX logits against the eager network's (max absolute difference), and the
    ONNX labels against the argmax of the recipe's own ``method.predict`` (agreement over voxels).
    Time per frame at batch 1: one warm-up run of each, then ``runs`` runs of each, alternated
    (so both see the same load), over the frames in turn; the median. Eager runs the same
    :class:`OccPredictor` (float32, ``torch.inference_mode``) on as many torch threads as are set.

    Args:
        frames: one-frame batches (:func:`dataset_frames` or :func:`random_frames`).
        threads: onnxruntime intra-op threads (set torch's to the same for a fair comparison).
        providers: onnxruntime providers to check (default :func:`available_providers`); the
            CUDA one runs against eager PyTorch on the GPU.
        batch_check: also run the frames (at least 2, repeated if need be) as one batch (for a
            graph exported with a dynamic batch).
    Returns:
        ``{"frames", "voxels", "providers": {provider: {"max_abs_logit_diff", "max_abs_logit",
        "label_agreement", "labels_differ", "ms_per_frame_torch", "ms_per_frame_onnxruntime",
        "batch": {...}}}}``.
    """
    if not frames:
        raise ValueError("check_parity: no frames")
    providers = providers or available_providers()
    report: dict[str, Any] = {"frames": len(frames), "voxels": 0, "runs": runs, "threads": threads, "providers": {}}
    for provider in providers:
        device = torch.device("cuda") if provider == "CUDAExecutionProvider" else torch.device("cpu")
        sess = ort_session(path, provider, threads)
        pred = predictor.to(device)
        meth = method.to(device)
        max_diff = max_abs = 0.0
        agree = total = 0
        with torch.inference_mode():
            for b in frames:
                bd = b.to(device)
                logits, _ = pred(bd.images.float(), bd.intrinsics.float(), bd.T_ego_from_cam.float())
                ref_labels = meth.predict(bd).argmax(1)
                o_logits, o_labels = sess.run(list(OUTPUT_NAMES), _feeds(b))
                o_logits = torch.from_numpy(o_logits)
                max_diff = max(max_diff, float((o_logits - logits.float().cpu()).abs().max()))
                max_abs = max(max_abs, float(logits.abs().max()))
                agree += int((torch.from_numpy(o_labels).long() == ref_labels.cpu()).sum())
                total += ref_labels.numel()
            t_torch, t_ort = _time_both(pred, sess, frames, device, runs)
            row: dict[str, Any] = {
                "max_abs_logit_diff": max_diff,
                "max_abs_logit": max_abs,
                "label_agreement": agree / max(total, 1),
                "labels_differ": total - agree,
                "ms_per_frame_torch": t_torch,
                "ms_per_frame_onnxruntime": t_ort,
            }
            if batch_check:
                group = (frames * 2)[: max(2, len(frames))]
                bb = stack_frames(group)
                bd = bb.to(device)
                logits, _ = pred(bd.images.float(), bd.intrinsics.float(), bd.T_ego_from_cam.float())
                ref_labels = meth.predict(bd).argmax(1)
                o_logits, o_labels = sess.run(list(OUTPUT_NAMES), _feeds(bb))
                row["batch"] = {
                    "size": len(group),
                    "max_abs_logit_diff": float((torch.from_numpy(o_logits) - logits.float().cpu()).abs().max()),
                    "label_agreement": float((torch.from_numpy(o_labels).long() == ref_labels.cpu()).float().mean()),
                }
        report["voxels"] = total
        report["providers"][provider] = row
        predictor.to("cpu")
        method.to("cpu")
    return report


def _time_both(
    pred: OccPredictor, sess: Any, frames: list[Batch], device: torch.device, runs: int
) -> tuple[float, float]:
    """Median seconds per frame of eager ``pred`` and of ``sess`` (batch 1), alternated, in ms."""
    sync: Callable[[], None] = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    inputs = [(b.to(device), _feeds(b)) for b in frames]

    def eager(i: int) -> float:
        bd = inputs[i % len(inputs)][0]
        sync()
        t = time.perf_counter()
        pred(bd.images.float(), bd.intrinsics.float(), bd.T_ego_from_cam.float())
        sync()
        return time.perf_counter() - t

    def onnxrt(i: int) -> float:
        t = time.perf_counter()
        sess.run(list(OUTPUT_NAMES), inputs[i % len(inputs)][1])
        return time.perf_counter() - t

    eager(0), onnxrt(0)  # warm-up
    te, to = [], []
    for i in range(max(1, runs)):
        te.append(eager(i))
        to.append(onnxrt(i))
    return _median_ms(te), _median_ms(to)
