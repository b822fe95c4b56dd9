"""Kernels compiled by numba, once per process: what occkit's ray walks share (the RayIoU walk and
counts, the visibility marking, the label pipeline's walks)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any


@cache
def numba_kernels(*functions: Callable[..., Any]) -> tuple[Callable[..., Any], ...] | None:
    """``functions`` compiled by ``numba.njit(cache=True, nogil=True)``, in order (once per process; numba
    keeps the machine code on disk), or None where numba cannot be imported (numba is a dependency: a
    broken install; each caller says what it falls back to)."""
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    jit = numba.njit(cache=True, nogil=True)
    return tuple(jit(f) for f in functions)
