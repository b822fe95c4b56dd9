"""What labels made by ``occkit label`` cost a model trained on them (docs/labels.md, "Quality").

One synthetic world written with sweeps (``occkit synth --sweeps 10``, Occ3D layout) and its labels made by
``occkit label`` from those sweeps: the same preset is trained on each (the world's exact labels against the
made ones; same images, same frames, same start: occkit's shipped image backbone under a fresh 3D network, as
``occkit demo`` starts), for the same steps and seeds, and both are scored on the world's validation frames
against the exact occupancy (``occkit predict`` then ``occkit eval --metrics miou,rayiou``).

    occkit synth --out W --scenes 10 --frames 8 --seed 11 --image-size 192 512 --sweeps 10
    occkit label --data W --out L
    python benchmarks/label_downstream.py --world W --labels L --out OUT --steps 300 [--seeds 0,1,2] [--same-losses]
        [--no-sem2d]

The two arms do not see the same supervision by default: the world has rendered depth maps (``loss_depth`` from
the dense maps), the labels' output has each keyframe's LiDAR sweep (depth from it). Both have per-camera 2D
semantic maps for ``loss_sem2d``: the world's rendered from its scene, the labels' rendered from the labels'
own voxels (``occkit label`` writes them, :mod:`occkit.labelgen.semantic_maps`). Each run's losses are read
back from its ``train.jsonl`` (each term's mean over the last ``--loss-window`` steps) and reported beside the
scores, so a table says which losses each arm had. ``--same-losses`` gives both arms the same terms from the
same sensors: depth from the keyframe's LiDAR sweep (``supervised.depth_source=lidar``), and the 2D semantic loss
from each arm's own maps, so the difference is the labels' (the 2D maps are the labels' too). ``--no-sem2d``
turns the 2D semantic loss off in both arms (``supervised.semantic_2d_weight=0``: the measurement before the
labels carried their maps).

Each run is kept as it finishes (OUT/<arm>-s<seed>/eval.json, with the settings it was trained with in
settings.json); a stopped run resumes with what it lacks (``occkit train --resume`` for a run cut short), and a
run trained with other settings is refused rather than mixed. Writes OUT/downstream-<arms>.json and prints a
table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

SAME_LOSSES = ["supervised.depth_source=lidar"]
NO_SEM2D = ["supervised.semantic_2d_weight=0"]


class StudyError(Exception):
    """A one-line reason the study cannot go on."""


def _occkit() -> str:
    exe = Path(sys.executable).with_name("occkit")
    return str(exe) if exe.exists() else "occkit"


def _run(cmd: list[str], what: str) -> None:
    print("$ " + " ".join(cmd), flush=True)
    rc = subprocess.run(cmd).returncode
    if rc != 0:
        raise StudyError(f"{what} failed (exit {rc}); its output is above")


def run_losses(train_dir: Path, window: int) -> dict[str, float]:
    """Each loss term's mean over the last ``window`` steps of a run's ``train.jsonl`` (the logged steps with
    ``step > last - window``); a term the run never logged is absent. The last record of a resumed step wins."""
    log = train_dir / "train.jsonl"
    if not log.is_file():
        raise StudyError(f"{log}: missing, so the run's losses cannot be read")
    by_step: dict[int, dict] = {}
    for n, line in enumerate(log.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            by_step[int(rec["step"])] = rec
        except (ValueError, KeyError, TypeError):
            raise StudyError(f"{log}: line {n} is not a step record") from None
    if not by_step:
        raise StudyError(f"{log}: no step records")
    last = max(by_step)
    recs = [r for s, r in by_step.items() if s > last - window]
    names = sorted({k for r in recs for k in r if k.startswith("loss_")})
    return {k: statistics.mean(float(r[k]) for r in recs if k in r) for k in names}


def _stats(vals: list[float]) -> dict:
    return {
        "mean": round(statistics.mean(vals), 2),
        "min": round(min(vals), 2),
        "max": round(max(vals), 2),
        "std": round(statistics.stdev(vals), 2) if len(vals) > 1 else 0.0,
        "spread": round(max(vals) - min(vals), 2),
        "runs": [round(v, 2) for v in vals],
    }


def summarise(rows: list[dict]) -> dict:
    """An arm's runs (each ``{"seed", "eval", "losses", "settings"}``, settings: the loss settings given beside
    the preset's): each score's mean, min, max, std and runs; each loss term's mean over the runs and whether it
    was nonzero (> 1e-6 in every run)."""
    s: dict = {"seeds": [r["seed"] for r in rows]}
    for key in ("miou", "rayiou", "geometry_iou"):
        vals = [float(r["eval"][key]) for r in rows if key in r["eval"]]
        if vals:
            s[key] = _stats(vals)
    names = sorted({k for r in rows for k in r["losses"]})
    s["losses"] = {
        k: {
            "mean": round(statistics.mean(r["losses"].get(k, 0.0) for r in rows), 4),
            "nonzero": all(abs(r["losses"].get(k, 0.0)) > 1e-6 for r in rows),
        }
        for k in names
    }
    s["settings"] = rows[0]["settings"]
    return s


def _loss_cell(losses: dict, names: list[str]) -> str:
    """Each term of any arm: its mean, 0 where some run had it 0 at the end, "off" where the arm never logged it."""
    cells = []
    for k in names:
        v = losses.get(k)
        cells.append(f"{k[5:]} off" if v is None else f"{k[5:]} {v['mean']:.3g}" if v["nonzero"] else f"{k[5:]} 0")
    return ", ".join(cells)


def table(summary: dict) -> str:
    lines = [
        "| arm | seeds | mIoU mean (min..max) | RayIoU mean (min..max) | geometry IoU mean (min..max) "
        "| losses (mean, last steps) | loss settings |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    names = sorted({k for s in summary.values() for k in s["losses"]})
    for arm, s in summary.items():
        cells = []
        for key in ("miou", "rayiou", "geometry_iou"):
            v = s.get(key)
            cells.append(f"{v['mean']:.2f} ({v['min']:.2f}..{v['max']:.2f})" if v else "-")
        seeds = ",".join(str(x) for x in s["seeds"])
        lines.append(
            f"| {arm} | {seeds} | "
            + " | ".join(cells)
            + f" | {_loss_cell(s['losses'], names)} | {' '.join(s['settings']) or 'the preset'} |"
        )
    return "\n".join(lines)


def maps_agreement(world: Path, labels: Path, stride: int) -> dict:
    """How the 2D semantic maps the arms train on (``loss_sem2d``) compare with the world's own (rendered from
    its scene, the truth arm's): the labels' maps (``occkit label``'s voxels rendered into each camera) and,
    to tell what rendering voxels alone loses, the world's exact voxels rendered the same way
    (:func:`occkit.labelgen.semantic_maps.render_semantic_maps`). Each: the share of pixels of the world's
    class (``pixels``), and of the feature pixels whose target, the majority class of their ``stride x stride``
    block, is the world's (``targets``), over every keyframe and camera."""
    import numpy as np
    import torch

    from occkit.data.occ3d import Occ3DDataset
    from occkit.data.scene_record import Camera
    from occkit.formats import get_format
    from occkit.labelgen.semantic_maps import render_semantic_maps
    from occkit.losses.depth import semantic_map_targets

    w = Occ3DDataset(world, "all", load_images=False, load_extras=True)
    lab = Occ3DDataset(labels, "all", load_images=False, load_extras=True)
    table = get_format("occ3d").classes  # the world's and the labels' layout
    C = table.num_classes
    counts = {k: [0, 0, 0, 0] for k in ("labels", "exact_voxels")}  # pixels same, pixels, targets same, targets
    for i in range(len(lab)):
        s = lab[i]
        t = w[w.index_of(s.token)]
        if s.semantics_2d is None or t.semantics_2d is None:
            raise StudyError(f"frame {s.token}: no 2D semantic maps in {labels if s.semantics_2d is None else world}")
        cams = {
            c: Camera(c, t.intrinsics[k].numpy(), t.T_ego_from_cam[k].numpy(), tuple(t.semantics_2d.shape[-2:]))
            for k, c in enumerate(t.cam_names)
        }
        exact = render_semantic_maps(w.read_labels(s.token)["semantics"], w.grid, table.free, cams)
        ref = semantic_map_targets(t.semantics_2d, stride, C)
        for key, maps in (
            ("labels", s.semantics_2d),
            ("exact_voxels", torch.from_numpy(np.stack(list(exact.values())))),
        ):
            maps = maps.long()
            c = counts[key]
            c[0] += int((maps == t.semantics_2d).sum())
            c[1] += maps.numel()
            c[2] += int((semantic_map_targets(maps, stride, C) == ref).sum())
            c[3] += ref.numel()
    return {k: {"pixels": round(c[0] / c[1], 4), "targets": round(c[2] / c[3], 4)} for k, c in counts.items()}


def _parse_ints(text: str, flag: str) -> list[int]:
    try:
        vals = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise StudyError(f"{flag} {text!r}: expected comma-separated integers") from None
    if not vals:
        raise StudyError(f"{flag} {text!r}: names no seed")
    return vals


def study(args: argparse.Namespace) -> int:
    for flag, path in (("--world", args.world), ("--labels", args.labels)):
        if not path.is_dir():
            raise StudyError(f"{flag} {path}: not a folder")
    if args.steps < 1:
        raise StudyError(f"--steps {args.steps}: expected at least 1")
    if args.loss_window < 1:
        raise StudyError(f"--loss-window {args.loss_window}: expected at least 1")
    seeds = _parse_ints(args.seeds, "--seeds")
    data = {"truth": args.world, "labels": args.labels}
    arms = [a for a in args.arms.split(",") if a]
    bad = [a for a in arms if a not in data]
    if bad or not arms:
        raise StudyError(f"--arms {args.arms!r}: expected truth, labels or both")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    backbone = out / "backbone.safetensors"
    if not backbone.exists():
        from occkit.commands.demo import write_shipped_backbone

        write_shipped_backbone(backbone)
    extra = (SAME_LOSSES if args.same_losses else []) + (NO_SEM2D if args.no_sem2d else [])
    results: dict[str, list[dict]] = {}
    for seed in seeds:  # seed by seed: a stopped study has both arms
        for arm in arms:
            run = out / f"{arm}-s{seed}"
            ckpt = run / "train"
            sets = [f"model.backbone_weights={backbone.resolve()}", f"train.seed={seed}"]
            sets += [f"train.threads={args.threads}", *extra]
            settings = {"preset": args.preset, "data": str(data[arm]), "steps": args.steps, "set": sets}
            kept = run / "settings.json"
            if kept.is_file():
                if json.loads(kept.read_text()) != settings:
                    raise StudyError(
                        f"{run}: trained with other settings ({kept}); give another --out or remove the folder"
                    )
            elif run.exists() and any(run.iterdir()):
                raise StudyError(f"{run}: holds a run without settings.json; give another --out or remove it")
            run.mkdir(parents=True, exist_ok=True)
            kept.write_text(json.dumps(settings, indent=1))
            done = run / "eval.json"
            if not done.exists():
                if not (ckpt / "checkpoints" / f"step_{args.steps:06d}").is_dir():
                    cmd = [_occkit(), "train", args.preset, "--data", str(data[arm]), "--out", str(ckpt)]
                    cmd += ["--max-steps", str(args.steps), "--no-val", "--no-progress", "--set", *sets]
                    _run(cmd + (["--resume"] if (ckpt / "checkpoints").is_dir() else []), f"occkit train ({run.name})")
                pred = run / "pred"
                _run(
                    [_occkit(), "predict", "--ckpt", str(ckpt), "--data", str(args.world), "--split", "val"]
                    + ["--out", str(pred), "--overwrite", "--no-progress"],
                    f"occkit predict ({run.name})",
                )
                tmp = run / "eval.tmp.json"
                _run(
                    [_occkit(), "eval", "--gt", str(args.world), "--pred", str(pred), "--split", "val"]
                    + ["--metrics", "miou,rayiou", "--json", str(tmp)],
                    f"occkit eval ({run.name})",
                )
                tmp.replace(done)
            row = {
                "seed": seed,
                "eval": json.loads(done.read_text()),
                "losses": run_losses(ckpt, args.loss_window),
                "settings": extra,
            }
            results.setdefault(arm, []).append(row)
    summary = {arm: summarise(rows) for arm, rows in results.items()}
    maps_file = out / "maps.json"
    if not maps_file.is_file():
        maps_file.write_text(json.dumps(maps_agreement(args.world, args.labels, args.map_stride), indent=1))
    maps = json.loads(maps_file.read_text())
    summary_all = {
        "preset": args.preset,
        "steps": args.steps,
        "same_losses": args.same_losses,
        "no_sem2d": args.no_sem2d,
        "loss_window": args.loss_window,
        "maps_agree_with_the_worlds": maps,
        "arms": summary,
    }
    (out / f"downstream-{'-'.join(arms)}.json").write_text(json.dumps(summary_all, indent=1))
    print(table(summary))
    print(
        "2D semantic maps against the world's (pixels, targets at stride {}): the labels' {}, {}; the exact voxels "
        "rendered {}, {}".format(args.map_stride, *maps["labels"].values(), *maps["exact_voxels"].values())
    )
    if len(summary) == 2 and all("rayiou" in s and "miou" in s for s in summary.values()):
        t, lab = summary["truth"], summary["labels"]
        for key in ("miou", "rayiou"):
            print(
                f"{key}: labels - truth {lab[key]['mean'] - t[key]['mean']:+.2f} "
                f"(spreads {t[key]['spread']}, {lab[key]['spread']})"
            )
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world", type=Path, required=True, help="the synthetic world (its exact labels, its images)")
    p.add_argument("--labels", type=Path, required=True, help="occkit label --data WORLD --out LABELS")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--preset", default="synth-cpu")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--arms", default="truth,labels", help="which arms to run here (two lanes: one each)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--same-losses",
        action="store_true",
        help="both arms with the same loss terms from the same sensors: " + ", ".join(SAME_LOSSES),
    )
    p.add_argument(
        "--no-sem2d", action="store_true", help="the 2D semantic loss off in both arms: " + ", ".join(NO_SEM2D)
    )
    p.add_argument(
        "--map-stride",
        type=int,
        default=8,
        help="the 2D maps' targets: the preset's model.feature_stride (synth-cpu 8)",
    )
    p.add_argument(
        "--loss-window", type=int, default=100, help="each run's losses: their mean over its last this many steps"
    )
    args = p.parse_args()
    try:
        return study(args)
    except StudyError as e:
        print(f"label_downstream: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
