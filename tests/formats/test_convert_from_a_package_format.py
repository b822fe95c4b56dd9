"""``occkit convert --to occ3d`` from a package's dataset format of the nuScenes family whose layout keeps
no ``annotations.json``: Occ3D's index is finished from the frames' records its label reader gives
(docs/design.md §9, ``writers.label_writer``), and the converted folder opens in ``occkit stats`` and
scores in ``occkit eval``. Before, the conversion stopped at its rehearsal: ``occ3d cannot take flat's
frames: writing the index of the first frame failed ... (FileNotFoundError: SRC/annotations.json: no
such file)``."""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from occkit.formats import ENTRY_POINT_GROUP, registry

#: A package's format: ``flat.json`` (splits, and each frame's scene and index entry) and
#: ``labels/<token>.npz`` (``semantics``, ``mask_camera``) on Occ3D's grid and table; its label reader
#: gives each frame's entry as ``record`` and it writes no layout of its own.
FLAT = """
import json
from pathlib import Path

import numpy as np
import torch

from occkit.formats import ClassTable, DatasetFormat, Detection, FormatScoring, PredictionFiles, Writers
from occkit.formats.spec import FrameLabels, LabelWriter
from occkit.geometry.grid import occ3d_grid
from occkit.labels import OCC3D_CLASSES, OCC3D_FREE


class Frame:
    def __init__(self, token, scene):
        self.token, self.scene = token, scene


class Frames(torch.utils.data.Dataset):
    def __init__(self, root, split, options):
        self.root = Path(root)
        self.index = json.loads((self.root / "flat.json").read_text())
        splits = self.index["splits"]
        self.tokens = [t for s in splits.values() for t in s] if split == "all" else list(splits[split])
        self.frames = [Frame(t, self.index["frames"][t]["scene"]) for t in self.tokens]
        self.grid = occ3d_grid()

    def __len__(self):
        return len(self.frames)

    def index_of(self, token):
        return self.tokens.index(token)

    def frame_labels(self, i):
        path = self.root / "labels" / f"{self.tokens[i]}.npz"
        z = np.load(path)
        return z["semantics"], z["mask_camera"], path


def read(ds, i, options):
    labels, mask, _ = ds.frame_labels(i)
    f = ds.index["frames"][ds.tokens[i]]
    return FrameLabels(
        token=ds.tokens[i], scene=f["scene"], semantics=labels, masks={"mask_camera": mask},
        T_ego_from={"ego": np.eye(4)}, record=f["record"],
    )


def metrics(options):
    from occkit.metrics.occ3d import Occ3DMetric

    return [Occ3DMetric(free=OCC3D_FREE)]


def refuse(*args):
    raise NotImplementedError("the flat layout is read, not written")


FORMAT = DatasetFormat(
    name="flat",
    summary="flat (flat.json, labels/<token>.npz)",
    modality="multi-camera",
    classes=ClassTable(names=OCC3D_CLASSES, free=OCC3D_FREE, ignore=255),
    grid=occ3d_grid(),
    label_frame="ego",
    splits=("train", "val"),
    open=Frames,
    predictions=PredictionFiles(
        write=lambda folder, token, labels: np.savez(Path(folder) / f"{token}.npz", semantics=labels),
        index=lambda folder: {p.stem: p for p in Path(folder).glob("*.npz")},
        read=lambda path: np.load(path)["semantics"],
        relpath=lambda token: f"{token}.npz",
    ),
    detection=Detection(detect=lambda root: "it holds flat.json" if (root / "flat.json").is_file() else None),
    scoring=FormatScoring(metrics, folder_options=frozenset()),
    writers=Writers(
        label_writer=LabelWriter(
            family="nuscenes", read=read, files=refuse, write=refuse, finish=refuse, masks=("mask_camera",)
        )
    ),
)
"""


@pytest.fixture
def flat_format(monkeypatch, tmp_path):
    """:data:`FLAT` registered as a package's format (entry point ``flat``), the registry found afresh."""
    import importlib.util

    path = tmp_path / "flat_pkg.py"
    path.write_text(FLAT)
    spec = importlib.util.spec_from_file_location("flat_pkg", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setitem(sys.modules, "flat_pkg", mod)
    eps = [metadata.EntryPoint(name="flat", value="flat_pkg:FORMAT", group=ENTRY_POINT_GROUP)]
    real = metadata.entry_points  # every other group (triton's, occkit's methods) as installed

    def entry_points(group=None, **kw):
        if group == ENTRY_POINT_GROUP:
            return eps
        return real(**kw) if group is None else real(group=group, **kw)

    monkeypatch.setattr(registry.metadata, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_REGISTRY", None)
    yield mod
    registry._REGISTRY = None


def _pose(x: float) -> dict[str, list[float]]:
    return {"translation": [x, 2.0, 0.0], "rotation": [1.0, 0.0, 0.0, 0.0]}


def write_flat(root: Path, record: object = None) -> dict[str, dict[str, np.ndarray]]:
    """Two scenes of two frames (scene-a train, scene-b val) in :data:`FLAT`'s layout, each frame's
    record its Occ3D entry (``record`` instead where given). Returns ``{token: arrays}``."""
    rng = np.random.default_rng(7)
    (root / "labels").mkdir(parents=True)
    frames, splits, arrays = {}, {"train": [], "val": []}, {}
    for scene, split in (("scene-a", "train"), ("scene-b", "val")):
        for k in range(2):
            token = f"{scene}-{k}"
            a = {
                "semantics": rng.integers(0, 18, (200, 200, 16)).astype(np.uint8),
                "mask_camera": rng.random((200, 200, 16)) < 0.7,
            }
            np.savez(root / "labels" / f"{token}.npz", **a)
            entry = {"timestamp": 1_000_000 + 500_000 * k, "ego_pose": _pose(float(k)), "camera_sensor": {}}
            frames[token] = {"scene": scene, "record": entry if record is None else record}
            splits[split].append(token)
            arrays[token] = a
    (root / "flat.json").write_text(json.dumps({"splits": splits, "frames": frames}))
    return arrays


def test_convert_to_occ3d_finishes_the_index_from_the_records_and_the_result_scores(flat_format, tmp_path, capsys):
    from occkit.cli import main

    src, out, pred = tmp_path / "flat", tmp_path / "occ3d", tmp_path / "pred"
    arrays = write_flat(src)
    assert not (src / "annotations.json").exists()
    assert main(["convert", "--data", str(src), "--out", str(out), "--to", "occ3d"]) == 0
    said = capsys.readouterr().out
    assert "flat -> occ3d: 4 frames" in said and "lossless" in said
    ann = json.loads((out / "annotations.json").read_text())
    # the index from the records: each frame's entry as its reader gave it, with the file written, under its
    # scene; the splits the source's
    assert ann["train_split"] == ["scene-a"] and ann["val_split"] == ["scene-b"]
    index = json.loads((src / "flat.json").read_text())
    for token, f in index["frames"].items():
        rel = f"gts/{f['scene']}/{token}/labels.npz"
        assert ann["scene_infos"][f["scene"]][token] == {**f["record"], "gt_path": rel}
        z = np.load(out / rel)
        assert np.array_equal(z["semantics"], arrays[token]["semantics"])  # one table, one grid: the identity
        assert np.array_equal(z["mask_camera"].astype(bool), arrays[token]["mask_camera"])
        assert z["mask_lidar"].all()  # a mask the source lacks: the voxels not ignored (none is)
    # the result opens as Occ3D
    assert main(["stats", str(out)]) == 0
    stats = capsys.readouterr().out
    assert "format occ3d" in stats and "frames 4" in stats
    # and scores: the val frames' own labels as predictions, every class present scored 100
    pred.mkdir()
    for token in index["splits"]["val"]:
        np.savez(pred / f"{token}.npz", semantics=arrays[token]["semantics"])
    scores = tmp_path / "scores.json"
    argv = ["eval", "--gt", str(out), "--pred", str(pred), "--split", "val", "--json", str(scores), "--no-progress"]
    assert main(argv) == 0
    r = json.loads(scores.read_text())
    assert r["frames"] == 2 and r["miou"] == pytest.approx(100.0)


def test_records_without_ego_pose_are_said_and_a_record_that_is_no_object_is_refused(flat_format, tmp_path, capsys):
    from occkit.cli import main

    src = tmp_path / "flat"
    write_flat(src, record={"timestamp": 1})
    assert main(["convert", "--data", str(src), "--out", str(tmp_path / "a"), "--to", "occ3d"]) == 0
    assert "note: 4 frame(s) have no ego_pose in the source's records" in capsys.readouterr().out
    listed = tmp_path / "listed"
    write_flat(listed, record=[1, 2])
    assert main(["convert", "--data", str(listed), "--out", str(tmp_path / "b"), "--to", "occ3d"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.endswith(
        "flat's label reader (writers.label_writer.read) gave a FrameLabels whose record is a list for frame "
        "scene-a-0, not a FrameLabels whose record is an object (docs/design.md, writers.label_writer)"
    )
    assert not (tmp_path / "b").exists()
