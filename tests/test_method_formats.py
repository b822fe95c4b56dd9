"""Every multi-camera method on every multi-camera format family it can use, end to end through the
CLI: ``occkit synth --format F`` (2 scenes x 2 frames, 32 x 96 images), ``occkit train`` (2 steps of
the method's shipped preset made tiny, with no ``--set`` of classes, free id or grid: the method
takes them from the data's format), ``occkit predict``, ``occkit eval``. ``easyocc`` trains on
``occkit pseudolabel``'s labels, written in the world's own layout (class table, grid, label frame).

The families: Occ3D's (ego frame, 18 classes, 17 = free) and the LiDAR-frame sparse layouts
(SurroundOcc: 200x200x16 at 0.5 m, 17 classes, 0 = empty; OpenOccupancy: 512x512x40 at 0.2 m,
behind ``OCCKIT_SLOW_TESTS=1``, its 10 million voxels a step). docs/methods.md's table "Which
method runs on which format" is this file's matrix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

SLOW = not os.environ.get("OCCKIT_SLOW_TESTS")

#: every run: 2 CPU steps of a tiny network, one thread, no validation
TINY = [
    "model.backbone=test_efficientnet",
    "model.neck_channels=8",
    "model.context_channels=8",
    "model.encoder_widths=[8,16]",
    "model.depth_step=4.0",
    "data.image_aug.out_hw=[32,96]",
    "data.workers=0",
    "optim.max_steps=2",
    "optim.warmup_steps=1",
    "optim.amp=none",
    "train.val_every=0",
    "train.ckpt_every=2",
    "train.tensorboard=false",
    "train.threads=1",
    "train.device=cpu",
    "train.log_every=1",
]
#: the lift grid per family: about 50 x 50 cells whatever the label grid
LIFT = {
    "occ3d": ["model.lift_downsample=[4,4,2]"],
    "surroundocc": ["model.lift_downsample=[4,4,2]"],
    "openoccupancy": ["model.lift_downsample=[8,8,8]"],
    "semantickitti": ["model.lift_downsample=[4,4,2]"],
}
#: the rendering methods' rays a frame, made tiny as the network is (their presets: 1024-2048; a step's
#: losses are computed the same way on fewer rays, and the format's classes and free id are what is checked)
RAYS = {
    "render_sup": ["render_sup.num_rays=256"],
    "radocc": ["radocc.num_rays=128"],
    "langocc": ["langocc.num_rays=128"],
}
#: method -> (preset, what it needs besides the world: "teacher", "priors", "pseudo")
METHODS = {
    "supervised": ("synth-cpu", ()),
    "lidar-teacher": ("lidar-teacher", ()),
    "fusion-teacher": ("fusion-teacher", ()),
    "render_sup": ("render-sup-cpu", ()),
    "radocc": ("radocc", ("teacher",)),
    "easyocc": ("easyocc", ("pseudo",)),
    "langocc": ("langocc", ("priors",)),
}
FAMILIES = ("occ3d", "surroundocc", "openoccupancy")


def _main(args: list[str]) -> int:
    from occkit.cli import main

    return main(args)


@pytest.fixture(scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def worlds(tmp_path_factory, one_thread) -> dict[str, Path]:
    """The synthetic world written in each family's format, lazily (OpenOccupancy only when asked)."""
    root = tmp_path_factory.mktemp("method_formats")
    made: dict[str, Path] = {}

    class Worlds(dict):
        def __missing__(self, fmt: str) -> Path:
            out = root / fmt
            synth = ["synth", "--format", fmt, "--out", str(out), "--scenes", "2", "--frames", "2"]
            assert _main([*synth, "--image-size", "32", "96", "--val-fraction", "0.5", "--seed", "0"]) == 0
            self[fmt] = out
            return out

    return Worlds(made)


def _needs(what: str, fmt: str, world: Path, tmp: Path) -> list[str]:
    """The ``--set`` of what a method needs besides the world, made by occkit's own commands."""
    if what == "priors":
        priors = world.parent / f"{fmt}_priors"
        if not priors.is_dir():
            cmd = ["priors", "run", "--data", str(world), "--prior", "oracle:typical", "--out", str(priors)]
            assert _main([*cmd, "--no-progress"]) == 0
        return [f"data.priors={priors}", "data.prior_kinds=[features]", "data.load_extras=true"]
    if what == "teacher":
        teacher = world.parent / f"{fmt}_teacher"
        if not teacher.is_dir():
            cmd = ["train", "lidar-teacher", "--data", str(world), "--out", str(teacher), "--no-progress"]
            assert _main([*cmd, "--no-val", "--set", *TINY, *LIFT[fmt]]) == 0
        return [f"radocc.teacher={teacher}", "data.load_extras=true"]
    return []


def _pseudo_labels(fmt: str, world: Path) -> Path:
    """``occkit pseudolabel`` on ``world`` (from an oracle prior cache): a dataset in ``world``'s own
    layout, checked against the Occ3D-class, ego-frame labels it was converted from."""
    from occkit.formats import detect_format

    pseudo = world.parent / f"{fmt}_pseudo"
    priors = world.parent / f"{fmt}_priors"
    if not (pseudo / "annotations.json").is_file():
        _needs("priors", fmt, world, world.parent)
        cmd = ["pseudolabel", "--data", str(world), "--priors", str(priors)]
        assert _main([*cmd, "--out", str(pseudo), "--past", "1", "--no-progress"]) == 0
        if fmt != "occ3d":
            _check_converted(fmt, world, priors, pseudo)
            _check_resume(cmd, pseudo)
    assert detect_format(pseudo).name == fmt  # train reads the format from the folder
    return pseudo


def _check_resume(cmd: list[str], pseudo: Path) -> None:
    """A label file cut short is redone, bit-identically, the others kept; the report is the same."""
    import hashlib

    def sums() -> dict[str, str]:
        files = sorted(p for p in pseudo.rglob("*.npy") if p.is_file() and not p.is_symlink())
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}

    before, record = sums(), json.loads((pseudo / "pseudolabel.json").read_text())
    assert len(before) == 4
    victim = Path(sorted(before)[1])
    victim.write_bytes(victim.read_bytes()[:100])
    assert _main([*cmd, "--out", str(pseudo), "--past", "1", "--no-progress"]) == 0
    again = json.loads((pseudo / "pseudolabel.json").read_text())
    assert sums() == before and again["written_this_run"] == 1
    assert again["conversion"] == record["conversion"]


def _check_converted(fmt: str, world: Path, priors: Path, pseudo: Path) -> None:
    """Each voxel of the written labels is the Occ3D pseudo-label of the ego voxel holding its centre
    (carried by the frame's LiDAR extrinsic), through the class map; unobserved there: ignored."""
    import numpy as np

    from occkit.convert import class_conversion
    from occkit.formats import get_format
    from occkit.pseudolabel.dataset import label_scene
    from occkit.resampling import resample_index

    record = json.loads((pseudo / "pseudolabel.json").read_text())
    conv = record["conversion"]
    assert record["layout"] == fmt and conv["target_format"] == fmt and conv["frames"] == 4
    assert conv["unobserved_written_as_ignored"] > 0 and not conv["lossless"]
    src, dst = get_format("occ3d"), get_format(fmt)
    ds = dst.open_split(pseudo, "all", load_images=False)
    frame = ds.frames[0]
    occ3d = pseudo.parent / f"{fmt}_pseudo_occ3d"  # the same labels, Occ3D's layout (label_scene without a layout)
    label_scene(str(world), str(priors), str(occ3d), record["config"], frame.scene)
    made = np.load(occ3d / "gts" / frame.scene / frame.token / "labels.npz")
    expect = class_conversion(src, dst, None).lut[np.where(made["mask_camera"] == 1, made["semantics"], 255)]
    T_ego_from_lidar = ds.T_ego_from_lidar_pose(frame.token).double().numpy()
    idx = resample_index(src.grid, dst.grid, T_ego_from_lidar)
    got = ds.read_labels(frame.token)["semantics"].reshape(-1)
    want = np.where(idx >= 0, expect.reshape(-1)[np.maximum(idx, 0)], 255)
    assert (got == want).all(), int((got != want).sum())
    assert ((got != 255) & (got != dst.classes.free)).any()  # some occupied voxels survive


def _cases():
    for method in METHODS:
        for fmt in FAMILIES:
            marks = []
            if fmt == "openoccupancy" or (fmt == "occ3d" and method not in ("supervised",)):
                # OpenOccupancy: 10.5 million voxels a step; Occ3D: every method's first losses are recorded on
                # it already (tests/test_first_losses.py), supervised end to end here in the default suite
                marks.append(pytest.mark.skipif(SLOW, reason="set OCCKIT_SLOW_TESTS=1 (minutes)"))
            yield pytest.param(method, fmt, marks=marks, id=f"{method}-{fmt}")
    # a monocular format: the supervised camera network takes its one camera, classes and grid as well
    slow = pytest.mark.skipif(SLOW, reason="set OCCKIT_SLOW_TESTS=1 (the SemanticKITTI export: half a minute)")
    yield pytest.param("supervised", "semantickitti", marks=[slow], id="supervised-semantickitti")


@pytest.mark.parametrize(("method", "fmt"), list(_cases()))
def test_method_trains_predicts_and_scores_on_format(method, fmt, worlds, tmp_path) -> None:
    from occkit.formats import get_format

    preset, needs = METHODS[method]
    world = worlds[fmt]
    data = world
    sets = [*TINY, *LIFT[fmt], *RAYS.get(method, [])]
    for what in needs:
        if what == "pseudo":
            data = _pseudo_labels(fmt, world)
        else:
            sets += _needs(what, fmt, world, tmp_path)
    run, pred, res = tmp_path / "run", tmp_path / "pred", tmp_path / "eval.json"
    assert _main(["train", preset, "--data", str(data), "--out", str(run), "--no-progress", "--set", *sets]) == 0
    cfg = json.loads((run / "config.json").read_text())
    table = get_format(fmt).classes
    assert cfg["model"]["num_classes"] == table.num_classes  # from the format, no --set
    for section in ("supervised", "render_sup", "radocc", "langocc"):
        if "free" in cfg.get(section, {}):
            assert cfg[section]["free"] == table.free, section
    assert _main(["predict", "--ckpt", str(run), "--data", str(world), "--out", str(pred), "--no-progress"]) == 0
    assert _main(["eval", "--gt", str(world), "--pred", str(pred), "--json", str(res), "--no-progress"]) == 0
    scores = json.loads(res.read_text())
    val = get_format(fmt).open_split(world, "val", load_images=False, load_gt=False)
    assert scores["frames"] == len(val) > 0  # every frame of the val split scored
    assert 0.0 <= scores["geometry_iou"] <= 100.0


def test_a_teacher_without_lidar_refuses_in_one_line(worlds, tmp_path, capsys) -> None:
    """The LiDAR teacher on frames that carry no LiDAR (a layout read without its extras, as real
    SurroundOcc folders without ``data.lidar_infos``): one line saying what it needs."""
    world = worlds["surroundocc"]
    args = ["train", "lidar-teacher", "--data", str(world), "--out", str(tmp_path / "run"), "--no-progress"]
    assert _main([*args, "--set", *TINY, *LIFT["surroundocc"], "data.load_extras=false"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "LiDAR" in err[0] and "data.load_extras" in err[0], err


def test_a_preset_that_disagrees_with_the_format_is_one_line(worlds, tmp_path, capsys) -> None:
    """An explicit class count other than the format's table: one line naming the key and the format."""
    world = worlds["surroundocc"]
    args = ["train", "synth-cpu", "--data", str(world), "--out", str(tmp_path / "run"), "--no-progress"]
    assert _main([*args, "--set", *TINY, *LIFT["surroundocc"], "model.num_classes=18"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.num_classes" in err[0] and "surroundocc" in err[0] and "17" in err[0], err
    assert _main([*args, "--set", *TINY, *LIFT["surroundocc"], "supervised.free=17"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "supervised.free" in err[0] and "surroundocc" in err[0], err


def test_fit_to_format_fills_what_the_preset_leaves_and_checks_what_it_gives() -> None:
    """The rule, without data: unset keys take the format's values, given ones must agree, and a
    config not from a preset (a run's config.json) is only checked."""
    from occkit.config import ConfigError
    from occkit.experiment import experiment_from_dict, fit_to_format, load_experiment
    from occkit.formats import get_format

    so, occ3d = get_format("surroundocc"), get_format("occ3d")
    cfg = load_experiment("synth-cpu")  # gives neither classes nor free id nor grid
    fitted = fit_to_format(cfg, "DATA", fmt=so)
    assert fitted.model.num_classes == 17 and fitted.supervised.free == 0
    assert fitted.model.point_range == (-50.0, -50.0, -5.0, 50.0, 50.0, 3.0) and fitted.model.voxel_size == 0.5
    assert fitted.model.ground_z == -1.84
    assert cfg.model.num_classes == 18 and cfg.supervised.free is None  # a copy: the preset's config unchanged
    occ = fit_to_format(cfg, "DATA", fmt=occ3d)  # Occ3D's grid and classes are the network's defaults ...
    assert occ.model == cfg.model and occ.supervised.free == 17  # ... the free id no signature has: the format's
    # given and equal: kept; given and different: one line naming the key and the format
    assert fit_to_format(load_experiment("surroundocc-cpu"), "DATA", fmt=so).model.num_classes == 17
    with pytest.raises(ConfigError, match=r"data\.format: 'surroundocc' .*format occ3d"):
        fit_to_format(load_experiment("surroundocc-cpu"), "DATA", fmt=occ3d)
    with pytest.raises(ConfigError, match=r"model\.num_classes: 17 .*format occ3d.*18"):
        fit_to_format(load_experiment("surroundocc-cpu", ["data.format=auto"]), "DATA", fmt=occ3d)
    with pytest.raises(ConfigError, match=r"radocc\.free: 17 .*format surroundocc"):
        fit_to_format(load_experiment("radocc", ["radocc.free=17", "model.num_classes=17"]), "DATA", fmt=so)
    # a run's config.json holds every key: checked, never filled
    saved = experiment_from_dict({"method": "supervised"})
    with pytest.raises(ConfigError, match="supervised.free|model.num_classes"):
        fit_to_format(saved, "DATA", fmt=so)
    # langocc: the format's class names, free first
    lang = fit_to_format(load_experiment("langocc"), "DATA", fmt=so)
    assert lang.langocc.classes == so.classes.names and lang.langocc.free == 0


def test_fit_to_format_changes_settings_by_field_and_refuses_a_key_that_is_none(monkeypatch) -> None:
    """The filled config is a copy (no section shared with the preset's, the given keys kept), and a
    method whose from_format names no setting of its config is refused in one line, never given an
    attribute of that name."""
    import dataclasses

    from occkit.experiment import GIVEN_KEYS, fit_to_format, load_experiment, method_spec
    from occkit.formats import get_format
    from occkit.methods.registry import RegistryError

    so = get_format("surroundocc")
    cfg = load_experiment("synth-cpu")
    fitted = fit_to_format(cfg, "DATA", fmt=so)
    assert getattr(fitted, GIVEN_KEYS) == getattr(cfg, GIVEN_KEYS)
    for f in dataclasses.fields(cfg):
        assert getattr(fitted, f.name) is not getattr(cfg, f.name) or isinstance(getattr(cfg, f.name), str)
    assert fitted.data == cfg.data and fitted.optim == cfg.optim  # what the format does not set: equal
    spec = method_spec(cfg)
    for key in ("model.num_clases", "nosuch.free", "method.x"):
        monkeypatch.setattr(spec, "from_format", {key: "num_classes"})
        with pytest.raises(RegistryError, match=rf"method supervised: from_format names '{key}'"):
            fit_to_format(cfg, "DATA", fmt=so)
    assert not hasattr(cfg.model, "num_clases")
