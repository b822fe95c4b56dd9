"""``occkit ablate --device cuda --lanes N`` on one machine with several GPUs: lane slot i takes GPU
i (round-robin over ``CUDA_VISIBLE_DEVICES`` or every GPU), a job keeps its slot from its first
command to its last, and two jobs running at once never share a GPU while there are enough.
Checked on the CPU: the children print the environment they were given."""

from __future__ import annotations

import json
import sys

import occkit.ablate.runner as runner
from occkit.ablate.runner import Command, Job, LocalLauncher, lane_env, lane_gpus, run_jobs


def test_lane_gpus_come_from_cuda_visible_devices_or_the_device_count():
    count = lambda: 4  # noqa: E731
    assert lane_gpus({}, "cuda", 2, count) == ["0", "1", "2", "3"]
    assert lane_gpus({"CUDA_VISIBLE_DEVICES": "3, 5"}, "cuda", 2, count) == ["3", "5"]
    assert lane_gpus({"CUDA_VISIBLE_DEVICES": "GPU-aa,GPU-bb"}, "cuda", 3, count) == ["GPU-aa", "GPU-bb"]
    # the lanes share what they see: one lane, one GPU, cuda:N, the CPU
    assert lane_gpus({}, "cuda", 1, count) is None
    assert lane_gpus({"CUDA_VISIBLE_DEVICES": "7"}, "cuda", 4, count) is None
    assert lane_gpus({"CUDA_VISIBLE_DEVICES": ""}, "cuda", 4, count) is None
    assert lane_gpus({}, "cuda", 4, lambda: 0) is None
    assert lane_gpus({}, "cuda:1", 4, count) is None and lane_gpus({}, "cpu", 4, count) is None


def test_lane_env_takes_the_gpus_in_turn():
    env = {"OMP_NUM_THREADS": "2", "CUDA_VISIBLE_DEVICES": "3,5"}
    assert [lane_env(env, i, ["3", "5"])["CUDA_VISIBLE_DEVICES"] for i in range(5)] == ["3", "5", "3", "5", "3"]
    assert lane_env(env, 1, ["3", "5"])["OMP_NUM_THREADS"] == "2" and env["CUDA_VISIBLE_DEVICES"] == "3,5"  # a copy
    assert lane_env(env, 3, None) is env


def test_each_lane_runs_on_its_own_gpu(tmp_path, monkeypatch):
    # the children print their GPU and when they ran, in place of occkit
    child = (
        "import json, os, sys, time; t = time.time(); time.sleep(float(sys.argv[1])); "
        "print(json.dumps([os.environ.get('CUDA_VISIBLE_DEVICES'), t, time.time()]))"
    )
    monkeypatch.setattr(runner, "occkit_argv", lambda argv: [sys.executable, "-c", child, *argv])

    def job(name, sleeps):
        def make():
            for s in sleeps:  # a job's commands (train, then scorers) stay in its lane
                rc = yield Command([str(s)], tmp_path / f"{name}.log")
                assert rc == 0

        return Job(name, name, make)

    env = {"PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": "3,5,6"}
    gpus = lane_gpus(env, "cuda", 3)
    assert gpus == ["3", "5", "6"]
    jobs = [job("a", [0.3, 0.3]), job("b", [1.2]), job("c", [0.2, 0.2]), job("d", [0.3]), job("e", [0.2])]
    errors = run_jobs(jobs, lanes=3, env=env, poll_seconds=0.01, launcher=LocalLauncher(env, gpus))
    assert errors == dict.fromkeys("abcde")
    ran = {}
    for j in "abcde":
        lines = [json.loads(x) for x in (tmp_path / f"{j}.log").read_text().splitlines() if x.startswith("[")]
        assert len({gpu for gpu, _, _ in lines}) == 1, f"job {j} changed GPU between its commands: {lines}"
        ran[j] = (lines[0][0], lines[0][1], lines[-1][2])
    assert [ran[j][0] for j in "abc"] == ["3", "5", "6"]  # the first three start at once, on slots 0, 1, 2
    for x in ran:
        for y in ran:
            if x < y and ran[x][1] < ran[y][2] and ran[y][1] < ran[x][2]:  # at the same time: never the same GPU
                assert ran[x][0] != ran[y][0], (x, y, ran)
