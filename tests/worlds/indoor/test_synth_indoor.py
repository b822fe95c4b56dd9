"""The procedural indoor world: rooms, views, maps, occupancy and the NYU files it writes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from occkit.data.nyu import NYU_K, NYUDataset, downsample_target, read_bin, read_depth_png, xyz_to_file
from occkit.geometry.grid import Grid
from occkit.worlds.driving.primitives import BOX
from occkit.worlds.indoor import IndoorConfig, build_room, frame_world, generate_indoor, render_view, room_occupancy
from occkit.worlds.indoor.room import FLOOR, TABLE, WALL, WALL_C, Room, _to_prims, look_at


def _box_room() -> Room:
    """A 4 x 3 m room, 2.5 m high, with one table-class box 1 m wide (x 1.5..2.5, y 1..2, z 0..0.5)."""
    Lx, Ly, H = 4.0, 3.0, 2.5
    rows = [
        (BOX, (Lx / 2, Ly / 2, -WALL / 2), (Lx / 2 + WALL, Ly / 2 + WALL, WALL / 2), 0.0, FLOOR, 0, (0.5,) * 3, 0),
        (BOX, (Lx / 2, Ly + WALL / 2, H / 2), (Lx / 2 + WALL, WALL / 2, H / 2 + WALL), 0.0, WALL_C, 0, (0.8,) * 3, 0),
        (BOX, (2.0, 1.5, 0.25), (0.5, 0.5, 0.25), 0.0, TABLE, 1, (0.4, 0.3, 0.2), 0),
    ]
    return Room(
        index=0, kind="test", size=(Lx, Ly, H), block=None, prims=_to_prims(rows), objects=[], views=[], description=""
    )


def test_rooms_are_deterministic_and_varied():
    cfg = IndoorConfig(scenes=3, frames=2, seed=5)
    a, b, c = build_room(cfg, 1), build_room(cfg, 1), build_room(cfg, 2)
    assert torch.equal(a.prims.center, b.prims.center) and a.description == b.description
    assert a.description != c.description or not torch.equal(a.prims.center[:6], c.prims.center[:6])
    assert len(a.views) == 2 and all(v.shape == (4, 4) for v in a.views)
    classes = set(a.prims.cls.tolist())
    assert {1, 2, 3, 4}.issubset(classes)  # ceiling, floor, wall, window
    for T in a.views:  # cameras stand inside the room, 1.1 to 1.6 m high
        x, y, z = T[:3, 3].tolist()
        assert 0 < x < a.size[0] and 0 < y < a.size[1] and 1.1 <= z <= 1.6
        R = T[:3, :3]
        assert torch.allclose(R.T @ R, torch.eye(3, dtype=R.dtype), atol=1e-9)


def test_render_depth_and_classes_hand_checked():
    room = _box_room()
    # camera at (2, 0.5, 1) looking along +y: the far wall's inner face (y = 3) is 2.5 m ahead
    T = look_at(np.array([2.0, 0.5, 1.0]), np.array([2.0, 3.0, 1.0]))
    K = torch.tensor([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]], dtype=torch.float64)
    out = render_view(room, K, T, 48, 64)
    assert out["rgb"].shape == (48, 64, 3) and out["rgb"].dtype == torch.uint8
    assert float(out["depth"][0, 32]) == pytest.approx(2.5, abs=1e-5) and int(out["semantics"][0, 32]) == WALL_C
    # looking down from the centre: pixel row 47 sees the table top (z = 0.5) at depth (1 - 0.5) / tan
    v = 47.5
    dy = (v - 24) / 50.0  # ray (0, dy, 1) in the camera: down dy per metre ahead
    t_table = 0.5 / dy
    assert 1.0 <= 0.5 + t_table <= 2.0  # the ray meets the top inside the table's y range
    assert int(out["semantics"][47, 32]) == TABLE and int(out["instance"][47, 32]) == 1
    assert float(out["depth"][47, 32]) == pytest.approx(t_table, abs=1e-4)
    # a colour image shaded at half size: the same maps, a picture of the same size
    half = render_view(room, K, T, 48, 64, render_scale=2)
    assert half["rgb"].shape == (48, 64, 3) and torch.equal(half["depth"], out["depth"])
    assert torch.equal(half["semantics"], out["semantics"])
    assert (half["rgb"].float() - out["rgb"].float()).abs().mean() < 20


def test_occupancy_counts_hand_checked():
    room = _box_room()
    grid = Grid((0.0, 0.0, 0.0), (1.6, 1.6, 0.8), (0.02, 0.02, 0.02))  # a small corner of the NYU grid
    # world = room turned by 90 degrees: room x = world y, room y = -world x
    T_room_from_world = np.eye(4)
    T_room_from_world[:2, :2] = [[0, 1], [-1, 0]]
    origin = np.array([-2.6, 1.2, -0.1])  # room point (1.2 .. 2.8, 1.0 .. 2.6, -0.1 .. 0.7)
    lab, inst = room_occupancy(room, T_room_from_world, origin, grid)
    assert lab.shape == (80, 80, 40)
    # the table (room x 1.5..2.5, y 1..2, z 0..0.5): 50 x 50 x 25 voxel centres
    assert int((lab == TABLE).sum()) == 50 * 50 * 25 and int((inst == 1).sum()) == 50 * 50 * 25
    # floor slab: z in -0.1..0 -> 5 layers everywhere inside the room (room y <= 3 + WALL)
    assert int((lab == FLOOR).sum()) == 80 * 80 * 5
    assert int((lab == 255).sum()) == 0 and int((lab == 0).sum()) == 80 * 80 * 40 - 80 * 80 * 5 - 50 * 50 * 25
    # a room turned by 45 degrees is refused
    bad = np.eye(4)
    bad[:2, :2] = [[math.cos(0.7), -math.sin(0.7)], [math.sin(0.7), math.cos(0.7)]]
    with pytest.raises(ValueError, match="must permute axes"):
        room_occupancy(room, bad, origin, grid)


def test_frame_world_turns_the_heading_to_plus_y():
    T = look_at(np.array([1.0, 2.0, 1.4]), np.array([4.0, 2.5, 0.8]))  # heading about +x
    T_wr, T_wc, origin = frame_world(T)
    f = T_wc[:3, 2]
    assert f[1] > abs(f[0]) and np.allclose(T_wr[:3, :3] @ T[:3, 2].numpy(), f, atol=1e-6)
    assert origin[0] == pytest.approx(T_wc[0, 3] - 2.4, abs=1e-6) and origin[2] == pytest.approx(-0.06, abs=1e-7)


#: Two rooms of one view, one of each split: the world written once (module) for the tests that read it.
TWO_ROOMS = IndoorConfig(scenes=2, frames=1, seed=3, val_fraction=0.5)
#: One room, one view: the world ``show`` and ``view`` draw.
ONE_ROOM = IndoorConfig(scenes=1, frames=1, seed=2)


@pytest.fixture(scope="module")
def two_rooms(tmp_path_factory):
    return generate_indoor(tmp_path_factory.mktemp("two_rooms") / "w", TWO_ROOMS)


@pytest.fixture(scope="module")
def one_room(tmp_path_factory):
    return generate_indoor(tmp_path_factory.mktemp("one_room") / "w", ONE_ROOM)


def test_written_world_round_trip(two_rooms):
    cfg, out = TWO_ROOMS, two_rooms
    assert sorted(p.name for p in (out / "NYUtrain").iterdir()) == [
        "NYU0000_0000.bin",
        "NYU0000_0000.png",
        "NYU0000_0000_color.jpg",
    ]
    assert (out / "NYUtest" / "NYU0001_0000.bin").is_file() and (out / "indoor.json").is_file()
    # the .bin holds exactly the world's occupancy, pose and origin
    from occkit.worlds.indoor import frame_data

    room = build_room(cfg, 0)
    fd = frame_data(room, 0)
    v = read_bin(out / "NYUtrain" / "NYU0000_0000.bin")
    assert np.array_equal(v.labels, xyz_to_file(fd["labels"]))
    assert np.array_equal(v.pose, fd["pose"].astype(np.float32)) and np.array_equal(v.origin, fd["origin"])
    # the depth map and the voxels agree: a pixel's surface, 1.5 cm deeper, lies in a voxel of its class
    K = np.array(NYU_K)
    vv, uu = np.mgrid[0:480, 0:640] + 0.5
    ray = np.stack([(uu - K[0, 2]) / K[0, 0], (vv - K[1, 2]) / K[1, 1], np.ones_like(uu)], -1)
    d = fd["depth"] + 0.015 / np.linalg.norm(ray, axis=-1)
    pw = (ray * d[..., None]).reshape(-1, 3) @ fd["pose"][:3, :3].T + fd["pose"][:3, 3]
    idx = np.floor((pw - fd["origin"]) / 0.02).astype(int)
    inside = ((idx >= 0) & (idx < [240, 240, 144])).all(1)
    agree = fd["labels"][tuple(idx[inside].T)] == fd["semantics"].reshape(-1)[inside]
    assert inside.mean() > 0.5 and agree.mean() > 0.9
    ds = NYUDataset(out, "train", load_extras=True, load_depth=True)
    s = ds[0]
    assert torch.equal(s.occupancy, downsample_target(fd["labels"]))
    assert s.description and s.description.startswith(room.description.split(":")[0])
    exact = ds.read_camera_extras("NYU0000_0000")
    png = read_depth_png(out / "NYUtrain" / "NYU0000_0000.png")
    assert np.abs(png - exact["depth"]).max() <= 5e-4 and (exact["depth"] > 0).all()
    assert set(np.unique(exact["semantics"]).tolist()) <= set(range(1, 12))
    assert 0 < int((s.occupancy == 0).sum()) and int((s.occupancy == 2).sum()) > 0


def test_cli_indoor_world(tmp_path, capsys):
    from occkit.cli import main

    assert main(["synth", "--world", "indoor", "--out", str(tmp_path / "w"), "--scenes", "1", "--frames", "1"]) == 0
    assert "1 scene(s) x 1 frames at 480x640" in capsys.readouterr().out  # said at once
    assert (tmp_path / "w" / "NYUtrain" / "NYU0000_0000.bin").is_file()
    assert main(["synth", "--world", "indoor", "--format", "semantickitti", "--out", str(tmp_path / "x")]) == 2
    assert main(["synth", "--world", "driving", "--format", "nyu", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
    # --format nyu alone: the format's world (the same rooms as --world indoor)
    assert main(["synth", "--format", "nyu", "--out", str(tmp_path / "y"), "--scenes", "1", "--frames", "1"]) == 0
    a, b = tmp_path / "w" / "NYUtrain" / "NYU0000_0000.bin", tmp_path / "y" / "NYUtrain" / "NYU0000_0000.bin"
    assert a.read_bytes() == b.read_bytes()


def test_show_draws_an_indoor_frame(one_room, tmp_path):
    from PIL import Image

    from occkit.cli import main

    world = one_room
    out = tmp_path / "show.png"
    assert main(["show", str(world), "--out", str(out)]) == 0
    im = np.asarray(Image.open(out))
    assert im.shape[1] == 3 * 320 + 2 * 4 and im.shape[0] > 240  # image, 2D classes, occupancy; the legend
    # with a prediction from a folder of the format's files: a fourth panel
    from occkit.formats import get_format

    fmt = get_format("nyu")
    target = fmt.open_split(world, "all", load_images=False)[0].occupancy.numpy()
    fmt.predictions.write(tmp_path / "pred", "NYU0000_0000", np.where(target == 255, 0, target).astype(np.uint8))
    out2 = tmp_path / "show_pred.png"
    assert main(["show", str(world), "--pred", str(tmp_path / "pred"), "--out", str(out2)]) == 0
    assert np.asarray(Image.open(out2)).shape[1] == 4 * 320 + 3 * 4


def test_end_to_end_nyu_mono(tmp_path):
    """occkit synth --world indoor + train nyu-mono (a step) + predict + eval --format nyu."""
    import json

    from occkit.cli import main
    from occkit.formats import detect_format, get_format

    data, run, pred = tmp_path / "w", tmp_path / "run", tmp_path / "pred"
    assert main(["synth", "--world", "indoor", "--out", str(data), "--scenes", "2", "--frames", "1"]) == 0
    assert detect_format(data).name == "nyu" and get_format("nyu").grid.shape == (60, 60, 36)
    from occkit.scoring.folder import detect_format_name as eval_format

    assert eval_format(data) == "nyu"  # occkit eval --format auto
    sets = [
        "optim.max_steps=1",
        "optim.amp=none",
        "train.val_every=0",
        "train.ckpt_every=1",
        "data.image_aug.out_hw=[96,128]",
    ]
    assert main(["train", "nyu-mono", "--data", str(data), "--out", str(run), "--no-progress", "--set", *sets]) == 0
    assert main(["predict", "--ckpt", str(run), "--data", str(data), "--out", str(pred), "--no-progress"]) == 0
    assert (pred / "NYU0001_0000.npz").is_file()  # the test split (one room of two)
    out = tmp_path / "eval.json"
    assert main(["eval", "--gt", str(data), "--pred", str(pred), "--format", "nyu", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["benchmark"] == "nyu" and result["frames"] == 1 and 0 <= result["ssc_miou"] <= 100
    # the same numbers from occkit's scoring loop over the format's files
    from occkit.scoring.folder import evaluate_predictions

    fmt = get_format("nyu")
    again = evaluate_predictions(fmt, data, pred, split="val")
    assert again["ssc_miou"] == pytest.approx(result["ssc_miou"]) and again["iou"] == pytest.approx(result["iou"])


def test_indoor_and_outdoor_runs_refuse_each_others_data(tmp_path):
    from occkit.experiment import data_format, load_experiment

    (tmp_path / "nyu" / "NYUtrain").mkdir(parents=True)
    (tmp_path / "occ").mkdir()
    (tmp_path / "occ" / "annotations.json").write_text("{}")
    with pytest.raises(
        ValueError, match="a NYUv2 \\(indoor\\) dataset, but the run is of an Occ3D-nuScenes \\(driving\\)"
    ):
        data_format(load_experiment("base-cpu", ["data.format=occ3d"]), tmp_path / "nyu")
    cfg = load_experiment("nyu-mono")
    with pytest.raises(
        ValueError, match="an Occ3D-nuScenes \\(driving\\) dataset, but the run is of a NYUv2 \\(indoor\\)"
    ):
        data_format(cfg, tmp_path / "occ")
    assert data_format(cfg, tmp_path / "nyu") == "nyu"


def test_a_stopped_world_resumes_with_the_same_files(two_rooms, tmp_path, monkeypatch):
    import occkit.worlds.indoor.writer as writer

    cfg = TWO_ROOMS
    real = writer._worker
    made = []

    def stop_at_room_1(job):
        if job[2] == 1:
            raise KeyboardInterrupt
        made.append(job[2])
        return real(job)

    monkeypatch.setattr(writer, "_worker", stop_at_room_1)
    with pytest.raises(KeyboardInterrupt):
        generate_indoor(tmp_path / "w", cfg, resume=True)
    assert made == [0] and (tmp_path / "w" / ".scenes" / "0000.json").is_file()

    def counting(job):
        made.append(job[2])
        return real(job)

    monkeypatch.setattr(writer, "_worker", counting)
    generate_indoor(tmp_path / "w", cfg, resume=True)
    assert made == [0, 1] and not (tmp_path / "w" / ".scenes").exists()  # room 0 was not made again
    fresh = two_rooms  # the same world written in one go
    assert sorted(f.relative_to(fresh) for f in fresh.rglob("*")) == sorted(
        f.relative_to(tmp_path / "w") for f in (tmp_path / "w").rglob("*")
    )
    for f in sorted(fresh.rglob("*")):
        if f.is_file():
            assert f.read_bytes() == (tmp_path / "w" / f.relative_to(fresh)).read_bytes(), f.name


def test_view_writes_an_indoor_frame_in_nyu_colours(one_room, tmp_path):
    pytest.importorskip("viser")
    from occkit.cli import main
    from occkit.formats import get_format
    from occkit.labels import NYU_CLASSES, NYU_PALETTE
    from occkit.viz.viewer import ViewState, draw_frame
    from occkit.viz.viewer_scene import ClassStyle, FrameData

    html = tmp_path / "v.html"
    assert main(["view", str(one_room), "--html", str(html), "--frames", "1"]) == 0
    assert html.stat().st_size > 10_000
    # the voxels drawn take NYUv2's colours, one node per NYUv2 class, unknown voxels left out
    s = NYUDataset(one_room, "train")[0]
    gt = torch.where(s.occupancy == 255, 0, s.occupancy).numpy().astype(np.uint8)
    style = ClassStyle.of(get_format("nyu").classes)  # what occkit view draws a folder of the format in
    assert style.names == NYU_CLASSES and style.palette == NYU_PALETTE and style.free == 0
    state = ViewState(style=style, cameras=False, lidar=False)

    class Scene:
        def __init__(self):
            self.names = []

        def add_batched_meshes_simple(self, name, *a, batched_colors=None, **k):
            self.names.append(name)
            assert {tuple(c) for c in batched_colors.tolist()} <= set(NYU_PALETTE)

        def remove_by_name(self, name):
            pass

    scene = Scene()
    frame = FrameData(token=s.token, scene=s.scene, gt=gt)
    layer, handles = draw_frame(scene, frame, NYUDataset(one_room, "train").grid, state)
    assert {f"/voxels/{NYU_CLASSES[c]}" for c in np.unique(gt) if c} == set(scene.names)
