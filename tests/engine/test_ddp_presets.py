"""Every shipped preset trains under ``torchrun --nproc_per_node 2`` (gloo, two CPU processes) with the
default ``train.find_unused_parameters=false`` (issue 72): a method whose steps leave parameters out
by design (occscene's stages) says so itself (``ddp_find_unused_parameters``), which the engine reads.

The default suite checks the attribute (torchrun's two processes take 25-60 s even for the tiniest
preset on a loaded 2-core CPU, and tests/engine/test_engine_cli.py already runs synth-cpu under
torchrun); behind ``OCCKIT_SLOW_TESTS=1``: occscene-cpu through all three of its stages (VAE,
diffusion, joint: one step each) on the tiny Occ3D world, and every shipped preset on the tiny
worlds of tests/first_losses.py (minutes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/first_losses.py

import first_losses as fl  # noqa: E402

from occkit.engine.checkpoint import latest_checkpoint, load_trainer_state  # noqa: E402
from occkit.engine.logging import read_jsonl  # noqa: E402

#: occscene's generator made tiny (benchmarks/gpu_check.py's smoke sizes)
TINY_GENERATOR = [
    "occscene.generator.autoencoder.channels=[8,8,8,8]",
    "occscene.generator.autoencoder.layers_per_block=1",
    "occscene.generator.autoencoder.norm_groups=4",
    "occscene.generator.denoiser.channels=[8,16,16]",
    "occscene.generator.denoiser.layers_per_block=1",
    "occscene.generator.denoiser.norm_groups=4",
    "occscene.generator.denoiser.attention_head_dim=8",
    "occscene.generator.mda.grid=[8,8,2]",
    "occscene.generator.mda.channels=8",
    "occscene.generator.mda.token_dim=16",
    "occscene.generator.mda.mamba_layers=1",
    "occscene.generator.mda.out_channels=8",
    "occscene.generator.mda.ray_samples=4",
    "occscene.occ_max_timestep=1000",  # stage 2 reads every frame: the perception model takes part
    "occscene.occ_warmup_steps=1",
]
#: one step of each stage
STAGES = ["occscene.vae_steps=1", "occscene.diffusion_steps=1", "optim.max_steps=3"]


def torchrun(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("torchrun")
    path = str(exe) if exe.exists() else shutil.which("torchrun")
    if path is None:
        pytest.skip("torchrun not found next to the Python executable or on PATH")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [path, "--standalone", "--nproc_per_node", "2", "-m", "occkit.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def check_run(res: subprocess.CompletedProcess, run: Path, steps: int) -> None:
    assert res.returncode == 0, res.stderr[-4000:]
    state = load_trainer_state(latest_checkpoint(run))
    assert state["world_size"] == 2 and state["step"] == steps
    assert [r["step"] for r in read_jsonl(run / "train.jsonl")] == list(range(1, steps + 1))


SLOW = pytest.mark.skipif(
    not os.environ.get("OCCKIT_SLOW_TESTS"), reason="2 processes under torchrun (25-60 s): set OCCKIT_SLOW_TESTS=1"
)


@pytest.mark.slow
@SLOW
def test_occscene_cpu_every_stage_under_torchrun(tiny_occ3d_root, tmp_path):
    """The preset's own settings, none forcing find_unused_parameters: all three stages train on 2 ranks."""
    run = tmp_path / "run"
    sets = [
        "data.image_aug.out_hw=[32,64]",
        "data.batch_size=1",
        "data.workers=0",
        "data.cache_mb=0",
        "model.backbone=resnet18",
        "model.neck_channels=16",
        "model.context_channels=8",
        "model.depth_step=4.0",
        "model.encoder_widths=[8,16]",
        "train.device=cpu",
        "train.threads=1",
        "train.log_every=1",
        "train.ckpt_every=3",
        "train.tensorboard=false",
        "optim.warmup_steps=1",
        *TINY_GENERATOR,
        *STAGES,
    ]
    args = ["train", "occscene-cpu", "--data", str(tiny_occ3d_root), "--out", str(run), "--no-val", "--no-progress"]
    res = torchrun([*args, "--set", *sets], timeout=600)
    check_run(res, run, 3)
    names = [set(r) for r in read_jsonl(run / "train.jsonl")]
    assert "loss_vae_rec" in names[0] and "loss_diff" in names[1] and "loss_occ_gen" in names[2]


def test_occscene_declares_its_unused_parameters():
    """The attribute the engine reads: true with a generator (each stage freezes a part: which one is
    tests/methods/test_occscene.py's test_stages_losses_and_what_each_trains), false without."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "methods"))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generation"))
    from test_occscene import make

    from occkit.engine.train import _ddp_find_unused

    staged, plain = make(), make(train_generator=False)
    assert staged.ddp_find_unused_parameters and not plain.ddp_find_unused_parameters
    assert _ddp_find_unused(staged, False) and not _ddp_find_unused(plain, False) and _ddp_find_unused(plain, True)
    assert not _ddp_find_unused(object(), False)  # a method that says nothing: the config decides


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    """tests/first_losses.py's worlds, the KITTI and nuScenes-LiDAR layouts with 2 frames a scene:
    their one training frame there cannot fill a global batch of 1 x 2 processes."""
    from occkit.cli import main
    from occkit.worlds.driving import SynthConfig
    from occkit.worlds.driving.kitti_export import export_kitti360, export_semantickitti

    root = tmp_path_factory.mktemp("ddp_worlds")
    cfg = SynthConfig(
        scenes=2, frames=2, image_size=(32, 96), lidar_beams=16, lidar_azimuth_steps=360, occupancy_supersample=1
    )
    export_semantickitti(root / "kitti", cfg)
    export_kitti360(root / "kitti360", cfg)
    for fmt in sorted(set(fl.LAYOUT_WORLDS.values())):
        args = ["synth", "--format", fmt, "--out", str(root / fmt), "--scenes", "2", "--frames", "2"]
        assert main([*args, "--image-size", "64", "176", "--seed", "0", "--val-fraction", "0.5"]) == 0
    return fl.build_worlds(root)


@pytest.mark.slow
@SLOW
@pytest.mark.parametrize("preset", fl.shipped_presets())
def test_every_preset_trains_under_torchrun(preset, worlds, tmp_path):
    data = (
        worlds[fl.LAYOUT_WORLDS[preset]]
        if preset in fl.LAYOUT_WORLDS
        else worlds["kitti"]
        if preset in fl.KITTI
        else worlds["kitti360"]
        if preset in fl.KITTI360
        else worlds["pseudo"]
        if preset.startswith("easyocc")
        else worlds["occ3d"]
    )
    sets = fl.preset_sets(preset, worlds)
    steps = fl.STEPS
    if preset.startswith("occscene"):
        sets += [*TINY_GENERATOR, *STAGES, "train.ckpt_every=3"]
        steps = 3
    run = tmp_path / "run"
    args = ["train", preset, "--data", str(data), "--out", str(run), "--no-val", "--no-progress"]
    check_run(torchrun([*args, "--set", *sets], timeout=1200), run, steps)
