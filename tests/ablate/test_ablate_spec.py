"""Ablation specs: every class of error is one line naming the file and the line; overrides;
stage hashes; ``--dry-run`` prints the plan and runs nothing."""

from __future__ import annotations

import dataclasses

import pytest
from ablate_helpers import tiny_spec, write

from occkit.ablate.spec import Overrides, parse_spec
from occkit.ablate.stages import plan_stages
from occkit.cli import main

BASE = """\
name: t
stages:
  world:
    command: synth
    args: {scenes: 2, frames: 1}
  priors:
    command: priors run
    args: {data: "${world}", prior: "oracle:typical"}
data: ${world}
budget: 4
validations: 2
seeds: [0, 1]
arms:
  a:
    preset: tiny.yaml
    set:
      - optim.lr=0.01
      - model.neck_channels=8
scoring:
  - {scorer: occ3d, masks: [camera]}
"""


def _edit(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


#: (case, spec text, line of the error, words the message must hold)
BAD = [
    ("unknown top-level key", BASE + "colour: red\n", 21, "unknown key"),
    (
        "unknown arm key",
        _edit("    preset: tiny.yaml\n", "    preset: tiny.yaml\n    seed: 3\n"),
        16,
        "unknown arm key",
    ),
    (
        "unknown stage key",
        _edit("    args: {scenes: 2, frames: 1}", "    argz: {scenes: 2, frames: 1}"),
        5,
        "unknown stage key",
    ),
    ("unknown stage command", _edit("command: synth", "command: synthesize"), 4, "unknown stage command"),
    ("unknown preset", _edit("preset: tiny.yaml", "preset: no-such-preset"), 15, "unknown preset"),
    ("unknown --set key of an arm", _edit("model.neck_channels=8", "model.bogus=8"), 18, "model.bogus"),
    ("a key the runner sets", _edit("optim.lr=0.01", "train.seed=3"), 17, "set by the runner"),
    ("unknown stage reference", _edit("data: ${world}", "data: ${wrold}"), 9, "unknown stage reference ${wrold}"),
    (
        "cycle",
        _edit("args: {scenes: 2, frames: 1}", 'args: {scenes: 2, frames: 1, workers: "${priors}"}'),
        3,
        "cycle of stage references: world -> priors -> world",
    ),
    ("unknown scorer", _edit("{scorer: occ3d, masks: [camera]}", "{scorer: occ4d}"), 20, "unknown scorer 'occ4d'"),
    ("unknown scorer option", _edit("masks: [camera]", "mask: [camera]"), 20, "unknown option of scorer occ3d"),
    ("bad scorer value", _edit("masks: [camera]", "masks: [cameras]"), 20, "masks"),
    ("budget zero", _edit("budget: 4", "budget: 0"), 10, "budget: expected an integer number of steps >= 1"),
    ("budget not a number", _edit("budget: 4", "budget: many"), 10, "budget: expected"),
    ("validations past the budget", _edit("validations: 2", "validations: 9"), 11, "validations"),
    ("repeated seeds", _edit("seeds: [0, 1]", "seeds: [1, 1]"), 12, "repeated seeds"),
    (
        "unknown stage option",
        _edit("args: {scenes: 2, frames: 1}", "args: {scenez: 2, frames: 1}"),
        5,
        "scenez: not an option",
    ),
    (
        "stage option its parser refuses",
        _edit("args: {scenes: 2, frames: 1}", "args: {scenes: two, frames: 1}"),
        5,
        "invalid int value: 'two'",
    ),
    ("duplicate key", _edit("validations: 2\n", "validations: 2\nvalidations: 3\n"), 12, "duplicate key"),
    ("claim against an unknown arm", BASE + "claims:\n  - {arm: a, against: b}\n", 22, "unknown arm 'b'"),
    (
        "claim on a figure the arm has not",
        BASE + "claims:\n  - {arm: a, against: a, figure: occ3d_camera.rayiou}\n",
        22,
        "arm 'a' has no figure 'occ3d_camera.rayiou' (its figures: metric, occ3d_camera.miou, "
        "occ3d_camera.geometry_iou)",
    ),
    ("unknown claim key", BASE + "claims:\n  - {arm: a, against: a, figures: x}\n", 22, "unknown claim key"),
    (
        "claim of an arm against itself on one figure",
        BASE + "claims:\n  - {arm: a, against: a}\n",
        22,
        "arm 'a' against itself on one figure (metric): a claim that decides nothing",
    ),
    (
        "claim's higher not a boolean",
        BASE + "claims:\n  - {arm: a, against: a, higher: maybe}\n",
        22,
        "higher: expected true or false",
    ),
]


@pytest.mark.parametrize("case,text,line,words", BAD, ids=[c[0] for c in BAD])
def test_bad_spec_is_one_line_naming_file_and_line(case, text, line, words, tmp_path, capsys):
    spec = write(tmp_path, "spec.yaml", text)
    assert main(["ablate", str(spec), "--out", str(tmp_path / "out"), "--dry-run"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"occkit ablate: error: {spec}:{line}: "), err
    assert words in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "stages").exists()


def test_the_base_spec_is_valid(tmp_path, capsys):
    spec = write(tmp_path, "spec.yaml", BASE)
    assert main(["ablate", str(spec), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "not needed by these arms (not built): priors" in out


def test_the_command_gives_the_ablation_package_the_verbs_parsers(tmp_path, monkeypatch):
    """The package does not import the command line above it: occkit ablate hands it the parsers."""
    import occkit.ablate.cliargs as cliargs

    monkeypatch.setattr(cliargs, "_verb_parser", None)
    with pytest.raises(RuntimeError, match="use_verb_parser"):
        cliargs.verb_parsers("train")
    spec = write(tmp_path, "spec.yaml", BASE)
    assert main(["ablate", str(spec), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    assert cliargs.verb_parsers("priors run")[1].prog.endswith("priors run")


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path, capsys):
    spec = write(
        tmp_path, "spec.yaml", tiny_spec(scoring="scoring:\n  - {scorer: occ3d, masks: [camera, none], arms: [b]}\n")
    )
    out = tmp_path / "abl"
    assert main(["ablate", str(spec), "--out", str(out), "--dry-run", "--lanes", "2"]) == 0
    text = capsys.readouterr().out
    assert not out.exists() and not (tmp_path / "stages").exists()  # nothing made
    lines = text.splitlines()
    world = next(x for x in lines if x.strip().startswith("world "))
    assert " missing " in world and str(tmp_path / "stages" / "world-") in world
    assert "$ occkit synth --scenes 2 --frames 1 --seed 0 --image-size 32 88 --out" in text
    for run in ("a_s0", "b_s0", "a_s1", "b_s1"):
        assert any(x.split() == [run, "new"] for x in lines), run
    assert (
        f"--out {out.resolve() / 'runs' / 'a_s1'} --max-steps 2 --set train.seed=1 train.threads=1 train.device=cpu "
        "train.val_every=1 train.ckpt_every=1 --no-progress" in text
    )
    assert (
        "--set train.seed=0 train.threads=1 train.device=cpu train.val_every=1 train.ckpt_every=1 --set optim.lr=0.01"
        in text
    )
    assert text.count("$ occkit predict") == 2 and text.count("--mask none") == 2  # arm b only, 2 seeds
    assert text.index("a_s0") < text.index("b_s0") < text.index("a_s1")  # seed-major


def test_command_line_overrides(tmp_path, capsys):
    spec = write(tmp_path, "spec.yaml", tiny_spec())
    args = [
        "ablate",
        str(spec),
        "--out",
        str(tmp_path / "abl"),
        "--dry-run",
        "--seeds",
        "5",
        "--budget",
        "6",
        "--only",
        "a",
        "--world-seed",
        "7",
        "--set",
        "stages.world.args.scenes=3",
        "arms.a.set+=[optim.lr=0.5]",
        "validations=3",
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "--scenes 3 --frames 1 --seed 7" in text
    assert (
        "--max-steps 6 --set train.seed=5 train.threads=1 train.device=cpu train.val_every=2 train.ckpt_every=2 --set "
        "optim.lr=0.5" in text
    )
    assert "b_s5" not in text and "a_s0" not in text
    # an override is named in the error it causes
    assert main(["ablate", str(spec), "--out", str(tmp_path / "abl"), "--dry-run", "--set", "arms.a.bogus=1"]) == 1
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"occkit ablate: error: {spec} (--set arms.a.bogus=1): arms.a.bogus: unknown arm key (known: preset, set, "
        "init_from, data, description)"
    )
    assert main(["ablate", str(spec), "--out", str(tmp_path / "abl"), "--dry-run", "--only", "c"]) == 1
    assert "--only c: unknown arm or run (arms: a, b; a single run is ARM_sSEED)" in capsys.readouterr().err


def test_only_names_single_runs_in_their_order(tmp_path, capsys):
    """--only b_s1,a: the runs a session lacks, in the order given (a plain arm: every seed, in place)."""
    spec = write(tmp_path, "spec.yaml", tiny_spec())
    out = tmp_path / "abl"
    assert main(["ablate", str(spec), "--out", str(out), "--dry-run", "--only", "b_s1,a"]) == 0
    runs = [
        x.split()[0]
        for x in capsys.readouterr().out.splitlines()
        if x.startswith("  ") and x.split()[-1] == "new" and x.split()[0][-3:-1] == "_s"
    ]
    assert runs == ["b_s1", "a_s0", "a_s1"]
    for bad, words in (
        ("b_s7", "seed 7 is not among the seeds [0, 1] (add it with --seeds)"),
        ("c_s0", "--only c_s0: unknown arm or run"),
        ("b_sx", "--only b_sx: unknown arm or run"),
    ):
        assert main(["ablate", str(spec), "--out", str(out), "--dry-run", "--only", bad]) == 1
        err = capsys.readouterr().err.strip()
        assert words in err and err.count("\n") == 0, err
    assert main(["ablate", str(spec), "--out", str(out), "--dry-run", "--only", "b_s7", "--seeds", "7"]) == 0


def test_world_seed_without_a_world_stage_seeds_the_synth_stages_under_the_data(tmp_path):
    text = """\
stages:
  w1: {command: synth, args: {scenes: 2}}
  w2: {command: synth, args: {scenes: 2}}
  unused: {command: synth, args: {scenes: 2}}
  priors: {command: priors run, args: {data: "${w1}", prior: oracle}}
budget: 2
arms:
  a: {preset: synth-cpu, data: "${w2}"}
  b: {preset: synth-cpu, set: ["data.priors=${priors}"], data: "${w1}"}
"""
    spec = parse_spec(write(tmp_path, "s.yaml", text), Overrides(world_seed=9))
    assert [spec.stages[n].args.get("seed") for n in ("w1", "w2", "unused")] == [9, 9, None]


def test_stage_hash_follows_its_inputs_not_the_cache(tmp_path):
    def plans(scenes: int, cache: str, order: str = "scenes, frames"):
        args = {
            "scenes, frames": f"{{scenes: {scenes}, frames: 1}}",
            "frames, scenes": f"{{frames: 1, scenes: {scenes}}}",
        }[order]
        text = tiny_spec().replace("args: {scenes: 2, frames: 1, seed: 0, image-size: [32, 88]}", f"args: {args}")
        text = text.replace(
            "stages:\n", 'stages:\n  priors: {command: priors run, args: {data: "${world}", prior: oracle}}\n'
        )
        return plan_stages(parse_spec(write(tmp_path, "s.yaml", text)), tmp_path / cache)

    a, b, c, d = plans(2, "c1"), plans(2, "c2"), plans(3, "c1"), plans(2, "c1", "frames, scenes")
    assert a["world"].hash == b["world"].hash == d["world"].hash and a["priors"].hash == b["priors"].hash
    assert (
        a["world"].folder.name == f"world-{a['world'].hash}" and a["world"].folder.parent == (tmp_path / "c1").resolve()
    )
    assert (
        c["world"].hash != a["world"].hash and c["priors"].hash != a["priors"].hash
    )  # upstream change reaches downstream
    assert a["priors"].args["data"] == str(a["world"].out)


def _has_init_from() -> bool:
    from occkit.engine.config import TrainConfig

    return any(f.name == "init_from" for f in dataclasses.fields(TrainConfig))


@pytest.mark.skipif(not _has_init_from(), reason="TrainConfig has no init_from field yet")
def test_init_from_a_stage_is_passed_to_occkit_train(tmp_path, capsys):
    text = tiny_spec(arms="  a: {preset: tiny.yaml, init_from: '${base}'}\n").replace(
        "stages:\n", "stages:\n  base: {command: train, args: {config: tiny.yaml, data: '${world}', max-steps: 2}}\n"
    )
    spec = write(tmp_path, "spec.yaml", text)
    assert main(["ablate", str(spec), "--out", str(tmp_path / "abl"), "--dry-run"]) == 0
    text = capsys.readouterr().out
    base = next(x for x in text.splitlines() if x.strip().startswith("base ")).split()[2]
    assert (
        f"--set optim.lr=0.01 --init-from {base} --no-progress" in text or f"--init-from {base} --no-progress" in text
    )


def test_one_run_sampled_several_ways_by_named_eval_gen_entries(tmp_path):
    from occkit.ablate.scorers import SCORERS, ScoreContext
    from occkit.ablate.spec import SpecError

    entries = (
        '  - {scorer: eval_gen, judge: "${world}", name: layout, generate: {occupancy: val, n: 2}}\n'
        '  - {scorer: eval_gen, judge: "${world}", name: feedback, generate: {from-perception: true, n: 2}}\n'
    )
    spec = parse_spec(write(tmp_path, "spec.yaml", BASE.replace("  - {scorer: occ3d, masks: [camera]}\n", entries)))
    outs = [o for s in spec.scoring for o in SCORERS[s.scorer].outputs(s.options)]
    assert outs == ["score_eval_gen_layout.json", "score_eval_gen_feedback.json"]
    s = spec.scoring[1]
    ctx = ScoreContext(run=tmp_path / "run", data="W", device="cpu", threads=1, options=s.options)
    generate, judge = SCORERS["eval_gen"].commands(ctx, outs[1:])
    assert (
        generate[generate.index("--out") + 1] == str(tmp_path / "run" / "gen_feedback")
        and "--from-perception" in generate
    )
    assert judge[judge.index("--out") + 1] == str(tmp_path / "run" / "score_eval_gen_feedback.json")
    assert SCORERS["eval_gen"].temporary(ctx) == [tmp_path / "run" / "gen_feedback"]
    unnamed = entries.replace(" name: layout,", "").replace(" name: feedback,", "")
    with pytest.raises(SpecError, match="same file"):
        parse_spec(write(tmp_path, "dup.yaml", BASE.replace("  - {scorer: occ3d, masks: [camera]}\n", unnamed)))
    with pytest.raises(SpecError, match="name: expected a short lower-case name"):
        parse_spec(
            write(
                tmp_path,
                "bad.yaml",
                BASE.replace(
                    "  - {scorer: occ3d, masks: [camera]}\n", entries.replace("name: layout", "name: Lay-out")
                ),
            )
        )


def test_geometry_scorer_command_and_checks(tmp_path):
    from occkit.ablate.scorers import SCORERS, ScoreContext, score_columns
    from occkit.ablate.spec import SpecError

    spec = parse_spec(
        write(
            tmp_path,
            "spec.yaml",
            BASE.replace("  - {scorer: occ3d, masks: [camera]}\n", "  - {scorer: geometry, max_frames: 8}\n"),
        )
    )
    s = spec.scoring[0]
    assert SCORERS["geometry"].outputs(s.options) == ["score_geometry.json"]
    run = tmp_path / "run"
    (argv,) = SCORERS["geometry"].commands(
        ScoreContext(run=run, data="W", device="cpu", threads=1, options=s.options), []
    )
    assert argv[:3] == ["geometry", "--ckpt", str(run)] and argv[argv.index("--mask") + 1] == "camera"
    assert argv[argv.index("--max-frames") + 1] == "8" and argv[argv.index("--out") + 1] == str(
        run / "score_geometry.json"
    )
    assert [c["id"] for c in score_columns(spec.scoring)] == ["geometry.geometry_ap", "geometry.geometry_iou_best"]
    for bad, msg in (("mask: cameras", "mask: expected camera"), ("max_frames: -1", "max_frames: expected")):
        with pytest.raises(SpecError, match=msg):
            parse_spec(
                write(
                    tmp_path,
                    "bad.yaml",
                    BASE.replace("  - {scorer: occ3d, masks: [camera]}\n", f"  - {{scorer: geometry, {bad}}}\n"),
                )
            )


def test_occ3d_inside_the_run_cameras_frusta_is_its_own_file(tmp_path):
    from occkit.ablate.scorers import SCORERS, ScoreContext
    from occkit.ablate.spec import SpecError

    entries = "  - {scorer: occ3d, masks: [camera]}\n  - {scorer: occ3d, masks: [camera, none], frustum: true}\n"
    spec = parse_spec(write(tmp_path, "spec.yaml", BASE.replace("  - {scorer: occ3d, masks: [camera]}\n", entries)))
    outs = [o for s in spec.scoring for o in SCORERS[s.scorer].outputs(s.options)]
    assert outs == ["score_occ3d_camera.json", "score_occ3d_camera_frustum.json", "score_occ3d_none_frustum.json"]
    run = tmp_path / "run"
    ctx = ScoreContext(run=run, data="W", device="cpu", threads=1, options=spec.scoring[1].options)
    predict, ev = SCORERS["occ3d"].commands(ctx, ["score_occ3d_none_frustum.json"])  # only the missing file is scored
    assert predict[0] == "predict" and ev[ev.index("--mask") + 1] == "none"
    assert ev[ev.index("--json") + 1] == str(run / "score_occ3d_none_frustum.json") and ev[-2:] == [
        "--frustum",
        str(run),
    ]
    plain = SCORERS["occ3d"].commands(
        ScoreContext(run=run, data="W", device="cpu", threads=1, options=spec.scoring[0].options),
        ["score_occ3d_camera.json"],
    )
    assert "--frustum" not in plain[1]
    with pytest.raises(SpecError, match="frustum: true scores mIoU only"):
        parse_spec(
            write(
                tmp_path,
                "bad.yaml",
                BASE.replace(
                    "  - {scorer: occ3d, masks: [camera]}\n", "  - {scorer: occ3d, metrics: [rayiou], frustum: true}\n"
                ),
            )
        )
    with pytest.raises(SpecError, match="frustum: expected true or false"):
        parse_spec(
            write(
                tmp_path,
                "bad2.yaml",
                BASE.replace("  - {scorer: occ3d, masks: [camera]}\n", "  - {scorer: occ3d, frustum: front}\n"),
            )
        )


def test_previous_scores_the_checkpoint_before_the_last_into_its_own_files(tmp_path):
    from occkit.ablate.scorers import SCORERS, ScoreContext
    from occkit.ablate.spec import SpecError

    entries = (
        "  - {scorer: occ3d, masks: [camera, none], frustum: true, previous: true}\n  - {scorer: ssc, previous: true}\n"
    )
    spec = parse_spec(write(tmp_path, "spec.yaml", BASE.replace("  - {scorer: occ3d, masks: [camera]}\n", entries)))
    occ3d, ssc = spec.scoring
    assert SCORERS["occ3d"].outputs(occ3d.options) == [
        "score_occ3d_camera_frustum.json",
        "score_occ3d_none_frustum.json",
        "score_occ3d_camera_frustum_prev.json",
        "score_occ3d_none_frustum_prev.json",
    ]
    assert SCORERS["ssc"].outputs(ssc.options) == ["score_ssc.json", "score_ssc_prev.json"]
    run = tmp_path / "run"
    for step in (2, 4, 6):  # three complete checkpoints: the one before the last is step 4
        ck = run / "checkpoints" / f"step_{step:06d}"
        ck.mkdir(parents=True)
        for f in ("model.safetensors", "config.json", "trainer.pt"):
            (ck / f).write_bytes(b"")
    ctx = ScoreContext(run=run, data="W", device="cpu", threads=1, options=occ3d.options)
    cmds = SCORERS["occ3d"].commands(ctx, SCORERS["occ3d"].outputs(occ3d.options))
    assert [c[0] for c in cmds] == ["predict", "eval", "eval", "predict", "eval", "eval"]
    assert cmds[0][cmds[0].index("--ckpt") + 1] == str(run)  # the newest
    assert cmds[3][cmds[3].index("--ckpt") + 1] == str(run / "checkpoints" / "step_000004")
    assert cmds[3][cmds[3].index("--out") + 1] == str(run / "pred_occ3d_prev") and cmds[4][
        cmds[4].index("--pred") + 1
    ] == str(run / "pred_occ3d_prev")
    assert cmds[5][cmds[5].index("--json") + 1] == str(run / "score_occ3d_none_frustum_prev.json")
    # only the previous checkpoint's file missing: the newest is not predicted again
    (only,) = [SCORERS["occ3d"].commands(ctx, ["score_occ3d_none_frustum_prev.json"])]
    assert [c[0] for c in only] == ["predict", "eval"] and only[0][only[0].index("--ckpt") + 1].endswith("step_000004")
    sctx = ScoreContext(run=run, data="W", device="cpu", threads=1, options=ssc.options)
    p, e = SCORERS["ssc"].commands(sctx, ["score_ssc_prev.json"])
    assert p[p.index("--ckpt") + 1].endswith("step_000004") and e[e.index("--json") + 1] == str(
        run / "score_ssc_prev.json"
    )
    with pytest.raises(SpecError, match="previous: expected true or false"):
        parse_spec(
            write(
                tmp_path,
                "bad.yaml",
                BASE.replace("  - {scorer: occ3d, masks: [camera]}\n", "  - {scorer: ssc, previous: 2}\n"),
            )
        )


def test_a_baseline_stage_is_built_and_reported_whatever_arms_run(tmp_path):
    import json

    from occkit.ablate.report import stage_quality
    from occkit.ablate.runner import Ablation, RunOptions
    from occkit.ablate.spec import SpecError

    lifted = (
        "  lifted:\n    command: retrieval\n"
        '    args: {data: "${world}", lifted: true, priors: "${priors}", split: val}\n'
    )
    text = BASE.replace("data: ${world}\n", lifted + "baselines: [lifted]\ndata: ${world}\n", 1)
    ab = Ablation(
        parse_spec(write(tmp_path, "s.yaml", text)),
        RunOptions(out=tmp_path / "abl", cache=tmp_path / "stages", only=["a"]),
    )
    assert ab.needed == ["world", "priors", "lifted"] and "lifted" in ab.reported  # no arm refers to it
    plan = ab.plans["lifted"]
    argv = plan.argv(1, "cpu")
    assert argv[:2] == ["retrieval", "--data"] and "--lifted" in argv
    assert argv[argv.index("--out") + 1] == str(plan.out / "score_retrieval.json")
    plan.prepare()
    assert plan.out.is_dir()  # the command writes its one file into the stage's out folder
    (plan.out / "score_retrieval.json").write_text(
        json.dumps({"map_all": 16.6, "map_seen_all": 20.0, "map_heldout_all": 9.5, "map_visible": 36.4, "aps": {}})
    )
    assert stage_quality("retrieval", plan.out) == {
        "map_all": 16.6,
        "map_seen_all": 20.0,
        "map_heldout_all": 9.5,
        "map_visible": 36.4,
    }
    with pytest.raises(SpecError, match="unknown stage 'lifte'"):
        parse_spec(write(tmp_path, "bad.yaml", text.replace("baselines: [lifted]", "baselines: [lifte]")))


def test_an_eval_gen_stage_scores_a_stage_of_samples_and_shows_fid(tmp_path):
    """OccScene's generator_quality: generate from a stage, then eval-gen as a baseline stage writing one JSON."""
    import json

    from occkit.ablate.report import stage_quality
    from occkit.ablate.runner import Ablation, RunOptions

    stages = (
        '  judge:\n    command: train\n    args: {config: tiny.yaml, data: "${world}", max-steps: 2}\n'
        "  samples:\n    command: generate\n"
        '    args: {ckpt: "${judge}", data: "${world}", occupancy: val, text-only: true, n: 2}\n'
        "  quality:\n    command: eval-gen\n"
        '    args: {gen: "${samples}", real: "${world}", judge: "${judge}", split: val}\n'
    )
    text = BASE.replace("data: ${world}\n", stages + "baselines: [quality]\ndata: ${world}\n", 1)
    ab = Ablation(
        parse_spec(write(tmp_path, "s.yaml", text)),
        RunOptions(out=tmp_path / "abl", cache=tmp_path / "stages", only=["a"]),
    )
    assert {"judge", "samples", "quality"} <= set(ab.needed) and "quality" in ab.reported
    plan = ab.plans["quality"]
    argv = plan.argv(1, "cpu")
    assert argv[:3] == ["eval-gen", "--gen", str(ab.plans["samples"].out)] and "--threads" not in argv
    assert argv[argv.index("--judge") + 1] == str(ab.plans["judge"].out)
    assert argv[argv.index("--out") + 1] == str(plan.out / "score_eval_gen.json")
    gen_argv = ab.plans["samples"].argv(1, "cpu")
    assert (
        gen_argv[0] == "generate" and "--text-only" in gen_argv and gen_argv[gen_argv.index("--occupancy") + 1] == "val"
    )
    plan.prepare()
    (plan.out / "score_eval_gen.json").write_text(
        json.dumps({"fid": 12.5, "kid": 0.031, "layout_miou": 7.25, "judge_real_miou": 20.0})
    )
    assert stage_quality("eval-gen", plan.out) == {"fid": 12.5, "kid": 0.031, "layout_miou": 7.25}


def test_a_stopped_priors_train_stage_resumes(tmp_path):
    """A `priors train` stage continues from its last save (--resume) once its folder holds a stopped run."""
    text = BASE.replace(
        '  priors:\n    command: priors run\n    args: {data: "${world}", prior: "oracle:typical"}\n',
        '  backbone:\n    command: priors train\n    args: {data: "${world}", steps: 5}\n',
    )
    plan = plan_stages(parse_spec(write(tmp_path, "s.yaml", text)), tmp_path / "stages")["backbone"]
    assert plan.continues() and "--resume" not in plan.argv(1, "cpu")
    plan.out.mkdir(parents=True)
    (plan.out / "config.json").write_text("{}")
    plan.prepare()  # kept, not removed
    assert (plan.out / "config.json").is_file() and plan.argv(1, "cpu")[-1] == "--resume"


def test_the_method_registry_says_whether_a_run_logs_figures_of_its_own(monkeypatch):
    """Issue 70, item 5: the ablation check asks the method's spec whether a run logs figures of its
    own (render_sup: only when it learns no classes; occscene: only with a generator); a spec that does not
    say falls back to its module's classes, and a spec's answer wins over them."""
    from occkit.ablate.spec import logged_metrics
    from occkit.experiment import load_experiment
    from occkit.methods import registry
    from occkit.methods.registry import MethodSpec, logs_validation_figures

    depth = load_experiment("base-cpu")  # render_sup with semantic_weight 0: rendered-depth figures
    assert depth.method == "render_sup" and logs_validation_figures(depth) and logged_metrics(depth) is None
    classes = load_experiment("render-sup-cpu")  # render_sup learning classes: none, so its keys are known
    assert classes.method == "render_sup" and not logs_validation_figures(classes)
    assert {"miou", "geometry_iou"} <= logged_metrics(classes)
    assert logs_validation_figures(load_experiment("occscene-cpu"))  # the generator's PSNR and denoising loss
    perception = load_experiment("occscene-cpu", ["occscene.train_generator=false"])
    assert not logs_validation_figures(perception) and {"miou", "geometry_iou"} <= logged_metrics(perception)
    spec = MethodSpec(  # built in this module, which defines a class with validation figures: the fallback's True
        "figs",
        "",
        {},
        build=lambda cfg, load_run: FiguresMethod(),
        export_refused="x",
        validation_figures=lambda cfg: False,
    )
    monkeypatch.setattr(registry, "get_method", lambda name: spec)
    assert not logs_validation_figures(classes)
    spec.validation_figures = None
    assert logs_validation_figures(classes)


class FiguresMethod:
    """A method class with figures of its own (for the registry's fallback above)."""

    def validation_figures(self, batch):
        return {}


def test_a_dry_run_names_the_checkpoint_before_the_last_as_the_run_will_write_it(tmp_path):
    """A plan printed before training (``--dry-run``) names the checkpoint the previous-validation scoring
    will read (the budget less the validation interval), not a placeholder; a trained run's two newest are
    taken when it has them, and a run that kept one gets a path that does not exist (predict names it)."""
    from occkit.ablate.scorers import previous_checkpoint
    from occkit.engine.checkpoint import CONFIG_FILE, MODEL_FILE, TRAINER_FILE

    run = tmp_path / "run"
    assert previous_checkpoint(run, 960) == run / "checkpoints" / "step_000960"  # nothing trained yet

    def write(step):
        d = run / "checkpoints" / f"step_{step:06d}"
        d.mkdir(parents=True)
        for f in (MODEL_FILE, CONFIG_FILE, TRAINER_FILE):
            (d / f).write_bytes(b"")

    write(1200)
    kept_one = previous_checkpoint(run, 960)
    assert not kept_one.exists() and kept_one.name != "step_000960"
    write(720)
    write(960)
    assert previous_checkpoint(run, 960) == run / "checkpoints" / "step_000960"
    assert previous_checkpoint(run) == run / "checkpoints" / "step_000960"
