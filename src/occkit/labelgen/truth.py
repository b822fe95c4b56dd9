"""The synthetic world's truth for ``occkit label --quality``, read from the dataset ``occkit synth
--sweeps`` wrote: the exact labels (``gts/``), the true sweep poses (``extras/<scene>/sweeps.json``),
the objects' boxes (``extras/<scene>/<token>/objects.json``) and the LiDAR extrinsic
(``annotations.json``); in a world of a KITTI layout, the same files under ``truth/``, keyed by
sequence and scan (docs/labels.md, "SemanticKITTI and KITTI-360 sequences")."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from occkit.fileio import load_npz, read_json
from occkit.geometry.transforms import checked_pose
from occkit.labelgen.quality import Truth


def _inv(T: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


#: Where a world written in another layout (``occkit synth --format semantickitti --sweeps K``) keeps its
#: truth in Occ3D's schema (:mod:`occkit.worlds.driving.kitti_scans`).
TRUTH = "truth"

#: Sensor origins a keyframe's observable region is cast from (evenly spaced over its sweeps).
MAX_ORIGINS = 8


class WorldTruth:
    """Reads one keyframe's :class:`~occkit.labelgen.quality.Truth` at a time."""

    def __init__(self, dataset: str | os.PathLike) -> None:
        self.root = Path(dataset)
        if not (self.root / "annotations.json").is_file() and (self.root / TRUTH / "annotations.json").is_file():
            self.root = self.root / TRUTH  # a KITTI-layout world: its truth in Occ3D's schema, keyed by sequence
        ann = read_json(self.root / "annotations.json")
        if not isinstance(ann, dict) or "scene_infos" not in ann:
            raise ValueError(f"{self.root / 'annotations.json'}: not an Occ3D-schema index (no scene_infos)")
        self.infos: dict[str, dict[str, Any]] = ann["scene_infos"]
        self._sweeps: dict[str, dict[str, Any]] = {}

    def has(self, scene: str) -> bool:
        return scene in self.infos and (self.root / "extras" / scene / "sweeps.json").is_file()

    def _scene_sweeps(self, scene: str) -> dict[str, Any]:
        if scene not in self._sweeps:
            f = self.root / "extras" / scene / "sweeps.json"
            rec = read_json(f)
            self._sweeps[scene] = {
                "rows": rec["sweeps"],
                "T": {r["token"]: np.asarray(r["T_global_from_ego"], np.float64) for r in rec["sweeps"]},
            }
        return self._sweeps[scene]

    def _boxes(self, scene: str, token: str, T_eg: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
        f = self.root / "extras" / scene / token / "objects.json"
        if not f.is_file():
            return []
        yaw_e = np.arctan2(T_eg[1, 0], T_eg[0, 0])
        out = []
        for o in read_json(f).get("objects", []):
            if not o.get("dynamic"):
                continue
            b = o["box_global"]
            c = T_eg[:3, :3] @ np.asarray(b["center"], np.float64) + T_eg[:3, 3]
            out.append((c, np.asarray(b["size"], np.float64), float(b["yaw"]) + float(yaw_e)))
        return out

    def keyframe(self, scene: str, token: str, free_window: int, T_ego_from_grid: np.ndarray | None = None) -> Truth:
        """The truth of keyframe ``token``: origins of the true sweeps within ``free_window``
        keyframes (the sweeps the labels cast), moving boxes at it and at its neighbours. With
        ``T_ego_from_grid`` the origins and boxes are in that frame (the exact labels and masks
        read are Occ3D's, in the ego frame: a caller on another grid replaces them)."""
        info = self.infos[scene][token]
        gt = load_npz(self.root / info["gt_path"], ("semantics", "mask_camera", "mask_lidar"))
        sw = self._scene_sweeps(scene)
        rows = sw["rows"]
        keys = [i for i, r in enumerate(rows) if r["keyframe"]]
        k = next(i for i, r in enumerate(rows) if r["token"] == token)
        pos = keys.index(k)
        lo = keys[max(0, pos - max(free_window, 1))]
        hi = keys[min(len(keys) - 1, pos + max(free_window, 1))]
        ext = info.get("lidar_sensor", {}).get("extrinsic")
        T_el = checked_pose(ext["translation"], ext["rotation"], "extrinsic", f"{scene}/{token} lidar_sensor").numpy()
        T_eg = _inv(sw["T"][token])
        if T_ego_from_grid is not None:
            T_eg = _inv(T_ego_from_grid) @ T_eg
        near = list(range(lo, hi + 1))
        if len(near) > MAX_ORIGINS:  # evenly spaced, the keyframe's own among them (as RayIoU picks its 8)
            near = sorted({near[int(round(j))] for j in np.linspace(0, len(near) - 1, MAX_ORIGINS)} | {k})
        origins = np.stack([(T_eg @ sw["T"][rows[i]["token"]] @ T_el)[:3, 3] for i in near])
        nearby = []
        for i in (keys[max(0, pos - 1)], keys[min(len(keys) - 1, pos + 1)]):
            if i != k:
                nearby += self._boxes(scene, rows[i]["token"], T_eg)
        return Truth(
            semantics=gt["semantics"],
            mask_camera=gt["mask_camera"],
            mask_lidar=gt["mask_lidar"],
            origins=origins,
            moving=self._boxes(scene, token, T_eg),
            moving_nearby=nearby,
        )
