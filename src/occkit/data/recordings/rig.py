"""The rig folder (:mod:`occkit.data.rig`, docs/labels.md "The rig folder") as a recording: a folder
holding ``rig.json``, or a dataset holding one at ``DATA/rig`` (``occkit synth --sweeps K``), whose
``annotations.json`` then gives the camera images and the splits. The camera images a sweep row of
``sweeps.json`` names win over the dataset's: they are linked into the labels as ``rig``
(:data:`RIG_LINK`), so the index's ``img_path`` reads ``rig/<scene>/images/...``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from occkit.data.recordings.spec import EgoHeightOptions, RecordingReader


def rig_folder(path: Path) -> Path | None:
    """The rig folder ``path`` names: itself, its ``rig/``, or the folder of a ``rig.json`` given as a file."""
    from occkit.data.rig import is_rig

    if path.is_file() and path.name == "rig.json":
        return path.parent
    if is_rig(path):
        return path
    if is_rig(path / "rig"):
        return path / "rig"
    return None


def _dataset_beside(rig: Path) -> tuple[dict[str, dict[str, str]], dict[str, list[str]], Path | None]:
    """The camera image paths by token and the splits of the Occ3D-schema dataset the rig sits in
    (``occkit synth --sweeps``: ``DATA/rig`` beside ``DATA/annotations.json``), and its ``samples`` folder."""
    from occkit.fileio import read_json

    root = rig.parent
    f = root / "annotations.json"
    if rig.name != "rig" or not f.is_file():
        return {}, {}, None
    ann = read_json(f)
    if not isinstance(ann, dict):
        return {}, {}, None
    imgs = {
        tok: {cam: c.get("img_path", "") for cam, c in (info.get("camera_sensor") or {}).items()}
        for scene in (ann.get("scene_infos") or {}).values()
        if isinstance(scene, dict)
        for tok, info in scene.items()
        if isinstance(info, dict)
    }
    splits = {k: list(ann.get(k) or []) for k in ("train_split", "val_split") if ann.get(k)}
    samples = root / "samples"
    return imgs, splits, samples if samples.is_dir() else None


#: The name under which the rig folder is linked into the labels when its tables name camera images.
RIG_LINK = "rig"


def _table_images(meta: dict[str, Any], scenes: list[str]) -> dict[str, dict[str, str]]:
    """The camera images the scenes' ``sweeps.json`` rows name, by sweep token, as paths through the
    output's link to the rig folder (``rig/<scene>/<file>``); a token with images in two scenes is refused
    (the index would give one keyframe the other's images)."""
    from occkit.data.rig import scene_images

    out: dict[str, dict[str, str]] = {}
    scene_of: dict[str, str] = {}
    for scene in scenes:
        for token, cams in scene_images(meta, scene).items():
            if token in scene_of:
                raise ValueError(
                    f"{meta['folder'] / scene / 'sweeps.json'}: token {token!r} with camera images is also a sweep "
                    f"of scene {scene_of[token]!r} (each keyframe's images are found by its token: give each its own)"
                )
            scene_of[token] = scene
            out[token] = {cam: f"{RIG_LINK}/{scene}/{rel}" for cam, rel in cams.items()}
    return out


class RigReader(RecordingReader[EgoHeightOptions], name="rig", priority=10):
    """A rig folder (``rig.json``; docs/labels.md, "The rig folder"), or a dataset holding one at ``DATA/rig``."""

    description = "a rig folder (rig.json, docs/labels.md), or a dataset holding one at DATA/rig"

    @classmethod
    def detect(cls, path: Path) -> str | None:
        rig = rig_folder(path)
        return f"{rig / 'rig.json'}" if rig is not None else None

    def __init__(self, source: Path, options: EgoHeightOptions, wanted: list[str] | None = None) -> None:
        from occkit.data.rig import read_rig_meta

        super().__init__(source, options, wanted)
        rig = rig_folder(source)
        if rig is None:
            raise ValueError(
                f"--data {source}: holds no rig.json (nor rig/rig.json): a rig folder is described in docs/labels.md; "
                "occkit synth --sweeps K writes one for the synthetic world"
            )
        self.rig = rig
        self.meta = read_rig_meta(rig)
        images, splits, samples = _dataset_beside(rig)
        self.classes = tuple(self.meta["classes"])
        self._scenes = list(self.meta["scenes"])
        self.splits = {**splits, **{f"{k}_split": v for k, v in self.meta.get("splits", {}).items()}}  # rig.json's win
        own = _table_images(self.meta, [x for x in self._scenes if wanted is None or x in wanted])
        for token, cams in own.items():  # the table's images win over the dataset's, camera by camera
            images[token] = {**images.get(token, {}), **cams}
        self.images = images
        self.image_links = {"samples": samples} if samples is not None else {}
        if own:
            self.image_links[RIG_LINK] = rig
        self.describe = f"rig folder {rig}, {len(self._scenes)} scene(s)"

    def read(self, scene: str, load_points: bool = True) -> Any:
        from occkit.data.rig import read_scene

        return self.options.lowered(read_scene(self.meta, scene, load_points=load_points), box_given=True)

    def instances(self, scene: str) -> dict[str, Any]:
        return _instances(self.meta, scene)

    def fingerprint(self, scenes: list[str]) -> str:
        return rig_fingerprint(self.rig, scenes)


def _instances(meta: dict[str, Any], scene: str) -> dict[str, Any]:
    """The points' track ids of a scene's sweeps whose files hold them (``instance``), by sweep token."""
    from occkit.fileio import load_npz, read_json

    root: Path = meta["folder"]
    rows = read_json(root / scene / "sweeps.json").get("sweeps") or []
    out = {}
    for r in rows:
        arrays = load_npz(root / scene / r["points"])
        if "instance" in arrays:
            out[str(r["token"])] = arrays["instance"]
    return out


def rig_fingerprint(rig: Path, scenes: list[str]) -> str:
    """A SHA-256 of the rig folder's content for ``scenes``: ``rig.json`` and each scene's tables
    (``sweeps.json``, ``boxes.json``) hashed whole, every other file of the scene (its points) by
    name, size and modification time: cheap, and changed by any edit of the recording."""
    import hashlib

    from occkit.data.recordings.spec import files_fingerprint

    h = hashlib.sha256(b"occkit-rig\0")
    h.update(hashlib.sha256((rig / "rig.json").read_bytes()).digest())
    for scene in scenes:
        sdir = rig / scene
        h.update(f"\0scene {scene}\0".encode())
        for table in ("sweeps.json", "boxes.json"):
            f = sdir / table
            h.update(hashlib.sha256(f.read_bytes()).digest() if f.is_file() else b"absent")
        h.update(files_fingerprint(sdir).encode())
    return h.hexdigest()


READER = RigReader
