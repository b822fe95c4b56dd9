"""The contract between occkit and a dataset format of another package (entry point group
``occkit.datasets``), as docs/design.md §9 writes it: a package's roles may be lambdas and still score in
several processes; ``--mask`` and ``--metrics`` reach its metrics whatever its ``folder_options``; class
ids outside its table are named with their file; a broken part of a package is named in one line with the
package and the role, and every other format keeps working."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from occkit.formats import ENTRY_POINT_GROUP, registry

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


# ------------------------------------------------------------ the design doc's example, installed as a package
def test_the_design_docs_format_installed_as_a_package_scores_miou_and_rayiou_in_processes(tmp_path, synth_root):
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
    run = occkit_cli(site, *args, "--processes", "1", "--no-progress", "--json", str(alone))
    assert run.returncode == 0, run.stdout + run.stderr
    one = json.loads(alone.read_text())
    assert {k: one[k] for k in ("miou", "geometry_iou", "rayiou", "rayiou@1")} == {
        k: scores[k] for k in ("miou", "geometry_iou", "rayiou", "rayiou@1")
    }
