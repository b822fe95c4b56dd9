"""What lies under a stack of dataset wrappers.

A dataset the engine reads is often a frame dataset wrapped several times (priors attached,
temporal neighbours, LiDAR sweeps, augmentation); each wrapper keeps the one it wraps at
``.dataset``. :func:`base_dataset` walks down to the frame dataset, whose tokens, scenes, poses and
grid the wrappers (and the trainers) need. It lives here, beside the wrappers, so that ``data/``
never reaches up into the composition root (``occkit.experiment``, which re-exports it).
"""

from __future__ import annotations

from torch.utils.data import Dataset

from occkit.data.occ3d import Occ3DDataset
from occkit.data.semantickitti import SemanticKITTIDataset


def base_dataset(ds: Dataset) -> Occ3DDataset:
    """The :class:`Occ3DDataset` (or ``SemanticKITTIDataset``) under any wrappers (for tokens,
    scenes and poses); ``TypeError`` naming the outermost class that wraps neither."""
    while not isinstance(ds, (Occ3DDataset, SemanticKITTIDataset)):
        inner = getattr(ds, "dataset", None)
        if inner is None:
            raise TypeError(f"{type(ds).__name__} does not wrap an Occ3DDataset")
        ds = inner
    return ds
