"""occkit pseudolabel end to end on the tiny synthetic world: the written dataset reads with
Occ3DDataset and occkit eval, resumes, refuses other settings; the quality report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from occkit.data.occ3d import Occ3DDataset
from occkit.fileio import save_npz_atomic
from occkit.pseudolabel.dataset import RECORD_FILE, PseudoLabelConfig, make_pseudo_labels
from occkit.pseudolabel.quality import format_quality, label_quality


@pytest.fixture(scope="module")
def priors(synth_root, tmp_path_factory) -> Path:
    from occkit.priors import build_prior
    from occkit.priors.cache import run_priors

    return run_priors(synth_root, tmp_path_factory.mktemp("pl_priors"), build_prior("oracle:clean"), kinds=["semantics", "depth"], progress=False)


def test_written_dataset_reads_and_scores(synth_root, priors, tmp_path, one_torch_thread):
    from occkit.cli import main

    out = tmp_path / "pl"
    rc = main(["pseudolabel", "--data", str(synth_root), "--priors", str(priors), "--out", str(out), "--past", "1",
               "--quality", str(tmp_path / "q.json"), "--no-progress"])
    assert rc == 0
    record = json.loads((out / RECORD_FILE).read_text())
    assert record["complete"] and record["config"]["past"] == 1 and record["prior_spec"].startswith("oracle")
    src = Occ3DDataset(synth_root, "all", load_extras=False)
    ds = Occ3DDataset(out, "all", load_extras=False)
    assert [f.token for f in ds.frames] == [f.token for f in src.frames]
    s = ds[0]  # images resolve (absolute paths), labels are the pseudo-labels
    assert s.images.shape == src[0].images.shape and s.occupancy is not None
    lab = ds.read_labels(ds.frames[0].token)
    assert lab["semantics"].dtype == np.uint8 and set(np.unique(lab["mask_camera"])) <= {0, 1}
    occupied = lab["semantics"] != 17
    assert occupied.any() and (lab["mask_camera"][occupied] == 1).all()
    # exact (clean) priors: most occupied pseudo-voxels are occupied in the real labels
    q = json.loads((tmp_path / "q.json").read_text())
    assert q["precision_none"] > 50 and 0 < q["density"] < 100 and q["frames"] == len(src.frames)
    assert "mIoU" in format_quality(q)
    # occkit eval scores predictions against the pseudo-labels as ground truth
    pred = tmp_path / "pred"
    for f in ds.frames:
        save_npz_atomic(pred / f"{f.token}.npz", semantics=ds.read_labels(f.token)["semantics"])
    assert main(["eval", "--gt", str(out), "--pred", str(pred), "--split", "all", "--json", str(tmp_path / "e.json"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["miou"] == pytest.approx(100.0)


def test_resumes_and_refuses_other_settings(synth_root, priors, tmp_path, one_torch_thread):
    out = tmp_path / "pl"
    cfg = PseudoLabelConfig(past=0, free="none", split="val")
    make_pseudo_labels(synth_root, priors, out, cfg, progress=False)
    files = sorted(out.glob("gts/*/*/labels.npz"))
    assert files and len(files) == len(Occ3DDataset(synth_root, "val").frames)
    stamp = [f.stat().st_mtime_ns for f in files]
    make_pseudo_labels(synth_root, priors, out, cfg, progress=False)  # resumes: nothing rewritten
    assert [f.stat().st_mtime_ns for f in files] == stamp
    assert json.loads((out / "annotations.json").read_text())["train_split"] == []
    with pytest.raises(ValueError, match="other settings"):
        make_pseudo_labels(synth_root, priors, out, PseudoLabelConfig(past=3, split="val"), progress=False)
    with pytest.raises(ValueError, match="same folder"):
        make_pseudo_labels(synth_root, priors, synth_root, cfg, progress=False)


def test_quality_of_the_real_labels_is_perfect(synth_root):
    q = label_quality(synth_root, synth_root)
    assert q["miou_camera"] == pytest.approx(100.0) and q["precision_none"] == pytest.approx(100.0)
    assert q["recall_camera"] == pytest.approx(100.0)
