"""``occkit eval`` telling predictions of another dataset whose frame names are the same.

Every SemanticKITTI-layout dataset names its frames ``08/000000``...: the fingerprint of the frame names
that ``provenance.json`` records cannot tell two of them apart. ``occkit predict`` also records a
fingerprint of the ground truth's labels (``gt_fingerprint``: a hash of the labels of up to 16 frames),
which ``occkit eval`` compares: another dataset, or the data regenerated at the same path, is said in
one warning line; a copy elsewhere gets no word, nor an older record without it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from occkit.cli import main
from occkit.engine.data import eval_batches
from occkit.engine.evaluate import write_prediction_folder
from occkit.formats import get_format
from occkit.metrics.evaluate import PROVENANCE_FILE, frames_fingerprint, labels_fingerprint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Empty(torch.nn.Module):
    """A method predicting class 0 everywhere on SemanticKITTI's grid: what the provenance holds does not
    depend on what was predicted."""

    def predict(self, batch):
        return torch.zeros(batch.size, 1, 256, 256, 32)


def _synth(out: Path, seed: int) -> Path:
    args = ["synth", "--format", "semantickitti", "--out", str(out), "--scenes", "2", "--frames", "1"]
    assert main([*args, "--image-size", "48", "80", "--seed", str(seed)]) == 0
    return out


def _predict(data: Path, out: Path) -> Path:
    """What ``occkit predict --data DATA --out OUT --split val`` writes, through the same writer."""
    fmt = get_format("semantickitti")
    ds = fmt.open_split(data, "val", load_images=False)
    provenance = {"checkpoint": "runs/k", "data": str(data.resolve()), "split": "val"}
    batches = eval_batches(ds, 1)
    write_prediction_folder(
        _Empty(), batches, out, torch.device("cpu"), provenance, progress=False, dataset_format=fmt, dataset=ds
    )
    return out


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitti_worlds")
    a, b = _synth(root / "A", 0), _synth(root / "B", 1)
    return a, b, _predict(a, root / "predA")


def _warnings(capsys, gt: Path, pred: Path) -> list[str]:
    capsys.readouterr()
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--split", "val", "--no-progress"]) == 0
    out = capsys.readouterr().out
    return [line for line in out.splitlines() if "other data" in line or "changed since" in line]


def test_predict_records_the_labels_fingerprint_of_the_semantickitti_ground_truth(worlds):
    a, b, pred = worlds
    rec = json.loads((pred / PROVENANCE_FILE).read_text())
    fp = rec["gt_fingerprint"]
    assert fp["format"] == "semantickitti" and list(fp["labels"]) == rec["tokens"] == ["08/000000"]
    assert fp["labels"]["08/000000"].startswith("sha256:") and len(fp["labels"]["08/000000"]) == 7 + 64
    # the same frame names in the other world, other labels: the names' fingerprint alone cannot tell them
    ds_b = get_format("semantickitti").open_split(b, "val")
    assert frames_fingerprint(ds_b.tokens) == rec["data_fingerprint"]
    assert labels_fingerprint(ds_b, ds_b.tokens)["labels"] != fp["labels"]


def test_predictions_of_another_semantickitti_dataset_with_the_same_frame_names_are_warned(worlds, capsys):
    a, b, pred = worlds
    warned = _warnings(capsys, b, pred)
    assert len(warned) == 1, warned
    line = warned[0]
    assert f"made on other data than --gt {b}" in line and f"the record names {a.resolve()}" in line
    assert (
        "1 frame names --gt shares but not its labels (1 of the 1 frames fingerprinted differ, e.g. frame 08/000000)"
        in line
    )
    assert str(pred / PROVENANCE_FILE) in line


def test_a_copy_of_the_semantickitti_ground_truth_elsewhere_gets_no_word(worlds, tmp_path, capsys):
    a, _, pred = worlds
    copy = tmp_path / "copy"
    shutil.copytree(a, copy, symlinks=True)
    assert _warnings(capsys, copy, pred) == []
    assert _warnings(capsys, a, pred) == []


def test_ground_truth_regenerated_at_the_same_path_with_other_labels_is_warned(worlds, tmp_path, capsys):
    a, b, _ = worlds
    data = tmp_path / "data"
    shutil.copytree(a, data, symlinks=True)
    pred = _predict(data, tmp_path / "pred")
    assert _warnings(capsys, data, pred) == []
    shutil.rmtree(data)
    shutil.copytree(b, data, symlinks=True)  # written again with another seed: the same names, other labels
    warned = _warnings(capsys, data, pred)
    assert len(warned) == 1, warned
    assert f"the ground truth of --gt {data} changed since these predictions were made on it" in warned[0]
    assert (
        "the same 1 frame names but other labels (1 of the 1 frames fingerprinted differ, e.g. frame 08/000000)"
        in warned[0]
    )


def _edited(pred: Path, folder: Path, edit) -> Path:
    shutil.copytree(pred, folder)
    rec = json.loads((folder / PROVENANCE_FILE).read_text())
    edit(rec)
    (folder / PROVENANCE_FILE).write_text(json.dumps(rec))
    return folder


def test_an_older_record_with_only_the_frame_names_fingerprint_is_compared_by_the_names(worlds, tmp_path, capsys):
    a, _, pred = worlds
    old = _edited(pred, tmp_path / "old", lambda rec: rec.pop("gt_fingerprint"))
    copy = tmp_path / "copy"
    shutil.copytree(a, copy, symlinks=True)
    assert _warnings(capsys, a, old) == [] and _warnings(capsys, copy, old) == []


@pytest.mark.parametrize(
    "value",
    ["sha256:0", [], {"format": "semantickitti", "labels": {"08/999999": "sha256:0"}}, {"format": "semantickitti"}],
    ids=["a-string", "a-list", "a-frame-not-in-the-split", "no-labels"],
)
def test_a_labels_fingerprint_not_of_occkits_shape_is_not_compared(worlds, tmp_path, capsys, value):
    _, b, pred = worlds
    odd = _edited(pred, tmp_path / "odd", lambda rec: rec.update(gt_fingerprint=value))
    assert _warnings(capsys, b, odd) == []


def test_predictions_of_another_formats_data_are_not_compared_by_labels(worlds, tmp_path, capsys):
    """What ``--class-map`` scores: predictions made on data of another format, whose labels are not these."""
    _, b, pred = worlds
    other = _edited(pred, tmp_path / "other", lambda rec: rec["gt_fingerprint"].update(format="occ3d"))
    assert _warnings(capsys, b, other) == []


def test_a_reader_that_cannot_give_its_labels_leaves_the_frame_names_alone():
    class NoLabels:  # a package reader without frame_labels
        format_name = "toy"

        def index_of(self, token):
            return 0

    class Missing(NoLabels):  # a split predicted without its ground truth
        def frame_labels(self, i):
            raise FileNotFoundError("labels.npz: no such file")

    assert labels_fingerprint(NoLabels(), ["a", "b"]) is None
    assert labels_fingerprint(Missing(), ["a", "b"]) is None


def test_the_labels_fingerprint_reads_at_most_sixteen_frames_spread_over_the_sorted_names():
    import numpy as np

    class Frames:
        format_name = "toy"
        read: list[int] = []

        def index_of(self, token):
            return int(token[1:])

        def frame_labels(self, i):
            self.read.append(i)
            return np.full((2, 2, 2), i, np.uint8), np.ones((2, 2, 2), bool), Path(f"f{i}")

    tokens = [f"f{i:03d}" for i in range(100)]
    fp = labels_fingerprint(Frames(), list(reversed(tokens)))
    assert len(fp["labels"]) == 16 and "f000" in fp["labels"] and "f099" in fp["labels"]
    read = sorted(Frames.read)
    assert len(set(read)) == 16 and read[0] == 0 and read[-1] == 99
    assert max(b - a for a, b in zip(read, read[1:])) <= 7  # evenly: 99 / 15 = 6.6 names apart
    assert labels_fingerprint(Frames(), tokens) == fp  # the order of the names does not matter


def test_a_recorded_data_path_that_names_no_folder_is_other_data_not_a_traceback(worlds, tmp_path, capsys):
    a, b, pred = worlds
    odd = _edited(pred, tmp_path / "nul", lambda rec: rec.update(data="a\x00b"))
    assert _warnings(capsys, a, odd) == []  # its labels are --gt's
    warned = _warnings(capsys, b, odd)
    assert len(warned) == 1 and f"made on other data than --gt {b}" in warned[0], warned
    old = _edited(odd, tmp_path / "old", lambda rec: rec.pop("data_fingerprint"))  # compared by the path
    capsys.readouterr()
    assert main(["eval", "--gt", str(a), "--pred", str(old), "--split", "val", "--no-progress"]) == 0
    assert f"not --gt {a}" in capsys.readouterr().out
