"""The first losses of every shipped preset are the ones recorded before methods registered
themselves (``fixtures/first_losses.json``, written at commit 49183db by ``python
tests/first_losses.py --write``): building, configuring and wiring a method through the registry
moved no number.

On the machine class that recorded them (the same torch version and CPU kernels) they must be
equal to the last bit; elsewhere the CPU's own kernels round differently, and they must agree to
1e-5. Minutes on a loaded 2-core CPU (every preset trains 2 steps): set ``OCCKIT_SLOW_TESTS=1``.
"""

from __future__ import annotations

import json
import os

import first_losses as fl
import pytest


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    return fl.build_worlds(tmp_path_factory.mktemp("first_losses"))


def test_every_shipped_preset_is_recorded():
    assert sorted(json.loads(fl.FIXTURE.read_text())["presets"]) == fl.shipped_presets()


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("OCCKIT_SLOW_TESTS"), reason="every preset trains 2 steps (minutes): set OCCKIT_SLOW_TESTS=1"
)
@pytest.mark.parametrize("preset", fl.shipped_presets())
def test_first_losses_are_the_recorded_ones(preset, worlds):
    record = json.loads(fl.FIXTURE.read_text())
    expect = record["presets"][preset]
    seen = fl.first_losses(preset, worlds)
    assert sorted(seen) == sorted(expect)
    for step, named in expect.items():
        assert sorted(seen[step]) == sorted(named), (preset, step)
        if record["machine"] == fl.machine():
            assert seen[step] == named, (preset, step)
        else:
            assert seen[step] == pytest.approx(named, rel=1e-5), (preset, step)
