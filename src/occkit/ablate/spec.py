"""Ablation specs: the YAML file ``occkit ablate`` runs, parsed and checked before anything runs.

The format
----------
::

    name: supervised-regime        # optional (default: the file's name without .yaml)
    description: one line          # optional
    stages:                        # optional: shared inputs, each built once and cached by its inputs
      world:
        command: synth             # synth | priors run | priors train | pseudolabel | train
        args: {scenes: 10, frames: 8, seed: 0, image-size: [96, 256]}
      priors:
        command: priors run
        args: {data: "${world}", prior: "oracle:typical"}
      backbone:
        command: priors train
        args: {data: "${world}", steps: 2000, threads: 1}
      base:
        command: train
        args: {config: synth-cpu, data: "${world}", max-steps: 1000, set: [supervised.depth_weight=1.0]}
    data: ${world}                 # what the arms train on and are scored on (an arm may override it)
    budget: 2000                   # optimiser steps per arm (sets optim.max_steps)
    validations: 4                 # validations per arm (train.val_every = ckpt_every = ceil(budget / validations))
    tolerance: 0.5                 # "not converged": the last two validations differ by more (metric units)
    metric: miou                   # key of RUN/metrics.jsonl: curves, convergence, the table's first column
    seeds: [0, 1, 2]               # train.seed of each arm's runs
    arms:
      supervised:
        preset: synth-cpu          # preset name, or a YAML path (relative to this file)
        set: ["model.backbone_weights=${backbone}/backbone.safetensors"]   # occkit train --set overrides
        init_from: ${base}         # optional start: a stage or a path (occkit train --init-from)
        data: ${world}             # optional: this arm's dataset
        description: one line      # optional
      no_pretrain: {preset: synth-cpu}
    scoring:                       # optional: run on each arm x seed once it reaches the budget
      - {scorer: occ3d, masks: [camera, none]}
      # - {scorer: retrieval, arms: [a_langocc_arm]}   # a scorer for some arms only
    claims:                        # optional: the comparisons the ablation decides, arm against arm per seed
      - {name: pretraining helps, arm: supervised, against: no_pretrain}                # on the metric
      - {arm: supervised, against: no_pretrain, figure: occ3d_none.geometry_iou}         # on a scorer's figure
      # - {arm: a, figure: eval_gen.fid, against: a, against_figure: eval_gen_text.fid, higher: false}

Keys
----
- Top level: ``name``, ``description``, ``stages``, ``data``, ``budget`` (required, integer >= 1),
  ``validations`` (default 4, or the budget when smaller; 1..budget), ``tolerance`` (default 0.5,
  >= 0), ``metric`` (default ``miou``), ``seeds`` (default ``[0]``; distinct integers >= 0),
  ``arms`` (required, at least one), ``scoring`` (default none), ``claims`` (default none),
  ``baselines`` (default none: names of stages built and reported whatever arms run, e.g. a
  ``retrieval --lifted`` stage, a row without training beside the arms, or an ``eval-gen`` stage
  that scores a stage's samples). Any other key is an error.
- A stage: ``command`` (one of :data:`STAGE_COMMANDS`), ``args`` (the command's options without
  ``--out``, which the runner gives: see :mod:`occkit.ablate.cliargs` for how a mapping becomes
  options; checked with the command's own parser), ``description``.
- An arm: ``preset`` (required), ``set`` (a list of ``key=value``; keys of
  :class:`occkit.experiment.ExperimentConfig`, checked by building the config; the keys the runner
  sets - ``train.seed``, ``optim.max_steps``, ``train.val_every``, ``train.ckpt_every``,
  ``train.device``, ``train.threads``, ``train.init_from`` - are refused here), ``init_from``,
  ``data``, ``description``.
- A scoring entry: ``scorer`` (a name of :data:`occkit.ablate.scorers.SCORERS`), ``data``,
  ``arms``, and the scorer's own options (see :mod:`occkit.ablate.scorers`).
- A claim: ``arm`` and ``against`` (arm names, required), ``figure`` (default ``metric``: the
  spec's metric at the budget; or a scorer figure ``FILE_STEM.KEY`` as results.json's columns name
  them, e.g. ``occ3d_camera.miou``, ``ssc.completion_iou``, ``eval_gen_text.layout_miou``),
  ``against_figure`` (default: ``figure``; another figure of the same run, e.g. one run sampled two
  ways), ``higher`` (default true: a larger figure is better; false for FID, KID), ``name`` (a line
  of text). The report pairs the two sides seed by seed (``arm - against`` where both are trained to the budget) and
  says in how many seeds the claim holds.
- Names of stages and arms: letters, digits, ``_`` and ``-``, starting with a letter (they name
  folders).

References and paths
--------------------
YAML reads ``{`` and ``[`` inside a flow collection (``{...}``, ``[...]``) as structure: there,
quote a string holding a reference (``args: {data: "${world}"}``); in block style
(``data: ${world}``) no quotes are needed.
``${name}`` is the output folder of stage ``name``; a string may embed it
(``${backbone}/backbone.safetensors``). References may appear in stage ``args``, in ``data``, an
arm's ``set``, ``init_from`` and ``data``, and in scoring options. Stages may depend on stages; an
unknown name or a cycle is an error. A plain relative path in ``data``, ``init_from``, ``preset``
(when such a file exists), or a scorer's ``data`` / ``judge`` / ``queries`` is relative to the spec
file; in stage ``args`` and in ``set`` values, text other than references is passed as written
(relative to the directory ``occkit ablate`` runs in).

Command-line overrides (applied in this order, before any check)
----------------------------------------------------------------
- ``--set KEY=VALUE``: a dotted path into the spec's mapping (list items by index), the value
  parsed as YAML: ``stages.world.args.scenes=20``, ``scoring.0.masks=[camera]``;
  ``KEY+=VALUE`` appends to a list (a list value appends each item): ``arms.a.set+=[optim.lr=1e-3]``.
- ``--seeds 0,1`` and ``--budget N`` replace ``seeds`` and ``budget``.
- ``--world-seed S`` sets ``args.seed`` of the stage named ``world`` when there is one; otherwise
  of every ``synth`` stage that the arms' data (or a scorer's data) depends on, directly or
  through other stages. Stages built from them get new hashes, hence new folders.

Errors name the spec file and the line of the offending key (``spec.yaml:12: arms.a.set[1]:
...``), or the command-line override that put it there.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from occkit.ablate.scorers import COMMON_KEYS, PATH_OPTIONS, REQUIRED, SCORERS, score_columns
from occkit.fileio import read_utf8_text

#: The occkit verbs a stage may run.
STAGE_COMMANDS: tuple[str, ...] = (
    "synth",
    "priors run",
    "priors train",
    "pseudolabel",
    "train",
    "retrieval",
    "generate",
    "eval-gen",
)

TOP_KEYS = (
    "name",
    "description",
    "stages",
    "data",
    "budget",
    "validations",
    "tolerance",
    "metric",
    "seeds",
    "arms",
    "scoring",
    "claims",
    "baselines",
)
STAGE_KEYS = ("command", "args", "description")
ARM_KEYS = ("preset", "set", "init_from", "data", "description")
CLAIM_KEYS = ("name", "arm", "against", "figure", "against_figure", "higher")

#: Config keys the runner sets for every arm (from the spec's budget, seeds, validations, its
#: options and the arm's ``init_from``); an arm's ``set`` may not touch them.
RUNNER_KEYS = (
    "train.seed",
    "optim.max_steps",
    "train.val_every",
    "train.ckpt_every",
    "train.device",
    "train.threads",
    "train.init_from",
)

REF = re.compile(r"\$\{([^}]*)\}")
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")

Path_ = tuple  # a key path into the spec mapping: ("arms", "a", "set", 1)


class SpecError(ValueError):
    """A spec is refused; the message is one line naming the file and the line (or override)."""


# ------------------------------------------------------------------------------------- locations
@dataclass
class Locator:
    """Where each key of a spec came from: its line in the file, or a command-line override."""

    file: Path
    lines: dict[Path_, int] = field(default_factory=dict)
    origins: dict[Path_, str] = field(default_factory=dict)

    def where(self, path: Path_) -> str:
        """``spec.yaml:12`` (the line of the longest known prefix of ``path``) or
        ``spec.yaml (--set a.b=1)`` when an override set it."""
        for n in range(len(path), -1, -1):
            p = tuple(path[:n])
            if p in self.origins:
                return f"{self.file} ({self.origins[p]})"
            if p in self.lines:
                return f"{self.file}:{self.lines[p]}"
        return str(self.file)

    def error(self, path: Path_, message: str) -> SpecError:
        dotted = dotted_path(path)
        return SpecError(f"{self.where(path)}: {dotted + ': ' if dotted else ''}{message}")


def dotted_path(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _node_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int], file: Path) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for k, v in node.value:
            key = k.value
            line = k.start_mark.line + 1
            if key in seen:
                raise SpecError(
                    f"{file}:{line}: {dotted_path(path + (key,))}: duplicate key (first on line {seen[key]})"
                )
            seen[key] = line
            lines[path + (key,)] = line
            _node_lines(v, path + (key,), lines, file)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            _node_lines(item, path + (i,), lines, file)


def read_spec_file(path: str | Path) -> tuple[dict[str, Any], Locator]:
    """The spec's mapping and the line of every key and list item; errors name the file."""
    path = Path(path)
    text = read_utf8_text(path, "ablation spec", SpecError)
    loc = Locator(path)
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                raise SpecError(f"{path}: empty spec (expected a mapping with budget and arms)")
            _node_lines(node, (), loc.lines, path)
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        hint = ""
        if mark is not None and "${" in text.splitlines()[mark.line] if mark.line < len(text.splitlines()) else False:
            hint = '; inside [...] or {...}, quote a string holding ${...}: "a=${stage}/file"'
        raise SpecError(f"{path}{line}: invalid YAML ({e.problem or e}{hint})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}:1: expected a mapping at the top level, got {type(data).__name__}")
    return data, loc


# ------------------------------------------------------------------------------------- overrides
@dataclass
class Overrides:
    """The command line's changes to a spec (see the module docstring)."""

    set: list[str] = field(default_factory=list)
    """``KEY=VALUE`` / ``KEY+=VALUE`` on the spec's mapping."""
    seeds: list[int] | None = None
    """Replace ``seeds``."""
    budget: int | None = None
    """Replace ``budget``."""
    world_seed: int | None = None
    """Set the world stage's (or the arms' synth stages') ``args.seed``."""


def apply_set(data: dict[str, Any], item: str, loc: Locator) -> None:
    """Apply one ``--set`` item to the spec's mapping (in place), recording it in ``loc``."""
    if "=" not in item:
        raise SpecError(f"{loc.file} (--set {item}): expected KEY=VALUE")
    key, raw = item.split("=", 1)
    append = key.endswith("+")
    key = key.rstrip("+").strip()
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise SpecError(f"{loc.file} (--set {item}): cannot parse the value ({e})") from None
    parts: list[Any] = [int(p) if p.lstrip("-").isdigit() else p for p in key.split(".")]
    if not key or any(p == "" for p in parts):
        raise SpecError(f"{loc.file} (--set {item}): expected a dotted key such as stages.world.args.seed")
    node: Any = data
    for i, p in enumerate(parts[:-1]):
        if isinstance(node, dict):
            node = node.setdefault(p, {})
        elif isinstance(node, list) and isinstance(p, int) and -len(node) <= p < len(node):
            node = node[p]
        else:
            raise SpecError(
                f"{loc.file} (--set {item}): {dotted_path(tuple(parts[: i + 1]))} is not a mapping or list item"
            )
    last = parts[-1]
    if isinstance(node, list):
        if not (isinstance(last, int) and -len(node) <= last < len(node)):
            raise SpecError(f"{loc.file} (--set {item}): {dotted_path(tuple(parts))}: no such list item")
    elif not isinstance(node, dict):
        raise SpecError(f"{loc.file} (--set {item}): {dotted_path(tuple(parts[:-1]))} is not a mapping")
    if append:
        current = node.get(last, []) if isinstance(node, dict) else node[last]
        if current is None:
            current = []
        if not isinstance(current, list):
            raise SpecError(
                f"{loc.file} (--set {item}): {dotted_path(tuple(parts))} is not a list (+= appends to lists)"
            )
        value = current + (value if isinstance(value, list) else [value])
    node[last] = value
    loc.origins[tuple(parts)] = f"--set {item}"


# ------------------------------------------------------------------------------------- the spec
@dataclass
class Stage:
    """A shared stage: one occkit command, built once per distinct input."""

    name: str
    command: str
    args: dict[str, Any]
    """The command's options (``${...}`` unresolved), without ``--out``."""
    description: str = ""


@dataclass
class Arm:
    """One arm: a preset plus overrides and a start, trained once per seed."""

    name: str
    preset: str
    """A preset name, or an absolute YAML path (resolved from the spec's folder)."""
    set: list[str]
    """``key=value`` overrides (``${...}`` unresolved)."""
    init_from: str | None
    """A start (``${stage}`` or an absolute path), or None."""
    data: str
    """The training dataset (``${stage}`` or an absolute path)."""
    description: str = ""


@dataclass
class Scoring:
    """One entry of ``scoring:``."""

    scorer: str
    options: dict[str, Any]
    """The scorer's options with defaults filled (``${...}`` unresolved; relative paths resolved)."""
    data: str | None
    """The dataset scored; None = each arm's own."""
    arms: tuple[str, ...] | None
    """The arms it applies to; None = all."""
    index: int = 0
    """Its position in ``scoring:``."""


@dataclass
class Claim:
    """One entry of ``claims:``: arm against arm (or one run's figure against another), per seed."""

    name: str
    arm: str
    against: str
    figure: str
    """``metric`` (the spec's metric at the budget) or a scorer figure's column id (``ssc.ssc_miou``)."""
    against_figure: str
    higher: bool = True
    """A larger figure is better (false: FID, KID)."""


@dataclass
class AblationSpec:
    """A parsed ablation spec (overrides applied, structure checked)."""

    path: Path
    name: str
    description: str
    stages: dict[str, Stage]
    data: str | None
    budget: int
    validations: int
    tolerance: float
    metric: str
    seeds: list[int]
    arms: dict[str, Arm]
    scoring: list[Scoring]
    raw: dict[str, Any]
    """The mapping after overrides (recorded in results.json)."""
    locator: Locator
    claims: list[Claim] = field(default_factory=list)
    """The comparisons the report decides (``claims:``)."""
    baselines: list[str] = field(default_factory=list)
    """Stages built and reported whatever arms run (rows without training, e.g. a lifted baseline)."""
    report_seeds: list[int] = field(default_factory=list)
    """The seeds results.md reports: the spec file's own, then ``--seeds``' others. A run of one seed
    (``--seeds 2``) still reports every seed on disk; empty = ``seeds``."""

    @property
    def val_every(self) -> int:
        """``train.val_every`` (and ``ckpt_every``) of every arm: ceil(budget / validations)."""
        return math.ceil(self.budget / self.validations)

    def scorings_for(self, arm: str) -> list[Scoring]:
        return [s for s in self.scoring if s.arms is None or arm in s.arms]


def refs_in(value: Any) -> list[str]:
    """The ``${name}`` references in a value (strings inside lists and mappings too), in order."""
    if isinstance(value, str):
        return REF.findall(value)
    if isinstance(value, list):
        return [r for v in value for r in refs_in(v)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in refs_in(v)]
    return []


def substitute(value: Any, folders: dict[str, str]) -> Any:
    """``value`` with each ``${name}`` replaced by ``folders[name]`` (recursively)."""
    if isinstance(value, str):
        return REF.sub(lambda m: str(folders[m.group(1)]), value)
    if isinstance(value, list):
        return [substitute(v, folders) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, folders) for k, v in value.items()}
    return value


def _spec_path(value: str, spec_dir: Path) -> str:
    """A path value as the runner uses it: references kept, a relative path made spec-relative."""
    if REF.search(value) or Path(value).is_absolute():
        return value
    return str((spec_dir / value).resolve())


def stage_dependencies(stages: dict[str, Stage]) -> dict[str, list[str]]:
    """Stage -> the stages its args reference (unique, in order)."""
    return {n: list(dict.fromkeys(refs_in(s.args))) for n, s in stages.items()}


def stage_order(stages: dict[str, Stage], loc: Locator | None = None) -> list[str]:
    """The stages in dependency order (a stage after those it references); a cycle is an error."""
    deps = stage_dependencies(stages)
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(n: str, trail: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            cycle = trail[trail.index(n) :] + [n]
            msg = f"cycle of stage references: {' -> '.join(cycle)}"
            raise loc.error(("stages", n), msg) if loc else SpecError(msg)
        state[n] = 1
        for d in deps[n]:
            visit(d, trail + [n])
        state[n] = 2
        order.append(n)

    for n in stages:
        visit(n, [])
    return order


def upstream(stages: dict[str, Stage], names: list[str]) -> list[str]:
    """``names`` and every stage they depend on, in dependency order."""
    deps = stage_dependencies(stages)
    need: set[str] = set()
    todo = [n for n in names if n in stages]
    while todo:
        n = todo.pop()
        if n not in need:
            need.add(n)
            todo += deps[n]
    return [n for n in stage_order(stages) if n in need]


def shipped_specs() -> list[str]:
    """Names of the ablation specs shipped with occkit (``configs/ablations/*.yaml`` in the package)."""
    from importlib import resources

    folder = resources.files("occkit") / "configs" / "ablations"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")) if folder.is_dir() else []


def find_spec(name_or_path: str | Path) -> Path:
    """A spec file from a path, or the name of a shipped spec (``regime``, ``radocc`` ...)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    if p.suffix not in (".yaml", ".yml") and "/" not in str(name_or_path):
        from importlib import resources

        cand = resources.files("occkit") / "configs" / "ablations" / f"{name_or_path}.yaml"
        if cand.is_file():
            return Path(str(cand))
    raise SpecError(
        f"{name_or_path}: no such spec file or shipped spec (shipped: {', '.join(shipped_specs()) or 'none'})"
    )


class _SpecReader:
    """What the section parsers of :func:`parse_spec` share: the file's locator (errors with file
    and line), the spec's folder (relative paths) and the stages parsed so far (references)."""

    def __init__(self, loc: Locator, spec_dir: Path) -> None:
        self.loc, self.spec_dir = loc, spec_dir
        self.stages: dict[str, Stage] = {}

    def want(self, value: Any, kind: type | tuple[type, ...], p: Path_, what: str) -> Any:
        """``value`` if it is a ``kind`` (a bool is no int), else the located error."""
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.loc.error(p, f"expected {what}, got {value!r}")
        return value

    def entries(self, data: dict[str, Any], key: str, what: str) -> Iterator[tuple[Path_, dict[str, Any]]]:
        """``(path, entry)`` of each entry of the list section ``data[key]`` (absent: none), each
        entry a mapping ``what`` (else the located error)."""
        raw = data.get(key) or []
        self.want(raw, list, (key,), f"a list of {what}")
        for i, entry in enumerate(raw):
            p = (key, i)
            yield p, self.want(entry, dict, p, f"a mapping {what}")

    def check_refs(self, value: Any, p: Path_) -> Any:
        """``value`` if every ``${stage}`` in it names a stage, else the located error."""
        for ref in refs_in(value):
            if ref not in self.stages:
                stages = ", ".join(self.stages) or "none"
                raise self.loc.error(p, f"unknown stage reference ${{{ref}}} (stages: {stages})")
        return value

    def place(self, value: Any, p: Path_) -> str:
        """A ``data`` / ``init_from`` value: a stage reference or a path (relative to the spec)."""
        return self.check_refs(_spec_path(self.want(value, str, p, "a stage reference or a path"), self.spec_dir), p)


def _apply_overrides(data: dict[str, Any], loc: Locator, ov: Overrides) -> list[int]:
    """The command line's ``--set``, ``--seeds`` and ``--budget`` applied to the file's mapping;
    returns the file's own valid seeds (the report lists them beside those run)."""
    for item in ov.set:
        apply_set(data, item, loc)
    file_seeds = data.get("seeds", [0])
    file_seeds = [file_seeds] if isinstance(file_seeds, int) else file_seeds
    file_seeds = (
        [x for x in file_seeds if isinstance(x, int) and not isinstance(x, bool) and x >= 0]
        if isinstance(file_seeds, list)
        else []
    )
    if ov.seeds is not None:
        data["seeds"] = list(ov.seeds)
        loc.origins[("seeds",)] = "--seeds " + ",".join(str(s) for s in ov.seeds)
    if ov.budget is not None:
        data["budget"] = ov.budget
        loc.origins[("budget",)] = f"--budget {ov.budget}"
    return file_seeds


def _parse_stages(data: dict[str, Any], r: _SpecReader) -> dict[str, Stage]:
    """``stages:``: names, commands, args, references and their order (no cycle)."""
    loc, stages = r.loc, r.stages
    raw_stages = r.want(data.get("stages") or {}, dict, ("stages",), "a mapping of stage names to {command, args}")
    for name, body in raw_stages.items():
        p = ("stages", name)
        if not isinstance(name, str) or not NAME.match(name):
            raise loc.error(p, "a stage name is letters, digits, _ and -, starting with a letter")
        r.want(body, dict, p, "a mapping with command and args")
        for k in body:
            if k not in STAGE_KEYS:
                raise loc.error(p + (k,), f"unknown stage key (known: {', '.join(STAGE_KEYS)})")
        if "command" not in body:
            raise loc.error(p, f"no command (one of: {', '.join(STAGE_COMMANDS)})")
        if body["command"] not in STAGE_COMMANDS:
            raise loc.error(
                p + ("command",), f"unknown stage command {body['command']!r} (known: {', '.join(STAGE_COMMANDS)})"
            )
        args = r.want(body.get("args") or {}, dict, p + ("args",), "a mapping of the command's options")
        for k in args:
            if str(k) in ("out", "resume"):
                raise loc.error(p + ("args", k), f"--{k} is the runner's to give")
        stages[name] = Stage(name, body["command"], copy.deepcopy(args), str(body.get("description") or ""))
    for name, st in stages.items():
        r.check_refs(st.args, ("stages", name, "args"))
    stage_order(stages, loc)
    return stages


def _parse_numbers(data: dict[str, Any], r: _SpecReader) -> tuple[int, int, float, str, list[int]]:
    """``budget``, ``validations``, ``tolerance``, ``metric`` and ``seeds``."""
    loc, want = r.loc, r.want
    if "budget" not in data:
        raise loc.error((), "no budget (optimiser steps per arm)")
    budget = want(data["budget"], int, ("budget",), "an integer number of steps >= 1")
    if budget < 1:
        raise loc.error(("budget",), f"expected an integer number of steps >= 1, got {budget}")
    validations = want(data.get("validations", min(4, budget)), int, ("validations",), "an integer >= 1")
    if not 1 <= validations <= budget:
        raise loc.error(("validations",), f"expected 1 to budget ({budget}) validations, got {validations}")
    tolerance = want(data.get("tolerance", 0.5), (int, float), ("tolerance",), "a number >= 0")
    if isinstance(tolerance, bool) or not (tolerance >= 0 and math.isfinite(tolerance)):
        raise loc.error(("tolerance",), f"expected a number >= 0, got {tolerance!r}")
    metric = want(data.get("metric", "miou"), str, ("metric",), "a key of metrics.jsonl such as miou")
    seeds = data.get("seeds", [0])
    seeds = [seeds] if isinstance(seeds, int) and not isinstance(seeds, bool) else seeds
    want(seeds, list, ("seeds",), "a list of integer seeds")
    if not seeds:
        raise loc.error(("seeds",), "expected at least one seed")
    for i, s in enumerate(seeds):
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise loc.error(("seeds", i), f"expected an integer seed >= 0, got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise loc.error(("seeds",), f"repeated seeds in {seeds}")
    return budget, validations, float(tolerance), metric, list(seeds)


def _parse_arm_sets(body: dict[str, Any], p: Path_, r: _SpecReader) -> list[str]:
    """An arm's ``set:``: ``key=value`` strings, none of the keys the runner sets."""
    sets = body.get("set") or []
    sets = [sets] if isinstance(sets, str) else sets
    r.want(sets, list, p + ("set",), "a list of key=value overrides")
    for i, item in enumerate(sets):
        r.want(item, str, p + ("set", i), "key=value")
        if "=" not in item:
            raise r.loc.error(p + ("set", i), f"expected key=value, got {item!r}")
        key = item.split("=", 1)[0].strip()
        if key in RUNNER_KEYS:
            hint = (
                "the arm's init_from"
                if key == "train.init_from"
                else "the spec's seeds, budget, validations or occkit ablate's options"
            )
            raise r.loc.error(p + ("set", i), f"{key} is set by the runner (use {hint})")
        r.check_refs(item, p + ("set", i))
    return [str(s) for s in sets]


def _parse_arms(data: dict[str, Any], r: _SpecReader, top_data: str | None) -> dict[str, Arm]:
    """``arms:``: each arm's preset, overrides, start and data."""
    loc = r.loc
    if "arms" in data:
        raw_arms = r.want(data.get("arms"), dict, ("arms",), "a mapping of arm names to {preset, set, ...}")
    else:
        raw_arms = None
    if not raw_arms:
        raise loc.error(("arms",) if "arms" in data else (), "no arms")
    arms: dict[str, Arm] = {}
    for name, body in raw_arms.items():
        p = ("arms", name)
        if not isinstance(name, str) or not NAME.match(name):
            raise loc.error(p, "an arm name is letters, digits, _ and -, starting with a letter")
        body = {} if body is None else r.want(body, dict, p, "a mapping with preset (and set, init_from, data)")
        for k in body:
            if k not in ARM_KEYS:
                raise loc.error(p + (k,), f"unknown arm key (known: {', '.join(ARM_KEYS)})")
        if "preset" not in body:
            raise loc.error(p, "no preset")
        preset = r.want(body["preset"], str, p + ("preset",), "a preset name or a YAML path")
        if (r.spec_dir / preset).is_file():
            preset = str((r.spec_dir / preset).resolve())
        sets = _parse_arm_sets(body, p, r)
        init_from = body.get("init_from")
        if init_from is not None:
            init_from = r.place(init_from, p + ("init_from",))
        arm_data = body.get("data")
        if arm_data is not None:
            arm_data = r.place(arm_data, p + ("data",))
        arm_data = arm_data or top_data
        if arm_data is None:
            raise loc.error(p, "no data (give data: at the top level or in the arm)")
        arms[name] = Arm(name, preset, sets, init_from, arm_data, str(body.get("description") or ""))
    return arms


def _parse_scoring(data: dict[str, Any], r: _SpecReader, arms: dict[str, Arm]) -> list[Scoring]:
    """``scoring:``: each entry's scorer, its options (checked by the scorer), data and arms; no
    two entries writing the same file."""
    loc = r.loc
    scoring: list[Scoring] = []
    for p, entry in r.entries(data, "scoring", "{scorer: NAME, ...}"):
        name = entry.get("scorer")
        if name not in SCORERS:
            raise loc.error(
                p + (("scorer",) if "scorer" in entry else ()), f"unknown scorer {name!r} (known: {', '.join(SCORERS)})"
            )
        scorer = SCORERS[name]
        options = copy.deepcopy(scorer.options)
        for k, v in entry.items():
            if k in COMMON_KEYS:
                continue
            if k not in scorer.options:
                raise loc.error(
                    p + (k,),
                    f"unknown option of scorer {name} (known: {', '.join(list(COMMON_KEYS) + list(scorer.options))})",
                )
            options[k] = copy.deepcopy(v)
        for k, v in options.items():
            if v is REQUIRED:
                raise loc.error(p, f"scorer {name} needs {k}")
        for k in PATH_OPTIONS:
            if isinstance(options.get(k), str):
                options[k] = _spec_path(options[k], r.spec_dir)
        r.check_refs(options, p)
        try:
            scorer.check(options)
        except ValueError as e:
            key = str(e).split(":", 1)[0]
            raise loc.error(p + ((key,) if key in entry else ()), str(e)) from None
        s_data = entry.get("data")
        if s_data is not None:
            s_data = r.place(s_data, p + ("data",))
        s_arms = entry.get("arms")
        if s_arms is not None:
            s_arms = [s_arms] if isinstance(s_arms, str) else s_arms
            r.want(s_arms, list, p + ("arms",), "a list of arm names")
            for j, a in enumerate(s_arms):
                if a not in arms:
                    raise loc.error(p + ("arms", j), f"unknown arm {a!r} (arms: {', '.join(arms)})")
            s_arms = tuple(s_arms)
        scoring.append(Scoring(name, options, s_data, s_arms, p[1]))
    names = [f"{s.scorer}:{o}" for s in scoring for o in SCORERS[s.scorer].outputs(s.options)]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise loc.error(
            ("scoring",),
            f"two entries write the same file ({dup.split(':', 1)[1]}); give one entry per scorer and split their "
            "arms (eval_gen: a name per entry)",
        )
    return scoring


def _parse_claims(
    data: dict[str, Any], r: _SpecReader, arms: dict[str, Arm], scoring: list[Scoring], metric: str
) -> list[Claim]:
    """``claims:``: two arms and a figure each side, one that the arm's scorers (or its metric) give."""
    loc = r.loc
    claims: list[Claim] = []
    for p, entry in r.entries(data, "claims", "{arm: A, against: B, figure: F}"):
        for k in entry:
            if k not in CLAIM_KEYS:
                raise loc.error(p + (k,), f"unknown claim key (known: {', '.join(CLAIM_KEYS)})")
        sides = {}
        for k in ("arm", "against"):
            if k not in entry:
                raise loc.error(p, f"no {k} (an arm name)")
            if entry[k] not in arms:
                raise loc.error(p + (k,), f"unknown arm {entry[k]!r} (arms: {', '.join(arms)})")
            sides[k] = entry[k]
        figs = {}
        for k, arm_key in (("figure", "arm"), ("against_figure", "against")):
            fig = r.want(entry.get(k, figs.get("figure", "metric")), str, p + (k,), "a figure name")
            if fig == metric:
                fig = "metric"
            known = [
                "metric",
                *(c["id"] for c in score_columns(sc for sc in scoring if sc.arms is None or sides[arm_key] in sc.arms)),
            ]
            if fig not in known:
                raise loc.error(
                    p + ((k,) if k in entry else ()),
                    f"arm {sides[arm_key]!r} has no figure {fig!r} (its figures: {', '.join(known)})",
                )
            figs[k] = fig
        higher = r.want(entry.get("higher", True), bool, p + ("higher",), "true or false")
        if sides["arm"] == sides["against"] and figs["figure"] == figs["against_figure"]:
            raise loc.error(
                p + ("against",),
                f"arm {sides['arm']!r} against itself on one figure ({figs['figure']}): a claim that decides "
                "nothing (name another arm, or another figure of the same runs)",
            )
        name = str(entry.get("name") or f"{sides['arm']} against {sides['against']}")
        claims.append(Claim(name, sides["arm"], sides["against"], figs["figure"], figs["against_figure"], higher))
    return claims


def _parse_baselines(data: dict[str, Any], r: _SpecReader) -> list[str]:
    """``baselines:``: names of stages."""
    baselines = data.get("baselines") or []
    r.want(baselines, list, ("baselines",), "a list of stage names")
    for i, b in enumerate(baselines):
        if b not in r.stages:
            raise r.loc.error(("baselines", i), f"unknown stage {b!r} (stages: {', '.join(r.stages) or 'none'})")
    return baselines


def parse_spec(path: str | Path, overrides: Overrides | None = None) -> AblationSpec:
    """Read a spec, apply the command line's overrides, check its structure and references, one
    section at a time (``_parse_stages``, ``_parse_numbers``, ``_parse_arms``, ``_parse_scoring``,
    ``_parse_claims``, ``_parse_baselines``), each error located at its file and line.

    The checks that build configs and parse commands are :func:`check_spec`'s.
    """
    path = Path(path)
    data, loc = read_spec_file(path)
    ov = overrides or Overrides()
    file_seeds = _apply_overrides(data, loc, ov)
    for k in data:
        if k not in TOP_KEYS:
            raise loc.error((k,), f"unknown key (known: {', '.join(TOP_KEYS)})")
    r = _SpecReader(loc, path.resolve().parent)
    stages = _parse_stages(data, r)
    budget, validations, tolerance, metric, seeds = _parse_numbers(data, r)
    top_data = None if data.get("data") is None else r.place(data["data"], ("data",))
    arms = _parse_arms(data, r, top_data)
    scoring = _parse_scoring(data, r, arms)
    claims = _parse_claims(data, r, arms, scoring, metric)
    baselines = _parse_baselines(data, r)
    spec = AblationSpec(
        path=path,
        name=str(data.get("name") or path.name.removesuffix(".yaml").removesuffix(".yml")),
        description=str(data.get("description") or ""),
        stages=stages,
        data=top_data,
        budget=budget,
        validations=validations,
        tolerance=tolerance,
        metric=metric,
        seeds=seeds,
        arms=arms,
        scoring=scoring,
        raw=data,
        locator=loc,
        claims=claims,
        baselines=baselines,
        report_seeds=list(dict.fromkeys([*file_seeds, *seeds])),
    )
    if ov.world_seed is not None:
        set_world_seed(spec, ov.world_seed)
    return spec


def data_stages(spec: AblationSpec, arms: list[str] | None = None) -> list[str]:
    """The stages the arms' (and their scorers') data reference directly."""
    names = list(spec.arms) if arms is None else arms
    refs = [r for a in names for r in refs_in(spec.arms[a].data)]
    refs += [r for a in names for s in spec.scorings_for(a) for r in refs_in(s.data or "")]
    return list(dict.fromkeys(refs))


def set_world_seed(spec: AblationSpec, seed: int) -> list[str]:
    """``--world-seed``: the stages whose ``args.seed`` it sets (see the module docstring)."""
    if "world" in spec.stages:
        targets = ["world"]
    else:
        targets = [n for n in upstream(spec.stages, data_stages(spec)) if spec.stages[n].command == "synth"]
    if not targets:
        raise SpecError(
            f"{spec.path} (--world-seed {seed}): no stage named world and no synth stage under the arms' data"
        )
    for n in targets:
        spec.stages[n].args["seed"] = seed
        spec.raw["stages"][n].setdefault("args", {})
        spec.raw["stages"][n]["args"] = dict(spec.raw["stages"][n]["args"] or {}, seed=seed)
        spec.locator.origins[("stages", n, "args", "seed")] = f"--world-seed {seed}"
    return targets


# ------------------------------------------------------------------------------------- deep checks
def placeholder_folders(spec: AblationSpec) -> dict[str, str]:
    """A stand-in output folder per stage, for checks made before the stages exist."""
    return {n: f"/ablate-stage/{n}" for n in spec.stages}


def runner_sets(spec: AblationSpec, seed: int, threads: int = 1, device: str = "cpu") -> list[str]:
    """The ``--set`` overrides the runner gives every arm's training (budget apart: ``--max-steps``)."""
    return [
        f"train.seed={seed}",
        f"train.threads={threads}",
        f"train.device={device}",
        f"train.val_every={spec.val_every}",
        f"train.ckpt_every={spec.val_every}",
    ]


def arm_sets(arm: Arm, folders: dict[str, str]) -> list[str]:
    """The arm's own overrides with stages resolved (its ``init_from`` apart: :func:`init_from_words`)."""
    return [substitute(s, folders) for s in arm.set]


def init_from_words(arm: Arm, folders: dict[str, str]) -> list[str]:
    """``occkit train`` words giving the arm's start: ``--init-from PATH`` (or, with an occkit
    whose ``train`` has no such option, ``--set train.init_from=PATH``); none without a start."""
    if arm.init_from is None:
        return []
    from occkit.ablate.cliargs import find_action, verb_parsers

    path = substitute(arm.init_from, folders)
    if find_action(verb_parsers("train")[1], "init-from") is not None:
        return ["--init-from", path]
    return ["--set", f"train.init_from={path}"]


def check_spec(spec: AblationSpec, arms: list[str] | None = None) -> None:
    """The checks that need occkit's parsers and configs: each stage's args parse with its
    command's own parser; each arm's preset exists and its overrides build an
    :class:`~occkit.experiment.ExperimentConfig`. Errors name the file and the line."""
    from dataclasses import fields

    from occkit.engine.config import TrainConfig

    folders = placeholder_folders(spec)
    for name, st in spec.stages.items():
        _check_stage(spec, name, st, folders)
    has_init_from = any(f.name == "init_from" for f in fields(TrainConfig))
    for name in arms or list(spec.arms):
        _check_arm(spec, name, folders, has_init_from)


def _check_stage(spec: AblationSpec, name: str, st: Stage, folders: dict[str, str]) -> None:
    """A stage's args parse with its command's own parser; a train stage's config and overrides load."""
    from occkit.ablate.cliargs import mapping_argv, parse_check, verb_parsers
    from occkit.experiment import find_preset, load_experiment

    loc = spec.locator
    p = ("stages", name, "args")
    _, parser = verb_parsers(st.command)
    args = substitute(st.args, folders)
    try:
        words = mapping_argv(parser, args)
    except ValueError as e:
        key = str(e).split(":", 1)[0]
        raise loc.error(p + ((key,) if key in st.args else ()), f"occkit {st.command}: {e}") from None
    try:
        parse_check(st.command, [*words, "--out", f"/ablate-stage/{name}"])
    except ValueError as e:
        raise loc.error(p, f"occkit {st.command} refuses these options: {e}") from None
    if st.command == "train":
        config = _stage_config(st.args.get("config"), spec)
        try:
            find_preset(config)
            sets = args.get("set") or []
            load_experiment(config, [str(x) for x in ([sets] if isinstance(sets, str) else sets)])
        except (ValueError, FileNotFoundError) as e:
            raise loc.error(p + (("set",) if "set" in st.args else ()), f"{e}") from None


def _check_arm(spec: AblationSpec, name: str, folders: dict[str, str], has_init_from: bool) -> None:
    """An arm's preset exists, its data and start exist, its overrides build a config, and that
    config's validations log the spec's metric."""
    from occkit.experiment import find_preset

    loc = spec.locator
    arm = spec.arms[name]
    p = ("arms", name)
    try:
        find_preset(arm.preset)
    except FileNotFoundError as e:
        raise loc.error(p + ("preset",), f"unknown preset: {e}") from None
    if arm.init_from is not None and not has_init_from:
        raise loc.error(p + ("init_from",), "this occkit's TrainConfig has no init_from field yet (train.init_from)")
    for key in ("data", "init_from"):
        value = getattr(arm, key)
        if value is not None and not REF.search(value) and not Path(value).exists():
            raise loc.error(
                p + (key,) if key in spec.raw["arms"][name] else ("data",), f"{value}: no such file or folder"
            )
    cfg = _arm_config(spec, name, folders)
    keys = logged_metrics(cfg)
    if keys is not None and spec.metric not in keys:  # found now, not when the table comes out empty
        raise loc.error(
            ("metric",) if "metric" in spec.raw else p,
            f"{spec.metric}: arm {name} ({arm.preset}) does "
            f"not log it in metrics.jsonl; its validations log {', '.join(sorted(keys))}",
        )


def _arm_config(spec: AblationSpec, name: str, folders: dict[str, str]) -> Any:
    """The :class:`~occkit.experiment.ExperimentConfig` an arm's first seed trains with; a config
    error names the override it comes from."""
    from occkit.config import ConfigError
    from occkit.experiment import load_experiment

    loc, arm, p = spec.locator, spec.arms[name], ("arms", name)
    sets = arm_sets(arm, folders) + ([f"train.init_from={substitute(arm.init_from, folders)}"] if arm.init_from else [])
    try:
        return load_experiment(arm.preset, [*runner_sets(spec, spec.seeds[0]), f"optim.max_steps={spec.budget}", *sets])
    except ConfigError as e:
        msg = str(e)
        idx = next((i for i, s in enumerate(arm.set) if _key_in(s.split("=", 1)[0].strip(), msg)), None)
        raise loc.error(p + (("set", idx) if idx is not None else ("set",) if arm.set else ("preset",)), msg) from None
    except (ValueError, FileNotFoundError) as e:
        raise loc.error(p + ("set",) if arm.set else p, str(e)) from None


def logged_metrics(cfg: Any) -> set[str] | None:
    """The keys a training run of ``cfg`` logs at each validation (``metrics.jsonl``), or None when
    the method adds figures of its own (``validation_figures``), which only a run shows. The
    metrics' keys are read from the format's first metric itself (``data.format``; with 'auto',
    every registered format's), as the training validation logs them."""
    from occkit.formats import formats, get_format
    from occkit.methods.registry import logs_validation_figures
    from occkit.scoring.core import Scoring

    if logs_validation_figures(cfg):
        return None
    keys = {"step", "train_minutes", "wall_minutes"}
    candidates = list(formats().values()) if cfg.data.format == "auto" else [get_format(cfg.data.format)]
    for fmt in candidates:
        try:  # the scoring core's metrics, as validation makes them
            scoring = Scoring(fmt, metrics=cfg.train.val_metrics, mask="camera", num_classes=cfg.model.num_classes)
        except ValueError:  # with 'auto': a format whose classes the model cannot predict is not this run's data
            if cfg.data.format != "auto":
                raise
            continue
        keys |= set(scoring.compute())
    return keys


def _key_in(key: str, message: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(key)}(?![\w])", message) is not None


def _stage_config(config: Any, spec: AblationSpec) -> str:
    """The train stage's CONFIG (a preset name, or a path relative to the spec when that file exists)."""
    config = str(config)
    cand = spec.path.resolve().parent / config
    return str(cand.resolve()) if cand.is_file() else config
