"""Nothing of the user's is replaced (issue 73 items 4 and 6), and an error
names the real cause."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from occkit.cli import main

SYNTH_TINY = ["--scenes", "1", "--frames", "1", "--image-size", "8", "16"]


def _err(capsys) -> str:
    return capsys.readouterr().err.strip()


# ------------------------------------------------------------ nothing of the user's is replaced
def test_overwrite_keeps_an_empty_folder_the_user_put_in_the_output(tmp_path, capsys):
    out = tmp_path / "W"
    assert main(["synth", "--out", str(out), *SYNTH_TINY]) == 0
    (out / "my_empty_folder" / "inner").mkdir(parents=True)
    capsys.readouterr()
    assert main(["synth", "--out", str(out), *SYNTH_TINY, "--seed", "1", "--overwrite"]) == 1
    err = _err(capsys)
    assert err.count("\n") == 0 and "my_empty_folder/inner/ is a folder occkit synth did not make" in err
    assert (out / "my_empty_folder" / "inner").is_dir()


def test_overwrite_of_predictions_keeps_an_empty_folder_of_the_user(tmp_path, capsys):
    from occkit.outputs import check_own_files, record_folder_files

    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "t0.npz").write_bytes(b"x")
    record_folder_files(pred, "predict")
    check_own_files(pred, "predict")  # its own files only: fine
    (pred / "keep_me").mkdir()
    with pytest.raises(FileExistsError, match="keep_me/ is a folder occkit predict did not make"):
        check_own_files(pred, "predict")


def test_a_killed_priors_run_leaves_no_temporary_file_in_the_finished_cache(synth_root, tmp_path):
    from occkit.priors import build_prior
    from occkit.priors.cache import run_priors

    out = tmp_path / "cache"
    run_priors(synth_root, out, build_prior("oracle:clean"), kinds=["depth"], max_frames=1, progress=False)
    some = next(p for p in out.rglob("*.npz"))
    stale = some.parent / f".{some.name}.k1ll3d.tmp"  # what a kill -9 inside atomic_write leaves
    stale.write_bytes(b"half")
    run_priors(synth_root, out, build_prior("oracle:clean"), kinds=["depth"], max_frames=1, progress=False)
    assert not stale.exists() and not list(out.rglob(".*.tmp"))
    assert not list(tmp_path.glob(".*.lock"))  # the writer's lock is released


def _ablate_spec(tmp_path: Path) -> Path:
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "ablate"))
    from ablate_helpers import tiny_spec, write

    return write(tmp_path, "spec.yaml", tiny_spec())


def test_ablate_refuses_an_out_holding_a_results_md_of_the_user_also_in_dry_run(tmp_path, capsys, monkeypatch):
    from occkit.ablate.report import check_report_files, write_outputs

    spec = _ablate_spec(tmp_path)
    out = tmp_path / "abl"
    out.mkdir()
    (out / "results.md").write_text("my results")
    for extra in (["--dry-run"], ["--report"]):
        assert main(["ablate", str(spec), "--out", str(out), *extra]) == 1
        err = _err(capsys)
        assert err.count("\n") == 0 and "results.md: the file exists and occkit did not write it" in err
    assert (out / "results.md").read_text() == "my results"
    # its own report is rewritten; one changed by the user since is not
    own = tmp_path / "own"
    results = {"name": "t", "metric": "miou", "budget": 2, "seeds": [0], "arms": {}}
    import occkit.ablate.report as report

    monkeypatch.setattr(report, "markdown", lambda r: "table")  # the writing, not the table, is under test
    monkeypatch.setattr(report, "curves_image", lambda r: np.zeros((4, 4, 3), np.uint8))
    write_outputs(results, own)
    check_report_files(own)
    write_outputs(results, own)
    (own / "results.md").write_text("edited by me")
    with pytest.raises(FileExistsError, match="results.md: the file exists and occkit did not write it"):
        check_report_files(own)


def _demo(out: Path) -> list[str]:
    return ["demo", "--out", str(out), "--scenes", "1", "--frames", "1", "--steps", "1", "--workers", "1"]


def test_demo_refuses_a_folder_of_the_user_even_one_holding_only_a_data_folder(tmp_path, capsys):
    mine = tmp_path / "mine"
    (mine / "data").mkdir(parents=True)
    (mine / "data" / "annotations.json").write_text("{}")  # a world of the user's
    assert main(_demo(mine)) == 1
    err = _err(capsys)
    assert err.count("\n") == 0 and "the folder is not empty and occkit demo did not make it" in err
    assert sorted(p.name for p in mine.iterdir()) == ["data"]


def test_demo_refuses_a_report_the_user_wrote_in_its_own_folder(tmp_path, capsys):
    from occkit.commands.demo import check_demo_out
    from occkit.outputs import mark_output, write_json_output

    out = tmp_path / "demo"
    mark_output(out, "demo")
    write_json_output(out / "report.json", {"scores": {}}, "demo")
    check_demo_out(out)  # its own report: rewritten
    (out / "report.md").write_text("my notes")
    with pytest.raises(FileExistsError, match="report.md: the file exists and occkit did not write it"):
        check_demo_out(out)


def test_demo_replaces_its_world_of_other_settings_instead_of_reporting_it(tmp_path, capsys):
    from occkit.commands.demo import own_world
    from occkit.outputs import mark_output

    out = tmp_path / "demo"
    world = {"scenes": 1, "frames": 1, "seed": 0, "image_size": [8, 16]}
    mark_output(out, "demo", world=world)
    (out / "data").mkdir()
    (out / "data" / "annotations.json").write_text("{}")
    assert own_world(out, world)  # the same settings: reused
    assert not own_world(out, {**world, "seed": 5})  # other settings: removed, generated again
    assert not (out / "data").exists()
    said = capsys.readouterr().out
    assert "replacing the earlier demo world" in said and "seed 0 -> 5" in said


# ------------------------------------------------------------ the benchmarks' options
def _bench(name: str):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--device", "bogus"], "--device bogus: not a device"),
        (["--budget-s", "-1"], "--budget-s -1.0: expected a positive number of seconds"),
        (["--budget-s", "nan"], "--budget-s nan: expected a positive number of seconds"),
        (["--rows", "bogus"], "--rows bogus: not a preset of the check (its presets: occ3d-r50"),
        (["--rows"], "--rows: no preset given"),
    ],
)
def test_gpu_check_bad_options_are_one_line_before_any_work(tmp_path, capsys, extra, words):
    out = tmp_path / "g.json"
    assert _bench("gpu_check").main(["--device", "cpu", "--out", str(out), "--root", str(tmp_path / "r"), *extra]) == 2
    err = _err(capsys)
    assert err.count("\n") == 0 and words in err
    assert not out.exists() and not (tmp_path / "r").exists()


def test_gpu_check_never_replaces_a_file_of_the_user(tmp_path, capsys):
    gc = _bench("gpu_check")
    out = tmp_path / "g.json"
    out.write_text("my figures")
    assert gc.main(["--device", "cpu", "--out", str(out), "--root", str(tmp_path / "r")]) == 2
    assert "the file exists and occkit did not write it" in _err(capsys) and out.read_text() == "my figures"
    own = tmp_path / "own.json"
    gc.Report(own, 1.0).write()  # its own report: a later check may rewrite it
    args = gc.argparse.Namespace(
        device="cpu",
        budget_s=1.0,
        row_seconds=1.0,
        row_limit_s=1.0,
        stage_limit_s=1.0,
        steps=1,
        rows=None,
        out=own,
        inference_set=None,
    )
    assert gc.check_options(args) is None


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--rows", "bogus"], "--rows bogus: not a row of the table"),
        (["--image-size", "0", "0"], "--image-size 0 0: expected a height and a width of at least 1 pixel"),
        (["--kitti-size", "376", "-1"], "--kitti-size 376 -1: expected"),
    ],
)
def test_full_size_bad_options_are_one_line_before_any_work(tmp_path, capsys, extra, words):
    out = tmp_path / "fs"
    assert _bench("full_size").main(["--out", str(out), *extra]) == 2
    err = _err(capsys)
    assert err.count("\n") == 0 and words in err and not out.exists()


def test_full_size_never_writes_into_a_folder_of_the_user(tmp_path, capsys):
    out = tmp_path / "fs"
    out.mkdir()
    (out / "table.md").write_text("my table")
    assert _bench("full_size").main(["--out", str(out), "--rows", "occ3d-r50"]) == 2
    err = _err(capsys)
    assert err.count("\n") == 0 and "the folder is not empty and occkit full_size did not make it" in err
    assert sorted(p.name for p in out.iterdir()) == ["table.md"]


# ------------------------------------------------------------ the real cause named
def test_a_full_disk_is_said_as_such_whatever_raised_it():
    import errno

    from occkit.cli import user_error_message

    e = OSError(errno.ENOSPC, "No space left on device", "/r/checkpoints/x.tmp")
    assert user_error_message(e).startswith("the disk is full (No space left on device) while writing /r/checkpoints")

    class SafetensorError(Exception):  # safetensors' own error type around the OS error
        pass

    msg = user_error_message(
        SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space" })')
    )
    assert msg.startswith("the disk is full") and msg.count("\n") == 0
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("graph(%x : Float(1, 3)):\n" + "  %1 : Tensor = onnx::Add(%x)\n" * 1163) from inner
    except RuntimeError as outer:
        msg = user_error_message(outer)
    assert msg.startswith("the disk is full") and msg.count("\n") == 0 and len(msg) < 400


def test_a_full_disk_while_saving_a_checkpoint_is_said_not_an_internal_error(tmp_path, monkeypatch):
    import errno

    import torch

    import occkit.engine.checkpoint as ck
    from occkit.cli import user_error_message

    def fails(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(ck.torch, "save", fails)
    net = torch.nn.Linear(2, 2)
    monkeypatch.setattr(ck, "disk_nearly_full", lambda folder: True)
    with pytest.raises(OSError) as e:
        ck.save_checkpoint(tmp_path / "run", 1, net, {}, {})
    assert e.value.errno == errno.ENOSPC and "the disk is full" in user_error_message(e.value)
    assert not list((tmp_path / "run" / "checkpoints").iterdir())  # nothing half-written left
    monkeypatch.setattr(ck, "disk_nearly_full", lambda folder: False)  # space left: the error is what it is
    with pytest.raises(RuntimeError, match="PytorchStreamWriter"):
        ck.save_checkpoint(tmp_path / "run", 1, net, {}, {})


def test_a_full_disk_during_an_onnx_export_is_one_line_not_the_graph(tmp_path, monkeypatch):
    import errno

    import torch

    import occkit.export.onnx as ox
    import occkit.fileio

    def fails(*a, **k):
        raise RuntimeError("graph(%images : Float(1, 6, 3, 64, 176)):\n" + "  %5 : Tensor = onnx::Conv(%4)\n" * 1163)

    monkeypatch.setattr(ox, "_export_once", fails)
    monkeypatch.setattr(occkit.fileio, "disk_nearly_full", lambda folder: True)
    with pytest.raises(OSError) as e:
        ox.export_onnx(torch.nn.Identity(), (torch.zeros(1),) * 3, tmp_path / "m.onnx")
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "m.onnx")


def _estimate(**kw):
    e = {
        "runs": 2,
        "steps": 4,
        "validations": 4,
        "run_seconds": 20.0,
        "unestimated": {},
        "unestimated_runs": 0,
        "stages": [],
        "stage_seconds": 0.0,
        "stages_not_counted": [],
        "lanes": 1,
        "threads": 1,
        "wall_seconds": 20.0,
        "machine": "m",
        "table_threads": [1],
        "table_date": "d",
    }
    return {**e, **kw}


def test_the_time_estimate_never_says_about_0_min():
    from occkit.ablate.estimate import estimate_text

    text = estimate_text(
        _estimate(runs=0, steps=0, run_seconds=0.0, wall_seconds=0.0, unestimated={"a": "my.yaml"}, unestimated_runs=3),
        2,
    )
    assert text.startswith("Time estimate: unknown: none of the 3 run(s) left has a preset in the table")
    assert "0 min" not in text and "a (my.yaml)" in text
    text = estimate_text(_estimate(), 2)  # 20 s of work: a minute, not 0
    assert text.startswith("Time estimate: about 1 min on 1 lane(s)")
    text = estimate_text(_estimate(lanes=8), 2)
    assert "on 8 lane(s) x 1 thread(s) (only 2 busy: one run per lane)" in text


def test_more_lanes_than_runs_do_not_divide_the_time(tmp_path, monkeypatch):
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "ablate"))
    from ablate_helpers import tiny_spec, write

    import occkit.ablate.estimate as estimate
    import occkit.ablate.runner as runner
    from occkit.ablate.spec import Overrides, parse_spec

    table = {"machine": "m", "threads": [1], "date": "d", "presets": {"synth-cpu": {"s_per_step": 3.0}}}
    spec = write(tmp_path, "spec.yaml", tiny_spec(arms="  a: {preset: synth-cpu}\n", seeds="[0]"))
    opts = runner.RunOptions(out=tmp_path / "abl", cache=tmp_path / "st", lanes=8)
    e = estimate.estimate(runner.Ablation(parse_spec(spec, Overrides()), opts), table)
    assert e["runs"] == 1 and e["wall_seconds"] == e["run_seconds"] == 6.0  # one run: one lane busy, not 6 / 8


def test_ablate_device_cuda_without_cuda_is_refused_at_once_also_in_dry_run(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec = _ablate_spec(tmp_path)
    for extra in (["--dry-run"], []):
        assert main(["ablate", str(spec), "--out", str(tmp_path / "abl"), "--device", "cuda", *extra]) == 1
        err = _err(capsys)
        assert err.count("\n") == 0 and "--device cuda: torch" in err and "sees no CUDA device here" in err
    assert not (tmp_path / "abl").exists() and not (tmp_path / "stages").exists()  # no stage built
    assert main(["ablate", str(spec), "--out", str(tmp_path / "abl"), "--device", "bogus", "--dry-run"]) == 1
    assert "--device bogus: not a device" in _err(capsys)


def test_ablate_negative_seeds_are_the_options_fault_not_the_specs(tmp_path, capsys):
    spec = _ablate_spec(tmp_path)
    assert main(["ablate", str(spec), "--out", str(tmp_path / "abl"), "--seeds", "-1", "--dry-run"]) == 1
    err = _err(capsys)
    assert err.count("\n") == 0 and "--seeds -1: a seed must be >= 0, got -1" in err and "spec.yaml" not in err


def test_pseudolabel_quality_into_a_file_of_the_user_is_refused_before_writing_anything(tmp_path, capsys, monkeypatch):
    import occkit.pseudolabel.dataset as pl

    made = []
    monkeypatch.setattr(pl, "make_pseudo_labels", lambda *a, **k: made.append(a))
    mine = tmp_path / "q.json"
    mine.write_text("my scores")
    data, priors, out = tmp_path / "d", tmp_path / "p", tmp_path / "pl"
    for p in (data, priors):
        p.mkdir()
    rc = main(["pseudolabel", "--data", str(data), "--priors", str(priors), "--out", str(out), "--quality", str(mine)])
    err = _err(capsys)
    assert rc == 1 and err.count("\n") == 0 and "--quality" in err and "occkit did not write it" in err
    assert made == [] and not out.exists() and mine.read_text() == "my scores"  # nothing (re)written


@pytest.mark.parametrize(
    "argv",
    [
        ["stats", "{A}"],
        ["show", "{A}"],
        ["eval", "--pred", "{A}", "--gt", "{A}"],
        ["export", "--ckpt", "{A}", "--out", "{m}"],
    ],
)
def test_a_loop_of_symbolic_links_is_named_not_not_found(tmp_path, capsys, argv):
    (tmp_path / "A").symlink_to(tmp_path / "B")
    (tmp_path / "B").symlink_to(tmp_path / "A")
    assert main([a.format(A=tmp_path / "A", m=tmp_path / "m.onnx") for a in argv]) == 1
    err = _err(capsys)
    assert err.count("\n") == 0 and "a loop of symbolic links" in err and "not found" not in err


def test_a_dangling_link_says_where_it_points(tmp_path, capsys):
    (tmp_path / "D").symlink_to(tmp_path / "gone")
    assert main(["stats", str(tmp_path / "D")]) == 1
    assert f"D: a symbolic link to {tmp_path / 'gone'}, which does not exist" in _err(capsys)


def test_eval_json_into_a_read_only_folder_is_refused_before_computing(tmp_path, capsys, monkeypatch):
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == ro else real(p, mode, **kw))
    # root writes anywhere: the check is what is tested; the prediction and ground truth are not even read
    rc = main(["eval", "--pred", str(tmp_path / "p"), "--gt", str(tmp_path / "g"), "--json", str(ro / "r.json")])
    err = _err(capsys)
    assert rc == 1 and err.count("\n") == 0 and f"--json {ro / 'r.json'}: {ro} is not writable" in err


def test_a_camera_the_data_lack_is_blamed_on_data_cameras_not_annotations_json(synth_root):
    from occkit.data.occ3d import Occ3DDataset

    with pytest.raises(ValueError, match=r"^data.cameras: CAM_BOGUS is not a camera of .* \(its cameras: CAM_FRONT, "):
        Occ3DDataset(synth_root, "all", cameras=("CAM_FRONT", "CAM_BOGUS"))
    assert Occ3DDataset(synth_root, "all", cameras=("CAM_BACK",)).cameras == ("CAM_BACK",)


def test_eval_gen_blames_a_judge_of_other_cameras_not_the_generation(tmp_path, capsys):
    from occkit.config import to_dict
    from occkit.engine.checkpoint import save_checkpoint
    from occkit.experiment import build_method, load_experiment

    cfg = load_experiment("synth-cpu")  # six cameras
    save_checkpoint(tmp_path / "judge", 1, build_method(cfg), to_dict(cfg), {"step": 1})
    gen = tmp_path / "gen"
    gen.mkdir()
    (gen / "generation.json").write_text(json.dumps({"checkpoint": str(tmp_path / "elsewhere" / "step_1")}))
    frame = {"timestamp": 0, "camera_sensor": {"CAM_FRONT": {"img_path": "x.jpg"}}}
    (gen / "annotations.json").write_text(
        json.dumps({"scene_infos": {"s": {"t": frame}}, "train_split": [], "val_split": ["s"]})
    )
    rc = main(["eval-gen", "--gen", str(gen), "--real", str(tmp_path), "--judge", str(tmp_path / "judge")])
    err = _err(capsys)
    assert rc == 1 and err.count("\n") == 0
    assert "--judge" in err and "sees 6 camera(s)" in err and "was generated with 1 (CAM_FRONT)" in err


def test_a_garbage_ray_address_is_named(monkeypatch):
    from occkit.ablate.runner import _reachable

    with pytest.raises(ValueError, match=r"RAY_ADDRESS=garbage: not a Ray address \(HOST:PORT, auto, or ray://"):
        _reachable("garbage")
    for fine in ("", "auto", "ray://head:10001"):
        _reachable(fine)  # Ray's own to check


def _fake_mount(monkeypatch, mnt: Path) -> None:
    """``mnt`` behaves as a mount point: ismount says so, and renaming it fails as on Linux."""
    import errno
    import os

    real_ismount, real_replace = os.path.ismount, os.replace
    monkeypatch.setattr(os.path, "ismount", lambda p: Path(p) == mnt or real_ismount(p))

    def replace(src, dst, **kw):
        if Path(src) == mnt or Path(dst) == mnt:
            raise OSError(errno.EBUSY, "Device or resource busy", str(src))
        return real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "replace", replace)


def test_an_empty_mount_point_as_out_is_written_in_place(tmp_path, capsys, monkeypatch):
    from occkit.outputs import FILES_RECORD, OUTPUT_RECORD

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    _fake_mount(monkeypatch, mnt)
    assert main(["synth", "--out", str(mnt), *SYNTH_TINY]) == 0
    names = sorted(p.name for p in mnt.iterdir())
    assert "annotations.json" in names and OUTPUT_RECORD in names and FILES_RECORD in names
    assert not [n for n in names if n.endswith((".tmp", ".partial"))]  # no hidden folder left inside
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.is_dir()]  # nor beside it
    # its own output there is replaced with --overwrite (in place again); a file of the user's is not
    assert main(["synth", "--out", str(mnt), *SYNTH_TINY, "--seed", "1", "--overwrite"]) == 0
    (mnt / "mine.txt").write_text("x")
    capsys.readouterr()
    assert main(["synth", "--out", str(mnt), *SYNTH_TINY, "--seed", "2", "--overwrite"]) == 1
    assert "mine.txt is not a file occkit synth wrote" in _err(capsys) and (mnt / "mine.txt").exists()


def test_staged_folder_into_a_mount_point_is_written_in_place(tmp_path, monkeypatch):
    from occkit.outputs import staged_folder

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    _fake_mount(monkeypatch, mnt)
    with staged_folder(mnt, "generate") as tmp:
        assert tmp.parent == mnt  # filled on the mounted disk itself
        (tmp / "a.txt").write_text("a")
    assert (mnt / "a.txt").read_text() == "a" and not list(mnt.glob(".*.tmp"))


# ------------------------------------------------------------ trust of saved runs (item 7)
def test_a_checkpoint_without_its_checksum_record_warns_and_a_changed_file_is_refused(tmp_path):
    import torch

    from occkit.engine.checkpoint import CHECKSUM_FILE, MODEL_FILE, load_weights, save_checkpoint

    net = torch.nn.Linear(3, 2)
    ck = save_checkpoint(tmp_path / "run", 1, net, {"method": "x"}, {"step": 1})
    load_weights(torch.nn.Linear(3, 2), ck / MODEL_FILE)  # recorded and intact: no word
    data = bytearray((ck / MODEL_FILE).read_bytes())
    data[-1] ^= 0xFF  # a flipped bit in the tensor data
    (ck / MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"model.safetensors: corrupted: its SHA-256 is"):
        load_weights(torch.nn.Linear(3, 2), ck / MODEL_FILE)
    (ck / CHECKSUM_FILE).unlink()  # the record deleted: it loads, but not without a word
    with pytest.warns(UserWarning, match=r"no checksums.json \(deleted.*load unverified"):
        load_weights(torch.nn.Linear(3, 2), ck / MODEL_FILE)


def test_weights_outside_a_checkpoint_folder_load_without_a_checksum_warning(tmp_path, recwarn):
    import torch
    from safetensors.torch import save_model

    from occkit.engine.checkpoint import load_weights

    net = torch.nn.Linear(3, 2)
    save_model(net, str(tmp_path / "shipped.safetensors"))  # like the weights occkit ships: no record expected
    load_weights(torch.nn.Linear(3, 2), tmp_path / "shipped.safetensors")
    assert not [w for w in recwarn if "unverified" in str(w.message)]


def test_init_from_the_shipped_weights_does_not_read_like_a_warning():
    from occkit.commands.demo import shipped_weights
    from occkit.engine.init_from import InitReport, report_lines, resolve_init_source

    source = resolve_init_source(shipped_weights())
    report = InitReport.__new__(InitReport)
    for name in ("loaded", "new", "skipped", "fresh", "unused"):
        setattr(report, name, [])
    report.loaded_values = report.total_values = 0
    first = report_lines(source, report)[0]
    assert "occkit's shipped weights" in first and "no checksum record" not in first


def test_a_demo_stopped_before_its_first_checkpoint_does_not_claim_one(tmp_path, capsys, monkeypatch):
    import argparse

    import torch

    import occkit.commands.demo as demo
    from occkit.engine.checkpoint import save_checkpoint

    def stopped(args, out, kept):
        kept.append(f"{demo.CKPT_KEPT} in {out / 'run' / 'checkpoints'} (every {demo.CKPT_EVERY} steps)")
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "_run", stopped)
    assert demo.run(argparse.Namespace(out=str(tmp_path / "d"))) == 130
    said = capsys.readouterr().out
    assert "no training checkpoint yet (the first is saved at step 50" in said and "checkpoints in" not in said
    save_checkpoint(tmp_path / "d" / "run", 50, torch.nn.Linear(1, 1), {}, {"step": 50})
    assert demo.run(argparse.Namespace(out=str(tmp_path / "d"))) == 130
    assert "training's checkpoints in" in capsys.readouterr().out


def test_synth_says_what_it_generates_before_the_first_scene_ends(tmp_path, capsys, monkeypatch):
    import occkit.worlds.driving.writer as writer

    said_first: list[str] = []
    real = writer.run_scenes

    def spy(out, config, worker, **kw):
        def first_scene(job):
            said_first.append(capsys.readouterr().out)  # what was printed when the first scene began
            return worker(job)

        return real(out, config, first_scene, **kw)

    monkeypatch.setattr(writer, "run_scenes", spy)
    assert main(["synth", "--out", str(tmp_path / "W"), *SYNTH_TINY, "--workers", "1"]) == 0
    assert "synth: 1 scene(s) x 1 frames at 8x16 to generate with 1 worker(s)" in said_first[0]


def test_rerunning_a_finished_demo_keeps_the_loss_line_and_the_training_times(tmp_path):
    from types import SimpleNamespace

    from occkit.commands.demo import _report
    from occkit.experiment import load_experiment

    out = tmp_path / "demo"
    (out / "run").mkdir(parents=True)
    (out / "run" / "train.jsonl").write_text(
        "\n".join(json.dumps({"step": s, "loss": 4.0 - s / 100}) for s in range(1, 101)) + "\n"
    )
    (out / "report.json").write_text(json.dumps({"timings_s": {"generate": 300.0, "train": 600.0}}))
    cfg = load_experiment("synth-cpu")
    args = SimpleNamespace(config="synth-cpu")
    synth = SimpleNamespace(scenes=1, frames=1, image_size=(8, 16), seed=0)
    result = SimpleNamespace(losses=[], step=100, train_seconds=600.0, checkpoint="ck")  # nothing trained now
    scores = {"miou": 1.0, "geometry_iou": 2.0, "frames": 1, "iou": {}}
    _report(out, args, synth, cfg, result, scores, [], {"generate": 0.1, "train": 0.0, "evaluate": 6.0}, 1, 1)
    md = (out / "report.md").read_text()
    assert "Mean training loss: 3.945 over the first 10 steps, 3.045 over the last 10 (logged steps of the run" in md
    assert "| train | 0.0 | 10.0 |" in md and "the invocation that trained" in md
    assert json.loads((out / "report.json").read_text())["trained_timings_s"]["train"] == 600.0  # kept for the next


def test_the_demo_ends_with_next_steps_that_parse(tmp_path):
    import shlex

    from occkit.cli import COMMANDS, build_parser
    from occkit.commands.demo import next_steps

    lines = next_steps(tmp_path / "demo", tmp_path / "demo" / "run" / "checkpoints" / "step_000100", program="occkit")
    cmds = [shlex.split(line.split("#")[0]) for line in lines if line.strip().startswith("occkit ")]
    assert [c[1] for c in cmds] == ["show", "eval", "predict", "view", "train"]  # run: tests/test_demo_next_steps.py
    for argv in cmds:
        build_parser(tuple(c for c in COMMANDS if c[0] == argv[1])).parse_args(argv[1:])  # each one as written


def test_loading_a_local_model_prints_no_loading_weights_bar(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    from transformers.utils import logging as hf_logging

    import occkit.priors.hf as hf

    seen = []

    class Auto:
        @staticmethod
        def from_pretrained(*a, **k):
            seen.append(hf_logging.is_progress_bar_enabled())
            import torch

            return torch.nn.Linear(1, 1)

    hf_logging.enable_progress_bar()
    hf._load(Auto, tmp_path, __import__("torch").device("cpu"))
    assert seen == [False] and hf_logging.is_progress_bar_enabled()  # off while loading, restored after
