"""The contract between occkit and a dataset format of another package (entry point group
``occkit.datasets``), as docs/design.md §9 writes it: a package's roles may be lambdas and still score in
several processes; ``--mask`` and ``--metrics`` reach its metrics whatever its ``folder_options``; class
ids outside its table are named with their file; a broken part of a package is named in one line with the
package and the role, and every other format keeps working."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from occkit.formats import ENTRY_POINT_GROUP, Detection, registry

ROOT = Path(__file__).resolve().parent.parent


def _section_code(doc: Path, heading: str) -> str:
    """The first python code block under the section ``heading`` of ``doc``."""
    import re

    text = doc.read_text(encoding="utf-8")
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    m = re.search(r"```python\n(.*?)```", text[start : end if end > 0 else len(text)], re.S)
    assert m, f"{doc}: no python block under {heading!r}"
    return m.group(1)


def install_package(site: Path, package: str, modules: dict[str, str], entry_points: dict[str, str]) -> Path:
    """A package installed into the folder ``site`` as pip lays it out (its modules, and a
    ``.dist-info`` with its ``occkit.datasets`` entry points), found once ``site`` is on the path."""
    (site / package).mkdir(parents=True, exist_ok=True)
    (site / package / "__init__.py").write_text("")
    for name, code in modules.items():
        (site / package / f"{name}.py").write_text(code)
    info = site / f"{package}-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
    return site


def occkit_cli(site: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m occkit ARGS`` with the packages of ``site`` installed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "src")]), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "occkit", *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def occkit_here(capfd, site: Path, *args: str) -> subprocess.CompletedProcess:
    """:func:`occkit_cli` in this process (``occkit.cli.main``: no fresh Python importing torch): the
    packages of ``site`` on the path and the format registry found again from the entry points, as a
    new process finds them; the path, the registry and the packages' modules put back after. Its
    output is read from the file descriptors (``capfd``), so that what the processes of the scoring
    loop print is read too, as from a process."""
    import importlib

    from occkit.cli import main

    before = set(sys.modules)
    capfd.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(site))
        for name, fresh in (("_REGISTRY", None), ("_WARNED", set()), ("_QUIET", False)):  # as a new process has them
            mp.setattr(registry, name, fresh)
        try:
            rc = main(list(args))
        finally:
            for name in set(sys.modules) - before:  # the packages' modules (and what they imported)
                if str(site) in str(getattr(sys.modules[name], "__file__", None) or ""):
                    del sys.modules[name]
            importlib.invalidate_caches()
    registry._REGISTRY = None  # found again without the packages by the next that asks
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(["occkit", *args], rc, out, err)


def write_relabel_data(tmp_path: Path, occ3d_root: Path, frames_wrong: int = 1) -> tuple[Path, Path, list[str]]:
    """A dataset of docs/design.md §9's ``relabel`` layout beside the Occ3D folder ``occ3d_root`` and a
    prediction folder (right but for the last ``frames_wrong`` frames). Returns ``(data, pred, tokens)``."""
    from occkit.fileio import save_npz_atomic, write_json_atomic
    from occkit.formats import get_format

    data, pred = tmp_path / "data", tmp_path / "pred"
    tokens = get_format("occ3d").open_split(occ3d_root, "all", load_images=False, load_gt=False).tokens
    rng = np.random.default_rng(0)
    write_json_atomic(
        data / "relabel.json",
        {"cameras_from": os.path.relpath(occ3d_root, data), "splits": {"train": tokens[:2], "val": tokens[2:]}},
    )
    for i, t in enumerate(tokens):
        truth = rng.integers(0, 4, (200, 200, 16), dtype=np.uint8)
        truth[rng.random((200, 200, 16)) < 0.1] = 255
        save_npz_atomic(data / "labels" / f"{t}.npz", labels=truth)
        right = np.where(truth == 255, 0, truth).astype(np.uint8)
        wrong = i >= len(tokens) - frames_wrong
        save_npz_atomic(pred / f"{t}.npz", labels=np.zeros_like(right) if wrong else right)
    return data, pred, tokens


@pytest.fixture(autouse=True)
def deprecations_said_afresh(monkeypatch):
    """Each test sees the deprecation warnings as a new process does (they are said once a process)."""
    import occkit.deprecation

    monkeypatch.setattr(occkit.deprecation, "_SAID", set())


# ------------------------------------------------------------ the design doc's example, installed as a package
def test_the_design_docs_format_installed_as_a_package_scores_miou_and_rayiou_in_processes(tmp_path, synth_root, capfd):
    """docs/design.md §9's complete format, copied as it stands into a package (its roles lambdas), scores
    with --metrics miou,rayiou in spawned processes: the same scores as one process. It used to end in a
    40-line PicklingError (a process sent back its metrics with the format and its lambdas)."""
    code = _section_code(ROOT / "docs" / "design.md", "## 9. Adding a dataset format")
    assert "lambda" in code  # the doc's own roles: lambdas, as a user copies them
    site = install_package(tmp_path / "site", "relabel_pkg", {"format": code}, {"relabel": "relabel_pkg.format:FORMAT"})
    data, pred, tokens = write_relabel_data(tmp_path, synth_root)
    assert len(tokens) >= 4  # two frames at least per process
    out = tmp_path / "scores.json"
    args = ["eval", "--gt", str(data), "--pred", str(pred), "--split", "all", "--metrics", "miou,rayiou"]
    run = occkit_cli(site, *args, "--processes", "2", "--no-progress", "--json", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and "one process" not in run.stdout + run.stderr
    scores = json.loads(out.read_text())
    assert scores["benchmark"] == "relabel" and 0 < scores["miou"] < 100 and 0 < scores["rayiou"] < 100
    assert scores["frames"] == len(tokens)
    alone = tmp_path / "alone.json"
    run = occkit_here(capfd, site, *args, "--processes", "1", "--no-progress", "--json", str(alone))
    assert run.returncode == 0, run.stdout + run.stderr
    one = json.loads(alone.read_text())
    assert {k: one[k] for k in ("miou", "geometry_iou", "rayiou", "rayiou@1")} == {
        k: scores[k] for k in ("miou", "geometry_iou", "rayiou", "rayiou@1")
    }


#: A bare format of a package, as the docs let one be written: ROOT/bare.json ({"val": [token, ...]}),
#: ROOT/gt/<token>.npy and predictions <token>.npy, (5, 5, 5) uint8 ids of five classes (free 0), 255
#: unknown; its metric a confusion count that checks nothing (``bincount(...).reshape(n, n)``).
BARE = """
import json
from pathlib import Path

import numpy as np
import torch

from occkit.formats import ClassTable, DatasetFormat, Detection, FormatScoring, PredictionFiles
from occkit.geometry.grid import Grid

TABLE = ClassTable(names=("free", "a", "b", "c", "d"), free=0, ignore=255)
GRID = Grid((0.0, 0.0, 0.0), (5.0, 5.0, 5.0), (1.0, 1.0, 1.0))
SEEN = {}  # what the metrics were given, by option


class Frame:
    def __init__(self, token):
        self.token, self.scene = token, "s"


class Frames(torch.utils.data.Dataset):
    def __init__(self, root, split, options):
        self.root = Path(root)
        index = json.loads((self.root / "bare.json").read_text())
        self.tokens = [t for s in index.values() for t in s] if split == "all" else list(index[split])
        self.frames = [Frame(t) for t in self.tokens]
        self.grid = GRID

    def __len__(self):
        return len(self.tokens)

    def index_of(self, token):
        return self.tokens.index(token)

    def frame_labels(self, i):
        path = self.root / "gt" / f"{self.tokens[i]}.npy"
        labels = np.load(path)
        return labels, labels != 255, path

    def scoring_labels(self, i):
        return {"occupancy": torch.from_numpy(self.frame_labels(i)[0])}


class Counts:
    name = "bare"

    def __init__(self, options):
        self.options = options
        self.counts = np.zeros((5, 5), np.int64)

    def update(self, pred, target):
        gt, p = target.occupancy.numpy().ravel().astype(np.int64), pred.numpy().ravel().astype(np.int64)
        keep = gt != 255
        self.counts += np.bincount(gt[keep] * 5 + p[keep], minlength=25).reshape(5, 5)

    def merge(self, other):
        self.counts += other.counts
        return self

    def all_reduce(self):
        pass

    def compute(self):
        c = self.counts
        iou = [c[k, k] / max(1, c[k].sum() + c[:, k].sum() - c[k, k]) for k in range(1, 5)]
        return {"miou": 100.0 * float(np.mean(iou)), "geometry_iou": 0.0, "mask": str(self.options.get("mask"))}


def metrics(options):
    return [Counts(options)]


FORMAT = DatasetFormat(
    name="bare",
    summary="bare (bare.json, gt/<token>.npy)",
    modality="multi-camera",
    classes=TABLE,
    grid=GRID,
    label_frame="ego",
    splits=("val",),
    open=Frames,
    predictions=PredictionFiles(
        write=lambda folder, token, labels: np.save(Path(folder) / f"{token}.npy", labels),
        index=lambda folder: {p.stem: p for p in Path(folder).glob("*.npy")},
        read=lambda path: np.load(path),
        relpath=lambda token: f"{token}.npy",
    ),
    detection=Detection(detect=lambda root: "it holds bare.json" if (root / "bare.json").is_file() else None),
    scoring=FormatScoring(metrics, folder_options=frozenset()),
)
"""


def write_bare(tmp_path: Path, frames: int = 4, gt_id: int | None = None, pred_id: int | None = None):
    """A dataset of :data:`BARE`'s layout and predictions; ``gt_id`` / ``pred_id``: an id written into one
    voxel of the last frame's ground truth / prediction. Returns ``(data, pred)``."""
    data, pred = tmp_path / "data", tmp_path / "pred"
    (data / "gt").mkdir(parents=True)
    pred.mkdir()
    tokens = [f"t{i}" for i in range(frames)]
    (data / "bare.json").write_text(json.dumps({"val": tokens}))
    rng = np.random.default_rng(1)
    for t in tokens:
        gt = rng.integers(0, 5, (5, 5, 5)).astype(np.uint8)
        p = gt.copy()
        p[0, 0] = 1
        if t == tokens[-1] and gt_id is not None:
            gt[1, 1, 1] = gt_id
        if t == tokens[-1] and pred_id is not None:
            p[2, 2, 2] = pred_id
        np.save(data / "gt" / f"{t}.npy", gt)
        np.save(pred / f"{t}.npy", p)
    return data, pred


@pytest.fixture
def bare(tmp_path):
    """:data:`BARE` installed as the package ``bare_pkg`` into ``tmp_path/site``."""
    return install_package(tmp_path / "site", "bare_pkg", {"format": BARE}, {"bare": "bare_pkg.format:FORMAT"})


def test_mask_and_metrics_reach_a_package_metric_whatever_its_folder_options(tmp_path, bare, capfd):
    """folder_options=frozenset() (as docs/design.md §9 sets it) filtered --mask and --metrics away from the
    format's metrics: --mask never arrived, and a metric asked for was accepted and silently not computed."""
    data, pred = write_bare(tmp_path)
    out = tmp_path / "s.json"
    # in one process here; through the processes of the scoring loop in the test of broken packages below
    args = ["--mask", "lidar", "--processes", "1", "--json", str(out)]
    run = occkit_here(capfd, bare, "eval", "--gt", str(data), "--pred", str(pred), *args)
    assert run.returncode == 0, run.stderr
    assert json.loads(out.read_text())["mask"] == "lidar"
    args = ["--metrics", "miou,bare", "--processes", "1"]
    run = occkit_here(capfd, bare, "eval", "--gt", str(data), "--pred", str(pred), *args)
    assert run.returncode == 0, run.stderr


def test_a_metric_asked_for_and_not_given_is_an_error(tmp_path):
    from occkit.scoring.folder import evaluate_predictions

    fmt = _load(tmp_path, BARE)
    data, pred = write_bare(tmp_path)
    with pytest.raises(ValueError, match=r"--metrics rayiou: the bare format computes miou, bare"):
        evaluate_predictions(fmt, data, pred, "val", progress=False, metrics=("miou", "rayiou"))


def _load_module(tmp_path: Path, code: str, name: str = "bare_mod") -> types.ModuleType:
    """The module ``code``, imported from a file (its format not registered)."""
    import importlib.util

    path = tmp_path / f"{name}.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _load(tmp_path: Path, code: str, name: str = "bare_mod"):
    """The ``FORMAT`` of the module ``code`` (not registered)."""
    return _load_module(tmp_path, code, name).FORMAT


@pytest.mark.parametrize("side", ["gt", "pred"])
def test_class_ids_outside_a_package_formats_table_are_named_with_their_file(tmp_path, side):
    """Before: "cannot reshape array of size 221 into shape (5,5)" from the package's metric."""
    from occkit.scoring.folder import evaluate_predictions

    fmt = _load(tmp_path, BARE)
    data, pred = write_bare(tmp_path, **({"gt_id": 7} if side == "gt" else {"pred_id": 9}))
    with pytest.raises(ValueError) as e:
        evaluate_predictions(fmt, data, pred, "val", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "reshape" not in msg
    if side == "gt":
        assert msg.startswith(f"{data / 'gt' / 't3.npy'}: ground truth of frame t3: class id 7 (1 voxels)")
        assert "0..4 and 255 (ignored)" in msg
    else:
        assert msg.startswith(f"{pred / 't3.npy'}: prediction: class id 9 (1 voxels) outside the format's ids 0..4")
    # the ignore id in the ground truth is no error
    data2, pred2 = write_bare(tmp_path / "ok", gt_id=255)
    assert evaluate_predictions(fmt, data2, pred2, "val", progress=False)["miou"] > 0


# ------------------------------------------------------------ the contract, enforced when the registry loads
@pytest.fixture
def fresh_registry(monkeypatch):
    """The registry found again (and forgotten after the test), with entry points of the test's own."""
    monkeypatch.setattr(registry, "_REGISTRY", None)
    eps: list[metadata.EntryPoint] = []

    def entry_points(group=None, **kw):
        return [e for e in eps if e.group == group] if group is not None else eps

    monkeypatch.setattr(registry.metadata, "entry_points", entry_points)
    yield eps
    registry._REGISTRY = None


def _register(fresh_registry, monkeypatch, tmp_path, name: str, **changes) -> str:
    """:data:`BARE` with ``changes`` registered as the package module ``name`` (entry point ``name``)."""
    fmt = dataclasses.replace(_load(tmp_path, BARE, f"{name}_src"), name=name, **changes)
    mod = types.ModuleType(name)
    mod.FORMAT = fmt
    monkeypatch.setitem(sys.modules, name, mod)
    fresh_registry.append(metadata.EntryPoint(name=name, value=f"{name}:FORMAT", group=ENTRY_POINT_GROUP))
    return name


#: :data:`BARE` as a package wrote it against occkit 0.1's contract: its records' fields as flat keywords.
BARE_FLAT = (
    BARE[: BARE.index("FORMAT = DatasetFormat(")]
    + """FORMAT = DatasetFormat(
    name="bareflat",
    summary="bare (bare.json, gt/<token>.npy)",
    modality="multi-camera",
    classes=TABLE,
    grid=GRID,
    label_frame="ego",
    splits=("val",),
    detect=lambda root: "it holds bare.json" if (root / "bare.json").is_file() else None,
    open=Frames,
    metrics=metrics,
    predictions=PredictionFiles(
        write=lambda folder, token, labels: np.save(Path(folder) / f"{token}.npy", labels),
        index=lambda folder: {p.stem: p for p in Path(folder).glob("*.npy")},
        read=lambda path: np.load(path),
        relpath=lambda token: f"{token}.npy",
    ),
    folder_options=frozenset(),
)
"""
)


def test_a_format_of_the_flat_keywords_of_0_1_registers_and_scores_with_a_warning(
    fresh_registry, monkeypatch, tmp_path
):
    """A package written before the records (DatasetFormat(detect=..., metrics=..., folder_options=...)):
    its keywords are moved into their records with one warning line (a FutureWarning, shown under the CLI)
    naming the package and the records' fields, and the format registers, is detected and scores as the same
    format written with the records does."""
    from occkit.deprecation import OccKitDeprecationWarning
    from occkit.formats import detect_format, get_format
    from occkit.scoring.folder import evaluate_predictions

    with pytest.warns(OccKitDeprecationWarning) as said:
        mod = _load_module(tmp_path, BARE_FLAT, "bareflat_pkg")
    (warning,) = said.list
    msg = str(warning.message)
    assert isinstance(warning.message, FutureWarning)  # shown by default, unlike a DeprecationWarning
    assert "\n" not in msg and msg.startswith("bareflat_pkg: DatasetFormat(detect=, metrics=, folder_options=...)")
    assert "give detection.detect, scoring.metrics, scoring.folder_options" in msg and "0.3.0" in msg
    assert mod.FORMAT.scoring.metrics is mod.metrics and mod.FORMAT.scoring.folder_options == frozenset()
    monkeypatch.setitem(sys.modules, "bareflat_pkg", mod)
    fresh_registry.append(metadata.EntryPoint(name="bareflat", value="bareflat_pkg:FORMAT", group=ENTRY_POINT_GROUP))
    data, pred = write_bare(tmp_path)
    fmt = get_format("bareflat")
    assert fmt is mod.FORMAT and fmt.from_package and detect_format(data) is fmt
    scores = evaluate_predictions(fmt, data, pred, "val", progress=False)
    records = evaluate_predictions(_load(tmp_path, BARE), data, pred, "val", progress=False)
    assert scores.pop("benchmark") == "bareflat" and records.pop("benchmark") == "bare"
    assert scores == records and scores["miou"] > 0
    # the old names still read, from the records, each with a warning naming where it lives now
    with pytest.warns(
        FutureWarning, match=r"^[\w.]+: DatasetFormat\.metrics moved to DatasetFormat\.scoring\.metrics;"
    ):
        assert fmt.metrics is mod.metrics


def _warnings(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_a_package_format_whose_class_table_is_no_class_table_is_left_out_in_one_line(
    fresh_registry, monkeypatch, tmp_path, capsys
):
    """Before: every command on every format ended in a traceback (the registry read its table's ids)."""
    from occkit.formats import FormatRegistryError, format_names, get_format

    _register(fresh_registry, monkeypatch, tmp_path, "badtable", classes=("free", "a", "b"))
    _register(fresh_registry, monkeypatch, tmp_path, "goodbare")
    names = format_names()
    assert "occ3d" in names and "goodbare" in names and "badtable" not in names
    (line,) = _warnings(capsys)
    assert "entry point badtable = badtable:FORMAT" in line and "its classes is a tuple" in line
    assert "not an occkit.formats.ClassTable" in line and line.endswith("left out")
    with pytest.raises(FormatRegistryError) as e:
        get_format("badtable")  # was: only "'badtable' is not one of ..."
    assert "failed to load" in str(e.value) and "its classes is a tuple" in str(e.value)
    fresh_registry.append(metadata.EntryPoint(name="gone", value="no_such_module_x:FORMAT", group=ENTRY_POINT_GROUP))
    registry._REGISTRY = None
    with pytest.raises(FormatRegistryError, match=r"'gone' is another package's format that failed to load: .*"):
        get_format("gone")
    assert "ModuleNotFoundError" in str(pytest.raises(FormatRegistryError, get_format, "gone").value)


def test_a_package_detect_that_calls_sys_exit_is_named_and_the_others_keep_working(
    fresh_registry, monkeypatch, tmp_path, capsys
):
    """Before: `occkit eval` ended with exit status 3 and no word."""
    from occkit.formats import detect_format

    def detect(root):
        sys.exit(3)

    _register(fresh_registry, monkeypatch, tmp_path, "exiting", detection=Detection(detect))
    (tmp_path / "occ").mkdir()
    (tmp_path / "occ" / "annotations.json").write_text("{}")
    assert detect_format(tmp_path / "occ").name == "occ3d"
    (line,) = _warnings(capsys)
    assert "format exiting (entry point exiting = exiting:FORMAT" in line and "its detect(" in line
    assert "SystemExit: 3" in line and "left out of the detection" in line


def test_a_package_open_that_calls_sys_exit_is_one_line(fresh_registry, monkeypatch, tmp_path):
    from occkit.formats import FormatPluginError, get_format

    def open_(root, split, options):
        raise SystemExit(2)

    _register(fresh_registry, monkeypatch, tmp_path, "exitopen", open=open_)
    with pytest.raises(
        FormatPluginError, match=r"format exitopen \(entry point .*\): its open failed \(SystemExit: 2\)"
    ):
        get_format("exitopen").open_split(tmp_path, "val")


@pytest.mark.parametrize("kind", ["list", "valueerror"])
def test_a_package_metric_that_breaks_is_named_with_the_package(fresh_registry, monkeypatch, tmp_path, kind):
    """A metric whose compute returns a list was a traceback; one raising ValueError was not attributed."""
    from occkit.formats import FormatPluginError, get_format
    from occkit.scoring.folder import evaluate_predictions

    mod = _load_module(tmp_path, BARE, "bare_metrics_src")

    class Broken(mod.Counts):
        def compute(self):
            if kind == "list":
                return [1.0, 2.0]
            raise ValueError("no frames counted")

    scoring = dataclasses.replace(mod.FORMAT.scoring, metrics=lambda options: [Broken(options)])
    _register(fresh_registry, monkeypatch, tmp_path, "brokenmetric", scoring=scoring)
    data, pred = write_bare(tmp_path)
    with pytest.raises(FormatPluginError) as e:
        evaluate_predictions(get_format("brokenmetric"), data, pred, "val", progress=False)
    msg = str(e.value)
    assert msg.startswith("format brokenmetric (entry point brokenmetric = brokenmetric:FORMAT")
    assert "metric bare's compute" in msg and "\n" not in msg
    assert ("returned a list, not a dict of scores" in msg) if kind == "list" else ("no frames counted" in msg)


def test_a_metric_that_cannot_be_pickled_is_scored_in_one_process_with_a_line_saying_why(
    fresh_registry, monkeypatch, tmp_path
):
    from occkit.formats import get_format
    from occkit.scoring.folder import evaluate_predictions

    mod = _load_module(tmp_path, BARE, "bare_pickle_src")

    class Unpicklable(mod.Counts):
        def __init__(self, options):
            super().__init__(options)
            self.hook = lambda x: x  # a lambda held by the metric: cannot be sent to another process

    scoring = dataclasses.replace(mod.FORMAT.scoring, metrics=lambda options: [Unpicklable(options)])
    _register(fresh_registry, monkeypatch, tmp_path, "nopickle", scoring=scoring)
    data, pred = write_bare(tmp_path)
    fmt = get_format("nopickle")
    with pytest.warns(UserWarning, match=r"format nopickle \(.*\): its metrics or options cannot be sent to another"):
        many = evaluate_predictions(fmt, data, pred, "val", progress=False, processes=2)
    one = evaluate_predictions(fmt, data, pred, "val", progress=False, processes=1)
    assert many["miou"] == one["miou"] > 0


# ------------------------------------------------------------ detection: variants and folders occkit wrote
def _occ3d_like(name: str, detect, refines=()):
    from occkit.formats.occ3d import FORMAT  # the module's, not the registry's (found again in the test)

    detection = dataclasses.replace(FORMAT.detection, detect=detect, refines=refines)
    return dataclasses.replace(FORMAT, name=name, title="", source="", detection=detection)


def _register_format(fresh_registry, monkeypatch, fmt) -> None:
    mod = types.ModuleType(f"{fmt.name}_pkg")
    mod.FORMAT = fmt
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    fresh_registry.append(metadata.EntryPoint(name=fmt.name, value=f"{mod.__name__}:FORMAT", group=ENTRY_POINT_GROUP))


def test_a_variant_wins_over_the_layout_it_refines_only_on_its_own_folders(fresh_registry, monkeypatch, tmp_path):
    """Before: a package declaring that it refines occ3d, whose detect answers as occ3d's does, became the
    format of every Occ3D folder (and its reader then named a file those folders lack)."""
    from occkit.formats import detect_format

    def same(root):
        return "it holds annotations.json" if (root / "annotations.json").is_file() else None

    def own(root):
        return (
            "it holds waymo.json" if (root / "waymo.json").is_file() and (root / "annotations.json").is_file() else None
        )

    _register_format(fresh_registry, monkeypatch, _occ3d_like("greedy", same, refines=("occ3d",)))
    _register_format(fresh_registry, monkeypatch, _occ3d_like("waymo", own, refines=("occ3d",)))
    occ = tmp_path / "occ"
    occ.mkdir()
    (occ / "annotations.json").write_text("{}")
    assert detect_format(occ).name == "occ3d"
    (occ / "waymo.json").write_text("{}")
    assert detect_format(occ).name == "waymo"  # its own folder: the variant


def test_a_folder_occkit_synth_wrote_as_a_format_reads_as_that_format(fresh_registry, monkeypatch, tmp_path):
    """A package format that keeps Occ3D's annotations.json without refining occ3d: the folder its
    `occkit synth --format` wrote was refused as "two formats" by every other command."""
    from occkit.formats import FormatRegistryError, detect_format
    from occkit.outputs import OUTPUT_RECORD, mark_output

    def detect(root):
        return "annotations.json and cams.json" if (root / "cams.json").is_file() else None

    _register_format(fresh_registry, monkeypatch, _occ3d_like("occ3dcams", detect))
    folder = tmp_path / "synth"
    folder.mkdir()
    (folder / "annotations.json").write_text("{}")
    (folder / "cams.json").write_text("{}")
    with pytest.raises(FormatRegistryError, match="holds the layouts of 2 formats"):
        detect_format(folder)  # no record of who wrote it: both claims stand
    mark_output(folder, "synth", format="occ3dcams")
    assert registry.OUTPUT_RECORD == OUTPUT_RECORD
    assert detect_format(folder).name == "occ3dcams"
    mark_output(folder, "synth", format="occ3d")  # written as occ3d: occ3d, which claims it too
    assert detect_format(folder).name == "occ3d"


# ------------------------------------------------------------ occkit convert from a package format
def _nested_occ3d_format(fresh_registry, monkeypatch, flow: bool = False):
    """A package format of the nuScenes family whose folders hold ``nested.json`` and an Occ3D folder
    ``inner/`` it reads; with ``flow``, its frames carry a per-voxel ``flow`` field."""
    from occkit.formats.occ3d import FORMAT as OCC3D
    from occkit.formats.occ3d import open_split

    writer = OCC3D.writers.label_writer

    def read(ds, i, options):
        frame = writer.read(ds, i, options)
        if flow:
            frame.fields["flow"] = np.zeros((*OCC3D.grid.shape, 2), np.float32)
        return frame

    fmt = dataclasses.replace(
        OCC3D,
        name="nested",
        title="",
        source="",
        detection=dataclasses.replace(
            OCC3D.detection, detect=lambda root: "it holds nested.json" if (root / "nested.json").is_file() else None
        ),
        open=lambda root, split, options: open_split(root / "inner", split, options),
        writers=dataclasses.replace(OCC3D.writers, label_writer=dataclasses.replace(writer, read=read)),
    )
    _register_format(fresh_registry, monkeypatch, fmt)


def test_convert_from_a_package_format_the_target_cannot_take_fails_before_writing(
    fresh_registry, monkeypatch, tmp_path, tiny_occ3d_root
):
    """A target whose index needs what the source's records lack (a package's layout of the nuScenes family
    whose index needs each frame's ``lidar_sensor``): said in one line from the rehearsal on the first frame,
    before any frame is written (before: after every frame was written). A source that keeps no
    ``annotations.json`` of its own is no such case: Occ3D's index is finished from its records
    (tests/formats/test_convert_from_a_package_format.py)."""
    import json

    from occkit.convert import convert_dataset
    from occkit.formats.occ3d import FORMAT as OCC3D
    from occkit.formats.spec import ConvertError

    _nested_occ3d_format(fresh_registry, monkeypatch)
    writer = OCC3D.writers.label_writer

    def finish(out, frames, options):
        return [str(f.record["lidar_sensor"]["token"]) for f in frames]  # its index names the LiDAR samples

    needy = dataclasses.replace(
        OCC3D,
        name="needy",
        title="",
        source="",
        detection=dataclasses.replace(OCC3D.detection, detect=lambda root: None),
        writers=dataclasses.replace(OCC3D.writers, label_writer=dataclasses.replace(writer, finish=finish)),
    )
    _register_format(fresh_registry, monkeypatch, needy)
    src = tmp_path / "src"
    src.mkdir()
    (src / "nested.json").write_text("{}")
    (src / "inner").symlink_to(tiny_occ3d_root, target_is_directory=True)
    out = tmp_path / "out"
    with pytest.raises(ConvertError) as e:
        convert_dataset(src, out, "needy", source_format="nested", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{src}: needy cannot take nested's frames: writing the index")
    assert "KeyError: 'lidar_sensor'" in msg and "nothing was written" in msg
    assert not out.exists() or not any(p for p in out.rglob("*.npz"))  # no frame written
    # to Occ3D, the same source (no annotations.json at its root) converts: the index from the records
    report = convert_dataset(src, tmp_path / "occ3d", "occ3d", source_format="nested", progress=False)
    ann, inner = (json.loads((p / "annotations.json").read_text()) for p in (tmp_path / "occ3d", tiny_occ3d_root))
    assert report["frames"] == 4 and ann["scene_infos"] == inner["scene_infos"]


def test_convert_says_which_per_voxel_fields_it_drops(fresh_registry, monkeypatch, tmp_path, tiny_occ3d_root):
    """Before: a source's per-voxel flow was dropped and the conversion reported lossless."""
    import shutil

    from occkit.convert import convert_dataset
    from occkit.convert.report import summary_lines

    _nested_occ3d_format(fresh_registry, monkeypatch, flow=True)
    src = tmp_path / "src"
    src.mkdir()
    (src / "nested.json").write_text("{}")
    (src / "inner").symlink_to(tiny_occ3d_root, target_is_directory=True)
    shutil.copy(tiny_occ3d_root / "annotations.json", src / "annotations.json")  # the index the target copies
    report = convert_dataset(src, tmp_path / "out", "occ3d", source_format="nested", progress=False)
    assert report["lossless"] is False
    assert report["fields_dropped"] == {"flow": 200 * 200 * 16 * report["frames"]}
    voxels = report["fields_dropped"]["flow"]
    assert f"  flow: not kept by occ3d (per-voxel, {voxels} voxels)" in summary_lines(report)
    assert summary_lines(report)[-1] == "  not lossless (see above)"


# ------------------------------------------------------------ words
@pytest.mark.parametrize(
    "title, shown",
    [
        ("an OpenOcc v2.1 dataset", "OpenOcc v2.1"),
        ("The Relabel format", "Relabel"),
        ("SurroundOcc", "SurroundOcc"),
        ("", "bare"),
    ],
)
def test_a_title_with_an_article_reads_once_in_sentences(tmp_path, title, shown):
    """Before: "the an OpenOcc v2.1 dataset format" (the spec's example title carried its article)."""
    fmt = dataclasses.replace(_load(tmp_path, BARE), title=title)
    assert fmt.display_name == shown
    with pytest.raises(ValueError, match=rf"is {re.escape(shown)} data, whose splits"):
        fmt.open_split(tmp_path, "nope")


def test_show_calls_a_mask_that_is_only_the_labelled_voxels_so():
    """Before: a format with no visibility masks (its mask_camera the known voxels, as docs/design.md §9's
    writes it) was labelled "(camera mask)"."""
    import torch

    from occkit.commands.show import mask_label

    occ = torch.tensor([[[0, 1], [255, 2]]])
    known = types.SimpleNamespace(occupancy=occ, mask_camera=occ != 255, mask_lidar=None)
    seen = types.SimpleNamespace(
        occupancy=occ, mask_camera=torch.tensor([[[True, False], [False, True]]]), mask_lidar=None
    )
    assert mask_label(known, "camera", 255) == "labelled voxels"
    assert mask_label(seen, "camera", 255) is None  # a mask of its own: its own name
    assert mask_label(known, "none", 255) is None and mask_label(known, "camera", None) is None


def test_occkit_eval_with_broken_packages_installed_names_each_in_one_line_and_scores(tmp_path, bare, capfd):
    """Three packages installed beside a working one: a class table that is no ClassTable (was: a traceback
    in every command on every format), a detect calling sys.exit(3) (was: `occkit eval` ended with status 3
    and no word), a detect that raises. Each is one warning line naming the package and the role; the
    working format scores."""
    broken = {
        "badtable_fmt": BARE.replace('name="bare"', 'name="badtable"').replace("classes=TABLE", "classes=TABLE.names"),
        "exiting_fmt": BARE.replace('name="bare"', 'name="exiting"').replace(
            "detect=lambda root:", "detect=lambda root: __import__('sys').exit(3) or"
        ),
        "raising_fmt": BARE.replace('name="bare"', 'name="raising"').replace(
            "detect=lambda root:", "detect=lambda root: 1 / 0 or"
        ),
    }
    install_package(
        bare,
        "broken_pkgs",
        broken,
        {name.removesuffix("_fmt"): f"broken_pkgs.{name}:FORMAT" for name in broken},
    )
    data, pred = write_bare(tmp_path)
    # scored in 2 processes, which say none of the lines again, and which --mask reaches (the test above, there)
    out = tmp_path / "s.json"
    args = ["--no-progress", "--processes", "2", "--mask", "lidar", "--json", str(out)]
    run = occkit_here(capfd, bare, "eval", "--gt", str(data), "--pred", str(pred), *args)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and "miou" in run.stdout
    assert json.loads(out.read_text())["mask"] == "lidar"
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 3, lines
    table = next(line for line in lines if "badtable" in line)
    assert "broken_pkgs.badtable_fmt:FORMAT" in table and "its classes is a tuple" in table
    exiting = next(line for line in lines if "exiting" in line)
    assert "its detect(" in exiting and "SystemExit: 3" in exiting
    raising = next(line for line in lines if "raising" in line)
    assert "its detect(" in raising and "ZeroDivisionError" in raising
    run = occkit_here(capfd, bare, "eval", "--gt", str(data), "--pred", str(pred), "--format", "badtable")
    assert run.returncode == 1 and "'badtable' is another package's format that failed to load" in run.stderr


# ------------------------------------------------------------ a package's role that answers nonsense, named
def _eval_line(capsys, data, pred, *args) -> tuple[int, str]:
    """``occkit eval`` in this process: its exit status and its stderr's one error line."""
    from occkit.cli import main

    capsys.readouterr()
    rc = main(["eval", "--gt", str(data), "--pred", str(pred), "--no-progress", *args])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1, err
    return rc, err[0]


@pytest.mark.parametrize("returned", [None, [], "frames"], ids=["none", "list", "str"])
def test_a_package_open_that_returns_no_dataset_is_named_in_one_line(
    fresh_registry, monkeypatch, tmp_path, capsys, returned
):
    """Before: None or a list went on as the dataset and failed in occkit with a traceback."""
    name = _register(fresh_registry, monkeypatch, tmp_path, "noopen", open=lambda root, split, options: returned)
    data, pred = write_bare(tmp_path)
    rc, line = _eval_line(capsys, data, pred, "--format", name)
    assert rc == 1 and line.startswith("occkit eval: error: format noopen (entry point noopen = noopen:FORMAT")
    assert f"its open returned a {type(returned).__name__}, not a dataset of frames" in line
    assert line.endswith("a bug of that package")


@pytest.mark.parametrize(
    "given, said",
    [
        (None, "its metrics() returned a NoneType, not a list of metrics; a bug of that package"),
        ([object()], "its metrics() gave a object, which lacks name/update/merge/all_reduce/compute"),
    ],
    ids=["none", "object"],
)
def test_a_package_metrics_that_gives_no_metric_is_named_in_one_line(
    fresh_registry, monkeypatch, tmp_path, capsys, given, said
):
    """Before: `list(None)` and the metric check raised TypeError, an "internal error" with a traceback."""
    mod = _load_module(tmp_path, BARE, "bare_nometrics_src")
    scoring = dataclasses.replace(mod.FORMAT.scoring, metrics=lambda options: given)
    name = _register(fresh_registry, monkeypatch, tmp_path, "nometrics", scoring=scoring)
    data, pred = write_bare(tmp_path)
    rc, line = _eval_line(capsys, data, pred, "--format", name)
    assert rc == 1 and line.startswith("occkit eval: error: format nometrics (entry point nometrics")
    assert said in line


def test_a_package_metric_whose_scores_nest_deeper_is_named_in_one_line(fresh_registry, monkeypatch, tmp_path, capsys):
    """Before: a dict of dicts of dicts reached the table and the JSON writer."""
    mod = _load_module(tmp_path, BARE, "bare_nested_src")

    class Nested(mod.Counts):
        def compute(self):
            return {**super().compute(), "iou": {"a": {"left": 1.0, "right": 2.0}}}

    scoring = dataclasses.replace(mod.FORMAT.scoring, metrics=lambda options: [Nested(options)])
    name = _register(fresh_registry, monkeypatch, tmp_path, "nested", scoring=scoring)
    data, pred = write_bare(tmp_path)
    rc, line = _eval_line(capsys, data, pred, "--format", name)
    assert rc == 1 and "format nested (entry point nested = nested:FORMAT" in line
    assert "its metric bare's compute returned a nested dict at 'iou' -> 'a'" in line
    assert line.endswith("a bug of that package")


def test_stats_names_a_package_open_that_calls_sys_exit(fresh_registry, monkeypatch, tmp_path, capsys):
    """Before: `occkit stats` ended with status 4 and printed nothing (eval and train named it)."""
    from occkit.cli import main

    def open_(root, split, options):
        sys.exit(4)

    name = _register(fresh_registry, monkeypatch, tmp_path, "exitstats", open=open_)
    data, _ = write_bare(tmp_path)
    assert main(["stats", str(data), "--format", name, "--split", "all", "--no-progress"]) == 1
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert line.startswith("occkit stats: error: format exitstats (entry point exitstats = exitstats:FORMAT")
    assert "its open failed (SystemExit: 4)" in line


@pytest.mark.parametrize("answer", ["", False, []], ids=["empty-str", "false", "empty-list"])
def test_a_detect_answering_nothing_is_no_claim(fresh_registry, monkeypatch, tmp_path, answer):
    """Before: '', False or [] (not None) counted as a claim, and an Occ3D folder read as two formats."""
    from occkit.formats import detect_claims, detect_format

    _register(fresh_registry, monkeypatch, tmp_path, "mute", detection=Detection(lambda root: answer))
    (tmp_path / "occ").mkdir()
    (tmp_path / "occ" / "annotations.json").write_text("{}")
    assert [spec.name for spec, _ in detect_claims(tmp_path / "occ")] == ["occ3d"]
    assert detect_format(tmp_path / "occ").name == "occ3d"


def test_a_metric_name_a_package_declares_and_nothing_computes_is_refused(fresh_registry, monkeypatch, tmp_path):
    """Before: `--metrics ghost` (in the package's scoring.metric_names, given by none of its metrics) was
    accepted, and the result had no ghost."""
    from occkit.formats import get_format
    from occkit.scoring.folder import evaluate_predictions

    mod = _load_module(tmp_path, BARE, "bare_ghost_src")
    scoring = dataclasses.replace(mod.FORMAT.scoring, metric_names=("miou", "bare", "geometry_iou", "ghost"))
    name = _register(fresh_registry, monkeypatch, tmp_path, "ghostly", scoring=scoring)
    data, pred = write_bare(tmp_path)
    fmt = get_format(name)
    with pytest.raises(ValueError) as e:
        evaluate_predictions(fmt, data, pred, "val", progress=False, metrics=("miou", "ghost"))
    msg = str(e.value)
    assert msg.startswith("--metrics ghost: the ghostly format declares it (scoring.metric_names) but none of its")
    assert "its metrics give bare, frames" not in msg and "geometry_iou" in msg and "\n" not in msg
    # what its metrics do compute is taken: the metric's name, and a key of its scores
    scores = evaluate_predictions(fmt, data, pred, "val", progress=False, metrics=("bare", "geometry_iou"))
    assert scores["miou"] > 0
