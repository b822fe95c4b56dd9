"""``benchmarks/recording_to_model.py``: bad options are one line before any work; a stage is run once (a rerun
skips what is done and retries what failed, its one-line error kept); two sections running at once in two
processes keep each other's results in the file they share."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("recording_to_model", ROOT / "benchmarks" / "recording_to_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--rows", "radocc,bogus"], "--rows: unknown bogus (choices: radocc, easyocc"),
        (["--rows", ","], "--rows: none given"),
        (["--readers", "rosbag"], "--readers: unknown rosbag (choices: bag, points, kitti-raw, nuscenes)"),
        (["--sections", "loops"], "--sections: unknown loops"),
        (["--scenes", "1"], "--scenes 1: expected an integer >= 2"),
        (["--steps", "0"], "--steps 0: expected an integer >= 1"),
        (["--image-size", "8", "64"], "--image-size 8: expected an integer >= 16"),
    ],
)
def test_bad_options_are_one_line_before_any_work(tmp_path, capsys, extra, words):
    out = tmp_path / "b"
    assert _bench().main(["--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err
    assert not out.exists()


def _cmd(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_stage_runs_once_and_a_failure_keeps_its_one_line(tmp_path):
    mod = _bench()
    st = mod.Stages(tmp_path)
    mark = tmp_path / "ran"
    assert st.run("a", [_cmd(f"open({str(mark)!r}, 'a').write('x')"), _cmd("pass")])
    bad = "import sys; print('working'); sys.exit('train: data.cameras: image_2 is not a camera of L')"
    assert not st.run("b", [_cmd(bad), _cmd(f"open({str(mark)!r}, 'a').write('never')")])
    again = mod.Stages(tmp_path)  # a rerun: "a" skipped, "b" tried again
    assert again.run("a", [_cmd("raise SystemExit(1)")])
    assert mark.read_text() == "x"
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["a"]["rc"] == 0 and [p[0] for p in res["a"]["parts"]] == ["-c", "-c"]
    assert res["b"]["rc"] == 1 and res["b"]["error"] == "train: data.cameras: image_2 is not a camera of L"
    assert again.run("b", [_cmd("pass")]) and json.loads((tmp_path / "results.json").read_text())["b"]["rc"] == 0


def test_two_sections_at_once_keep_each_others_results(tmp_path):
    mod = _bench()
    one, two = mod.Stages(tmp_path), mod.Stages(tmp_path)  # both read the file before either wrote
    assert one.run("world", [_cmd("pass")])
    assert two.run("label", [_cmd("pass")])
    assert one.run("radocc", [_cmd("pass")])
    assert sorted(json.loads((tmp_path / "results.json").read_text())) == ["label", "radocc", "world"]
