"""``occkit predict --device cuda``'s fast path: the network of an exported recipe
(:class:`occkit.export.onnx.OccPredictor`) in bf16 autocast, replayed as a CUDA graph.

What the GPU check measured on occ3d-r50, batch 1 (BENCHMARKS.md, "On one GPU", an H200): eager bf16
52.3 frames/s, a ``torch.cuda.CUDAGraph`` capture of the eager model 86.1, ``torch.compile(mode=
"reduce-overhead")`` 134.5 after a compile of about 19 s. So:

- ``graph``: one capture per input shape (a fraction of a second), replayed for every batch of that shape;
- ``compile``: ``torch.compile(mode="reduce-overhead")`` (inductor with CUDA graphs), the fastest once
  compiled; worth its compile from about :data:`COMPILE_FRAMES` frames on;
- ``auto`` (the default): ``compile`` for a run of at least :data:`COMPILE_FRAMES` frames, else ``graph``;
- ``off``: the method's own ``predict`` at the checkpoint's precision (what the CPU always runs).

The exported network gives the classes of the method's ``predict`` (tests/export); the first
:data:`VERIFY_BATCHES` batches of each shape are also run eagerly at the same precision and must give
the same class in at least :data:`AGREEMENT` of the voxels. A capture or compile that fails, or
disagrees, is named in one line and the rest of the run is eager (the method's own ``predict``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from occkit.data.sample import Batch

FAST_MODES = ("auto", "graph", "compile", "off")
#: from this many frames on, ``auto`` compiles (about 19 s of compile against 4.2 ms a frame saved over a graph)
COMPILE_FRAMES = 4500
#: batches of each input shape checked against the eager predict
VERIFY_BATCHES = 2
#: the share of voxels whose class must agree with the eager predict's (bf16 rounding flips a few ties)
AGREEMENT = 0.999
#: input shapes captured at most (a run has its batch size and perhaps a smaller last batch)
MAX_SHAPES = 4


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def resolve_fast(mode: str, device: torch.device, frames: int) -> str:
    """The path ``mode`` takes on ``device`` for a run of ``frames`` frames: 'off' on anything but CUDA."""
    if mode not in FAST_MODES:
        raise ValueError(f"--fast must be one of {', '.join(FAST_MODES)}, got {mode!r}")
    if device.type != "cuda" or mode == "off":
        return "off"
    if mode == "auto":
        return "compile" if frames >= COMPILE_FRAMES else "graph"
    return mode


class FastPredict(nn.Module):
    """``predict(batch)`` of ``method`` through its exported network, fast (see the module docstring).

    Args:
        method: the loaded method (eval mode); its network is shared.
        recipe: its name (``cfg.method``); a recipe that is not exported, or whose ``predict`` is
            calibrated (a threshold, not the argmax), stays eager.
        mode: 'graph' or 'compile' (from :func:`resolve_fast`).
        dtype: the autocast precision of the fast path (bf16 where the GPU has it).
        capture: the capture of one input shape, replaceable (tests mock a failure); given the
            predictor and the static inputs it returns a callable that refreshes nothing and
            returns the logits of the static inputs.
    """

    def __init__(
        self,
        method: nn.Module,
        recipe: str,
        mode: str,
        dtype: torch.dtype = torch.bfloat16,
        capture: Callable[..., Callable[[], torch.Tensor]] | None = None,
    ) -> None:
        super().__init__()
        self.method, self.mode, self.dtype = method, mode, dtype
        self.why_eager: str | None = None
        self.pred: nn.Module | None = None
        self.verified: dict[tuple, int] = {}
        self.graphs: dict[tuple, tuple[list[torch.Tensor], Callable[[], torch.Tensor]]] = {}
        self._capture = capture or (_capture_graph if mode == "graph" else None)
        self._compiled: Callable | None = None
        try:
            from occkit.export.onnx import OccPredictor

            pred = OccPredictor(method, recipe).eval()
            if pred.threshold > 0:
                self.why_eager = f"{recipe}'s predict is calibrated (a threshold), not the network's argmax"
            else:
                self.pred = pred
        except ValueError as e:
            self.why_eager = str(e)

    @property
    def fast(self) -> bool:
        return self.pred is not None

    def _fall_back(self, why: str) -> None:
        _say(f"occkit predict: the {self.mode} path failed ({why[:300]}); predicting eagerly from here")
        self.pred, self.graphs, self._compiled = None, {}, None

    def _fast_logits(self, batch: Batch) -> torch.Tensor | None:
        assert self.pred is not None
        inputs = (batch.images, batch.intrinsics, batch.T_ego_from_cam)
        shape = tuple(tuple(t.shape) for t in inputs)
        if self.mode == "compile" and self._capture is None:
            if self._compiled is None:
                pred = self.pred
                self._compiled = torch.compile(lambda *x: pred(*x)[0], mode="reduce-overhead", dynamic=False)
            with torch.autocast("cuda", dtype=self.dtype):
                return self._compiled(*inputs).clone()  # its output lives in the graph's pool until the next call
        if shape not in self.graphs:
            if len(self.graphs) >= MAX_SHAPES:
                return None  # an odd shape: this batch eager
            static = [t.clone() for t in inputs]
            self.graphs[shape] = (static, self._capture(self.pred, static, self.dtype))
        static, replay = self.graphs[shape]
        for dst, src in zip(static, inputs):
            dst.copy_(src, non_blocking=True)
        return replay().clone()

    def predict(self, batch: Batch) -> torch.Tensor:
        if self.pred is None:
            return self.method.predict(batch)
        try:
            logits = self._fast_logits(batch)
        except Exception as e:  # noqa: BLE001 - any capture/compile failure: eager, said once
            self._fall_back(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            return self.method.predict(batch)
        if logits is None:
            return self.method.predict(batch)
        shape = tuple(batch.images.shape)
        if self.verified.get(shape, 0) < VERIFY_BATCHES:  # the same network eager, at the same precision
            with torch.autocast(batch.images.device.type, dtype=self.dtype):
                eager = self.pred(batch.images, batch.intrinsics, batch.T_ego_from_cam)[0]
            same = float((eager.argmax(1) == logits.argmax(1)).float().mean()) if eager.shape == logits.shape else 0.0
            if same < AGREEMENT:
                self._fall_back(f"its classes agree with eager ones on {100 * same:.2f} % of the voxels")
                return self.method.predict(batch)
            self.verified[shape] = self.verified.get(shape, 0) + 1
        return logits


def _capture_graph(pred: nn.Module, static: list[torch.Tensor], dtype: torch.dtype) -> Callable[[], torch.Tensor]:
    """A ``torch.cuda.CUDAGraph`` of ``pred``'s logits on ``static`` (autocast's cast cache off, so
    the casts are in the graph); returns its replay."""
    with torch.autocast("cuda", dtype=dtype, cache_enabled=False):
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):  # warm-up outside the capture (cuDNN / cuBLAS choose their kernels)
                pred(*static)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            out = pred(*static)[0]

    def replay() -> torch.Tensor:
        g.replay()
        return out

    return replay


def fast_predictor(method: nn.Module, recipe: str, mode: str, device: torch.device, frames: int) -> tuple[Any, str]:
    """The method or its :class:`FastPredict` for ``--fast mode`` on ``device``, and one line saying which."""
    path = resolve_fast(mode, device, frames)
    if path == "off":
        return method, ""
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    fp = FastPredict(method, recipe, path, dtype)
    if not fp.fast:
        return method, f"occkit predict: eager ({fp.why_eager})"
    how = "torch.compile(mode='reduce-overhead')" if path == "compile" else "a CUDA graph per input shape"
    return fp, f"occkit predict: {str(dtype).split('.')[-1]} autocast, {how} (--fast off: eager)"
