"""One module per ``occkit`` subcommand: each defines ``add_arguments(parser)`` and ``run(args)``.

The verbs' table (:data:`COMMANDS`) and the parser built from it (:func:`build_parser`) live here, with
the verbs: the ``occkit`` entry point (:mod:`occkit.cli`) and ``occkit ablate`` (which parses a spec's
arguments by each verb's own parser) take them from here.
"""

from __future__ import annotations

import argparse
import importlib

from occkit import help_registries as registry_help

#: (subcommand, module, one-line help). Explicit, so "go to definition" works.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    (
        "synth",
        "occkit.commands.synth",
        "generate a procedural driving world as a dataset of a format (--format: Occ3D-nuScenes by default), or "
        "(--world indoor) rooms as a NYUv2 dataset",
    ),
    (
        "show",
        "occkit.commands.show",
        "picture of a frame: cameras, occupancy (BEV and 3D), LiDAR; or a prediction beside its ground truth",
    ),
    (
        "prepare",
        "occkit.commands.prepare",
        "raw nuScenes through nuscenes-devkit: the LiDAR sweeps, poses and calibration beyond Occ3D's files "
        "(eval --infos, data.lidar_infos)",
    ),
    (
        "label",
        "occkit.commands.label",
        "occupancy labels from LiDAR sweeps, poses and boxes (a rig folder, or the synthetic world's sweeps) in "
        "Occ3D's layout with visibility masks; --quality scores them against the synthetic world's exact occupancy",
    ),
    (
        "convert",
        "occkit.commands.convert",
        "a dataset's labels from one format's layout to another's (classes through a class map, grid and frame "
        "resampled), lossless where they allow, saying what it drops where not",
    ),
    (
        "stats",
        "occkit.commands.stats",
        "class frequencies, free, ignored and masked fractions, frames per scene of a dataset of any format",
    ),
    (
        "eval",
        "occkit.commands.eval",
        "official metrics of a predictions folder, the benchmark of the ground truth's format: Occ3D mIoU / RayIoU, "
        "SurroundOcc and OpenOccupancy IoU / mIoU, SemanticKITTI, SSCBench-KITTI-360 and NYUv2 SSC",
    ),
    (
        "train",
        "occkit.commands.train",
        "train a method from a preset (listed by occkit train --help) or a YAML config; --resume; DDP under torchrun",
    ),
    (
        "predict",
        "occkit.commands.predict",
        "prediction files in the data's format (its submission layout) from a checkpoint over a split",
    ),
    (
        "demo",
        "occkit.commands.demo",
        "the main job on a laptop: synthetic world -> train synth-cpu -> evaluate -> pictures and report",
    ),
    (
        "priors",
        "occkit.commands.priors",
        "2D priors (segments, semantics, metric depth, vision-language features): run providers into a cache, score "
        "it, train occkit's own, list the vocabulary",
    ),
    (
        "render",
        "occkit.commands.render",
        "volume-render an occupancy grid (ground truth, prediction or checkpoint) into the camera views: depth and "
        "semantic maps, picture",
    ),
    (
        "retrieval",
        "occkit.commands.retrieval",
        "open-vocabulary retrieval mAP of free-text queries (seen / held-out names) for a langocc run or the "
        "lifted-2D baseline",
    ),
    (
        "geometry",
        "occkit.commands.geometry",
        "how well a run's p(occupied) ranks occupied above free voxels before any threshold: geometry AP, the IoU at "
        "its own and at the best threshold",
    ),
    (
        "query",
        "occkit.commands.query",
        "find free text in 3D with a langocc run: matching voxels in bird's-eye and 3D view and in the cameras, with "
        "the similarity scale",
    ),
    (
        "generate",
        "occkit.commands.generate",
        "OccScene: generate camera images from text (+ a layout, or perception feedback) with an occscene run, "
        "written as a dataset",
    ),
    (
        "eval-gen",
        "occkit.commands.eval_gen",
        "score generated scenes: FID/KID in an occkit-trained image encoder, layout-consistency mIoU of a frozen judge",
    ),
    (
        "pseudolabel",
        "occkit.commands.pseudolabel",
        "EasyOcc 3D pseudo-labels from a 2D prior cache (lift, densify over past frames, vote, carve free space) as "
        "a dataset in the source's layout (Occ3D, SurroundOcc, OpenOccupancy); --quality against the real labels",
    ),
    (
        "ablate",
        "occkit.commands.ablate",
        "run an ablation spec: shared stages built once and cached, arms x seeds trained in lanes and scored, "
        "resumable; results.md/json and curves.png",
    ),
    (
        "export",
        "occkit.commands.export",
        "ONNX file of a run's camera network (images, intrinsics, poses -> logits, labels), checked against PyTorch "
        "under onnxruntime: logit difference, label agreement, time per frame",
    ),
    (
        "view",
        "occkit.commands.view",
        "live 3D viewer in the browser (viser): voxels by class, frame slider, class toggles, ground truth vs "
        "prediction and its errors, cameras, masks, LiDAR; a langocc run's text query; --html: a file that opens "
        "without a server",
    ),
)


def build_parser(commands: tuple[tuple[str, str, str], ...] = COMMANDS) -> argparse.ArgumentParser:
    """The ``occkit`` parser of ``commands`` (each verb's module imported by its name, as it is asked for)."""
    from occkit.commands.checks import refuse_empty_paths

    parser = argparse.ArgumentParser(prog="occkit", description="3D semantic occupancy toolkit.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in commands:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
        refuse_empty_paths(p)  # --out '' is refused, not read as "." (Path(''))
        registry_help.use(p)  # "{formats}" and the like in a help text: the registries' names, read at --help
    return parser
