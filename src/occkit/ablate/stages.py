"""The shared stages of an ablation: built once, cached by their inputs, reused by other specs.

A stage lives in ``CACHE/<stage>-<hash>/``::

    CACHE/world-3f9a0c12d4e5/
        out/          the command's --out: what ``${world}`` names (a dataset, a prior cache, a run)
        stage.log     the command's stdout and stderr
        stage.lock    while a runner builds it: that runner's and its child's process ids
        stage.json    written last (atomically): command, args, hash, wall seconds, finished time
                      (the build's identity: a run records the builds it started from), the machine

The hash (12 hex digits of a SHA-256) covers the command, its arguments with every ``${stage}``
replaced by that stage's own hash (so an upstream change reaches downstream folders, and the cache
may move), and occkit's version. A stage is done when ``stage.json`` exists. One stopped half-way
is redone from scratch (``out`` and the log removed first), except ``train`` and ``priors train``
stages, which continue from their newest checkpoint or save (``--resume``), and ``priors run``, ``synth`` and
``generate``, which continue where they stopped when the same command runs again (a prior cache; the
scenes kept in ``.out.partial``; the batches of frames already written).

Threads and device are how a stage runs, not what it makes: the runner adds ``--threads`` /
``--device`` (``train.threads`` / ``train.device`` for ``train``) where the command has them and
the spec does not set them, and they are not hashed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from occkit import __version__
from occkit.ablate.spec import AblationSpec, _stage_config, stage_order, substitute

STAGE_FILE = "stage.json"
STAGE_LOG = "stage.log"
STAGE_OUT = "out"
#: A run folder's record of what occkit ablate ran in it (written by the runner, read by the report).
RUN_RECORD = "ablate.json"

#: Commands whose half-done output is continued rather than removed: command -> the extra flag
#: that continues it ('' = the same command continues by itself).
RESUMABLE = {"train": "--resume", "priors train": "--resume", "priors run": "", "synth": "", "generate": ""}

#: Stage commands that write one file, not a folder: the file's name inside the stage's ``out``.
FILE_OUTPUT = {"retrieval": "score_retrieval.json", "eval-gen": "score_eval_gen.json"}


@dataclass
class StagePlan:
    """One stage as the runner builds it."""

    name: str
    command: str
    args: dict[str, Any]
    """The spec's args, stage references resolved to absolute output folders."""
    hash: str
    folder: Path
    deps: list[str]

    @property
    def out(self) -> Path:
        """The command's ``--out``: what ``${name}`` resolves to."""
        return self.folder / STAGE_OUT

    @property
    def out_arg(self) -> Path:
        """The ``--out`` given to the command: ``out`` itself, or for a command that writes one
        file (:data:`FILE_OUTPUT`) that file inside ``out``."""
        name = FILE_OUTPUT.get(self.command)
        return self.out / name if name else self.out

    @property
    def log(self) -> Path:
        return self.folder / STAGE_LOG

    @property
    def record_path(self) -> Path:
        return self.folder / STAGE_FILE

    def record(self) -> dict[str, Any] | None:
        """The ``stage.json`` of a built stage, or None."""
        if not self.record_path.is_file():
            return None
        from occkit.fileio import read_json

        return read_json(self.record_path)

    def build(self) -> str | None:
        """Which build of the stage the cache holds: its ``finished`` time (None while not built).
        The hash says what a stage is made from; the build says which making of it this is: a stage
        rebuilt (the cache lost, another machine) has the same hash and a new build, and need not hold
        the same bytes (bf16 kernels differ between CPUs)."""
        rec = self.record()
        return None if rec is None else rec.get("finished")

    def status(self) -> str:
        """``cached`` (built), ``partial`` (a folder without stage.json) or ``missing``."""
        if self.record_path.is_file():
            return "cached"
        return "partial" if self.folder.exists() else "missing"

    def continues(self) -> bool:
        """Whether a half-done output is continued (rather than removed) on the next build."""
        return self.command in RESUMABLE

    def argv(self, threads: int, device: str) -> list[str]:
        """The occkit command line (after ``occkit``) that builds this stage."""
        from occkit.ablate.cliargs import VERBS, find_action, mapping_argv, verb_parsers

        _, parser = verb_parsers(self.command)
        args = dict(self.args)
        if self.command == "train":
            sets = args.get("set") or []
            sets = [str(s) for s in ([sets] if isinstance(sets, str) else sets)]
            keys = {s.split("=", 1)[0].strip() for s in sets}
            extra = [s for s in (f"train.threads={threads}", f"train.device={device}") if s.split("=")[0] not in keys]
            args["set"] = extra + sets
        else:
            for opt, value in (("threads", threads), ("device", device)):
                if find_action(parser, opt) is not None and opt not in args:
                    args[opt] = value
        words = [*VERBS[self.command], *mapping_argv(parser, args), "--out", str(self.out_arg)]
        if find_action(parser, "no-progress") is not None and "no-progress" not in args and "no_progress" not in args:
            words.append("--no-progress")
        if self.command == "train" and _has_checkpoint(self.out):
            words.append(RESUMABLE["train"])
        if self.command == "priors train" and self.out.is_dir() and any(self.out.iterdir()):
            words.append(RESUMABLE["priors train"])  # from its last save, or from scratch if it stopped before one
        return words

    def prepare(self) -> None:
        """Make the folder ready for a build: a half-done output of a command that cannot
        continue is removed (with its log)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.continues() or self.command == "synth":  # synth continues from .out.partial, never into out
            if self.out.exists():
                shutil.rmtree(self.out)
            if self.log.exists() and not self.continues():
                self.log.unlink()
        if self.command in FILE_OUTPUT:
            self.out.mkdir(parents=True, exist_ok=True)


def machine_info() -> dict[str, Any]:
    """Where a stage was built (recorded in ``stage.json``): host, CPU model, whether the CPU has
    native bf16 (``synth-abl`` trains under bf16 autocast there and in float32 elsewhere), torch's version."""
    import platform
    from importlib import metadata

    info: dict[str, Any] = {"host": platform.node(), "cpu": platform.processor() or platform.machine()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), None)
        flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
        if model:
            info["cpu"] = model
        info["bf16"] = "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        pass
    try:
        info["torch"] = metadata.version("torch")
    except metadata.PackageNotFoundError:
        pass
    return info


def _has_checkpoint(run: Path) -> bool:
    if not (run / "checkpoints").is_dir():
        return False
    from occkit.engine.checkpoint import latest_checkpoint

    return latest_checkpoint(run) is not None


def stage_hash(command: str, args: dict[str, Any], upstream_hashes: dict[str, str]) -> str:
    """12 hex digits of the SHA-256 of the command, its args (upstream stages as their hashes)
    and occkit's version."""
    hashed_args = substitute(args, {n: f"stage:{h}" for n, h in upstream_hashes.items()})
    blob = json.dumps({"command": command, "args": hashed_args, "occkit": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def plan_stages(spec: AblationSpec, cache: str | Path) -> dict[str, StagePlan]:
    """Every stage of the spec with its hash and folder, in dependency order."""
    cache = Path(cache).resolve()
    plans: dict[str, StagePlan] = {}
    hashes: dict[str, str] = {}
    folders: dict[str, str] = {}
    for name in stage_order(spec.stages, spec.locator):
        st = spec.stages[name]
        args = dict(st.args)
        if st.command == "train" and "config" in args:
            args["config"] = _stage_config(args["config"], spec)
        h = stage_hash(st.command, args, hashes)
        hashes[name] = h
        folder = cache / f"{name}-{h}"
        deps = list(dict.fromkeys(r for r in _refs(args)))
        plans[name] = StagePlan(name, st.command, substitute(args, folders), h, folder, deps)
        folders[name] = str(folder / STAGE_OUT)
    return plans


def _refs(value: Any) -> list[str]:
    from occkit.ablate.spec import refs_in

    return refs_in(value)


def stage_folders(plans: dict[str, StagePlan]) -> dict[str, str]:
    """Stage -> its output folder (what ``${stage}`` resolves to)."""
    return {n: str(p.out) for n, p in plans.items()}


def stage_hashes(plans: dict[str, StagePlan]) -> dict[str, str]:
    """Stage -> ``stage:<hash>`` (how a run's identity names a stage: independent of the cache's place)."""
    return {n: f"stage:{p.hash}" for n, p in plans.items()}


def checkpoint_step(run: Path) -> int | None:
    """The step of a run folder's newest complete checkpoint, or None."""
    if not (run / "checkpoints").is_dir():
        return None
    from occkit.engine.checkpoint import latest_checkpoint

    ckpt = latest_checkpoint(run)
    return None if ckpt is None else int(ckpt.name.split("_", 1)[1])
