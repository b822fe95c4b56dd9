"""``occkit ablate`` end to end on a tiny world: 2 arms x 2 seeds trained in 2 lanes and scored;
kill -9 mid-arm and rerun gives the same figures; a second spec reuses the cached stage; a locked
or differently trained run folder is reported, not trained; the lanes keep the stages' order.

The kill test kills a runner process and its training subprocess (the local launcher's); the
ablations of this process run their commands in it (:func:`ablate_helpers.in_process`): the same
argv and the same figures as subprocesses give (the resumed run of the killed subprocess's
checkpoint must give the figures of the run trained in one go)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from ablate_helpers import in_process, tiny_spec, write

from occkit.ablate.lock import process_alive
from occkit.ablate.report import _num
from occkit.ablate.runner import Ablation, Command, Job, JobError, RunOptions, run_jobs
from occkit.ablate.spec import parse_spec
from occkit.cli import main
from occkit.engine.logging import read_jsonl

SCORING = "scoring:\n  - {scorer: occ3d, masks: [camera], arms: [b], previous: true}\n"


@pytest.fixture(scope="module")
def stages_only(tmp_path_factory):
    """The tiny spec's stages built with --stages-only, then its plan (--dry-run), before any arm ran:
    (spec, out folder, what the first said, the plan, the run folders then)."""
    root = tmp_path_factory.mktemp("ablate")
    spec = write(root, "full.yaml", tiny_spec(scoring=SCORING))
    out = root / "abl" / "full"
    with in_process(), contextlib.redirect_stdout(io.StringIO()) as said:
        assert main(["ablate", str(spec), "--out", str(out), "--stages-only"]) == 0
    runs = sorted(p.name for p in (out / "runs").iterdir()) if (out / "runs").exists() else []
    with contextlib.redirect_stdout(io.StringIO()) as plan:
        assert main(["ablate", str(spec), "--out", str(out), "--dry-run"]) == 0
    yield spec, out, said.getvalue(), plan.getvalue(), runs
    # The module's runs and their checkpoints: freed once its tests are done.
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def full_run(stages_only):
    """The tiny spec run to completion without a stop, on the stages built by --stages-only: (spec
    folder, out folder, its results)."""
    spec, out = stages_only[:2]
    with in_process():
        rc = main(["ablate", str(spec), "--out", str(out), "--lanes", "2", "--device", "cpu"])
    assert rc == 0
    return spec.parent, out, json.loads((out / "results.json").read_text())


def _figures(arm: dict) -> dict:
    """What must not depend on stops: each seed's metric, curve, convergence and scores."""
    keys = ("status", "step", "metric", "curve", "last_two", "delta", "converged", "scores")
    return {seed: {k: s[k] for k in keys} for seed, s in arm["seeds"].items()}


def test_results_of_two_arms_by_two_seeds(full_run):
    root, out, r = full_run
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["a_s0", "a_s1", "b_s0", "b_s1"]
    for f in ("results.json", "results.md", "curves.png"):
        assert (out / f).is_file()
    assert r["budget"] == 2 and r["val_every"] == 1 and r["seeds"] == [0, 1]
    assert [c["id"] for c in r["columns"]] == ["occ3d_camera.miou", "occ3d_camera.geometry_iou"]
    assert r["stages"]["world"]["status"] == "cached" and r["stages"]["world"]["wall_seconds"] > 0
    for arm in ("a", "b"):
        a = r["arms"][arm]
        assert a["status"] == "done"
        values = {}
        for seed in ("0", "1"):
            run = out / "runs" / f"{arm}_s{seed}"
            records = read_jsonl(run / "metrics.jsonl")
            assert [x["step"] for x in records] == [1, 2]  # 2 validations over the budget of 2
            s = a["seeds"][seed]
            assert (
                s["step"] == 2
                and s["metric"] == records[-1]["miou"]
                and s["curve"] == [[1, records[0]["miou"]], [2, records[1]["miou"]]]
            )
            assert s["converged"] is (abs(records[1]["miou"] - records[0]["miou"]) <= 0.5)
            assert s["train_seconds"] > 0 and not (run / "ablate.lock").exists()
            values[seed] = records[-1]["miou"]
            if arm == "b":  # scored (the occ3d scorer is b's only); predictions removed afterwards
                score = json.loads((run / "score_occ3d_camera.json").read_text())
                assert s["scores"] == {
                    "occ3d_camera.miou": score["miou"],
                    "occ3d_camera.geometry_iou": score["geometry_iou"],
                }
                assert score["mask"] == "camera" and not (run / "pred_occ3d").exists() and s["score_seconds"] > 0
                # previous: true scored the checkpoint of step 1 the same way, beside the column
                before = json.loads((run / "score_occ3d_camera_prev.json").read_text())
                assert not (run / "pred_occ3d_prev").exists()
                assert s["plateau"]["occ3d_camera.miou"]["previous"] == pytest.approx(before["miou"])
                assert s["plateau"]["occ3d_camera.miou"]["delta"] == pytest.approx(score["miou"] - before["miou"])
            else:
                assert s["scores"] == {} and not list(run.glob("score_*"))
        m = a["summary"]["metric"]
        assert m["mean"] == pytest.approx(sum(values.values()) / 2)
        assert m["half_range"] == pytest.approx(abs(values["0"] - values["1"]) / 2)
    assert (
        r["arms"]["b"]["summary"]["occ3d_camera.miou"]["n"] == 2
        and "occ3d_camera.miou" not in r["arms"]["a"]["summary"]
    )
    md = (out / "results.md").read_text()
    assert "| a | " in md and "| b | " in md and "mIoU (occ3d camera)" in md and "| world | synth |" in md


def test_kill_mid_arm_and_rerun_gives_the_same_figures_reusing_the_stage(full_run):
    root, full_out, full = full_run
    stage_json = next((root / "abl" / "stages").glob("world-*/stage.json"))
    mtime = stage_json.stat().st_mtime_ns
    # a second spec (another file, another name) with the same world stage and arm a
    spec = write(root, "second.yaml", tiny_spec(name="second", arms="  a: {preset: tiny.yaml}\n", seeds="[1]"))
    out = root / "abl" / "killed"
    args = ["ablate", str(spec), "--out", str(out), "--device", "cpu"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "occkit.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    latest = out / "runs" / "a_s1" / "checkpoints" / "latest"
    deadline = time.monotonic() + 120
    while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its children, mid-training of a_s1
    proc.wait()
    assert latest.exists(), proc.stderr.read().decode()[-2000:]
    lock = json.loads((out / "runs" / "a_s1" / "ablate.lock").read_text())  # left behind, stale
    time.sleep(0.2)
    assert not process_alive(lock["pid"], lock["start"]) and not process_alive(lock["child"], lock["child_start"])
    assert int(latest.read_text().strip().split("_")[1]) < 2, "the kill came too late to interrupt training"
    with in_process():  # the subprocess's checkpoint resumed here
        assert main(args) == 0
    assert "resuming from" in (out / "runs" / "a_s1" / "train.log").read_text()
    again = json.loads((out / "results.json").read_text())
    assert _figures(again["arms"]["a"]) == {"1": _figures(full["arms"]["a"])["1"]}
    assert stage_json.stat().st_mtime_ns == mtime  # the world was not rebuilt
    assert again["stages"]["world"]["folder"] == os.path.relpath(stage_json.parent / "out", out)
    # a third run of the same command trains nothing and writes the same table
    before = (out / "results.md").read_text().split("Updated")[0]
    assert main(args) == 0
    assert (out / "results.md").read_text().split("Updated")[0] == before


def test_locked_or_differently_trained_runs_are_reported_not_trained(full_run, capsys):
    root, full_out, _ = full_run
    spec = write(root, "third.yaml", tiny_spec(name="third", arms="  a: {preset: tiny.yaml}\n", seeds="[0]"))
    out = root / "abl" / "third"
    shutil.copytree(full_out / "runs" / "a_s0", out / "runs" / "a_s0")
    # the same settings: finished, skipped
    assert main(["ablate", str(spec), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "training" not in text and "occkit ablate: Time left: none, every run is done." in text
    # another budget on the same folder: refused, not mixed
    assert main(["ablate", str(spec), "--out", str(out), "--budget", "6"]) == 1
    text = capsys.readouterr().out
    assert "trained with other settings (budget: 2, now 6)" in text and "training" not in text
    # a folder locked by a process that runs (this one)
    (out / "runs" / "a_s0" / "ablate.lock").write_text(json.dumps({"pid": os.getpid(), "start": None}))
    assert main(["ablate", str(spec), "--out", str(out), "--budget", "6", "--dry-run"]) == 0
    assert f"a_s0 locked (by process {os.getpid()})" in " ".join(capsys.readouterr().out.split())
    assert main(["ablate", str(spec), "--out", str(out), "--budget", "6"]) == 1
    assert f"is locked by process {os.getpid()}, which still runs" in capsys.readouterr().out
    assert (out / "runs" / "a_s0" / "ablate.lock").exists()  # not ours to remove


def test_lanes_keep_dependencies_and_skip_what_follows_a_failure(tmp_path):
    events = []

    def job(name, argv, deps=()):
        def make():
            events.append(("start", name))
            rc = yield Command(argv, tmp_path / f"{name}.log")
            events.append(("end", name, rc))
            if rc:
                raise JobError(f"{name} failed ({rc})")

        return Job(name, name, make, list(deps))

    jobs = [
        job("a", ["--version"]),
        job("b", ["no-such-verb"]),
        job("c", ["--version"], ["a"]),
        job("d", ["--version"], ["b"]),
    ]
    errors = run_jobs(jobs, lanes=2, env=dict(os.environ), poll_seconds=0.01)
    assert errors == {"a": None, "b": "b failed (2)", "c": None, "d": "d: not run: b failed"}
    assert events.index(("end", "a", 0)) < events.index(("start", "c")) and ("start", "d") not in events
    assert "invalid choice: 'no-such-verb'" in (tmp_path / "b.log").read_text()


def test_a_stage_waits_only_on_stages_still_to_build(tmp_path):
    text = tiny_spec(arms="  a: {preset: tiny.yaml, set: ['data.priors=${priors}']}\n", seeds="[0]").replace(
        "stages:\n",
        'stages:\n  priors: {command: priors run, args: {data: "${world}", prior: oracle}}\n'
        "  unused: {command: synth}\n",
    )
    ab = Ablation(
        parse_spec(write(tmp_path, "s.yaml", text)), RunOptions(out=tmp_path / "abl", cache=tmp_path / "stages")
    )
    assert [(j.name, j.deps) for j in ab.stage_jobs()] == [("stage:world", []), ("stage:priors", ["stage:world"])]
    # a run waits on the stages it needs that are still to build, and on no other
    assert [(j.name, j.deps) for j in ab.arm_jobs({"world", "priors"})] == [
        ("run:a_s0", ["stage:world", "stage:priors"])
    ]
    ab.plans["world"].folder.mkdir(parents=True)
    ab.plans["world"].record_path.write_text("{}")  # built
    assert [(j.name, j.deps) for j in ab.stage_jobs()] == [("stage:priors", [])]
    assert [(j.name, j.deps) for j in ab.arm_jobs({"priors"})] == [("run:a_s0", ["stage:priors"])]


def test_a_run_does_not_wait_for_stages_it_does_not_need(tmp_path):
    """With two lanes, an arm that needs only the world trains while another arm's stage builds."""
    text = tiny_spec(
        arms="  a: {preset: tiny.yaml}\n  b: {preset: tiny.yaml, set: ['data.priors=${priors}']}\n", seeds="[0]"
    ).replace("stages:\n", 'stages:\n  priors: {command: priors run, args: {data: "${world}", prior: oracle}}\n')
    ab = Ablation(
        parse_spec(write(tmp_path, "s.yaml", text)), RunOptions(out=tmp_path / "abl", cache=tmp_path / "stages")
    )
    deps = {j.name: j.deps for j in ab.arm_jobs({"world", "priors"})}
    assert deps == {"run:a_s0": ["stage:world"], "run:b_s0": ["stage:world", "stage:priors"]}


def test_a_start_stopped_before_its_first_checkpoint_restarts_with_new_settings(full_run, capsys):
    root, full_out, _ = full_run
    spec = write(root, "fourth.yaml", tiny_spec(name="fourth", arms="  a: {preset: tiny.yaml}\n", seeds="[0]"))
    out = root / "abl" / "fourth"
    run = out / "runs" / "a_s0"
    shutil.copytree(full_out / "runs" / "a_s0", run)
    for p in [*run.glob("score_*"), run / "checkpoints"]:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    (run / "stale.txt").write_text("from the former start")
    with in_process():
        assert main(["ablate", str(spec), "--out", str(out), "--budget", "3"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "holds no checkpoint of its former settings (budget: 2); starting it again with 3" in text
    assert not (run / "stale.txt").exists()
    assert json.loads((run / "ablate.json").read_text())["identity"]["budget"] == 3
    assert sorted(p.name for p in (run / "checkpoints").iterdir())[-1].endswith("3")  # trained to the new budget


def test_stages_only_builds_the_stages_and_runs_no_arm(stages_only):
    _, _, said, plan, runs = stages_only
    text = " ".join(said.split())
    assert "stages: 1 of 1 cached" in text and "no arm run (--stages-only)" in text
    assert not runs
    assert "cached" in plan.split("runs (")[0] and "missing" not in plan.split("runs (")[0]


def test_a_rebuilt_stage_is_never_mixed_into_a_run_or_a_mean(full_run, capsys):
    """Runs record the builds of their stages: a finished run from another build is reported apart
    (dagger, out of the means); an unfinished one is refused, not continued; one with no checkpoint
    starts again from the new build. Runs recorded before builds were are dated by train.log."""
    root, full_out, full = full_run
    spec = write(root, "fifth.yaml", tiny_spec(name="fifth", scoring=SCORING))
    out, cache = root / "abl" / "fifth", root / "cache5"
    shutil.copytree(
        next((root / "abl" / "stages").glob("world-*")), cache / next((root / "abl" / "stages").glob("world-*")).name
    )
    for run in ("a_s0", "a_s1", "b_s0", "b_s1"):
        shutil.copytree(full_out / "runs" / run, out / "runs" / run)
    args = ["ablate", str(spec), "--out", str(out), "--cache", str(cache)]
    stage_json = next(cache.glob("world-*/stage.json"))
    built = json.loads(stage_json.read_text())
    assert built["machine"]["cpu"] and "bf16" in built["machine"]
    for run in ("a_s0", "a_s1", "b_s0", "b_s1"):  # each run recorded the build it started from
        assert json.loads((out / "runs" / run / "ablate.json").read_text())["stage_builds"] == {
            "world": built["finished"]
        }
    assert main(args + ["--report"]) == 0
    assert json.loads((out / "results.json").read_text())["arms"]["a"]["seeds"]["0"]["build"] == "current"
    # a record written before builds were: dated by its first start (the world was built before it)
    rec = json.loads((out / "runs" / "a_s1" / "ablate.json").read_text())
    del rec["stage_builds"]
    (out / "runs" / "a_s1" / "ablate.json").write_text(json.dumps(rec))
    assert main(args + ["--report"]) == 0
    assert json.loads((out / "results.json").read_text())["arms"]["a"]["seeds"]["1"]["build"] == "current"
    # the world rebuilt (same hash, a later build); b_s1 half-trained, a_s0 not started
    stage_json.write_text(json.dumps({**built, "finished": "2099-01-01T00:00:00+0000"}))
    shutil.rmtree(out / "runs" / "a_s0" / "checkpoints")
    for p in (out / "runs" / "a_s0").glob("score_*"):
        p.unlink()
    ckpts = sorted((out / "runs" / "b_s1" / "checkpoints").glob("step_*"))
    shutil.rmtree(ckpts[-1])
    (out / "runs" / "b_s1" / "checkpoints" / "latest").write_text(ckpts[0].name)
    assert main(args + ["--dry-run"]) == 0
    plan = " ".join(capsys.readouterr().out.split())
    assert "b_s0 done (from another build of stage(s) world)" in plan
    assert "b_s1 partial (step 1 of 2; stage(s) world rebuilt since it started)" in plan
    with in_process():
        assert main(args) == 1  # b_s1 refused; a_s0 started again; a_s1 (dated) and b_s0 kept as they are
    text = " ".join(capsys.readouterr().out.split())
    assert "stage(s) world were rebuilt since" in text and "remove that folder" in text
    assert "arm a seed 0: stage(s) world rebuilt since" in text and "starting it again from the current build" in text
    r = json.loads((out / "results.json").read_text())
    assert r["arms"]["a"]["seeds"]["0"]["build"] == "current" and r["arms"]["a"]["seeds"]["1"]["build"] == "other"
    assert r["arms"]["b"]["seeds"]["0"]["build"] == "other" and r["arms"]["b"]["seeds"]["0"]["rebuilt_stages"] == [
        "world"
    ]
    a0 = r["arms"]["a"]["seeds"]["0"]["metric"]
    assert a0 == full["arms"]["a"]["seeds"]["0"]["metric"]  # the same bytes here: the same figures
    assert (out / "runs" / "a_s0" / "train.log").read_text().count(
        "# occkit ablate"
    ) == 1  # begun again: the old log gone
    assert r["arms"]["a"]["summary"]["metric"]["seeds"] == ["0"] and r["arms"]["b"]["summary"]["metric"] is None
    md = (out / "results.md").read_text()
    assert f"(s0 {_num(a0)}, s1 " in md and "†) [1 of 2 seeds done]" in md and "[no seed of the current builds]" in md
    assert "† started from another build of stage(s) world" in md
