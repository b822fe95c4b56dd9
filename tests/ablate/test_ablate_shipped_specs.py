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
