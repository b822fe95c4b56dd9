"""Raw nuScenes through nuscenes-devkit: the synthetic world written as a nuScenes v1.0 table set
(``occkit synth --format nuscenes``) loads in the devkit's own ``NuScenes`` class unchanged, and
``occkit prepare nuscenes`` on it gives what the synthetic extras hold: the LiDAR points, the poses,
the neighbours and the RayIoU ray origins ``occkit eval --infos`` uses."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

nuscenes_devkit = pytest.importorskip(
    "nuscenes.nuscenes",
    reason="nuscenes-devkit is not installed: pip install --no-deps 'nuscenes-devkit>=1.1' (.ci/run does)",
)

from occkit.cli import main  # noqa: E402
from occkit.data.lidar_sweeps import WithLidarSweeps, read_pcd_bin  # noqa: E402
from occkit.data.nuscenes_raw import NUSCENES_TABLES  # noqa: E402
from occkit.data.nuscenes_tables import LIDARSEG_CATEGORIES, LIDARSEG_TABLE  # noqa: E402
from occkit.data.occ3d import NUSCENES_CAMERAS, Occ3DDataset  # noqa: E402
from occkit.geometry.transforms import transform_from_pose  # noqa: E402
from occkit.labels import OCC3D_FREE  # noqa: E402
from occkit.worlds.driving.nuscenes_export import NUSCENES_VERSION, lidar_to_pcd, write_nuscenes_tables  # noqa: E402
from occkit.worlds.driving.sensors import lidar_elevations  # noqa: E402


@pytest.fixture(scope="module")
def world(synth_root, tmp_path_factory):
    """The session's tiny synthetic world (2 scenes x 2 frames), copied, with its nuScenes tables."""
    root = tmp_path_factory.mktemp("nusc") / "synth"
    shutil.copytree(synth_root, root)
    write_nuscenes_tables(root)
    return root


@pytest.fixture(scope="module")
def nusc(world):
    return nuscenes_devkit.NuScenes(version=NUSCENES_VERSION, dataroot=str(world), verbose=False)


@pytest.fixture(scope="module")
def prepared(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "infos"
    assert main(["prepare", "nuscenes", "--dataroot", str(world), "--occ3d", str(world), "--out", str(out)]) == 0
    return out


def _ann(world):
    return json.loads((world / "annotations.json").read_text())


def _frames(world):
    ann = _ann(world)
    return {t: (scene, info) for scene, infos in ann["scene_infos"].items() for t, info in infos.items()}


def _T(pose):
    return transform_from_pose(pose["translation"], pose["rotation"]).numpy()


def test_devkit_loads_the_synthetic_tables_with_the_occ3d_tokens(world, nusc):
    frames = _frames(world)
    assert {s["token"] for s in nusc.sample} == set(frames)  # sample tokens = Occ3D frame tokens
    assert sorted(s["name"] for s in nusc.scene) == sorted(_ann(world)["scene_infos"])
    for sample in nusc.sample:
        scene, info = frames[sample["token"]]
        assert nusc.get("scene", sample["scene_token"])["name"] == scene
        assert sample["prev"] == info["prev"] and sample["next"] == info["next"]
        assert set(sample["data"]) == {*NUSCENES_CAMERAS, "LIDAR_TOP"}
        for cam in NUSCENES_CAMERAS:
            sd = nusc.get("sample_data", sample["data"][cam])
            assert sd["filename"] == info["camera_sensor"][cam]["img_path"]
            assert os.path.isfile(nusc.get_sample_data_path(sd["token"]))
            cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
            np.testing.assert_array_equal(cs["camera_intrinsic"], info["camera_sensor"][cam]["intrinsic"])
            np.testing.assert_allclose(_T(cs), _T(info["camera_sensor"][cam]["extrinsic"]), atol=1e-6)
        sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        np.testing.assert_allclose(_T(nusc.get("ego_pose", sd["ego_pose_token"])), _T(info["ego_pose"]), atol=1e-6)
        cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        np.testing.assert_allclose(_T(cs), _T(info["lidar_sensor"]["extrinsic"]), atol=1e-6)
        # every box counts the extras' LiDAR points of its instance
        inst = np.load(world / "extras" / scene / sample["token"] / "lidar.npz")["instance"]
        objects = {
            o["instance"]: o
            for o in json.loads((world / "extras" / scene / sample["token"] / "objects.json").read_text())["objects"]
        }
        assert sample["anns"], "the frame's objects became annotations"
        for a in map(lambda t: nusc.get("sample_annotation", t), sample["anns"]):
            (k,) = [
                i for i in objects if nusc.get("instance", a["instance_token"])["token"] == _instance_token(scene, i)
            ]
            assert a["num_lidar_pts"] == int((inst == k).sum())
            np.testing.assert_allclose(a["translation"], objects[k]["box_global"]["center"])


def _instance_token(scene, instance):
    from occkit.worlds.driving.nuscenes_export import nuscenes_token

    return nuscenes_token("instance", scene, instance)


def test_pcd_bin_round_trip_is_bit_exact_and_lands_on_the_extras(world, nusc):
    from nuscenes.utils.data_classes import LidarPointCloud

    beams = _ann(world)["synth_config"]["lidar_beams"]
    frames = _frames(world)
    for sample in nusc.sample:
        scene, info = frames[sample["token"]]
        sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        path = nusc.get_sample_data_path(sd["token"])
        ego = np.load(world / "extras" / scene / sample["token"] / "lidar.npz")["points"]
        T = _T(nusc.get("calibrated_sensor", sd["calibrated_sensor_token"]))
        written = lidar_to_pcd(ego, T, lidar_elevations(beams).numpy())
        devkit = LidarPointCloud.from_file(path).points.T  # (N, 4) float32, as the devkit reads it
        assert devkit.dtype == np.float32 and devkit.shape == (len(ego), 4)
        assert np.array_equal(devkit, written[:, :4]) and np.array_equal(read_pcd_bin(path).numpy(), devkit)
        assert np.array_equal(devkit[:, 3], ego[:, 3])  # intensity untouched
        raw = np.fromfile(path, np.float32).reshape(-1, 5)
        assert raw[:, 4].min() >= 0 and raw[:, 4].max() < beams and np.array_equal(raw[:, 4], np.round(raw[:, 4]))
        back = devkit[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]  # into the ego frame again
        np.testing.assert_allclose(back.astype(np.float32), ego[:, :3], rtol=0, atol=1e-5)  # float32 rounding


def test_prepare_gives_the_poses_and_neighbours_of_the_world(world, prepared):
    doc = json.loads((prepared / "infos.json").read_text())
    assert doc["format"] == "occkit-nuscenes-infos" and doc["nuscenes_version"] == NUSCENES_VERSION
    ann = _ann(world)
    split = {s: "train" for s in ann["train_split"]} | {s: "val" for s in ann["val_split"]}
    frames = _frames(world)
    assert sorted(f["token"] for f in doc["infos"]) == sorted(frames)
    for f in doc["infos"]:
        scene, info = frames[f["token"]]
        assert (f["scene_name"], f["prev"], f["next"], f["split"]) == (scene, info["prev"], info["next"], split[scene])
        assert f["timestamp"] == info["timestamp"]
        ego = {"translation": f["ego2global_translation"], "rotation": f["ego2global_rotation"]}
        lid = {"translation": f["lidar2ego_translation"], "rotation": f["lidar2ego_rotation"]}
        np.testing.assert_allclose(_T(ego), _T(info["ego_pose"]), atol=1e-6)
        np.testing.assert_allclose(_T(lid), _T(info["lidar_sensor"]["extrinsic"]), atol=1e-6)
        assert set(f["cams"]) == set(NUSCENES_CAMERAS)
        for cam, c in f["cams"].items():
            assert c["data_path"] == info["camera_sensor"][cam]["img_path"]
            np.testing.assert_array_equal(c["cam_intrinsic"], info["camera_sensor"][cam]["intrinsic"])
        # keyframes only: the sweeps are the scene's earlier keyframes, newest first
        want = []
        t = info["prev"]
        while t:
            want.append(t)
            t = frames[t][1]["prev"]
        assert [s["data_path"].split("__")[1] for s in f["sweeps"]] == want


def test_prepare_lidar_and_rayiou_origins_equal_the_extras(world, prepared, tmp_path):
    from occkit.metrics.rayiou import RayIoUMetric

    ds = Occ3DDataset(world, "all", load_images=False, load_gt=False, load_extras=True)
    tokens = [fr.token for fr in ds.frames]
    from_infos = WithLidarSweeps(ds, sweeps=1, infos=prepared)
    for i, t in enumerate(tokens):
        ego = torch.from_numpy(np.load(ds.extras_dir(t) / "lidar.npz")["points"])
        got = from_infos[i].lidar
        assert got.dtype == torch.float32 and got.shape == ego.shape
        assert torch.equal(got[:, 3], ego[:, 3])
        assert (got[:, :3] - ego[:, :3]).abs().max() <= 1e-5
    # an Occ3D folder apart from the nuScenes root (as real users hold them): the LiDAR is read under
    # the dataroot prepare recorded
    apart = tmp_path / "occ3d"
    apart.mkdir()
    shutil.copy(world / "annotations.json", apart / "annotations.json")
    ds_apart = Occ3DDataset(apart, "all", load_images=False, load_gt=False, load_extras=False)
    assert torch.equal(WithLidarSweeps(ds_apart, sweeps=1, infos=prepared)[0].lidar, from_infos[0].lidar)
    # two sweeps: the earlier keyframe's points, as the synthetic extras give them
    two_infos, two_extras = WithLidarSweeps(ds, sweeps=2, infos=prepared), WithLidarSweeps(ds, sweeps=2)
    for i in range(len(tokens)):
        a, b = two_infos[i].lidar, two_extras[i].lidar
        assert a.shape == b.shape and (a - b).abs().max() <= 1e-4
    # RayIoU's ray origins from prepare's folder (occkit eval --infos I) = from annotations.json
    via_infos, via_world = RayIoUMetric(infos=prepared, free=OCC3D_FREE), RayIoUMetric(free=OCC3D_FREE)
    via_infos.bind(ds, tokens)
    via_world.bind(ds, tokens)
    for t in tokens:
        o1, o2 = via_infos.frame_extra(t)["ray_origins"], via_world.frame_extra(t)["ray_origins"]
        assert o1.shape == o2.shape and o1.shape[0] >= 1
        torch.testing.assert_close(o1, o2, atol=1e-6, rtol=0)


def test_prepare_names_a_missing_table_in_one_line(world, tmp_path, capsys):
    root = tmp_path / "nusc"
    shutil.copytree(world / NUSCENES_VERSION, root / NUSCENES_VERSION)
    (root / NUSCENES_VERSION / "sample_data.json").unlink()
    assert main(["prepare", "nuscenes", "--dataroot", str(root), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(root / NUSCENES_VERSION / "sample_data.json") in err
    assert not (tmp_path / "out").exists()
    # no table folder of that version: the versions there are named
    assert (
        main(["prepare", "nuscenes", "--dataroot", str(root), "--version", "v1.0-mini", "--out", str(tmp_path / "o")])
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "v1.0-mini" in err and NUSCENES_VERSION in err
    # the map mask the map table names
    shutil.copy(world / NUSCENES_VERSION / "sample_data.json", root / NUSCENES_VERSION / "sample_data.json")
    assert main(["prepare", "nuscenes", "--dataroot", str(root), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "map mask" in err and "maps" in err
    assert {*NUSCENES_TABLES, LIDARSEG_TABLE} == {p.stem for p in (world / NUSCENES_VERSION).glob("*.json")}


def test_prepare_refuses_occ3d_frames_the_tables_lack(world, tmp_path, capsys):
    occ = tmp_path / "occ3d"
    occ.mkdir()
    ann = _ann(world)
    scene = next(iter(ann["scene_infos"]))
    ann["scene_infos"][scene]["f" * 32] = next(iter(ann["scene_infos"][scene].values()))
    (occ / "annotations.json").write_text(json.dumps(ann))
    out = tmp_path / "out"
    assert main(["prepare", "nuscenes", "--dataroot", str(world), "--occ3d", str(occ), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "1 of 5 Occ3D frames" in err and "f" * 32 in err
    assert not out.exists()


def test_prepare_names_an_occ3d_ego_pose_that_is_no_pose_by_file_frame_and_field(world, tmp_path, capsys):
    """An Occ3D frame's ego pose is read through its schema (``EgoFramePose``): a zero rotation was a bare
    ``pose: zero quaternion has no rotation`` naming no file."""
    occ = tmp_path / "occ3d"
    occ.mkdir()
    ann = _ann(world)
    scene = next(iter(ann["scene_infos"]))
    token = next(iter(ann["scene_infos"][scene]))
    ann["scene_infos"][scene][token]["ego_pose"]["rotation"] = [0.0, 0.0, 0.0, 0.0]
    (occ / "annotations.json").write_text(json.dumps(ann))
    out = tmp_path / "out"
    assert main(["prepare", "nuscenes", "--dataroot", str(world), "--occ3d", str(occ), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"{occ / 'annotations.json'}: scene {scene}, frame {token}: ego_pose: rotation: " in err, err
    assert "zero quaternion" in err and not out.exists()


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("OCCKIT_SLOW_TESTS"), reason="synth + prepare + eval end to end: set OCCKIT_SLOW_TESTS=1"
)
def test_synth_prepare_eval_end_to_end(tmp_path, capsys):
    """``occkit synth --format nuscenes``, then ``occkit prepare nuscenes``, then ``occkit eval
    --metrics rayiou`` with and without ``--infos``: the same scores."""
    data = tmp_path / "data"
    args = ["synth", "--format", "nuscenes", "--out", str(data), "--scenes", "2", "--frames", "2"]
    assert main([*args, "--image-size", "32", "64"]) == 0
    nuscenes_devkit.NuScenes(version=NUSCENES_VERSION, dataroot=str(data), verbose=False)
    assert (data / "sweeps" / "LIDAR_TOP").is_dir() and (data / "annotations.json").is_file()
    infos = tmp_path / "infos"
    assert main(["prepare", "nuscenes", "--dataroot", str(data), "--occ3d", str(data), "--out", str(infos)]) == 0
    # resumable: a second run refuses without --overwrite, replaces with it
    assert main(["prepare", "nuscenes", "--dataroot", str(data), "--out", str(infos)]) == 1
    assert main(["prepare", "nuscenes", "--dataroot", str(data), "--out", str(infos), "--overwrite"]) == 0
    pred = tmp_path / "pred"
    pred.mkdir()
    for scene_dir in (data / "gts").iterdir():
        for frame_dir in scene_dir.iterdir():
            sem = np.load(frame_dir / "labels.npz")["semantics"]
            np.savez_compressed(pred / f"{frame_dir.name}.npz", semantics=np.roll(sem, 1, axis=0))  # one voxel off
    capsys.readouterr()
    res = {}
    for name, extra in (("world", []), ("infos", ["--infos", str(infos)])):
        out = tmp_path / f"{name}.json"
        cmd = ["eval", "--gt", str(data), "--pred", str(pred), "--split", "all", "--metrics", "miou,rayiou"]
        assert main([*cmd, *extra, "--json", str(out)]) == 0
        res[name] = json.loads(out.read_text())
    assert res["world"]["rayiou"] == res["infos"]["rayiou"]


def test_prepare_resumes_with_the_scenes_it_lacks(world, tmp_path):
    """A stopped run keeps each finished scene in .scenes/; run again, it reads them back instead of
    walking the tables again, and removes them once infos.json is written."""
    from occkit.data.nuscenes_raw import SCENE_PARTS, prepare_nuscenes

    nusc = nuscenes_devkit.NuScenes(version=NUSCENES_VERSION, dataroot=str(world), verbose=False)
    first = sorted(nusc.scene, key=lambda s: s["name"])[0]
    kept = [{"token": "kept-by-an-earlier-run", "scene_name": first["name"]}]
    (tmp_path / SCENE_PARTS).mkdir()
    (tmp_path / SCENE_PARTS / f"{first['token']}.json").write_text(json.dumps(kept))
    path, n = prepare_nuscenes(world, tmp_path)
    tokens = [f["token"] for f in json.loads(path.read_text())["infos"]]
    assert tokens[0] == "kept-by-an-earlier-run" and n == len(tokens) == 1 + 2  # the other scene walked anew
    assert not (tmp_path / SCENE_PARTS).exists()


def test_prepare_without_the_devkit_says_how_to_install_it(world, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "nuscenes.nuscenes", None)  # import fails as when not installed
    out = tmp_path / "out"
    assert main(["prepare", "nuscenes", "--dataroot", str(world), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'occkit[nuscenes]'" in err
    assert not out.exists() and not list(tmp_path.glob(".out*"))  # refused before any folder is made


def test_the_tables_are_the_same_bytes_each_time(world, tmp_path):
    import hashlib

    again = tmp_path / "again"
    shutil.copytree(world, again, ignore=shutil.ignore_patterns(NUSCENES_VERSION, "LIDAR_TOP", "maps", "lidarseg"))
    write_nuscenes_tables(again)

    def digest(root):
        files = [
            *(root / NUSCENES_VERSION).glob("*.json"),
            *(root / "samples" / "LIDAR_TOP").glob("*"),
            *(root / "maps").glob("*"),
            *(root / LIDARSEG_TABLE / NUSCENES_VERSION).glob("*"),
        ]
        return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}

    frames = len(_frames(world))
    assert digest(again) == digest(world) and len(digest(world)) == len(NUSCENES_TABLES) + 1 + 4 + 1 + frames


def test_prepare_warns_when_occ3d_poses_differ_from_the_tables(world, tmp_path, capsys):
    occ = tmp_path / "occ3d"
    occ.mkdir()
    ann = _ann(world)
    scene = sorted(ann["scene_infos"])[0]
    token = sorted(ann["scene_infos"][scene])[0]
    ann["scene_infos"][scene][token]["ego_pose"]["translation"][0] += 0.01  # 1 cm off
    (occ / "annotations.json").write_text(json.dumps(ann))
    out = tmp_path / "out"
    assert main(["prepare", "nuscenes", "--dataroot", str(world), "--occ3d", str(occ), "--out", str(out)]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "warning" in err[0] and token in err[0] and "0.01" in err[0]
    frames = json.loads((out / "infos.json").read_text())["infos"]
    assert {f["split"] for f in frames} == {"train", "val"}  # the Occ3D splits, still given


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("OCCKIT_SLOW_TESTS"), reason="two LiDAR-teacher trainings: set OCCKIT_SLOW_TESTS=1"
)
def test_lidar_teacher_trains_the_same_from_prepare_as_from_the_extras(world, prepared, tmp_path):
    """The LiDAR teacher (data.lidar_infos = prepare's folder, two sweeps) takes the same first steps as
    from the synthetic extras (data.load_extras, data.lidar_sweeps=2): the points agree to 1e-5 m."""
    from occkit.engine.logging import read_jsonl

    base = [
        "optim.max_steps=2",
        "optim.amp=none",
        "train.device=cpu",
        "train.threads=1",
        "train.log_every=1",
        "train.val_every=0",
        "train.ckpt_every=2",
        "train.tensorboard=false",
        "data.workers=0",
        "train.seed=0",
        "data.lidar_sweeps=2",
    ]
    losses = {}
    for name, extra in (
        ("extras", ["data.load_extras=true"]),
        ("infos", ["data.load_extras=false", f"data.lidar_infos={prepared}"]),
    ):
        run = tmp_path / name
        args = ["train", "lidar-teacher", "--data", str(world), "--out", str(run), "--no-val", "--no-progress"]
        assert main([*args, "--set", *base, *extra]) == 0
        losses[name] = [r["loss"] for r in read_jsonl(run / "train.jsonl")]
    assert len(losses["infos"]) == 2
    # the first step to the bit in this run (3.9279466 both); the second within float rounding of the points
    np.testing.assert_allclose(losses["infos"], losses["extras"], rtol=1e-5)


# ------------------------------------------------------------ prepare checks what it writes (issue 79)
def _tables_copy(world, tmp_path):
    """A nuScenes root whose tables and LiDAR files are copies (to damage) and whose images and maps
    and lidarseg labels are the world's (linked)."""
    root = tmp_path / "nusc"
    shutil.copytree(world / NUSCENES_VERSION, root / NUSCENES_VERSION)
    (root / "maps").symlink_to(world / "maps")
    (root / LIDARSEG_TABLE).symlink_to(world / LIDARSEG_TABLE)
    for top in ("samples", "sweeps"):
        for d in (world / top).iterdir():
            (root / top).mkdir(exist_ok=True)
            if d.name == "LIDAR_TOP":
                shutil.copytree(d, root / top / d.name)
            else:
                (root / top / d.name).symlink_to(d)
    return root


def _table(root, name):
    return json.loads((root / NUSCENES_VERSION / f"{name}.json").read_text())


def _write_table(root, name, rows):
    (root / NUSCENES_VERSION / f"{name}.json").write_text(json.dumps(rows))


def _prepare_refused(root, tmp_path, capsys) -> str:
    out = tmp_path / "out"
    assert main(["prepare", "nuscenes", "--dataroot", str(root), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert not out.exists() and not list(tmp_path.glob(".out*")), list(tmp_path.iterdir())  # nothing hidden left
    return err


def test_prepare_refuses_a_nan_or_non_rigid_ego_pose_naming_the_table_and_token(world, tmp_path, capsys):
    root = _tables_copy(world, tmp_path)
    poses = _table(root, "ego_pose")
    token = poses[1]["token"]
    poses[1]["translation"] = [float("nan"), 0.0, 0.0]
    _write_table(root, "ego_pose", poses)
    err = _prepare_refused(root, tmp_path, capsys)
    # named as the tables load (was: "the pose is not finite" when the scene's frames were made)
    assert (
        f"{root / NUSCENES_VERSION / 'ego_pose.json'}: record '{token}': translation [nan, 0.0, 0.0] is not finite"
        in err
    ), err
    poses[1]["translation"] = [0.0, 0.0, 0.0]
    poses[1]["rotation"] = [0.0, 0.0, 0.0, 0.0]  # was: "pose: zero quaternion has no rotation", no table or token
    _write_table(root, "ego_pose", poses)
    err = _prepare_refused(root, tmp_path, capsys)
    assert f"ego_pose.json: record '{token}': rotation [0.0, 0.0, 0.0, 0.0] is not a unit quaternion" in err, err


def test_prepare_refuses_a_missing_lidar_file_or_sweep_naming_the_sample_data(world, tmp_path, capsys):
    root = _tables_copy(world, tmp_path)
    rows = _table(root, "sample_data")
    key = next(r for r in rows if r["is_key_frame"] and "LIDAR_TOP" in r["filename"])
    (root / key["filename"]).unlink()
    err = _prepare_refused(root, tmp_path, capsys)
    assert f"{root / key['filename']}: missing: the file of sample_data '{key['token']}'" in err, err
    assert "the LIDAR_TOP keyframe of sample" in err
    shutil.copy(world / key["filename"], root / key["filename"])
    # a sweep whose file is absent: a LiDAR sample_data before the first keyframe of a scene
    sweep = {**key, "token": "sweep" + "0" * 27, "filename": "sweeps/LIDAR_TOP/absent.pcd.bin", "prev": ""}
    sweep.update(is_key_frame=False, timestamp=key["timestamp"] - 50000, next=key["token"])
    rows = [{**r, "prev": sweep["token"]} if r["token"] == key["token"] else r for r in rows]
    _write_table(root, "sample_data", [*rows, sweep])
    err = _prepare_refused(root, tmp_path, capsys)
    assert f"{root / sweep['filename']}: missing: the file of sample_data '{sweep['token']}'" in err, err
    assert "a LIDAR_TOP sweep before sample" in err


def test_prepare_refuses_a_sample_missing_a_camera_of_its_scene(world, tmp_path, capsys):
    root = _tables_copy(world, tmp_path)
    rows = _table(root, "sample_data")
    cam = next(r for r in rows if r["is_key_frame"] and "CAM_BACK/" in r["filename"])
    _write_table(root, "sample_data", [r for r in rows if r["token"] != cam["token"]])
    err = _prepare_refused(root, tmp_path, capsys)  # was: written with five cameras
    assert f"sample.json: sample {cam['sample_token']} of " in err and "has no CAM_BACK keyframe" in err, err


def test_prepare_names_the_table_of_a_dangling_token(world, tmp_path, capsys):
    root = _tables_copy(world, tmp_path)
    rows = _table(root, "sample_data")
    rows[0]["calibrated_sensor_token"] = "0a9f" + "0" * 28  # was: KeyError: '0a9f...' (no table, no file)
    _write_table(root, "sample_data", rows)
    err = _prepare_refused(root, tmp_path, capsys)
    assert f"{root / NUSCENES_VERSION / 'sample_data.json'}: names the token '0a9f" in err, err


def test_prepare_on_an_occ3d_folder_or_the_table_folder_says_what_the_folder_is(world, tmp_path, capsys):
    occ = tmp_path / "occ3d"
    occ.mkdir()
    (occ / "annotations.json").write_text("{}")
    (occ / "gts").mkdir()
    assert main(["prepare", "nuscenes", "--dataroot", str(occ), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert f"--dataroot {occ}: an Occ3D-nuScenes folder (annotations.json, gts/), not the nuScenes root" in err
    tables = world / NUSCENES_VERSION
    assert main(["prepare", "nuscenes", "--dataroot", str(tables), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert f"--dataroot {tables}: is a table folder itself" in err and f"--dataroot {world}" in err
    assert "pass --version" not in err


def test_a_second_prepare_into_one_folder_is_refused_naming_the_first(world, tmp_path, capsys):
    from occkit.locks import lock_path, output_lock

    out = tmp_path / "infos"
    lock = output_lock(out, "prepare")
    try:
        assert main(["prepare", "nuscenes", "--dataroot", str(world), "--out", str(out)]) == 1
    finally:
        lock.release()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"is locked by process {os.getpid()} (occkit prepare, since " in err
    assert not out.exists() and not (tmp_path / ".infos.partial").exists() and not lock_path(out).exists()


def test_prepare_names_the_table_and_scene_of_a_dangling_first_sample(world, tmp_path, capsys):
    root = _tables_copy(world, tmp_path)
    scenes = _table(root, "scene")
    scenes[0]["first_sample_token"] = "nowhere"  # was: "error: 'nowhere'", no table, no scene
    _write_table(root, "scene", scenes)
    err = _prepare_refused(root, tmp_path, capsys)
    want = f"{root / NUSCENES_VERSION / 'sample.json'}: no record 'nowhere', which scene {scenes[0]['name']} names"
    assert want in err, err


#: The Occ3D-nuScenes (and SurroundOcc ``nuscenes.yaml``) ``learning_map``: nuScenes-lidarseg category
#: name -> Occ3D class name; the categories not named here map to ``others``.
OCC3D_OF_LIDARSEG = {
    "movable_object.barrier": "barrier",
    "vehicle.bicycle": "bicycle",
    "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus",
    "vehicle.car": "car",
    "vehicle.construction": "construction_vehicle",
    "vehicle.motorcycle": "motorcycle",
    "human.pedestrian.adult": "pedestrian",
    "human.pedestrian.child": "pedestrian",
    "human.pedestrian.construction_worker": "pedestrian",
    "human.pedestrian.police_officer": "pedestrian",
    "movable_object.trafficcone": "traffic_cone",
    "vehicle.trailer": "trailer",
    "vehicle.truck": "truck",
    "flat.driveable_surface": "driveable_surface",
    "flat.other": "other_flat",
    "flat.sidewalk": "sidewalk",
    "flat.terrain": "terrain",
    "static.manmade": "manmade",
    "static.vegetation": "vegetation",
}


def test_lidarseg_labels_load_in_the_devkit_and_map_back_to_the_occ3d_classes(world, nusc):
    from nuscenes.utils.color_map import get_colormap

    from occkit.labels import OCC3D_CLASSES

    # category.json is nuScenes-lidarseg's: all 32 categories with their indices, in the devkit's order
    assert [nusc.lidarseg_idx2name_mapping[i] for i in range(len(LIDARSEG_CATEGORIES))] == list(get_colormap())
    frames = _frames(world)
    seen = set()
    for sample in nusc.sample:
        scene, _ = frames[sample["token"]]
        sd_token = sample["data"]["LIDAR_TOP"]
        rec = nusc.get("lidarseg", sd_token)
        assert rec["sample_data_token"] == sd_token
        assert rec["filename"] == f"lidarseg/{NUSCENES_VERSION}/{sd_token}_lidarseg.bin"
        seg = np.fromfile(world / rec["filename"], dtype=np.uint8)
        lid = np.load(world / "extras" / scene / sample["token"] / "lidar.npz")
        assert seg.shape == (len(np.fromfile(nusc.get_sample_data_path(sd_token), np.float32)) // 5,)
        back = [OCC3D_OF_LIDARSEG.get(nusc.lidarseg_idx2name_mapping[int(i)], "others") for i in seg]
        assert back == [OCC3D_CLASSES[c] for c in lid["labels"]]
        seen |= set(back)
    assert {"driveable_surface", "manmade", "vegetation", "car"} <= seen  # ground, buildings, trees, boxes


def test_an_instances_annotations_are_chained_in_time(nusc):
    """The devkit's box interpolation (and a label generator walking an object's track) follows an
    instance's ``sample_annotation`` rows through ``prev`` / ``next``."""
    chained = 0
    for inst in nusc.instance:
        tokens, t = [], inst["first_annotation_token"]
        while t:
            tokens.append(t)
            t = nusc.get("sample_annotation", t)["next"]
        assert len(tokens) == inst["nbr_annotations"] and tokens[-1] == inst["last_annotation_token"]
        rows = [nusc.get("sample_annotation", t) for t in tokens]
        assert [r["prev"] for r in rows] == ["", *tokens[:-1]]
        stamps = [nusc.get("sample", r["sample_token"])["timestamp"] for r in rows]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        assert len({nusc.get("sample", r["sample_token"])["scene_token"] for r in rows}) == 1
        chained += len(rows) > 1
    assert chained > 0  # some object is seen in more than one keyframe


def test_a_lidar_label_without_a_lidarseg_category_is_refused_by_name(tmp_path):
    from occkit.labels import OCC3D_FREE
    from occkit.worlds.driving.nuscenes_export import lidarseg_indices, lidarseg_lookup

    lut = lidarseg_lookup()
    where = tmp_path / "lidar.npz"
    got = lidarseg_indices(np.array([0, 4, 16], np.uint8), 3, lut, where)
    assert [LIDARSEG_CATEGORIES[i] for i in got] == ["static.other", "vehicle.car", "static.vegetation"]
    with pytest.raises(ValueError, match=f"lidar.npz: labels \\[{OCC3D_FREE}\\]"):
        lidarseg_indices(np.array([3, OCC3D_FREE], np.uint8), 2, lut, where)
    with pytest.raises(ValueError, match="expected integer \\(3,\\) for 3 points"):
        lidarseg_indices(np.array([3, 4], np.uint8), 3, lut, where)


# ------------------------------------------------------------ a world with a rig folder: its sweeps
@pytest.fixture(scope="module")
def rig_world(synth_root, tmp_path_factory):
    """The session's tiny world with a rig of 2 sweeps between keyframes, and its nuScenes tables."""
    from occkit.worlds.driving import SynthConfig
    from occkit.worlds.driving.sweeps import write_rig

    root = tmp_path_factory.mktemp("nusc_rig") / "synth"
    shutil.copytree(synth_root, root)
    cfg = SynthConfig(scenes=2, frames=2, seed=0, image_size=(64, 176))  # synth_root's (tests/conftest.py)
    write_rig(root, cfg, 2)
    write_nuscenes_tables(root)
    return root


def test_the_rigs_sweeps_are_lidar_sample_data_linked_in_time_between_the_keyframes(rig_world):
    from nuscenes.utils.data_classes import LidarPointCloud

    nusc = nuscenes_devkit.NuScenes(version=NUSCENES_VERSION, dataroot=str(rig_world), verbose=False)
    for scene in nusc.scene:
        rig = json.loads((rig_world / "rig" / scene["name"] / "sweeps.json").read_text())["sweeps"]
        assert sum(not s["keyframe"] for s in rig) > 0
        first = nusc.get("sample", scene["first_sample_token"])
        rows, t = [], first["data"]["LIDAR_TOP"]
        while t:
            rows.append(nusc.get("sample_data", t))
            t = rows[-1]["next"]
        assert [r["prev"] for r in rows] == ["", *(r["token"] for r in rows[:-1])]
        assert [r["timestamp"] for r in rows] == [s["timestamp"] for s in rig]  # every sweep, in time order
        assert [r["is_key_frame"] for r in rows] == [s["keyframe"] for s in rig]
        keys = [s for s in rig if s["keyframe"]]
        for r, s in zip(rows, rig):
            if s["keyframe"]:
                assert r["sample_token"] == s["token"]
                # a keyframe's LiDAR is the rig's recording too (its points and pose), not the extras'
                pts = np.load(rig_world / "rig" / scene["name"] / s["points"])["points"]
                assert np.array_equal(LidarPointCloud.from_file(nusc.get_sample_data_path(r["token"])).points.T, pts)
                ego = _T(nusc.get("ego_pose", r["ego_pose_token"]))
                np.testing.assert_allclose(ego, _T(s["ego_pose"]), atol=1e-6)
                continue
            # a sweep belongs to the next keyframe's sample, as in nuScenes
            assert r["sample_token"] == next(k["token"] for k in keys if k["timestamp"] >= s["timestamp"])
            assert r["filename"].startswith("sweeps/LIDAR_TOP/")
            np.testing.assert_allclose(_T(nusc.get("ego_pose", r["ego_pose_token"])), _T(s["ego_pose"]), atol=1e-6)
            pts = np.load(rig_world / "rig" / scene["name"] / s["points"])["points"]
            assert np.array_equal(LidarPointCloud.from_file(nusc.get_sample_data_path(r["token"])).points.T, pts)
            # the devkit interpolates the boxes of the objects seen at both keyframes
            sample = nusc.get("sample", r["sample_token"])
            prev = {
                nusc.get("sample_annotation", a)["instance_token"]: a
                for a in nusc.get("sample", sample["prev"])["anns"]
            }
            boxes = nusc.get_boxes(r["token"])
            assert len(boxes) == len(sample["anns"])
            for box in boxes:
                cur = nusc.get("sample_annotation", box.token)
                if cur["instance_token"] in prev:
                    a, b = (
                        np.array(nusc.get("sample_annotation", prev[cur["instance_token"]])["translation"]),
                        np.array(cur["translation"]),
                    )
                    w = (r["timestamp"] - nusc.get("sample", sample["prev"])["timestamp"]) / (
                        sample["timestamp"] - nusc.get("sample", sample["prev"])["timestamp"]
                    )
                    np.testing.assert_allclose(box.center, a + w * (b - a), atol=1e-6)


# ------------------------------------------- issue 89: names in the tables, loops, lost keyframes
def test_prepare_refuses_an_absolute_or_climbing_sample_data_filename(world, tmp_path, capsys):
    root = _tables_copy(world, tmp_path)
    rows = _table(root, "sample_data")
    key = next(r for r in rows if r["is_key_frame"] and "LIDAR_TOP" in r["filename"])
    for name, why in (("/etc/passwd", "an absolute path"), ("../nusc/" + key["filename"], "it climbs out with ..")):
        _write_table(root, "sample_data", [{**r, "filename": name} if r is key else r for r in rows])
        err = _prepare_refused(root, tmp_path, capsys)
        assert f"sample_data.json: sample_data '{key['token']}' names the file '{name}'" in err, err
        assert f"outside --dataroot {root} ({why})" in err, err


def test_prepare_refuses_samples_whose_next_links_loop(world, tmp_path, capsys):
    root = _tables_copy(world, tmp_path)
    samples = _table(root, "sample")
    scene = _table(root, "scene")[0]
    first = next(s for s in samples if s["token"] == scene["first_sample_token"])
    second = next(s for s in samples if s["token"] == first["next"])
    second["next"] = first["token"]  # was: prepare walked the two for ever, until memory ran out
    _write_table(root, "sample", samples)
    err = _prepare_refused(root, tmp_path, capsys)
    assert f"sample.json: scene {scene['name']}: sample '{first['token']}' comes again along 'next'" in err, err


def test_prepare_refuses_a_first_sample_token_that_loses_keyframes(world, tmp_path, capsys):
    root = _tables_copy(world, tmp_path)
    scenes = _table(root, "scene")
    first = next(s for s in _table(root, "sample") if s["token"] == scenes[0]["first_sample_token"])
    scenes[0]["first_sample_token"] = first["next"]  # the scene's second sample: was silently one keyframe short
    _write_table(root, "scene", scenes)
    err = _prepare_refused(root, tmp_path, capsys)
    want = f"scene.json: scene {scenes[0]['name']}: first_sample_token '{first['next']}' is not the scene's first"
    assert want in err and f"not '{first['token']}'" in err, err


def test_prepare_refuses_a_scene_token_that_leads_outside_its_folder(world, tmp_path, capsys):
    root = _tables_copy(world, tmp_path)
    tables = {name: _table(root, name) for name in ("scene", "sample")}
    old = tables["scene"][0]["token"]
    new = "../../../escaped"
    tables["scene"][0]["token"] = new
    for s in tables["sample"]:
        if s["scene_token"] == old:
            s["scene_token"] = new
    for name, rows in tables.items():
        _write_table(root, name, rows)
    err = _prepare_refused(root, tmp_path, capsys)
    assert f"scene {tables['scene'][0]['name']!r}, token: names ../../../escaped.json" in err, err
    assert "lies outside --out" in err and not list(tmp_path.parent.glob("escaped.json"))


def test_prepare_refuses_a_truncated_lidar_file_and_says_an_empty_one(world, tmp_path, capsys):
    """A LiDAR file is a whole number of 20-byte points: one 3 bytes short is refused naming it; an empty
    one (a sweep with no returns) is recorded and said once."""
    root = _tables_copy(world, tmp_path)
    key = next(r for r in _table(root, "sample_data") if r["is_key_frame"] and "LIDAR_TOP" in r["filename"])
    f = root / key["filename"]
    data = f.read_bytes()
    assert len(data) % 20 == 0 and data
    f.write_bytes(data[:-3])
    err = _prepare_refused(root, tmp_path, capsys)
    assert f"{f}: {len(data) - 3} bytes, not a whole number of points (20 bytes each" in err, err
    assert f"sample_data '{key['token']}'" in err
    f.write_bytes(b"")
    assert main(["prepare", "nuscenes", "--dataroot", str(root), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert err.count(f"occkit: warning: {f}: empty (a LiDAR sweep with no returns)") == 1, err


def test_prepare_takes_a_version_with_a_trailing_slash_as_the_folder_and_refuses_an_empty_one(tmp_path):
    """``--version v1.0-mini/`` (as a shell completes it) names the folder, as ``occkit label --reader nuscenes``
    takes it; ``--version /`` names none."""
    from occkit.data.nuscenes_raw import resolve_version

    (tmp_path / "v1.0-mini").mkdir()
    assert resolve_version(tmp_path, "v1.0-mini/") == resolve_version(tmp_path, "v1.0-mini") == "v1.0-mini"
    with pytest.raises(ValueError, match="--version '/': empty"):
        resolve_version(tmp_path, "/")
