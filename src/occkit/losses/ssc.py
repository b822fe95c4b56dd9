"""MonoScene's semantic scene completion losses (METHODS.md §3), as pure functions.

- :func:`ssc_class_weights`: ``w_c = 1 / ln(f_c + 0.001)`` from per-class voxel counts ``f_c``
  (MonoScene passes the raw SemanticKITTI counts, :data:`SEMANTICKITTI_CLASS_FREQUENCIES`, not
  normalised frequencies: with counts in the thousands to billions the weights are positive and
  within a factor ~3 of each other). Classes never counted (``f_c < 1``) get weight 0.
- :func:`ssc_cross_entropy`: class-weighted CE, label 255 ignored (PyTorch's weighted mean).
- :func:`scal_sem`: for each class present in the target, precision, recall and specificity of
  its softmax probability over the known voxels, each pushed to 1 by BCE; mean over the present
  classes.
- :func:`scal_geo`: the same three terms for occupied vs empty, ``p_occ = 1 - p_empty``.

Shapes: logits ``(B, C, X, Y, Z)``, target ``(B, X, Y, Z)`` long with ``ignore_index`` where
unknown. The statistics of ``scal_*`` are taken over the whole batch at once, as MonoScene does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from occkit.shapes import check_shape

#: MonoScene's voxel counts of the 20 SemanticKITTI learning classes over the training set
#: (``semantic_kitti_class_frequencies`` of MonoScene's ``kitti_dataset``), 0 = empty.
SEMANTICKITTI_CLASS_FREQUENCIES: tuple[float, ...] = (
    5.41773033e09, 1.57835390e07, 1.25136000e05, 1.18809000e05, 6.46799000e05, 8.21951000e05, 2.62978000e05,
    2.83696000e05, 2.04750000e05, 6.16887030e07, 4.50296100e06, 4.48836500e07, 2.26992300e06, 5.68402180e07,
    1.57196520e07, 1.58442623e08, 2.06162300e06, 3.69705220e07, 1.15198800e06, 3.34146000e05,
)


def ssc_class_weights(counts: torch.Tensor, offset: float = 0.001) -> torch.Tensor:
    """``(C,)`` weights ``1 / ln(counts + offset)`` from ``(C,)`` voxel counts; 0 where a count is
    below 1 (a class never seen: its log would be <= 0)."""
    counts = torch.as_tensor(counts, dtype=torch.float64)
    check_shape(counts, "C", name="counts")
    w = 1.0 / torch.log(counts.clamp(min=1.0) + offset)
    return torch.where(counts >= 1.0, w, torch.zeros_like(w))


def _check(logits: torch.Tensor, target: torch.Tensor) -> None:
    d = check_shape(logits, "B C X Y Z", name="logits")
    check_shape(target, "B X Y Z", name="target", dims={k: d[k] for k in "BXYZ"})


def ssc_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                      ignore_index: int = 255) -> torch.Tensor:
    """Class-weighted cross-entropy (weighted mean over the known voxels); 0 when none is known.

    Args:
        logits: ``(B, C, X, Y, Z)``; target: ``(B, X, Y, Z)`` long; weight: ``(C,)`` or None.
    """
    _check(logits, target)
    if not bool((target != ignore_index).any()):
        return logits.sum() * 0
    w = None if weight is None else weight.to(logits.device, logits.dtype if logits.is_floating_point() else torch.float32)
    return F.cross_entropy(logits.float(), target, weight=None if w is None else w.float(), ignore_index=ignore_index)


def _bce_to_one(x: torch.Tensor) -> torch.Tensor:
    """``-ln x`` as ``F.binary_cross_entropy(x, 1)`` computes it (log clamped at -100)."""
    return F.binary_cross_entropy(x.clamp(0, 1), torch.ones_like(x))


def scal_sem(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """MonoScene's semantic scene-class affinity loss (``sem_scal_loss``).

    For each class ``c`` present among the known voxels: ``p`` its softmax probability, ``y = [gt
    = c]``; P = sum(p y)/sum(p), R = sum(p y)/sum(y), S = sum((1-p)(1-y))/sum(1-y); the class's
    loss is ``-(ln P + ln R + ln S)`` (a term is skipped when its denominator is 0, as MonoScene
    does); the result is the mean over the present classes (0 when none).
    """
    _check(logits, target)
    known = target != ignore_index
    prob = logits.float().softmax(1).movedim(1, -1)[known]  # (K, C)
    t = target[known]  # (K,)
    total, count = prob.new_zeros(()), 0
    for c in range(prob.shape[1]):
        y = (t == c).to(prob.dtype)
        if float(y.sum()) == 0:
            continue
        count += 1
        p = prob[:, c]
        inter = (p * y).sum()
        if float(p.detach().sum()) > 0:
            total = total + _bce_to_one(inter / p.sum())
        total = total + _bce_to_one(inter / y.sum())
        if float((1 - y).sum()) > 0:
            total = total + _bce_to_one(((1 - p) * (1 - y)).sum() / (1 - y).sum())
    return total / count if count else logits.sum() * 0


def scal_geo(logits: torch.Tensor, target: torch.Tensor, empty_index: int = 0, ignore_index: int = 255) -> torch.Tensor:
    """MonoScene's geometric scene-class affinity loss (``geo_scal_loss``): precision, recall and
    specificity of ``p_occ = 1 - softmax(logits)[empty_index]`` against ``y = [gt != empty]`` over
    the known voxels, each as ``-ln`` (BCE against 1), summed; recall (specificity) is skipped when no known voxel is
    occupied (empty), where MonoScene would divide by 0. 0 when no voxel is known.

    Args:
        empty_index: the empty class (SemanticKITTI: 0; Occ3D: 17, free).
    """
    _check(logits, target)
    known = target != ignore_index
    if not bool(known.any()):
        return logits.sum() * 0
    p_empty = logits.float().softmax(1)[:, empty_index][known]  # (K,)
    p_occ = 1 - p_empty
    y = (target[known] != empty_index).to(p_occ.dtype)
    inter = (p_occ * y).sum()
    loss = _bce_to_one(inter / p_occ.sum().clamp(min=1e-12))  # precision
    if float(y.sum()) > 0:  # recall (skipped when nothing is occupied: 0/0)
        loss = loss + _bce_to_one(inter / y.sum())
    if float((1 - y).sum()) > 0:  # specificity
        loss = loss + _bce_to_one(((1 - y) * p_empty).sum() / (1 - y).sum())
    return loss
