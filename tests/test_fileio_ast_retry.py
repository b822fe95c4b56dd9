"""CPython 3.11's spurious AST SystemError while NumPy parses a header in threads: read again."""

from __future__ import annotations

import numpy as np
import pytest

from occkit import fileio


def _flaky_np_load(monkeypatch, failures: int):
    real = np.load
    calls = {"n": 0}

    def load(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= failures:
            raise SystemError("AST constructor recursion depth mismatch (before=42, after=39)")
        return real(*args, **kwargs)

    monkeypatch.setattr(fileio.np, "load", load)
    return calls


def test_a_spurious_ast_error_is_read_again(tmp_path, monkeypatch):
    np.savez_compressed(tmp_path / "a.npz", x=np.arange(4))
    np.save(tmp_path / "b.npy", np.ones(3))
    calls = _flaky_np_load(monkeypatch, failures=2)
    assert fileio.load_npz(tmp_path / "a.npz")["x"].tolist() == [0, 1, 2, 3]
    assert calls["n"] == 3
    calls = _flaky_np_load(monkeypatch, failures=1)
    assert fileio.load_npy(tmp_path / "b.npy").tolist() == [1.0, 1.0, 1.0]
    assert calls["n"] == 2


def test_a_lasting_ast_error_or_another_system_error_is_the_one_line_error(tmp_path, monkeypatch):
    np.savez_compressed(tmp_path / "a.npz", x=np.arange(4))
    calls = _flaky_np_load(monkeypatch, failures=10)
    with pytest.raises(ValueError, match=r"a\.npz: cannot read as \.npz \(SystemError: AST constructor"):
        fileio.load_npz(tmp_path / "a.npz")
    assert calls["n"] == 3

    def other(*args, **kwargs):
        raise SystemError("something else")

    monkeypatch.setattr(fileio.np, "load", other)
    with pytest.raises(ValueError, match=r"cannot read as \.npz \(SystemError: something else\)"):
        fileio.load_npz(tmp_path / "a.npz")
