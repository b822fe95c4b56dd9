"""``occkit train`` on a package's dataset format whose labels hold class ids beyond its class table: one
line naming the label file, the frame, the ids and the format with its package, whether the class counts
read the labels first (``supervised.class_counts: auto``) or the training frames do (each frame's labels
checked as it is loaded, the table's ignore id excepted). Before: ``target: class ids must lie in [0, 10)
or equal ignore_index=255`` from the loss, naming neither a file nor the format."""

from __future__ import annotations

import re
import shutil
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from occkit.formats import ENTRY_POINT_GROUP, registry
from occkit.labels import ClassIdsOutside, refuse_ids_outside

#: A package's format reading Occ3D's files with a class table of ten classes (the labels hold 0..17).
NARROW = """
from occkit.data.occ3d import Occ3DDataset
from occkit.formats import ClassTable, DatasetFormat, Detection, FormatScoring
from occkit.formats.occ3d import FORMAT as OCC3D

TABLE = ClassTable(names=tuple(f"c{i}" for i in range(10)), free=0, ignore=255)


def open_split(root, split, options):
    return Occ3DDataset(
        root, split, cameras=options.cameras, load_images=options.load_images, load_gt=options.load_gt,
        load_extras=options.load_extras,
    )


def metrics(options):
    from occkit.metrics.occ3d import Occ3DMetric

    return [Occ3DMetric(num_classes=10, free=0, class_names=TABLE.names)]


FORMAT = DatasetFormat(
    name="narrow",
    summary="narrow (narrow.json beside Occ3D's files; ten classes)",
    modality="multi-camera",
    classes=TABLE,
    grid=OCC3D.grid,
    label_frame="ego",
    splits=("train", "val"),
    open=open_split,
    predictions=OCC3D.predictions,
    detection=Detection(
        lambda root: "it holds narrow.json" if (root / "narrow.json").is_file() else None, refines=("occ3d",)
    ),
    scoring=FormatScoring(metrics, folder_options=frozenset()),
)
"""

#: synth-cpu made tiny, without the targets the extras give (tests/test_example_format_package.py's)
TINY = [
    "model.backbone=test_efficientnet",
    "model.neck_channels=8",
    "model.context_channels=8",
    "model.encoder_widths=[8,16]",
    "model.lift_downsample=[4,4,1]",
    "model.depth_step=4.0",
    "supervised.depth_source=none",
    "supervised.semantic_2d_weight=0",
    "data.image_aug.out_hw=[32,96]",
    "data.load_extras=false",
    "optim.warmup_steps=1",
    "optim.amp=none",
    "optim.max_steps=2",
    "train.device=cpu",
    "train.threads=1",
    "train.tensorboard=false",
]


@pytest.fixture
def narrow_data(monkeypatch, tmp_path, synth_root):
    """The synthetic world's Occ3D files with ``narrow.json`` (no record of the writer's format), read as
    :data:`NARROW`, a package's format registered by its entry point."""
    import importlib.util

    path = tmp_path / "narrow_pkg.py"
    path.write_text(NARROW)
    spec = importlib.util.spec_from_file_location("narrow_pkg", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setitem(sys.modules, "narrow_pkg", mod)
    eps = [metadata.EntryPoint(name="narrow", value="narrow_pkg:FORMAT", group=ENTRY_POINT_GROUP)]
    real = metadata.entry_points  # every other group (triton's, occkit's methods) as installed

    def entry_points(group=None, **kw):
        if group == ENTRY_POINT_GROUP:
            return eps
        return real(**kw) if group is None else real(group=group, **kw)

    monkeypatch.setattr(registry.metadata, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_REGISTRY", None)
    data = tmp_path / "data"
    shutil.copytree(synth_root, data, ignore=shutil.ignore_patterns("extras", ".occkit-*"))
    (data / "narrow.json").write_text("{}")
    yield data
    registry._REGISTRY = None


def _error(capsys) -> str:
    """The one error line; the only other line is detection's word that the refining package took the Occ3D
    folder with no record of occkit synth to settle it (docs/data.md)."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("occkit train: error: ")]
    others = [line for line in err if line not in errors]
    assert len(errors) == 1 and len(others) <= 1, err
    assert all("read as narrow" in line and "which refines occ3d" in line for line in others), err
    return errors[0]


def _outside(labels: np.ndarray) -> tuple[list[int], int]:
    """The ids of ``labels`` beyond the ten classes (255 excepted), the first five, and their voxels."""
    bad = (labels >= 10) & (labels != 255)
    return sorted(set(labels[bad].tolist()))[:5], int(bad.sum())


def test_training_frames_with_class_ids_beyond_the_table_are_refused_naming_the_format(narrow_data, tmp_path, capsys):
    from occkit.cli import main

    cmd = ["train", "synth-cpu", "--data", str(narrow_data), "--out", str(tmp_path / "run"), "--no-progress"]
    assert main([*cmd, "--set", "supervised.class_counts=null", *TINY]) == 1
    line = _error(capsys)
    m = re.fullmatch(
        r"occkit train: error: (\S+labels\.npz): frame (\w+): class ids? ([\d, ]+) \((\d+) voxels\) outside the narrow "
        r"format's class table \(entry point narrow = narrow_pkg:FORMAT\), ids 0\.\.9 and 255 \(ignored\)",
        line,
    )
    assert m, line
    path = Path(m.group(1))
    assert path.parent.name == m.group(2) and path.is_relative_to(narrow_data)  # the frame's own file
    ids, voxels = _outside(np.load(path)["semantics"])  # every voxel, read here from the file named
    assert [int(v) for v in m.group(3).split(", ")] == ids and int(m.group(4)) == voxels
    assert "must lie in" not in line and "Traceback" not in line


def test_the_class_counts_refuse_them_naming_the_format(narrow_data, tmp_path, capsys):
    from occkit.cli import main

    cmd = ["train", "synth-cpu", "--data", str(narrow_data), "--out", str(tmp_path / "run"), "--no-progress"]
    assert main([*cmd, "--set", "supervised.class_counts=auto", *TINY]) == 1
    line = _error(capsys)
    m = re.fullmatch(
        r"occkit train: error: (\S+labels\.npz): class ids? ([\d, ]+) \((\d+) voxels\) outside model\.num_classes=10's "
        r"ids 0\.\.9; labels of the narrow format \(entry point narrow = narrow_pkg:FORMAT\)",
        line,
    )
    assert m, line
    z = np.load(m.group(1))
    ids, voxels = _outside(z["semantics"][z["mask_camera"].astype(bool)])  # the counts read the camera mask's voxels
    assert [int(v) for v in m.group(2).split(", ")] == ids and int(m.group(3)) == voxels


def test_the_ids_check_excepts_the_ignore_id_only():
    labels = np.array([[0, 4, 255], [4, 4, 0]], np.uint8)
    refuse_ids_outside(labels, 5, 255, "f.npz")  # the table's ids and its ignore id
    with pytest.raises(ClassIdsOutside, match=r"^f\.npz: class id 255 \(1 voxels\) outside the format's ids 0\.\.4$"):
        refuse_ids_outside(labels, 5, None, "f.npz")  # no ignore id: 255 is a class id beyond the table
    labels[1, 1] = 7
    with pytest.raises(ClassIdsOutside) as e:
        refuse_ids_outside(labels, 5, 255, lambda: "f.npz: frame t")
    assert str(e.value) == "f.npz: frame t: class id 7 (1 voxels) outside the format's ids 0..4 and 255 (ignored)"
    assert (e.value.ids, e.value.voxels) == ((7,), 1)
    refuse_ids_outside(np.full((2, 2), 9.5), 5, 255, "f.npz")  # float labels (a prediction's scores): not ids
