"""What raised a traceback now ends in one line naming the file and the cause (issue 79): a judge
network that keeps its method's config as ``cfg`` (CIGOcc's, indoors), LiDAR info files naming files
that are not on disk (found by a DataLoader worker)."""

from __future__ import annotations

import json

import pytest


def test_the_judge_s_classes_come_from_its_model_config_for_cigocc_indoors():
    from occkit.experiment import build_method, load_experiment
    from occkit.generation.evaluate import judge_network, judge_num_classes

    net = judge_network(build_method(load_experiment("cigocc-nyu", ["model.backbone_weights=null"])))
    assert not hasattr(net.cfg, "num_classes")  # was: 'CIGOccConfig' object has no attribute 'num_classes'
    assert judge_num_classes(net) == 12  # NYUv2's classes


def _infos(root, tmp_path, present: int) -> str:
    ann = json.loads((root / "annotations.json").read_text())
    infos = []
    for k, (scene, frames) in enumerate((s, f) for s, fs in ann["scene_infos"].items() for f in fs):
        path = tmp_path / "samples" / "LIDAR_TOP" / f"{frames}.pcd.bin"
        if k < present:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\0" * 20)
        infos.append(
            {
                "token": frames,
                "lidar_path": f"samples/LIDAR_TOP/{frames}.pcd.bin",
                "lidar2ego_translation": [0.0, 0.0, 1.0],
                "lidar2ego_rotation": [1.0, 0.0, 0.0, 0.0],
            }
        )
    (tmp_path / "prep").mkdir()
    (tmp_path / "prep" / "infos.json").write_text(json.dumps({"dataroot": str(tmp_path), "infos": infos}))
    return str(tmp_path / "prep")


def test_lidar_infos_naming_missing_files_are_refused_when_the_data_opens(tiny_occ3d_root, tmp_path):
    from occkit.data.lidar_sweeps import WithLidarSweeps
    from occkit.data.occ3d import Occ3DDataset

    ds = Occ3DDataset(tiny_occ3d_root, "all", load_images=False)
    infos = _infos(tiny_occ3d_root, tmp_path, present=1)
    with pytest.raises(FileNotFoundError, match=r"prep: frame \S+'s LiDAR file .*\.pcd\.bin is missing \(3 LiDAR"):
        WithLidarSweeps(ds, 1, infos)  # was: a DataLoader worker's traceback when training reached the frame
