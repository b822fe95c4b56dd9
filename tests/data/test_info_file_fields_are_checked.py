"""The nuScenes-style info files (``occkit prepare nuscenes``'s ``infos.json``, or a ``.pkl`` / ``.json``
of mmdet3d's fields) spoiled field by field: every reader of them (RayIoU's poses, the LiDAR sweeps of
``data.lidar_infos``, ``occkit convert --infos``, the SurroundOcc / OpenOccupancy index of
``occkit.data.nusc_index``) refuses the file in one line naming it, the frame and the field, where it
used to fail in ``int()`` or ``float()`` naming nothing, raise a ``TypeError``, or read a NaN, a list or
``None`` as a value (docs/formats/nuscenes.md)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from occkit.cli import main

pytest.importorskip(
    "nuscenes.nuscenes",
    reason="nuscenes-devkit is not installed: pip install --no-deps 'nuscenes-devkit>=1.1' (.ci/run does)",
)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, dict]:
    """A tiny nuScenes root (2 scenes x 2 keyframes, 2 sweeps between them) and the infos.json
    ``occkit prepare nuscenes`` wrote of it."""
    base = tmp_path_factory.mktemp("infos")
    root, out = base / "nus", base / "prep"
    argv = ["synth", "--format", "nuscenes", "--out", str(root), "--scenes", "2", "--frames", "2"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main([*argv, "--image-size", "48", "80", "--sweeps", "2", "--beams", "8"]) == 0
        assert main(["prepare", "nuscenes", "--dataroot", str(root), "--out", str(out), "--sweeps", "2"]) == 0
    data = json.loads((out / "infos.json").read_text())
    assert [len(f["sweeps"]) for f in data["infos"]] == [0, 2, 0, 2]  # frame 1 has sweeps to spoil
    return root, data


def _rayiou(p):
    from occkit.metrics.rayiou import load_nuscenes_infos

    return load_nuscenes_infos(p)


def _lidar(p):
    from occkit.data.lidar_sweeps import load_lidar_infos

    return load_lidar_infos(p)


def _index(p):
    from occkit.data.nusc_index import annotations_from_infos

    return annotations_from_infos({"train": p})


def _convert(p):
    from occkit.formats import _nusc_labels
    from occkit.formats._nusc_labels import _complete_record

    _nusc_labels._INFOS.clear()
    return _complete_record({}, _TOKEN1[0], p)


_TOKEN1: list[str] = []  # frame 1's token (the one spoiled), set by the fixture below
READERS = {"rayiou": _rayiou, "lidar": _lidar, "index": _index, "convert": _convert}


def _frame(i, key, value):
    def spoil(d):
        d["infos"][i][key] = value

    return spoil


def _sweep(key, value):
    def spoil(d):
        d["infos"][1]["sweeps"][0][key] = value

    return spoil


def _dup(d):
    d["infos"][1]["token"] = d["infos"][0]["token"]


# (spoil, the readers that read the field, what the line says after the file's name)
CASES = {
    "frame that is None": (lambda d: d["infos"].__setitem__(1, None), READERS, "frame 1 is NoneType"),
    "frame that is a list": (lambda d: d["infos"].__setitem__(1, [1, 2]), READERS, "frame 1 is list"),
    "infos that is a mapping": (lambda d: d.__setitem__("infos", {"a": 1}), READERS, "'infos' is dict"),
    "no infos at all": (lambda d: d.pop("infos") and None, READERS, "a mapping without 'infos' or 'data_list'"),
    "token that is None": (_frame(1, "token", None), READERS, "frame 1: 'token' is NoneType"),
    "token that is a number": (_frame(1, "token", 12), READERS, "frame 1: 'token' is int"),
    "token listed twice": (_dup, READERS, "is listed twice (frames 0 and 1)"),
    "scene name that is a list": (_frame(1, "scene_name", ["x"]), ("rayiou",), "'scene_name' is list"),
    "timestamp that is text": (_frame(1, "timestamp", "abc"), ("rayiou", "index"), "'timestamp' is str"),
    "timestamp that is a boolean": (_frame(1, "timestamp", True), ("rayiou", "index"), "'timestamp' is bool"),
    "timestamp that is NaN": (_frame(1, "timestamp", float("nan")), ("rayiou", "index"), "'timestamp' is float"),
    "lidar2ego rotation that is a matrix": (
        _frame(1, "lidar2ego_rotation", [[1, 0, 0], [0, 1, 0], [0, 0, 1]]),
        READERS,
        "lidar2ego: not a pose",
    ),
    "lidar2ego translation with a NaN": (
        _frame(1, "lidar2ego_translation", [float("nan"), 0, 0]),
        READERS,
        "lidar2ego: not finite",
    ),
    "lidar2ego rotation of zeros": (_frame(1, "lidar2ego_rotation", [0, 0, 0, 0]), READERS, "zero quaternion"),
    "ego2global rotation with a NaN": (
        _frame(1, "ego2global_rotation", [float("nan"), 0, 0, 0]),
        ("rayiou", "index"),
        "ego2global: not finite",
    ),
    "lidar path that is a number": (_frame(1, "lidar_path", 5), ("lidar", "index", "convert"), "'lidar_path' is int"),
    "lidar path that is a list": (
        _frame(1, "lidar_path", ["samples/x.bin"]),
        ("lidar", "index", "convert"),
        "'lidar_path' is list",
    ),
    "lidar token that is a list": (_frame(1, "lidar_token", ["x"]), ("index", "convert"), "'lidar_token' is list"),
    "scene token that is a list": (_frame(1, "scene_token", ["x"]), ("index", "convert"), "'scene_token' is list"),
    "sweeps that is None": (_frame(1, "sweeps", None), ("lidar",), "'sweeps' is NoneType"),
    "sweeps that is text": (_frame(1, "sweeps", "abc"), ("lidar",), "'sweeps' is str"),
    "sweep that is a number": (
        lambda d: d["infos"][1]["sweeps"].__setitem__(0, 7),
        ("lidar",),
        "sweep 0 is int",
    ),
    "sweep rotation of three numbers": (
        _sweep("sensor2lidar_rotation", [1, 2, 3]),
        ("lidar",),
        "sweep 0: 'sensor2lidar_rotation' has shape 3, not 3x3",
    ),
    "sweep rotation that is text": (_sweep("sensor2lidar_rotation", "abc"), ("lidar",), "not numbers"),
    "sweep rotation with a NaN": (
        _sweep("sensor2lidar_rotation", [[float("nan"), 0, 0], [0, 1, 0], [0, 0, 1]]),
        ("lidar",),
        "'sensor2lidar_rotation' is not finite",
    ),
    "sweep rotation that scales": (
        _sweep("sensor2lidar_rotation", [[2, 0, 0], [0, 2, 0], [0, 0, 2]]),
        ("lidar",),
        "'sensor2lidar_rotation' is not a rotation",
    ),
    "sweep translation of two numbers": (
        _sweep("sensor2lidar_translation", [0, 0]),
        ("lidar",),
        "'sensor2lidar_translation' has shape 2, not 3",
    ),
    "sweep path that is a number": (_sweep("data_path", 5), ("lidar",), "sweep 0: 'data_path' is int"),
    "cams that is a list": (_frame(1, "cams", []), ("index",), "'cams' is list"),
    "camera intrinsic of zeros": (
        lambda d: d["infos"][1]["cams"]["CAM_FRONT"].__setitem__("cam_intrinsic", [[0] * 3] * 3),
        ("index",),
        "CAM_FRONT: 'cam_intrinsic' is singular",
    ),
    "camera intrinsic with a NaN": (
        lambda d: d["infos"][1]["cams"]["CAM_FRONT"].__setitem__("cam_intrinsic", [[float("nan")] * 3] * 3),
        ("index",),
        "CAM_FRONT: 'cam_intrinsic' is not finite",
    ),
    "prev that is a list": (_frame(1, "prev", ["x"]), ("index",), "'prev' is list"),
    "a camera missing": (lambda d: d["infos"][1]["cams"].pop("CAM_BACK"), ("index",), "CAM_BACK"),
    "a path without samples/": (_frame(1, "lidar_path", "elsewhere/x.pcd.bin"), ("index",), "samples/"),
}


#: What the readers that read a frame through its schema (:mod:`occkit.data.info_schema`: the LiDAR sweeps and
#: the index) say instead, after the file and the frame: the field, the value, the problem.
SCHEMA_SAYS = {
    "camera intrinsic of zeros": "cams.CAM_FRONT.cam_intrinsic: [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]] is "
    "not a camera matrix",
    "camera intrinsic with a NaN": "cams.CAM_FRONT.cam_intrinsic[0][0]: nan is not finite",
    "cams that is a list": "cams: list [] is not an object",
    "a camera missing": "cams.CAM_BACK missing",
    "a path without samples/": "lidar_path: 'elsewhere/x.pcd.bin': string should match pattern",
    "ego2global rotation with a NaN": "ego2global_rotation[0]: nan is not finite",
    "lidar path that is a list": "lidar_path: ['samples/x.bin'] is not text",
    "lidar path that is a number": "lidar_path: 5 is not text",
    "lidar token that is a list": "lidar_token: ['x'] is not text",
    "lidar2ego rotation that is a matrix": "lidar2ego_rotation[0]: [1, 0, 0] is not a number",
    "lidar2ego translation with a NaN": "lidar2ego_translation[0]: nan is not finite",
    "lidar2ego rotation of zeros": "lidar2ego_rotation: [0.0, 0.0, 0.0, 0.0] is a zero quaternion",
    "prev that is a list": "prev: ['x'] is not text",
    "scene token that is a list": "scene_token: ['x'] is not text",
    "sweep path that is a number": "sweeps[0]: data_path: 5 is not text",
    "sweep rotation of three numbers": "sweeps[0]: sensor2lidar_rotation[0]: 1 is not a list of 3",
    "sweep rotation that is text": "sweeps[0]: sensor2lidar_rotation: 'abc' is not a list of 3",
    "sweep rotation that scales": (
        "sweeps[0]: sensor2lidar_rotation: [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]] is not a rotation"
    ),
    "sweep rotation with a NaN": "sweeps[0]: sensor2lidar_rotation[0][0]: nan is not finite",
    "sweep that is a number": "sweeps[0]: number 7 is not an object",
    "sweep translation of two numbers": "sweeps[0]: sensor2lidar_translation: [0, 0] is not a list of 3",
    "sweeps that is None": "sweeps: null is not a list",
    "sweeps that is text": "sweeps: text 'abc' is not a list",
}
SCHEMA_READERS = ("lidar", "index")


@pytest.fixture(scope="module", autouse=True)
def _token1(prepared):
    _TOKEN1[:] = [prepared[1]["infos"][1]["token"]]


def _one_line_naming(err: BaseException, path: Path, said: str) -> None:
    msg = str(err.args[0]) if isinstance(err, KeyError) else str(err)
    assert "\n" not in msg and msg.startswith(str(path)) and said in msg, msg


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_reader_of_an_info_file_names_the_file_frame_and_field(prepared, tmp_path, case):
    spoil, readers, said = CASES[case]
    data = copy.deepcopy(prepared[1])
    spoil(data)
    path = tmp_path / "infos.json"
    path.write_text(json.dumps(data))
    for name in readers:
        with pytest.raises((ValueError, KeyError)) as err:
            READERS[name](path)
        words = SCHEMA_SAYS.get(case, said) if name in SCHEMA_READERS else said
        _one_line_naming(err.value, path, f"frame 1 (token {_TOKEN1[0]}): {words}" if words is not said else said)
    for name in set(READERS) - set(readers):  # a field a reader does not read is not its business
        READERS[name](path)


def test_the_unspoiled_file_reads_in_every_reader_as_json_and_as_pickle(prepared, tmp_path):
    path = tmp_path / "infos.pkl"
    path.write_bytes(pickle.dumps(prepared[1]))
    for p in (tmp_path / "infos.json", path):
        if p.suffix == ".json":
            p.write_text(json.dumps(prepared[1]))
        assert len(_rayiou(p)) == len(_lidar(p)) == 4
        assert sum(len(v) for v in _index(p)["scene_infos"].values()) == 4
        record = _convert(p)
        assert record["lidar_sensor"]["filename"] == prepared[1]["infos"][1]["lidar_path"]
    frame = prepared[1]["infos"][1]
    sweeps = _lidar(path)[frame["token"]]["sweeps"]
    assert [d for d, _ in sweeps] == [s["data_path"] for s in frame["sweeps"]]
    for (_, T), s in zip(sweeps, frame["sweeps"]):  # the transforms checked all at once are each sweep's own
        want = np.eye(4)
        want[:3, :3], want[:3, 3] = s["sensor2lidar_rotation"], s["sensor2lidar_translation"]
        assert np.array_equal(T.numpy(), want)


def test_a_pose_of_numpy_arrays_is_said_on_one_line(prepared, tmp_path):
    """mmdet3d's pickles hold numpy arrays: a 3x3 where a quaternion belongs was said across lines."""
    data = copy.deepcopy(prepared[1])
    for f in data["infos"]:
        for k in ("lidar2ego_translation", "lidar2ego_rotation", "ego2global_translation", "ego2global_rotation"):
            f[k] = np.asarray(f[k])
    data["infos"][1]["ego2global_rotation"] = np.zeros((3, 3))
    path = tmp_path / "infos.pkl"
    path.write_bytes(pickle.dumps(data))
    for reader, said in (
        (_rayiou, "ego2global: not a pose"),
        (_index, "ego2global_rotation[0]: [0.0, 0.0, 0.0] is not a"),
    ):
        with pytest.raises(ValueError) as err:
            reader(path)
        _one_line_naming(err.value, path, said)


@pytest.mark.parametrize(
    "content, said",
    [
        (lambda raw: raw[: len(raw) // 2], "a damaged or cut-short pickle"),
        (lambda raw: b"", "the pickle ends early or the file is empty"),
        (lambda raw: b"\x80\x02cnomod_x\nNothin\nq\x00)\x81q\x01.", "an object of class nomod_x.Nothin"),
    ],
    ids=["cut short", "empty", "of a class that does not exist"],
)
def test_a_pickle_that_cannot_be_unpickled_is_named_with_the_cause(prepared, tmp_path, content, said):
    path = tmp_path / "infos.pkl"
    path.write_bytes(content(pickle.dumps(prepared[1])))
    for reader in READERS.values():
        with pytest.raises(ValueError) as err:
            reader(path)
        _one_line_naming(err.value, path, said)


def test_index_refuses_a_frame_listed_in_both_splits(prepared, tmp_path):
    from occkit.data.nusc_index import annotations_from_infos

    a, b = tmp_path / "train.json", tmp_path / "val.json"
    a.write_text(json.dumps(prepared[1]))
    b.write_text(json.dumps({"infos": prepared[1]["infos"][1:2]}))
    with pytest.raises(ValueError) as err:
        annotations_from_infos({"train": a, "val": b})
    _one_line_naming(err.value, b, f"also listed in {a}")


@pytest.mark.parametrize(
    "spoil, said",
    [
        (lambda raw: raw + b"\0\0", "not a whole number of points"),  # np.fromfile dropped two bytes unseen
        (lambda raw: raw[:28] + np.float32(np.nan).tobytes() + raw[32:], "1 of"),
    ],
    ids=["two bytes added", "a NaN"],
)
def test_a_damaged_lidar_file_is_refused_when_read(prepared, tmp_path, spoil, said):
    from occkit.data.lidar_sweeps import read_pcd_bin

    src = prepared[0] / prepared[1]["infos"][0]["lidar_path"]
    f = tmp_path / "x.pcd.bin"
    f.write_bytes(spoil(src.read_bytes()))
    with pytest.raises(ValueError) as err:
        read_pcd_bin(f)
    _one_line_naming(err.value, f, said)
    assert len(read_pcd_bin(src)) == src.stat().st_size // 20  # the file itself reads whole


def _run(argv) -> tuple[int, list[str]]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(argv)
    return rc, [line for line in err.getvalue().splitlines() if line.strip()]


def test_eval_names_the_info_file_of_a_text_timestamp(prepared, tmp_path):
    """``occkit eval --infos``: a timestamp of text said "invalid literal for int()" naming nothing."""
    root, data = prepared
    pred = tmp_path / "pred"
    pred.mkdir()
    for f in data["infos"]:
        (pred / f"{f['token']}.npz").write_bytes(
            (root / "gts" / f["scene_name"] / f["token"] / "labels.npz").read_bytes()
        )
    data = copy.deepcopy(data)
    data["infos"][1]["timestamp"] = "abc"
    infos = tmp_path / "infos.json"
    infos.write_text(json.dumps(data))
    argv = ["eval", "--gt", str(root), "--pred", str(pred), "--metrics", "rayiou", "--split", "all", "--no-progress"]
    rc, err = _run([*argv, "--processes", "1", "--infos", str(infos)])
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith(f"occkit eval: error: {infos}: frame 1 (token ") and "'timestamp' is str" in err[0]


def test_training_refuses_a_sweep_rotation_with_a_nan(prepared, tmp_path):
    """``data.lidar_infos``: a NaN in a sweep's rotation used to be trained on (NaN points)."""
    root, data = prepared
    data = copy.deepcopy(data)
    data["infos"][1]["sweeps"][0]["sensor2lidar_rotation"][0][0] = float("nan")
    infos = tmp_path / "infos.json"
    infos.write_text(json.dumps(data))
    run = tmp_path / "run"
    sets = ["optim.max_steps=1", "train.device=cpu", "data.workers=0", "data.lidar_sweeps=2", "data.load_extras=false"]
    argv = ["train", "lidar-teacher", "--data", str(root), "--out", str(run), "--no-val", "--no-progress"]
    rc, err = _run([*argv, "--set", *sets, f"data.lidar_infos={infos}"])
    assert rc == 1 and len(err) == 1, err
    assert (
        f"{infos}: frame 1 (token " in err[0] and "sweeps[0]: sensor2lidar_rotation[0][0]: nan is not finite" in err[0]
    )
    assert not (run / "checkpoints").exists()
