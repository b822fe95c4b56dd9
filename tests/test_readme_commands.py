"""README's command blocks, as a new user copies them: every ``occkit`` line parses with the CLI
as written, and every run or folder a line reads was made by a line before it (or is a
placeholder in capitals, explained in the text)."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from occkit.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"
#: options whose value is a folder or run an earlier command must have made
INPUTS = ("--data", "--ckpt", "--judge", "--gt", "--pred", "--priors", "--gen", "--real", "--init-from")
#: made outside occkit (downloads) or by the user's own files
EXTERNAL = {"nuscenes_infos_val.pkl"}


def readme_commands() -> list[tuple[int, list[str]]]:
    """``(line number, argv)`` of every ``occkit`` command in README's bash blocks, in order."""
    out, in_bash = [], False
    for i, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            in_bash = line.strip() == "```bash"
            continue
        if not in_bash:
            continue
        code = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
        for part in re.split(r"&&|;", code):
            argv = shlex.split(part)
            if argv and argv[0] in ("occkit", ".venv/bin/occkit"):
                out.append((i, argv[1:]))
    return out


_PARSER = []


def parser():
    """The CLI's parser, built once (it imports every command's module)."""
    if not _PARSER:
        _PARSER.append(build_parser())
    return _PARSER[0]


def placeholder(value: str) -> bool:
    return bool(re.fullmatch(r"[A-Z][A-Z0-9_]*([./][A-Za-z0-9_.]*)?", value))


def test_readme_has_commands():
    cmds = readme_commands()
    assert len(cmds) > 20
    assert any(argv[0] == "demo" for _, argv in cmds)


@pytest.mark.parametrize("line,argv", readme_commands(), ids=lambda x: str(x) if isinstance(x, int) else None)
def test_readme_command_parses(line, argv):
    try:
        parser().parse_args(argv)
    except SystemExit as e:
        pytest.fail(f"README.md:{line}: occkit {shlex.join(argv)} does not parse ({e})")


def test_readme_reads_only_what_it_made():
    made: set[str] = set()
    problems = []
    for line, argv in readme_commands():
        ns = parser().parse_args(argv)
        reads = [getattr(ns, opt[2:].replace("-", "_"), None) for opt in INPUTS]
        reads += [getattr(ns, "root", None)] if argv[0] in ("show", "stats", "view") else []
        reads += [s.split("=", 1)[1] for s in (getattr(ns, "set", None) or []) if s.startswith("radocc.teacher=")]
        for value in reads:
            if not isinstance(value, str) or placeholder(value) or value in EXTERNAL or value.startswith("configs/"):
                continue
            if not any(value == m or value.startswith(m.rstrip("/") + "/") for m in made):
                problems.append(f"README.md:{line}: occkit {argv[0]} reads {value}, which no earlier command makes")
        if "--out" in argv:
            made.add(argv[argv.index("--out") + 1])
    assert not problems, "\n".join(problems)


def test_show_with_a_prediction_looks_where_predict_wrote():
    """``occkit predict`` writes the val split by default and ``occkit show`` looks in every split:
    a README ``show --pred`` names the split or the frame."""
    for line, argv in readme_commands():
        if argv[0] == "show" and "--pred" in argv:
            assert "--split" in argv or "--token" in argv, f"README.md:{line}"


#: What the tiny world changes in the typical workflow (sizes and budget only; every other word as written).
TINY = {
    ("--scenes", "20"): ["--scenes", "5"],
    ("--frames", "10"): ["--frames", "2"],
    ("--image-size", "192"): ["--image-size", "64"],
    ("512",): ["176"],
    ("--workers", "2"): ["--workers", "1"],
    ("--minutes", "30"): ["--max-steps", "2"],
}


def tiny(argv: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(argv):
        for key, new in TINY.items():
            if tuple(argv[i : i + len(key)]) == key:
                out += new
                i += len(key)
                break
        else:
            out.append(argv[i])
            i += 1
    return out


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("OCCKIT_SLOW_TESTS"),
    reason="runs README's typical workflow (about half a minute): set OCCKIT_SLOW_TESTS=1",
)
def test_readme_typical_workflow_runs_on_a_tiny_world(tmp_path, monkeypatch, one_torch_thread):
    from occkit.cli import main

    cmds = readme_commands()
    start = next((i for i, (_, a) in enumerate(cmds) if a[:3] == ["synth", "--out", "data/synth"]), None)
    assert start is not None, "README: the typical workflow starts with occkit synth --out data/synth"
    block: list[tuple[int, list[str]]] = []
    for ln, argv in cmds[start:]:
        if block and ln != block[-1][0] + 1:
            break
        block.append((ln, argv))
    assert [a[0] for _, a in block] == ["synth", "train", "predict", "eval", "show", "show"]
    monkeypatch.chdir(tmp_path)
    for ln, argv in block:
        assert main(tiny(argv)) == 0, f"README.md:{ln}: occkit {shlex.join(tiny(argv))}"
    assert (tmp_path / "runs/sup/frame.png").is_file() and (tmp_path / "runs/sup/eval.json").is_file()


def test_readme_blocks_run_in_order_never_collide_on_a_folder():
    """A command's --out is never a folder an earlier README command wrote (a later block that
    reused runs/sup would be refused, or would mix two runs); inside one is fine (runs/sup/pred)."""
    made: dict[str, int] = {}
    problems = []
    for line, argv in readme_commands():
        if "--out" not in argv:
            continue
        out = argv[argv.index("--out") + 1].rstrip("/")
        if out in made and "--resume" not in argv:
            problems.append(f"README.md:{line}: occkit {argv[0]} --out {out}, which README.md:{made[out]} made already")
        made.setdefault(out, line)
    assert not problems, "\n".join(problems)


#: Every README block run in order on a tiny world: sizes and budgets only, every other word as written.
SMALL_VALUES = {"--scenes": "5", "--frames": "2", "--workers": "1", "--max-steps": "2", "--steps": "2", "--n": "2"}


def small(argv: list[str], token: str | None) -> list[str]:
    """``argv`` of a README command at the tiny size: the counts of SMALL_VALUES, 64x176 images,
    ``--minutes`` as two steps, every ``train`` two steps, ``ablate`` a dry run, TOKEN a frame,
    ``query`` at ``--occupied 0`` (a two-step model is sure of no voxel)."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a in SMALL_VALUES and i + 1 < len(argv):
            out += [a, SMALL_VALUES[a]]
            i += 2
        elif a == "--image-size":
            out += [a, "64", "176"]
            i += 3
        elif a == "--minutes":
            out += ["--max-steps", "2"]
            i += 2
        else:  # README's paths into the repository (configs/...) are read from a clone's root
            out.append(token if a == "TOKEN" and token else str(README.parent / a) if a.startswith("configs/") else a)
            i += 1
    if out[0] == "train" and "--max-steps" not in out:
        out += ["--max-steps", "2"]
    if out[0] == "ablate" and "--dry-run" not in out:
        out.append("--dry-run")
    if out[0] == "generate" and "--steps" not in out:
        out += ["--steps", "2"]
    if out[0] == "query" and "--occupied" not in out:  # a 2-step LangOcc occupies no voxel at the default threshold
        out += ["--occupied", "0"]
    return out


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("OCCKIT_SLOW_TESTS"),
    reason="runs every README block in order on a tiny world (many minutes on a 2-core CPU): set OCCKIT_SLOW_TESTS=1",
)
def test_readme_blocks_run_in_order_on_a_tiny_world(tmp_path, monkeypatch, one_torch_thread):
    """Each ``occkit`` line of README's bash blocks, in order, at the tiny size (``small``); the demo
    has its own test (tests/test_cli_first_contact.py)."""
    import json

    from occkit.cli import main

    monkeypatch.chdir(tmp_path)
    token = None
    for line, argv in readme_commands():
        if argv[0] == "demo":
            continue
        if token is None and (tmp_path / "runs/sup/pred/provenance.json").is_file():
            token = json.loads((tmp_path / "runs/sup/pred/provenance.json").read_text())["tokens"][0]
        run = small(argv, token)
        assert main(run) == 0, f"README.md:{line}: occkit {shlex.join(run)}"
