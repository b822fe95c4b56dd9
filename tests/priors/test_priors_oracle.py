"""The prior interface, the oracle and superpixel providers, the cache and the quality report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from occkit.data.occ3d import Occ3DDataset
from occkit.priors import CompositePrior, PriorFrame, Priors, build_prior
from occkit.priors.cache import PriorCache, WithPriors, prior_frame, run_priors
from occkit.priors.quality import evaluate_priors, load_class_vocabulary


@pytest.fixture(scope="module")
def frame(synth_root) -> PriorFrame:
    ds = Occ3DDataset(synth_root, "all", load_gt=False)
    return prior_frame(ds, ds[0])


@pytest.fixture(scope="module")
def text():
    """MiniLM, loaded once (it remembers what it encoded: the fine names are encoded once)."""
    from occkit.priors.text import load_text_encoder

    return load_text_encoder("minilm")


@pytest.fixture(scope="module")
def caches(synth_root, tmp_path_factory, text) -> dict[str, Path]:
    """Caches of the three oracle levels (all kinds) over 2 frames, and a second typical run."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("priors")
    out = {}
    for name, spec in (
        ("clean", "oracle:clean"),
        ("typical", "oracle:typical"),
        ("noisy", "oracle:noisy"),
        ("typical2", "oracle:typical"),
    ):
        out[name] = run_priors(
            synth_root, root / name, build_prior(spec, text_encoder=text), max_frames=2, progress=False
        )
    return out


@pytest.fixture(scope="module")
def reports(synth_root, caches, text) -> dict[str, dict]:
    return {k: evaluate_priors(synth_root, caches[k], text_encoder=text) for k in ("clean", "typical", "noisy")}


# ------------------------------------------------------------------------------------ the interface
def test_build_prior_errors_name_the_spec():
    with pytest.raises(ValueError, match="nonsense"):
        build_prior("nonsense:1")
    with pytest.raises(ValueError, match="oracle:perfect"):
        build_prior("oracle:perfect")
    with pytest.raises(ValueError, match="does not provide"):
        build_prior("features=superpixels")


def test_priors_validate_rejects_bad_dtype_and_ranges():
    p = Priors(semantics=torch.zeros(1, 4, 5, dtype=torch.long), confidence=torch.ones(1, 4, 5))
    with pytest.raises(ValueError, match="uint8"):
        p.validate(1, (4, 5))
    p = Priors(depth=torch.full((1, 4, 5), -1.0))
    with pytest.raises(ValueError, match="negative"):
        p.validate(1, (4, 5))
    p = Priors(features=torch.ones(1, 3, 2, 2), feature_stride=2)
    p.validate(1, (4, 3))  # ceil(3 / 2) = 2
    with pytest.raises(ValueError, match="features"):
        p.validate(1, (4, 5))


def test_composite_routes_each_kind(frame, text):
    c = build_prior(["oracle:clean", "segments=superpixels"], text_encoder=text)
    assert isinstance(c, CompositePrior)
    out = c(frame, ["semantics", "segments"])
    sp = build_prior("superpixels")(frame, ["segments"])
    assert torch.equal(out.segments, sp.segments)
    assert torch.equal(out.semantics.long(), frame.semantics_2d)


# ------------------------------------------------------------------------------------ the oracle
def test_oracle_clean_reproduces_the_extras(frame, text):
    p = build_prior("oracle:clean", text_encoder=text)
    out = p(frame, ["semantics", "segments", "depth", "features"])
    out.validate(len(frame.cam_names), frame.image_size)
    assert torch.equal(out.depth, frame.depth)
    assert torch.equal(out.semantics.long(), frame.semantics_2d)
    assert bool((out.confidence == 1).all())
    # segments: one segment per object instance, exactly
    for seg, inst in zip(out.segments, frame.instance_2d):
        for iid in torch.unique(inst[inst > 0]).tolist():
            ids = torch.unique(seg[inst == iid])
            assert len(ids) == 1 and bool((inst[seg == ids[0]] == iid).all())
    # features: the exact text embedding of the name at each cell centre
    s = p.feature_stride
    te = p.text_encoder
    cam, y, x = 0, 3, 5
    py, px = min(y * s + s // 2, frame.image_size[0] - 1), min(x * s + s // 2, frame.image_size[1] - 1)
    iid = int(frame.instance_2d[cam, py, px])
    from occkit.worlds.driving.vocabulary import CLASS_WORDS

    name = frame.instance_names[iid] if iid > 0 else CLASS_WORDS[int(frame.semantics_2d[cam, py, px])]
    assert torch.allclose(out.features[cam, :, y, x], te.encode_text([name])[0], atol=1e-6)


def test_oracle_is_deterministic(frame):
    a = build_prior("oracle:noisy")(frame, ["semantics", "segments", "depth"])
    b = build_prior("oracle:noisy")(frame, ["semantics", "segments", "depth"])
    for k in ("semantics", "confidence", "segments", "depth"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k


def test_oracle_needs_the_extras(frame):
    bare = PriorFrame(frame.scene, frame.token, frame.cam_names, frame.images, frame.intrinsics)
    with pytest.raises(ValueError, match="synthetic extras"):
        build_prior("oracle:clean")(bare, ["depth"])


def test_superpixels_cover_every_pixel(frame):
    for spec in ("superpixels", "superpixels:felzenszwalb"):
        out = build_prior(spec)(frame, ["segments"])
        out.validate(len(frame.cam_names), frame.image_size)
        assert int(out.segments.min()) >= 1 and int(out.segments[0].max()) > 10


# ------------------------------------------------------------------------------------ quality
def test_levels_are_ordered_clean_typical_noisy(reports):
    c, t, n = reports["clean"], reports["typical"], reports["noisy"]
    assert c["semantic_miou"] == 100.0 and c["depth_absrel"] == 0.0 and c["depth_delta1"] == 100.0
    assert c["segment_miou"] == 100.0
    assert c["semantic_miou"] > t["semantic_miou"] > n["semantic_miou"]
    assert c["depth_absrel"] < t["depth_absrel"] < n["depth_absrel"]
    assert c["depth_delta1"] > t["depth_delta1"] > n["depth_delta1"]
    assert c["segment_miou"] > t["segment_miou"] > n["segment_miou"]
    assert c["feature_class_acc"] > n["feature_class_acc"]
    for key in (
        "semantic_miou",
        "depth_absrel",
        "depth_delta1",
        "segment_miou",
        "feature_class_acc",
        "feature_fine_acc_seen",
        "feature_fine_acc_heldout",
    ):
        assert key in t


def test_clean_features_name_most_fine_objects(reports):
    # exact embeddings of the names, compared with template-averaged prompts of the same names
    assert reports["clean"]["feature_fine_acc_seen"] > 80.0


def test_runs_are_deterministic(caches):
    a, b = caches["typical"], caches["typical2"]
    files = sorted(p.relative_to(a) for p in a.rglob("*.npz"))
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*.npz"))
    for f in files:
        za, zb = np.load(a / f), np.load(b / f)
        for k in za.files:
            assert np.array_equal(za[k], zb[k]), (f, k)


def test_vocabulary_yaml_matches_prior_classes(tmp_path):
    from occkit.priors.base import PRIOR_CLASSES

    names, syns, templates = load_class_vocabulary()
    assert tuple(names) == PRIOR_CLASSES and all(syns) and all("{}" in t for t in templates)
    bad = tmp_path / "v.yaml"
    bad.write_text("templates: [no placeholder]\nclasses: {car: [car]}\n")
    with pytest.raises(ValueError, match="v.yaml"):
        load_class_vocabulary(bad)


def test_segment_score_on_a_hand_made_case():
    from occkit.priors.quality import _Scores, _segments

    inst = torch.zeros(1, 8, 8, dtype=torch.long)
    inst[0, :4, :4] = 1  # 16 pixels
    seg = torch.ones(1, 8, 8, dtype=torch.long)
    seg[0, :4, :2] = 2  # half of the instance
    sc = _Scores(18)
    _segments(sc, seg, inst)
    # best segment: 2 (8 px, all inside): IoU 8/16 = 0.5; segment 1 (56 px, 8 inside): 8/64
    assert sc.seg_iou == [0.5]


# ------------------------------------------------------------------------------------ the cache
def test_cache_layout_and_record(caches):
    root = caches["typical"]
    rec = json.loads((root / "prior.json").read_text())
    assert rec["complete"] and rec["spec"] == "oracle:typical" and rec["feature_dim"] == 384
    assert rec["text_encoder"] == "minilm" and rec["feature_stride"] == 8
    f = next(root.rglob("CAM_FRONT.npz"))
    z = np.load(f)
    assert z["semantics"].dtype == np.uint8 and z["segments"].dtype == np.int32
    assert z["depth"].dtype == np.float32 and z["features"].dtype == np.float16


def test_cache_resumes_and_refuses_other_priors(synth_root, tmp_path):
    out = tmp_path / "c"
    run_priors(synth_root, out, build_prior("oracle:typical"), kinds=["depth"], max_frames=2, progress=False)
    files = sorted(out.rglob("*.npz"))
    victim = files[0]
    keep = next(f for f in files if f.parent != victim.parent)  # a frame is rewritten whole or not at all
    victim.unlink()
    before = keep.stat().st_mtime_ns
    (out / "prior.json").write_text((out / "prior.json").read_text().replace('"complete": true', '"complete": false'))
    with pytest.raises(ValueError, match="incomplete"):
        PriorCache(out)
    run_priors(synth_root, out, build_prior("oracle:typical"), kinds=["depth"], max_frames=2, progress=False)
    assert victim.is_file() and keep.stat().st_mtime_ns == before
    with pytest.raises(FileExistsError, match="spec"):
        run_priors(synth_root, out, build_prior("oracle:noisy"), kinds=["depth"], max_frames=2, progress=False)


def test_attach_refuses_other_frames_and_sizes(synth_root, tmp_path):
    out = run_priors(
        synth_root, tmp_path / "one", build_prior("oracle:clean"), kinds=["depth"], max_frames=1, progress=False
    )
    ds = Occ3DDataset(synth_root, "all", load_gt=False)
    with pytest.raises(ValueError, match="not in it"):
        WithPriors(ds, PriorCache(out))
    cache = PriorCache(out)
    with pytest.raises(ValueError, match="made for 64x176"):
        cache.load(ds.frames[0].scene, ds.frames[0].token, ds.cameras, (32, 88))


def test_build_dataset_attaches_priors_through_augmentation(synth_root, caches, tmp_path):
    from occkit.data.sample import collate
    from occkit.experiment import build_dataset, load_experiment

    full = run_priors(
        synth_root,
        tmp_path / "all",
        build_prior("oracle:typical"),
        kinds=["semantics", "depth", "features"],
        progress=False,
    )
    cfg = load_experiment(
        None,
        [
            f"data.priors={full}",
            "data.image_aug.out_hw=[48, 128]",
            "data.image_aug.resize_range=[0.9, 1.1]",
            "data.image_aug.flip_prob=0.5",
        ],
    )
    ds = build_dataset(cfg, synth_root, "train", train=True)
    b = collate([ds[0], ds[1]])
    assert b.prior_semantics.shape == (2, 6, 48, 128) and b.prior_depth.shape == (2, 6, 48, 128)
    assert b.prior_features.shape == (2, 6, 384, 6, 16) and b.prior_feature_stride == 8
    assert b.prior_segments is None
    n = b.prior_features.norm(dim=2)
    assert torch.allclose(n[n > 0], torch.ones_like(n[n > 0]), atol=1e-3)
    with pytest.raises(Exception, match="prior_kinds"):
        load_experiment(None, ["data.prior_kinds=[colour]", f"data.priors={full}"])
    # features of another width than the language head's: refused when the data is built, naming the cache
    wide = load_experiment(None, [f"data.priors={full}", "method=langocc", "langocc.feature_dim=512"])
    with pytest.raises(ValueError, match=r"all: its features are 384-d .* langocc.feature_dim is 512"):
        build_dataset(wide, synth_root, "val", train=False)


def test_cli_run_eval_vocab(synth_root, tmp_path):
    from occkit.cli import main

    out = tmp_path / "cli"
    assert (
        main(
            [
                "priors",
                "run",
                "--data",
                str(synth_root),
                "--prior",
                "oracle:noisy",
                "--kinds",
                "semantics,depth",
                "--out",
                str(out),
                "--max-frames",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "priors",
                "eval",
                "--data",
                str(synth_root),
                "--priors",
                str(out),
                "--json",
                str(tmp_path / "r.json"),
                "--no-progress",
            ]
        )
        == 0
    )
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["frames"] == 1 and 0 < r["semantic_miou"] < 100 and r["depth_absrel"] > 0 and r["segment_miou"] is None
    assert main(["priors", "vocab", "--json", str(tmp_path / "v.json")]) == 0
    rows = json.loads((tmp_path / "v.json").read_text())
    assert {"name": "school bus", "class_id": 3, "class_name": "bus", "heldout": True, "kind": "object"} in rows


def test_semantickitti_layout(tmp_path, text):
    from occkit.worlds.driving import SynthConfig
    from occkit.worlds.driving.kitti_export import export_semantickitti

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = SynthConfig(
            scenes=2, frames=1, image_size=(48, 160), lidar_beams=16, lidar_azimuth_steps=360, occupancy_supersample=1
        )
        root = tmp_path / "kitti"
        export_semantickitti(root, cfg)
    finally:
        torch.set_num_threads(n)
    out = run_priors(
        root,
        tmp_path / "kp",
        build_prior("oracle:clean", text_encoder=text),
        kinds=["semantics", "depth", "segments"],
        progress=False,
    )
    rec = json.loads((out / "prior.json").read_text())
    assert rec["layout"] == "semantickitti" and rec["cameras"] == ["image_2"]
    assert sorted(p.name for p in out.rglob("*.npz")) == ["image_2.npz", "image_2.npz"]
    r = evaluate_priors(root, out)
    assert r["frames"] == 2 and r["semantic_miou"] == 100.0 and r["depth_absrel"] == 0.0


def test_resumed_cache_is_bit_identical_to_an_uninterrupted_one(synth_root, caches, tmp_path):
    """A copy of the second typical run stopped after half of its frames, resumed by a prior with its own
    text encoder (the names of the frames left meet other batch mates than in one run): its files equal
    the first typical run's to the bit."""
    import shutil

    whole = caches["typical"]
    part = shutil.copytree(caches["typical2"], tmp_path / "part")
    later = sorted(part.rglob("*.npz"))[len(list(part.rglob("*.npz"))) // 2 :]
    for f in later:  # a stop after half of the frames
        f.unlink()
    run_priors(synth_root, part, build_prior("oracle:typical"), max_frames=2, progress=False)
    files = sorted(whole.rglob("*.npz"))
    assert len(files) == len(list(part.rglob("*.npz"))) > 4 and all(f.is_file() for f in later)
    for f in files:
        a, b = np.load(f), np.load(part / f.relative_to(whole))
        assert a.files == b.files and "features" in a.files
        for k in a.files:
            assert np.array_equal(a[k], b[k]), f"{f.relative_to(whole)} {k}"
