"""``--help`` lists what the registries hold: every format, class map and preset a verb accepts, from the
registry itself (installed packages' included), not from a fixed text."""

from __future__ import annotations

import re

import pytest

from occkit.cli import build_parser


def _help(verb: str) -> str:
    p = build_parser()
    sub = next(a for a in p._actions if hasattr(a, "choices") and isinstance(a.choices, dict))
    return " ".join(sub.choices[verb].format_help().split())


def test_synth_help_lists_every_format_that_writes_the_world():
    from occkit.formats import formats

    text = _help("synth")
    writers = [n for n, f in formats().items() if f.writers.write_synthetic is not None]
    assert len(writers) >= 7
    for name in writers:
        assert re.search(rf"\b{re.escape(name)}\b", text), f"occkit synth --help does not list {name}"


@pytest.mark.parametrize("verb", ["stats", "eval"])
def test_format_options_list_every_format(verb):
    from occkit.formats import format_names

    text = _help(verb)
    for name in format_names():
        assert re.search(rf"\b{re.escape(name)}\b", text), f"occkit {verb} --help does not list {name}"


@pytest.mark.parametrize("verb", ["eval", "convert"])
def test_class_map_options_list_every_class_map(verb):
    from occkit.formats.classmap import class_map_names

    text = _help(verb)
    for name in class_map_names():
        assert name in text.replace("- ", "-"), f"occkit {verb} --help does not list the class map {name}"


def test_convert_help_lists_every_writable_format():
    from occkit.convert import writable_formats

    text = _help("convert")
    for name in writable_formats():
        assert re.search(rf"\b{re.escape(name)}\b", text)


def test_train_help_lists_every_preset():
    from occkit.experiment import preset_names

    text = _help("train").replace("- ", "-")
    for name in preset_names():
        assert name in text, f"occkit train --help does not list the preset {name}"


def test_no_registry_field_is_left_unfilled():
    from occkit.help_registries import FIELDS

    p = build_parser()
    sub = next(a for a in p._actions if hasattr(a, "choices") and isinstance(a.choices, dict))
    for verb, parser in sub.choices.items():
        text = parser.format_help()
        for field in FIELDS:
            assert "{" + field + "}" not in text, f"occkit {verb} --help: {{{field}}} left unfilled"


def test_the_formats_read_from_source_are_the_registry_s():
    """``--help`` reads occkit's own formats from their source (no torch): what it reads is what the registry
    holds."""
    from occkit.formats import formats
    from occkit.help_registries import _in_tree_formats

    read = _in_tree_formats()
    assert read is not None
    real = {
        n: {
            "name": n,
            "title": f.title or n,
            "world": f.world,
            "synth": f.writers.write_synthetic is not None,
            "writer": f.writers.label_writer is not None,
            "prepare": f.writers.preparation,
        }
        for n, f in formats().items()
        if f.source.startswith("occkit.formats.")
    }
    assert {d["name"]: d for d in read} == real


def test_help_lists_formats_without_importing_torch():
    """In a fresh process (occkit VERB --help) occkit's formats are read from their source and the packages'
    named by their entry points, so that the help imports no torch."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from occkit.cli import main\n"
        "try:\n"
        "    main([sys.argv[1], '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('torch' in sys.modules, file=sys.stderr)\n"
    )
    for verb in ("stats", "eval", "synth", "convert"):
        out = subprocess.run(
            [sys.executable, "-c", code, verb],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "COLUMNS": "1000"},
        )
        assert "occ3d: Occ3D-nuScenes" in out.stdout
        assert out.stderr.strip().splitlines()[-1] == "False", f"occkit {verb} --help imports torch"
