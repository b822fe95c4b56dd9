"""The Metric protocol's optional part (``bind``, ``frame_extra``, ``region_refused``: occkit.metrics.base.MetricHooks)
is read once per metric by the scoring core, with the protocol's defaults for a metric that has none of it;
a member of another type is refused in one line; and every in-tree metric's ``compute()`` with no frame counted
gives its scores of nothing (``frames`` 0), never an error."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from occkit.formats import FormatPluginError, Targets, formats, get_format
from occkit.metrics.base import MetricHooks
from occkit.scoring.core import Scoring


class Bare:
    """A metric with the protocol's required part only (as a package may write it)."""

    name = "bare"

    def __init__(self):
        self.frames = 0

    def update(self, pred, target):
        self.frames += int(target.occupancy.shape[0])

    def merge(self, other):
        self.frames += other.frames
        return self

    def all_reduce(self):
        pass

    def compute(self):
        return {"miou": math.nan, "frames": self.frames}


class Reading(Bare):
    """A metric with the whole optional part: it binds, reads each frame, refuses a region."""

    name = "reading"
    region_refused = "scored along rays"

    def bind(self, dataset, tokens):
        self.bound = (dataset, list(tokens))

    def frame_extra(self, token):
        return {"origin": torch.tensor([float(len(token))])}

    def update(self, pred, target):
        self.seen = target.extra["origin"]
        super().update(pred, target)


def _format(*metrics):
    fmt = get_format("occ3d")
    return dataclasses.replace(fmt, scoring=dataclasses.replace(fmt.scoring, metrics=lambda options: list(metrics)))


def test_a_metric_without_the_optional_part_gets_the_protocols_defaults():
    assert MetricHooks.of(Bare()) == MetricHooks(bind=None, frame_extra=None, region_refused=None)
    scoring = Scoring(_format(Bare()))
    scoring.refuse_region()  # any region taken
    scoring.bind("dataset", ["a"])  # nothing to bind
    assert not scoring.reads_frames and scoring.frame_items("a") == {}
    scoring.update(torch.zeros(2, 1, 1, 1, dtype=torch.long), Targets(torch.zeros(2, 1, 1, 1), ["a", "b"]))
    assert scoring.compute()["frames"] == 2


def test_the_core_serves_each_optional_member_a_metric_defines():
    m = Reading()
    scoring = Scoring(_format(Bare(), m))
    with pytest.raises(ValueError, match=r"^--frustum with --metrics reading: scored along rays$"):
        scoring.refuse_region()
    scoring.bind("dataset", ("a", "bcd"))
    assert m.bound == ("dataset", ["a", "bcd"])
    assert scoring.reads_frames
    scoring.update(torch.zeros(2, 1, 1, 1, dtype=torch.long), Targets(torch.zeros(2, 1, 1, 1), ["a", "bcd"]))
    assert [t.item() for t in m.seen] == [1.0, 3.0]  # each frame's item, gathered over the batch


@pytest.mark.parametrize(
    "member, value, said",
    [
        ("bind", 3, "its bind is a int, not a function"),
        ("frame_extra", "origins", "its frame_extra is a str, not a function"),
        ("region_refused", True, "its region_refused is a bool, not a reason"),
    ],
)
def test_an_optional_member_of_another_type_is_refused_in_one_line(member, value, said):
    m = Bare()
    setattr(m, member, value)
    with pytest.raises(ValueError) as e:
        Scoring(_format(m))
    assert str(e.value).startswith(f"metric bare: {said}") and "\n" not in str(e.value)


def test_a_package_metrics_optional_member_that_fails_is_named_with_the_package():
    """A package's bind or frame_extra raising was passed through unnamed (read with getattr past the guard)."""

    class Failing(Reading):
        def bind(self, dataset, tokens):
            raise RuntimeError("no poses here")

    fmt = dataclasses.replace(_format(Failing()), source="entry point pkg = pkg:FORMAT of pkg")
    scoring = Scoring(fmt)
    with pytest.raises(FormatPluginError) as e:
        scoring.bind("dataset", ["a"])
    msg = str(e.value)
    assert msg.startswith("format occ3d (entry point pkg = pkg:FORMAT of pkg): its metric reading's bind failed")
    assert "RuntimeError: no poses here" in msg
    assert scoring.frame_items("ab")["origin"].item() == 2.0  # the guarded frame_extra answers as the metric's
    with pytest.raises(FormatPluginError, match=r"its bind is a int, not a function"):
        m = Bare()
        m.bind = 3
        Scoring(dataclasses.replace(_format(m), source="entry point pkg = pkg:FORMAT of pkg"))


@pytest.mark.parametrize("name", sorted(n for n, f in formats().items() if not f.from_package))
def test_every_in_tree_metric_computes_on_zero_frames(name):
    fmt = get_format(name)
    asked = tuple(fmt.scoring.metric_names) or None
    for metric in fmt.new_metrics(num_classes=fmt.classes.num_classes, metrics=asked):
        out = metric.compute()
        assert isinstance(out, dict) and out["frames"] == 0, type(metric).__name__
