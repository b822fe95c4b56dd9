"""Neighbouring keyframes of a frame: the scene walk (``prev`` / ``next`` links) and LangOcc's
temporal rays' data (:class:`WithTemporalPriors`).

:func:`scene_neighbours` is the one walk along a scene's keyframes; the LiDAR sweeps
(:class:`occkit.data.lidar_sweeps.WithLidarSweeps`) and the temporal priors both use it.

:class:`WithTemporalPriors` (set up by ``langocc.temporal_offsets`` for training frames) attaches
to each frame, for every offset ``o`` of the list, the keyframe ``o`` steps away in the same
scene: its **2D prior features** (from the prior cache; never its images: the network sees only
the current frame's images), its cameras' intrinsics and its cameras' poses **in the current
frame's ego frame**::

    T_cur_ego_from_nbr_cam = inv(T_global_from_ego_cur) @ T_global_from_ego_nbr @ T_ego_from_cam_nbr

(the global part in float64). Fields (``T`` offsets, ``N`` cameras):

- ``temporal_features (T, N, D, h, w)`` float16, as the cache stores them (T frames of features
  in float32 would double the loader's memory); the cache's ``feature_stride``;
- ``temporal_intrinsics (T, N, 3, 3)`` float32, of the **unaugmented** ``temporal_image_hw``
  images: neighbour cameras are never augmented (image or BEV resize/crop/flip leaves these
  fields alone, except that a BEV transform ``A`` maps ``temporal_T_ego_from_cam`` to
  ``A @ T`` with the rest of the ego frame);
- ``temporal_T_ego_from_cam (T, N, 4, 4)`` float32;
- ``temporal_offsets (T,)`` long: the offsets actually used (see below);
- ``temporal_image_hw``: ``(H, W)`` of the neighbour images (the current frame's size before
  augmentation; the cache is made at one image size);
- ``temporal_T_ego_from_ego (T, 4, 4)`` float32: ``inv(T_global_from_ego_cur) @ T_global_from_ego_nbr``,
  each neighbour's ego frame in the current one (a BEV transform ``A`` maps it to ``A @ T``);
- ``temporal_lidar``: a list of ``T`` tensors ``(P_t, 4)``, each neighbour's own key-frame LiDAR
  in **its own** ego frame (LangOcc's released rays: each keyframe's pixels are where its own
  LiDAR points project, filtered by its own grid box), only when the frames carry LiDAR: here the
  synthetic extras (``extras/.../lidar.npz``, when the dataset loads extras and the frame has
  LiDAR); on real Occ3D-nuScenes :class:`occkit.data.lidar_sweeps.WithLidarSweeps` fills it from
  ``data.lidar_infos``. None otherwise.

With ``gather="lidar_pixels"`` (``langocc.temporal_gather``, for the released rays: ``ray_pixels:
lidar``, ``ray_lidar: own``) the neighbours' features are gathered where their rays can start
instead of shipped whole: ``temporal_features`` and ``temporal_lidar`` stay None and

- ``temporal_pixels``: a list of ``T`` tensors ``(P_t, 3)`` long ``(cam, row, col)``: the pixels
  of neighbour ``t``'s cameras its own LiDAR points project to, after the grid-box test (in its
  own ego frame) and the depth filter: :func:`occkit.geometry.camera.lidar_pixels` on the
  sample's own float32 ``temporal_*`` matrices, the call the training step makes with ``maps``;
- ``temporal_pixel_features``: a list of ``T`` tensors ``(P_t, D)`` float16: the features there,
  sampled as :func:`occkit.rendering.rays.sample_feature_map` samples them (bilinear, float32),
  then stored in float16, the cache's own precision (float32 would double them).

A keyframe's pool does not depend on the current frame; a keyframe repeated by the clamping
shares its tensors.

Scene ends: an offset past the scene's first or last keyframe is **clamped** to the farthest
existing keyframe in that direction (the current frame itself, offset 0, at the scene's first
frame for a negative offset), so every frame has ``T`` entries and batches keep their shapes;
``temporal_offsets`` records what was used. Repeated frames (several offsets clamped to one) are
repeated, so they weigh more in the rays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch.utils.data import Dataset

from occkit.data.layout_files import existing, one_of, read_arrays
from occkit.data.sample import Sample
from occkit.data.wrappers import FrameWrapper
from occkit.geometry.transforms import invert_transform

if TYPE_CHECKING:
    from occkit.geometry.grid import Grid


class FeatureCache(Protocol):
    """What :class:`WithTemporalPriors` reads of a prior cache (:class:`occkit.priors.cache.PriorCache`,
    a layer above the data, hands itself in): its folder, the kinds it reads, its features' stride,
    whether it holds a frame, and a frame's maps."""

    root: Path
    kinds: Sequence[str]
    feature_stride: int

    def has(self, scene: str, token: str) -> bool: ...

    def load(
        self, scene: str, token: str, cam_names: Sequence[str], image_hw: tuple[int, int], dtype: torch.dtype = ...
    ) -> dict[str, torch.Tensor]: ...


def scene_neighbours(ds: Any, token: str, step: int, count: int) -> list[str]:
    """The tokens ``1 .. count`` keyframes away from ``token`` in direction ``step`` (-1 earlier,
    +1 later), following the annotations' ``prev`` / ``next`` links; shorter at the scene's ends
    (an empty or absent link ends the walk).

    Args:
        ds: an :class:`~occkit.data.occ3d.Occ3DDataset` (``info(token)`` gives the raw entry).
    """
    key = "prev" if one_of(step, (-1, 1), "step") < 0 else "next"
    out: list[str] = []
    while len(out) < count:
        token = ds.info(token).get(key) or ""
        if not token:
            break
        out.append(token)
    return out


def check_offsets(offsets: Sequence[int], where: str = "langocc.temporal_offsets") -> tuple[int, ...]:
    """Offsets as a tuple of distinct non-zero integers (else ``ValueError`` naming ``where``)."""
    out = tuple(offsets)
    for o in out:
        if isinstance(o, bool) or not isinstance(o, int):
            raise ValueError(f"{where}: expected integers, got {o!r}")
    if 0 in out:
        raise ValueError(f"{where}: 0 is the current frame itself, not a neighbour: {list(out)}")
    if len(set(out)) != len(out):
        raise ValueError(f"{where}: repeated offsets {list(out)}")
    return out


class WithTemporalPriors(FrameWrapper):
    """Frames of ``dataset`` with the 2D prior features and cameras of the keyframes at
    ``offsets`` (fields and scene-end rule: the module docstring).

    Wrap below the augmentation (:class:`occkit.experiment.AugmentedFrames`): the poses are
    composed from the dataset's, and the image size read from the unaugmented images.

    Args:
        dataset: yields :class:`Sample` of an :class:`~occkit.data.occ3d.Occ3DDataset`
            (Occ3D-nuScenes layout: the scenes' ``prev`` / ``next`` links).
        cache: the prior cache with ``features`` (every neighbour must be in it).
        offsets: keyframe offsets, distinct and non-zero (e.g. ``[-2, -1, 1, 2]``).
        gather: ``maps`` (the whole feature maps) or ``lidar_pixels`` (gathered at each
            neighbour's own LiDAR pixels; the module docstring).
        box, depth_range: ``lidar_pixels``: the filters of
            :func:`occkit.geometry.camera.lidar_pixels` (``langocc.ray_box``: the output grid;
            ``langocc.ray_depth``).
        lidar_of: ``lidar_pixels``: a keyframe token's own LiDAR ``(P, 4)`` in its ego frame; None
            = the synthetic extras (:func:`extras_lidar`; the frame's own ``lidar`` for itself).
    """

    def __init__(
        self,
        dataset: Dataset,
        cache: FeatureCache,
        offsets: Sequence[int],
        *,
        gather: str = "maps",
        box: Grid | None = None,
        depth_range: tuple[float, float] | None = None,
        lidar_of: Callable[[str], torch.Tensor] | None = None,
    ) -> None:
        from occkit.data.occ3d import Occ3DDataset

        one_of(gather, ("maps", "lidar_pixels"), "langocc.temporal_gather")
        self.gather, self.box, self.depth_range, self.lidar_of = gather, box, depth_range, lidar_of
        self.offsets = check_offsets(offsets)
        if not self.offsets:
            raise ValueError("langocc.temporal_offsets: empty (no neighbour to attach)")
        if "features" not in cache.kinds:
            raise ValueError(
                f"{cache.root}: temporal rays read the neighbours' 2D features; the cache is read for kinds "
                f"{list(cache.kinds)} (data.prior_kinds must include features)"
            )
        self.dataset, self.cache = dataset, cache
        if not isinstance(self._base(), Occ3DDataset):
            raise ValueError(
                f"langocc.temporal_offsets: neighbouring keyframes need the Occ3D-nuScenes layout "
                f"(prev/next links), got {type(self._base()).__name__}"
            )
        self._back = max([-o for o in self.offsets if o < 0], default=0)
        self._ahead = max([o for o in self.offsets if o > 0], default=0)

    def __getitem__(self, i: int) -> Sample:
        s: Sample = self.dataset[i]
        ds = self._base()
        H, W = (int(v) for v in s.images.shape[-2:])
        if H == 0 or W == 0:
            raise ValueError(f"frame {s.token}: no images loaded; temporal priors need the image size")
        T_ego_from_global = invert_transform(ds.T_global_from_ego(s.token))  # (4, 4) float64
        chains = {-1: scene_neighbours(ds, s.token, -1, self._back), 1: scene_neighbours(ds, s.token, 1, self._ahead)}
        loaded: dict[str, tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        with_lidar = s.lidar is not None and bool(getattr(ds, "load_extras", False))
        gathering = self.gather == "lidar_pixels"
        if gathering and not with_lidar and self.lidar_of is None:
            raise ValueError(
                f"frame {s.token}: langocc.temporal_gather='lidar_pixels' needs each keyframe's own LiDAR "
                "(data.load_extras: true on the synthetic world, or data.lidar_infos)"
            )
        lidars: dict[str, torch.Tensor] = {}
        gathered: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        stride = self.cache.feature_stride
        feats, Ks, Ts, Es, used, nbr_tokens = [], [], [], [], [], []
        for o in self.offsets:
            sign = 1 if o > 0 else -1
            chain = chains[sign]
            k = min(abs(o), len(chain))  # clamped at the scene's ends
            token = chain[k - 1] if k else s.token
            used.append(sign * k)
            if token not in loaded:
                f16: torch.Tensor | None
                f16, K, T, T_cur_from_nbr = self._load_keyframe(s, ds, token, o, T_ego_from_global, (H, W))
                if gathering:
                    pts = self.lidar_of(token) if self.lidar_of is not None else _keyframe_lidar(s, ds, token)
                    gathered[token] = self._gather(
                        pts, f16, K, T, T_cur_from_nbr, (H, W), s.prior_feature_stride or stride
                    )
                    f16 = None  # the map is not kept
                elif with_lidar:
                    lidars[token] = _keyframe_lidar(s, ds, token)
                loaded[token] = (f16, K, T, T_cur_from_nbr)
            f, K, T, E = loaded[token]
            feats.append(f)
            Ks.append(K)
            Ts.append(T)
            Es.append(E)
            nbr_tokens.append(token)
        if gathering:
            s.temporal_pixels = [gathered[t][0] for t in nbr_tokens]
            s.temporal_pixel_features = [gathered[t][1] for t in nbr_tokens]
        else:
            s.temporal_features = torch.stack(feats)  # (T, N, D, h, w)
        s.temporal_intrinsics = torch.stack(Ks)  # (T, N, 3, 3)
        s.temporal_T_ego_from_cam = torch.stack(Ts)  # (T, N, 4, 4)
        s.temporal_offsets = torch.tensor(used, dtype=torch.long)
        s.temporal_image_hw = (H, W)
        s.temporal_T_ego_from_ego = torch.stack(Es)  # (T, 4, 4)
        s.temporal_lidar = [lidars[t] for t in nbr_tokens] if with_lidar and not gathering else None
        return s

    def _load_keyframe(
        self, s: Sample, ds: Any, token: str, o: int, T_ego_from_global: torch.Tensor, image_hw: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The offset ``o`` keyframe ``token`` of frame ``s``: its float16 feature maps ``(N, D, h, w)``,
        float32 intrinsics ``(N, 3, 3)``, cameras' poses ``(N, 4, 4)`` and ego pose ``(4, 4)`` in the
        current frame's ego frame."""
        if not self.cache.has(s.scene, token):
            raise ValueError(
                f"{self.cache.root}: no features of frame {s.scene}/{token}, the offset {o} neighbour of "
                f"{s.token} (langocc.temporal_offsets needs every frame of the scenes in the cache)"
            )
        f = self.cache.load(s.scene, token, s.cam_names, image_hw, torch.float16)["prior_features"]  # (N, D, h, w)
        K = torch.stack([ds.intrinsics(token, c) for c in s.cam_names]).float()  # (N, 3, 3)
        T_cur_from_nbr = T_ego_from_global @ ds.T_global_from_ego(token)  # (4, 4) float64
        T = T_cur_from_nbr @ torch.stack([ds.T_ego_from_cam(token, c) for c in s.cam_names])  # (N, 4, 4)
        f16 = f.half()  # as stored (float32 caches rounded)
        return f16, K, T.float(), T_cur_from_nbr.float()

    def _gather(
        self,
        lidar: torch.Tensor,
        features: torch.Tensor,
        K: torch.Tensor,
        T: torch.Tensor,
        T_cur_from_nbr: torch.Tensor,
        image_hw: tuple[int, int],
        stride: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One keyframe's ``(P, 3)`` pixel pool and ``(P, D)`` float16 features there."""
        from occkit.geometry.camera import lidar_pixels
        from occkit.rendering.rays import sample_feature_pixels

        if stride < 1:
            raise ValueError(f"{self.cache.root}: no feature_stride in its prior.json (temporal_gather: lidar_pixels)")
        px = lidar_pixels(
            lidar,
            K,
            T,
            image_hw[0],
            image_hw[1],
            box=self.box,
            depth_range=self.depth_range,
            T_ego_from_points=T_cur_from_nbr,
        )
        return px, sample_feature_pixels(features, px, stride).half()


def extras_lidar(ds: Any, token: str) -> torch.Tensor:
    """A synthetic frame's own LiDAR ``(P, 4)`` float32 in its ego frame (``extras/.../lidar.npz``)."""
    path = existing(ds.extras_dir(token) / "lidar.npz", f"file (keyframe {token}'s own LiDAR: the temporal rays')")
    return torch.from_numpy(read_arrays(path, {"points": "* P 4"})["points"].astype("float32"))


def _keyframe_lidar(s: Sample, ds: Any, token: str) -> torch.Tensor:
    """Keyframe ``token``'s own LiDAR: frame ``s``'s own for itself, else the synthetic extras'."""
    return s.lidar if token == s.token else extras_lidar(ds, token)


def neighbour_tokens(ds: Any, token: str, offsets: Sequence[int]) -> list[str]:
    """The keyframe tokens at ``offsets`` (as recorded in ``temporal_offsets``: already clamped, so
    each exists; 0 = ``token`` itself)."""
    out = []
    for o in offsets:
        o = int(o)
        if o == 0:
            out.append(token)
            continue
        chain = scene_neighbours(ds, token, 1 if o > 0 else -1, abs(o))
        if len(chain) < abs(o):
            raise ValueError(f"frame {token}: no keyframe at offset {o} (offsets must be clamped to the scene)")
        out.append(chain[-1])
    return out
