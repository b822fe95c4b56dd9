"""Every ablation spec shipped in configs/ablations/ passes the checks that run before anything
trains (keys, presets, --set keys, stage commands and their options, references, scorers), and a
shipped spec is found by its name."""

from __future__ import annotations

import pytest

from occkit.ablate.spec import SpecError, check_spec, find_spec, parse_spec, shipped_specs


def test_the_regime_spec_is_shipped():
    assert "regime" in shipped_specs()


@pytest.mark.parametrize("name", shipped_specs())
def test_shipped_spec_passes_the_checks(name):
    spec = parse_spec(find_spec(name))
    check_spec(spec)
    assert spec.arms and spec.budget >= 1


def test_unknown_spec_name_lists_the_shipped_ones():
    with pytest.raises(SpecError, match="no such spec file or shipped spec .*regime"):
        find_spec("no-such-ablation")


def test_the_ablate_help_lists_every_stage_command_and_shipped_spec():
    """The help text and the spec parser read the same lists: a stage command or spec added to one is in the other."""
    import argparse

    from occkit.ablate.spec import STAGE_COMMANDS
    from occkit.commands.ablate import add_arguments

    p = argparse.ArgumentParser(prog="occkit ablate")
    add_arguments(p)
    text = " ".join(p.format_help().split())  # the help wraps lines
    listed = text.split("command: ", 1)[1].split(";", 1)[0].split(" | ")
    assert listed == list(STAGE_COMMANDS)
    assert all(name in text for name in shipped_specs())
