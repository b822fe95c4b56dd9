"""How good are a cache's priors? Scores against the synthetic world's exact 2D maps.

``evaluate_priors(data, priors)`` (``occkit priors eval``) returns a dict whose headline keys are

=============================  ===========================================================
``semantic_miou``              2D semantic mIoU (percent) over the prior classes present in the
                               ground truth (the cache's class table: Occ3D 0..16 and sky
                               outdoors, NYUv2's 12 indoors); unknown pixels count as wrong
``depth_absrel``               mean |d - d*| / d* (a ratio) over pixels with a ground-truth
                               depth and a predicted one
``depth_delta1``               percent of those pixels with max(d/d*, d*/d) < 1.25
``segment_miou``               mean best-match IoU (percent) of each object instance (at least
                               16 pixels) with the prior's segments
``feature_class_acc``          zero-shot accuracy (percent) of the feature cells: the class whose
                               text (vocabulary synonyms x templates) is nearest, against the
                               class of the cell's centre pixel
``feature_fine_acc_seen``      the same over the world's fine names, for cells whose centre pixel
                               shows an object whose name is not held out
``feature_fine_acc_heldout``   the same for objects whose name is held out
=============================  ===========================================================

plus ``depth_by_band`` (the two depth figures per distance band), ``semantic_iou`` per class,
``depth_coverage`` (percent of ground-truth pixels with a predicted depth) and ``frames``. A kind
the cache lacks gives ``null``. The class vocabulary is a YAML file
(``occkit/configs/vocabularies/occ3d.yaml`` by default for Occ3D's table; see
:func:`load_class_vocabulary`); another table's default is its words (one synonym per class), and
its fine names are the objects' names the world gives (the indoor world holds none out).
"""

from __future__ import annotations

import math
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from occkit.config import load_yaml
from occkit.priors.base import PRIOR_CLASSES
from occkit.priors.cache import PriorCache, WithPriors, open_dataset
from occkit.priors.classes import (
    DEFAULT_PRIORS,
    PriorClasses,
    driving_world_table,
    prior_classes_named,
    prior_classes_of_dataset,
)
from occkit.priors.text import DEFAULT_TEMPLATES, encode_prompts
from occkit.worlds.driving.vocabulary import HELDOUT_NAMES, fine_names

#: Depth bands (metres) of the report.
DEPTH_BANDS: tuple[tuple[float, float], ...] = ((0.0, 10.0), (10.0, 20.0), (20.0, 40.0), (40.0, math.inf))
MIN_INSTANCE_PX = 16


def vocabulary_file(table: PriorClasses = DEFAULT_PRIORS) -> Path:
    """The vocabulary YAML occkit ships for a class table of priors (``configs/vocabularies/<table>.yaml``;
    Occ3D's for the driving world's), which need not exist."""
    return Path(str(resources.files("occkit") / "configs" / "vocabularies" / f"{table.name}.yaml"))


def load_class_vocabulary(path: str | os.PathLike | None = None) -> tuple[list[str], list[list[str]], list[str]]:
    """``(class names, synonyms per class, templates)`` from a vocabulary YAML (default: the one of
    the default table, Occ3D's: :func:`vocabulary_file`).

    The file has ``templates`` (strings with ``{}``) and ``classes`` (name -> list of synonyms),
    the classes in :data:`~occkit.priors.base.PRIOR_CLASSES` order. Errors name the file.
    """
    p = Path(path) if path is not None else vocabulary_file()
    data = load_yaml(p)
    templates, classes = data.get("templates"), data.get("classes")
    if not isinstance(templates, list) or not templates or not all(isinstance(t, str) and "{}" in t for t in templates):
        raise ValueError(f"{p}: 'templates' must be a list of strings containing {{}}")
    if not isinstance(classes, dict) or not classes:
        raise ValueError(f"{p}: 'classes' must map class names to lists of synonyms")
    names, syns = [], []
    for name, words in classes.items():
        if isinstance(words, str):
            words = [words]
        if not isinstance(words, list) or not words or not all(isinstance(w, str) for w in words):
            raise ValueError(f"{p}: class {name!r}: expected a non-empty list of synonyms")
        names.append(str(name))
        syns.append(list(words))
    return names, syns, list(templates)


class _Scores:
    """Streaming sums of every figure (one frame at a time)."""

    def __init__(self, n_classes: int) -> None:
        self.C = n_classes
        self.conf = torch.zeros(n_classes, n_classes + 1, dtype=torch.float64)  # last column: unknown
        self.band = torch.zeros(len(DEPTH_BANDS), 3, dtype=torch.float64)  # absrel sum, delta1 count, n
        self.depth_gt = 0
        self.seg_iou: list[float] = []
        self.cls = [0, 0]
        self.fine = {False: [0, 0], True: [0, 0]}
        self.frames = 0


def _semantic(sc: _Scores, pred: torch.Tensor, gt: torch.Tensor) -> None:
    keep = gt < sc.C
    g, p = gt[keep], pred[keep].long()
    p = torch.where(p < sc.C, p, torch.full_like(p, sc.C))
    sc.conf += torch.bincount(g * (sc.C + 1) + p, minlength=sc.C * (sc.C + 1)).view(sc.C, sc.C + 1).double()


def _depth(sc: _Scores, pred: torch.Tensor, gt: torch.Tensor) -> None:
    has = gt > 0
    sc.depth_gt += int(has.sum())
    v = has & (pred > 0)
    d, g = pred[v].double(), gt[v].double()
    rel = (d - g).abs() / g
    ok = torch.maximum(d / g, g / d) < 1.25
    for b, (lo, hi) in enumerate(DEPTH_BANDS):
        m = (g >= lo) & (g < hi)
        sc.band[b] += torch.stack([rel[m].sum(), ok[m].sum().double(), m.sum().double()])


def _segments(sc: _Scores, pred: torch.Tensor, inst: torch.Tensor) -> None:
    for seg, ins in zip(pred, inst):
        ids, area = torch.unique(ins, return_counts=True)
        keep = ids[(ids > 0) & (area >= MIN_INSTANCE_PX)]
        if keep.numel() == 0:
            continue
        s = seg.flatten().long()
        i = ins.flatten().long()
        pair, n_pair = torch.unique(torch.stack([i, s]), dim=1, return_counts=True)
        seg_ids, seg_area = torch.unique(s, return_counts=True)
        seg_area_of = dict(zip(seg_ids.tolist(), seg_area.tolist()))
        inst_area_of = dict(zip(ids.tolist(), area.tolist()))
        best: dict[int, float] = {}
        for (a, b), n in zip(pair.T.tolist(), n_pair.tolist()):
            if b == 0:
                continue
            iou = n / (inst_area_of[a] + seg_area_of[b] - n)
            if iou > best.get(a, 0.0):
                best[a] = iou
        sc.seg_iou += [best.get(a, 0.0) for a in keep.tolist()]


def _features(
    sc: _Scores,
    feats: torch.Tensor,
    stride: int,
    sem: torch.Tensor,
    inst: torch.Tensor,
    names: dict[int, str],
    class_text: torch.Tensor,
    fine_text: torch.Tensor,
    fine_index: dict[str, int],
    fine_list: list[str] | tuple[str, ...] = (),
) -> None:
    N, D, h, w = feats.shape
    H, W = sem.shape[-2:]
    ys = torch.clamp(torch.arange(h) * stride + stride // 2, max=H - 1)
    xs = torch.clamp(torch.arange(w) * stride + stride // 2, max=W - 1)
    f = feats.permute(0, 2, 3, 1).reshape(-1, D)
    g_cls = sem[:, ys][:, :, xs].reshape(-1)
    g_inst = inst[:, ys][:, :, xs].reshape(-1)
    valid = (f.norm(dim=1) > 0) & (g_cls < sc.C)
    pred = (f @ class_text.T).argmax(1)
    sc.cls[0] += int((pred == g_cls)[valid].sum())
    sc.cls[1] += int(valid.sum())
    name_of = torch.full((int(g_inst.max()) + 1,), -1, dtype=torch.long)
    for iid, name in names.items():
        if 0 < iid < len(name_of) and name in fine_index:
            name_of[iid] = fine_index[name]
    gname = name_of[g_inst]
    has = valid & (g_inst > 0) & (gname >= 0)
    if bool(has.any()):
        pf = (f[has] @ fine_text.T).argmax(1)
        gn = gname[has]
        fine_list = fine_list or fine_names()
        held = torch.tensor([fine_list[k] in HELDOUT_NAMES for k in gn.tolist()], dtype=torch.bool)
        for flag in (False, True):
            m = held == flag
            sc.fine[flag][0] += int((pf[m] == gn[m]).sum())
            sc.fine[flag][1] += int(m.sum())


def evaluate_priors(
    data: str | os.PathLike,
    priors: str | os.PathLike,
    split: str = "all",
    max_frames: int = 0,
    vocabulary: str | os.PathLike | None = None,
    progress: bool = False,
    text_encoder: Any = None,
) -> dict[str, Any]:
    """Score the cache ``priors`` against the synthetic extras of ``data`` (see the module docstring).

    ``text_encoder``: an already loaded encoder of the cache's feature space (default: loaded from
    the cache's record).
    """
    cache = PriorCache(priors)
    ds, _ = open_dataset(data, split, cache.cameras, extras=True)
    table = prior_classes_named(cache.class_table)
    if prior_classes_of_dataset(ds).name != table.name:
        cache.check_dataset(ds)  # the one-line error naming the cache and both tables
    wp = WithPriors(ds, cache, check=False)
    index = _cached_frames(cache, ds, data, split, max_frames)
    sc = _Scores(table.num_classes)
    fine_list = _fine_names_of(ds, table)
    fine_index = {name: i for i, name in enumerate(fine_list)}
    class_text = fine_text = None
    if "features" in cache.kinds:
        class_text, fine_text = _prompt_texts(cache, table, vocabulary, text_encoder, fine_list)
    it: Any = index
    if progress:
        from tqdm import tqdm

        it = tqdm(index, desc="priors eval", unit="frame")
    for i in it:
        s = wp[i]
        if s.depth is None or s.semantics_2d is None or s.instance_2d is None:
            raise ValueError(
                f"{data}: frame {s.token} has no synthetic extras: priors can only be scored on the synthetic world"
            )
        sc.frames += 1
        if s.prior_semantics is not None:
            _semantic(sc, s.prior_semantics, s.semantics_2d)
        if s.prior_depth is not None:
            _depth(sc, s.prior_depth, s.depth)
        if s.prior_segments is not None:
            _segments(sc, s.prior_segments, s.instance_2d)
        if s.prior_features is not None:
            names_of = getattr(ds, "instance_names", None)
            names = names_of(s.token) if callable(names_of) else {}
            _features(
                sc,
                s.prior_features,
                s.prior_feature_stride,
                s.semantics_2d,
                s.instance_2d,
                names,
                class_text,
                fine_text,
                fine_index,
                fine_list,
            )
    return _report(sc, cache, table.names)


def _cached_frames(cache: PriorCache, ds: Any, data: Any, split: str, max_frames: int) -> list[int]:
    """The indices of the frames of ``ds`` the cache holds: all, or ``max_frames`` > 0 of them evenly spaced;
    none is refused."""
    cached = [
        i for i, f in enumerate(ds.frames) if cache.has(*((f.scene, f.token) if hasattr(f, "token") else (f[0], f[1])))
    ]
    if not cached:
        raise ValueError(
            f"{cache.root}: made for {cache.record.get('dataset')}; none of the frames of {data} (split {split}) is "
            "in it"
        )
    n = len(cached)
    if 0 < max_frames < n:
        return [cached[j] for j in sorted({round(i * (n - 1) / max(1, max_frames - 1)) for i in range(max_frames)})]
    return cached


def _fine_names_of(ds: Any, table: Any) -> list[str]:
    """The object names the features are scored on: the driving world's fine names, or else the names of
    the world's objects (every frame's), sorted."""
    if driving_world_table(table):
        return list(fine_names())
    names_of = getattr(ds, "instance_names", None)
    found = {n for f in ds.frames for n in (names_of(f.token) if callable(names_of) else {}).values()}
    return sorted(found)


def _prompt_texts(
    cache: PriorCache, table: Any, vocabulary: Any, text_encoder: Any, fine_list: list[str]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The text embeddings the features are scored against: of the classes (the vocabulary's prompts) and of
    the fine object names (None without any)."""
    te = text_encoder if text_encoder is not None else cache.text_encoder()
    if vocabulary is None and not vocabulary_file(table).is_file():
        syns, templates = [[w] for w in table.words], list(DEFAULT_TEMPLATES)
    else:
        _, syns, templates = load_class_vocabulary(vocabulary if vocabulary is not None else vocabulary_file(table))
    if len(syns) != table.num_classes:
        raise ValueError(f"vocabulary: {len(syns)} classes, expected {table.num_classes} ({', '.join(table.names)})")
    class_text = encode_prompts(te, syns, templates)
    fine_text = encode_prompts(te, fine_list, DEFAULT_TEMPLATES) if fine_list else None
    return class_text, fine_text


def _pct(num: float, den: float) -> float | None:
    return round(100.0 * num / den, 2) if den > 0 else None


def _report(sc: _Scores, cache: PriorCache, names: tuple[str, ...] = PRIOR_CLASSES) -> dict[str, Any]:
    out: dict[str, Any] = {"priors": str(cache.root), "spec": cache.spec, "frames": sc.frames}
    if "semantics" in cache.kinds:
        tp = sc.conf.diag()[: sc.C]
        gt = sc.conf.sum(1)
        pr = sc.conf[:, : sc.C].sum(0)
        present = gt > 0
        iou = tp / (gt + pr - tp).clamp_min(1e-12)
        out["semantic_miou"] = round(100.0 * float(iou[present].mean()), 2) if bool(present.any()) else None
        out["semantic_iou"] = {names[c]: round(100.0 * float(iou[c]), 2) for c in range(sc.C) if present[c]}
        out["semantic_unknown_pct"] = _pct(float(sc.conf[:, sc.C].sum()), float(sc.conf.sum()))
    else:
        out["semantic_miou"] = None
    if "depth" in cache.kinds:
        tot = sc.band.sum(0)
        out["depth_absrel"] = round(float(tot[0] / tot[2]), 4) if tot[2] > 0 else None
        out["depth_delta1"] = _pct(float(tot[1]), float(tot[2]))
        out["depth_coverage"] = _pct(float(tot[2]), float(sc.depth_gt))
        out["depth_by_band"] = {
            f"{lo:g}-{hi:g}m" if math.isfinite(hi) else f">{lo:g}m": {
                "absrel": round(float(b[0] / b[2]), 4) if b[2] > 0 else None,
                "delta1": _pct(float(b[1]), float(b[2])),
                "pixels": int(b[2]),
            }
            for (lo, hi), b in zip(DEPTH_BANDS, sc.band)
        }
    else:
        out["depth_absrel"] = out["depth_delta1"] = None
    out["segment_miou"] = (
        round(100.0 * float(np.mean(sc.seg_iou)), 2) if sc.seg_iou and "segments" in cache.kinds else None
    )
    if "segments" in cache.kinds:
        out["segment_instances"] = len(sc.seg_iou)
    if "features" in cache.kinds:
        out["feature_class_acc"] = _pct(*sc.cls)
        out["feature_fine_acc_seen"] = _pct(*sc.fine[False])
        out["feature_fine_acc_heldout"] = _pct(*sc.fine[True])
        out["feature_cells"] = {"class": sc.cls[1], "fine_seen": sc.fine[False][1], "fine_heldout": sc.fine[True][1]}
    else:
        out["feature_class_acc"] = out["feature_fine_acc_seen"] = out["feature_fine_acc_heldout"] = None
    return out


def format_report(r: dict[str, Any]) -> str:
    """The report as a few readable lines."""

    def f(v: Any, unit: str = "") -> str:
        return "-" if v is None else f"{v}{unit}"

    lines = [f"priors {r['spec']} ({r['priors']}), {r['frames']} frames"]
    lines.append(f"  semantics: mIoU {f(r['semantic_miou'], ' %')}")
    lines.append(
        f"  depth:     AbsRel {f(r['depth_absrel'])}  delta<1.25 {f(r['depth_delta1'], ' %')}  coverage "
        f"{f(r.get('depth_coverage'), ' %')}"
    )
    for band, v in (r.get("depth_by_band") or {}).items():
        lines.append(f"    {band:>8}: AbsRel {f(v['absrel'])}  delta<1.25 {f(v['delta1'], ' %')}  ({v['pixels']} px)")
    lines.append(f"  segments:  mean best-match IoU {f(r['segment_miou'], ' %')}")
    lines.append(
        f"  features:  class acc {f(r['feature_class_acc'], ' %')}  fine acc seen {f(r['feature_fine_acc_seen'], ' %')}"
        f"  held-out {f(r['feature_fine_acc_heldout'], ' %')}"
    )
    return "\n".join(lines)
