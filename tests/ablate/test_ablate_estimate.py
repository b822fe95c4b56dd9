"""The time an ablation should take before any run has finished (the presets' measured step
times), a building stage's progress on the console, and a stage another process builds."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ablate_helpers import tiny_spec, write

import occkit.ablate.estimate as estimate
import occkit.ablate.runner as runner
from occkit.ablate.runner import Command, Job, run_jobs
from occkit.ablate.spec import Overrides, parse_spec
from occkit.ablate.stages import plan_stages
from occkit.cli import main

TABLE = {
    "machine": "a test machine",
    "threads": [2],
    "date": "2026-01-01 00:00 UTC",
    "presets": {"synth-cpu": {"s_per_step": 3.0, "threads": 2}},
}


def test_the_packaged_table_holds_every_cpu_preset_it_was_measured_for():
    table = estimate.step_rates()
    assert table["machine"] and table["date"] and table["command"] and table["world"]
    for name in ("synth-abl", "base-cpu", "lidar-teacher", "radocc-abl", "easyocc", "cigocc", "langocc"):
        assert table["presets"][name]["s_per_step"] > 0, name


def test_dry_run_estimates_the_time_from_the_table_and_names_unknown_presets(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(estimate, "step_rates", lambda: TABLE)
    arms = "  a: {preset: synth-cpu}\n  b: {preset: synth-cpu}\n  c: {preset: tiny.yaml}\n"
    stages = (
        "  teacher:\n    command: train\n    args: {config: synth-cpu, data: '${world}', max-steps: 10}\n"
        "  other:\n    command: train\n    args: {config: tiny.yaml, data: '${world}', max-steps: 10}\n"
    )
    text = tiny_spec(arms=arms, seeds="[0, 1, 2]").replace("stages:\n", "stages:\n" + stages)
    text = text.replace("  a: {preset: synth-cpu}", "  a: {preset: synth-cpu, init_from: '${teacher}'}")
    text = text.replace("  b: {preset: synth-cpu}", "  b: {preset: synth-cpu, init_from: '${other}'}")
    spec = write(tmp_path, "spec.yaml", text)
    assert main(["ablate", str(spec), "--out", str(tmp_path / "abl"), "--dry-run", "--lanes", "2"]) == 0
    out = capsys.readouterr().out
    # 6 runs of a known preset x 2 steps x 3 s (measured at 2 threads, not scaled to 1): 36 s;
    # the teacher stage 10 steps: 30 s; over 2 lanes: 33 s
    assert "Time estimate: about 1 min on 2 lane(s) x 1 thread(s) (no run has finished yet" in out
    assert "runs: 6 x 2 steps (1 min of lane time)" in out and "measured on a test machine at 2 thread(s)" in out
    assert "unestimated: 3 run(s) whose preset is not in the table: arm(s) c (" in out
    assert f"arm(s) c ({tmp_path / 'tiny.yaml'})" in out
    assert "train stages counted by their max-steps: teacher" in out
    assert "stages not counted: world, other" in out or "stages not counted: other, world" in out
    ab = runner.Ablation(parse_spec(spec, Overrides()), runner.RunOptions(out=tmp_path / "abl", cache=tmp_path / "st"))
    e = estimate.estimate(ab, TABLE)
    assert (e["runs"], e["steps"], e["unestimated_runs"]) == (6, 12, 3)
    assert abs(e["run_seconds"] - 36.0) < 1e-9 and abs(e["stage_seconds"] - 30.0) < 1e-9
    assert e["validations"] == 12  # 2 per run of the 6 estimated


def test_the_estimate_at_the_tables_threads_says_nothing_of_threads(tmp_path, monkeypatch):
    monkeypatch.setattr(estimate, "step_rates", lambda: TABLE)
    spec = write(tmp_path, "spec.yaml", tiny_spec(arms="  a: {preset: synth-cpu}\n", seeds="[0]"))
    ab = runner.Ablation(
        parse_spec(spec, Overrides()), runner.RunOptions(out=tmp_path / "abl", cache=tmp_path / "st", threads=2)
    )
    e = estimate.estimate(ab)
    assert e["run_seconds"] == 6.0 and e["wall_seconds"] == 6.0
    assert "unscaled" not in estimate.estimate_text(e, 2)
    e["threads"] = 1
    assert "taken unscaled at 1 thread(s)" in estimate.estimate_text(e, 2)


def test_once_a_run_has_finished_the_paced_estimate_is_shown_and_said_to_be(tmp_path, monkeypatch):
    spec = write(tmp_path, "spec.yaml", tiny_spec(arms="  a: {preset: synth-cpu}\n", seeds="[0, 1]"))
    ab = runner.Ablation(parse_spec(spec, Overrides()), runner.RunOptions(out=tmp_path / "abl", cache=tmp_path / "st"))
    assert ab.time_text().startswith("Time estimate: ")  # nothing finished: the table's
    paced = {"runs": 1, "lane_seconds": 600.0, "estimated_runs": 0, "paced_by": 1, "lanes": 1, "wall_seconds": 600.0}
    monkeypatch.setattr(runner, "collect", lambda ab: {"time_left": paced})
    text = ab.time_text()
    assert text.startswith("Time left: 1 run(s)") and "(paced by the finished runs, not by the presets'" in text
    monkeypatch.setattr(runner, "collect", lambda ab: {"time_left": paced | {"runs": 0}})
    assert ab.time_text() == "Time left: none, every run is done."


def test_a_building_stages_progress_lines_reach_the_console(tmp_path, monkeypatch, capsys):
    # the command prints a progress line now and then, as occkit synth does, in place of occkit
    child = "import time\nfor i in range(4):\n    print(f'scene {i + 1}/4', flush=True)\n    time.sleep(0.4)\n"
    monkeypatch.setattr(runner, "occkit_argv", lambda argv: [sys.executable, "-c", child])

    def make():
        rc = yield Command(["synth"], tmp_path / "stage.log", progress="stage world")
        assert rc == 0

    env = dict(os.environ)
    assert run_jobs([Job("stage:world", "stage world", make)], 1, env, 0.05, progress_seconds=0.3) == {
        "stage:world": None
    }
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("occkit ablate: stage world: ")]
    assert len(lines) >= 2, lines
    assert all(x.split(": ")[-1].startswith("scene ") for x in lines)
    assert "scene 1/4" in (tmp_path / "stage.log").read_text()  # the log is kept as it was


def test_a_stage_that_prints_nothing_is_still_said_to_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "occkit_argv", lambda argv: [sys.executable, "-c", "import time; time.sleep(1.5)"])

    def make():
        rc = yield Command(["priors"], tmp_path / "stage.log", progress="stage priors")
        assert rc == 0

    jobs = [Job("stage:priors", "stage priors", make)]
    assert run_jobs(jobs, 1, dict(os.environ), 0.05, progress_seconds=0.1) == {"stage:priors": None}
    out = capsys.readouterr().out
    assert "occkit ablate: stage priors: still running, 0.0 min so far (no new line in " in out


def test_dry_run_says_another_process_builds_a_locked_stage(tmp_path, capsys):
    spec = write(tmp_path, "spec.yaml", tiny_spec())
    plan = plan_stages(parse_spec(spec, Overrides()), tmp_path / "stages")["world"]
    plan.folder.mkdir(parents=True)
    (plan.folder / runner.STAGE_LOCK).write_text(json.dumps({"pid": os.getpid(), "start": None}))
    assert main(["ablate", str(spec), "--out", str(tmp_path / "abl"), "--dry-run"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"world building {plan.out} (being built now by process {os.getpid()}" in out


def _records(path, steps, seconds_a_step, slow=()):
    """Append train.jsonl records (one every 10 steps) at ``seconds_a_step``; steps in ``slow`` 10x slower."""
    with path.open("a") as fh:
        for step in steps:
            s = seconds_a_step * (10 if step in slow else 1)
            fh.write(json.dumps({"step": step, "loss": 1.0, "steps_per_s": 1.0 / s}) + "\n")


def test_the_pace_is_the_median_past_the_warm_up_of_this_commands_records(tmp_path):
    log = tmp_path / "train.jsonl"
    _records(log, range(10, 110, 10), 9.0)  # an earlier command's records (a resumed run): not this pace
    start = log.stat().st_size
    _records(log, [110, 120], 0.5)  # the warm-up: 20 steps from this command's first record
    assert estimate.measured_seconds_per_step(log, start) is None
    _records(log, [130, 140], 2.0, slow=[140])  # a validation inside the second interval
    assert estimate.measured_seconds_per_step(log, start) is None  # two records past the warm-up: too few
    _records(log, [150, 160, 170], 2.0)
    with log.open("a") as fh:
        fh.write('{"step": 180, "steps_')  # a line being written
    seconds, first, last = estimate.measured_seconds_per_step(log, start)
    assert (seconds, first, last) == (2.0, 130, 170)  # the slow record is the median's outlier
    assert estimate.measured_seconds_per_step(log, 0)[1:] == (80, 170)  # from byte 0: the earlier records count
    assert estimate.measured_seconds_per_step(tmp_path / "none.jsonl") is None


def test_the_pace_line_sets_the_pace_against_the_tables_row_and_rescales_the_estimate(monkeypatch):
    monkeypatch.setattr(estimate, "step_rates", lambda: TABLE)
    e = {"runs": 4, "stages": [], "wall_seconds": 3600.0, "lanes": 2}
    text = estimate.pace_text(estimate.Pace(Path("t.jsonl"), "synth-cpu", "stage student"), 9.0, (30, 120), 1, e)
    assert text.startswith("pace here: stage student (synth-cpu) 9.00 s a step at 1 thread(s) (median over steps 30-")
    assert "against 3.00 s measured on a test machine: 3.0x the table's" in text
    assert text.endswith("at that ratio the work the table counts takes about 3.0 h on 2 lane(s), not 1.0 h")
    other = estimate.pace_text(estimate.Pace(Path("t.jsonl"), "tiny.yaml", "arm a seed 0"), 1.5, (21, 40), 1, e)
    assert other.endswith("(occkit/ablate/step_rates.json) has no row for this preset")


def test_the_estimate_names_this_machine_and_the_bf16_rows_a_cpu_without_bf16_runs_slower(tmp_path, monkeypatch):
    table = {**TABLE, "presets": {"synth-cpu": {"s_per_step": 3.0, "threads": 2, "amp": "bf16"}}}
    monkeypatch.setattr(estimate, "_this_machine", lambda: {"cpu": "A CPU @ 2.5GHz", "bf16": False})
    spec = write(tmp_path, "spec.yaml", tiny_spec(arms="  a: {preset: synth-cpu}\n", seeds="[0]"))
    ab = runner.Ablation(parse_spec(spec, Overrides()), runner.RunOptions(out=tmp_path / "abl", cache=tmp_path / "st"))
    e = estimate.estimate(ab, table)
    assert e["bf16_presets"] == ["synth-cpu"]
    text = estimate.estimate_text(e, 2)
    assert "this machine: A CPU @ 2.5GHz (no native bf16); the first steps of each training here give its pace" in text
    assert "the table's rows for synth-cpu were measured under bf16 autocast, native on that machine" in text
    monkeypatch.setattr(estimate, "_this_machine", lambda: {"cpu": "B CPU", "bf16": True})
    text = estimate.estimate_text(estimate.estimate(ab, table), 2)
    assert "this machine: B CPU (native bf16)" in text and "measured under bf16 autocast" not in text
    monkeypatch.setattr(estimate, "_this_machine", lambda: {"cpu": "A CPU @ 2.5GHz", "bf16": False})
    e = estimate.estimate(ab, table) | {"device": "cuda"}  # on a GPU the presets' bf16 is the GPU's
    assert "measured under bf16 autocast" not in estimate.estimate_text(e, 2)


def test_a_trainings_pace_is_handed_once_while_it_runs(tmp_path, monkeypatch):
    log = tmp_path / "train.jsonl"
    child = (
        "import json, sys, time\n"
        "for step in range(10, 120, 10):\n"
        f"    open({str(log)!r}, 'a').write(json.dumps({{'step': step, 'steps_per_s': 4.0}}) + '\\n')\n"
        "    time.sleep(0.05)\n"
        "time.sleep(0.5)\n"
    )
    monkeypatch.setattr(runner, "occkit_argv", lambda argv: [sys.executable, "-c", child])
    seen = []

    def make():
        rc = yield Command(["train"], tmp_path / "train.log", pace=estimate.Pace(log, "synth-cpu", "arm a seed 0"))
        assert rc == 0

    jobs = [Job("run:a_s0", "arm a seed 0", make)]
    assert run_jobs(jobs, 1, dict(os.environ), 0.02, progress_seconds=0.1, on_pace=lambda *a: seen.append(a)) == {
        "run:a_s0": None
    }
    assert len(seen) == 1, seen
    pace, seconds, (first, last) = seen[0]
    assert pace.what == "arm a seed 0" and seconds == 0.25 and first >= 30 and last > first


def test_the_trainings_of_stages_and_runs_carry_their_pace(tmp_path):
    arms = "  a: {preset: synth-cpu, init_from: '${teacher}'}\n"
    stage = "  teacher:\n    command: train\n    args: {config: synth-cpu, data: '${world}', max-steps: 10}\n"
    text = tiny_spec(arms=arms, seeds="[0]").replace("stages:\n", "stages:\n" + stage)
    spec = write(tmp_path, "spec.yaml", text)
    ab = runner.Ablation(parse_spec(spec, Overrides()), runner.RunOptions(out=tmp_path / "abl", cache=tmp_path / "st"))
    gen = ab._stage_job(ab.plans["teacher"])
    cmd = next(gen)
    gen.close()
    assert cmd.pace == estimate.Pace(ab.plans["teacher"].out / "train.jsonl", "synth-cpu", "stage teacher")
    gen = ab._stage_job(ab.plans["world"])
    assert next(gen).pace is None  # synth: no training
    gen.close()
    gen = ab._arm_job("a", 0)
    cmd = next(gen)
    gen.close()
    assert cmd.pace == estimate.Pace(ab.run_dir("a", 0) / "train.jsonl", "synth-cpu", "arm a seed 0")


def test_the_estimate_counts_the_runs_this_runner_holds_not_another_runners(tmp_path, monkeypatch):
    """The pace line's estimate is made while this runner trains some runs: those are work left;
    a run another runner holds is that runner's."""
    from occkit.locks import FolderLock, process_start

    monkeypatch.setattr(estimate, "step_rates", lambda: TABLE)
    spec = write(tmp_path, "spec.yaml", tiny_spec(arms="  a: {preset: synth-cpu}\n", seeds="[0, 1]"))
    ab = runner.Ablation(parse_spec(spec, Overrides()), runner.RunOptions(out=tmp_path / "abl", cache=tmp_path / "st"))
    assert estimate.estimate(ab)["runs"] == 2
    ours = ab.run_dir("a", 0)
    ours.mkdir(parents=True)
    lock = FolderLock(ours / runner.RUN_LOCK, "arm a seed 0")
    lock.acquire()
    try:
        theirs = ab.run_dir("a", 1)
        theirs.mkdir(parents=True)
        record = json.loads((ours / runner.RUN_LOCK).read_text())
        record.update(pid=os.getppid(), start=process_start(os.getppid()))  # a living process that is not this one
        (theirs / runner.RUN_LOCK).write_text(json.dumps(record))
        assert ab.run_state("a", 0)[0] == ab.run_state("a", 1)[0] == "locked"
        assert ab.locked_here("a", 0) and not ab.locked_here("a", 1)
        assert estimate.estimate(ab)["runs"] == 1
    finally:
        lock.release()
