"""Hardening, fifth round (issue 73 items 4 and 6): nothing of the user's is replaced, and an error
names the real cause."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from occkit.cli import main

SYNTH_TINY = ["--scenes", "1", "--frames", "1", "--image-size", "8", "16"]


def _err(capsys) -> str:
    return capsys.readouterr().err.strip()


# ------------------------------------------------------------ nothing of the user's is replaced
def test_overwrite_keeps_an_empty_folder_the_user_put_in_the_output(tmp_path, capsys):
    out = tmp_path / "W"
    assert main(["synth", "--out", str(out), *SYNTH_TINY]) == 0
    (out / "my_empty_folder" / "inner").mkdir(parents=True)
    capsys.readouterr()
    assert main(["synth", "--out", str(out), *SYNTH_TINY, "--seed", "1", "--overwrite"]) == 1
    err = _err(capsys)
    assert err.count("\n") == 0 and "my_empty_folder/inner/ is a folder occkit synth did not make" in err
    assert (out / "my_empty_folder" / "inner").is_dir()


def test_overwrite_of_predictions_keeps_an_empty_folder_of_the_user(tmp_path, capsys):
    from occkit.outputs import check_own_files, record_folder_files

    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "t0.npz").write_bytes(b"x")
    record_folder_files(pred, "predict")
    check_own_files(pred, "predict")  # its own files only: fine
    (pred / "keep_me").mkdir()
    with pytest.raises(FileExistsError, match="keep_me/ is a folder occkit predict did not make"):
        check_own_files(pred, "predict")


def test_a_killed_priors_run_leaves_no_temporary_file_in_the_finished_cache(synth_root, tmp_path):
    from occkit.priors import build_prior
    from occkit.priors.cache import run_priors

    out = tmp_path / "cache"
    run_priors(synth_root, out, build_prior("oracle:clean"), kinds=["depth"], max_frames=1, progress=False)
    some = next(p for p in out.rglob("*.npz"))
    stale = some.parent / f".{some.name}.k1ll3d.tmp"  # what a kill -9 inside atomic_write leaves
    stale.write_bytes(b"half")
    run_priors(synth_root, out, build_prior("oracle:clean"), kinds=["depth"], max_frames=1, progress=False)
    assert not stale.exists() and not list(out.rglob(".*.tmp"))
    assert not list(tmp_path.glob(".*.lock"))  # the writer's lock is released
