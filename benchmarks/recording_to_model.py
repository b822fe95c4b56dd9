"""From a recording to a trained model, per method (docs/labels.md, "From a recording to a trained model").

One small synthetic world (``occkit synth --sweeps K``) is written as ROS 2 bags with its six cameras
(``tools/rig_to_bag.py --cameras``, one bag a scene), labelled by ``occkit label`` as a team's recording would be
(keyframe stamps and boxes in side files, the car's box given), and every method's CPU preset is trained on the
labels for a few steps, then predicts the validation scene and is scored against the labels (``occkit eval
--metrics miou,rayiou``). Each method gets what its page asks for, made from the recording alone:

- ``radocc``: its LiDAR teacher (``lidar-teacher``) trained first on the same labels, from the keyframes' own
  sweeps the labels carry; the camera student distilled from it.
- ``easyocc``: pseudo-labels (``occkit pseudolabel``) from 2D priors of the bag's images.
- ``cigocc``: one camera (``CAM_FRONT``) on the Occ3D-layout labels, with the priors' depth and semantics.
- ``langocc``: the priors' vision-language features.
- ``occscene-cpu``: the labels and ``CAM_FRONT``.

The synthetic world's oracle priors need its exact maps, which a recording does not have: the priors here are
occkit's own 2D networks (``--prior world:RUN``) trained for a few steps on a synthetic world of another seed,
the route docs/priors.md gives for data without them.

A second section measures what images cost ``occkit label``: the same bags labelled without cameras
(``--cameras ''``) and with their six cameras, alternated, seconds a keyframe (median of ``--repeats``).

    python benchmarks/recording_to_model.py --out OUT [--steps 20] [--rows radocc,easyocc,...]
        [--sections loop,readers,images]

Every stage is kept as it finishes (rc, seconds, each command's seconds, the figures or the one-line error, in
OUT/results.json for the world, the bags and the presets, OUT/readers.json and OUT/images.json for the other two
sections; each stage's log under OUT/logs/); running the command again skips what is done and retries what
failed, and sections may run at once in separate processes. One torch thread. ``--sections report`` prints the
tables of what is done.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EGO_BOX = "4.1 1.8 1.6 1.3 0 0.8"  # the synthetic car's box (rig.json "ego"): a bag does not carry it
ROWS = ("radocc", "easyocc", "cigocc", "langocc", "occscene-cpu")
READERS = ("bag", "points", "kitti-raw", "nuscenes")
# cigocc on Occ3D-layout labels and one camera (docs/labels.md, "Your own camera rig")
SSC_ON_OCC3D = [
    "data.format=occ3d",
    "data.cameras=[CAM_FRONT]",
    "model.point_range=[-40,-40,-1,40,40,5.4]",
    "model.voxel_size=0.4",
    "model.num_classes=18",
    "cigocc.empty_index=17",
    "cigocc.context_prior=false",
    "cigocc.relation_weight=0",
]


def _occkit() -> list[str]:
    return [sys.executable, "-m", "occkit"]


class Stages:
    """Runs stages of commands, each once: its result kept in ``results.json`` as it finishes."""

    def __init__(self, out: Path, file: str = "results.json"):
        self.out = out
        self.file = out / file
        self.results: dict = json.loads(self.file.read_text()) if self.file.is_file() else {}
        self.mine: set[str] = set()  # the stages this process ran: the only ones it writes
        (out / "logs").mkdir(parents=True, exist_ok=True)

    def save(self, *names: str) -> None:
        """Writes this process's stages (and ``names``) into the file as it is now: two sections running at
        once in two processes keep each other's results."""
        self.mine.update(names)
        now = json.loads(self.file.read_text()) if self.file.is_file() else {}
        now.update({k: self.results[k] for k in self.mine if k in self.results})
        self.results = {**now, **{k: self.results[k] for k in self.mine if k in self.results}}
        tmp = self.file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.results, indent=1))
        tmp.replace(self.file)

    def done(self, name: str) -> bool:
        return self.results.get(name, {}).get("rc") == 0

    def run(self, name: str, cmds: list[list[str]], clean: list[Path] = ()) -> bool:
        """Runs ``cmds`` in order (stopping at the first that fails) unless ``name`` is done; ``clean``: folders a
        failed earlier try left, removed first."""
        if self.done(name):
            print(f"{name}: done ({self.results[name]['seconds']:.1f} s)", flush=True)
            return True
        for path in clean:
            shutil.rmtree(path, ignore_errors=True)
        log = self.out / "logs" / f"{name.replace(':', '-')}.log"
        t0, rc, error, parts = time.perf_counter(), 0, "", []
        with log.open("w") as fh:
            for cmd in cmds:
                fh.write("$ " + " ".join(cmd) + "\n")
                fh.flush()
                t1 = time.perf_counter()
                proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=_env())
                parts.append([_part(cmd), round(time.perf_counter() - t1, 1)])
                if proc.returncode:
                    rc = proc.returncode
                    break
        seconds = time.perf_counter() - t0
        if rc:
            error = _last_line(log)
        self.results[name] = {"rc": rc, "seconds": round(seconds, 1), **({"error": error} if rc else {})}
        if len(parts) > 1:
            self.results[name]["parts"] = parts
        self.save(name)
        print(f"{name}: rc {rc}, {seconds:.1f} s" + (f": {error}" if rc else ""), flush=True)
        return rc == 0


def _part(cmd: list[str]) -> str:
    """A command's short name: ``train radocc``, ``predict``, ``rig_to_bag.py``."""
    if cmd[1:3] == ["-m", "occkit"]:
        return " ".join(cmd[3:5]) if cmd[3] in ("train", "priors") else cmd[3]
    return Path(cmd[1]).name if len(cmd) > 1 else cmd[0]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _last_line(log: Path) -> str:
    """The one-line error: the last line that is not a traceback's frame, else the last line."""
    lines = [ln.rstrip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    for ln in reversed(lines):
        if not ln.startswith(("  ", "Traceback", "$ ")):
            return ln[:400]
    return lines[-1][:400] if lines else ""


def _figures(path: Path) -> dict:
    """mIoU, geometry IoU and RayIoU from ``occkit eval --json`` (percent, as it writes them)."""
    res = json.loads(path.read_text())
    return {k: round(float(res[k]), 2) for k in ("miou", "geometry_iou", "rayiou") if res.get(k) is not None}


def make_world(st: Stages, args) -> Path:
    world = args.out / "world"
    size = [str(v) for v in args.image_size]
    cmd = [*_occkit(), "synth", "--out", str(world), "--scenes", str(args.scenes), "--frames", str(args.frames)]
    cmd += ["--sweeps", str(args.sweeps), "--image-size", *size, "--seed", "0"]
    st.run("world", [cmd], clean=[world])
    return world


def make_bags(st: Stages, args, world: Path) -> tuple[Path, list[str]]:
    bags, side = args.out / "bags", args.out / "side"
    scenes = [f"scene-{i:04d}" for i in range(args.scenes)]
    tool = [sys.executable, str(ROOT / "tools" / "rig_to_bag.py"), "--rig", str(world / "rig")]
    cmds = []
    for scene in scenes:
        cmds.append(
            [*tool, "--scene", scene, "--out", str(bags / scene), "--storage", "mcap", "--cameras"]
            + ["--keyframes", str(side / f"{scene}.kf.txt"), "--boxes", str(side / f"{scene}.boxes.json")]
        )
    merge = (
        "import json,sys; d=sys.argv[1]; n=sys.argv[2:];"
        "open(d+'/keyframes.txt','w').write(''.join(open(f'{d}/{s}.kf.txt').read() for s in n));"
        "json.dump({'boxes':[b for s in n for b in json.load(open(f'{d}/{s}.boxes.json'))['boxes']]},"
        "open(d+'/boxes.json','w'))"
    )
    cmds.append([sys.executable, "-c", merge, str(side), *scenes])
    if not st.done("bags"):
        side.mkdir(parents=True, exist_ok=True)
    st.run("bags", cmds, clean=[bags])
    return bags, scenes


def label_args(args, bags: Path, scenes: list[str]) -> list[str]:
    side = args.out / "side"
    return [*_occkit(), "label", "--data", str(bags), "--keyframes", str(side / "keyframes.txt"), "--boxes"] + [
        str(side / "boxes.json"),
        "--ego-box",
        EGO_BOX,
        "--val-scenes",
        scenes[-1],
        "--workers",
        "1",
    ]


def train_cmd(preset: str, data: Path, run: Path, steps: int, *sets: str) -> list[str]:
    cmd = [*_occkit(), "train", preset, "--data", str(data), "--out", str(run), "--max-steps", str(steps)]
    return cmd + ["--no-val", "--no-progress", "--set", "train.threads=1", "data.workers=0", *sets]


def loop(st: Stages, args) -> None:
    world = make_world(st, args)
    bags, scenes = make_bags(st, args, world)
    labels = args.out / "labels"
    st.run("label", [label_args(args, bags, scenes) + ["--out", str(labels)]], clean=[labels])
    if not st.done("label"):
        return
    st.results["label"]["keyframes"] = sum(
        len(v) for v in json.loads((labels / "annotations.json").read_text())["scene_infos"].values()
    )
    st.save("label")
    # the 2D priors a recording can have: occkit's own networks, trained on a synthetic world of another seed
    pw, pnet, priors = args.out / "prior-world", args.out / "prior-net", args.out / "priors"
    size = [str(v) for v in args.image_size]
    synth = [*_occkit(), "synth", "--out", str(pw), "--scenes", "1", "--frames", "4", "--seed", "1"]
    ptrain = [*_occkit(), "priors", "train", "--data", str(pw), "--out", str(pnet), "--steps", str(args.prior_steps)]
    prun = [*_occkit(), "priors", "run", "--data", str(labels), "--prior", f"world:{pnet}", "--out", str(priors)]
    need_priors = {"easyocc", "cigocc", "langocc"} & set(args.rows)
    if need_priors:
        st.run(
            "priors",
            [synth + ["--image-size", *size], ptrain + ["--threads", "1", "--no-progress"], prun + ["--no-progress"]],
            clean=[pw, pnet, priors],
        )
    # the scoring on the bag's labels: the validation labels given as the prediction score 100
    own = args.out / "pred" / "labels-as-prediction"
    write = (
        "import json, sys, numpy as np, pathlib; L, P = map(pathlib.Path, sys.argv[1:]); P.mkdir(parents=True);"
        "a = json.loads((L / 'annotations.json').read_text());"
        "[np.savez_compressed(P / f'{t}.npz', semantics=np.load(L / i['gt_path'])['semantics'])"
        " for s in a['val_split'] for t, i in a['scene_infos'][s].items()]"
    )
    check = [*_occkit(), "eval", "--gt", str(labels), "--pred", str(own), "--metrics", "miou,rayiou", "--json"]
    check += [str(own) + ".json", "--no-progress", "--threads", "1", "--workers", "1"]
    if st.run("labels as prediction", [[sys.executable, "-c", write, str(labels), str(own)], check], clean=[own]):
        st.results["labels as prediction"].update(_figures(Path(str(own) + ".json")))
        st.save("labels as prediction")
    for row in args.rows:
        run, pred = args.out / "runs" / row, args.out / "pred" / row
        evaluate = [
            [*_occkit(), "predict", "--ckpt", str(run), "--data", str(labels), "--out", str(pred), "--split", "val"]
            + ["--no-progress", "--workers", "0"],
            [*_occkit(), "eval", "--gt", str(labels), "--pred", str(pred), "--metrics", "miou,rayiou"]
            + ["--json", str(args.out / "pred" / f"{row}.json"), "--no-progress", "--threads", "1", "--workers", "1"],
        ]
        clean = [run, pred]
        if row == "radocc":
            teacher = args.out / "runs" / "lidar-teacher"
            cmds = [
                train_cmd("lidar-teacher", labels, teacher, args.steps),
                train_cmd("radocc", labels, run, args.steps, f"radocc.teacher={teacher}"),
            ]
            clean.append(teacher)
        elif row == "easyocc":
            pseudo = args.out / "pseudo"
            cmds = [
                [*_occkit(), "pseudolabel", "--data", str(labels), "--priors", str(priors), "--out", str(pseudo)]
                + ["--past", str(args.frames - 1), "--no-progress"],
                train_cmd("easyocc", pseudo, run, args.steps),
            ]
            clean.append(pseudo)
        elif row == "cigocc":
            cmds = [train_cmd("cigocc", labels, run, args.steps, *SSC_ON_OCC3D, f"data.priors={priors}")]
        elif row == "langocc":
            features = [f"data.priors={priors}", "data.prior_kinds=[features]"]
            cmds = [train_cmd("langocc", labels, run, args.steps, *features)]
        else:
            cmds = [train_cmd(row, labels, run, args.steps)]
        if row in need_priors and not st.done("priors"):
            st.results[row] = {"rc": -1, "seconds": 0.0, "error": "no priors: " + st.results["priors"].get("error", "")}
            st.save(row)
            continue
        if st.run(row, cmds + evaluate, clean=clean):
            st.results[row].update(_figures(args.out / "pred" / f"{row}.json"))
            st.save(row)


def image_cost(args) -> None:
    """The same bags labelled without and with their cameras, alternated: wall and CPU seconds a keyframe
    (the command's, its children's CPU time from ``getrusage``: what other jobs' load changes least), median
    of N (OUT/images.json)."""
    import resource

    setup = Stages(args.out)
    world = make_world(setup, args)
    bags, scenes = make_bags(setup, args, world)
    st, key = Stages(args.out, "images.json"), "image_cost"
    runs: dict[str, list[dict]] = st.results.get(key, {}).get("runs", {"none": [], "six": []})
    while min(len(v) for v in runs.values()) < args.repeats:
        for arm in ("none", "six"):
            if len(runs[arm]) >= args.repeats:
                continue
            out = args.out / "imgcost" / arm
            shutil.rmtree(out, ignore_errors=True)
            cmd = label_args(args, bags, scenes) + ["--out", str(out)] + (["--cameras", ""] if arm == "none" else [])
            cpu0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=_env())
            seconds, cpu1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
            if proc.returncode:
                st.results[key] = {"rc": proc.returncode, "error": (proc.stdout + proc.stderr).strip().splitlines()[-1]}
                st.save(key)
                print(f"{key}: {arm}: rc {proc.returncode}: {st.results[key]['error']}", flush=True)
                return
            ann = json.loads((out / "annotations.json").read_text())["scene_infos"]
            n = sum(len(v) for v in ann.values())
            work = re.search(r"\(([\d.]+) s a keyframe of work", proc.stdout)  # what occkit label says
            runs[arm].append(
                {"wall": round(seconds / n, 3), "cpu": round(cpu / n, 3), "work": float(work[1]) if work else None}
            )
            print(f"{key}: {arm}: {seconds:.1f} s wall, {cpu:.1f} s CPU, {n} keyframes", flush=True)
            st.results[key] = {"rc": 0, "keyframes": n, "runs": runs}
            st.save(key)
    res = st.results[key]
    med = {
        arm: {m: statistics.median(r[m] for r in v if r[m] is not None) for m in ("wall", "cpu", "work")}
        for arm, v in runs.items()
    }
    res["median_s_per_keyframe"] = med
    res["images_add_s_per_keyframe"] = {m: round(med["six"][m] - med["none"][m], 3) for m in med["six"]}
    st.save(key)
    shutil.rmtree(args.out / "imgcost", ignore_errors=True)


def _drive_writer():
    """tests/labelgen/test_kitti_raw_reader.py's ``write_drive``: the world's first scene as a KITTI raw drive."""
    import importlib.util

    path = ROOT / "tests" / "labelgen" / "test_kitti_raw_reader.py"
    spec = importlib.util.spec_from_file_location("kitti_raw_drive", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.write_drive


def readers(args) -> None:
    """Each reader's recording of the world's first scene, labelled, trained on (``synth-cpu``), predicted,
    scored and drawn: the times of each step (OUT/readers.json). A recording of one scene has no validation
    scene: the train split is predicted and scored."""
    setup = Stages(args.out)
    world = make_world(setup, args)
    bags, _ = make_bags(setup, args, world)
    st = Stages(args.out, "readers.json")
    rec, side = args.out / "recordings", args.out / "side"
    every = str(args.sweeps + 1)  # occkit synth --sweeps K: a keyframe every K + 1 sweeps
    size = [str(v) for v in args.image_size]
    nw = rec / "nuscenes-world"
    makes = {
        "bag": [],  # the loop's bag of scene-0000
        "points": [
            [sys.executable, str(ROOT / "tools" / "rig_to_points.py"), "--rig", str(world / "rig")]
            + ["--scene", "scene-0000", "--out", str(rec / "points"), "--suffix", ".pcd", "--cameras"]
        ],
        "kitti-raw": [
            [sys.executable, str(Path(__file__).resolve()), "--out", str(args.out)]
            + ["--write-drive", str(world), str(rec / "kitti_raw")]
        ],
        "nuscenes": [
            [*_occkit(), "synth", "--format", "nuscenes", "--out", str(nw), "--scenes", "1"]
            + ["--frames", str(args.frames), "--sweeps", str(args.sweeps), "--image-size", *size, "--seed", "0"]
        ],
    }
    for reader in args.readers:
        if not st.run(f"{reader}: record", makes[reader], clean=[] if reader == "bag" else [rec / reader]):
            continue
        labels = args.out / "reader-labels" / reader
        if reader == "bag":
            data = [str(bags / "scene-0000"), "--keyframes", str(side / "scene-0000.kf.txt")]
            data += ["--boxes", str(side / "scene-0000.boxes.json"), "--ego-box", EGO_BOX]
        elif reader == "points":
            said = (args.out / "logs" / "points- record.log").read_text()
            pose = said.split("--lidar-pose '")[1].split("'")[0]
            data = [str(rec / "points"), "--lidar-pose", pose, "--keyframe-every", every, "--ego-box", EGO_BOX]
        elif reader == "kitti-raw":
            data = [str(rec / "kitti_raw" / "2011_09_26"), "--keyframe-every", every]
        else:
            data = [str(nw), "--reader", "nuscenes"]
        run, pred = args.out / "reader-runs" / reader, args.out / "reader-pred" / reader
        split = ["--split", "train"]
        steps = {
            "label": [[*_occkit(), "label", "--data", *data, "--out", str(labels), "--workers", "1"]],
            "train": [train_cmd("synth-cpu", labels, run, args.steps)],
            "predict": [
                [*_occkit(), "predict", "--ckpt", str(run), "--data", str(labels), "--out", str(pred), *split]
                + ["--no-progress", "--workers", "0"]
            ],
            "eval": [
                [*_occkit(), "eval", "--gt", str(labels), "--pred", str(pred), "--metrics", "miou,rayiou", *split]
                + ["--json", str(args.out / "reader-pred" / f"{reader}.json"), "--no-progress", "--threads", "1"]
                + ["--workers", "1"]
            ],
            "show": [
                [*_occkit(), "show", str(labels), "--pred", str(pred), "--split", "train"]
                + ["--out", str(args.out / "reader-pred" / f"{reader}.png")]
            ],
        }
        cleans = {"label": [labels], "train": [run], "predict": [pred], "eval": [], "show": []}
        for step, cmds in steps.items():
            if not st.run(f"{reader}: {step}", cmds, clean=cleans[step]):
                break
            if step == "label":
                infos = json.loads((labels / "annotations.json").read_text())["scene_infos"]
                st.results[f"{reader}: label"]["keyframes"] = sum(len(v) for v in infos.values())
            if step == "eval":
                st.results[f"{reader}: eval"].update(_figures(args.out / "reader-pred" / f"{reader}.json"))
            st.save(f"{reader}: {step}")


def report(args) -> None:
    """The tables of every section's results as the files hold them now."""
    st = Stages(args.out)
    r = st.results
    for row in args.rows:  # the figures, from each row's eval file
        if st.done(row) and (args.out / "pred" / f"{row}.json").is_file():
            r[row].update(_figures(args.out / "pred" / f"{row}.json"))
    print("\n| stage | rc | seconds | figures or error |\n|---|---|---|---|")
    for name in ("world", "bags", "label", "labels as prediction", "priors", *args.rows):
        if name in r:
            e = r[name]
            figs = [f"{k} {v}" for k, v in e.items() if k not in ("rc", "seconds", "error", "parts")]
            figs += [f"{part} {sec} s" for part, sec in e.get("parts", [])]
            log = args.out / "logs" / f"{name}.log"
            if "parts" not in e and log.is_file():  # the training minutes each run printed
                figs += [
                    f"training {m} min" for m in re.findall(r"steps \(([\d.]+) min of training\)", log.read_text())
                ]
            fig = ", ".join(figs) or e.get("error", "")
            print(f"| {name} | {e['rc']} | {e.get('seconds', '')} | {fig} |")
    rd = Stages(args.out, "readers.json").results
    if rd:
        print("\n| reader: step | rc | seconds | figures or error |\n|---|---|---|---|")
        for name, e in rd.items():
            figs = [f"{k} {v}" for k, v in e.items() if k not in ("rc", "seconds", "error", "parts")]
            print(f"| {name} | {e['rc']} | {e.get('seconds', '')} | {', '.join(figs) or e.get('error', '')} |")
    r = Stages(args.out, "images.json").results
    if "image_cost" in r and "median_s_per_keyframe" in r["image_cost"]:
        m = r["image_cost"]["median_s_per_keyframe"]
        add = r["image_cost"]["images_add_s_per_keyframe"]
        print(f"\nocckit label, seconds a keyframe (median of {args.repeats}; wall, CPU, the work it reports):")
        for arm in ("none", "six"):
            print(f"  {arm} cameras: " + ", ".join(f"{k} {v:.3f}" for k, v in m[arm].items()))
        print("  images add: " + ", ".join(f"{k} {v:.3f}" for k, v in add.items()))


SECTIONS = ("loop", "readers", "images", "report")  # report: the tables of what is done, no work


def _refusal(args) -> str | None:
    """The first bad option, said in one line; None when all are good."""
    for opt, value, least in (
        ("--scenes", args.scenes, 2),  # the last scene is the validation scene
        ("--frames", args.frames, 2),  # pseudolabel takes the frames before: one at least
        ("--sweeps", args.sweeps, 1),
        ("--steps", args.steps, 1),
        ("--prior-steps", args.prior_steps, 1),
        ("--repeats", args.repeats, 1),
        ("--image-size", min(args.image_size), 16),
    ):
        if value < least:
            return f"{opt} {value}: expected an integer >= {least}"
    for opt, given, known in (
        ("--rows", args.rows, ROWS),
        ("--readers", args.readers, READERS),
        ("--sections", args.sections, SECTIONS),
    ):
        unknown = [g for g in given if g not in known]
        if unknown or not given:
            what = f"unknown {', '.join(unknown)}" if unknown else "none given"
            return f"{opt}: {what} (choices: {', '.join(known)})"
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="the benchmark's folder (resumed if it holds one)")
    p.add_argument("--scenes", type=int, default=2, help="scenes of the world; the last is the validation scene")
    p.add_argument("--frames", type=int, default=4, help="keyframes a scene")
    p.add_argument("--sweeps", type=int, default=4, help="sweeps between keyframes (occkit synth --sweeps)")
    p.add_argument("--image-size", type=int, nargs=2, default=(256, 704), metavar=("H", "W"))
    p.add_argument("--steps", type=int, default=20, help="training steps of every preset")
    p.add_argument("--prior-steps", type=int, default=20, help="occkit priors train --steps")
    p.add_argument("--rows", default=",".join(ROWS), help="presets to run, comma list")
    p.add_argument(
        "--sections",
        default="loop,readers,images",
        help="comma list of loop, readers, images (report: only the tables)",
    )
    p.add_argument("--readers", default=",".join(READERS), help="the readers section's recordings, comma list")
    p.add_argument("--write-drive", nargs=2, type=Path, metavar=("WORLD", "ROOT"), help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=3, help="label runs per arm of the image cost")
    args = p.parse_args(argv)
    if args.write_drive:  # the readers section's KITTI raw drive, in its own process
        _drive_writer()(*args.write_drive)
        return 0
    args.readers = [r for r in args.readers.split(",") if r]
    args.rows = [r for r in args.rows.split(",") if r]
    args.sections = sections = [s for s in args.sections.split(",") if s]
    said = _refusal(args)
    if said:
        print(f"recording_to_model: {said}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    st = Stages(args.out)
    if "loop" in sections:
        loop(st, args)
    if "readers" in sections:
        readers(args)
    if "images" in sections:
        image_cost(args)
    report(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
