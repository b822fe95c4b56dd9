"""Tiny ablations for the ``occkit ablate`` tests: a small preset and a tiny world stage, so that
an arm x seed (train 2 steps with 2 validations, then score) takes seconds."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from occkit.ablate.runner import Ablation, Command, Launcher

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


class InProcessLauncher(Launcher):
    """The local launcher's stand-in for the tests whose subject is not the subprocess: each command
    runs here, to its end, when it starts (``occkit.cli.main`` on the same argv, its output appended
    to the command's log after the header, the lane's torch threads), so that a lane costs the
    command's own work and not a fresh Python importing torch (10-20 s on a loaded 2-core machine).
    The subprocesses themselves (Popen, logs, kill -9, lanes at once) are tested by the runner's
    kill test, ``run_jobs`` on real commands, and the Ray tests."""

    def __init__(self, env: dict[str, str]) -> None:
        self.threads = int(env.get("OMP_NUM_THREADS", "1"))

    def start(self, cmd: Command, header: str, slot: int) -> int:
        import torch

        from occkit.cli import main

        threads = torch.get_num_threads()
        with open(cmd.log, "a", buffering=1) as fh:
            fh.write(header)
            fh.flush()
            if cmd.on_start is not None:
                cmd.on_start(os.getpid())
            torch.set_num_threads(self.threads)
            try:
                with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
                    try:
                        return main(list(cmd.argv))
                    except SystemExit as e:  # argparse's refusals
                        return e.code if isinstance(e.code, int) else 1
            finally:
                torch.set_num_threads(threads)

    def poll(self, handle: int) -> int:
        return handle

    def stop(self, handles: list[int]) -> None:
        pass  # each command ended when it started


@contextlib.contextmanager
def in_process():
    """``occkit ablate --launcher local`` (the default) runs its commands with :class:`InProcessLauncher`."""
    real = Ablation.launcher

    def launcher(self):
        return InProcessLauncher(self._env()) if self.opts.launcher == "local" else real(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Ablation, "launcher", launcher)
        yield
