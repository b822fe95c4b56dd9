"""``occkit demo`` stopped (Ctrl-C) and started again: one line says what was kept; the world's
finished scenes and training's checkpoints are reused, and the run ends where an unstopped one would."""

from __future__ import annotations

import json
import os

import pytest

from occkit.cli import main

TINY = [
    "--scenes",
    "5",
    "--frames",
    "1",
    "--image-size",
    "64",
    "176",
    "--workers",
    "1",
    "--steps",
    "3",
    "--pictures",
    "1",
]


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("OCCKIT_SLOW_TESTS"), reason="three tiny demos (about half a minute): set OCCKIT_SLOW_TESTS=1"
)
def test_demo_stopped_and_started_again_resumes(tmp_path, capsys, monkeypatch, one_torch_thread):
    import occkit.commands.demo as demo
    import occkit.engine.train as engine_train
    import occkit.worlds.driving.writer as writer

    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), *TINY]
    real_worker, real_save = writer._worker, engine_train.save_checkpoint
    generated: list[int] = []

    def worker_stopping_at_scene_2(job):
        if job[2] == 2:
            raise KeyboardInterrupt
        generated.append(job[2])
        return real_worker(job)

    monkeypatch.setattr(writer, "_worker", worker_stopping_at_scene_2)
    assert main(argv) == 130
    said = capsys.readouterr().out
    assert said.strip().splitlines()[-1].startswith("occkit demo: stopped; kept the world's finished scenes")
    assert generated == [0, 1] and not (out / "data" / "annotations.json").exists()

    # again, stopped in training right after the checkpoint of step 2
    def save_then_stop(run_dir, step, *a, **k):
        path = real_save(run_dir, step, *a, **k)
        if step == 2:
            raise KeyboardInterrupt
        return path

    generated.clear()
    monkeypatch.setattr(writer, "_worker", lambda job: (generated.append(job[2]), real_worker(job))[1])
    monkeypatch.setattr(engine_train, "save_checkpoint", save_then_stop)
    monkeypatch.setattr(demo, "CKPT_EVERY", 1)
    assert main(argv) == 130
    said = capsys.readouterr().out
    assert "2 of 5 scenes already written" in said and generated == [2, 3, 4]
    assert "scenes, about" in said  # the time left
    assert "kept the world in" in said.strip().splitlines()[-1] and "checkpoints" in said.strip().splitlines()[-1]

    # a third time, undisturbed: the world is reused, training resumes at step 2 and ends at 3
    monkeypatch.setattr(engine_train, "save_checkpoint", real_save)
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "reusing the synthetic world" in captured.out and "at step 2" in captured.err
    report = json.loads((out / "report.json").read_text())
    assert report["steps"] == 3 and (out / "predictions").is_dir()
    # other options retrain from scratch
    assert json.loads((out / "demo.json").read_text())["steps"] == 3


def test_demo_world_equals_generate_dataset(tmp_path):
    """The demo's resumable generation writes the annotations ``occkit synth`` writes."""
    from occkit.commands.demo import generate_world
    from occkit.worlds.driving import SynthConfig, generate_dataset

    cfg = SynthConfig(scenes=2, frames=1, seed=3, image_size=(32, 88), workers=1)
    generate_dataset(tmp_path / "a", cfg)
    generate_world(tmp_path / "b", cfg)
    a = json.loads((tmp_path / "a" / "annotations.json").read_text())
    b = json.loads((tmp_path / "b" / "annotations.json").read_text())
    assert a == b
