"""Prediction folders: written whole or not at all, a non-empty folder refused, provenance
recorded and checked by `occkit eval`, --gt / --pred swapped recognised."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from engine_toy import ToyFrames, ToyMethod  # noqa: E402

from occkit.cli import main  # noqa: E402
from occkit.engine.data import eval_batches  # noqa: E402
from occkit.engine.evaluate import write_prediction_folder  # noqa: E402
from occkit.fileio import save_npz_atomic  # noqa: E402
from occkit.metrics.evaluate import PROVENANCE_FILE  # noqa: E402


def _batches(n=5, fail_after=None):
    for i, b in enumerate(eval_batches(ToyFrames(n), 1)):
        if fail_after is not None and i == fail_after:
            raise RuntimeError("killed midway")
        yield b


def test_prediction_folder_is_written_whole_with_provenance(tmp_path):
    out = tmp_path / "pred"
    n = write_prediction_folder(
        ToyMethod(), _batches(), out, torch.device("cpu"), {"checkpoint": "ck", "split": "val"}, progress=False
    )
    assert n == 5
    rec = json.loads((out / PROVENANCE_FILE).read_text())
    assert rec["checkpoint"] == "ck" and rec["split"] == "val" and rec["frames"] == 5 and "created" in rec
    assert sorted(rec["tokens"]) == sorted(p.stem for p in out.glob("*.npz"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_failed_predict_into_a_non_empty_folder_leaves_it_untouched(tmp_path):
    out = tmp_path / "pred"
    write_prediction_folder(ToyMethod(), _batches(), out, torch.device("cpu"), {"checkpoint": "old"}, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # without --overwrite: refused before any work
    with pytest.raises(FileExistsError, match="pred: the folder is not empty.*--overwrite"):
        write_prediction_folder(
            ToyMethod(), _batches(), out, torch.device("cpu"), {"checkpoint": "new"}, progress=False
        )
    # with it, a failure midway: the old folder stays whole, nothing half-written is left
    with pytest.raises(RuntimeError, match="killed midway"):
        write_prediction_folder(
            ToyMethod(),
            _batches(fail_after=3),
            out,
            torch.device("cpu"),
            {"checkpoint": "new"},
            overwrite=True,
            progress=False,
        )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # a success replaces it
    write_prediction_folder(
        ToyMethod(), _batches(3), out, torch.device("cpu"), {"checkpoint": "new"}, overwrite=True, progress=False
    )
    assert json.loads((out / PROVENANCE_FILE).read_text())["checkpoint"] == "new" and len(list(out.glob("*.npz"))) == 3


def test_leftover_temporary_prediction_folders_are_removed(tmp_path):
    stale = tmp_path / ".pred.x1y2.tmp"  # a predict killed with -9
    stale.mkdir()
    (stale / "a.npz").write_bytes(b"half")
    write_prediction_folder(ToyMethod(), _batches(2), tmp_path / "pred", torch.device("cpu"), {}, progress=False)
    assert not stale.exists()


def test_predict_cli_refuses_a_non_empty_folder_before_loading(tmp_path, capsys):
    out = tmp_path / "pred"
    out.mkdir()
    (out / "tok.npz").write_bytes(b"x")
    rc = main(["predict", "--ckpt", str(tmp_path / "no_run"), "--data", str(tmp_path), "--out", str(out)])
    assert rc == 1 and "the folder is not empty" in capsys.readouterr().err


@pytest.fixture
def gt_pred(tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1] / "metrics"))
    from test_metrics_eval_command import write_occ3d

    gts = write_occ3d(tmp_path / "gt", frames=3)
    for t, (sem, _, _) in gts.items():
        save_npz_atomic(tmp_path / "pred" / f"{t}.npz", semantics=sem)
    return tmp_path / "gt", tmp_path / "pred", sorted(gts)


def test_eval_recognises_gt_and_pred_swapped(gt_pred, capsys):
    gt, pred, _ = gt_pred
    rc = main(["eval", "--gt", str(pred), "--pred", str(gt), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "--gt and --pred are swapped" in err and "prediction folder" in err


def test_eval_warns_when_provenance_is_missing_or_mixed(gt_pred, capsys):
    gt, pred, tokens = gt_pred
    args = ["eval", "--gt", str(gt), "--pred", str(pred), "--no-progress"]
    assert main(args) == 0
    assert f"has no {PROVENANCE_FILE}" in capsys.readouterr().out
    (pred / PROVENANCE_FILE).write_text(json.dumps({"checkpoint": "runs/a", "created": "t", "tokens": tokens[:2]}))
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "mixed predictions: 1 of 3 file(s) were not written by the run" in out and "runs/a" in out
    (pred / PROVENANCE_FILE).write_text(json.dumps({"checkpoint": "runs/a", "created": "t", "tokens": tokens}))
    assert main(args) == 0
    assert "warning" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "record, said",
    [
        ([1, 2], "provenance.json: list [1, 2] is not an object"),
        ({"checkpoint": "runs/a"}, "provenance.json: tokens missing"),
        ({"tokens": "t0"}, "provenance.json: tokens: text 't0' is not a list"),
        ({"tokens": [], "split": 3}, "provenance.json: split: 3 is not text"),
        ({"tokens": [], "gt_fingerprint": {"format": "occ3d", "labels": {"t": 5}}}, "gt_fingerprint.labels.t: 5"),
    ],
)
def test_eval_says_a_provenance_record_that_breaks_its_schema_in_one_line(gt_pred, capsys, record, said):
    """``provenance.json`` is read against its schema (``read_provenance``): a record edited or torn is said
    naming the file and the field, and the predictions still scored."""
    gt, pred, _ = gt_pred
    (pred / PROVENANCE_FILE).write_text(json.dumps(record))
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--no-progress"]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if "unreadable provenance record" in x]
    assert len(lines) == 1 and said in lines[0], lines


def test_eval_split_is_validated(gt_pred, capsys):
    gt, pred, _ = gt_pred
    # checked against the data's format (a package's format may name its own splits), in one line
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--split", "vall"]) == 1
    assert "--split vall: the Occ3D-nuScenes format has the splits train, val, all" in capsys.readouterr().err
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--split", "test"]) == 1
