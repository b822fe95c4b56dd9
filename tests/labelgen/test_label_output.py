"""``occkit label``'s output: the recording's own classes through ``--class-map`` (``from: rig``) or by
name, ``--to FORMAT`` on that format's grid and frame through its label writer, ``--grid`` in Occ3D's
layout, the ground check, and ``--quality`` on the output's grid (docs/labels.md, "Classes, grid and
output format"). One scene of a tiny world each."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from occkit.cli import main

SCENE = "scene-0000"

#: A rig's own class names for the world's classes (Occ3D's names), in another order.
RENAMED = {
    "others": "misc",
    "barrier": "fence_or_barrier",
    "car": "automobile",
    "driveable_surface": "road",
    "sidewalk": "footpath",
    "manmade": "building",
    "vegetation": "plants",
}


def _map_yaml(to: str, pairs: list[tuple[list[str], list[str]]], drop: list[str] = ()) -> str:
    lines = ["from: rig", f"to: {to}", "common:"]
    for k, (src, dst) in enumerate(pairs):
        lines.append(f"  c{k}: {{from: [{', '.join(src)}], to: [{', '.join(dst)}]}}")
    if drop:
        lines.append(f"drop: {{from: [{', '.join(drop)}]}}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lo") / "w"
    argv = ["synth", "--out", str(out), "--scenes", "2", "--frames", "2", "--image-size", "48", "80"]
    assert main([*argv, "--sweeps", "2", "--beams", "8"]) == 0
    return out


def _label(world: Path, out: Path, *extra: str) -> str:
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        assert main(["label", "--data", str(world), "--out", str(out), "--scenes", SCENE, *extra]) == 0
    return said.getvalue()


def _classes(world: Path) -> list[str]:
    return json.loads((world / "rig" / "rig.json").read_text())["classes"]


@pytest.fixture(scope="module")
def occ3d_labels(world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("base") / "lab"
    _label(world, out)
    return out


def _own_classes_rig(world: Path, dest: Path) -> tuple[Path, list[str]]:
    """A copy of the world's rig folder whose classes are renamed (:data:`RENAMED`) and reversed, its
    point labels and box classes renumbered to match; returns it and its class list."""
    rig = dest / "rig"
    shutil.copytree(world / "rig", rig)
    old = _classes(world)
    new = [RENAMED.get(c, c) for c in reversed(old)]
    perm = np.array([new.index(RENAMED.get(c, c)) for c in old], np.int64)  # old id -> new id
    meta = json.loads((rig / "rig.json").read_text())
    meta["classes"] = new
    (rig / "rig.json").write_text(json.dumps(meta))
    for scene in meta["scenes"]:
        for f in (rig / scene / "lidar").glob("*.npz"):
            z = dict(np.load(f))
            if "labels" in z:
                z["labels"] = perm[z["labels"].astype(np.int64)]
                np.savez(f, **z)
        boxes = json.loads((rig / scene / "boxes.json").read_text())
        for b in boxes["boxes"]:
            b["class"] = int(perm[b["class"]])
        (rig / scene / "boxes.json").write_text(json.dumps(boxes))
    return rig, new


def _npz(root: Path) -> dict[str, dict[str, np.ndarray]]:
    return {str(p.relative_to(root)): dict(np.load(p)) for p in sorted(root.rglob("labels.npz"))}


def test_a_rig_with_its_own_class_names_and_a_class_map_gives_the_same_labels(world, occ3d_labels, tmp_path):
    rig, new = _own_classes_rig(world, tmp_path)
    inverse = {v: k for k, v in RENAMED.items()}
    pairs = [([c], [inverse.get(c, c)]) for c in new]
    cmap = tmp_path / "mine.yaml"
    cmap.write_text(_map_yaml("occ3d", pairs))
    out = tmp_path / "lab"
    _label(rig, out, "--class-map", str(cmap))
    got, want = _npz(out), _npz(occ3d_labels)
    assert got.keys() == want.keys() and len(got) == 2
    for k in want:
        for a in ("semantics", "mask_lidar", "mask_camera"):
            np.testing.assert_array_equal(got[k][a], want[k][a], err_msg=f"{k} {a}")
    assert (want[k]["semantics"] != 17).sum() > 1000  # labels with content, not two empty grids


def test_class_names_of_the_output_table_in_another_order_are_mapped_by_name(world, occ3d_labels, tmp_path):
    rig = tmp_path / "rig"
    shutil.copytree(world / "rig", rig)
    old = _classes(world)
    new = list(reversed(old))
    perm = np.array([new.index(c) for c in old], np.int64)
    meta = json.loads((rig / "rig.json").read_text())
    meta["classes"] = new
    (rig / "rig.json").write_text(json.dumps(meta))
    for f in (rig / SCENE / "lidar").glob("*.npz"):
        z = dict(np.load(f))
        if "labels" in z:
            z["labels"] = perm[z["labels"].astype(np.int64)]
            np.savez(f, **z)
    boxes = json.loads((rig / SCENE / "boxes.json").read_text())
    for b in boxes["boxes"]:
        b["class"] = int(perm[b["class"]])
    (rig / SCENE / "boxes.json").write_text(json.dumps(boxes))
    out = tmp_path / "lab"
    _label(rig, out)
    got, want = _npz(out), _npz(occ3d_labels)
    for k in want:
        np.testing.assert_array_equal(got[k]["semantics"], want[k]["semantics"])


def test_a_class_the_map_leaves_unmapped_is_refused_by_name(world, tmp_path, capsys):
    rig, new = _own_classes_rig(world, tmp_path)
    inverse = {v: k for k, v in RENAMED.items()}
    pairs = [([c], [inverse.get(c, c)]) for c in new if c != "plants"]
    cmap = tmp_path / "mine.yaml"
    cmap.write_text(_map_yaml("occ3d", pairs))
    out = tmp_path / "lab"
    assert main(["label", "--data", str(rig), "--out", str(out), "--class-map", str(cmap)]) != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'plants' is unmapped" in err and str(cmap) in err
    assert not out.exists()


def test_own_class_names_without_a_map_are_refused_saying_to_pass_one(world, tmp_path, capsys):
    rig, _ = _own_classes_rig(world, tmp_path)
    out = tmp_path / "lab"
    assert main(["label", "--data", str(rig), "--out", str(out)]) != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'plants'" in err and "--class-map" in err
    assert not out.exists()


def test_a_map_to_classes_the_output_lacks_is_refused_in_one_line(world, tmp_path, capsys):
    cmap = tmp_path / "bad.yaml"
    cmap.write_text(_map_yaml("openoccupancy", [(_classes(world), ["spaceship"])]))
    out = tmp_path / "lab"
    assert (
        main(["label", "--data", str(world), "--out", str(out), "--to", "openoccupancy", "--class-map", str(cmap)]) != 0
    )
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'spaceship'" in err and "openoccupancy cannot hold it" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "text, said",
    [
        ("- from: rig\n", "a mapping"),
        ("from: rig\nto: occ3d\ncommon: {a: {from: [car], to: [car]}}\ndorp: {from: [others]}\n", "unknown key 'dorp'"),
        ("from: occ3d\nto: occ3d\ncommon: {a: {from: [car], to: [car]}}\n", "from: 'occ3d'"),
        ("from: rig\nto: surroundocc\ncommon: {a: {from: [car], to: [car]}}\n", "to: 'surroundocc'"),
        ("from: rig\nto: occ3d\ncommon: {}\n", "common: {} has 0 entries"),
        ("from: rig\nto: occ3d\ncommon: {a: {from: [car], to: car}}\n", "common.a.to: text 'car' is not a list"),
        ("from: rig\nto: occ3d\ncommon: {a: {from: [car], to: [car]}}\ndrop: {from: others}\n", "drop.from:"),
    ],
)
def test_a_class_map_of_a_bad_layout_is_refused_naming_the_key(world, tmp_path, capsys, text, said):
    """The ``--class-map`` file is read against its schema (``ClassMapFile``): its keys, their types, and
    ``from: rig`` / ``to:`` the output format, each refusal one line naming the file and the key."""
    cmap = tmp_path / "bad.yaml"
    cmap.write_text(text)
    out = tmp_path / "lab"
    assert main(["label", "--data", str(world), "--out", str(out), "--scenes", SCENE, "--class-map", str(cmap)]) != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(cmap) in err and said in err, err
    assert not out.exists()


def test_a_common_class_listing_no_output_class_is_refused(world, tmp_path, capsys):
    pairs = [([c], [c]) for c in _classes(world) if c != "car"]
    cmap = tmp_path / "empty.yaml"
    cmap.write_text(_map_yaml("occ3d", pairs) + "  nothing: {from: [car], to: []}\n")
    assert main(["label", "--data", str(world), "--out", str(tmp_path / "lab"), "--class-map", str(cmap)]) != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{cmap}: common.nothing.to: [] lists no class of occ3d" in err, err


def _to_nusc_occupancy(world: Path, to: str) -> str:
    """A class map from the world's classes to the nuScenes-occupancy layouts' (``others`` into ``manmade``)."""
    pairs = [([c], [c]) for c in _classes(world) if c not in ("others", "manmade")]
    return _map_yaml(to, [*pairs, (["manmade", "others"], ["manmade"])])


@pytest.fixture(scope="module")
def openoccupancy_labels(world, tmp_path_factory) -> tuple[Path, str]:
    d = tmp_path_factory.mktemp("oo")
    (d / "map.yaml").write_text(_to_nusc_occupancy(world, "openoccupancy"))
    out = d / "lab"
    said = _label(world, out, "--to", "openoccupancy", "--class-map", str(d / "map.yaml"), "--quality")
    return out, said


def test_to_openoccupancy_opens_as_openoccupancy_on_its_grid(openoccupancy_labels, tmp_path):
    from occkit.formats import detect_format, get_format

    out, said = openoccupancy_labels
    assert detect_format(out).name == "openoccupancy"
    fmt = get_format("openoccupancy")
    ds = fmt.open_split(out, "all", load_images=False)
    assert len(ds) == 2
    lab = ds.read_labels(ds.frames[0].token)["semantics"]
    assert lab.shape == (512, 512, 40) and (lab != 0).sum() > 1000 and lab.max() <= 16
    assert "written as openoccupancy: 512x512x40 voxels of 0.2 m in the lidar frame" in said
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["stats", str(out), "--split", "all", "--no-progress"]) == 0
    pred = tmp_path / "pred"  # the labels as a prediction: eval --gt scores them 100 against themselves
    for f in ds.frames:
        fmt.predictions.write(pred, f.token, ds.read_labels(f.token)["semantics"])
    said_eval = io.StringIO()
    with contextlib.redirect_stdout(said_eval):
        assert main(["eval", "--gt", str(out), "--pred", str(pred), "--split", "all", "--no-progress"]) == 0
    assert "miou                    100.00" in said_eval.getvalue()


def test_to_openoccupancy_scores_against_the_truth_on_its_grid(openoccupancy_labels):
    out, said = openoccupancy_labels
    q = json.loads((out / "quality.json").read_text())
    assert q["keyframes"] == 2
    assert 0 < q["occupied_iou_observable"] <= 100 and 0 < q["semantic_miou_camera_mask"] <= 100
    assert q["mask_camera_agreement_iou"] != q["mask_camera_agreement_iou"]  # NaN: the layout keeps no mask
    assert 0 < q["rayiou"] < 100


def test_truth_on_the_openoccupancy_grid_is_the_exact_occ3d_voxel_under_each_centre(world):
    """The truth resampled onto the LiDAR-frame grid, checked at voxel centres computed by hand."""
    from occkit.formats import get_format
    from occkit.geometry.grid import occ3d_grid
    from occkit.labelgen.output import plan_target
    from occkit.labelgen.run import _grid_in_ego, truth_classes, truth_on_target
    from occkit.labelgen.truth import WorldTruth

    cmap = world.parent / "oo.yaml"
    cmap.write_text(_to_nusc_occupancy(world, "openoccupancy"))
    target = plan_target("openoccupancy", cmap, None, tuple(_classes(world)))
    fmt = get_format("openoccupancy")
    truth = WorldTruth(world)
    token = next(iter(truth.infos[SCENE]))
    T = _grid_in_ego(truth, SCENE, token, target)
    tr = truth.keyframe(SCENE, token, 1, T)
    on, scored = truth_on_target(tr, target, truth_classes(fmt), T, fmt.classes)
    rng = np.random.default_rng(0)
    g, o = target.grid, occ3d_grid()
    names = fmt.classes.names
    checked = 0
    for _ in range(2000):
        i = rng.integers(0, g.shape)
        c = np.asarray(g.range_min) + (i + 0.5) * np.asarray(g.voxel_size)
        e = T[:3, :3] @ c + T[:3, 3]
        j = np.floor((e - np.asarray(o.range_min)) / np.asarray(o.voxel_size)).astype(int)
        if not ((j >= 0) & (j < o.shape)).all():
            assert not scored[tuple(i)]
            continue
        src = int(tr.semantics[tuple(j)])
        want = "empty" if src == 17 else _classes(world)[src]
        if src == 0:  # others: dropped by the shipped occ3d -> openoccupancy map, not scored
            assert not scored[tuple(i)]
            continue
        assert names[int(on.semantics[tuple(i)])] == want
        checked += 1
    assert checked > 500


def test_truth_on_a_coarser_grid_is_the_truth_pooled_block_by_block(world):
    """At 0.8 m (``--grid 0.8``) each output voxel holds 2 x 2 x 2 of the truth's 0.4 m voxels: occupied where
    one is, in the most frequent occupied class (lowest id of a tie), a mask where one is set. Checked
    against numpy's block reshape; sampling the voxel under each centre (on the blocks' inner faces) was
    what the truth at 0.8 m was before, and it scores differently."""
    from occkit.formats import get_format
    from occkit.labelgen.output import plan_target
    from occkit.labelgen.run import truth_classes, truth_on_target
    from occkit.labelgen.truth import WorldTruth

    target = plan_target(None, None, "0.8", tuple(_classes(world)))
    fmt = get_format("occ3d")
    truth = WorldTruth(world)
    token = next(iter(truth.infos[SCENE]))
    tr = truth.keyframe(SCENE, token, 1, None)
    on, scored = truth_on_target(tr, target, truth_classes(fmt), None, fmt.classes)
    assert target.grid.shape == (100, 100, 8) and scored.all()
    blocks = tr.semantics.reshape(100, 2, 100, 2, 8, 2).transpose(0, 2, 4, 1, 3, 5).reshape(100, 100, 8, 8)
    occupied = (blocks != 17).any(-1)
    assert np.array_equal(on.semantics != 17, occupied)
    for m in ("mask_camera", "mask_lidar"):
        b = getattr(tr, m).reshape(100, 2, 100, 2, 8, 2).transpose(0, 2, 4, 1, 3, 5).reshape(100, 100, 8, 8)
        assert np.array_equal(getattr(on, m), b.astype(bool).any(-1))
    for i, j, k in zip(*np.nonzero(occupied)):
        v = blocks[i, j, k][blocks[i, j, k] != 17]
        counts = np.bincount(v, minlength=17)
        assert on.semantics[i, j, k] == int(np.argmax(counts))  # argmax: the lowest id of a tie
    sampled = tr.semantics[1::2, 1::2, 1::2] != 17  # the voxel under each centre (its floor: the upper one)
    assert not np.array_equal(sampled, occupied)


def test_to_surroundocc_and_semantickitti_write_folders_their_format_detects(world, tmp_path):
    from occkit.formats import detect_format, get_format

    (tmp_path / "so.yaml").write_text(_to_nusc_occupancy(world, "surroundocc"))
    _label(world, tmp_path / "so", "--to", "surroundocc", "--class-map", str(tmp_path / "so.yaml"), "--preset", "naive")
    assert detect_format(tmp_path / "so").name == "surroundocc"
    ds = get_format("surroundocc").open_split(tmp_path / "so", "all", load_images=False)
    assert ds.read_labels(ds.frames[0].token)["semantics"].shape == (200, 200, 16)
    kitti = {
        "car": ["car"], "bicycle": ["bicycle"], "motorcycle": ["motorcycle"], "truck": ["truck"],
        "bus": ["other-vehicle"], "construction_vehicle": ["other-vehicle"], "trailer": ["other-vehicle"],
        "pedestrian": ["person"], "driveable_surface": ["road"], "sidewalk": ["sidewalk"],
        "other_flat": ["other-ground"], "terrain": ["terrain"], "manmade": ["building"], "vegetation": ["vegetation"],
    }  # fmt: skip
    pairs = [([c], kitti[c]) for c in _classes(world) if c in kitti]
    drop = [c for c in _classes(world) if c not in kitti]
    (tmp_path / "sk.yaml").write_text(_map_yaml("semantickitti", pairs, drop))
    sk = ["--to", "semantickitti", "--class-map", str(tmp_path / "sk.yaml")]
    said = _label(world, tmp_path / "sk", *sk)
    assert detect_format(tmp_path / "sk").name == "semantickitti"
    assert "no ground fill" not in said  # the default ground classes name SemanticKITTI's ground too
    assert "256x256x32 voxels of 0.2 m in the lidar frame" in said
    files = sorted((tmp_path / "sk" / "sequences" / SCENE / "voxels").glob("*.label"))
    assert [f.name for f in files] == ["000000.label", "000001.label"]
    assert (tmp_path / "sk" / "sequences" / SCENE / "calib.txt").is_file()
    # each keyframe's image of the rig's first camera (CAM_FRONT), its JPEG written as image_2's PNG
    for frame, image in _front_images(world, tmp_path / "sk" / "sequences" / SCENE).items():
        png = tmp_path / "sk" / "sequences" / SCENE / "image_2" / f"{frame}.png"
        assert not png.is_symlink() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        np.testing.assert_array_equal(_pixels(png), _pixels(image))
    ds = get_format("semantickitti").open_split(tmp_path / "sk", "all")
    assert ds.images_recorded and tuple(ds[0].images.shape) == (1, 3, 48, 80)  # what a camera preset reads


def _front_images(world: Path, seq: Path) -> dict[str, Path]:
    """The world's CAM_FRONT image of each frame of a KITTI-layout sequence (its ``frames.txt`` tokens)."""
    infos = json.loads((world / "annotations.json").read_text())["scene_infos"][SCENE]
    rows = [ln.split() for ln in (seq / "frames.txt").read_text().splitlines()]
    return {f: world / infos[tok]["camera_sensor"]["CAM_FRONT"]["img_path"] for f, _, tok in rows}


def _pixels(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_a_keyframe_without_its_camera_image_is_said_and_the_others_carry_theirs(world, tmp_path):
    """A keyframe whose image of the KITTI layouts' camera is missing from the recording: the labels are written,
    the other keyframe's image is, and a warning names the frame and the camera."""
    from occkit.formats import get_format

    copy = tmp_path / "w"
    shutil.copytree(world, copy, ignore=shutil.ignore_patterns("gts", "extras"))
    infos = json.loads((copy / "annotations.json").read_text())["scene_infos"][SCENE]
    token = list(infos)[1]
    (copy / infos[token]["camera_sensor"]["CAM_FRONT"]["img_path"]).unlink()
    kitti = {"car": "car", "driveable_surface": "road", "vegetation": "vegetation", "manmade": "building"}
    pairs = [([c], [kitti[c]]) for c in _classes(world) if c in kitti]
    (tmp_path / "k.yaml").write_text(_map_yaml("kitti360", pairs, [c for c in _classes(world) if c not in kitti]))
    cmap = ["--class-map", str(tmp_path / "k.yaml")]
    said = _label(copy, tmp_path / "k", "--to", "kitti360", *cmap, "--preset", "naive")
    assert f"1 of 2 keyframes have no CAM_FRONT image (000001 ({token}))" in said, said
    images = tmp_path / "k" / "data_2d_raw" / SCENE / "image_00" / "data_rect"
    assert sorted(p.name for p in images.iterdir()) == ["000000.png"]
    ds = get_format("kitti360").open_split(tmp_path / "k", "all", load_images=False)
    assert len(ds) == 2  # both keyframes' labels
    (image,) = [im for f, im in _front_images(copy, tmp_path / "k" / "data_2d_raw" / SCENE).items() if f == "000000"]
    np.testing.assert_array_equal(_pixels(images / "000000.png"), _pixels(image))


def test_grid_gives_occ3d_layout_another_voxel_size_stated_in_its_index(world, tmp_path):
    from occkit.formats import get_format

    out = tmp_path / "lab"
    said = _label(world, out, "--grid", "0.8", "--preset", "naive")
    assert "written as occ3d: 100x100x8 voxels of 0.8 m in the ego frame" in said
    ann = json.loads((out / "annotations.json").read_text())
    assert ann["grid"] == {"range_min": [-40.0, -40.0, -1.0], "range_max": [40.0, 40.0, 5.4], "voxel_size": [0.8] * 3}
    ds = get_format("occ3d").open_split(out, "all", load_images=False)
    assert tuple(ds.grid.shape) == (100, 100, 8)
    assert ds.read_labels(ds.frames[0].token)["semantics"].shape == (100, 100, 8)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["stats", str(out), "--split", "all", "--no-progress"]) == 0
    fmt = get_format("occ3d")
    pred = tmp_path / "pred"  # the labels as a prediction on the stated grid: eval --gt scores them 100
    for f in ds.frames:
        fmt.predictions.write(pred, f.token, ds.read_labels(f.token)["semantics"])
    said_eval = io.StringIO()
    with contextlib.redirect_stdout(said_eval):
        assert main(["eval", "--gt", str(out), "--pred", str(pred), "--split", "all", "--no-progress"]) == 0
    assert "miou                    100.00" in said_eval.getvalue()


def test_quality_on_a_coarser_grid_scores_against_the_pooled_truth_and_names_the_grid(world, tmp_path):
    """``--grid 0.8 --quality``: the labels against the truth pooled onto 0.8 m (sampling the 0.4 m voxel under
    each centre scored them 1.6 % occupied IoU on this world: thin ground layers missed); quality.md's
    command line names the options that set the figures."""
    out = tmp_path / "lab"
    _label(world, out, "--grid", "0.8", "--quality")
    q = json.loads((out / "quality.json").read_text())
    assert q["occupied_iou_observable"] > 20, q
    assert (
        "--grid 0.8" in (out / "quality.md").read_text() and "--scenes scene-0000" in (out / "quality.md").read_text()
    )


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--grid", "0.3"], "not a whole number of 0.3 m voxels"),
        (["--grid", "a b"], "expected VOXEL"),
        (["--grid", "0.2", "--to", "openoccupancy"], "--grid is for Occ3D's layout"),
        (["--to", "nosuchformat"], "--to nosuchformat: not a format"),
        (["--grid", "0.001"], "4.1e+13 voxels a keyframe"),  # was numpy's "Unable to allocate 37.3 TiB"
        (["--scenes", ","], "--scenes ',': names no scene"),  # was: an empty label folder, rc 0
    ],
)
def test_a_bad_output_option_is_refused_in_one_line(world, tmp_path, capsys, extra, said):
    out = tmp_path / "lab"
    assert main(["label", "--data", str(world), "--out", str(out), *extra]) != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and said in err
    assert not out.exists() and not (tmp_path / ".lab.partial").exists()


def test_quality_whose_truth_the_output_cannot_hold_is_refused_before_any_work(world, tmp_path, capsys, monkeypatch):
    """No class map joins Occ3D's classes (the world's truth) and the output's, directly or through another
    format: ``--quality`` is refused before the labelling (it was refused after it, the labels left in the
    hidden partial folder). KITTI-360's are joined through SemanticKITTI's (the shipped maps), so the
    registry is narrowed to the two formats here."""
    import occkit.formats.registry as registry

    names = registry.format_names
    monkeypatch.setattr(registry, "format_names", lambda: [n for n in names() if n in ("occ3d", "kitti360")])
    drop = [c for c in _classes(world) if c != "car"]
    (tmp_path / "k.yaml").write_text(_map_yaml("kitti360", [(["car"], ["car"])], drop))
    out = tmp_path / "lab"
    argv = [
        "label",
        "--data",
        str(world),
        "--out",
        str(out),
        "--to",
        "kitti360",
        "--class-map",
        str(tmp_path / "k.yaml"),
    ]
    assert main([*argv, "--quality"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot be put in kitti360's classes" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.yaml"]


def test_the_truth_reaches_kitti360s_classes_through_semantickittis():
    """Occ3D -> SemanticKITTI -> SSCBench-KITTI-360 (the shipped maps; one set of raw ids): each Occ3D class
    lands where the two maps send it, a class either drops is ignored."""
    from occkit.convert.plan import class_conversion
    from occkit.formats import get_format
    from occkit.labelgen.run import truth_classes

    occ3d, sk, k360 = (get_format(n) for n in ("occ3d", "semantickitti", "kitti360"))
    conv = truth_classes(k360)
    first, then = class_conversion(occ3d, sk, None), class_conversion(sk, k360, None)
    for i, name in enumerate(occ3d.classes.names):
        assert conv.lut[i] == then.lut[first.lut[i]], name
    names = k360.classes.names
    assert names[conv.lut[occ3d.classes.names.index("car")]] == "car"
    assert conv.lut[occ3d.classes.free] == k360.classes.free
    assert conv.lut[occ3d.classes.names.index("others")] == k360.classes.ignore  # SemanticKITTI has no others
    assert occ3d.classes.names.index("others") in conv.dropped


def test_a_rig_with_its_origin_at_the_lidar_is_warned_about_once_per_scene(world, occ3d_labels, tmp_path):
    rig = tmp_path / "rig"
    shutil.copytree(world / "rig", rig)
    meta = json.loads((rig / "rig.json").read_text())
    for lidar in meta["lidars"].values():
        lidar["translation"][2] = 0.0  # the ego origin at the LiDAR (KITTI's velodyne frame)
    (rig / "rig.json").write_text(json.dumps(meta))
    said = _label(rig, tmp_path / "lab", "--preset", "naive")
    warned = [line for line in said.splitlines() if "below the grid's lowest voxel" in line]
    assert len(warned) == 1 and SCENE in warned[0] and "LiDAR's height" in warned[0]
    base = json.loads((occ3d_labels / "report.json").read_text())
    assert not any(s.get("warnings") for s in base["scenes"])  # the world's own rig: no warning


def test_an_occ3d_index_read_back_into_its_parts_is_written_again_byte_for_byte(world, tmp_path):
    """The one writer of Occ3D's index (occkit.data.occ3d.write_occ3d_index): the world's own
    annotations.json (synth wrote it through that writer) split into its parts and written again."""
    from occkit.data.occ3d import index_parts, write_occ3d_index

    ann = json.loads((world / "annotations.json").read_text())
    assert list(ann)[:3] == ["train_split", "val_split", "scene_infos"]
    head, splits, infos, tail = index_parts(ann)
    assert head == {} and list(splits) == ["train", "val"] and "synth_config" in tail
    write_occ3d_index(tmp_path, infos, splits, head=head, tail=tail, always=())
    assert (tmp_path / "annotations.json").read_bytes() == (world / "annotations.json").read_bytes()
    write_occ3d_index(tmp_path / "b.json", {}, {"val": ["s"]})  # a split missing: added empty, after the given
    assert list(json.loads((tmp_path / "b.json").read_text())) == ["val_split", "train_split", "scene_infos"]
