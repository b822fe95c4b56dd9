"""``benchmarks/label_downstream.py``'s pure pieces: the step every run is scored at after a deadline (the last
one all runs saved), the "not converged" flag, the checkpoint spacing for ``--eval-steps``, and the refusal of a
run folder trained with other settings. No training."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from label_downstream import (  # noqa: E402
    Clock,
    Plan,
    Run,
    StudyError,
    _occkit,
    _stats,
    check_settings,
    checkpoint_every,
    common_step,
    convergence,
    prunable,
    saved_steps,
    scored_step,
    steps_table,
)


def test_common_step_is_the_last_step_every_run_saved():
    saved = {"truth-s0": {100, 200, 300}, "labels-s0": {100, 200}, "truth-s1": {100, 200, 300, 400}}
    assert common_step(saved) == 200
    assert common_step({"a": {100, 300}, "b": {200, 300, 400}}) == 300
    assert common_step({"a": {100}, "b": set()}) is None
    assert common_step({}) is None


def test_only_checkpoints_below_the_shared_step_and_off_the_eval_steps_are_pruned():
    saved = {"a": {100, 200, 300, 400}, "b": {100, 200, 300}, "c": {100, 200, 300, 400, 500}}
    assert prunable(saved, {200, 1000}) == {"a": {100}, "b": {100}, "c": {100}}
    assert prunable({"a": {100, 200}, "b": set()}, set()) == {}  # a run not started yet: nothing is safe


def test_saved_steps_counts_only_complete_checkpoints(tmp_path):
    root = tmp_path / "checkpoints"
    for step, complete in ((100, True), (200, True), (300, False)):
        d = root / f"step_{step:06d}"
        d.mkdir(parents=True)
        if complete:
            (d / "checksums.json").write_text("{}")
    (root / ".step_000400.abc.tmp").mkdir()  # a save cut short
    (root / "latest").write_text("step_000200\n")
    assert saved_steps(tmp_path) == {100, 200}
    assert saved_steps(tmp_path / "none") == set()


def _arm(step_means: dict[int, list[float]]) -> dict:
    return {s: {"miou": _stats(v), "rayiou": _stats(v)} for s, v in step_means.items()}


def test_a_rise_beyond_the_seeds_spread_is_not_converged():
    rising = convergence(_arm({300: [10.0, 11.0, 12.0], 1000: [14.0, 14.5, 15.0]}))
    assert (rising["from_step"], rising["to_step"]) == (300, 1000)
    assert rising["miou"]["rise"] == 3.5 and rising["miou"]["spread"] == 1.0
    assert rising["converged"] is False
    flat = convergence(_arm({300: [10.0], 1000: [14.0, 14.5, 15.0], 2000: [14.2, 15.5, 14.8]}))
    assert flat["from_step"] == 1000 and flat["converged"] is True  # the last two steps only
    assert convergence(_arm({300: [10.0, 11.0]})) == {}
    text = steps_table({"labels": _arm({300: [10.0, 11.0, 12.0], 1000: [14.0, 14.5, 15.0]})}, {"labels": rising})
    assert "labels: not converged from step 300 to 1000" in text


def test_checkpoint_every_is_the_gcd_or_must_divide_the_eval_steps():
    assert checkpoint_every([300, 1000], 2000, None) == 100
    assert checkpoint_every([300, 1000], 2000, 100) == 100
    with pytest.raises(StudyError, match="not multiples of --ckpt-every 200"):
        checkpoint_every([300, 1000], 2000, 200)
    with pytest.raises(StudyError, match="not within 1..--steps 500"):
        checkpoint_every([300, 1000], 500, None)


def test_a_run_trained_with_other_settings_is_refused(tmp_path):
    settings = {"preset": "synth-cpu", "data": "W", "steps": 300, "set": ["train.seed=0", "train.device=cuda"]}
    run = tmp_path / "truth-s0"
    check_settings(run, settings)  # a new folder
    run.mkdir()
    (run / "settings.json").write_text(json.dumps(settings))
    check_settings(run, settings)  # the same settings: resumed
    other = {**settings, "set": ["train.seed=0", "train.device=cpu"]}
    with pytest.raises(StudyError, match="trained with other settings"):
        check_settings(run, other)
    bare = tmp_path / "labels-s0"
    bare.mkdir()
    (bare / "train").mkdir()
    with pytest.raises(StudyError, match="without settings.json"):
        check_settings(bare, settings)


def test_occkit_is_called_through_this_python_where_no_executable_sits_beside_it(tmp_path, monkeypatch):
    python = tmp_path / "bin" / "python3"
    python.parent.mkdir()
    python.write_text("")
    monkeypatch.setattr(sys, "executable", str(python))
    assert _occkit() == [str(python), "-m", "occkit"]
    (python.parent / "occkit").write_text("")
    assert _occkit() == [str(python.parent / "occkit")]


def _saved(train_dir: Path, steps: list[int]) -> None:
    for n in steps:
        d = train_dir / "checkpoints" / f"step_{n:06d}"
        d.mkdir(parents=True)
        (d / "checksums.json").write_text("{}")


def test_runs_cut_short_are_all_scored_at_the_last_step_they_share(tmp_path):
    runs = [Run(a, 0, tmp_path / f"{a}-s0", tmp_path, [], {}) for a in ("truth", "labels")]
    _saved(runs[0].train_dir, [100, 200, 300])
    _saved(runs[1].train_dir, [100, 200, 250])
    clock = Clock(deadline_s=60.0)
    clock.stopped.set()
    step, line = scored_step(Plan(runs, 1000, [300], clock, logs=False))
    assert step == 200
    assert "not every run reached step 1000 by the deadline (60 s, runs stopped at" in line
    assert "truth-s0 300, labels-s0 250" in line
    _saved(runs[0].train_dir, [1000])
    _saved(runs[1].train_dir, [1000])
    assert scored_step(Plan(runs, 1000, [300], clock, logs=False)) == (1000, None)
    late = Run("truth", 1, tmp_path / "truth-s1", tmp_path, [], {})  # never started
    with pytest.raises(StudyError, match="no step was saved by every run"):
        scored_step(Plan([*runs, late], 1000, [], Clock(), logs=False))
