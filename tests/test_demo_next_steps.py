"""The ``next:`` lines ``occkit demo`` prints run as printed: each parses with occkit's own parser, the
cheap ones run on a tiny demo's output, and one runs pasted into a shell, as a user would."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from occkit.cli import COMMANDS, build_parser, main

TINY = ["--scenes", "2", "--frames", "1", "--image-size", "64", "176", "--workers", "1", "--steps", "1"]
TINY += ["--pictures", "1"]


def printed_commands(said: str) -> list[str]:
    """The command lines under the demo's last ``next:`` (the ``docs:`` line is not one)."""
    lines = said.splitlines()
    start = max(i for i, line in enumerate(lines) if line.strip() == "next:")
    return [line.strip() for line in lines[start + 1 :] if line.startswith("  ") and "docs:" not in line]


def parse(argv: list[str]) -> None:
    build_parser(tuple(c for c in COMMANDS if c[0] == argv[0])).parse_args(argv)


def test_next_steps_name_the_occkit_that_runs(tmp_path, monkeypatch):
    """Not a bare ``occkit`` the shell may not find: the program as typed unless ``occkit`` on PATH is it."""
    from occkit.commands.demo import next_steps, occkit_program

    venv_occkit = tmp_path / "venv" / "bin" / "occkit"
    venv_occkit.parent.mkdir(parents=True)
    venv_occkit.write_text("#!/bin/sh\n")
    venv_occkit.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [str(venv_occkit), "demo"])
    monkeypatch.setenv("PATH", "/nonexistent")
    assert occkit_program() == str(venv_occkit)
    monkeypatch.setenv("PATH", str(venv_occkit.parent))  # the environment activated
    assert occkit_program() == "occkit"
    monkeypatch.setattr(sys, "argv", ["/somewhere/occkit/__main__.py", "demo"])  # python -m occkit
    assert occkit_program() == f"{shlex.quote(sys.executable)} -m occkit"
    lines = next_steps(tmp_path / "demo dir", tmp_path / "ck", program="PROG")
    cmds = [shlex.split(line, comments=True) for line in lines[1:] if "docs:" not in line]
    assert [c[:2] for c in cmds] == [["PROG", c[1]] for c in cmds]
    assert [c[1] for c in cmds] == ["show", "eval", "predict", "view", "train"]
    for argv in cmds:
        parse(argv[1:])
    assert "--out" in cmds[0] and str(tmp_path / "demo dir" / "data") in cmds[0]  # quoted, one argument


def test_the_demos_next_lines_run_as_printed(tmp_path, capsys, monkeypatch, one_torch_thread):
    occkit = Path(sys.executable).with_name("occkit")
    if shutil.which("bash") is None:
        pytest.skip("no bash to paste the lines into")
    if not occkit.is_file():
        pytest.skip(f"{occkit}: no occkit script beside this Python (occkit not installed in its environment)")
    out = tmp_path / "demo"
    monkeypatch.setattr(sys, "argv", [str(occkit), "demo", "--out", str(out), *TINY])
    monkeypatch.setenv("PATH", os.defpath)  # the environment not activated: the path is printed, not `occkit`
    assert main(sys.argv[1:]) == 0
    captured = capsys.readouterr()
    said = captured.out
    # the shipped backbone loaded once (training), whole, and said so; the evaluation reads the checkpoint alone
    assert captured.err.count("model.backbone_weights: loaded 120 of the resnet18 backbone's 120 tensors from") == 1
    cmds = printed_commands(said)
    assert cmds and all(c.startswith(shlex.quote(str(occkit)) + " ") for c in cmds), cmds
    report = (out / "report.md").read_text()
    assert all(c in report for c in cmds)  # the report's Next section holds the same lines
    ran = []
    for line in cmds:
        argv = shlex.split(line, comments=True)[1:]
        parse(argv)
        if argv[0] in ("show", "eval", "predict"):  # the cheap ones, run here on the tiny demo
            assert main(argv) == 0, line
            ran.append(argv[0])
    assert ran == ["show", "eval", "predict"]
    assert (out / "frame.png").is_file() and len(list((out / "predicted").glob("*.npz"))) >= 1
    assert "miou" in capsys.readouterr().out.lower()
    # pasted into a shell, comment and all, from another folder: the eval line again
    line = next(c for c in cmds if " eval " in c)
    env = {**os.environ, "PATH": os.defpath, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "miou" in done.stdout.lower() and "frames: 1" in done.stdout
    # before and after on the same frames, each with its picture
    rec = json.loads((out / "report.json").read_text())
    assert rec["start"] == "backbone" and rec["start_scores"]["frames"] == rec["scores"]["frames"]
    assert [Path(p).name.rsplit("_", 1)[1] for p in rec["pictures"][0]] == ["before.png", "after.png"]
    start = json.loads((out / "predictions_start" / "provenance.json").read_text())
    assert "before step 1" in start["made_by"] and "checkpoint" not in start  # not the trained checkpoint's
