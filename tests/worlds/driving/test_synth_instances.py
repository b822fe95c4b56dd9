"""Voxel instance ids (``instances.npz``) and objects.json coverage: the instance grid comes from
the same vote as the semantics, every instance any map shows has its objects.json entry, and
``Occ3DDataset.read_instances`` checks what it reads."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_tiny_occ3d

from occkit.data.occ3d import NUSCENES_CAMERAS, Occ3DDataset
from occkit.fileio import load_npz, save_npz_atomic
from occkit.geometry.grid import occ3d_grid
from occkit.geometry.transforms import apply_transform
from occkit.worlds.driving import SynthConfig, build_scene, object_records, scene_state_at
from occkit.worlds.driving.occupancy import semantic_instance_occupancy, semantic_occupancy
from occkit.worlds.driving.primitives import BOX, Primitives
from occkit.worlds.driving.vocabulary import FINE_NAME_CLASS
from occkit.worlds.driving.writer import OBJECT_RADIUS, shown_instances

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Occ3D classes that only objects produce (ground 11-14 and free 17 never carry an instance).
OBJECT_CLASSES = np.array([c not in (11, 12, 13, 14, 17) for c in range(18)])


def _boxes(
    centres_ego: list[tuple[float, float, float]],
    halves: list[tuple[float, float, float]],
    cls: list[int],
    inst: list[int],
    T_global_from_ego: torch.Tensor,
) -> Primitives:
    yaw = math.atan2(float(T_global_from_ego[1, 0]), float(T_global_from_ego[0, 0]))
    c_w = apply_transform(T_global_from_ego, torch.tensor(centres_ego, dtype=torch.float64)).float()
    n = len(cls)
    return Primitives(
        kind=torch.full((n,), BOX),
        center=c_w,
        half=torch.tensor(halves),
        yaw=torch.full((n,), yaw),
        cls=torch.tensor(cls),
        instance=torch.tensor(inst),
        color=torch.full((n, 3), 0.5),
        texture=torch.zeros(n, dtype=torch.long),
        reflect=torch.full((n,), 0.5),
    )


def test_instance_vote_by_hand():
    """Two cars overlap: each voxel goes to the car with more of it; a wall elsewhere; the ground
    keeps 0. Voxels [0.4 k - 40, 0.4 (k+1) - 40) in x and y, z from -1 in steps of 0.4."""
    cfg = SynthConfig(scenes=1, frames=1, seed=0, image_size=(32, 88))
    state = scene_state_at(build_scene(cfg, 0), 0)
    # car 3: x in [4.0, 6.0]; car 4: x in [5.8, 8.0] (both y in [-0.8, 0.8], z in [0.2, 1.4]);
    # the voxel x in [5.6, 6.0] (samples at x 5.7, 5.9) is all car 3 but half car 4; x in [6.0, 6.4] all car 4.
    # wall 9 (manmade): x in [10.0, 10.8], y in [-2, 2], z in [0.2, 3.0]
    state.prims = _boxes(
        [(5.0, 0, 0.8), (6.9, 0, 0.8), (10.4, 0, 1.6)],
        [(1.0, 0.8, 0.6), (1.1, 0.8, 0.6), (0.4, 2.0, 1.4)],
        [4, 4, 15],
        [3, 4, 9],
        state.T_global_from_ego,
    )
    g = occ3d_grid()
    sem, inst = semantic_instance_occupancy(state, g, state.T_global_from_ego, supersample=2)
    assert inst.dtype == torch.int32 and inst.shape == (200, 200, 16)
    assert torch.equal(sem, semantic_occupancy(state, g, state.T_global_from_ego, supersample=2))
    iz = 5  # z in [1.0, 1.4]
    ix = lambda x: int((x + 40) / 0.4)  # noqa: E731
    assert int(sem[ix(5.7), 100, iz]) == 4 and int(inst[ix(5.7), 100, iz]) == 3
    assert int(sem[ix(6.1), 100, iz]) == 4 and int(inst[ix(6.1), 100, iz]) == 4
    assert int(sem[ix(4.1), 100, iz]) == 4 and int(inst[ix(4.1), 100, iz]) == 3
    assert int(sem[ix(10.1), 100, iz]) == 15 and int(inst[ix(10.1), 100, iz]) == 9
    # exactly the object-class voxels carry an instance; each instance only its own class
    assert torch.equal(inst > 0, torch.from_numpy(OBJECT_CLASSES)[sem.long()])
    assert set(inst.unique().tolist()) == {0, 3, 4, 9}
    assert (sem[inst == 9] == 15).all() and (sem[(inst == 3) | (inst == 4)] == 4).all()
    assert (sem[:, :, 1] == 11).any() and not inst[:, :, 1][sem[:, :, 1] == 11].any()  # ground: 0


def test_object_records_cover_the_shown_instances():
    """Near objects and shown far ones are listed, in instance order; a shown instance with no
    record raises (frame_data calls this with every id its maps show)."""
    cfg = SynthConfig(scenes=1, frames=1, seed=0, image_size=(32, 88))
    state = scene_state_at(build_scene(cfg, 0), 0)
    ego = state.T_global_from_ego[:2, 3].numpy()
    dist = {o["instance"]: float(np.hypot(*(np.array(o["center"][:2]) - ego))) for o in state.objects}
    far = [i for i, d in dist.items() if d > OBJECT_RADIUS][:3]
    assert far
    near = sorted(i for i, d in dist.items() if d <= OBJECT_RADIUS)
    assert [o["instance"] for o in object_records(state)] == near
    recs = object_records(state, [0, *far])
    assert [o["instance"] for o in recs] == sorted(near + far)
    o = recs[0]
    assert {
        "instance",
        "class_id",
        "class_name",
        "name",
        "attributes",
        "dynamic",
        "box_ego",
        "velocity_ego",
        "box_global",
        "velocity_global",
    } == set(o)
    with pytest.raises(ValueError, match=r"instances \[99999\]"):
        object_records(state, [far[0], 99999])


def test_instances_on_disk_match_semantics_and_objects(synth_root: Path):
    ds = Occ3DDataset(synth_root, split="all", load_images=False)
    n_far = 0
    for f in ds.frames:
        sem = ds.read_labels(f.token)["semantics"]
        inst = ds.read_instances(f.token)
        assert inst is not None and inst.dtype == np.int32 and inst.shape == (200, 200, 16)
        assert np.array_equal(inst > 0, OBJECT_CLASSES[sem])
        objs = {o["instance"]: o for o in ds.objects(f.token)}
        names = ds.instance_names(f.token)
        ex = ds.extras_dir(f.token)
        shown: dict[str, tuple[np.ndarray, np.ndarray]] = {"voxels": (inst, sem)}
        for cam in NUSCENES_CAMERAS:
            z = load_npz(ex / f"{cam}.npz")
            shown[cam] = (z["instance"], z["semantics"])
        lz = load_npz(ex / "lidar.npz")
        shown["lidar"] = (lz["instance"], lz["labels"])
        seen: set[int] = set()
        for where, (ids, cls) in shown.items():
            for i in np.unique(ids[ids > 0]).tolist():
                assert i in objs, f"{f.token} {where}: instance {i} has no objects.json entry"
                # the class each map gives the instance is its objects.json class, and its fine name's
                assert set(np.unique(cls[ids == i]).tolist()) == {objs[i]["class_id"]}, (where, i)
                assert FINE_NAME_CLASS[names[i]] == objs[i]["class_id"]
            seen |= set(np.unique(ids).tolist())
        # the list holds the objects near the ego plus the farther ones a map shows, nothing else
        for i, o in objs.items():
            far = math.hypot(*o["box_ego"]["center"][:2]) > OBJECT_RADIUS + 2.0
            n_far += far
            assert not far or i in seen, f"{f.token}: far object {i} listed but shown nowhere"
    assert n_far > 0  # the world shows objects beyond OBJECT_RADIUS (buildings, trees)


def test_read_instances_checks_the_file(tmp_path: Path):
    root = write_tiny_occ3d(tmp_path, scenes=1, frames=1)
    ds = Occ3DDataset(root, split="all", load_images=False)
    token = ds.frames[0].token
    assert ds.read_instances(token) is None  # real-layout data: no extras
    path = ds.extras_dir(token) / "instances.npz"
    good = np.zeros((200, 200, 16), dtype=np.int32)
    good[1, 2, 3] = 7
    save_npz_atomic(path, instance=good)
    assert np.array_equal(ds.read_instances(token), good)
    save_npz_atomic(path, instance=good.astype(np.int64))
    with pytest.raises(ValueError, match="instances.npz"):
        ds.read_instances(token)
    save_npz_atomic(path, instance=good[:, :, :8])
    with pytest.raises(ValueError, match="instances.npz"):
        ds.read_instances(token)
    save_npz_atomic(path, other=good)
    with pytest.raises(KeyError, match="instances.npz"):
        ds.read_instances(token)


def test_shown_instances():
    ids = shown_instances(
        torch.tensor([[0, 3], [3, 1]], dtype=torch.int32), torch.tensor([7, 0]), torch.zeros(0, dtype=torch.long)
    )
    assert ids == [1, 3, 7]
    assert shown_instances(torch.zeros(4, dtype=torch.int32)) == [] and shown_instances() == []
    with pytest.raises(ValueError, match="-2"):
        shown_instances(torch.tensor([1, -2]))
