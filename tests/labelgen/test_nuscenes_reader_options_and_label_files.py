"""The options of ``occkit label --reader nuscenes`` and its per-sample files: ``--version`` given as
the folder's name with a slash or as its path is the folder, one that is empty, missing or holds no
tables is named with what it lacks; ``--scenes`` naming no scene is refused (it labelled every scene);
a nuScenes-panoptic file that is not an archive, lacks ``data``, or holds other than one integer per
point is named with the cause (a float array was truncated to classes unsaid) (docs/labels.md,
"nuScenes tables")."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from occkit.cli import main

pytest.importorskip(
    "nuscenes.nuscenes",
    reason="nuscenes-devkit is not installed: pip install --no-deps 'nuscenes-devkit>=1.1' (.ci/run does)",
)

VERSION = "v1.0-synth"


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> Path:
    """A nuScenes root of 2 scenes x 2 keyframes (2 sweeps between them, 8 beams): tables, samples,
    sweeps, lidarseg, maps."""
    out = tmp_path_factory.mktemp("nv") / "w"
    argv = ["synth", "--format", "nuscenes", "--out", str(out), "--scenes", "2", "--frames", "2"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main([*argv, "--image-size", "48", "80", "--sweeps", "2", "--beams", "8"]) == 0
    return out


def test_version_with_a_slash_or_as_its_path_is_the_table_folder(tables):
    from occkit.data.recordings.nuscenes import resolve_version

    assert resolve_version(tables, VERSION) == VERSION
    assert resolve_version(tables, VERSION + "/") == VERSION  # as a shell completes it: was refused
    assert resolve_version(tables, str(tables / VERSION)) == VERSION
    assert resolve_version(tables, f"../{tables.name}/{VERSION}") == VERSION


@pytest.mark.parametrize(
    "version, said",
    [
        ("", "--version '': empty; name a table folder under --data"),
        ("v1.0-nope", "v1.0-nope: no such folder (--data holds v1.0-synth)"),
        ("samples", "samples: a folder without sample.json, sample_data.json, scene.json"),
        ("/elsewhere/v1.0-synth", "a path, not one of the table folders under --data"),
    ],
    ids=["empty", "missing", "a folder of no tables", "a path elsewhere"],
)
def test_a_version_that_names_no_table_folder_says_why(tables, version, said):
    from occkit.data.recordings.nuscenes import resolve_version

    with pytest.raises((ValueError, FileNotFoundError)) as err:
        resolve_version(tables, version)
    assert said in str(err.value) and "\n" not in str(err.value), str(err.value)


def _label(argv) -> tuple[int, list[str]]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = main(["label", "--reader", "nuscenes", *argv])
    return rc, [line for line in err.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize("scenes", [",", ""])
def test_scenes_naming_no_scene_is_refused(tables, tmp_path, scenes):
    out = tmp_path / "lab"
    rc, err = _label(["--data", str(tables), "--out", str(out), "--scenes", scenes])
    assert rc == 1 and len(err) == 1 and f"--scenes {scenes!r}: names no scene" in err[0], err
    assert not out.exists()


def _panoptic_root(tables: Path, root: Path, spoil) -> Path:
    """A copy of the tables whose point labels are nuScenes-panoptic files (lidarseg's categories
    * 1000 + 7), each passed through ``spoil(path, data)``."""
    root.mkdir()
    shutil.copytree(tables / VERSION, root / VERSION)
    for name in ("samples", "sweeps", "maps"):
        (root / name).symlink_to(tables / name, target_is_directory=True)
    rows = json.loads((root / VERSION / "lidarseg.json").read_text())
    (root / VERSION / "lidarseg.json").unlink()
    pan = []
    for r in rows:
        seg = np.fromfile(tables / r["filename"], dtype=np.uint8).astype(np.int32)
        rel = f"panoptic/{VERSION}/{r['sample_data_token']}_panoptic.npz"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        spoil(root / rel, (seg * 1000 + 7).astype(np.uint16))
        pan.append({**r, "filename": rel})
    (root / VERSION / "panoptic.json").write_text(json.dumps(pan))
    return root


@pytest.mark.parametrize(
    "spoil, said",
    [
        (lambda f, d: f.write_bytes(b"not an archive"), "not a .npz archive"),
        (lambda f, d: np.savez_compressed(f, other=d), "no 'data' array (it holds other)"),
        (lambda f, d: np.savez_compressed(f, data=d.astype(np.float32) + 0.5), "'data' is float32 of shape"),
        (lambda f, d: np.savez_compressed(f, data=d[:, None]), "'data' is uint16 of shape"),
    ],
    ids=["not an archive", "no data", "floats", "a column"],
)
def test_a_damaged_panoptic_file_is_named_with_the_cause(tables, tmp_path, spoil, said):
    from occkit.data.recordings.registry import open_recording

    root = _panoptic_root(tables, tmp_path / "root", spoil)
    with pytest.raises(ValueError) as err:
        open_recording(root, "nuscenes", {}).read_scene("scene-0000")
    msg = str(err.value)
    assert msg.startswith(str(root / "panoptic" / VERSION)) and said in msg and "panoptic.json" in msg, msg
    assert "\n" not in msg


def test_panoptic_labels_of_signed_integers_read_as_unsigned_ones(tables, tmp_path):
    """The check refuses floats, not other integer types: int32 data gives the uint16 file's classes."""
    from occkit.data.recordings.registry import open_recording

    a = _panoptic_root(tables, tmp_path / "a", lambda f, d: np.savez_compressed(f, data=d))
    b = _panoptic_root(tables, tmp_path / "b", lambda f, d: np.savez_compressed(f, data=d.astype(np.int32)))
    ra = open_recording(a, "nuscenes", {}).read_scene("scene-0000")
    rb = open_recording(b, "nuscenes", {}).read_scene("scene-0000")
    keys = [(x, y) for x, y in zip(ra.sweeps, rb.sweeps) if x.keyframe]
    assert keys and all(x.labels is not None and np.array_equal(x.labels, y.labels) for x, y in keys)
