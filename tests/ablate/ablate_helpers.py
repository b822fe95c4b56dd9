"""Tiny ablations for the ``occkit ablate`` tests: a small preset and a tiny world stage, so that
an arm x seed (train 2 steps with 2 validations, then score) takes seconds."""

from __future__ import annotations

from pathlib import Path

#: synth-cpu made tiny (as tests/engine's TINY): the Occ3D output grid stays, the rest shrinks. The
#: backbone is timm's smallest (mobilenetv3_small_050, 0.27 M weights against resnet18's 11.2 M):
#: the runs' checkpoints (weights + Adam states) held 2.8 GB in the ablate runner's module alone.
TINY_PRESET = """\
method: supervised
model:
  backbone: mobilenetv3_small_050
  neck_channels: 16
  context_channels: 8
  depth_step: 4.0
  lift_downsample: [4, 4, 2]
  encoder_widths: [8, 16]
  head: voxel
supervised:
  lovasz_max_voxels: 2000
data:
  image_aug:
    out_hw: [32, 64]
  load_extras: true
optim:
  warmup_steps: 1
train:
  log_every: 1
  tensorboard: false
"""

#: The world stage every tiny spec shares: 2 scenes (1 train, 1 val) of 1 frame at 32 x 88.
WORLD_STAGE = """\
stages:
  world:
    command: synth
    args: {scenes: 2, frames: 1, seed: 0, image-size: [32, 88]}
"""


def write(folder: Path, name: str, text: str) -> Path:
    """Write ``text`` to ``folder/name`` (with the tiny preset beside it) and return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.yaml").write_text(TINY_PRESET)
    path = folder / name
    path.write_text(text)
    return path


def tiny_spec(name: str = "tiny", arms: str | None = None, scoring: str = "", seeds: str = "[0, 1]") -> str:
    """A spec over the tiny world: budget 2, 2 validations, the given arms and scoring."""
    arms = arms or "  a: {preset: tiny.yaml}\n  b: {preset: tiny.yaml, set: [optim.lr=0.01]}\n"
    return (
        f"name: {name}\ndescription: a tiny ablation for the tests\n{WORLD_STAGE}data: ${{world}}\n"
        f"budget: 2\nvalidations: 2\ntolerance: 0.5\nmetric: miou\nseeds: {seeds}\narms:\n{arms}{scoring}"
    )
