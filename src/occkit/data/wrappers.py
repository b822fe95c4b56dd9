"""What lies under a stack of dataset wrappers.

A dataset the engine reads is often a frame dataset wrapped several times (priors attached,
temporal neighbours, LiDAR sweeps, augmentation); each wrapper keeps the one it wraps at
``.dataset``. :func:`base_dataset` walks down to the frame dataset, whose tokens, scenes, poses and
grid the wrappers (and the trainers) need. It lives here, beside the wrappers, so that ``data/``
never reaches up into the composition root (``occkit.experiment``, which re-exports it).
"""

from __future__ import annotations

from torch.utils.data import ConcatDataset, Dataset

from occkit.data.nyu import NYUDataset
from occkit.data.occ3d import Occ3DDataset
from occkit.data.semantickitti import SemanticKITTIDataset


def base_dataset(ds: Dataset) -> Occ3DDataset:
    """The :class:`Occ3DDataset` (or ``SemanticKITTIDataset``, ``NYUDataset``) under any wrappers
    (for tokens, scenes and poses); ``TypeError`` naming the outermost class that wraps none."""
    while not isinstance(ds, (Occ3DDataset, SemanticKITTIDataset, NYUDataset)):
        inner = getattr(ds, "dataset", None)
        if inner is None:
            raise TypeError(f"{type(ds).__name__} does not wrap an Occ3DDataset")
        ds = inner
    return ds


class FrameWrapper(Dataset):
    """A wrapper of the frames at ``.dataset`` (set by the subclass): their number, and
    :meth:`_base` the frame dataset under every wrapper."""

    dataset: Dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def _base(self) -> Occ3DDataset:
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
