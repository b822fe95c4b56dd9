"""MonoScene's semantic scene completion losses (docs/methods.md §3), as pure functions.

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
    5.41773033e09,
    1.57835390e07,
    1.25136000e05,
    1.18809000e05,
    6.46799000e05,
    8.21951000e05,
    2.62978000e05,
    2.83696000e05,
    2.04750000e05,
    6.16887030e07,
    4.50296100e06,
    4.48836500e07,
    2.26992300e06,
    5.68402180e07,
    1.57196520e07,
    1.58442623e08,
    2.06162300e06,
    3.69705220e07,
    1.15198800e06,
    3.34146000e05,
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


def known_rows(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255
) -> tuple[torch.Tensor, torch.Tensor]:
    """The known voxels (``target != ignore_index``) of ``(B, C, X, Y, Z)`` logits as rows:
    ``(K, C)`` float32 logits and their ``(K,)`` labels. Every loss of this module depends on the
    known voxels only; taking them first spares the softmax (and its backward) of the unknown ones
    (three quarters of a SemanticKITTI grid) and the channel-strided softmax over the full grid."""
    _check(logits, target)
    known = target != ignore_index
    t = target[known]
    if t.numel() and (bool((t < 0).any()) or bool((t >= logits.shape[1]).any())):
        raise ValueError(f"target: labels outside 0..{logits.shape[1] - 1} (other than the ignored {ignore_index})")
    return logits.movedim(1, -1)[known].float(), t


def _ce_rows(x: torch.Tensor, t: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if t.numel() == 0:
        return x.sum() * 0
    w = None if weight is None else weight.to(x.device, torch.float32)
    return F.cross_entropy(x, t, weight=w)


def ssc_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, ignore_index: int = 255
) -> torch.Tensor:
    """Class-weighted cross-entropy (weighted mean over the known voxels); 0 when none is known.

    Args:
        logits: ``(B, C, X, Y, Z)``; target: ``(B, X, Y, Z)`` long; weight: ``(C,)`` or None.
    """
    x, t = known_rows(logits, target, ignore_index)
    return _ce_rows(x, t, weight) if t.numel() else logits.sum() * 0


def _bce_to_one(x: torch.Tensor) -> torch.Tensor:
    """``-ln x`` elementwise as ``F.binary_cross_entropy(x, 1)`` computes it (log clamped at -100)."""
    # in float32 outside autocast: CUDA autocast refuses F.binary_cross_entropy (found by the GPU check on an
    # H200, cigocc-gpu at bf16); float32 inputs, the CPU presets' case, give the same values as before
    with torch.autocast(x.device.type, enabled=False):
        xf = x.float().clamp(0, 1)
        return F.binary_cross_entropy(xf, torch.ones_like(xf), reduction="none")


def _scal_sem_rows(prob: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """:func:`scal_sem` from the known voxels' ``(K, C)`` probabilities, every class at once: the
    sums of MonoScene's per-class loop as per-class vectors (in float64: the specificity's
    numerator is a difference of sums of ~K terms)."""
    K, C = prob.shape
    y = torch.bincount(t, minlength=C).to(torch.float64)  # sum(y) per class
    present = y > 0
    if not bool(present.any()):
        return prob.sum() * 0
    p_sum = prob.sum(0, dtype=torch.float64)  # sum(p)
    inter = prob.new_zeros(C, dtype=torch.float64).index_add(
        0, t, prob.gather(1, t[:, None])[:, 0].double()
    )  # sum(p y)
    neg = K - y  # sum(1 - y)
    spec_num = neg - (p_sum - inter)  # sum((1 - p)(1 - y))
    one = torch.ones_like(p_sum)
    precision = _bce_to_one((inter / torch.where(p_sum > 0, p_sum, one)).float())
    recall = _bce_to_one((inter / torch.where(present, y, one)).float())
    specificity = _bce_to_one((spec_num / torch.where(neg > 0, neg, one)).float())
    per_class = (
        torch.where(p_sum.detach() > 0, precision, torch.zeros_like(precision))
        + recall
        + torch.where(neg > 0, specificity, torch.zeros_like(specificity))
    )
    return per_class[present].sum() / int(present.sum())


def scal_sem(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """MonoScene's semantic scene-class affinity loss (``sem_scal_loss``).

    For each class ``c`` present among the known voxels: ``p`` its softmax probability, ``y = [gt
    = c]``; P = sum(p y)/sum(p), R = sum(p y)/sum(y), S = sum((1-p)(1-y))/sum(1-y); the class's
    loss is ``-(ln P + ln R + ln S)`` (a term is skipped when its denominator is 0, as MonoScene
    does); the result is the mean over the present classes (0 when none). All classes at once
    (MonoScene loops over them; the values agree to float32 rounding).
    """
    x, t = known_rows(logits, target, ignore_index)
    return _scal_sem_rows(x.softmax(1), t) if t.numel() else logits.sum() * 0


def _scal_geo_rows(prob: torch.Tensor, t: torch.Tensor, empty_index: int) -> torch.Tensor:
    p_empty = prob[:, empty_index]
    p_occ = 1 - p_empty
    y = (t != empty_index).to(p_occ.dtype)
    inter = (p_occ * y).sum()
    loss = _bce_to_one(inter / p_occ.sum().clamp(min=1e-12))  # precision
    if float(y.sum()) > 0:  # recall (skipped when nothing is occupied: 0/0)
        loss = loss + _bce_to_one(inter / y.sum())
    if float((1 - y).sum()) > 0:  # specificity
        loss = loss + _bce_to_one(((1 - y) * p_empty).sum() / (1 - y).sum())
    return loss


def scal_geo(logits: torch.Tensor, target: torch.Tensor, empty_index: int = 0, ignore_index: int = 255) -> torch.Tensor:
    """MonoScene's geometric scene-class affinity loss (``geo_scal_loss``): precision, recall and
    specificity of ``p_occ = 1 - softmax(logits)[empty_index]`` against ``y = [gt != empty]`` over
    the known voxels, each as ``-ln`` (BCE against 1), summed; recall (specificity) is skipped when no known voxel is
    occupied (empty), where MonoScene would divide by 0. 0 when no voxel is known.

    Args:
        empty_index: the empty class (SemanticKITTI: 0; Occ3D: 17, free).
    """
    x, t = known_rows(logits, target, ignore_index)
    return _scal_geo_rows(x.softmax(1), t, empty_index) if t.numel() else logits.sum() * 0


SSC_TERMS = ("ce", "scal_geo", "scal_sem", "frustum")


def ssc_losses(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    empty_index: int = 0,
    ignore_index: int = 255,
    terms: tuple[str, ...] = ("ce", "scal_geo", "scal_sem"),
    frustum: torch.Tensor | None = None,
    num_frusta: int = 0,
) -> dict[str, torch.Tensor]:
    """:func:`ssc_cross_entropy`, :func:`scal_geo`, :func:`scal_sem` and MonoScene's
    :func:`~occkit.losses.monoscene.frustum_proportion_loss` (those named in ``terms``; ``frustum``
    ``(B, X, Y, Z)`` ids and ``num_frusta`` for the last) with the known voxels gathered and their
    softmax taken once: ``{term: scalar}``, each equal to its own function's value."""
    from occkit.losses.monoscene import frustum_kl_rows

    unknown = set(terms) - set(SSC_TERMS)
    if unknown:
        raise ValueError(f"ssc_losses: unknown terms {sorted(unknown)} (known: {', '.join(SSC_TERMS)})")
    if "frustum" in terms:
        if frustum is None or num_frusta < 1:
            raise ValueError("ssc_losses: the 'frustum' term needs frustum ids (B, X, Y, Z) and num_frusta >= 1")
        check_shape(frustum, "B X Y Z", name="frustum", dims=dict(zip("BXYZ", target.shape)))
    x, t = known_rows(logits, target, ignore_index)
    if t.numel() == 0:
        return {k: logits.sum() * 0 for k in terms}
    out: dict[str, torch.Tensor] = {}
    if "ce" in terms:
        out["ce"] = _ce_rows(x, t, weight)
    if set(terms) & {"scal_geo", "scal_sem", "frustum"}:
        prob = x.softmax(1)
        if "frustum" in terms:
            out["frustum"] = frustum_kl_rows(prob, t, frustum[target != ignore_index], num_frusta)
        if "scal_geo" in terms:
            out["scal_geo"] = _scal_geo_rows(prob, t, empty_index)
        if "scal_sem" in terms:
            out["scal_sem"] = _scal_sem_rows(prob, t)
    return out
