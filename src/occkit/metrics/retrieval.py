"""Open-vocabulary retrieval: average precision of free-text queries over 3D points.

Protocol (POP-3D's, as LangOcc uses it): for each text query, every candidate point of the
evaluated frames gets a score (the cosine similarity of its 3D feature with the query's text
embedding, mapped to ``(cos + 1) / 2``) and a binary relevance (the point belongs to an object
whose fine name the query means); the points of all frames are ranked together and the query's
AP is computed; mAP is the mean over queries with at least one relevant point. occkit ranks
either the voxels that the ground truth says are occupied (``voxels``: per-voxel instance ids of
the synthetic world) or LiDAR points (``points``, POP-3D: the instance of the voxel each point
falls in), on all of them and on the camera-visible ones, and reports queries about held-out
names (:data:`occkit.worlds.driving.vocabulary.HELDOUT_NAMES`, never seen by a ``world`` prior's
feature head) apart from the others.

A query set is a YAML file (``configs/queries/synth.yaml``)::

    queries:
      - text: "a yellow bus for children"     # what the user types
        means: [school bus]                   # the fine names (objects.json) it is about
      - text: "grass"
        classes: [14]                         # or ground classes (Occ3D ids), voxels without object
"""

from __future__ import annotations

import math
import os
from collections.abc import Container
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from occkit.shapes import check_shape


def average_precision(scores: np.ndarray | torch.Tensor, relevant: np.ndarray | torch.Tensor) -> float:
    """AP of a ranking, as scikit-learn's ``average_precision_score``:
    ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds (ties form one step).

    Args:
        scores: ``(M,)`` higher = more relevant; relevant: ``(M,)`` bool.
    Returns:
        AP in [0, 1]; NaN when nothing is relevant.
    """
    _, tp_at, n_at = ranked_counts(scores, relevant)
    n_rel = int(tp_at[-1]) if len(tp_at) else 0
    if n_rel == 0:
        return math.nan
    return ap_from_counts(tp_at, n_at)


def ranked_counts(
    scores: np.ndarray | torch.Tensor, relevant: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At each distinct score, highest first: ``(score, relevant at or above it, all at or above it)``,
    three ``(K,)`` arrays (the counts of the ranking cut at ``score >= s``; ties form one step)."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    r = np.asarray(relevant, dtype=bool).reshape(-1)
    if s.shape != r.shape:
        raise ValueError(f"scores {s.shape} and relevant {r.shape} differ in shape")
    order = np.argsort(-s, kind="mergesort")
    s, r = s[order], r[order]
    tp = np.cumsum(r)
    last = (
        np.r_[np.nonzero(np.diff(s))[0], len(s) - 1] if len(s) else np.zeros(0, np.int64)
    )  # the last index of each distinct score
    return s[last], tp[last], last + 1


def ap_from_counts(tp_at: np.ndarray, n_at: np.ndarray) -> float:
    """AP from :func:`ranked_counts`' counts: ``sum_n (R_n - R_{n-1}) P_n`` (at least one relevant)."""
    precision, recall = tp_at / n_at, tp_at / tp_at[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclass(frozen=True)
class Query:
    """One text query and what it is about."""

    text: str
    """What the user types."""
    means: tuple[str, ...] = ()
    """Fine object names (``objects.json``) whose points are relevant."""
    classes: tuple[int, ...] = ()
    """Occ3D class ids whose object-free points (instance 0: ground) are relevant."""
    heldout: bool = False
    """Every name it means is a held-out name (reported apart)."""


def default_queries_path() -> Path:
    return Path(str(resources.files("occkit") / "configs" / "queries" / "synth.yaml"))


def load_queries(path: str | os.PathLike | None = None, check_names: bool = True) -> list[Query]:
    """The queries of a YAML file (default: the synthetic world's). Errors name the file and the
    query; with ``check_names``, names must be fine names of the synthetic world."""
    from occkit.config import load_yaml
    from occkit.worlds.driving.vocabulary import FINE_NAME_CLASS, HELDOUT_NAMES

    p = Path(path) if path is not None else default_queries_path()
    data = load_yaml(p)
    items = data.get("queries") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise ValueError(f"{p}: expected a non-empty list 'queries'")
    known = FINE_NAME_CLASS if check_names else None
    return [_query(p, i, q, known, HELDOUT_NAMES) for i, q in enumerate(items)]


def _query(p: Path, i: int, q: Any, known: Container[str] | None, heldout_names: Container[str]) -> Query:
    """Query ``i`` of file ``p`` checked; ``known``: the fine names it may mean (None: any)."""
    if not isinstance(q, dict) or not isinstance(q.get("text"), str) or not q["text"].strip():
        raise ValueError(f"{p}: query {i}: expected a mapping with a non-empty 'text'")
    unknown = set(q) - {"text", "means", "classes"}
    if unknown:
        raise ValueError(f"{p}: query {q['text']!r}: unknown keys {sorted(unknown)}")
    means = q.get("means") or []
    classes = q.get("classes") or []
    if not isinstance(means, list) or not all(isinstance(n, str) for n in means):
        raise ValueError(f"{p}: query {q['text']!r}: 'means' must be a list of names")
    if not isinstance(classes, list) or not all(isinstance(c, int) and 0 <= c < 17 for c in classes):
        raise ValueError(f"{p}: query {q['text']!r}: 'classes' must be a list of Occ3D class ids 0..16")
    if not means and not classes:
        raise ValueError(f"{p}: query {q['text']!r}: give 'means' (fine names) or 'classes'")
    if known is not None:
        bad = [n for n in means if n not in known]
        if bad:
            raise ValueError(
                f"{p}: query {q['text']!r}: {bad} are not fine names of the synthetic world (occkit priors vocab)"
            )
    heldout = bool(means) and not classes and all(n in heldout_names for n in means)
    return Query(q["text"], tuple(means), tuple(classes), heldout)


def relevance(query: Query, instances: torch.Tensor, names: dict[int, str], semantics: torch.Tensor) -> torch.Tensor:
    """``(P,)`` bool: the points of the objects the query means, or object-free points of its classes.

    Args:
        instances: ``(P,)`` instance id of each point (0 = no object); names: instance id -> fine name;
        semantics: ``(P,)`` Occ3D class of each point.
    """
    check_shape(semantics, "P", name="semantics", dims={"P": check_shape(instances, "P", name="instances")["P"]})
    ids = [i for i, n in names.items() if n in query.means]
    rel = (
        torch.isin(instances, torch.tensor(ids, dtype=instances.dtype, device=instances.device))
        if ids
        else torch.zeros_like(instances, dtype=torch.bool)
    )
    if query.classes:
        rel |= (instances == 0) & torch.isin(semantics.long(), torch.tensor(query.classes, device=semantics.device))
    return rel


@dataclass
class RetrievalAccumulator:
    """Scores and relevances of every query over the frames, for all and visible points."""

    queries: list[Query]
    scores: list[list[np.ndarray]] = field(default_factory=list)
    relevant: list[list[np.ndarray]] = field(default_factory=list)
    visible: list[np.ndarray] = field(default_factory=list)
    frames: int = 0

    def __post_init__(self) -> None:
        self.scores = [[] for _ in self.queries]
        self.relevant = [[] for _ in self.queries]

    def add(
        self,
        sims: torch.Tensor,
        instances: torch.Tensor,
        names: dict[int, str],
        semantics: torch.Tensor,
        visible: torch.Tensor,
    ) -> None:
        """One frame: ``sims (P, Q)`` cosine similarities of its ``P`` candidate points with the
        queries; ``instances``, ``semantics`` ``(P,)``; ``visible (P,)`` bool."""
        dims = check_shape(sims, "P Q", name="sims", dims={"Q": len(self.queries)})
        check_shape(visible, "P", name="visible", dims={"P": dims["P"]})
        score = ((sims.float() + 1) / 2).cpu().numpy()
        for q, query in enumerate(self.queries):
            self.scores[q].append(score[:, q].astype(np.float32))
            self.relevant[q].append(relevance(query, instances, names, semantics).cpu().numpy())
        self.visible.append(visible.cpu().numpy().astype(bool))
        self.frames += 1

    def compute(self) -> dict:
        """``{"queries": [{text, heldout, ap_all, ap_visible, relevant_all, relevant_visible}],
        "map_all", "map_visible", "map_seen_all", "map_seen_visible", "map_heldout_all",
        "map_heldout_visible", "frames"}`` (APs and mAPs x100; NaN-free means over queries with
        relevant points; None when there are none)."""
        vis = np.concatenate(self.visible) if self.visible else np.zeros(0, bool)
        rows = []
        for q, query in enumerate(self.queries):
            s = np.concatenate(self.scores[q]) if self.scores[q] else np.zeros(0, np.float32)
            r = np.concatenate(self.relevant[q]) if self.relevant[q] else np.zeros(0, bool)
            ap_all = average_precision(s, r)
            ap_vis = average_precision(s[vis], r[vis])
            rows.append(
                {
                    "text": query.text,
                    "means": list(query.means),
                    "classes": list(query.classes),
                    "heldout": query.heldout,
                    "ap_all": None if math.isnan(ap_all) else 100 * ap_all,
                    "ap_visible": None if math.isnan(ap_vis) else 100 * ap_vis,
                    "relevant_all": int(r.sum()),
                    "relevant_visible": int(r[vis].sum()),
                }
            )

        def mean(key: str, heldout: bool | None) -> float | None:
            v = [row[key] for row in rows if row[key] is not None and (heldout is None or row["heldout"] == heldout)]
            return float(np.mean(v)) if v else None

        out: dict = {"queries": rows, "frames": self.frames, "points": int(len(vis)), "visible_points": int(vis.sum())}
        for part, h in (("", None), ("seen_", False), ("heldout_", True)):
            for key in ("all", "visible"):
                out[f"map_{part}{key}"] = mean(f"ap_{key}", h)
        out["queries_scored"] = sum(row["ap_all"] is not None for row in rows)
        return out
