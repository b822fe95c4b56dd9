"""Confusion matrices over voxels (torch, any device) and the cross-process sum of counts.

A confusion matrix here is ``(C, C)`` int64 counts. Occ3D puts the ground truth on the rows;
the SemanticKITTI API puts the prediction on the rows: each metric module says which.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

#: Voxels per piece of the CPU path: its int16 keys (512 KiB) stay in the cache between being
#: written and being counted.
_PIECE = 1 << 18

#: Copies of the histogram that consecutive voxels are counted into (voxel i into copy i % _SPREAD),
#: summed at the end: a run of one class pair (free air) then increments four counters in turn
#: instead of waiting on one (6019 driving frames 6.67 -> 4.64 s on one thread; random frames +13 %,
#: BENCHMARKS.md "Metrics").
_SPREAD = 4


def confusion_matrix(
    gt: torch.Tensor,
    pred: torch.Tensor,
    num_classes: int,
    mask: torch.Tensor | None = None,
    threads: int | None = None,
) -> torch.Tensor:
    """Counts of (ground truth, prediction) pairs over the voxels where ``mask`` is true.

    Args:
        gt: ``(...)`` integer class ids in ``[0, num_classes)`` (any integer dtype).
        pred: ``(...)`` integer class ids, same shape as ``gt``.
        num_classes: ``C``.
        mask: optional ``(...)`` bool (or 0/1 integer) selecting the voxels to count.
        threads: CPU threads for uint8 inputs (default: ``torch.get_num_threads()``).
    Returns:
        ``(C, C)`` int64 on ``gt``'s device, rows = ground truth, columns = prediction.

    One ``bincount`` over ``2C * gt + pred + C * (not mask)``: masked-out voxels land in columns
    ``C..2C-1``, which are dropped, so no boolean gather copies the data first and no
    ``where`` is needed. uint8 inputs on the CPU build the index in int16 with numpy (whose
    uint8 -> int16 arithmetic is vectorised; torch's is several times slower on CPU), in pieces
    of :data:`_PIECE` voxels so that the index is counted while still in the cache, ``threads``
    pieces at a time (numpy and ``torch.bincount`` release the GIL); other inputs use torch ops
    (any device). Values outside ``[0, C)`` raise.
    """
    if gt.shape != pred.shape:
        raise ValueError(f"pred: shape {tuple(pred.shape)} differs from gt {tuple(gt.shape)}")
    if gt.is_floating_point() or pred.is_floating_point():
        raise TypeError(f"gt and pred must be integer class ids, got {gt.dtype} and {pred.dtype}")
    if mask is not None and mask.shape != gt.shape:
        raise ValueError(f"mask: shape {tuple(mask.shape)} differs from gt {tuple(gt.shape)}")
    C = int(num_classes)
    W = 2 * C if mask is not None else C  # columns of the padded matrix
    pred = pred.to(gt.device)
    g = gt.reshape(-1)
    p = pred.reshape(-1)
    m = None if mask is None else mask.reshape(-1).to(device=gt.device, dtype=torch.bool)
    if (
        g.device.type == "cpu"
        and g.dtype == torch.uint8
        and p.dtype == torch.uint8
        and W <= 128
        and _SPREAD * C * W <= 1 << 15
    ):
        gn, pn = g.numpy(), p.numpy()
        hi = max(int(gn.max(initial=0)), int(pn.max(initial=0)))  # numpy: no intra-op threads
        if hi >= C:
            raise ValueError(f"class ids must lie in [0, {C}), got values up to {hi}")
        mn = None if m is None else m.numpy()
        pieces = [slice(s, s + _PIECE) for s in range(0, gn.shape[0], _PIECE)]
        n_threads = max(1, min(len(pieces), threads if threads is not None else torch.get_num_threads()))
        if n_threads == 1:
            counts = sum((_count_piece(gn, pn, mn, C, W, sl) for sl in pieces), torch.zeros(C * W, dtype=torch.int64))
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(n_threads) as pool:
                counts = sum(
                    pool.map(lambda sl: _count_piece(gn, pn, mn, C, W, sl), pieces),
                    torch.zeros(C * W, dtype=torch.int64),
                )
    else:
        if g.numel():
            lo = min(int(g.min()), int(p.min()))
            hi = max(int(g.max()), int(p.max()))
            if lo < 0 or hi >= C:
                raise ValueError(f"class ids must lie in [0, {C}), got values in [{lo}, {hi}]")
        idx = g.long() * W + p.long()
        if m is not None:
            idx += (~m).long() * C
        counts = torch.bincount(idx, minlength=C * W)
    return counts.view(C, W)[:, :C].to(torch.int64).contiguous()


def _count_piece(g: np.ndarray, p: np.ndarray, m: np.ndarray | None, C: int, W: int, sl: slice) -> torch.Tensor:
    """``bincount(W * g + p + C * (not m))`` of the voxels ``sl`` of flat uint8 arrays (``m``
    bool), counted into :data:`_SPREAD` copies by position and summed: ``(C * W,)`` int64."""
    gs, ps = g[sl], p[sl]
    n = gs.shape[0]
    # Every operation names its dtype: under NumPy 1's value-based casting, ``uint8 array * int16
    # scalar`` is computed in uint8 (17 * 36 gave 100) before the cast into ``out``; NumPy 2 promotes.
    key = np.empty(n, np.int16)
    np.multiply(gs, W, out=key, dtype=np.int16, casting="unsafe")
    if m is None:
        np.add(key, ps, out=key, dtype=np.int16, casting="unsafe")
    else:
        col = np.logical_not(m[sl]).view(np.uint8)  # 1 where masked out
        np.multiply(col, C, out=col, dtype=np.uint8, casting="unsafe")
        np.add(col, ps, out=col, dtype=np.uint8, casting="unsafe")  # < 2C <= 128: no overflow
        np.add(key, col, out=key, dtype=np.int16, casting="unsafe")
    # < _SPREAD * C * W <= 2**15 (the caller checks): fits int16
    np.add(key, _spread_offsets(C * W, max(n, _PIECE))[:n], out=key, dtype=np.int16)
    return torch.bincount(torch.from_numpy(key), minlength=_SPREAD * C * W).view(_SPREAD, C * W).sum(0)


@functools.lru_cache(maxsize=4)
def _spread_offsets(bins: int, n: int) -> np.ndarray:
    """``(i % _SPREAD) * bins`` for ``i < n``, int16, read-only: a constant table, made once per
    ``(bins, n)`` (building it costs as much as counting a piece)."""
    table = np.tile(np.arange(_SPREAD, dtype=np.int16) * np.int16(bins), -(-n // _SPREAD))[:n]  # int16 * int16
    table.flags.writeable = False
    return table


def metric_class_names(
    class_names: Sequence[str] | None, num_classes: int, known: Sequence[str], known_count: int
) -> tuple[str, ...]:
    """A metric's class names: as given (one per class, else ``ValueError``); by default the
    benchmark's ``known`` names when ``num_classes == known_count``, else ``"0"``, ``"1"`` ..."""
    if class_names is None:
        class_names = known if num_classes == known_count else tuple(str(k) for k in range(num_classes))
    if len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes")
    return tuple(class_names)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` in place across ``torch.distributed`` processes when a process group is
    initialised; return it unchanged otherwise. The tensor must be on the device the backend
    expects (CUDA for NCCL)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_counts(matrix: torch.Tensor, frames: int) -> tuple[torch.Tensor, int]:
    """Sum a metric's ``(K, K)`` confusion ``matrix`` and its ``frames`` count across
    ``torch.distributed`` processes (:func:`all_reduce_sum`, one message); returns the summed
    pair (a new matrix)."""
    state = torch.cat([matrix.reshape(-1), torch.tensor([frames], device=matrix.device)])
    all_reduce_sum(state)
    return state[:-1].view(matrix.shape).clone(), int(state[-1])


def voxel_class_ids(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """What a voxel metric's ``update`` checks first: ``gt`` must be ``(B, X, Y, Z)``; ``pred`` as
    class ids: integer ``(B, X, Y, Z)`` as is, or float logits ``(B, C, X, Y, Z)`` through an argmax
    over ``C``. A wrong shape raises a ``ValueError`` naming ``gt`` or ``pred``."""
    if gt.dim() != 4:
        raise ValueError(f"gt: expected shape (B, X, Y, Z), got {tuple(gt.shape)}")
    if pred.is_floating_point():
        if pred.dim() != 5:
            raise ValueError(f"pred: float logits must be (B, C, X, Y, Z), got {tuple(pred.shape)}")
        return pred.argmax(1)
    return pred


class ConfusionCounts:
    """The state of a streaming confusion-matrix metric and what every such metric does with it.

    The state is ``counts``, one ``(C, C)`` int64 confusion matrix, and ``frames``, on
    ``device`` (default: the device of the first update). Processes of a DDP job each accumulate
    their share, then :meth:`all_reduce` sums the counts (or :meth:`merge` adds another metric's),
    so the result equals the single-process one. A subclass sets ``num_classes`` and ``device``
    before calling :meth:`reset`, and names in ``_agree`` the attributes two metrics must share to
    be merged.
    """

    num_classes: int
    device: torch.device | None
    counts: torch.Tensor
    frames: int
    #: Attributes that must be equal for :meth:`merge`.
    _agree: tuple[str, ...] = ("num_classes",)

    def reset(self) -> None:
        """Zero the counts."""
        self.counts = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64, device=self.device)
        self.frames = 0

    def _counts_device(self, batch: torch.device) -> torch.device:
        """Where a batch on ``batch`` is counted: the counts follow the first batch when no
        ``device`` was given; afterwards the batch goes to the counts."""
        if self.counts.device != batch and self.frames == 0 and self.device is None:
            self.counts = self.counts.to(batch)
        return self.counts.device

    def merge(self, other: ConfusionCounts) -> ConfusionCounts:
        """Add ``other``'s counts into this one (same kind of metric and the same ``_agree``
        attributes); returns ``self``."""
        if type(other) is not type(self) or any(getattr(other, a) != getattr(self, a) for a in self._agree):
            raise ValueError(
                f"merge: the other metric must be another {type(self).__name__} with the same "
                f"{' and '.join(self._agree)}"
            )
        self.counts += other.counts.to(self.counts.device)
        self.frames += other.frames
        return self

    def all_reduce(self) -> None:
        """Sum the counts across ``torch.distributed`` processes (no-op when not initialised)."""
        self.counts, self.frames = all_reduce_counts(self.counts, self.frames)
