"""The interface of the 2D prior layer: what a provider is given, what it returns.

A *prior* is what a 2D foundation model (or a stand-in for one) says about each camera image of
a frame. Four kinds exist (:data:`KINDS`):

- ``semantics``: class ids over the frame's class table (:class:`~occkit.priors.classes.PriorClasses`,
  chosen by the dataset's format: :data:`PRIOR_CLASSES`, Occ3D's classes 0..16 then 17 = sky, for the
  driving world; NYUv2's 12 classes indoors), :data:`UNKNOWN` (255) where the model gives no label,
  and a ``confidence`` in [0, 1];
- ``segments``: class-agnostic segment ids (SAM-like: objects and regions), one per pixel,
  0 = no segment;
- ``depth``: metric z-depth (along the optical axis) in metres, 0 = unknown;
- ``features``: dense vision-language features ``(D, h, w)`` at a stride ``s`` (``h = ceil(H/s)``),
  L2-normalised, in the space of the provider's text encoder (:class:`~occkit.priors.text.TextEncoder`).

A provider is any object with the :class:`PriorProvider` attributes: ``spec`` (the string that
builds it), ``kinds`` (what it can give), ``text_encoder`` (or ``None``), ``describe()`` (a JSON
record for the cache) and ``__call__(frame, kinds) -> Priors``. Providers are built from a spec
string by :func:`occkit.priors.build_prior`; a method never calls a model directly, it reads the
cache (:mod:`occkit.priors.cache`) through the dataset.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

import torch

from occkit.priors.classes import DEFAULT_PRIORS, PriorClasses
from occkit.shapes import check_shape

#: The kinds of prior, in the order they are stored.
KINDS: tuple[str, ...] = ("semantics", "segments", "depth", "features")

#: The semantic vocabulary of the driving world's priors: Occ3D's 17 classes (0..16, free
#: excluded), then sky (17) (:data:`occkit.priors.classes.DEFAULT_PRIORS`; other worlds' formats have
#: their own table, :func:`occkit.priors.classes.prior_classes_of`).
PRIOR_CLASSES: tuple[str, ...] = DEFAULT_PRIORS.names
#: Prior class id of the sky (driving world).
SKY = DEFAULT_PRIORS.nothing
#: Semantic id where a prior gives no label (also the ignore index of losses on priors).
UNKNOWN = 255


@dataclass
class PriorFrame:
    """What a provider sees of one frame (``N`` cameras, ``H x W`` images).

    Fields:
        scene, token: the frame (used to seed the oracle's error model).
        cam_names: ``N`` camera names.
        images: ``(N, 3, H, W)`` float in [0, 1].
        intrinsics: ``(N, 3, 3)`` float.
        depth: ``(N, H, W)`` float metres, 0 = sky: the synthetic world's exact z-depth (oracle only).
        semantics_2d: ``(N, H, W)`` long, ids of ``classes`` (Occ3D class, 17 = sky outdoors; oracle only).
        instance_2d: ``(N, H, W)`` long, object instance id, 0 = none (oracle only).
        instance_names: ``{instance id: fine name}`` of the objects (``objects.json``; oracle only).
        classes: the class table of the frame's priors (its dataset format's,
            :func:`occkit.priors.classes.prior_classes_of`; Occ3D's by default).
    """

    scene: str
    token: str
    cam_names: tuple[str, ...]
    images: torch.Tensor
    intrinsics: torch.Tensor
    depth: torch.Tensor | None = None
    semantics_2d: torch.Tensor | None = None
    instance_2d: torch.Tensor | None = None
    instance_names: dict[int, str] = field(default_factory=dict)
    classes: PriorClasses = DEFAULT_PRIORS

    def __post_init__(self) -> None:
        dims = check_shape(self.images, "N 3 H W", name="PriorFrame.images")
        if len(self.cam_names) != dims["N"]:
            raise ValueError(f"PriorFrame: {len(self.cam_names)} camera names for {dims['N']} images")
        check_shape(self.intrinsics, "N 3 3", name="PriorFrame.intrinsics", dims=dims)
        for name in ("depth", "semantics_2d", "instance_2d"):
            v = getattr(self, name)
            if v is not None:
                check_shape(v, "N H W", name=f"PriorFrame.{name}", dims=dims)

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[-2]), int(self.images.shape[-1])


@dataclass
class Priors:
    """A provider's outputs for the ``N`` cameras of a frame; a kind not asked for is ``None``.

    Fields:
        semantics: ``(N, H, W)`` uint8, class ids of the frame's table (:data:`PRIOR_CLASSES` outdoors),
            :data:`UNKNOWN` = no label.
        confidence: ``(N, H, W)`` float32 in [0, 1] (with ``semantics``).
        segments: ``(N, H, W)`` int32 segment ids, 0 = none (ids are per camera image).
        depth: ``(N, H, W)`` float32 z-depth in metres, 0 = unknown.
        features: ``(N, D, h, w)`` float32, L2-normalised over D (zero vectors where unknown).
        feature_stride: the stride ``s`` of ``features`` (``h = ceil(H / s)``, ``w = ceil(W / s)``).
    """

    semantics: torch.Tensor | None = None
    confidence: torch.Tensor | None = None
    segments: torch.Tensor | None = None
    depth: torch.Tensor | None = None
    features: torch.Tensor | None = None
    feature_stride: int = 0

    def kinds(self) -> tuple[str, ...]:
        """The kinds present, in :data:`KINDS` order."""
        return tuple(k for k in KINDS if getattr(self, k) is not None)

    def validate(
        self, n: int, image_size: tuple[int, int], where: str = "priors", num_classes: int = len(PRIOR_CLASSES)
    ) -> None:
        """Check shapes, dtypes and ranges against ``n`` cameras of ``image_size`` and a table of
        ``num_classes`` classes; errors name ``where``."""
        H, W = image_size
        dims = {"N": n, "H": H, "W": W}
        if self.semantics is not None:
            check_shape(self.semantics, "N H W", name=f"{where}.semantics", dims=dims)
            if self.semantics.dtype != torch.uint8:
                raise ValueError(f"{where}.semantics: dtype {self.semantics.dtype}, expected torch.uint8")
            bad = (self.semantics >= num_classes) & (self.semantics != UNKNOWN)
            if bool(bad.any()):
                raise ValueError(
                    f"{where}.semantics: ids {sorted(set(self.semantics[bad].tolist()))[:5]} outside "
                    f"0..{num_classes - 1} and {UNKNOWN}"
                )
            if self.confidence is None:
                raise ValueError(f"{where}: semantics without confidence")
        if self.confidence is not None:
            check_shape(self.confidence, "N H W", name=f"{where}.confidence", dims=dims)
            c = self.confidence.float()
            if not bool(torch.isfinite(c).all()) or bool((c < 0).any()) or bool((c > 1).any()):
                raise ValueError(f"{where}.confidence: values outside [0, 1] or not finite")
        if self.segments is not None:
            check_shape(self.segments, "N H W", name=f"{where}.segments", dims=dims)
            if self.segments.dtype != torch.int32:
                raise ValueError(f"{where}.segments: dtype {self.segments.dtype}, expected torch.int32")
            if bool((self.segments < 0).any()):
                raise ValueError(f"{where}.segments: negative segment ids")
        if self.depth is not None:
            check_shape(self.depth, "N H W", name=f"{where}.depth", dims=dims)
            if not bool(torch.isfinite(self.depth).all()) or bool((self.depth < 0).any()):
                raise ValueError(f"{where}.depth: negative or non-finite depths")
        if self.features is not None:
            s = self.feature_stride
            if s < 1:
                raise ValueError(f"{where}.feature_stride: expected >= 1 with features, got {s}")
            check_shape(
                self.features, "N D h w", name=f"{where}.features", dims={"N": n, "h": -(-H // s), "w": -(-W // s)}
            )
            if not bool(torch.isfinite(self.features).all()):
                raise ValueError(f"{where}.features: not finite")


@runtime_checkable
class PriorProvider(Protocol):
    """A source of priors (see the module docstring)."""

    spec: str
    kinds: tuple[str, ...]
    text_encoder: Any

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable record of what makes these priors (spec, level, weights, seed ...)."""

    def __call__(self, frame: PriorFrame, kinds: Sequence[str]) -> Priors:
        """The priors of ``kinds`` (a subset of ``self.kinds``) for every camera of ``frame``."""


def check_kinds(kinds: Sequence[str], available: Sequence[str], who: str) -> tuple[str, ...]:
    """``kinds`` as a tuple in :data:`KINDS` order; unknown or unavailable kinds raise naming ``who``."""
    if unknown := [k for k in kinds if k not in KINDS]:
        raise ValueError(f"{who}: unknown prior kind(s) {unknown} (kinds: {', '.join(KINDS)})")
    if missing := [k for k in kinds if k not in available]:
        raise ValueError(f"{who}: does not provide {missing} (it provides: {', '.join(available)})")
    return tuple(k for k in KINDS if k in kinds)


def merge_priors(parts: Sequence[Priors]) -> Priors:
    """One :class:`Priors` from several providers' outputs for disjoint kinds."""
    out = Priors()
    for p in parts:
        for f in fields(Priors):
            v = getattr(p, f.name)
            if f.name == "feature_stride":
                if v:
                    out.feature_stride = v
            elif v is not None:
                if getattr(out, f.name) is not None:
                    raise ValueError(f"merge_priors: two providers give {f.name}")
                setattr(out, f.name, v)
    return out


def offline_hf() -> None:
    """Forbid Hugging Face libraries any network access in this process."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def memo_encode(
    texts: Sequence[str], memo: dict[str, torch.Tensor], dim: int, encode: Callable[[list[str]], torch.Tensor]
) -> torch.Tensor:
    """``(K, dim)`` embeddings of ``texts`` (a text encoder's ``encode_text``): the texts not yet in
    ``memo`` are embedded by ``encode(sorted new texts) -> (M, dim)`` float32 CPU rows and kept
    there, so a text's embedding never depends on which texts came with it."""
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("encode_text: expected a list of strings")
    new = sorted({t for t in texts if t not in memo})
    if new:
        for t, e in zip(new, encode(new)):
            memo[t] = e
    if not texts:
        return torch.zeros(0, dim)
    return torch.stack([memo[t] for t in texts])


@contextlib.contextmanager
def quiet_hf_progress() -> Iterator[None]:
    """``transformers``' progress bars off while a local model loads (its bare "Loading weights:
    100% 103/103" line, printed even under ``--no-progress``), restored after if they were on."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()
