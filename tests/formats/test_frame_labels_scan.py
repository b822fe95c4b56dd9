"""A frame's own LiDAR sweep reaches the label writers as one array, :attr:`FrameLabels.scan` ((N, 4) float32 x y
z intensity in the LiDAR's frame), from which each layout writes its own files: the nuScenes family (Occ3D,
SurroundOcc, OpenOccupancy) a nuScenes ``.pcd.bin`` ((N, 5), ring 0), the KITTI layouts their velodyne scans.
The first form of 0.2.0, ``FrameLabels.sensor_data`` (``{"lidar": (N, 5) rows}``), is still taken and answered
until 0.3.0, with one warning naming the caller."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from occkit.formats.spec import FrameLabels


@pytest.fixture
def said_afresh(monkeypatch):
    """The deprecation warnings said as in a new process (each is said once a process)."""
    import occkit.deprecation

    monkeypatch.setattr(occkit.deprecation, "_SAID", set())


def _scan(n: int = 50) -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.c_[rng.uniform(-20, 20, (n, 3)), rng.uniform(0, 1, n)].astype(np.float32)


def _frame(scan: np.ndarray | None, family: str) -> FrameLabels:
    if family == "kitti":
        record = {"sequence": "00", "frame": "000004"}
        return FrameLabels("00/000004", "00", np.zeros((256, 256, 32), np.uint8), record=record, scan=scan)
    record = {"lidar_sensor": {"filename": "samples/LIDAR_TOP/t0.pcd.bin"}}
    return FrameLabels("t0", "scene-0", np.zeros((200, 200, 16), np.uint8), record=record, scan=scan)


def test_each_layout_writes_the_one_scan_its_own_way(tmp_path):
    from occkit.formats._kitti_labels import KITTI360_WRITER, SEMANTICKITTI_WRITER
    from occkit.formats._nusc_labels import OCC3D_WRITER, OPENOCCUPANCY_WRITER, SURROUNDOCC_WRITER

    scan = _scan()
    assert "lidar" in OCC3D_WRITER.sensor_data and "lidar" in SEMANTICKITTI_WRITER.sensor_data
    assert "lidar" in KITTI360_WRITER.sensor_data and "lidar" in SURROUNDOCC_WRITER.sensor_data
    assert "lidar" in OPENOCCUPANCY_WRITER.sensor_data
    frame = _frame(scan, "nuscenes")
    for name, writer in (("occ3d", OCC3D_WRITER), ("surroundocc", SURROUNDOCC_WRITER)):  # the nuScenes family
        assert writer.files(frame)[1] == "samples/LIDAR_TOP/t0.pcd.bin"
        writer.write(tmp_path / name, frame)
        rows = np.fromfile(tmp_path / name / "samples/LIDAR_TOP/t0.pcd.bin", np.float32).reshape(-1, 5)
        assert np.array_equal(rows[:, :4], scan) and not rows[:, 4].any()  # nuScenes' rows, ring 0
    for writer, rel in ((SEMANTICKITTI_WRITER, "sequences/00/velodyne/000004.bin"),
                        (KITTI360_WRITER, "data_3d_raw/00/velodyne_points/data/0000000004.bin")):  # fmt: skip
        frame = _frame(scan, "kitti")
        assert rel in writer.files(frame)
        writer.write(tmp_path / rel.split("/")[0], frame)
        assert np.array_equal(np.fromfile(tmp_path / rel.split("/")[0] / rel, "<f4").reshape(-1, 4), scan)
    assert OCC3D_WRITER.files(_frame(None, "nuscenes")) == ("gts/scene-0/t0/labels.npz",)  # no scan, no file
    assert len(SURROUNDOCC_WRITER.files(_frame(None, "nuscenes"))) == 1
    assert not any("velodyne" in f for f in SEMANTICKITTI_WRITER.files(_frame(None, "kitti")))


def test_sensor_data_of_the_first_form_is_taken_and_answered_with_a_warning(said_afresh):
    scan = _scan()
    rows = np.c_[scan, np.full(len(scan), 7, np.float32)]  # a ring column: not kept
    with pytest.warns(FutureWarning) as record:
        frame = FrameLabels("t0", "scene-0", np.zeros((2, 2, 2), np.uint8), sensor_data={"lidar": rows})
    (said,) = [str(w.message) for w in record.list]
    assert said.startswith(f"{__name__}: FrameLabels(sensor_data=...)") and "removed in 0.3.0" in said
    assert "FrameLabels.scan" in said and "\n" not in said
    assert np.array_equal(frame.scan, scan)
    with pytest.warns(FutureWarning, match=r"FrameLabels\.sensor_data: .*removed in 0\.3\.0"):
        got = frame.sensor_data
    assert list(got) == ["lidar"] and np.array_equal(got["lidar"][:, :4], scan) and not got["lidar"][:, 4].any()
    with pytest.warns(FutureWarning, match=r"FrameLabels\.sensor_data = \.\.\."):
        frame.sensor_data = {}
    assert frame.scan is None
    positional = FrameLabels("t0", "s", np.zeros((2, 2, 2), np.uint8), {}, {}, {}, {}, {}, {"lidar": rows})
    assert np.array_equal(positional.scan, scan)  # 0.2.0's first order: sensor_data before scan


@pytest.mark.parametrize(
    "given, words",
    [
        ({"radar": np.zeros((3, 5))}, "takes {'lidar': (N, 5) rows} only, got ['radar']"),
        ({"lidar": np.zeros((3, 3))}, "sensor_data['lidar'] of shape (3, 3), expected (N, 5) .pcd.bin rows"),
    ],
)
def test_sensor_data_of_another_shape_is_refused_in_one_line(said_afresh, given, words):
    with pytest.warns(FutureWarning), pytest.raises(ValueError) as e:
        FrameLabels("t0", "scene-0", np.zeros((2, 2, 2), np.uint8), sensor_data=given)
    assert str(e.value).startswith("frame t0: ") and words in str(e.value) and "\n" not in str(e.value)


def test_a_scan_of_another_shape_is_refused_naming_the_frame(tmp_path):
    from occkit.formats._nusc_labels import OCC3D_WRITER

    with pytest.raises(ValueError, match=r"^frame t0: a LiDAR scan of shape \(50, 3\), expected \(N, 4\)"):
        OCC3D_WRITER.write(Path(tmp_path), _frame(_scan()[:, :3], "nuscenes"))
