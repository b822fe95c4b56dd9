"""OccScene indoors resumes to the same numbers (issue 71: ``occkit ablate occscene-nyu`` "resumes after
kill -9 with identical figures"). The ablation runner's own kill -9 handling is tested on a supervised
spec (tests/ablate/test_ablate_runner.py); here ``occscene-nyu``'s own training is: its stages by its
step counter (the VAE, then the diffusion with random timesteps, noise, text and occupancy dropout),
its joint stage started from a generator run (``--init-from``, ``occ_warmup_steps``, ``occ_dropout``)
and its validation figures (``validation_figures``: the VAE's PSNR, the held-out denoising loss).

Each run is trained once straight and once interrupted, through ``occkit train`` (the engine's
``stop_at`` passed in, as a process killed after that step): the interruption goes on from its
checkpoint in a fresh method object (``--resume``), and a kill -9 between two periodic checkpoints
is made by removing the checkpoint the stop wrote, so that the resume redoes the steps (and the
validation) logged after the last periodic one. The per-step losses (``train.jsonl``), the
validation records (``metrics.jsonl``) and the final weights (and EMA weights) must be those of the
straight run.
"""

from __future__ import annotations

import functools
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

import occkit.engine.train as engine
from occkit.cli import main
from occkit.engine.checkpoint import LATEST_FILE, checkpoint_name, list_checkpoints
from occkit.engine.logging import read_jsonl

#: occscene-nyu as shipped (96x128 images, 12x16 latents, bf16 on the CPU as the ablation runs it), batch 1
TINY = [
    "data.batch_size=1",
    "data.val_batch_size=1",
    "optim.warmup_steps=2",
    "occscene.schedule.sample_steps=2",
    "train.threads=1",
    "train.log_every=1",
    "train.val_max_frames=1",
    "train.tensorboard=false",
]
#: the ablation's `generator` stage: text only (no MDA), the VAE then the diffusion, EMA on here
GENERATOR = [
    "occscene.generator.mda.enabled=false",
    "occscene.occ_dropout=0",
    "occscene.vae_steps=2",
    "occscene.diffusion_steps=4",
    "optim.ema=true",
    "optim.ema_decay=0.8",
]
#: the ablation's arms: from the generator, MDA as built, diffusion then the joint stage whose warm-up
#: spans the interruption; occ_dropout and text_dropout high, every joint frame read by perception
JOINT = [
    "occscene.vae_steps=0",
    "occscene.diffusion_steps=2",
    "occscene.occ_warmup_steps=3",
    "occscene.occ_max_timestep=1000",
    "occscene.occ_dropout=0.5",
    "occscene.text_dropout=0.5",
]
STEPS = 6


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = tmp_path_factory.mktemp("occscene_resume") / "world"
    assert main(["synth", "--world", "indoor", "--out", str(world), "--scenes", "3", "--frames", "2"]) == 0
    return world


def _train(world, out, sets, *, stop_at=None, resume=False, init_from=None, ckpt_every=0):
    """``occkit train occscene-nyu`` (in this process), stopped after ``stop_at`` steps when given."""
    args = ["train", "occscene-nyu", "--data", str(world), "--out", str(out), "--no-progress"]
    args += ["--max-steps", str(STEPS)] + (["--resume"] if resume else [])
    args += ["--init-from", str(init_from)] if init_from is not None else []
    args += ["--set", *TINY, *sets, f"train.ckpt_every={ckpt_every}", "train.val_every=2"]
    real = engine.train
    if stop_at is not None:
        engine.train = functools.partial(real, stop_at=stop_at)
    try:
        assert main(args) == 0
    finally:
        engine.train = real


def _kill_after(run, step, checkpoint):
    """As if the process died after ``step`` with its newest checkpoint at ``checkpoint``: the
    checkpoint the stop wrote goes (its logs stay: the steps and validations after ``checkpoint``)."""
    shutil.rmtree(run / "checkpoints" / checkpoint_name(step))
    (run / "checkpoints" / LATEST_FILE).write_text(checkpoint_name(checkpoint) + "\n")
    assert [p.name for p in list_checkpoints(run)][-1] == checkpoint_name(checkpoint)
    assert max(r["step"] for r in read_jsonl(run / "train.jsonl")) == step


def _records(path, drop):
    return [{k: v for k, v in r.items() if k not in drop} for r in read_jsonl(path)]


def _assert_same_records(a, b, drop, stops=()):
    """The records of ``a`` and ``b`` equal; ``b`` has one more at each step of ``stops`` (the validation
    that ends a stopped run), left out."""
    ra, rb = _records(a, drop), _records(b, drop)
    assert sorted(r["step"] for r in rb) == sorted([r["step"] for r in ra] + list(stops))
    rb = [r for r in rb if r["step"] not in stops]
    for x, y in zip(ra, rb):
        assert sorted(x) == sorted(y), (x, y)
        for k in x:
            _assert_close(x[k], y[k], f"step {x['step']}: {k}")


def _assert_close(x, y, where):
    """Numbers within 1e-6, the rest (names, nested per-class figures) the same."""
    if isinstance(x, dict):
        assert isinstance(y, dict) and sorted(x) == sorted(y), where
        for k in x:
            _assert_close(x[k], y[k], f"{where}.{k}")
    elif isinstance(x, float):
        assert abs(x - y) <= 1e-6, (where, x, y)
    else:
        assert x == y, (where, x, y)


def _assert_same_run(straight, resumed, files, stops=()):
    """The same losses per step, validation records and final weights (``files`` of the last checkpoint);
    ``stops``: the steps where the resumed run was stopped (not killed), each validated as it stopped."""
    _assert_same_records(straight / "train.jsonl", resumed / "train.jsonl", ("steps_per_s",))
    drop = ("train_minutes", "wall_minutes")
    _assert_same_records(straight / "metrics.jsonl", resumed / "metrics.jsonl", drop, stops)
    for name in files:
        wa = load_file(str(straight / "checkpoints" / checkpoint_name(STEPS) / name))
        wb = load_file(str(resumed / "checkpoints" / checkpoint_name(STEPS) / name))
        assert sorted(wa) == sorted(wb)
        for k in wa:
            torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-6, msg=f"{name}: {k}")


@pytest.fixture(scope="module")
def generator(world, tmp_path_factory):
    """The generator run trained straight (VAE steps 0-1, diffusion steps 2-5), the start of the joint runs."""
    run = tmp_path_factory.mktemp("occscene_resume") / "generator"
    _train(world, run, GENERATOR)
    return run


def test_generator_resumes_across_the_vae_to_diffusion_boundary(world, generator, tmp_path):
    run = tmp_path / "gen"
    _train(world, run, GENERATOR, stop_at=1)  # stopped inside the VAE stage: the resume crosses into diffusion
    _train(world, run, GENERATOR, resume=True, stop_at=5, ckpt_every=3)  # killed at 5, mid-diffusion ...
    _kill_after(run, 5, 3)  # ... its last checkpoint at 3, the first diffusion step (the validation at 4 redone)
    _train(world, run, GENERATOR, resume=True, ckpt_every=3)
    rows = read_jsonl(generator / "train.jsonl")
    assert [sorted(k for k in r if k.startswith("loss_")) for r in rows] == [
        ["loss_occ_real", "loss_vae_kl", "loss_vae_rec"]
    ] * 2 + [["loss_diff"]] * 4
    vals = read_jsonl(generator / "metrics.jsonl")
    assert [r["step"] for r in vals] == [2, 4, 6] and all("vae_psnr" in r and "diffusion_loss" in r for r in vals)
    _assert_same_run(generator, run, ("model.safetensors", "ema.safetensors"), stops=(1,))


def test_joint_run_from_a_generator_resumes_inside_the_occupancy_warmup(world, generator, tmp_path):
    straight, run = tmp_path / "straight", tmp_path / "joint"
    _train(world, straight, JOINT, init_from=generator)
    _train(world, run, JOINT, init_from=generator, stop_at=4, ckpt_every=3)  # killed at 4 ...
    _kill_after(run, 4, 3)  # ... resumed from 3: the second of the three warm-up steps is redone
    _train(world, run, JOINT, init_from=generator, resume=True, ckpt_every=3)
    rows = read_jsonl(straight / "train.jsonl")
    assert [sorted(k for k in r if k.startswith("loss_")) for r in rows] == [["loss_diff"]] * 2 + [
        ["loss_diff", "loss_occ_gen", "loss_occ_real"]
    ] * 4
    assert json.loads((straight / "init_from.json").read_text()) == json.loads((run / "init_from.json").read_text())
    _assert_same_run(straight, run, ("model.safetensors",))
