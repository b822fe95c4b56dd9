"""The ablation report from hand-made run folders: curves, convergence flags, means and
half-ranges, the Markdown table, the picture; ``--report`` runs nothing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from ablate_helpers import write
from PIL import Image

from occkit.ablate.report import convergence, metric_curve, spread
from occkit.cli import main
from occkit.viz.curves import ARM_COLOURS, nice_ticks


def test_curve_and_convergence_by_hand():
    records = [
        {"step": 2, "miou": 5.0},
        {"step": 4, "miou": 6.0},
        {"step": 4, "miou": 6.5},  # a redone step keeps its last
        {"step": 6, "miou": 7.0},
        {"step": 8, "geometry_iou": 3.0},
        {"step": 10, "miou": float("nan")},
    ]
    assert metric_curve(records, "miou", budget=8) == [[2, 5.0], [4, 6.5], [6, 7.0]]
    assert convergence([[2, 5.0], [4, 6.5], [6, 7.0]], tolerance=0.5) == {
        "last_two": [6.5, 7.0],
        "delta": 0.5,
        "converged": True,
    }
    assert convergence([[2, 5.0], [4, 6.5], [6, 7.0]], tolerance=0.4)["converged"] is False
    assert convergence([[4, 6.0]], tolerance=0.5) == {"last_two": [6.0], "delta": None, "converged": None}
    s = spread({"0": 10.3, "1": 11.2, "2": None})
    assert s["mean"] == pytest.approx(10.75) and s["half_range"] == pytest.approx(0.45) and s["seeds"] == ["0", "1"]
    assert spread({"0": None}) is None
    assert nice_ticks(0, 4) == [0, 1, 2, 3, 4] and nice_ticks(0.3, 0.92)[0] <= 0.3 and nice_ticks(0.3, 0.92)[-1] >= 0.92


def _fake_run(run, values, budget=4):
    """A run folder as training leaves it: metrics.jsonl and a (hollow) checkpoint at ``budget``."""
    ck = run / "checkpoints" / f"step_{budget:06d}"
    ck.mkdir(parents=True)
    for f in ("model.safetensors", "config.json", "trainer.pt"):
        (ck / f).write_bytes(b"")
    (run / "checkpoints" / "latest").write_text(ck.name)
    with open(run / "metrics.jsonl", "w") as f:
        for step, v in values:
            f.write(json.dumps({"step": step, "miou": v, "train_minutes": step / 100}) + "\n")


def _claim_spec(tmp_path, seeds):
    """A spec of two arms a and b over a world folder, budget 4, and the claim 'a beats b'."""
    (tmp_path / "world").mkdir()
    return write(
        tmp_path,
        "spec.yaml",
        f"name: hand\ndata: world\nbudget: 4\nvalidations: 2\nseeds: {seeds}\n"
        "arms:\n  a: {preset: tiny.yaml}\n  b: {preset: tiny.yaml}\n"
        "claims:\n  - {name: a beats b, arm: a, against: b}\n",
    )


def test_report_from_disk_flags_the_arm_that_has_not_converged(tmp_path, capsys):
    (tmp_path / "world").mkdir()
    spec = write(
        tmp_path,
        "spec.yaml",
        "name: hand\ndata: world\nbudget: 4\nvalidations: 2\ntolerance: 0.5\nseeds: [0, 1]\n"
        "arms:\n  a: {preset: tiny.yaml}\n  b: {preset: tiny.yaml}\n  c: {preset: tiny.yaml}\n",
    )
    out = tmp_path / "abl"
    _fake_run(out / "runs" / "a_s0", [(2, 10.0), (4, 10.3)])
    _fake_run(out / "runs" / "a_s1", [(2, 11.0), (4, 11.2)])
    _fake_run(out / "runs" / "b_s0", [(2, 8.0), (4, 8.4)])
    _fake_run(out / "runs" / "b_s1", [(2, 7.0), (4, 8.0)])  # moved by 1.0 > 0.5 over its last two validations
    assert main(["ablate", str(spec), "--out", str(out), "--report"]) == 0
    assert "4 of 6 run(s) done" in capsys.readouterr().out
    r = json.loads((out / "results.json").read_text())
    a, b, c = r["arms"]["a"], r["arms"]["b"], r["arms"]["c"]
    assert a["converged"] is True and b["converged"] is False and c["converged"] is None
    assert b["seeds"]["1"]["converged"] is False and b["seeds"]["1"]["delta"] == pytest.approx(1.0)
    assert b["seeds"]["1"]["last_two"] == [7.0, 8.0] and b["seeds"]["0"]["converged"] is True
    assert a["summary"]["metric"]["mean"] == pytest.approx(10.75) and a["summary"]["metric"][
        "half_range"
    ] == pytest.approx(0.45)
    assert b["summary"]["metric"]["mean"] == pytest.approx(8.2) and b["summary"]["metric"][
        "half_range"
    ] == pytest.approx(0.2)
    assert c["status"] == "not run" and c["summary"]["metric"] is None and c["seeds"]["0"]["status"] == "not run"
    assert a["seeds"]["0"]["curve"] == [[2, 10.0], [4, 10.3]] and a["seeds"]["0"]["train_minutes"] == pytest.approx(
        0.04
    )
    md = (out / "results.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    assert "10.75 ± 0.45 (s0 10.30, s1 11.20)" in rows["a"] and rows["a"].rstrip(" |").endswith("yes")
    assert "8.20 ± 0.20 (s0 8.40, s1 8.00)" in rows["b"] and "no (s1: Δ +1.00)" in rows["b"]
    assert "not run yet" in rows["c"]
    assert "budget 4 steps; seeds 0, 1" in md and "tolerance 0.5" in md and f"`occkit ablate {spec} --out {out}" in md
    assert "Time left: " in md and "time_left" in r
    img = np.asarray(Image.open(out / "curves.png").convert("RGB"))
    assert img.shape == (560, 960, 3)
    for colour in ARM_COLOURS[:2]:  # a line of each arm that has a curve
        assert (np.abs(img.astype(int) - colour).sum(-1) < 10).sum() > 50
    # a partial arm: one seed stopped half-way is shown as such, its done seed counted
    (out / "runs" / "a_s1" / "checkpoints" / "latest").write_text("step_000002")
    (out / "runs" / "a_s1" / "checkpoints" / "step_000004").rename(
        out / "runs" / "a_s1" / "checkpoints" / "step_000002"
    )
    shutil.copy(out / "curves.png", tmp_path / "curves_done.png")
    assert main(["ablate", str(spec), "--out", str(out), "--report"]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["arms"]["a"]["status"] == "partial" and r["arms"]["a"]["seeds"]["1"]["detail"] == "step 2 of 4"
    assert r["arms"]["a"]["summary"]["metric"]["values"] == [10.3]  # its validation at step 4 is to be redone
    assert "10.30 ± 0.00 (s0 10.30) [1 of 2 seeds done]" in (out / "results.md").read_text()
    # a run of other seeds (--seeds 1,3) still reports the spec's seeds found on disk, its own after them
    assert main(["ablate", str(spec), "--out", str(out), "--report", "--seeds", "1,3"]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["seeds"] == [0, 1, 3] and list(r["arms"]["b"]["seeds"]) == ["0", "1", "3"]
    assert (
        r["arms"]["b"]["summary"]["metric"]["values"] == [8.4, 8.0]
        and r["arms"]["b"]["seeds"]["3"]["status"] == "not run"
    )
    assert "8.20 ± 0.20 (s0 8.40, s1 8.00) [2 of 3 seeds done]" in (out / "results.md").read_text()


def test_report_decides_the_spec_claims(tmp_path, capsys):
    spec = _claim_spec(tmp_path, "[0, 1]")
    out = tmp_path / "abl"
    _fake_run(out / "runs" / "a_s0", [(2, 10.0), (4, 10.3)])
    _fake_run(out / "runs" / "a_s1", [(2, 11.0), (4, 11.2)])
    _fake_run(out / "runs" / "b_s0", [(2, 8.0), (4, 8.4)])
    _fake_run(out / "runs" / "b_s1", [(2, 8.0), (4, 8.2)])
    assert main(["ablate", str(spec), "--out", str(out), "--report"]) == 0
    assert "claim 'a beats b' (miou): holds (ahead in 2, behind in 0 of 2 seed(s) paired)" in capsys.readouterr().out
    (c,) = json.loads((out / "results.json").read_text())["claims"]
    assert c["differences"] == pytest.approx({"0": 1.9, "1": 3.0}) and c["verdict"] == "holds"
    md = (out / "results.md").read_text()
    assert "| a beats b | a against b | miou | s0 +1.90, s1 +3.00 | +2.45 ± 0.55 | holds (ahead in 2" in md


def test_a_scored_figure_that_moved_since_the_checkpoint_before_is_flagged(tmp_path, capsys):
    (tmp_path / "world").mkdir()
    spec = write(
        tmp_path,
        "spec.yaml",
        "name: hand\ndata: world\nbudget: 4\nvalidations: 2\ntolerance: 0.5\nseeds: [0, 1]\n"
        "arms:\n  a: {preset: tiny.yaml}\n  b: {preset: tiny.yaml}\n"
        "scoring:\n  - {scorer: ssc, previous: true}\n"
        "claims:\n  - {arm: a, against: b, figure: ssc.ssc_miou}\n",
    )
    out = tmp_path / "abl"
    scored = {"a_s0": (10.0, 9.8), "a_s1": (10.4, 9.7), "b_s0": (9.0, 9.1), "b_s1": (9.2, 9.0)}  # (step 4, step 2)
    for run, (now, before) in scored.items():
        _fake_run(out / "runs" / run, [(2, 5.0), (4, 5.1)])  # the metric's own curve is flat everywhere
        (out / "runs" / run / "score_ssc.json").write_text(json.dumps({"ssc_miou": now, "completion_iou": 50.0}))
        (out / "runs" / run / "score_ssc_prev.json").write_text(
            json.dumps({"ssc_miou": before, "completion_iou": 50.0})
        )
    assert main(["ablate", str(spec), "--out", str(out), "--report"]) == 0
    r = json.loads((out / "results.json").read_text())
    a1 = r["arms"]["a"]["seeds"]["1"]["plateau"]["ssc.ssc_miou"]
    assert a1["previous"] == 9.7 and a1["delta"] == pytest.approx(0.7) and a1["converged"] is False
    assert r["arms"]["b"]["seeds"]["0"]["plateau"]["ssc.ssc_miou"]["converged"] is True
    assert [c["id"] for c in r["columns"]] == ["ssc.ssc_miou", "ssc.completion_iou"]  # no column of its own
    rows = {
        line.split("|")[1].strip(): line
        for line in (out / "results.md").read_text().splitlines()
        if line.startswith("| ")
    }
    assert "yes; SSC mIoU (ssc) no (s1: Δ +0.70)" in rows["a"] and "yes; scored figures: yes" in rows["b"]
    (c,) = r["claims"]
    assert c["verdict"] == "holds" and c["not_converged"] == ["a"]  # flagged on its figure, not on the flat metric
    # a scorer added to the spec after a run finished: the run is trained, its other figures still count
    (out / "runs" / "b_s1" / "score_ssc_prev.json").unlink()
    assert main(["ablate", str(spec), "--out", str(out), "--report"]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["arms"]["b"]["seeds"]["1"]["status"] == "partial" and r["arms"]["b"]["summary"]["ssc.ssc_miou"]["n"] == 2
    assert r["claims"][0]["paired"] == 2
    rows = {
        line.split("|")[1].strip(): line
        for line in (out / "results.md").read_text().splitlines()
        if line.startswith("| ")
    }
    assert "[s1: a scorer still to run]" in rows["b"] and "seeds done" not in rows["b"]


def test_small_figures_keep_three_significant_digits():
    from occkit.ablate.report import _num, _pm

    assert _num(14.333) == "14.33" and _num(0.0) == "0.00" and _num(0.25) == "0.25" and _num(None) == "n/a"
    assert _num(0.0312) == "0.0312" and _num(0.00456) == "0.00456" and _num(-0.05) == "-0.0500"  # KID-sized
    assert (
        _pm({"mean": 0.0312, "half_range": 0.002}) == "0.0312 ± 0.0020"
        and _pm({"mean": 10.75, "half_range": 0.45}) == "10.75 ± 0.45"
    )


def test_time_left_paces_each_arm_by_its_own_finished_runs():
    from occkit.ablate.report import time_left, time_left_text

    def seed(status, train=None, score=None, step=None, build="current"):
        return {"status": status, "train_seconds": train, "score_seconds": score, "step": step, "build": build}

    r = {
        "budget": 4,
        "arms": {
            "a": {
                "seeds": {
                    "0": seed("done", 100.0, 20.0, 4),
                    "1": seed("done", 140.0, 20.0, 4),
                    "2": seed("partial", 50.0, 0.0, 2),
                }
            },
            "b": {"seeds": {"0": seed("not run"), "1": seed("not run")}},
            "c": {
                "seeds": {"0": seed("done", 900.0, 0.0, 4, build="other"), "1": seed("not run")}
            },  # another build paces nothing
        },
    }
    t = time_left(r, lanes=2)
    # a's pace (120 + 160) / 2 = 140: its seed 2 has half its steps left (70); b and c have no pace of
    # their own: 140 each
    assert t == {
        "runs": 4,
        "lane_seconds": 70.0 + 2 * 140.0 + 140.0,
        "estimated_runs": 3,
        "paced_by": 2,
        "lanes": 2,
        "wall_seconds": 245.0,
    }
    assert "4 run(s), about 0.1 lane-hours at the pace of the 2 finished here; 3 of them" in time_left_text(t)
    assert "about 4.1 min on 2 lane(s)" in time_left_text(t)
    assert time_left(
        {"budget": 4, "arms": {"b": r["arms"]["b"]}}, 2
    ) is None and "no run has finished" in time_left_text(None)
    done = {"budget": 4, "arms": {"a": {"seeds": {"0": seed("done", 10.0, 0.0, 4)}}}}
    assert time_left(done, 3)["runs"] == 0 and "every run is done" in time_left_text(time_left(done, 3))


def test_arm_colours_tell_every_arm_of_a_large_spec_apart():
    # RadOcc's spec has 11 arms: with tab10 alone its first and last arm were drawn the same blue
    assert len(ARM_COLOURS) >= 12 and len(set(ARM_COLOURS)) == len(ARM_COLOURS)
    nearest = min(
        sum(abs(a - b) for a, b in zip(x, y)) for i, x in enumerate(ARM_COLOURS) for y in ARM_COLOURS[i + 1 :]
    )
    assert nearest >= 100  # no closer than tab10's own nearest pair (purple and pink)


def test_stage_quality_reads_what_the_stage_wrote(tmp_path):
    """A train stage shows its last validation, a priors train stage its steps and final losses."""
    import json

    from occkit.ablate.report import stage_quality

    train = tmp_path / "teacher"
    train.mkdir()
    (train / "metrics.jsonl").write_text(
        json.dumps({"step": 500, "miou": 10.0, "geometry_iou": 40.0})
        + "\n"
        + json.dumps({"step": 1000, "miou": 12.5, "geometry_iou": 41.25, "other": 3})
        + "\n"
    )
    assert stage_quality("train", train) == {"step": 1000, "miou": 12.5, "geometry_iou": 41.25}
    prior = tmp_path / "backbone"
    prior.mkdir()
    (prior / "config.json").write_text(
        json.dumps({"train": {"steps": 2000, "final_losses": {"semantics": 0.5, "depth": 0.25}}})
    )
    assert stage_quality("priors train", prior) == {"steps": 2000, "loss_semantics": 0.5, "loss_depth": 0.25}
    assert stage_quality("synth", prior) == {} and stage_quality("train", tmp_path / "missing") == {}


def test_a_claim_pairs_its_sides_seed_by_seed():
    from occkit.ablate.report import claim_cell, claim_result

    def arm(values, scores=None, converged=True, build="current"):
        seeds = {}
        for k, v in values.items():
            seeds[k] = {
                "status": "not run" if v is None else "done",
                "metric": v,
                "build": build,
                "scores": {"x.fid": (scores or {}).get(k)},
            }
        return {"seeds": seeds, "converged": converged}

    r = {
        "metric": "miou",
        "seeds": [0, 1, 2],
        "columns": [{"id": "x.fid", "label": "FID (x)"}],
        "arms": {
            "a": arm({"0": 10.5, "1": 10.2, "2": None}, {"0": 1.10, "1": 1.30}),
            "b": arm({"0": 10.0, "1": 10.4, "2": 9.0}, {"0": 1.20, "1": 1.40}),
            "c": arm({"0": 9.0, "1": 9.5, "2": 8.0}, converged=False),
            "d": arm({"0": 9.0, "1": 9.0, "2": 9.0}, build="other"),  # another build of a stage: never paired
        },
    }
    claim = {
        "name": "a beats b",
        "arm": "a",
        "against": "b",
        "figure": "metric",
        "against_figure": "metric",
        "higher": True,
    }
    c = claim_result(r, claim)
    # seed 2 of a is not done: paired over seeds 0 and 1; 10.5 - 10.0 = +0.5, 10.2 - 10.4 = -0.2
    assert c["differences"] == pytest.approx({"0": 0.5, "1": -0.2}) and c["verdict"] == "mixed"
    assert c["summary"]["mean"] == pytest.approx(0.15) and c["summary"]["half_range"] == pytest.approx(0.35)
    assert (c["ahead"], c["behind"], c["paired"], c["label"]) == (1, 1, 2, "miou")
    assert claim_cell(c, 3) == "mixed (ahead in 1, behind in 1 of 2 seed(s) paired, of 3)"
    c = claim_result(r, {**claim, "arm": "b", "against": "c"})  # 1.0, 0.9, 1.0: b ahead everywhere, c not converged
    assert c["verdict"] == "holds" and c["not_converged"] == ["c"] and c["paired"] == 3
    assert claim_cell(c, 3) == "holds (ahead in 3, behind in 0 of 3 seed(s) paired) [not converged: c]"
    c = claim_result(r, {**claim, "arm": "c", "against": "b"})
    assert c["verdict"] == "reversed" and c["summary"]["mean"] == pytest.approx(-(1.0 + 0.9 + 1.0) / 3)
    # a lower figure is better (FID): a's 1.10 and 1.30 against b's 1.20 and 1.40 are ahead in both seeds
    c = claim_result(r, {**claim, "figure": "x.fid", "against_figure": "x.fid", "higher": False})
    assert (
        c["verdict"] == "holds"
        and c["differences"] == pytest.approx({"0": -0.1, "1": -0.1})
        and c["label"] == "FID (x)"
    )
    # one run's figure against another of its own figures (one run sampled two ways)
    c = claim_result(r, {**claim, "against": "a", "against_figure": "x.fid"})
    assert (
        c["differences"] == pytest.approx({"0": 10.5 - 1.10, "1": 10.2 - 1.30}) and c["label"] == "miou against FID (x)"
    )
    assert claim_result(r, {**claim, "against": "d"})["verdict"] == "not run yet"
    one = claim_result({**r, "arms": {**r["arms"], "a": arm({"0": 10.5, "1": None, "2": None})}}, claim)
    assert one["verdict"] == "one seed" and claim_cell(one, 3) == "one seed so far (s0: ahead)"


def test_a_command_of_some_arms_and_seeds_reports_over_the_runs_it_asked_for(tmp_path, capsys):
    """Issue 64: `--seeds 0 --only a,b,c,d` of a three-seed, five-arm spec: the table, the claims and
    the time left cover those four runs, not the spec's fifteen."""
    (tmp_path / "world").mkdir()
    arms = "".join(f"  {a}: {{preset: tiny.yaml}}\n" for a in "abcde")
    spec = write(
        tmp_path,
        "spec.yaml",
        "name: hand\ndata: world\nbudget: 4\nvalidations: 2\nseeds: [0, 1, 2]\n"
        f"arms:\n{arms}claims:\n  - {{name: a beats b, arm: a, against: b}}\n"
        "  - {name: e beats a, arm: e, against: a}\n",
    )
    out = tmp_path / "abl"
    for arm, v in (("a", 10.0), ("b", 8.0)):
        _fake_run(out / "runs" / f"{arm}_s0", [(2, v), (4, v + 0.1)])
        (out / "runs" / f"{arm}_s0" / "ablate.json").write_text(json.dumps({"train_seconds": 600.0}))
    assert main(["ablate", str(spec), "--out", str(out), "--report", "--seeds", "0", "--only", "a,b,c,d"]) == 0
    said = capsys.readouterr().out
    r = json.loads((out / "results.json").read_text())
    assert r["seeds"] == [0] and list(r["arms"]) == ["a", "b", "c", "d"] and r["asked"] == {"runs": 4, "of": 15}
    assert [c["name"] for c in r["claims"]] == ["a beats b"]
    assert r["time_left"]["runs"] == 2 and r["time_left"]["lane_seconds"] == pytest.approx(1200.0)
    md = (out / "results.md").read_text()
    assert "seeds done" not in md and "asked for 4 of the spec's 15 runs" in md and "Time left: 2 run(s)" in said


def test_a_claim_names_the_seeds_whose_means_average_over_different_classes(tmp_path, capsys):
    """Occ3D's mIoU is a nanmean: a run that predicts a class the ground truth lacks counts it as 0,
    a run that predicts none leaves it out. The claim keeps the official difference and its verdict,
    and names the class and the difference over the classes both sides average."""
    spec = _claim_spec(tmp_path, "[0, 1]")
    out = tmp_path / "abl"
    tables = {  # the validation record at the budget: seed 0 of b predicts a bus (IoU 0), a does not
        "a_s0": {"car": 10.0, "road": 90.0, "bus": float("nan")},
        "b_s0": {"car": 8.0, "road": 89.0, "bus": 0.0},
        "a_s1": {"car": 12.0, "road": 80.0, "bus": float("nan")},
        "b_s1": {"car": 12.0, "road": 79.0, "bus": float("nan")},
    }
    for run, iou in tables.items():
        defined = [v for v in iou.values() if v == v]
        _fake_run(out / "runs" / run, [(2, sum(defined) / len(defined))])  # converged: level since step 2
        with open(out / "runs" / run / "metrics.jsonl", "a") as f:  # json writes NaN as the JSONL of training does
            f.write(json.dumps({"step": 4, "miou": sum(defined) / len(defined), "iou": iou}) + "\n")
    assert main(["ablate", str(spec), "--out", str(out), "--report"]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["arms"]["b"]["seeds"]["0"]["classes"]["metric"] == {"car": 8.0, "road": 89.0, "bus": 0.0}
    assert r["arms"]["a"]["seeds"]["0"]["classes"]["metric"]["bus"] is None
    (c,) = r["claims"]
    # official: 50 - 97/3 = +17.67 and 46 - 45.5 = +0.5; over car and road both: 50 - 48.5 = +1.5 and +0.5
    assert c["differences"] == pytest.approx({"0": 50 - 97 / 3, "1": 0.5}) and c["verdict"] == "holds"
    assert c["class_sets"] == {"0": {"only_arm": [], "only_against": ["bus"], "common_difference": 1.5}}
    assert c["common_differences"] == pytest.approx({"0": 1.5, "1": 0.5})
    text = (
        "[means over different classes: bus counted in b's mean only (s0); over the classes both average: s0 +1.50, "
        "s1 +0.50]"
    )
    assert text in (out / "results.md").read_text()
    assert text in capsys.readouterr().out


def test_only_a_figure_that_is_the_mean_of_its_class_table_keeps_the_table():
    from occkit.ablate.report import class_table

    scored = {"miou": 50.0, "geometry_iou": 61.0, "iou": {"car": 10.0, "road": 90.0, "bus": None}}
    assert class_table(scored, "miou") == {"car": 10.0, "road": 90.0, "bus": None}
    assert class_table(scored, "geometry_iou") is None  # not the table's mean
    assert class_table({"miou": 50.0}, "miou") is None
    assert class_table({"miou": 50.0, "iou": {"car": None}}, "miou") is None


def test_a_claim_names_the_seeds_whose_two_runs_trained_at_different_precisions(tmp_path, capsys):
    """A preset's CPU bf16 autocast is float32 on a CPU without native bf16: two runs of a seed
    trained on the two kinds of machine (or one resumed on the other kind) differ in precision as
    well as in the arm; the claim says so beside its difference, and runs that record no precision
    (from before the record) are not named."""
    spec = _claim_spec(tmp_path, "[0, 1, 2]")
    out = tmp_path / "abl"
    amps = {  # per validation (steps 2 and 4): s0 differs, s1 agrees, s2's a was resumed on the other kind
        "a_s0": ["bf16", "bf16"],
        "b_s0": ["none", "none"],
        "a_s1": ["none", "none"],
        "b_s1": ["none", "none"],
        "a_s2": ["bf16", "none"],
        "b_s2": [None, None],
    }
    for run, (p2, p4) in amps.items():
        path = out / "runs" / run
        _fake_run(path, [])
        with open(path / "metrics.jsonl", "w") as f:
            for step, amp in ((2, p2), (4, p4)):
                f.write(json.dumps({"step": step, "miou": 10.0 + (run[0] == "a"), **({"amp": amp} if amp else {})}))
                f.write("\n")
    assert main(["ablate", str(spec), "--out", str(out), "--report"]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["arms"]["a"]["seeds"]["2"]["precision"] == ["bf16", "none"]
    assert r["arms"]["b"]["seeds"]["2"]["precision"] == []
    (c,) = r["claims"]
    assert c["verdict"] == "holds" and c["precisions"] == {"0": {"arm": ["bf16"], "against": ["none"]}}
    text = "[trained at different precisions: s0 a bf16 autocast, b float32]"
    assert text in (out / "results.md").read_text() and text in capsys.readouterr().out
    # s2's b records none: once it does (float32), the resumed a (bf16, then float32) is named too
    with open(out / "runs" / "b_s2" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 4, "miou": 10.0, "amp": "none"}) + "\n")
    assert main(["ablate", str(spec), "--out", str(out), "--report"]) == 0
    (c,) = json.loads((out / "results.json").read_text())["claims"]
    assert set(c["precisions"]) == {"0", "2"}
    assert "s2 a bf16 autocast then float32, b float32]" in (out / "results.md").read_text()


def test_an_edited_precision_is_said_shortened_never_pasted_into_results_md(tmp_path, capsys):
    """Issue 89: a ``metrics.jsonl`` whose ``amp`` was edited (a pipe, a line break, markup) is named as an
    unrecognised precision, its odd characters as ``?``; the report's lines and tables stay whole."""
    from occkit.ablate.report import precision_name

    assert precision_name("bf16") == "bf16 autocast" and precision_name("none") == "float32"
    spec = _claim_spec(tmp_path, "[0]")
    out = tmp_path / "abl"
    edited = "fp8 | x |\n# Pwned <b>" + "y" * 40
    for run, amp in (("a_s0", edited), ("b_s0", "none")):
        path = out / "runs" / run
        _fake_run(path, [])
        with open(path / "metrics.jsonl", "w") as f:
            for step in (2, 4):
                f.write(json.dumps({"step": step, "miou": 10.0 + (run[0] == "a"), "amp": amp}) + "\n")
    assert main(["ablate", str(spec), "--out", str(out), "--report"]) == 0
    md = (out / "results.md").read_text()
    assert "a unrecognised precision 'fp8???x?????Pwned??b...', b float32]" in md, md
    assert "# Pwned" not in md and "<b>" not in md and "fp8 |" not in md
    assert "<b>" not in capsys.readouterr().out
