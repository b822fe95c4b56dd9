"""Plugins that fail name themselves and stop nothing else: a package (a throwaway one on ``sys.path``,
with its ``dist-info`` entry points) that fails to import, has a syntax error, names no MethodSpec,
takes a registered name, is malformed, exits at import or whose entry point's value is malformed
gives one warning naming the package, the entry point and the cause; every other method works and
asking for the broken one is a one-line refusal."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import occkit.experiment as experiment
import occkit.methods.registry as reg_mod
from occkit.cli import user_error_message
from occkit.config import ConfigError
from occkit.methods.registry import PluginWarning, RegistryError, get_method, registry

_count = itertools.count()

GOOD = """
from dataclasses import dataclass
from occkit.methods.registry import MethodSpec
from occkit.methods.supervised import METHOD as SUP

@dataclass
class {cls}:
    x: int = 0

def build(cfg, load_run):
{build}

METHOD = MethodSpec(name={name!r}, summary="a test plugin", sections={{{section!r}: {cls}}}, build=build,
                    export_refused="a test plugin", presets={presets})
"""


def write_package(site: Path, dist: str, entries: dict[str, tuple[str, str | None]]) -> dict[str, str]:
    """A distribution ``dist`` in ``site``: entry point name -> (value, module source or None).
    Each module gets a name of its own (``{module}`` in the value is replaced by it); returns
    entry point name -> module name."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines, modules = ["[occkit.methods]"], {}
    for ep, (value, source) in entries.items():
        module = f"occkit_test_plugin_{os.getpid()}_{next(_count)}"
        modules[ep] = module
        lines.append(f"{ep} = {value.format(module=module)}")
        if source is not None:
            (site / f"{module}.py").write_text(textwrap.dedent(source))
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return modules


def good(name: str, build: str = "    return SUP.build(cfg, load_run)", presets: str = "None") -> str:
    section = f"sec_{name}"
    return GOOD.format(cls=f"Config_{name}", build=build, name=name, section=section, presets=presets)


BROKEN = {
    "fails_import": ("{module}:METHOD", "import nowhere_to_be_found_xyz\n", "ModuleNotFoundError"),
    "syntax": ("{module}:METHOD", "METHOD = (\n", "syntax error in"),
    "not_a_spec": ("{module}:METHOD", "METHOD = 3\n", "is a int, not an occkit.methods.registry.MethodSpec"),
    "taken": ("{module}:METHOD", good("supervised"), "'supervised' is already registered by occkit.methods.supervised"),
    "bad_name": ("{module}:METHOD", good("x").replace("name='x'", "name=123"), "method name 123 is not an identifier"),
    "exits": ("{module}:METHOD", "import sys\nsys.exit(3)\n", "calls sys.exit(3) when imported"),
    "bad_value": ("not a valid value!", None, "malformed value 'not a valid value!'"),
}


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on ``sys.path`` for throwaway packages, and a registry found afresh from it."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setattr(reg_mod, "_REGISTRY", None)
    monkeypatch.setattr(reg_mod, "_BROKEN", {})
    monkeypatch.setattr(experiment, "_CLASSES", dict(experiment._CLASSES))
    return folder


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_plugin_is_one_warning_and_every_other_method_works(site, case):
    value, source, cause = BROKEN[case]
    write_package(site, "broken-pkg", {case: (value, source)})
    write_package(site, "fine-pkg", {"fine_one": ("{module}:METHOD", good("fine_one"))})
    with pytest.warns(PluginWarning) as caught:
        methods = registry()
    lines = [str(w.message) for w in caught]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert "package broken-pkg" in lines[0] and f"entry point {case} =" in lines[0] and cause in lines[0]
    assert {"supervised", "radocc", "fine_one"} <= set(methods)
    assert get_method("supervised").source == "occkit.methods.supervised"
    if case != "taken":  # the broken method itself: one line with the cause
        with pytest.raises(RegistryError, match=f"'{case}' is not one of .*package broken-pkg.*{cause[:12]}"):
            get_method(case)
        p = site / "broken.yaml"
        p.write_text(f"method: {case}\n")
        with pytest.raises(ConfigError, match=f"{p}: method: '{case}' is not one of .*package broken-pkg"):
            experiment.load_experiment(p)
    cfg = experiment.load_experiment("synth-cpu", ["model.backbone=test_efficientnet", "model.neck_channels=8"])
    assert experiment.build_method(cfg) is not None


def test_a_plugin_whose_build_raises_or_returns_none_is_named_not_an_occkit_bug(site):
    write_package(
        site,
        "buggy-pkg",
        {
            "raises": ("{module}:METHOD", good("raises", build="    raise TypeError('oops in the plugin')")),
            "returns_none": ("{module}:METHOD", good("returns_none", build="    return None")),
        },
    )
    registry()
    with pytest.raises(RegistryError) as e:
        experiment.build_method(experiment.load_experiment(None, ["method=raises"]))
    msg = user_error_message(e.value)  # a line of the command, not "internal error (a bug in occkit)"
    assert msg is not None and "package buggy-pkg" in msg and "TypeError: oops in the plugin" in msg
    with pytest.raises(RegistryError, match="method returns_none .*package buggy-pkg.*returned NoneType"):
        experiment.build_method(experiment.load_experiment(None, ["method=returns_none"]))


def test_a_missing_presets_folder_and_a_shadowing_preset_are_named(site):
    presets = site / "presets"
    presets.mkdir()
    (presets / "synth-cpu.yaml").write_text("method: own_presets\n")
    (presets / "own-preset.yaml").write_text("method: own_presets\n")
    write_package(
        site,
        "preset-pkg",
        {
            "no_folder": ("{module}:METHOD", good("no_folder", presets=repr(str(site / "nowhere")))),
            "own_presets": ("{module}:METHOD", good("own_presets", presets=repr(str(presets)))),
        },
    )
    with pytest.warns(PluginWarning) as caught:
        methods = registry()
    lines = sorted(str(w.message) for w in caught)
    assert len(lines) == 2 and {"no_folder", "own_presets"} <= set(methods)
    assert "entry point no_folder" in lines[0] and f"presets folder {site / 'nowhere'} does not exist" in lines[0]
    assert "entry point own_presets" in lines[1] and "preset synth-cpu" in lines[1]
    assert "occkit's own preset" in lines[1]
    assert experiment.find_preset("synth-cpu").parent.name == "configs"  # the built-in, not the package's
    assert experiment.find_preset("own-preset") == presets / "own-preset.yaml"


def test_train_help_with_a_broken_plugin_is_one_warning_line(tmp_path):
    """The command line: ``occkit train --help`` works and the broken package is one line."""
    site = tmp_path / "site"
    site.mkdir()
    write_package(site, "broken-pkg", {"fails_import": ("{module}:METHOD", "import nowhere_to_be_found_xyz\n")})
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), *sys.path]),
        "OMP_NUM_THREADS": "1",
        "COLUMNS": "1000",
    }
    env.pop("OCCKIT_DEBUG", None)
    r = subprocess.run(
        [sys.executable, "-m", "occkit.cli", "train", "--help"], env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert "synth-cpu" in r.stdout and "supervised" in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "occkit train: warning: package broken-pkg, entry point fails_import"
    )
    assert "ModuleNotFoundError" in lines[0] and "Traceback" not in r.stderr
