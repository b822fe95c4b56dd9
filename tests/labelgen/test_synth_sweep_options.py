"""``occkit synth``'s LiDAR sweep options: given without ``--sweeps K`` they are refused naming
``--sweeps`` (they were dropped in silence), and a noise beyond any recording's (``--pose-noise 1e9``,
which was written, then refused by ``occkit label`` as corrupt) is refused with its range, before any
folder is made."""

from __future__ import annotations

import pytest

from occkit.cli import main

SYNTH = ["synth", "--scenes", "1", "--frames", "1", "--image-size", "32", "48"]


@pytest.mark.parametrize(
    "given",
    [
        ["--pose-noise", "0.2"],
        ["--pose-drift", "0.1"],
        ["--box-center-noise", "0.1"],
        ["--box-size-noise", "0.1"],
        ["--box-yaw-noise", "2"],
        ["--label-flips", "0.1"],
        ["--sweep-labels"],
        ["--beams", "8"],
    ],
)
def test_a_sweep_option_without_sweeps_is_refused_naming_sweeps(tmp_path, capsys, given):
    out = tmp_path / "w"
    assert main([*SYNTH, "--out", str(out), *given]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{given[0]}: LiDAR sweep options, which need --sweeps K" in err, err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_every_sweep_option_given_without_sweeps_is_named(tmp_path, capsys):
    assert main([*SYNTH, "--out", str(tmp_path / "w"), "--pose-noise", "1", "--label-flips", "0.5"]) == 1
    assert "--pose-noise, --label-flips: LiDAR sweep options" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag, value, words",
    [
        ("--pose-noise", "1e9", "expected a number in [0, 10] (metres), got 1e+09"),
        ("--pose-drift", "11", "expected a number in [0, 10] (metres per second), got 11"),
        ("--box-center-noise", "100", "expected a number in [0, 10] (metres), got 100"),
        ("--box-size-noise", "2", "expected a number in [0, 1] (relative), got 2"),
        ("--box-yaw-noise", "720", "expected a number in [0, 180] (degrees), got 720"),
        ("--pose-noise", "-1", "expected a number in [0, 10] (metres), got -1"),
        ("--pose-noise", "nan", "expected a finite number"),
    ],
)
def test_a_sweep_noise_beyond_its_range_is_refused_before_work(tmp_path, capsys, flag, value, words):
    out = tmp_path / "w"
    with pytest.raises(SystemExit) as e:
        main([*SYNTH, "--out", str(out), "--sweeps", "1", flag, value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: {words}" in err, err
    assert not out.exists()


def test_the_largest_noises_write_a_rig_that_label_reads(tmp_path):
    """The bounds are not looser than what occkit label takes: a world with every noise at its largest
    is read back, every scene's tables checked."""
    from occkit.commands.synth import SWEEP_NOISE
    from occkit.data.recordings.registry import open_recording

    out = tmp_path / "w"
    noises = [v for flag, (hi, _, _) in SWEEP_NOISE.items() for v in (flag, str(hi))]
    assert main([*SYNTH, "--frames", "2", "--out", str(out), "--sweeps", "1", "--beams", "4", *noises]) == 0
    rec = open_recording(out)
    for scene in rec.scenes:
        assert len(rec.read_scene(scene, load_points=False).keyframes) == 2
