"""Files read through their schemas (occkit.schema; docs/design.md, "Schemas of the files occkit reads"): a
ROS bag's ``--boxes`` rows, Occ3D frames and info-file frames from pickles (numpy arrays where JSON has
lists), each refusal one line naming the file, the row and the field."""

from __future__ import annotations

import json

import numpy as np
import pytest

from occkit.schema import validate

ROW = {"stamp": 5, "track": 1, "class": 2, "center": [0, 0, 0], "size": [4, 2, 1.5], "yaw": 0.1}


@pytest.mark.parametrize(
    "rows, said",
    [
        ([{k: v for k, v in ROW.items() if k != "stamp"}], "boxes[0]: stamp missing"),
        ([{**ROW, "stamp": "5"}], "boxes[0]: stamp: '5' is not an integer"),
        ([{**ROW, "stamp": 5.5}], "boxes[0]: stamp: 5.5 is not an integer (refused, not rounded)"),
        ([ROW, {**ROW, "class": True}], "boxes[1]: class: True is not an integer"),
        ([{**ROW, "colour": 1}], "boxes[0]: unknown key 'colour'"),
        ({"rows": []}, "unknown key 'rows'"),
    ],
)
def test_a_bags_boxes_file_is_refused_naming_the_row_and_field(tmp_path, rows, said):
    from occkit.data.recordings.rosbag import _read_boxes

    f = tmp_path / "boxes.json"
    f.write_text(json.dumps({"boxes": rows} if isinstance(rows, list) else rows))
    with pytest.raises(ValueError) as e:
        _read_boxes(f)
    assert str(e.value).startswith(f"--boxes {f}: {said}"), e.value


def test_a_bags_boxes_rows_are_read_by_stamp_as_the_rigs_rows():
    from occkit.data.rig_schema import BoxesTable, StampedBoxesTable

    row = validate(StampedBoxesTable, {"boxes": [ROW]}, "f").boxes[0]
    as_rig = {**row.model_dump(by_alias=True, exclude={"stamp", "sweep"}), "sweep": "5"}
    assert validate(BoxesTable, {"boxes": [as_rig]}, "f").boxes[0].cls == 2 and row.stamp == 5


def test_an_occ3d_frame_of_numpy_arrays_reads_as_its_lists():
    from occkit.data.info_schema import Occ3DFrame

    pose = {"translation": np.array([1.0, 2.0, 0.5]), "rotation": np.array([1.0, 0, 0, 0])}
    cam = {"intrinsic": np.array([[100.0, 0, 40], [0, 100, 24], [0, 0, 1]]), "extrinsic": pose, "img_path": "x"}
    frame = validate(Occ3DFrame, {"ego_pose": pose, "camera_sensor": {"CAM_FRONT": cam}, "lidar_sensor": {}}, "f")
    assert frame.lidar_sensor is None  # {}: no LiDAR recorded
    assert frame.ego_pose.matrix()[:3, 3].tolist() == [1.0, 2.0, 0.5]
    bad = {**cam, "intrinsic": np.zeros((3, 3))}
    with pytest.raises(ValueError) as e:
        validate(Occ3DFrame, {"ego_pose": pose, "camera_sensor": {"CAM_FRONT": bad}}, "a.json: scene s, frame t")
    assert str(e.value).startswith("a.json: scene s, frame t: camera_sensor.CAM_FRONT.intrinsic: ") and (
        "is not a camera matrix" in str(e.value)
    )
    far = {"translation": [2e3, 0, 0], "rotation": [1, 0, 0, 0]}
    with pytest.raises(ValueError, match=r"camera_sensor.CAM_FRONT.extrinsic.translation: .* more than 1000 m"):
        validate(Occ3DFrame, {"ego_pose": pose, "camera_sensor": {"CAM_FRONT": {**cam, "extrinsic": far}}}, "f")


@pytest.mark.parametrize(
    "text, said",
    [
        ('{"train": [0]}', "train[0]: 0 is not text"),
        ('{"train": "00"}', "train: text '00' is not a list"),
        ("[1]", "list [1] is not an object"),
    ],
)
def test_a_splits_json_of_sequences_is_read_against_its_schema(tmp_path, text, said):
    from occkit.data.recordings.kitti import _splits
    from occkit.data.semantickitti import dataset_splits

    (tmp_path / "splits.json").write_text('{"train": ["00"], "val": ["08"]}')
    assert dataset_splits(tmp_path) == {"train": ("00",), "val": ("08",)}
    assert _splits(tmp_path, ["00"], {}) == {"train_split": ["00"], "val_split": []}  # of the sequences it has
    (tmp_path / "splits.json").write_text(text)
    for read in (lambda: dataset_splits(tmp_path), lambda: _splits(tmp_path, ["00"], {})):
        with pytest.raises(ValueError) as e:
            read()
        assert str(e.value) == f"{tmp_path / 'splits.json'}: {said}"


@pytest.mark.parametrize(
    "ann, said",
    [
        ({"scene_infos": {"s": {"t": 3}}, "train_split": ["s"]}, "scene_infos.s.t: number 3 is not an object"),
        ({"train_split": []}, "scene_infos missing"),
        ({"scene_infos": {}, "train_split": [3]}, "train_split[0]: 3 is not text"),
        (
            {"scene_infos": {}, "train_split": [], "grid": {"range_min": [0, 0, 0], "range_max": [1, 1, 1]}},
            "grid.voxel_size missing",
        ),
        (
            {"scene_infos": {}, "grid": {"range_min": [0, 0, 0], "range_max": [1, 1, 1], "voxel_size": [0, 1, 1]}},
            "grid.voxel_size[0]: 0 is not in (0, inf)",
        ),
    ],
)
def test_an_occ3d_index_is_read_against_its_schema(tmp_path, ann, said):
    from occkit.data.occ3d import Occ3DDataset

    (tmp_path / "annotations.json").write_text(json.dumps(ann))
    with pytest.raises(ValueError) as e:
        Occ3DDataset(tmp_path, "train")
    assert str(e.value).startswith(f"{tmp_path / 'annotations.json'}: {said}"), e.value
