"""``oracle[:LEVEL]``: priors from the synthetic world's exact maps through a seeded error model.

The synthetic extras give every pixel's exact z-depth, class (in the frame's class table,
:class:`~occkit.priors.classes.PriorClasses`: Occ3D's with 17 = sky for the driving world, NYUv2's
with 0 = nothing indoors), instance id and the instance's fine-grained name (``objects.json``
outdoors, ``indoor.json`` indoors). A real 2D foundation model is not
exact; this provider degrades the exact maps the way such models err, at three named levels:

``clean``
    the extras exactly: depth = the exact depth, semantics = the exact classes (confidence 1),
    segments = one segment per object instance and per connected region of each ground class and
    of the sky, features = the text encoder's embedding of the name of the pixel at the centre of
    each feature cell (fine name for objects, the class table's word otherwise:
    :data:`~occkit.worlds.driving.vocabulary.CLASS_WORDS` for the driving world's ground and sky).
``typical``
    roughly what current models give on driving images.
``noisy``
    clearly worse, for sensitivity studies.

The error model (all parameters in :class:`OracleLevel`; draws seeded by (level, scene, token,
camera), so a frame's priors are the same whenever and wherever they are made):

- **depth** (metric depth networks, e.g. Metric3D v2, Depth Anything, ZoeDepth): a per-image
  scale bias ``exp(N(0, scale_sigma))``; a multiplicative error whose spread grows with distance,
  ``exp(rel_noise * (1 + d / growth_m) * n(x))`` with ``n`` a mix of a smooth field and
  per-pixel noise; and *bleeding* at depth edges: within ``edge_px`` pixels of a discontinuity the
  depth is the window average (the "flying pixels" between foreground and background that such
  networks produce). The levels aim at the range published for zero-shot metric depth on driving
  data (AbsRel about 0.05-0.15 and delta<1.25 about 0.85-0.97); ``occkit priors eval`` reports what
  each level gives on the synthetic world (BENCHMARKS.md).
- **semantics** (open-vocabulary segmenters, e.g. Grounded-SAM): boundaries moved by a smooth
  random displacement of up to ``boundary_px`` pixels (eroded here, dilated there); small objects
  (fewer than ``miss_area_px`` pixels) missed with probability ``miss_prob`` (they take the label
  around them); whole objects given a similar class with probability ``confuse_prob`` (car/truck,
  bus/truck, trailer/truck, bicycle/motorcycle, barrier/traffic cone, ...; indoors chair/sofa,
  bed/sofa, table/furniture, tvs/objects, ...); patches of ground classes swapped with a neighbour
  class (sidewalk/other flat/road, terrain/vegetation; indoors wall/ceiling) over about
  ``stuff_confuse_frac`` of the ground (indoors: of the room's structure). The confusions are the
  class table's (:attr:`~occkit.priors.classes.PriorClasses.confusable`, from its format's
  vocabulary); a table without them has none. Confidence is lower near boundaries and where a label
  was changed.
- **segments** (SAM-like masks): segments larger than ``split_min_frac`` of the image split into
  2-4 parts with probability ``split_prob`` (over-segmentation); touching segments merged with
  probability ``merge_prob`` (under-segmentation).
- **features** (MaskCLIP-like dense features): each cell's embedding mixes the names of the
  pixels of its cell (average pooling), a ``class_mix`` share of the class word (fine names are
  partly lost), a Gaussian blur of ``blur_cells`` cells and noise of ``noise`` per dimension
  (relative to 1/sqrt(D)), renormalised.

Sky has depth 0 (unknown) at every level: a real network returns some large value there and a
method masks it by semantics anyway.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from occkit.priors.base import KINDS, PriorFrame, Priors, check_kinds
from occkit.priors.classes import DEFAULT_PRIORS, PriorClasses


@dataclass(frozen=True)
class OracleLevel:
    """The parameters of the oracle's error model (see the module docstring)."""

    depth_scale_sigma: float = 0.0
    """Std of the log of the per-image depth scale bias."""
    depth_rel_noise: float = 0.0
    """Std of the log-depth error at zero distance."""
    depth_growth_m: float = 30.0
    """Distance (m) over which the log-depth error std grows by ``depth_rel_noise``."""
    depth_edge_px: int = 0
    """Half-width (pixels) of the band around depth edges where depth bleeds (0 = none)."""
    boundary_px: float = 0.0
    """Amplitude (pixels) of the smooth displacement of semantic boundaries."""
    miss_area_px: float = 0.0
    """Objects smaller than this (pixels, at 900 x 1600; scaled with the image area) can be missed."""
    miss_prob: float = 0.0
    """Probability that such a small object is missed."""
    confuse_prob: float = 0.0
    """Probability that an object takes a similar class."""
    stuff_confuse_frac: float = 0.0
    """Fraction of the ground in patches whose class is swapped with a neighbour class."""
    split_prob: float = 0.0
    """Probability that a large segment is split (over-segmentation)."""
    split_min_frac: float = 0.01
    """Segments above this fraction of the image can be split."""
    merge_prob: float = 0.0
    """Probability that a pair of touching segments is merged (under-segmentation)."""
    class_mix: float = 0.0
    """Share of the class word in a feature (the rest is the fine name)."""
    blur_cells: float = 0.0
    """Gaussian blur of the feature map, in feature cells (sigma)."""
    noise: float = 0.0
    """Feature noise per dimension, in units of 1/sqrt(D)."""
    pooled: bool = False
    """Average the names over each feature cell (True) or take the cell centre's (False)."""


#: The tuned parameters of the levels ``typical`` and ``noisy``, side by side (the others keep
#: :class:`OracleLevel`'s defaults, as every parameter of ``clean`` does).
_LEVEL_VALUES: dict[str, tuple[float | int | bool, float | int | bool]] = {
    # parameter: (typical, noisy)
    "depth_scale_sigma": (0.05, 0.12),
    "depth_rel_noise": (0.04, 0.08),
    "depth_growth_m": (30.0, 20.0),
    "depth_edge_px": (2, 4),
    "boundary_px": (2.0, 5.0),
    "miss_area_px": (2000.0, 6000.0),
    "miss_prob": (0.3, 0.6),
    "confuse_prob": (0.08, 0.2),
    "stuff_confuse_frac": (0.06, 0.15),
    "split_prob": (0.2, 0.45),
    "merge_prob": (0.08, 0.2),
    "class_mix": (0.35, 0.6),
    "blur_cells": (0.7, 1.5),
    "noise": (0.5, 1.0),
    "pooled": (True, True),
}

#: The named levels.
LEVELS: dict[str, OracleLevel] = {
    "clean": OracleLevel(),
    **{name: OracleLevel(**{k: v[i] for k, v in _LEVEL_VALUES.items()}) for i, name in enumerate(("typical", "noisy"))},
}


def _seed(*parts: Any) -> int:
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def smooth_field(gen: torch.Generator, shape: tuple[int, ...], cell_px: float) -> torch.Tensor:
    """``(C, H, W)`` random field of roughly unit std, smooth over ``cell_px`` pixels.

    Args:
        shape: ``(C, H, W)``.
    """
    C, H, W = shape
    h, w = max(2, math.ceil(H / cell_px) + 1), max(2, math.ceil(W / cell_px) + 1)
    low = torch.randn(1, C, h, w, generator=gen)
    return F.interpolate(low, size=(H, W), mode="bicubic", align_corners=True)[0]


def _ring_majority(sem: torch.Tensor, mask: torch.Tensor) -> int | None:
    """Most frequent class of ``sem (H, W)`` in the 2-pixel ring around ``mask``, or None."""
    ring = F.max_pool2d(mask[None, None].float(), 5, 1, 2)[0, 0].bool() & ~mask
    vals = sem[ring]
    if vals.numel() == 0:
        return None
    return int(torch.bincount(vals.long(), minlength=256).argmax())


def _components(labels: np.ndarray) -> np.ndarray:
    """Connected components (4-connected) of equal values of ``labels (H, W)`` (``-1`` = none): ids from 1."""
    from skimage.measure import label

    return label(labels + 1, background=0, connectivity=1).astype(np.int64)


class OraclePrior:
    """The ``oracle[:LEVEL]`` provider (see the module docstring).

    Args:
        level: ``clean``, ``typical`` or ``noisy``.
        feature_stride: stride ``s`` of the feature map (``h = ceil(H / s)``).
        text_encoder: the text encoder whose space the features live in: a spec (``minilm``) or
            an already loaded :class:`~occkit.priors.text.TextEncoder`.
        device: where the text encoder runs.
    """

    def __init__(
        self, level: str = "typical", feature_stride: int = 8, text_encoder: Any = "minilm", device: str = "cpu"
    ) -> None:
        if level not in LEVELS:
            raise ValueError(f"prior 'oracle:{level}': unknown level (levels: {', '.join(LEVELS)})")
        if feature_stride < 1:
            raise ValueError(f"oracle: feature_stride must be >= 1, got {feature_stride}")
        self.level_name, self.level = level, LEVELS[level]
        self.spec = f"oracle:{level}"
        self.kinds = KINDS
        self.feature_stride = int(feature_stride)
        self.device = device
        self._text: Any = None if isinstance(text_encoder, str) else text_encoder
        self.text_spec = text_encoder if isinstance(text_encoder, str) else text_encoder.spec
        self._emb: dict[str, torch.Tensor] = {}

    @property
    def text_encoder(self) -> Any:
        """The text encoder (loaded on first use: sentence-transformers takes seconds to import)."""
        if self._text is None:
            from occkit.priors.text import load_text_encoder

            self._text = load_text_encoder(self.text_spec, device=self.device)
        return self._text

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "provider": "oracle",
            "level": self.level_name,
            "parameters": asdict(self.level),
            "feature_stride": self.feature_stride,
            "text_encoder": self.text_spec,
        }

    # ---------------------------------------------------------------------------------- public
    def __call__(self, frame: PriorFrame, kinds: Sequence[str]) -> Priors:
        kinds = check_kinds(kinds, self.kinds, self.spec)
        missing = [n for n in ("depth", "semantics_2d", "instance_2d") if getattr(frame, n) is None]
        if missing:
            raise ValueError(
                f"{self.spec}: frame {frame.scene}/{frame.token} has no synthetic extras ({', '.join(missing)}): "
                "oracle priors exist only for the synthetic world (extras/<scene>/<token>/<CAM>.npz)"
            )
        out = Priors()
        sem_list, conf_list, seg_list, depth_list = [], [], [], []
        for i, cam in enumerate(frame.cam_names):
            rng = lambda purpose: torch.Generator().manual_seed(
                _seed(self.level_name, frame.scene, frame.token, cam, purpose)
            )  # noqa: E731
            depth = frame.depth[i].float()
            sem = frame.semantics_2d[i].long().clamp(0, 255)
            inst = frame.instance_2d[i].long()
            if "depth" in kinds:
                depth_list.append(self._depth(depth, rng("depth")))
            if "semantics" in kinds:
                s, c = self._semantics(sem, inst, rng("semantics"), frame.classes)
                sem_list.append(s)
                conf_list.append(c)
            if "segments" in kinds:
                seg_list.append(self._segments(sem, inst, rng("segments")))
        if depth_list:
            out.depth = torch.stack(depth_list)
        if sem_list:
            out.semantics, out.confidence = torch.stack(sem_list), torch.stack(conf_list)
        if seg_list:
            out.segments = torch.stack(seg_list)
        if "features" in kinds:
            out.features = self._features(frame)
            out.feature_stride = self.feature_stride
        return out

    # ---------------------------------------------------------------------------------- depth
    def _depth(self, depth: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """``(H, W)`` float32 metres, 0 where the exact depth is 0 (sky)."""
        L = self.level
        valid = depth > 0
        if L == LEVELS["clean"] or not bool(valid.any()):
            return depth.clone()
        H, W = depth.shape
        d = depth.clone()
        if L.depth_edge_px > 0:
            k = 2 * L.depth_edge_px + 1
            big = torch.where(valid, d, torch.full_like(d, 1e4))
            lo = -F.max_pool2d(-big[None, None], k, 1, L.depth_edge_px)[0, 0]
            hi = F.max_pool2d(torch.where(valid, d, torch.zeros_like(d))[None, None], k, 1, L.depth_edge_px)[0, 0]
            edge = valid & (hi > 1.15 * lo)
            num = F.avg_pool2d((d * valid)[None, None], k, 1, L.depth_edge_px, count_include_pad=False)[0, 0]
            den = F.avg_pool2d(valid[None, None].float(), k, 1, L.depth_edge_px, count_include_pad=False)[0, 0]
            d = torch.where(edge, num / den.clamp_min(1e-6), d)
        scale = math.exp(L.depth_scale_sigma * float(torch.randn((), generator=gen)))
        n = 0.8 * smooth_field(gen, (1, H, W), max(H, W) / 8)[0] + 0.6 * torch.randn(H, W, generator=gen)
        sigma = L.depth_rel_noise * (1 + d / L.depth_growth_m)
        d = d * scale * torch.exp(sigma * n)
        return torch.where(valid, d, torch.zeros_like(d)).float()

    # ---------------------------------------------------------------------------------- semantics
    def _semantics(
        self, sem: torch.Tensor, inst: torch.Tensor, gen: torch.Generator, table: PriorClasses = DEFAULT_PRIORS
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(H, W)`` uint8 classes and ``(H, W)`` float32 confidence (confusions of the class ``table``)."""
        L = self.level
        confusable, stuff_confusable = table.confusable, table.stuff_confusable
        H, W = sem.shape
        if L == LEVELS["clean"]:
            return sem.to(torch.uint8), torch.ones(H, W)
        changed = torch.zeros(H, W, dtype=torch.bool)
        # boundaries: warp the label maps by a smooth displacement field (nearest)
        if L.boundary_px > 0:
            disp = smooth_field(gen, (2, H, W), max(H, W) / 10) * L.boundary_px
            ys, xs = torch.meshgrid(
                torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij"
            )
            gx = ((xs + disp[0]) + 0.5) / W * 2 - 1
            gy = ((ys + disp[1]) + 0.5) / H * 2 - 1
            grid = torch.stack([gx, gy], -1)[None]
            stacked = torch.stack([sem, inst]).double()[None]
            warped = F.grid_sample(stacked, grid.double(), mode="nearest", padding_mode="border", align_corners=False)[
                0
            ].long()
            sem, inst = warped[0], warped[1]
        out = sem.clone()
        area_scale = H * W / (900 * 1600)
        ids = torch.unique(inst)
        ids = ids[ids > 0]
        for iid in ids.tolist():
            m = inst == iid
            area = int(m.sum())
            u = float(torch.rand((), generator=gen))
            v = float(torch.rand((), generator=gen))
            cls = int(torch.bincount(sem[m], minlength=18).argmax())
            if area < L.miss_area_px * area_scale and u < L.miss_prob:
                around = _ring_majority(out, m)
                if around is not None:
                    out[m] = around
                    changed |= m
                continue
            if v < L.confuse_prob and cls in confusable:
                alts = confusable[cls]
                out[m & (sem == cls)] = alts[int(torch.randint(len(alts), (), generator=gen))]
                changed |= m
        if L.stuff_confuse_frac > 0:
            field = smooth_field(gen, (1, H, W), max(H, W) / 6)[0]
            thr = float(torch.quantile(field.flatten(), 1 - L.stuff_confuse_frac))
            patch = field > thr
            pick = torch.rand((), generator=gen) < 0.5
            for c, alts in stuff_confusable.items():
                m = patch & (sem == c) & (inst == 0)
                if bool(m.any()):
                    out[m] = alts[int(pick) % len(alts)]
                    changed |= m
        # confidence: high inside regions, lower at boundaries and where the label was changed
        edge = (
            F.max_pool2d(out[None, None].float(), 3, 1, 1)[0, 0]
            != -F.max_pool2d(-out[None, None].float(), 3, 1, 1)[0, 0]
        )
        conf = 0.92 - 0.3 * edge.float() - 0.35 * changed.float() + 0.06 * torch.rand(H, W, generator=gen)
        return out.to(torch.uint8), conf.clamp(0, 1).float()

    # ---------------------------------------------------------------------------------- segments
    def _segments(self, sem: torch.Tensor, inst: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """``(H, W)`` int32 segment ids from 1 (every pixel belongs to a segment)."""
        L = self.level
        H, W = sem.shape
        # exact: objects by instance, ground and sky by connected regions of their class
        ins = inst.numpy().astype(np.int64)
        stuff = _components(np.where(ins > 0, -1, sem.numpy().astype(np.int64)))  # ground/sky regions
        stuff[ins > 0] = 0
        _, obj = np.unique(ins, return_inverse=True)  # objects: one segment per instance, even when occluded in parts
        seg = np.where(ins > 0, obj.reshape(ins.shape) + int(stuff.max()), stuff)
        if L == LEVELS["clean"]:
            return torch.from_numpy(seg).to(torch.int32)
        seg_t = torch.from_numpy(seg)
        n = int(seg_t.max())
        # over-segmentation: split large segments around 2-4 random seeds (Voronoi)
        next_id = n + 1
        areas = torch.bincount(seg_t.flatten(), minlength=n + 1)
        ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
        for sid in range(1, n + 1):
            if areas[sid] < L.split_min_frac * H * W or float(torch.rand((), generator=gen)) >= L.split_prob:
                continue
            m = seg_t == sid
            py, px = ys[m].float(), xs[m].float()
            k = int(torch.randint(2, 5, (), generator=gen))
            pick = torch.randint(py.numel(), (k,), generator=gen)
            d2 = (py[:, None] - py[pick][None]) ** 2 + (px[:, None] - px[pick][None]) ** 2
            part = d2.argmin(1)
            new = seg_t[m].clone()
            for j in range(1, k):
                new[part == j] = next_id
                next_id += 1
            seg_t[m] = new
        # under-segmentation: merge touching pairs
        if L.merge_prob > 0:
            a = torch.cat([seg_t[:, 1:].flatten(), seg_t[1:, :].flatten()])
            b = torch.cat([seg_t[:, :-1].flatten(), seg_t[:-1, :].flatten()])
            keep = a != b
            pairs = torch.unique(
                torch.stack([torch.minimum(a[keep], b[keep]), torch.maximum(a[keep], b[keep])], 1), dim=0
            )
            parent = list(range(next_id))

            def find(x: int) -> int:
                while parent[x] != x:
                    parent[x] = parent[parent[x]]
                    x = parent[x]
                return x

            draws = torch.rand(len(pairs), generator=gen)
            for (p, q), u in zip(pairs.tolist(), draws.tolist()):
                if u < L.merge_prob:
                    parent[find(q)] = find(p)
            lut = torch.tensor([find(x) for x in range(next_id)])
            seg_t = lut[seg_t]
        _, compact = torch.unique(seg_t, return_inverse=True)
        return (compact + 1).to(torch.int32)

    # ---------------------------------------------------------------------------------- features
    def _embeddings(self, names: list[str]) -> torch.Tensor:
        new = [n for n in names if n not in self._emb]
        if new:
            for n, e in zip(new, self.text_encoder.encode_text(new)):
                self._emb[n] = e
        return torch.stack([self._emb[n] for n in names])

    def _features(self, frame: PriorFrame) -> torch.Tensor:
        """``(N, D, ceil(H/s), ceil(W/s))`` float32, L2-normalised."""
        L, s = self.level, self.feature_stride
        sem = frame.semantics_2d.long()
        inst = frame.instance_2d.long()
        N, H, W = sem.shape
        table = frame.classes
        C = table.num_classes
        words = dict(enumerate(table.words))
        # per-pixel name index: objects by their fine name (class word when unnamed), else the class word
        names: list[str] = list(dict.fromkeys(words.values()))
        index = {n: i for i, n in enumerate(names)}
        cls_idx = torch.tensor([index[words[c]] for c in range(C)])[sem.clamp(0, C - 1)]
        name_idx = cls_idx.clone()
        for iid, name in frame.instance_names.items():
            if name not in index:
                index[name] = len(names)
                names.append(name)
            name_idx[inst == int(iid)] = index[name]
        table = self._embeddings(names)  # (K, D)
        K, D = table.shape
        h, w = -(-H // s), -(-W // s)
        if not L.pooled:
            ys = torch.clamp(torch.arange(h) * s + s // 2, max=H - 1)
            xs = torch.clamp(torch.arange(w) * s + s // 2, max=W - 1)
            centre = name_idx[:, ys][:, :, xs]  # (N, h, w)
            return table[centre].permute(0, 3, 1, 2).contiguous()
        gen = torch.Generator().manual_seed(_seed(self.level_name, frame.scene, frame.token, "features"))
        by = (torch.arange(H) // s)[:, None].expand(H, W)
        bx = (torch.arange(W) // s)[None, :].expand(H, W)
        cell = (by * w + bx)[None].expand(N, H, W)
        cam = torch.arange(N)[:, None, None].expand(N, H, W)

        def pooled(idx: torch.Tensor) -> torch.Tensor:
            flat = (cam * (h * w) + cell) * K + idx
            counts = torch.bincount(flat.flatten(), minlength=N * h * w * K).view(N, h * w, K).float()
            return (counts / counts.sum(-1, keepdim=True)) @ table  # (N, h*w, D)

        f = (1 - L.class_mix) * pooled(name_idx) + L.class_mix * pooled(cls_idx)
        f = f.transpose(1, 2).reshape(N, D, h, w)
        if L.blur_cells > 0:
            r = max(1, math.ceil(2.5 * L.blur_cells))
            x = torch.arange(-r, r + 1, dtype=torch.float32)
            g = torch.exp(-0.5 * (x / L.blur_cells) ** 2)
            g = g / g.sum()
            f = F.conv2d(F.pad(f.reshape(N * D, 1, h, w), (r, r, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
            f = F.conv2d(F.pad(f, (0, 0, r, r), mode="replicate"), g.view(1, 1, -1, 1)).reshape(N, D, h, w)
        f = f + L.noise / math.sqrt(D) * torch.randn(f.shape, generator=gen)
        return (f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)).float()
