"""``occkit train --minutes M`` (issue 73, item 8): the time rules, and the schedule is fitted to it
(a 30-minute run showed a 2000-step bar with a 2.5-hour ETA and stopped at step 799 with the
learning rate still near its peak). Without --minutes nothing changes (the first losses stay)."""

from __future__ import annotations

import argparse

from occkit.commands.train import UNLIMITED_STEPS, budget_overrides
from occkit.experiment import load_experiment


def args(**kw) -> argparse.Namespace:
    return argparse.Namespace(**{"set": None, "max_steps": None, "minutes": None, **kw})


def test_minutes_alone_rule_the_schedule_and_lift_the_step_limit(capsys):
    over, line = budget_overrides(args(minutes=30.0))
    cfg = load_experiment("synth-cpu", over)
    assert cfg.optim.schedule == "time" and cfg.train.max_minutes == 30.0 and cfg.optim.max_steps == UNLIMITED_STEPS
    assert line.startswith("occkit train: --minutes 30 rules: the learning rate's cosine follows the time spent")
    assert line.endswith("no step limit")


def test_minutes_with_max_steps_keep_the_steps_as_a_cap():
    over, line = budget_overrides(args(minutes=30.0, max_steps=500))
    cfg = load_experiment("synth-cpu", over)
    assert cfg.optim.schedule == "time" and cfg.optim.max_steps == 500
    assert line.endswith("it stops at step 500 if that comes first")


def test_without_minutes_or_with_the_user_s_schedule_nothing_changes():
    preset = load_experiment("synth-cpu")
    for a in (args(), args(max_steps=7), args(minutes=0.0), args(minutes=5.0, set=["optim.schedule=steps"])):
        over, line = budget_overrides(a)
        cfg = load_experiment("synth-cpu", over)
        assert cfg.optim.schedule == preset.optim.schedule == "steps" and line == ""
    assert load_experiment("synth-cpu", budget_overrides(args(max_steps=7))[0]).optim.max_steps == 7
