"""What lies under a stack of dataset wrappers.

A dataset the engine reads is often a frame dataset wrapped several times (priors attached,
temporal neighbours, LiDAR sweeps, augmentation); each wrapper keeps the one it wraps at
``.dataset``. :func:`base_dataset` walks down to the frame dataset, whose tokens, scenes, poses and
grid the wrappers (and the trainers) need. It lives here, beside the wrappers, so that ``data/``
never reaches up into the composition root (``occkit.experiment``, which re-exports it).
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import ConcatDataset, Dataset


def format_name_of(ds: object) -> str | None:
    """The ``format_name`` a frame dataset carries on itself or its class (not through delegation)."""
    name = vars(ds).get("format_name") if hasattr(ds, "__dict__") else None
    return name if isinstance(name, str) else getattr(type(ds), "format_name", None)


def base_dataset(ds: Dataset) -> Any:
    """The frame dataset of a dataset format (one that carries ``format_name``: opened by a
    format's ``open_split``, or of a class that sets it, as :class:`occkit.data.occ3d.Occ3DDataset`
    does) under any wrappers (for tokens, scenes and poses); ``TypeError`` naming the outermost class
    when none lies under it."""
    outer = ds
    while format_name_of(ds) is None:
        inner = getattr(ds, "dataset", None)
        if inner is None:
            raise TypeError(f"{type(outer).__name__} does not wrap the frames of a dataset format")
        ds = inner
    return ds


class FrameWrapper(Dataset):
    """A wrapper of the frames at ``.dataset`` (set by the subclass): their number, and
    :meth:`_base` the frame dataset under every wrapper."""

    dataset: Dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def _base(self) -> Any:
        return base_dataset(self.dataset)


class ConcatFrames(ConcatDataset):
    """``first``'s frames, then each of ``more``'s: one training set read from several datasets
    (torch's :class:`ConcatDataset`).

    ``.dataset`` is ``first``, so :func:`base_dataset` finds the main dataset (its tokens, scenes
    and grid), as for any other wrapper; the extra datasets only add frames.
    """

    def __init__(self, first: Dataset, more: list[Dataset]) -> None:
        super().__init__([first, *more])
        self.dataset, self.more = first, list(more)


class MeanColourImages(Dataset):
    """Each frame's camera images replaced by their own mean colour (per image and channel),
    everything else (labels, poses, masks) unchanged: a control that keeps a dataset's layouts
    and drops its appearance."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int):  # noqa: ANN204 - a Sample
        import dataclasses

        s = self.dataset[i]
        if s.images.shape[-1] == 0:
            return s
        mean = s.images.float().mean(dim=(-2, -1), keepdim=True).to(s.images.dtype)
        return dataclasses.replace(s, images=mean.expand_as(s.images).clone())
