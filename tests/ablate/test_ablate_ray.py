"""``occkit ablate --launcher ray`` on a local Ray cluster of 2 CPUs (started once for the module):
the same tiny ablation gives the same results.json figures as local lanes, its runner (another
process) stopped mid-arm (SIGTERM, its Ray task cancelled) and resumed under Ray; a cluster
that cannot run a task, or a folder a node does not share, is refused in one line; without
ray installed, ``--launcher ray`` says how to install it. Skipped where ray is not importable
(but for the last)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ablate_helpers import in_process, tiny_spec, write

from occkit.ablate.runner import check_folder
from occkit.cli import main

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install -e '.[ray]')"
)

SCORING = "scoring:\n  - {scorer: occ3d, masks: [camera], arms: [b]}\n"


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of 2 CPUs for the module; its address (for a runner in another process)."""
    import ray

    assert not ray.is_initialized()
    ctx = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield ctx.address_info["address"]
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def two_ways(tmp_path_factory, cluster):
    """The tiny spec (2 arms x 1 seed, arm b scored) run with 2 local lanes (their commands in this
    process) and with --launcher ray: a runner in another process, on the module's cluster through
    RAY_ADDRESS, with one run in flight (--lanes 1), stopped (SIGTERM) while arm a trains; then the
    command again here with every run in flight (Ray's default lanes), which resumes a beside b.
    (root, local out, ray out, the stop: the stopped runner's exit code and output, a's newest
    checkpoint then, its lock left or not, the processes of its task left 30 s after)."""
    root = tmp_path_factory.mktemp("ablate_ray")
    spec = write(root, "spec.yaml", tiny_spec(scoring=SCORING, seeds="[0]"))
    local, on_ray = root / "abl" / "local", root / "abl" / "ray"
    with in_process():  # the local lanes' commands run in this process: the figures of subprocesses
        assert main(["ablate", str(spec), "--out", str(local), "--lanes", "2"]) == 0
    args = ["ablate", str(spec), "--out", str(on_ray), "--launcher", "ray"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "occkit.cli", *args, "--lanes", "1"],  # b not begun: one task stopped
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "RAY_ADDRESS": cluster},
    )
    run = on_ray / "runs" / "a_s0"
    latest = run / "checkpoints" / "latest"
    # generous: the loop ends at the first checkpoint, which on a loaded 2-core machine (the suite's
    # two workers beside other jobs) took more than 180 s once
    deadline = time.monotonic() + 600
    while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)  # mid-training: the task is cancelled, the lock released
    stop = {"text": proc.communicate(timeout=120)[0].decode(), "rc": proc.returncode}
    stop["latest"] = latest.read_text().strip() if latest.exists() else None
    stop["locked"] = (run / "ablate.lock").exists()
    deadline = time.monotonic() + 30
    while _processes_naming(str(run)) and time.monotonic() < deadline:  # the task's occkit train ends with its worker
        time.sleep(0.2)
    stop["left"] = _processes_naming(str(run))
    with contextlib.redirect_stdout(io.StringIO()) as said:
        rc = main(args)  # this process's cluster (ray is initialised here): a resumed, b run
    stop["resumed"] = said.getvalue()
    print(stop["resumed"])
    assert rc == 0, stop["resumed"][-2000:]
    yield root, local, on_ray, stop
    shutil.rmtree(root, ignore_errors=True)


def _processes_naming(text: str) -> list[int]:
    """Process ids whose command line holds ``text`` (this one aside)."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) != os.getpid():
            try:
                if text in (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


def _figures(results: dict) -> dict:
    """What the launcher must not change: each arm x seed's metric, curve, convergence and scores."""
    keys = ("status", "step", "metric", "curve", "last_two", "delta", "converged", "scores")
    return {
        arm: {seed: {k: s[k] for k in keys} for seed, s in a["seeds"].items()} for arm, a in results["arms"].items()
    }


@needs_ray
def test_a_ray_ablation_gives_the_figures_of_local_lanes(two_ways):
    root, local, on_ray, stop = two_ways
    a, b = (json.loads((d / "results.json").read_text()) for d in (local, on_ray))
    assert _figures(b) == _figures(a)
    assert b["arms"]["b"]["seeds"]["0"]["scores"]["occ3d_camera.miou"] is not None  # the scorer ran, as a task too
    assert "--launcher ray" in b["command"] and "--launcher" not in a["command"]
    said = stop["text"] + stop["resumed"]
    assert said.count("arm a seed 0: training") == 2 and said.count("arm b seed 0: training") == 1
    for arm in ("a", "b"):
        d = on_ray / "runs" / f"{arm}_s0"
        assert not (d / "ablate.lock").exists() and json.loads((d / "ablate.json").read_text())["error"] is None
        starts = said.count(f"arm {arm} seed 0: training")
        assert (d / "train.log").read_text().count("# occkit ablate ") == starts  # the header, written by the task
    assert (on_ray / "runs" / "b_s0" / "score_occ3d.log").is_file()
    assert not list(on_ray.glob(".occkit-ray-*")) and not list(
        (root / "abl" / "stages").glob(".occkit-ray-*")
    )  # checks cleaned


@needs_ray
def test_a_stopped_ray_runner_resumes_to_the_same_figures(two_ways):
    _, local, on_ray, stop = two_ways
    text = stop["text"]
    assert stop["latest"] is not None, text[-2000:]
    assert stop["rc"] == 130 and "run the same command again to resume" in text, text[-2000:]
    assert int(stop["latest"].split("_")[1]) < 2, "the stop came too late to interrupt training"
    assert not stop["locked"] and not stop["left"]  # the lock released, the task's occkit train ended
    assert "resuming from" in (on_ray / "runs" / "a_s0" / "train.log").read_text()
    again = json.loads((on_ray / "results.json").read_text())
    assert _figures(again)["a"] == _figures(json.loads((local / "results.json").read_text()))["a"]


@needs_ray
def test_a_cluster_without_the_resources_of_a_task_is_refused(two_ways, capsys):
    root, _, _, _ = two_ways
    spec = root / "spec.yaml"
    assert main(["ablate", str(spec), "--out", str(root / "abl" / "big"), "--launcher", "ray", "--threads", "3"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no node of the cluster has the 3 CPU(s) a run asks for" in err[0] and "2 CPU" in err[0]
    assert main(["ablate", str(spec), "--out", str(root / "abl" / "big"), "--launcher", "ray", "--device", "cuda"]) == 1
    assert "no node of the cluster has the 1 CPU(s) and 1 GPU" in capsys.readouterr().err
    assert (
        main(["ablate", str(spec), "--out", str(root / "abl" / "big"), "--launcher", "ray", "--device", "cuda:1"]) == 1
    )
    assert "use --device cuda" in capsys.readouterr().err
    assert not (root / "abl" / "big" / "runs").exists()  # refused before any work


def test_a_folder_check_tells_the_runners_folder_from_another(tmp_path):
    (tmp_path / ".occkit-ray-t0k3n").write_text("t0k3n")
    assert check_folder(str(tmp_path), "t0k3n") is None
    assert not [p for p in tmp_path.iterdir() if p.name != ".occkit-ray-t0k3n"]  # the probe removed
    assert check_folder(str(tmp_path / "missing"), "t0k3n") == "no such folder"
    other = tmp_path / "other"  # a folder of the same name on another file system holds no mark
    other.mkdir()
    assert "not the runner's folder" in check_folder(str(other), "t0k3n")


def test_without_ray_the_launcher_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, find_spec says None
    spec = write(tmp_path, "s.yaml", tiny_spec(seeds="[0]"))
    assert main(["ablate", str(spec), "--out", str(tmp_path / "abl"), "--launcher", "ray"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ray is not installed; pip install -e '.[ray]'" in err[0]


def test_a_ray_address_where_nothing_answers_is_refused_at_once():
    import socket

    from occkit.ablate.runner import _reachable

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        _reachable(f"127.0.0.1:{port}")  # something answers: Ray's to judge
    with pytest.raises(ValueError, match=f"RAY_ADDRESS=127.0.0.1:{port}: no Ray cluster answers there"):
        _reachable(f"127.0.0.1:{port}")  # closed now
    _reachable("auto")
    _reachable("ray://head:10001")  # Ray client addresses: Ray's to check


@needs_ray
def test_a_node_without_the_working_folder_or_with_another_occkit_is_refused(cluster, tmp_path, monkeypatch):
    """The pre-flight check, before any work: the runner's working folder (the tasks start there) and
    the same occkit (version and source digest) on every node; the node is named in one line."""
    from occkit.ablate import runner

    launcher = runner.RayLauncher({}, num_cpus=1)
    try:
        launcher.check([tmp_path / "out"])  # this one node: the same folders, the same occkit
        with pytest.raises(ValueError, match=r"node \S+ has no working folder \S+gone \(no such folder\)"):
            launcher.check([tmp_path / "out"], cwd=str(tmp_path / "gone"))
        mine = runner.occkit_identity()
        monkeypatch.setattr(runner, "occkit_identity", lambda: "0.0.0+another")  # the runner's, not the node's
        with pytest.raises(ValueError, match=rf"runs occkit {re.escape(mine)}, the runner 0\.0\.0\+another"):
            launcher.check([tmp_path / "out"])
    finally:
        launcher.close()
    assert not [p for p in (tmp_path / "out").iterdir()]  # the marks removed


def test_which_commands_ask_for_a_gpu():
    from occkit.ablate.runner import asks_for_gpu

    assert asks_for_gpu(["train", "synth-abl", "--set", "train.threads=1", "train.device=cuda"])
    assert asks_for_gpu(["priors", "run", "--device", "cuda:1"]) and asks_for_gpu(["predict", "--device=cuda"])
    assert not asks_for_gpu(["synth", "--out", "w", "--workers", "2"])  # no device: CPU only
    assert not asks_for_gpu(["eval", "--device", "cpu"])
    assert not asks_for_gpu(["train", "x", "--set", "train.device=cpu"])


@needs_ray
def test_cpu_only_commands_ask_for_no_gpu_on_cuda(cluster, tmp_path):
    """With --device cuda every task used to ask for a GPU: on this cluster without one, a CPU-only
    command now runs, while one on cuda waits for a GPU (and is cancelled)."""
    from occkit.ablate.runner import Command, RayLauncher

    launcher = RayLauncher({}, num_cpus=1, num_gpus=1)
    try:
        on_gpu = launcher.start(Command(["--help", "--device", "cuda"], tmp_path / "gpu.log"), "# gpu\n", 0)
        on_cpu = launcher.start(Command(["--help"], tmp_path / "cpu.log"), "# cpu\n", 1)
        t0 = time.monotonic()
        while (rc := launcher.poll(on_cpu)) is None and time.monotonic() - t0 < 120:
            time.sleep(0.5)
        assert rc == 0 and "usage: occkit" in (tmp_path / "cpu.log").read_text()
        assert launcher.poll(on_gpu) is None  # no GPU here: it waits
        launcher.stop([on_gpu])
    finally:
        launcher.close()
