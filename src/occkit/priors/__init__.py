"""occkit.priors: the 2D prior layer (segments, semantics, metric depth, vision-language features).

Every method reads priors through this package, never a model directly. A provider is built
from a spec string by :func:`build_prior`:

==========================  ==============================================================
``oracle[:LEVEL]``          the synthetic world's exact maps through a seeded error model,
                            ``LEVEL`` = ``clean`` | ``typical`` | ``noisy`` (:mod:`.oracle`)
``world:RUN``               2D networks occkit trained on another synthetic world
                            (``occkit priors train``; :mod:`.world`)
``hf:ROOT``                 real foundation models from local folders through ``transformers``
                            (:mod:`.hf`)
``superpixels[:METHOD]``    weight-free segments, ``slic`` or ``felzenszwalb`` (:mod:`.superpixels`)
==========================  ==============================================================

Several providers can share one cache, one per kind: ``build_prior(["oracle:typical",
"segments=superpixels"])`` (a ``KIND=`` prefix gives that provider only that kind; later
entries win for the kinds they name). Outputs are :class:`~occkit.priors.base.Priors`;
``occkit priors run`` writes them to a cache (:mod:`.cache`) that datasets attach to samples.
The classes of ``semantics`` are the dataset format's class table (:mod:`.classes`: Occ3D's
classes and sky for the driving world, NYUv2's indoors).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from occkit.priors.base import (
    KINDS,
    PRIOR_CLASSES,
    SKY,
    UNKNOWN,
    PriorFrame,
    PriorProvider,
    Priors,
    check_kinds,
    merge_priors,
)
from occkit.priors.classes import DEFAULT_PRIORS, PriorClasses, prior_classes_of

__all__ = [
    "KINDS",
    "DEFAULT_PRIORS",
    "PriorClasses",
    "prior_classes_of",
    "PRIOR_CLASSES",
    "SKY",
    "UNKNOWN",
    "PriorFrame",
    "PriorProvider",
    "Priors",
    "build_prior",
    "build_provider",
    "CompositePrior",
]


def build_provider(spec: str, **options: Any) -> PriorProvider:
    """One provider from its spec string (see the module docstring); errors name the spec."""
    kind, _, arg = spec.partition(":")
    if kind == "oracle":
        from occkit.priors.oracle import OraclePrior

        return OraclePrior(arg or "typical", **options)
    if kind == "superpixels":
        from occkit.priors.superpixels import SuperpixelPrior

        return SuperpixelPrior(arg or "slic", **options)
    if kind == "world":
        if not arg:
            raise ValueError(f"prior {spec!r}: expected world:RUN (the folder of `occkit priors train`)")
        from occkit.priors.world import WorldPrior

        return WorldPrior(arg, **options)
    if kind == "hf":
        if not arg:
            raise ValueError(f"prior {spec!r}: expected hf:ROOT (a folder of saved transformers models)")
        from occkit.priors.hf import HFPrior

        return HFPrior(arg, **options)
    raise ValueError(
        f"prior {spec!r}: unknown provider (expected oracle[:LEVEL], world:RUN, hf:ROOT or superpixels[:METHOD])"
    )


class CompositePrior:
    """Several providers, each answering for some kinds.

    Args:
        parts: ``(kinds, provider)`` pairs; a kind is answered by the last part that names it.
    """

    def __init__(self, parts: Sequence[tuple[tuple[str, ...], PriorProvider]], spec: str | None = None) -> None:
        self.route: dict[str, PriorProvider] = {}
        for kinds, p in parts:
            for k in kinds:
                self.route[k] = p
        self.providers = list(dict.fromkeys(p for _, p in parts))
        self.kinds = tuple(k for k in KINDS if k in self.route)
        self.spec = spec or " ".join(f"{'+'.join(kinds)}={p.spec}" for kinds, p in parts)

    @property
    def text_encoder(self) -> Any:
        """The text encoder of the provider that gives the features (None without features)."""
        feat = self.route.get("features")
        return feat.text_encoder if feat is not None else None

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "kinds": {k: p.describe() for k, p in self.route.items()}}

    def __call__(self, frame: PriorFrame, kinds: Sequence[str]) -> Priors:
        kinds = check_kinds(kinds, self.kinds, self.spec)
        parts = []
        for p in self.providers:
            mine = [k for k in kinds if self.route[k] is p]
            if mine:
                parts.append(p(frame, mine))
        return merge_priors(parts)


def build_prior(specs: str | Sequence[str], **options: Any) -> PriorProvider:
    """A provider from one spec or several ``[KIND[+KIND]=]SPEC`` entries (see the module docstring)."""
    if isinstance(specs, str):
        specs = [specs]
    if not specs:
        raise ValueError("build_prior: no prior spec given")
    parts: list[tuple[tuple[str, ...], PriorProvider]] = []
    built: dict[str, PriorProvider] = {}
    for entry in specs:
        head, sep, rest = entry.partition("=")
        if sep and all(k in KINDS for k in head.split("+")):
            kinds, spec = tuple(head.split("+")), rest
        else:
            kinds, spec = (), entry
        p = built.get(spec) or build_provider(spec, **options)
        built[spec] = p
        parts.append((check_kinds(kinds, p.kinds, spec) if kinds else tuple(p.kinds), p))
    if len(parts) == 1 and set(parts[0][0]) == set(parts[0][1].kinds):
        return parts[0][1]
    return CompositePrior(parts, spec=" ".join(specs))
