"""The ``world:RUN`` prior: training on a tiny synthetic world, loading, outputs, held-out masking, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from occkit.config import ConfigError
from occkit.priors import PRIOR_CLASSES, PriorFrame, build_prior
from occkit.priors.world import WorldPrior, WorldPriorConfig, build_net, segments_from_maps
from occkit.priors.world_train import (
    HELDOUT,
    UNNAMED,
    boundary_map,
    load_world_images,
    name_map,
    sample_batch,
    seen_names,
    total_loss,
    train_world_prior,
    vl_targets,
    world_losses,
)
from occkit.worlds.driving.vocabulary import CLASS_WORDS, HELDOUT_NAMES

#: A small, fast config for tests (the tiny world's images are 64 x 176).
TINY = dict(image_size=(32, 96), width=16, batch_size=4, log_every=1, save_every_minutes=0.0, warmup_steps=1)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def text_encoder():
    from occkit.priors.text import load_text_encoder

    return load_text_encoder("minilm")


@pytest.fixture(scope="module")
def world(synth_root):
    return load_world_images(synth_root, "train")


@pytest.fixture(scope="module")
def world_run(synth_root, text_encoder, tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("world_prior") / "run"
    return train_world_prior(
        synth_root, out, WorldPriorConfig(steps=3, seed=3, **TINY), progress=False, text_encoder=text_encoder
    )


def _frame(root: Path) -> PriorFrame:
    from occkit.data.occ3d import Occ3DDataset

    s = Occ3DDataset(root, "val", load_gt=False, load_extras=False)[0]
    return PriorFrame(scene=s.scene, token=s.token, cam_names=s.cam_names, images=s.images, intrinsics=s.intrinsics)


def test_run_folder_records_what_made_it(world_run, synth_root):
    rec = json.loads((world_run / "config.json").read_text())
    assert rec["format"] == "occkit.world_prior" and rec["status"] == "complete"
    train = rec["train"]
    assert train["data"] == str(Path(synth_root).resolve())
    assert train["seed"] == 3 and train["world_seed"] == 0 and train["steps"] == 3
    assert train["wall_s"] >= 0 and set(train["final_losses"]) == {"semantics", "depth", "boundary", "vl", "total"}
    assert not set(rec["names"]) & set(HELDOUT_NAMES)
    assert set(CLASS_WORDS.values()) <= set(rec["names"])
    from safetensors.torch import load_file

    table = load_file(str(world_run / "text_table.safetensors"))["embeddings"]
    assert table.shape == (len(rec["names"]), 384)
    assert torch.allclose(table.norm(dim=1), torch.ones(len(table)), atol=1e-4)


def test_prior_outputs(world_run, synth_root, text_encoder):
    prior = build_prior(f"world:{world_run}", text_encoder=text_encoder)
    assert isinstance(prior, WorldPrior)
    assert prior.kinds == ("semantics", "segments", "depth", "features")
    assert prior.text_encoder.spec == "minilm" and prior.text_encoder.dim == 384
    frame = _frame(synth_root)
    H, W = frame.image_size
    out = prior(frame, prior.kinds)
    out.validate(6, (H, W), where="world")
    assert out.semantics.dtype == torch.uint8 and int(out.semantics.max()) < len(PRIOR_CLASSES)
    assert out.confidence.dtype == torch.float32 and float(out.confidence.min()) >= 1 / len(PRIOR_CLASSES) - 1e-6
    assert out.depth.dtype == torch.float32 and float(out.depth.min()) > 0
    assert out.segments.dtype == torch.int32 and int(out.segments.min()) >= 1
    assert out.feature_stride == 8 and out.features.shape == (6, 384, -(-H // 8), -(-W // 8))
    assert torch.allclose(out.features.norm(dim=1), torch.ones(1), atol=1e-4)
    only = prior(frame, ["depth"])
    assert only.kinds() == ("depth",)
    coarse = WorldPrior(world_run, feature_stride=16, text_encoder=text_encoder)(frame, ["features"])
    assert coarse.features.shape[-2:] == (-(-H // 16), -(-W // 16))
    desc = prior.describe()
    json.dumps(desc)
    assert desc["train_world_seed"] == 0 and len(desc["weights_sha256"]) == 64


def test_prior_is_frozen_and_refuses_bad_runs(world_run, tmp_path, text_encoder):
    prior = WorldPrior(world_run, text_encoder=text_encoder)
    assert not prior.net.training
    assert not any(p.requires_grad for p in prior.net.parameters())
    with pytest.raises(FileNotFoundError, match="missing"):
        WorldPrior(tmp_path / "missing")
    (tmp_path / "config.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a world-prior run"):
        WorldPrior(tmp_path)
    with pytest.raises(ValueError, match="text_encoder"):
        WorldPrior(world_run, text_encoder=type("E", (), {"spec": "st:/elsewhere", "dim": 384})())


def test_loss_goes_down_on_one_batch(world):
    torch.manual_seed(0)
    cfg = WorldPriorConfig(**TINY)
    net = build_net(cfg, 384)
    table = torch.nn.functional.normalize(
        torch.randn(len(world.table_names), 384, generator=torch.Generator().manual_seed(0)), dim=1
    )
    batch = sample_batch(world, [0, 3, 6, 9], cfg, gen=None)
    assert batch.images.shape == (4, 3, 32, 96) and batch.names.shape == (4, 32, 96)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    totals = []
    for _ in range(8):
        losses = world_losses(net(batch.images), batch, table, cfg, None, 100.0)
        loss = total_loss(losses, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        totals.append(float(loss.detach()))
    assert set(losses) == {"semantics", "depth", "boundary", "vl"}
    assert totals[-1] < 0.8 * totals[0], totals


def test_heldout_pixels_get_no_vl_gradient(world):
    cfg = WorldPriorConfig(**TINY, w_semantics=0, w_depth=0, w_boundary=0)
    net = build_net(cfg, 384)
    table = torch.nn.functional.normalize(torch.randn(len(world.table_names), 384), dim=1)
    batch = sample_batch(world, [0, 1], cfg, gen=None)
    batch.names = torch.full_like(batch.names, HELDOUT)  # every pixel held out
    losses = world_losses(net(batch.images), batch, table, cfg, None, 100.0)
    assert set(losses) == {"vl"} and float(losses["vl"].detach()) == 0.0
    losses["vl"].backward()
    assert all(p.grad is None or float(p.grad.abs().max()) == 0 for p in net.parameters())
    # one held-out pixel makes its whole cell untrained; a clean cell of a seen name is trained
    names = torch.full((1, 16, 16), 5)
    names[0, 3, 3] = HELDOUT
    target, valid = vl_targets(names, (2, 2), 8, num_names=10, min_purity=0.5)
    assert valid.tolist() == [[[False, True], [True, True]]] and int(target[0, 1, 1]) == 5
    names[0, 8:, 8:] = UNNAMED
    assert not bool(vl_targets(names, (2, 2), 8, 10, 0.5)[1][0, 1, 1])


def test_name_map_masks_heldout_names():
    names = seen_names()
    index = {n: i for i, n in enumerate(names)}
    assert not set(names) & set(HELDOUT_NAMES)
    inst = np.array([[0, 0, 1, 2, 3]])
    sem = np.array([[11, 17, 3, 4, 15]])
    nm = name_map(inst, sem, {1: "school bus", 2: "sedan"}, index)
    assert nm.tolist() == [[index["road"], index["sky"], HELDOUT, index["sedan"], UNNAMED]]


def test_world_images_mask_heldout(world):
    assert world.images.dtype == torch.uint8 and world.images.shape[0] == world.names.shape[0] == 6 * world.frames
    assert int(world.names.max()) < len(world.table_names) and int(world.names.min()) >= HELDOUT


def test_boundary_and_segments_by_hand():
    inst = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1]])
    sem = torch.tensor([[11, 11, 4, 4], [13, 13, 4, 4]])
    b = boundary_map(inst, sem)
    assert b.tolist() == [[True, True, True, False], [True, True, True, False]]
    prob = np.zeros((6, 6), np.float32)
    prob[:, 3] = 1.0  # a vertical boundary line
    seg = segments_from_maps(prob, np.zeros((6, 6), np.int64), threshold=0.5, min_pixels=1)
    assert seg.dtype == np.int32 and seg.min() == 1 and len(np.unique(seg)) == 2
    assert len(np.unique(seg[:, :3])) == 1 and len(np.unique(seg[:, 4:])) == 1
    sem2 = np.zeros((6, 6), np.int64)
    sem2[:, 4:] = 7  # a class edge splits the right part, a 1-pixel speck is absorbed
    sem2[0, 0] = 2
    seg2 = segments_from_maps(prob, sem2, min_pixels=2)
    assert len(np.unique(seg2)) == 2 and seg2[0, 0] == seg2[1, 1]


def test_config_and_cli_refuse_bad_input(world_run, synth_root, tmp_path):
    from occkit.commands import priors_train

    with pytest.raises(ConfigError, match="feature_stride"):
        WorldPriorConfig(feature_stride=12).check()
    with pytest.raises(ConfigError, match="steps"):
        WorldPriorConfig(steps=0, minutes=0).check()
    parser = __import__("argparse").ArgumentParser()
    priors_train.add_arguments(parser)
    args = parser.parse_args(["--data", str(synth_root), "--out", str(tmp_path / "r"), "--set", "no_such_key=1"])
    with pytest.raises(ConfigError, match="no_such_key"):
        priors_train.build_config(args)
    assert priors_train.main(["--data", str(synth_root), "--out", str(tmp_path / "r"), "--set", "no_such_key=1"]) == 1
    cfg = priors_train.build_config(
        parser.parse_args(["--data", "d", "--out", "o", "--minutes", "2", "--set", "batch_size=2"])
    )
    assert cfg.minutes == 2 and cfg.steps == 0 and cfg.batch_size == 2
    cfg = priors_train.build_config(
        parser.parse_args(["--data", "d", "--out", "o", "--cpu-minutes", "12", "--minutes", "70"])
    )
    assert (cfg.cpu_minutes, cfg.minutes, cfg.steps) == (12, 70, 0)
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "d", "--out", "o", "--minutes", "2", "--steps", "3"])
    # a non-empty run folder is refused (before any work), by the function and the command
    with pytest.raises(FileExistsError, match="not empty"):
        train_world_prior(synth_root, world_run, WorldPriorConfig(steps=1, **TINY), progress=False)
    assert priors_train.main(["--data", str(synth_root), "--out", str(world_run), "--steps", "1", "--no-progress"]) == 1


def test_augmentation_is_seeded_and_in_range(world):
    cfg = WorldPriorConfig(**TINY, zoom_max=1.5, color_jitter=0.4)
    a = sample_batch(world, [0, 1], cfg, torch.Generator().manual_seed(1))
    b = sample_batch(world, [0, 1], cfg, torch.Generator().manual_seed(1))
    assert torch.equal(a.images, b.images) and torch.equal(a.names, b.names)
    assert float(a.images.min()) >= 0 and float(a.images.max()) <= 1
    plain = sample_batch(world, [0, 1], cfg, gen=None)
    assert not torch.equal(a.images, plain.images)
    assert bool((a.focal >= plain.focal - 1e-3).all())  # a zoom-crop lengthens the focal


def test_run_exports_its_backbone_for_occupancy_networks(world_run):
    """``backbone.safetensors`` is the run's timm encoder, tagged with its model name, and loads
    into an occupancy network's backbone (``model.backbone_weights``) tensor for tensor."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from occkit.models.backbone import Backbone
    from occkit.priors.world import BACKBONE_FILE, MODEL_FILE

    path = world_run / BACKBONE_FILE
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == "occkit.backbone" and meta["steps"] == "3" and meta["status"] == "complete"
    whole = load_file(str(world_run / MODEL_FILE))
    body = load_file(str(path))
    assert body and all(torch.equal(v, whole[f"body.{k}"]) for k, v in body.items())
    bb = Backbone(meta["backbone"], 8, weights=str(path))
    for k, v in bb.body.state_dict().items():
        assert torch.equal(v, body[k])
    other = "resnet34" if meta["backbone"] != "resnet34" else "resnet18"
    with pytest.raises(
        ValueError, match=f"weights of a '{meta['backbone']}' backbone, but model.backbone is '{other}'"
    ):
        Backbone(other, 8, weights=str(path))


def test_text_embedding_does_not_depend_on_its_batch_mates():
    """A text meets other texts in another order after a resume; its embedding must be the same
    to the bit (in one padded batch it moved by float ulps), or resumed caches differ."""
    from occkit.priors.text import load_text_encoder

    together = load_text_encoder("minilm").encode_text(["car", "a photo of a long articulated bus on a road", "tree"])
    alone = load_text_encoder("minilm")
    one_by_one = torch.cat(
        [alone.encode_text([t]) for t in ("tree", "car", "a photo of a long articulated bus on a road")]
    )
    assert torch.equal(together, one_by_one[[1, 2, 0]])


def test_a_stopped_run_resumes_to_the_weights_of_an_unstopped_one(
    world_run, synth_root, text_encoder, tmp_path, monkeypatch
):
    """``resume=True`` (``occkit priors train --resume``) continues from the last save: a step budget
    ends with the weights of a run never stopped (``world_run``: the same settings, no partial saves),
    as a stop at any save does; other settings are refused in one line."""
    from safetensors.torch import load_file

    import occkit.priors.world_train as wt
    from occkit.commands import priors_train

    ref = world_run
    kw = {**TINY, "steps": 3, "seed": 3, "save_every_minutes": 1e-9}  # a save after every step

    real, saves = wt._write_resume, []

    def stop_after_two(*a, **k):
        real(*a, **k)
        saves.append(1)
        if len(saves) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(wt, "_write_resume", stop_after_two)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_world_prior(synth_root, run, WorldPriorConfig(**kw), progress=False, text_encoder=text_encoder)
    monkeypatch.setattr(wt, "_write_resume", real)
    partial = json.loads((run / "config.json").read_text())
    assert partial["status"] == "partial" and partial["train"]["steps"] == 2 and (run / wt.RESUME_FILE).is_file()
    with pytest.raises(FileExistsError, match="not empty"):  # neither resume nor overwrite: refused
        train_world_prior(synth_root, run, WorldPriorConfig(**kw), progress=False, text_encoder=text_encoder)
    with pytest.raises(ValueError, match="trained with seed=3, now 4"):
        train_world_prior(
            synth_root,
            run,
            WorldPriorConfig(**{**kw, "seed": 4}),
            progress=False,
            text_encoder=text_encoder,
            resume=True,
        )

    train_world_prior(synth_root, run, WorldPriorConfig(**kw), progress=False, text_encoder=text_encoder, resume=True)
    done = json.loads((run / "config.json").read_text())
    assert done["status"] == "complete" and done["train"]["steps"] == 3 and done["train"]["resumed_at"] == [2]
    assert not (run / wt.RESUME_FILE).exists()  # removed at the end
    a, b = load_file(ref / "model.safetensors"), load_file(run / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [h["total"] for h in done["train"]["history"]] == [
        h["total"] for h in json.loads((ref / "config.json").read_text())["train"]["history"]
    ]
    # the command: --resume on a finished run has nothing to do
    assert priors_train.main(["--data", str(synth_root), "--out", str(run), "--resume", "--no-progress"]) == 0


def test_resume_without_a_save_starts_from_scratch(synth_root, text_encoder, tmp_path):
    """A run stopped before its first save leaves no resume state: --resume trains it from step 0."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"format": "occkit.world_prior", "status": "partial"}))
    train_world_prior(
        synth_root, run, WorldPriorConfig(steps=2, **TINY), progress=False, text_encoder=text_encoder, resume=True
    )
    done = json.loads((run / "config.json").read_text())
    assert done["status"] == "complete" and done["train"]["steps"] == 2 and "resumed_at" not in done["train"]


def test_world_prior_trains_on_the_indoor_world_in_its_classes(synth_root, text_encoder, tmp_path):
    """``priors train`` on the indoor world: a 12-way semantic head over NYUv2's classes, names from
    indoor.json, a backbone for cigocc-nyu; its priors fill an indoor cache and the driving world refuses it."""
    from occkit.cli import main
    from occkit.priors.cache import run_priors

    data = tmp_path / "indoor"
    assert main(["synth", "--world", "indoor", "--out", str(data), "--scenes", "2", "--frames", "1"]) == 0
    world = load_world_images(data, "train")
    assert world.classes.name == "nyu" and len(world.images) == 1 and int(world.semantics.max()) < 12
    assert "television" in world.table_names and "object" in world.table_names  # the NYUv2 table's words
    named = world.names[world.instance > 0]
    assert bool((named >= 0).all())  # every object pixel has its indoor.json name
    cfg = WorldPriorConfig(steps=2, seed=0, **{**TINY, "image_size": (48, 64), "batch_size": 1})
    run = train_world_prior(data, tmp_path / "run", cfg, progress=False, text_encoder=text_encoder)
    rec = json.loads((run / "config.json").read_text())
    assert rec["net"]["class_table"] == "nyu" and len(rec["net"]["classes"]) == 12
    assert (run / "backbone.safetensors").is_file()
    prior = build_prior(f"world:{run}", text_encoder=text_encoder)
    cache = run_priors(data, tmp_path / "cache", prior, kinds=["semantics", "depth"], max_frames=1, progress=False)
    z = np.load(next(cache.rglob("kinect.npz")))
    assert z["semantics"].shape == (480, 640) and int(z["semantics"].max()) < 12
    with pytest.raises(ValueError, match="answers in the nyu classes"):  # an indoor-trained prior on driving data
        run_priors(synth_root, tmp_path / "c2", prior, kinds=["semantics"], max_frames=1, progress=False)
