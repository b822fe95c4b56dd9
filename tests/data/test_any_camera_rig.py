"""Any camera rig trains: labels of a user's recording carry its own cameras (any number, names,
image sizes and intrinsics), not the synthetic world's six nuScenes-like ones.

The rig here is the session's synthetic dataset with three of its cameras kept and renamed, one of
them ("rear") resized to another size and aspect ratio with its intrinsics scaled to match.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from occkit.data.augment import resize_view
from occkit.data.occ3d import Occ3DDataset
from occkit.data.sample import collate
from occkit.fileio import load_npz, save_npz_atomic

#: The synthetic cameras kept, and their new names (in this order in annotations.json).
RIG = {"CAM_FRONT": "front", "CAM_FRONT_LEFT": "left_wide", "CAM_BACK": "rear"}
#: The camera given another image size (H, W) than the others (64 x 176 in the session's dataset).
ODD, ODD_HW = "rear", (80, 120)


def _project(K: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Pixels ``(P, 2)`` of camera-frame points ``(P, 3)`` under ``K (3, 3)``."""
    uvw = pts @ K.T
    return uvw[:, :2] / uvw[:, 2:]


def _write_rig(src: Path, dst: Path) -> Path:
    """``src`` (the synthetic world) as a rig of :data:`RIG`'s cameras, :data:`ODD` resized to
    :data:`ODD_HW` with its intrinsics (and its per-pixel maps) scaled to match."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*(f"*{c}*" for c in ("RIGHT", "BACK_LEFT"))))
    ann = json.loads((dst / "annotations.json").read_text())
    for scene, infos in ann["scene_infos"].items():
        for token, info in infos.items():
            cams = {}
            for old, new in RIG.items():
                c = dict(info["camera_sensor"][old])
                rel = c["img_path"].replace(old, new)
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                im = Image.open(dst / c["img_path"]).convert("RGB")
                maps_path = dst / "extras" / scene / token / f"{old}.npz"
                maps = load_npz(maps_path, keys=("depth", "semantics", "instance"))
                if new == ODD:
                    H, W = ODD_HW
                    K = np.asarray(c["intrinsic"], dtype=np.float64)
                    K[0] *= W / im.width
                    K[1] *= H / im.height
                    c["intrinsic"] = K.tolist()
                    im = im.resize((W, H), Image.BILINEAR)
                    rows = (np.arange(H) * maps["depth"].shape[0]) // H
                    cols = (np.arange(W) * maps["depth"].shape[1]) // W
                    maps = {k: v[rows][:, cols] for k, v in maps.items()}
                im.save(dst / rel.replace(".jpg", ".png"))
                c["img_path"] = rel.replace(".jpg", ".png")
                save_npz_atomic(maps_path.with_name(f"{new}.npz"), **maps)
                cams[new] = c
            info["camera_sensor"] = cams
    (dst / "annotations.json").write_text(json.dumps(ann))
    return dst


@pytest.fixture(scope="module")
def rig_root(synth_root: Path, tmp_path_factory) -> Path:
    return _write_rig(synth_root, tmp_path_factory.mktemp("rig") / "data")


def test_a_resized_view_keeps_every_point_on_the_scaled_pixel() -> None:
    g = torch.Generator().manual_seed(0)
    K = torch.tensor([[70.0, 0.0, 31.0], [0.0, 66.0, 19.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
    H, W, h, w = 40, 60, 30, 100  # another aspect ratio: each axis by its own factor
    pts = torch.rand(50, 3, generator=g, dtype=torch.float64) * torch.tensor([4.0, 3.0, 10.0]) + torch.tensor(
        [-2.0, -1.5, 2.0]
    )
    image = torch.zeros(3, H, W)
    u, v = 20, 12  # a white block around one pixel, which the resized image must show where K' projects it
    image[:, v - 3 : v + 4, u - 3 : u + 4] = 1.0
    out, K2, maps = resize_view(image, K, (h, w), {"depth": torch.full((H, W), 7.0)})
    assert out.shape == (3, h, w) and maps["depth"].shape == (h, w) and bool((maps["depth"] == 7).all())
    sx, sy = w / W, h / H
    torch.testing.assert_close(_project(K2, pts), _project(K, pts) * torch.tensor([sx, sy], dtype=torch.float64))
    centre = torch.tensor([[u + 0.5, v + 0.5, 1.0]], dtype=torch.float64)  # the block's centre, pixel-edge convention
    ray = (torch.linalg.inv(K) @ centre.T).T * 5.0
    cu, cv = _project(K2, ray)[0]
    assert float(out[:, int(cv), int(cu)].min()) > 0.9  # the block is where the scaled intrinsics put it
    assert float(out[:, 0, 0].max()) == 0.0


def test_the_rig_is_read_with_its_own_cameras_at_one_size(rig_root: Path) -> None:
    ds = Occ3DDataset(rig_root, "all")
    assert ds.cameras == tuple(RIG.values())
    s = ds[0]
    H, W = s.images.shape[-2:]
    assert s.images.shape[:2] == (3, 3) and s.depth.shape == (3, H, W) and s.semantics_2d.shape == (3, H, W)
    K_file = torch.tensor(ds.info(s.token)["camera_sensor"][ODD]["intrinsic"], dtype=torch.float64)
    sx, sy = W / ODD_HW[1], H / ODD_HW[0]
    scale = torch.diag(torch.tensor([sx, sy, 1.0], dtype=torch.float64))
    torch.testing.assert_close(s.intrinsics[2].double(), scale @ K_file)
    raw = torch.tensor(np.asarray(Image.open(ds.image_path(s.token, ODD)).convert("RGB"))).permute(2, 0, 1) / 255
    assert raw.shape[-2:] == ODD_HW
    torch.testing.assert_close(s.images[2], resize_view(raw, K_file, (H, W))[0])  # the rear image, resized
    batch = collate([s, ds[1]])
    assert batch.images.shape[:2] == (2, 3) and batch.cam_names == tuple(RIG.values())


def test_cameras_the_data_lack_or_some_frames_lack_are_refused_in_one_line(rig_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^data.cameras: CAM_FRONT is not a camera of .* \(its cameras: front, "):
        Occ3DDataset(rig_root, "all", cameras=("CAM_FRONT",))
    part = tmp_path / "part"
    part.mkdir()
    ann = json.loads((rig_root / "annotations.json").read_text())
    scene, token = next((s, t) for s, infos in ann["scene_infos"].items() for t in infos)
    del ann["scene_infos"][scene][token]["camera_sensor"][ODD]
    (part / "annotations.json").write_text(json.dumps(ann))
    ds = Occ3DDataset(part, "all", load_images=False, load_gt=False, load_extras=False)
    assert ds.cameras == ("front", "left_wide") and ds.common_cameras()[1] == {ODD: 1}
    missing = rf"^data.cameras: camera rear is missing from 1 of the {len(ds)} frames .*{token}"
    with pytest.raises(ValueError, match=missing):
        Occ3DDataset(part, "all", cameras=("front", ODD), load_images=False, load_gt=False)

    from occkit.experiment import fit_cameras, load_experiment

    cfg = load_experiment("synth-cpu")
    assert fit_cameras(cfg, part).data.cameras == ("front", "left_wide")  # the common ones, said on stderr
    given = load_experiment("synth-cpu", ["data.cameras=[left_wide]"])
    assert fit_cameras(given, part).data.cameras == ("left_wide",)


def test_a_multi_camera_and_a_monocular_preset_train_on_the_rig(rig_root: Path, tmp_path: Path, capsys) -> None:
    from occkit.cli import main

    fast = ["--max-steps", "2", "--no-val", "--no-progress", "--set", "train.threads=1"]
    fast.append("data.image_aug.out_hw=[64, 192]")  # small images: each run's 2 steps in a second or two
    assert main(["train", "synth-cpu", "--data", str(rig_root), "--out", str(tmp_path / "multi"), *fast]) == 0
    err = capsys.readouterr().err
    assert f"training on the cameras of {rig_root}, in its order: front, left_wide, rear" in err
    saved = json.loads((tmp_path / "multi" / "config.json").read_text())
    assert saved["data"]["cameras"] == list(RIG.values())

    # kitti-mono on Occ3D-layout labels: the format, grid and classes of the data, and one named camera
    mono = [
        "data.format=occ3d",
        "model.point_range=[-40, -40, -1, 40, 40, 5.4]",
        "model.voxel_size=0.4",
        "model.num_classes=18",
        "cigocc.empty_index=17",
        "cigocc.context_prior=false",
        "cigocc.relation_weight=0",
    ]
    run = ["train", "kitti-mono", "--data", str(rig_root), *fast, "--set", *mono]
    assert main([*run[:4], "--out", str(tmp_path / "no-camera"), *run[4:]]) == 1  # its default camera, image_2
    err = capsys.readouterr().err
    assert "data.cameras: image_2 is not a camera of" in err and "(its cameras: front, left_wide, rear)" in err
    assert len(err.strip().splitlines()) == 1
    assert main([*run[:4], "--out", str(tmp_path / "mono"), *run[4:], f"data.cameras=[{ODD}]"]) == 0
    saved = json.loads((tmp_path / "mono" / "config.json").read_text())
    assert saved["data"]["cameras"] == [ODD]
