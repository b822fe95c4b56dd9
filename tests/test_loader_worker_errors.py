"""An error a data loader worker raises reaches the user as its own one line, not torch's
re-raised message with the worker's traceback inside (found by the full-size rehearsal: a
``-occ3d`` teacher preset on the synthetic world without ``data.load_extras``)."""

import pytest
from torch.utils.data import DataLoader, Dataset

from occkit.cli import user_error_message


class _Refuses(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int):
        raise ValueError(
            f"data.lidar_sweeps > 1: frame tok{i} has no LiDAR (data.load_extras: true on the synthetic world)"
        )


def test_a_worker_error_is_its_own_line():
    loader = DataLoader(_Refuses(), batch_size=1, num_workers=1)
    with pytest.raises(ValueError) as info:
        next(iter(loader))
    assert "Original Traceback" in str(info.value)  # what torch hands the main process
    msg = user_error_message(info.value)
    assert msg == (
        "data.lidar_sweeps > 1: frame tok0 has no LiDAR (data.load_extras: true on the synthetic world) "
        "(in a data loader worker)"
    )
    assert "\n" not in msg


def test_other_messages_are_unchanged():
    assert user_error_message(ValueError("Caught nothing")) == "Caught nothing"
