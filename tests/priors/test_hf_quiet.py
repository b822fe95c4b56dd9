"""``priors run`` loading a local model (issue 73, item 8): one line saying what loads from where,
not ``transformers``' bare "Loading weights: 100% 103/103" bar in a tool that never downloads."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).parent))
from test_hf import save_depth  # noqa: E402


def test_a_local_model_loads_with_one_line_and_no_bar(tmp_path, capsys):
    from transformers import AutoModelForDepthEstimation
    from transformers.utils import logging as hf_logging

    from occkit.priors.hf import _load

    save_depth(tmp_path / "depth")
    capsys.readouterr()
    assert hf_logging.is_progress_bar_enabled()
    model = _load(AutoModelForDepthEstimation, tmp_path / "depth", torch.device("cpu"))
    assert not model.training
    err = capsys.readouterr().err
    assert err == (
        f"priors: loading AutoModelForDepthEstimation weights from {tmp_path / 'depth'} "
        "(a local folder; nothing is downloaded)\n"
    )
    assert hf_logging.is_progress_bar_enabled()  # the bar is the caller's again afterwards
