"""Stages: the command lines the runner gives them, and what a stage stopped half-way keeps."""

from __future__ import annotations

from ablate_helpers import write

from occkit.ablate.spec import parse_spec
from occkit.ablate.stages import plan_stages

SPEC = """\
stages:
  world: {command: synth, args: {scenes: 2, image-size: [32, 88]}}
  priors: {command: priors run, args: {data: "${world}", prior: [semantics=oracle, depth=oracle:noisy]}}
  backbone: {command: priors train, args: {data: "${world}", steps: 3, set: [batch_size=1, lr=0.01]}}
  base: {command: train, args: {config: tiny.yaml, data: "${world}", max-steps: 2, set: [train.threads=3]}}
data: ${world}
budget: 2
arms:
  a: {preset: tiny.yaml}
"""


def test_stage_command_lines(tmp_path):
    plans = plan_stages(parse_spec(write(tmp_path, "s.yaml", SPEC)), tmp_path / "stages")
    world = str(plans["world"].out)
    assert plans["world"].argv(2, "cuda") == ["synth", "--scenes", "2", "--image-size", "32", "88", "--out", world]
    assert plans["priors"].argv(2, "cuda") == [
        "priors",
        "run",
        "--data",
        world,
        "--prior",
        "semantics=oracle",
        "--prior",
        "depth=oracle:noisy",
        "--device",
        "cuda",
        "--out",
        str(plans["priors"].out),
        "--no-progress",
    ]
    assert plans["backbone"].argv(1, "cpu") == [
        "priors",
        "train",
        "--data",
        world,
        "--steps",
        "3",
        "--set",
        "batch_size=1",
        "--set",
        "lr=0.01",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--out",
        str(plans["backbone"].out),
        "--no-progress",
    ]
    # the spec's train.threads wins over the runner's; the preset path is the spec's neighbour
    base = plans["base"]
    assert base.argv(1, "cpu") == [
        "train",
        str((tmp_path / "tiny.yaml").resolve()),
        "--data",
        world,
        "--max-steps",
        "2",
        "--set",
        "train.device=cpu",
        "train.threads=3",
        "--out",
        str(base.out),
        "--no-progress",
    ]
    # a train stage stopped after a checkpoint resumes
    ck = base.out / "checkpoints" / "step_000001"
    ck.mkdir(parents=True)
    for f in ("model.safetensors", "config.json", "trainer.pt"):
        (ck / f).write_bytes(b"")
    assert base.argv(1, "cpu")[-1] == "--resume"


def test_a_stage_stopped_half_way_is_redone_unless_its_command_continues(tmp_path):
    plans = plan_stages(parse_spec(write(tmp_path, "s.yaml", SPEC)), tmp_path / "stages")
    for name in ("world", "priors", "base"):
        plan = plans[name]
        (plan.out / "part").mkdir(parents=True)
        plan.log.write_text("stopped")
        assert plan.status() == "partial"
        plan.prepare()
        kept = (plan.out / "part").exists()
        assert kept == (name in ("priors", "base")) and plan.log.exists() == (name in ("world", "priors", "base")), name
    # synth continues from the scenes kept beside its output (.out.partial), never from a half-written out
    world = plans["world"]
    (world.folder / ".out.partial").mkdir()
    world.prepare()
    assert (world.folder / ".out.partial").is_dir() and not world.out.exists() and world.continues()


def test_an_optional_value_option_given_true_is_the_bare_flag():
    """``pseudolabel --quality [JSON]``: ``quality: true`` -> ``--quality``, a path -> ``--quality PATH``,
    false -> nothing."""
    from occkit.ablate.cliargs import mapping_argv, verb_parsers

    _, parser = verb_parsers("pseudolabel")
    assert mapping_argv(parser, {"quality": True}) == ["--quality"]
    assert mapping_argv(parser, {"quality": "q.json"}) == ["--quality", "q.json"]
    assert mapping_argv(parser, {"quality": False}) == []
