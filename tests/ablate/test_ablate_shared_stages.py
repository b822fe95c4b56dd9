"""Two ablations side by side on one stage cache: a stage the other runner is building is waited
for, never refused (the second runner used to fail the stage, and its arms with it), and a stage
whose upstream stage failed is never started (it used to start in the same pass, on a missing input)."""

from __future__ import annotations

import os
import threading

from occkit.ablate.runner import Job, JobError, Wait, run_jobs


def test_a_job_whose_dependency_fails_at_once_is_not_started():
    started = []

    def fails():
        raise JobError("stage pretrain_world: locked")
        yield  # a generator

    def after():
        started.append("backbone")
        return
        yield

    jobs = [Job("stage:pre", "stage pre", fails), Job("stage:bb", "stage bb", after, ["stage:pre"])]
    results = run_jobs(jobs, lanes=2, env=dict(os.environ), poll_seconds=0.01)
    assert results["stage:pre"] == "stage pretrain_world: locked"
    assert results["stage:bb"] == "stage bb: not run: stage:pre failed" and started == []


def test_a_wait_holds_the_job_and_its_dependents_until_done():
    flag = threading.Event()
    order = []

    def waits():
        order.append("waiting")
        rc = yield Wait(flag.is_set, "stage world")
        order.append(f"done {rc}")

    def after():
        order.append("arm")
        return
        yield

    threading.Timer(0.2, flag.set).start()
    jobs = [Job("stage:world", "stage world", waits), Job("run:a_s0", "arm a", after, ["stage:world"])]
    results = run_jobs(jobs, lanes=1, env=dict(os.environ), poll_seconds=0.01)
    assert results == {"stage:world": None, "run:a_s0": None}
    assert order == ["waiting", "done 0", "arm"]
