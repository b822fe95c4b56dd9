"""Hardening, fourth round (issue 73): a section the method does not read is refused, no run clobbers
another, and every value is checked where it enters."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from occkit.cli import main
from occkit.config import ConfigError
from occkit.experiment import load_experiment

sys.path.insert(0, str(Path(__file__).parent / "ablate"))
from ablate_helpers import tiny_spec, write  # noqa: E402


# ------------------------------------------------------------ a section the method does not read
def test_a_section_the_method_does_not_read_is_refused_on_the_command_line(capsys, tmp_path):
    with pytest.raises(ConfigError, match="--set radocc.depth_tau: section radocc is not read by method supervised"):
        load_experiment("synth-cpu", ["radocc.depth_tau=1"])
    load_experiment("synth-cpu", ["method=radocc", "radocc.depth_tau=1"])  # the method that reads it: fine
    assert (
        main(
            ["train", "synth-cpu", "--data", str(tmp_path), "--out", str(tmp_path / "run")]
            + ["--set", "radocc.depth_tau=1"]
        )
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "radocc.depth_tau" in err
    assert "which reads model, supervised, data, optim, train" in err


def test_a_section_the_method_does_not_read_is_refused_in_an_ablation_arm(tmp_path, capsys):
    spec = write(tmp_path, "spec.yaml", tiny_spec())
    out = tmp_path / "abl"
    args = ["ablate", str(spec), "--out", str(out), "--dry-run", "--set", "arms.a.set+=[radocc.depth_tau=5]"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "radocc.depth_tau: section radocc is not read by method supervised" in err and str(spec) in err
