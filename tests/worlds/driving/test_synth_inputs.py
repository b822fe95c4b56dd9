"""Bad inputs raise clear errors; the command line; scene content (all classes, names)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from occkit.cli import main
from occkit.geometry.grid import occ3d_grid
from occkit.labels import OCC3D_CLASSES
from occkit.worlds.driving import (
    SynthConfig,
    build_scene,
    generate_dataset,
    render_camera,
    scene_state_at,
    semantic_occupancy,
)
from occkit.worlds.driving.primitives import Primitives


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(scenes=0), "scenes"),
        (dict(frames=0), "frames"),
        (dict(seed=-1), "seed"),
        (dict(image_size=(4, 100)), "image_size"),
        (dict(image_size=(100,)), "image_size"),
        (dict(val_fraction=1.0), "val_fraction"),
        (dict(image_format="bmp"), "image_format"),
        (dict(workers=0), "workers"),
        (dict(frame_rate_hz=0.0), "frame_rate_hz"),
        (dict(scenes=2.5), "scenes"),
    ],
)
def test_bad_config_raises_naming_the_field(kwargs, word):
    with pytest.raises(ValueError, match=word):
        SynthConfig(**kwargs)


def test_refuses_to_overwrite_a_dataset(synth_root: Path):
    with pytest.raises(ValueError, match="annotations.json"):
        generate_dataset(synth_root, SynthConfig(scenes=1, frames=1))
    with pytest.raises(TypeError, match="SynthConfig"):
        generate_dataset(synth_root / "x", {"scenes": 1})  # type: ignore[arg-type]


def test_bad_tensors_raise():
    scene = build_scene(SynthConfig(scenes=1, frames=1, image_size=(32, 88)), 0)
    state = scene_state_at(scene, 0)
    with pytest.raises(ValueError, match="K"):
        render_camera(state, torch.eye(4), torch.eye(4), 32, 88)
    with pytest.raises(ValueError, match="T_global_from_grid"):
        semantic_occupancy(state, occ3d_grid(), torch.eye(3))
    with pytest.raises(IndexError, match="frame_index"):
        scene_state_at(scene, 5)
    bad = Primitives(**{**state.prims.__dict__, "half": -state.prims.half})
    with pytest.raises(ValueError, match="half"):
        bad.validate()


def test_cli_errors_and_help(tmp_path: Path, capsys):
    # numbers out of range are refused by the parser itself (one line, exit status 2), before any work
    for argv, words in (
        (["--scenes", "0"], "--scenes: expected an integer >= 1"),
        (["--val-fraction", "1.5"], "--val-fraction"),
    ):
        with pytest.raises(SystemExit) as e:
            main(["synth", "--out", str(tmp_path / "d"), *argv])
        assert e.value.code == 2 and words in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "d"), "--image-size", "4", "4"]) == 1  # SynthConfig's own check
    assert "image_size" in capsys.readouterr().err and not (tmp_path / "d").exists()
    with pytest.raises(SystemExit):
        main(["synth", "--out", str(tmp_path / "d"), "--image-format", "gif"])


def test_cli_writes_a_dataset(tmp_path: Path, capsys):
    out = tmp_path / "cli"
    rc = main(
        [
            "synth",
            "--out",
            str(out),
            "--scenes",
            "1",
            "--frames",
            "1",
            "--image-size",
            "32",
            "88",
            "--image-format",
            "png",
            "--seed",
            "4",
        ]
    )
    assert rc == 0
    assert (out / "annotations.json").is_file()
    assert len(list((out / "samples").rglob("*.png"))) == 6
    assert "frames/s" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["occ3d", "semantickitti"])
def test_cli_stopped_and_started_again_resumes_the_scenes(tmp_path: Path, capsys, monkeypatch, fmt):
    """Ctrl-C keeps the finished scenes (one line says so; no dataset appears at --out); the same
    command again generates only the others and writes what an unstopped run writes; other
    options start again. (The run of other options over a stopped run is the unstopped run the
    resumed one is compared with.)"""
    import hashlib

    import occkit.worlds.driving.kitti_export as kitti
    import occkit.worlds.driving.writer as writer

    mod, name = (kitti, "_kitti_worker") if fmt == "semantickitti" else (writer, "_worker")
    real = getattr(mod, name)
    generated: list[int] = []

    def stopping_at(n):
        def worker(job):
            if job[2] == n:
                raise KeyboardInterrupt
            generated.append(job[2])
            return real(job)

        return worker

    argv = ["synth", "--scenes", "3", "--frames", "1", "--image-size", "32", "88", "--format", fmt]
    out = tmp_path / "w"
    monkeypatch.setattr(mod, name, stopping_at(1))
    assert main([*argv, "--seed", "4", "--out", str(out)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("occkit synth: stopped; 1 of 3 scenes kept in") and "resumes" in err[-1]
    assert not out.exists() and (tmp_path / ".w.partial").is_dir() and generated == [0]
    generated.clear()
    monkeypatch.setattr(mod, name, stopping_at(-1))
    assert main([*argv, "--seed", "4", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "1 of 3 scenes already written" in said and generated == [1, 2] and "about" in said
    assert not (tmp_path / ".w.partial").exists() and not (out / ".scenes").exists()
    # a stopped run of other options (seed 5) is not continued: the run of seed 4 over it generates
    # every scene, and what it writes is what an unstopped run writes
    generated.clear()
    monkeypatch.setattr(mod, name, stopping_at(1))
    assert main([*argv, "--seed", "5", "--out", str(tmp_path / "x")]) == 130
    assert generated == [0] and (tmp_path / ".x.partial").is_dir()
    monkeypatch.setattr(mod, name, stopping_at(-1))
    generated.clear()
    assert main([*argv, "--seed", "4", "--out", str(tmp_path / "x")]) == 0
    assert generated == [0, 1, 2] and not (tmp_path / ".x.partial").exists()
    assert "already written" not in capsys.readouterr().out

    def digest(root: Path) -> dict[str, str]:
        return {
            str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(root.rglob("*"))
            if f.is_file() and f.name != ".occkit-output.json"
        }

    # the same bytes as a run never stopped
    assert digest(out) == digest(tmp_path / "x")


def test_ten_scenes_hold_every_class_and_fine_names():
    cfg = SynthConfig(scenes=10, frames=3)
    classes: Counter[int] = Counter()
    names: set[str] = set()
    for i in range(10):
        s = build_scene(cfg, i)
        classes.update(o.spec.cls for o in s.objects)
        names.update(o.spec.name for o in s.objects)
        g = s.ground.cls
        classes.update(int(c) for c in set(g[::25, ::25].ravel().tolist()))
        assert s.description.split()[0] in ("a", "an") and " with " in s.description
        for o in s.objects[:50]:
            assert o.instance >= 1 and o.spec.colour and o.spec.size()[0] > 0
    assert set(range(17)) <= set(classes), f"missing {[OCC3D_CLASSES[c] for c in range(17) if c not in classes]}"
    for n in ("sedan", "fire hydrant", "oak tree", "traffic light", "bench", "delivery van", "traffic cone"):
        assert n in names
