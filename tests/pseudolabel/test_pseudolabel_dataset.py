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

    return run_priors(
        synth_root,
        tmp_path_factory.mktemp("pl_priors"),
        build_prior("oracle:clean"),
        kinds=["semantics", "depth"],
        progress=False,
    )


def test_written_dataset_reads_and_scores(synth_root, priors, tmp_path, one_torch_thread):
    from occkit.cli import main

    out = tmp_path / "pl"
    rc = main(
        [
            "pseudolabel",
            "--data",
            str(synth_root),
            "--priors",
            str(priors),
            "--out",
            str(out),
            "--past",
            "1",
            "--quality",
            str(tmp_path / "q.json"),
            "--no-progress",
        ]
    )
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
    assert (
        main(
            [
                "eval",
                "--gt",
                str(out),
                "--pred",
                str(pred),
                "--split",
                "all",
                "--json",
                str(tmp_path / "e.json"),
                "--no-progress",
            ]
        )
        == 0
    )
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


def test_resume_redoes_missing_short_and_changed_labels_bit_identically(synth_root, priors, tmp_path, one_torch_thread):
    cfg = PseudoLabelConfig(past=1, split="val", carve_every=16)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    make_pseudo_labels(synth_root, priors, whole, cfg, progress=False)
    make_pseudo_labels(synth_root, priors, cut, cfg, progress=False)
    files = sorted(p.relative_to(cut) for p in cut.glob("gts/*/*/labels.npz"))
    assert len(files) >= 2 and all((p.parent / "files.json").is_file() for p in cut.glob("gts/*/*/labels.npz"))
    (cut / files[0]).write_bytes((cut / files[0]).read_bytes()[:100])  # truncated
    (cut / files[1]).write_bytes(b"")  # zero bytes
    if len(files) > 2:
        (cut / files[2]).unlink()  # missing
    make_pseudo_labels(synth_root, priors, cut, cfg, progress=False)
    for f in files:
        assert (cut / f).read_bytes() == (whole / f).read_bytes(), f
    # the summary covers every frame after a resume, not only the redone ones (issue 64)
    (cut / files[0]).unlink()  # one frame redone, the others kept
    make_pseudo_labels(synth_root, priors, cut, cfg, progress=False)
    rec_whole, rec_cut = (json.loads((d / RECORD_FILE).read_text()) for d in (whole, cut))
    assert rec_cut["written_this_run"] == 1 < rec_cut["frames"]
    for key in ("mean_occupied_voxels", "mean_observed_voxels"):
        assert rec_cut[key] == pytest.approx(rec_whole[key]) and rec_whole[key] > 0, key


def test_labels_of_another_prior_cache_at_the_same_path_are_refused(synth_root, priors, tmp_path, one_torch_thread):
    cfg = PseudoLabelConfig(past=0, free="none", split="val")
    out = tmp_path / "pl"
    make_pseudo_labels(synth_root, priors, out, cfg, progress=False)
    record = json.loads((out / RECORD_FILE).read_text())
    # a record written before the vote / consistency options existed still resumes
    for key in ("vote", "consistency"):
        del record["config"][key]
    (out / RECORD_FILE).write_text(json.dumps(record))
    make_pseudo_labels(synth_root, priors, out, cfg, progress=False)
    # the cache at that path remade (another creation time): refused, not mixed
    record = json.loads((out / RECORD_FILE).read_text())
    record["prior_created"] = "2000-01-01T00:00:00Z"
    (out / RECORD_FILE).write_text(json.dumps(record))
    with pytest.raises(ValueError, match="another prior cache"):
        make_pseudo_labels(synth_root, priors, out, cfg, progress=False)
