"""Running the label pipeline over a rig's scenes: one scene's labels written in the label
format's layout (:func:`label_one_scene`, what a worker process or a Ray task runs), scenes
launched locally or on Ray (:func:`launch`), the run's summary and its quality against the
synthetic world's truth (:func:`score_run`). ``occkit label`` wires these."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

#: Where a run keeps each finished scene's record (inside the output being written).
STATE = ".label"


def _safe(name: str, what: str) -> str:
    """``name`` when it can be one folder name under the output; else a one-line ValueError."""
    p = Path(name)
    if not name or p.is_absolute() or len(p.parts) != 1 or name in (".", ".."):
        raise ValueError(f"{what} {name!r} cannot name a folder under --out (absolute, empty or with a path in it)")
    return name


def label_one_scene(job: dict[str, Any]) -> dict[str, Any]:
    """Label one scene and write its files under ``job["part"]`` in the layout of the format
    ``job["format"]`` (one whose classes end in its free class and whose grid is in the ego frame:
    Occ3D's); return its record (report, annotation entries). A worker's entry point (local
    processes and Ray tasks)."""
    import numpy as np
    import torch

    from occkit.data.recordings.registry import open_recording
    from occkit.fileio import save_npz_atomic, write_json_atomic
    from occkit.formats import get_format
    from occkit.labelgen.pipeline import label_scene
    from occkit.outputs import path_under

    torch.set_num_threads(1)
    part = Path(job["part"])
    src = job["recording"]
    rec = open_recording(src["source"], src["reader"], src["options"]).read_scene(job["scene"])
    opt = job["options"]
    t0 = time.perf_counter()
    fmt = get_format(job["format"])
    classes, free = label_classes(rec.classes, fmt)
    labels, report = label_scene(rec, fmt.grid, classes, free, opt)
    scene = _safe(rec.name, "scene")
    infos: dict[str, Any] = {}
    keys = [rec.sweeps[k] for k in rec.keyframes]
    for i, (s, lab) in enumerate(zip(keys, labels)):
        token = _safe(s.token, f"scene {scene}: sweep token")
        rel = f"gts/{scene}/{token}/labels.npz"
        path_under(part, "gts", scene, token, "labels.npz", what=f"{rec.source}: scene {scene!r}, token {token!r}")
        arrays = {"semantics": lab.semantics, "mask_lidar": lab.mask_lidar, "mask_camera": lab.mask_camera}
        if lab.flow is not None:
            arrays["flow"] = lab.flow
        save_npz_atomic(part / rel, **arrays)
        ego = _pose(s.T_global_from_ego)
        infos[token] = {
            "timestamp": int(s.timestamp),
            "camera_sensor": {
                n: {
                    "img_path": job.get("images", {}).get(token, {}).get(n, ""),
                    "intrinsic": np.round(c.K, 6).tolist(),
                    "extrinsic": _pose(c.T_ego_from_cam),
                    "ego_pose": ego,
                }
                for n, c in rec.cameras.items()
            },
            "ego_pose": ego,
            "lidar_sensor": {"extrinsic": _pose(rec.lidars[s.sensor])},
            "gt_path": rel,
            "prev": keys[i - 1].token if i > 0 else "",
            "next": keys[i + 1].token if i + 1 < len(keys) else "",
        }
    report["seconds_total"] = round(time.perf_counter() - t0, 2)
    out = {"scene": scene, "infos": infos, "report": report}
    if free != fmt.classes.free:
        out["classes"] = list(classes)
    write_json_atomic(part / STATE / "scenes" / f"{scene}.json", out)
    return out


def label_classes(recording: tuple[str, ...], fmt: Any) -> tuple[tuple[str, ...], int]:
    """The classes a recording's labels are written in, and their free id: the format's (ids 0 .. free - 1)
    when the recording has none or has those, in order; else the recording's own (a SemanticKITTI sequence's),
    the free id after them."""
    names = tuple(fmt.classes.names[: fmt.classes.free])
    own = tuple(recording)
    if not own or own == names[: len(own)]:
        return names, fmt.classes.free
    if len(own) >= 255:
        raise ValueError(f"{len(own)} classes: labels of uint8 ids hold at most 254 and the free id")
    return own, len(own)


def _pose(T) -> dict[str, list[float]]:
    import numpy as np
    import torch

    from occkit.geometry.transforms import pose_from_transform

    p = pose_from_transform(torch.as_tensor(np.asarray(T, dtype=np.float64)))
    return {"translation": [round(v, 6) for v in p["translation"]], "rotation": [round(v, 9) for v in p["rotation"]]}


def launch(todo: list[dict[str, Any]], workers: int, launcher: str):
    """Each job's :func:`label_one_scene` result as it finishes: in this process, in ``workers``
    spawned processes, or as Ray tasks (the cluster at ``RAY_ADDRESS``, else a local Ray)."""
    if launcher == "ray":
        try:
            import ray
        except ImportError:
            raise ValueError("--launcher ray: ray is not installed (pip install 'ray>=2.9')") from None
        started = not ray.is_initialized()  # a Ray this call started is shut down when it ends (a caller's is kept)
        if started:
            addr = os.environ.get("RAY_ADDRESS")
            ray.init(address=addr or None, num_cpus=None if addr else workers, include_dashboard=False)
        try:
            task = ray.remote(label_one_scene).options(num_cpus=1, max_retries=0)
            refs = [task.remote(j) for j in todo]
            while refs:
                ready, refs = ray.wait(refs, num_returns=1)
                yield ray.get(ready[0])
        finally:
            if started:
                ray.shutdown()
        return
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(workers, len(todo))) as pool:
            yield from pool.imap_unordered(label_one_scene, todo)
        return
    for j in todo:
        yield label_one_scene(j)


def summarise(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's figures over its scenes' reports: keyframes, seconds a keyframe (per stage),
    peak traced memory, density, what the inputs lacked."""
    n = sum(r["keyframes"] for r in reports)
    stages: dict[str, float] = {}
    for r in reports:
        for k, v in r["seconds"].items():
            stages[k] = stages.get(k, 0.0) + v
    return {
        "keyframes": n,
        "seconds_per_keyframe": round(sum(stages.values()) / max(n, 1), 3),
        "seconds_per_keyframe_by_stage": {k: round(v / max(n, 1), 3) for k, v in stages.items()},
        "peak_traced_mb": max((r["peak_traced_mb"] for r in reports), default=0.0),
        "density": round(sum(r["density"] * r["keyframes"] for r in reports) / max(n, 1), 5),
        "missing": sorted({m for r in reports for m in r["missing"]}),
        "warnings": [f"{r['scene']}: {w}" for r in reports for w in r.get("warnings", [])],
    }


def score_run(
    data: Path, part: Path, scenes: list[str], done: dict[str, Any], opt: Any, fmt_name: str
) -> dict[str, Any]:
    """The labels of a finished run scored against the synthetic world ``data``'s truth."""
    import numpy as np

    from occkit.fileio import load_npz
    from occkit.formats import get_format
    from occkit.labelgen.quality import QualityAccumulator
    from occkit.labelgen.truth import WorldTruth

    fmt = get_format(fmt_name)
    truth = WorldTruth(data)
    acc = QualityAccumulator(fmt.grid, fmt.classes.num_classes, fmt.classes.free, fmt.classes.names)
    picture = None
    own = None
    for s in scenes:
        own = done[s].get("classes") or own
        for token, info in done[s]["infos"].items():
            lab = load_npz(part / info["gt_path"], ("semantics", "mask_lidar", "mask_camera"))
            if done[s].get("classes"):  # the recording's own classes: the occupied voxels scored, not their classes
                lab["semantics"] = np.where(lab["semantics"] == len(done[s]["classes"]), fmt.classes.free, 0)
            tr = truth.keyframe(s, token, opt.free_window)
            obs = acc.update(lab, tr)
            if picture is None:  # the first keyframe's picture: labels beside the truth, errors coloured
                picture = (tr.semantics, lab["semantics"], obs, f"{s} {token}")
    if picture is not None:
        _write_picture(part / "quality.png", *picture, fmt)
    out = acc.compute()
    if own:
        for k in ("semantic_miou_camera_mask", "rayiou", "moving_object_iou"):
            out[k] = float("nan")
        out["classes"] = (
            f"the recording's own ({', '.join(own[:3])}, ...), not the truth's: occupied voxels scored as one class; "
            "semantic mIoU, RayIoU and moving-object IoU not scored"
        )
    return out


def _write_picture(path: Path, truth: Any, label: Any, obs: Any, title: str, fmt: Any) -> None:
    import io

    from PIL import Image

    from occkit.fileio import write_bytes_atomic
    from occkit.labelgen.figure import label_figure

    palette = fmt.classes.palette or [
        [int(c * 37 % 256), int(c * 91 % 256), int(c * 53 % 256)] for c in range(fmt.classes.num_classes)
    ]
    buf = io.BytesIO()
    Image.fromarray(label_figure(truth, label, obs, fmt.classes.free, palette)).save(buf, format="PNG")
    write_bytes_atomic(path, buf.getvalue())
