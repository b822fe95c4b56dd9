"""The prior cache on disk: what ``occkit priors run`` writes and datasets attach to samples.

Layout (beside, or anywhere away from, the dataset)::

    PRIORS/prior.json                       what made the cache (below)
    PRIORS/<scene>/<frame>/<CAM>.npz        one file per camera image

``<frame>`` is the token's last part after ``/`` (Occ3D-nuScenes: the token; SemanticKITTI: the
frame number, ``<scene>`` = the sequence, ``<CAM>`` = ``image_2``). Each ``.npz`` holds the kinds the cache
has: ``semantics`` uint8 (H, W) (prior classes, 255 unknown) with ``confidence`` float16 (H, W);
``segments`` int32 (H, W); ``depth`` float32 (H, W) metres (0 unknown); ``features`` float16
(D, ceil(H/s), ceil(W/s)).

``prior.json``: ``format``, ``spec`` (the prior spec), ``provider`` (its ``describe()``),
``kinds``, ``text_encoder`` (spec, or null), ``feature_stride``, ``feature_dim``, ``layout``
(the dataset's format name, :mod:`occkit.formats`: ``occ3d``, ``semantickitti``, ...),
``class_table`` and ``class_names`` (the classes of ``semantics``, the dataset format's table,
:mod:`occkit.priors.classes`: ``occ3d`` for the driving world, ``nyu`` indoors; a cache written
before tables existed is ``occ3d``), ``dataset``
(the folder it was made from), ``split``,
``cameras``, ``image_size`` [H, W], ``frames`` {scene: [frame, ...]}, ``complete`` (false while
``priors run`` is still writing), ``created``, ``occkit_version``.

Every file is written atomically (temporary file, then rename); a run that stops is resumed by
running the same command again: frames whose files all exist are skipped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from occkit.data.sample import Sample
from occkit.fileio import load_npz, read_json, save_npz_atomic, write_json_atomic
from occkit.priors.base import PriorFrame, PriorProvider, Priors, check_kinds
from occkit.priors.classes import DEFAULT_PRIORS, PriorClasses, prior_classes_of_dataset

PRIOR_FILE = "prior.json"
CACHE_FORMAT = 1
#: Arrays of each kind in a camera's ``.npz``.
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "semantics": ("semantics", "confidence"),
    "segments": ("segments",),
    "depth": ("depth",),
    "features": ("features",),
}
#: Sample fields the cached arrays fill.
SAMPLE_FIELDS: dict[str, str] = {
    "semantics": "prior_semantics",
    "confidence": "prior_confidence",
    "segments": "prior_segments",
    "depth": "prior_depth",
    "features": "prior_features",
}


# ---------------------------------------------------------------------------------------- datasets
def open_dataset(
    root: str | os.PathLike, split: str = "all", cameras: Sequence[str] | None = None, extras: bool = True
) -> tuple[Dataset, str]:
    """The frames of ``root`` in whichever format it has (:func:`occkit.formats.detect_format`):
    ``(dataset, format name)``; a folder of no known format is an error listing those tried.

    Images are loaded, ground-truth voxels are not; the synthetic extras (exact 2D maps, object
    names) are read when present and ``extras``. ``cameras`` (None: the format's own) are checked
    by the format (SemanticKITTI has ``image_2`` only).
    """
    from occkit.formats import detect_format

    fmt = detect_format(root, option=None)
    ds = fmt.open_split(root, split, cameras=tuple(cameras) if cameras else None, load_gt=False, load_extras=extras)
    return ds, fmt.name


def frame_name(token: str) -> str:
    """The folder name of a frame: the token, or the frame number of ``"<sequence>/<frame>"``."""
    return token.rsplit("/", 1)[-1]


def frame_files(root: str | os.PathLike, scene: str, token: str, cameras: Sequence[str], where: str = "") -> list[Path]:
    """The ``.npz`` paths of a frame's cameras in a cache; a scene, token or camera of the data that
    would lead outside ``root`` (absolute, ``..``, a link) is refused in one line naming it."""
    from occkit.outputs import path_under

    what = f"{where}frame {scene!r} / {token!r}"
    return [path_under(root, scene, frame_name(token), f"{c}.npz", what=what) for c in cameras]


from occkit.fileio import files_intact as frame_intact  # noqa: E402
from occkit.fileio import record_files as record_frame_files  # noqa: E402


def prior_frame(dataset: Dataset, sample: Sample, classes: PriorClasses | None = None) -> PriorFrame:
    """What a provider sees of ``sample`` (with the object names the dataset knows and the class
    table of its format, or ``classes``)."""
    names_of = getattr(dataset, "instance_names", None)
    names = names_of(sample.token) if callable(names_of) else {}
    return PriorFrame(
        scene=sample.scene,
        token=sample.token,
        cam_names=tuple(sample.cam_names),
        images=sample.images,
        intrinsics=sample.intrinsics,
        depth=sample.depth,
        semantics_2d=sample.semantics_2d,
        instance_2d=sample.instance_2d,
        instance_names=names,
        classes=classes or prior_classes_of_dataset(dataset),
    )


# ---------------------------------------------------------------------------------------- writing
def priors_to_arrays(priors: Priors, i: int) -> dict[str, np.ndarray]:
    """Camera ``i``'s arrays as stored (dtypes of the module docstring)."""
    out: dict[str, np.ndarray] = {}
    if priors.semantics is not None:
        out["semantics"] = priors.semantics[i].numpy().astype(np.uint8)
        out["confidence"] = priors.confidence[i].float().numpy().astype(np.float16)
    if priors.segments is not None:
        out["segments"] = priors.segments[i].numpy().astype(np.int32)
    if priors.depth is not None:
        out["depth"] = priors.depth[i].float().numpy().astype(np.float32)
    if priors.features is not None:
        out["features"] = priors.features[i].float().numpy().astype(np.float16)
    return out


def run_priors(
    data: str | os.PathLike,
    out: str | os.PathLike,
    prior: PriorProvider,
    kinds: Sequence[str] | None = None,
    split: str = "all",
    cameras: Sequence[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    max_frames: int = 0,
    on_frame: Callable[[str, float], None] | None = None,
) -> Path:
    """Run ``prior`` over every frame of ``data`` (split ``split``) and write the cache ``out``.

    Resumable: a cache with the same prior, kinds, dataset and cameras is continued (frames whose
    files exist are skipped); a different one is refused unless ``overwrite`` (which deletes no
    files: it rewrites them). ``max_frames`` > 0 keeps that many frames (evenly spaced; for quick
    looks and benchmarks). Returns ``out``.
    """
    data, out = Path(data), Path(out)
    kinds = check_kinds(kinds or prior.kinds, prior.kinds, prior.spec)
    ds, layout = open_dataset(data, split, cameras, extras=True)
    frames = [(f.scene, f.token) if hasattr(f, "token") else (f[0], f"{f[0]}/{f[1]}") for f in ds.frames]
    index = _frame_index(len(frames), max_frames)
    if not index:
        raise ValueError(f"{data}: split '{split}' has no frames")
    cams = tuple(getattr(ds, "cameras", ("image_2",)))
    table = prior_classes_of_dataset(ds)
    theirs = getattr(prior, "classes", None)  # a provider trained on one table (world:RUN) answers in it
    if isinstance(theirs, PriorClasses) and theirs.name != table.name:
        raise ValueError(
            f"prior {prior.spec!r}: answers in the {theirs.name} classes; {data} is {layout} data whose priors use "
            f"the {table.name} classes (train a world prior on a world of this format)"
        )
    first = ds[index[0]]
    H, W = first.images.shape[-2:]
    record = _cache_record(prior, kinds, layout, table, data, split, cams, (int(H), int(W)))
    for j in index:
        s, t = frames[j]
        record["frames"].setdefault(s, []).append(frame_name(t))
    if "features" in kinds:
        te = prior.text_encoder
        record["text_encoder"] = te.spec
        record["feature_dim"] = int(te.dim)
    path = out / PRIOR_FILE
    if path.is_file():
        _continue_cache(path, record, overwrite)
    from occkit import __version__

    record["occkit_version"] = __version__
    for j in index:  # a name of the data that leads outside --out: refused before anything is written
        frame_files(out, *frames[j], cams, where=f"--data {data}: ")
    out.mkdir(parents=True, exist_ok=True)
    from occkit.locks import output_lock

    lock = output_lock(out, "priors run")  # one writer: every temporary file in the cache is a stopped run's
    try:
        for stale in out.rglob(".*.tmp"):  # a killed run's half-written file, never renamed into place
            if stale.is_file():
                stale.unlink()
        write_json_atomic(path, record)
        it: Iterator[int] | Any = index
        if progress:
            from tqdm import tqdm

            it = tqdm(index, desc=f"priors {prior.spec}", unit="frame")
        for j in it:
            sample = first if j == index[0] else None
            _write_frame(ds, j, sample, frames[j], out, cams, prior, kinds, table, record, overwrite, on_frame)
        record["complete"] = True
        write_json_atomic(path, record)
    finally:
        lock.release()
    return out


def _frame_index(n: int, max_frames: int) -> list[int]:
    """The indices of the frames a run covers: all ``n``, or ``max_frames`` > 0 of them evenly spaced."""
    index = list(range(n))
    if 0 < max_frames < len(index):
        index = sorted({round(i * (len(index) - 1) / max(1, max_frames - 1)) for i in range(max_frames)})
    return index


def _cache_record(
    prior: PriorProvider,
    kinds: Sequence[str],
    layout: str,
    table: PriorClasses,
    data: Path,
    split: str,
    cams: tuple[str, ...],
    image_size: tuple[int, int],
) -> dict[str, Any]:
    """A new cache's ``prior.json`` before its frames, features and version are filled in."""
    return {
        "format": CACHE_FORMAT,
        "spec": prior.spec,
        "provider": prior.describe(),
        "kinds": list(kinds),
        "text_encoder": None,
        "feature_stride": 0,
        "feature_dim": 0,
        "layout": layout,
        **table.record(),
        "dataset": str(data.resolve()),
        "split": split,
        "cameras": list(cams),
        "image_size": list(image_size),
        "frames": {},
        "complete": False,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _continue_cache(path: Path, record: dict[str, Any], overwrite: bool) -> None:
    """Carry an earlier run's frames (and, of the same priors, its feature shape) into ``record``; a cache
    of other priors is refused unless ``overwrite``."""
    old = read_json(path)
    old.setdefault("class_table", DEFAULT_PRIORS.name)  # written before class tables: Occ3D's
    keys = ("spec", "kinds", "dataset", "cameras", "image_size", "layout", "class_table")
    same = all(old.get(k) == record[k] for k in keys)
    if not same and not overwrite:
        diff = [k for k in keys if old.get(k) != record[k]]
        raise FileExistsError(
            f"{path}: a cache of other priors ({', '.join(f'{k}: {old.get(k)!r}' for k in diff)}); "
            "choose another --out or pass --overwrite"
        )
    for s, fs in old.get("frames", {}).items():  # keep frames an earlier run covered
        have = record["frames"].setdefault(s, [])
        have += [f for f in fs if f not in have]
    if same and old.get("feature_stride"):
        record["feature_stride"], record["feature_dim"] = old["feature_stride"], old["feature_dim"]


def _write_frame(
    ds: Dataset,
    j: int,
    sample: Sample | None,
    frame_id: tuple[str, str],
    out: Path,
    cams: tuple[str, ...],
    prior: PriorProvider,
    kinds: Sequence[str],
    table: PriorClasses,
    record: dict[str, Any],
    overwrite: bool,
    on_frame: Callable[[str, float], None] | None,
) -> None:
    """Write the priors of frame ``j`` (``sample``, when already read) unless its files are intact; the
    first features seen set the cache's feature shape in ``prior.json``."""
    scene, token = frame_id
    files = frame_files(out, scene, token, cams)
    if not overwrite and frame_intact(files):
        return
    t0 = time.perf_counter()
    frame = prior_frame(ds, sample if sample is not None else ds[j], table)
    with torch.no_grad():
        pr = prior(frame, kinds)
    pr.validate(len(cams), frame.image_size, where=f"{prior.spec} on {scene}/{token}", num_classes=table.num_classes)
    if pr.features is not None and not record["feature_stride"]:
        record["feature_stride"], record["feature_dim"] = int(pr.feature_stride), int(pr.features.shape[1])
        write_json_atomic(out / PRIOR_FILE, record)
    for i, p in enumerate(files):
        save_npz_atomic(p, **priors_to_arrays(pr, i))
    record_frame_files(files)
    if on_frame is not None:
        on_frame(token, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------- reading
class PriorCache:
    """A cache written by :func:`run_priors`, read frame by frame.

    Args:
        root: the cache folder (holding ``prior.json``).
        kinds: the kinds to read (default: all the cache has); asking for one it lacks raises.
    """

    def __init__(self, root: str | os.PathLike, kinds: Sequence[str] | None = None) -> None:
        self.root = Path(root)
        path = self.root / PRIOR_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not a prior cache (run `occkit priors run --out {self.root}` first)")
        self.record: dict[str, Any] = read_json(path)
        for key in ("format", "kinds", "cameras", "image_size", "frames"):
            if key not in self.record:
                raise ValueError(f"{path}: missing key '{key}'")
        if self.record["format"] != CACHE_FORMAT:
            raise ValueError(f"{path}: cache format {self.record['format']}, this occkit reads {CACHE_FORMAT}")
        if not self.record.get("complete", False):
            raise ValueError(
                f"{path}: incomplete cache (`occkit priors run` did not finish): run it again to complete it"
            )
        self.kinds = check_kinds(kinds if kinds is not None else self.record["kinds"], self.record["kinds"], str(path))
        self.cameras = tuple(self.record["cameras"])
        self.image_size = tuple(self.record["image_size"])
        self.feature_stride = int(self.record.get("feature_stride", 0))
        self.feature_dim = int(self.record.get("feature_dim", 0) or 0)
        self.class_table = str(self.record.get("class_table", DEFAULT_PRIORS.name))
        """The class table of the cached semantics (``occ3d`` for a cache written before tables)."""
        self._frames = {(s, f) for s, fs in self.record["frames"].items() for f in fs}

    @property
    def spec(self) -> str:
        return str(self.record.get("spec"))

    def text_encoder(self, device: str = "cpu") -> Any:
        """The text encoder of the cached features (None when the cache has none)."""
        spec = self.record.get("text_encoder")
        if not spec:
            return None
        from occkit.priors.text import load_text_encoder

        return load_text_encoder(spec, device=device)

    def has(self, scene: str, token: str) -> bool:
        return (scene, frame_name(token)) in self._frames

    def check_dataset(self, dataset: Any, where: str = "dataset") -> None:
        """Refuse a dataset whose class table, frames, cameras or image size the cache was not made for."""
        root = getattr(dataset, "root", where)
        want = prior_classes_of_dataset(dataset).name
        if self.class_table != want:
            raise ValueError(
                f"{self.root / PRIOR_FILE}: priors in the {self.class_table} classes, made from "
                f"{self.record.get('dataset')} ({self.record.get('layout', '?')}); {root} needs priors in the {want} "
                f"classes: make its own cache (occkit priors run --data {root} --out DIR)"
            )
        cams = tuple(getattr(dataset, "cameras", ("image_2",)))
        missing_cams = [c for c in cams if c not in self.cameras]
        if missing_cams:
            raise ValueError(
                f"{self.root / PRIOR_FILE}: made for cameras {list(self.cameras)}; {root} asks for {missing_cams}"
            )
        frames = dataset.frames
        pairs = [(f.scene, f.token) if hasattr(f, "token") else (f[0], f"{f[0]}/{f[1]}") for f in frames]
        absent = [f"{s}/{frame_name(t)}" for s, t in pairs if not self.has(s, t)]
        if absent:
            raise ValueError(
                f"{self.root / PRIOR_FILE}: made for {self.record.get('dataset')} "
                f"({sum(map(len, self.record['frames'].values()))} frames); "
                f"{len(absent)} of the {len(pairs)} frames of {root} are not in it (first: {absent[0]})"
            )

    def load(
        self,
        scene: str,
        token: str,
        cameras: Sequence[str],
        image_size: tuple[int, int],
        float_dtype: torch.dtype = torch.float32,
    ) -> dict[str, torch.Tensor]:
        """The frame's priors as Sample fields (``prior_semantics (N, H, W)`` long, ... see
        :data:`SAMPLE_FIELDS`); errors name the file and the mismatch. ``float_dtype``: of the
        float fields (``torch.float16`` keeps the stored half-precision features without a float32
        copy: what the neighbour keyframes' features are kept in)."""
        if tuple(image_size) != self.image_size:
            raise ValueError(
                f"{self.root / PRIOR_FILE}: made for {self.image_size[0]}x{self.image_size[1]} images; "
                f"frame {scene}/{token} has {image_size[0]}x{image_size[1]}"
            )
        keys = tuple(k for kind in self.kinds for k in KIND_KEYS[kind])
        per_cam = []
        for p in frame_files(self.root, scene, token, cameras):
            z = load_npz(p, keys=keys)
            for k in keys:
                want = (*image_size,) if k != "features" else None
                if want is not None and z[k].shape != want:
                    raise ValueError(f"{p}: '{k}' has shape {z[k].shape}, expected {want}")
                if z[k].dtype.kind == "f" and not np.isfinite(z[k]).all():
                    raise ValueError(f"{p}: '{k}' holds {int((~np.isfinite(z[k])).sum())} NaN or infinite values")
            if (
                "features" in z
                and self.feature_dim
                and z["features"].ndim == 3
                and z["features"].shape[0] != self.feature_dim
            ):
                raise ValueError(
                    f"{p}: features of width {z['features'].shape[0]}; the cache's record says {self.feature_dim}"
                )
            per_cam.append(z)
        out: dict[str, torch.Tensor] = {}
        for k in keys:
            a = np.stack([z[k] for z in per_cam])
            if k in ("semantics", "segments"):
                t = torch.from_numpy(a.astype(np.int64))
            else:
                t = torch.from_numpy(a.astype(torch.empty(0, dtype=float_dtype).numpy().dtype, copy=False))
            out[SAMPLE_FIELDS[k]] = t
        return out


class WithPriors(Dataset):
    """Wraps a dataset of :class:`Sample` and attaches the cached priors (``prior_*`` fields).

    The cache is checked against the dataset's frames and cameras at construction (``check``;
    off only for callers that visit the cached frames alone), the image size at each frame.
    """

    def __init__(self, dataset: Dataset, cache: PriorCache, check: bool = True) -> None:
        self.dataset, self.cache = dataset, cache
        if check:
            cache.check_dataset(dataset)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Sample:
        s: Sample = self.dataset[i]
        fields = self.cache.load(s.scene, s.token, s.cam_names, tuple(s.images.shape[-2:]))
        for k, v in fields.items():
            setattr(s, k, v)
        if "prior_features" in fields:
            s.prior_feature_stride = self.cache.feature_stride
        return s
