"""The first losses of every shipped preset on a tiny synthetic world, at a fixed seed.

``python tests/first_losses.py tests/fixtures/first_losses.json [WORK_DIR]`` records them (resuming:
presets already in the file are kept; ``cigocc-nyu`` was added so, every earlier record unchanged);
``tests/test_first_losses.py`` recomputes them and checks they are the recorded ones, so a change
to how methods are built, configured or wired cannot move a number without the test saying so.

Every preset trains 2 steps on the CPU, one thread, without mixed precision (``optim.amp=none``),
at its own image size; the ``-gpu`` / ``-occ3d`` / ``r50`` presets at 64 x 192, batch 1, the
lift grid at least 2x coarser and (langocc-gpu, 10 GB otherwise) 256 rays of 32 samples from 2
neighbours and narrower heads, so that they fit a few seconds and a few GB. What a preset needs
besides the world comes from occkit's own commands on the same world: a 1-step ``lidar-teacher`` run
(radocc's teacher), an oracle prior cache (langocc's features, easyocc's pseudo-labels), a
pseudo-label dataset (easyocc).

Re-recorded since: ``langocc-gpu``, when its preset took ``langocc.temporal_gather: lidar_pixels``
(the neighbours' targets gathered by the loader in float16: the first loss moved by 1.1e-6
relative; with ``--set langocc.temporal_gather=maps`` it still gives the earlier record to the bit).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "first_losses.json"
STEPS = 2

#: the shipped presets that do not run on the synthetic world as shipped: made small here
BIG = (
    "cigocc-gpu",
    "easyocc-gpu",
    "fusion-teacher-occ3d",
    "langocc-gpu",
    "lidar-teacher-occ3d",
    "occ3d-r50",
    "occscene-gpu",
    "radocc-occ3d",
    "surroundocc-r50",
    "openocc-r50",
)
#: SemanticKITTI-layout presets (the world exported as SemanticKITTI)
KITTI = ("cigocc", "cigocc-gpu", "kitti-mono")
#: NYUv2-layout presets (the indoor world)
NYU = ("nyu-mono", "cigocc-nyu", "occscene-nyu")
#: SSCBench-KITTI-360-layout presets (the world exported as SSCBench-KITTI-360)
KITTI360 = ("kitti360-mono",)
#: presets of the LiDAR-frame nuScenes layouts (the world written by ``occkit synth --format NAME``)
LAYOUT_WORLDS = {
    "surroundocc-cpu": "surroundocc",
    "surroundocc-r50": "surroundocc",
    "openocc-cpu": "openoccupancy",
    "openocc-r50": "openoccupancy",
}


def build_worlds(root: Path) -> dict[str, Path]:
    """The tiny worlds and what the presets need from them, made with occkit's commands."""
    from occkit.cli import main
    from occkit.worlds.driving import SynthConfig
    from occkit.worlds.driving.kitti_export import export_kitti360, export_semantickitti

    out = {
        "occ3d": root / "world",
        "kitti": root / "kitti",
        "kitti360": root / "kitti360",
        "priors": root / "priors",
        "pseudo": root / "pseudo",
        "teacher": root / "teacher",
        "kitti_priors": root / "kitti_priors",
        "nyu": root / "nyu",
        "nyu_priors": root / "nyu_priors",
        "surroundocc": root / "surroundocc",
        "openoccupancy": root / "openoccupancy",
    }
    if not (out["nyu"] / "NYUtrain").is_dir():
        args = ["synth", "--world", "indoor", "--out", str(out["nyu"]), "--scenes", "2", "--frames", "1"]
        assert main([*args, "--seed", "0"]) == 0
    if not (out["occ3d"] / "annotations.json").is_file():
        assert (
            main(
                [
                    "synth",
                    "--out",
                    str(out["occ3d"]),
                    "--scenes",
                    "3",
                    "--frames",
                    "2",
                    "--image-size",
                    "64",
                    "176",
                    "--seed",
                    "0",
                    "--val-fraction",
                    "0.34",
                ]
            )
            == 0
        )
    if not (out["kitti"] / "sequences").is_dir():
        export_semantickitti(
            out["kitti"],
            SynthConfig(
                scenes=2,
                frames=1,
                image_size=(32, 96),
                lidar_beams=16,
                lidar_azimuth_steps=360,
                occupancy_supersample=1,
            ),
        )
    if not (out["kitti360"] / "data_2d_raw").is_dir():
        export_kitti360(
            out["kitti360"],
            SynthConfig(
                scenes=2,
                frames=1,
                image_size=(32, 96),
                lidar_beams=16,
                lidar_azimuth_steps=360,
                occupancy_supersample=1,
            ),
        )
    build_layout_worlds(out)
    if not out["priors"].is_dir():
        assert (
            main(
                [
                    "priors",
                    "run",
                    "--data",
                    str(out["occ3d"]),
                    "--prior",
                    "oracle:typical",
                    "--out",
                    str(out["priors"]),
                    "--no-progress",
                ]
            )
            == 0
        )
    if not out["kitti_priors"].is_dir():
        assert (
            main(
                [
                    "priors",
                    "run",
                    "--data",
                    str(out["kitti"]),
                    "--prior",
                    "oracle:typical",
                    "--out",
                    str(out["kitti_priors"]),
                    "--no-progress",
                ]
            )
            == 0
        )
    if not out["nyu_priors"].is_dir():  # the indoor world's priors (NYUv2's classes): cigocc-nyu's branches
        args = ["priors", "run", "--data", str(out["nyu"]), "--prior", "oracle:typical"]
        assert main([*args, "--out", str(out["nyu_priors"]), "--no-progress"]) == 0
    if not (out["pseudo"] / "annotations.json").is_file():
        assert (
            main(
                [
                    "pseudolabel",
                    "--data",
                    str(out["occ3d"]),
                    "--priors",
                    str(out["priors"]),
                    "--out",
                    str(out["pseudo"]),
                    "--past",
                    "1",
                    "--no-progress",
                ]
            )
            == 0
        )
    if not out["teacher"].is_dir():
        first_losses("lidar-teacher", out, run_dir=out["teacher"])
    return out


def build_layout_worlds(out: dict[str, Path]) -> None:
    """The worlds of :data:`LAYOUT_WORLDS` (2 scenes x 1 frame), by ``occkit synth --format``."""
    from occkit.cli import main

    for fmt in sorted(set(LAYOUT_WORLDS.values())):
        if not (out[fmt] / "annotations.json").is_file():
            args = ["synth", "--format", fmt, "--out", str(out[fmt]), "--scenes", "2", "--frames", "1"]
            assert main([*args, "--image-size", "64", "176", "--seed", "0", "--val-fraction", "0.5"]) == 0


def preset_sets(name: str, worlds: dict[str, Path]) -> list[str]:
    """The ``--set`` overrides that make ``name`` a 2-step CPU run on the tiny world."""
    sets = [
        f"optim.max_steps={STEPS}",
        "optim.amp=none",
        "train.device=cpu",
        "train.threads=1",
        "train.log_every=1",
        "train.val_every=0",
        f"train.ckpt_every={STEPS}",
        "train.tensorboard=false",
        "data.workers=0",
        "train.seed=0",
    ]
    if name in BIG:
        sets += [
            "data.image_aug.out_hw=[64,192]",
            "data.batch_size=1",
            "data.lidar_sweeps=1",
            "model.lift_downsample=[2,2,2]",
        ]
    if name.startswith("openocc"):  # the 512x512x40 grid: the lift grid at 1.6 m (64x64x5), narrow
        sets += ["model.lift_downsample=[8,8,8]", "model.encoder_widths=[16,32]"]
    if name == "langocc-gpu":
        sets += [
            "model.lift_downsample=[4,4,2]",
            "langocc.num_rays=256",
            "langocc.temporal_offsets=[-1,1]",
            "langocc.num_proposal=16",
            "langocc.num_importance=16",
            "langocc.voxel_feature_dim=32",
            "langocc.mlp_width=32",
        ]
    if name in ("occscene-gpu", "occscene-cpu", "occscene-nyu"):
        sets += ["data.batch_size=1", "data.cache_mb=0"]
    if name.startswith("radocc"):
        sets += [f"radocc.teacher={worlds['teacher']}", "data.load_extras=true"]
    if name.startswith("lidar-teacher") or name.startswith("fusion-teacher"):
        sets += ["data.load_extras=true"]
    if name.startswith("langocc"):
        sets += [f"data.priors={worlds['priors']}", "data.prior_kinds=[features]", "data.load_extras=true"]
    if name.startswith("cigocc"):
        sets += [f"data.priors={worlds['nyu_priors' if name in NYU else 'kitti_priors']}"]
    return sets


def first_losses(name: str, worlds: dict[str, Path], run_dir: Path | None = None) -> dict:
    """Train preset ``name`` for :data:`STEPS` steps; returns each step's named losses."""
    import tempfile

    import torch

    from occkit.cli import main
    from occkit.engine.logging import read_jsonl

    if name in LAYOUT_WORLDS:
        data = worlds[LAYOUT_WORLDS[name]]
    else:
        data = (
            worlds["kitti"]
            if name in KITTI
            else worlds["kitti360"]
            if name in KITTI360
            else worlds["nyu"]
            if name in NYU
            else worlds["pseudo"]
            if name.startswith("easyocc")
            else worlds["occ3d"]
        )
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run = run_dir or Path(tmp) / "run"
            args = [
                "train",
                name,
                "--data",
                str(data),
                "--out",
                str(run),
                "--no-val",
                "--no-progress",
                "--set",
                *preset_sets(name, worlds),
            ]
            assert main(args) == 0, name
            return {
                str(r["step"]): {k: v for k, v in r.items() if k not in ("step", "lr", "steps_per_s")}
                for r in read_jsonl(run / "train.jsonl")
            }
    finally:
        torch.set_num_threads(n)


def shipped_presets() -> list[str]:
    from importlib import resources

    folder = resources.files("occkit") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def machine() -> dict:
    import torch

    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


if __name__ == "__main__":  # python tests/first_losses.py OUT.json [WORK_DIR]
    import tempfile

    if len(sys.argv) < 2:
        sys.exit("usage: python tests/first_losses.py OUT.json [WORK_DIR]")
    out = Path(sys.argv[1])
    work = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp())
    worlds = build_worlds(work)
    record = {"machine": machine(), "steps": STEPS, "presets": {}}
    if out.is_file():
        record["presets"] = json.loads(out.read_text())["presets"]
    for preset in shipped_presets():
        if preset in record["presets"]:
            continue
        print("preset", preset, file=sys.stderr, flush=True)
        record["presets"][preset] = first_losses(preset, worlds)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        tmp.replace(out)
    print(f"wrote {out}", file=sys.stderr)
