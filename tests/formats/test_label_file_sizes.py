"""Labels in the released layouts at the size of the data (issue 79): SurroundOcc rows as uint8,
nuScenes-Occupancy rows as uint16 (the smallest types the released loaders and occkit's readers take),
read back identically; an Occ3D frame converted to OpenOccupancy, mostly ignored voxels, was 222 MB."""

from __future__ import annotations

import numpy as np

from occkit.data.openoccupancy import OPENOCC_SHAPE, read_openoccupancy_label, write_openoccupancy_label
from occkit.data.surroundocc import SURROUNDOCC_SHAPE, read_surroundocc_label, write_surroundocc_label


def test_an_all_ignored_surroundocc_frame_is_4_bytes_a_voxel_and_reads_back(tmp_path):
    dense = np.full(SURROUNDOCC_SHAPE, 255, np.uint8)  # nothing of the source covers the grid
    dense[:5, :5, :5] = 7
    path = write_surroundocc_label(tmp_path / "x.pcd.bin.npy", dense)
    rows = np.load(path)
    assert rows.dtype == np.uint8 and path.stat().st_size < rows.size + 200  # was 8 bytes a value (int64)
    assert int(rows[:, :3].max()) == 199  # the largest index fits
    assert np.array_equal(read_surroundocc_label(path), dense)
    # the released loader: np.load(...).astype(np.float32), class 0 -> 255
    occ = np.load(path).astype(np.float32)
    occ[..., 3][occ[..., 3] == 0] = 255
    assert occ[:, 3].max() == 255 and (occ[:, 3] == 7).sum() == 125


def test_openoccupancy_rows_are_uint16_and_the_released_loaders_in_place_255_fits(tmp_path):
    dense = np.zeros(OPENOCC_SHAPE, np.uint8)
    dense[511, 511, 39] = 16
    dense[0, 300, 2] = 255
    path = write_openoccupancy_label(tmp_path / "t.npy", dense)
    pcd = np.load(path)
    assert pcd.dtype == np.uint16 and path.stat().st_size < pcd.size * 2 + 200
    assert np.array_equal(read_openoccupancy_label(path), dense)
    label = pcd[..., -1:]
    label[label == 0] = 255  # the released loader, in place in the file's dtype
    assert sorted(label.ravel().tolist()) == [16, 255] and pcd[:, :3].max() == 511


def test_an_openoccupancy_label_of_8_bit_integers_is_refused_naming_it(tmp_path):
    import pytest

    rows = np.array([[1, 2, 3, 4], [39, 255, 255, 7]], np.uint8)  # an x of 300 would have wrapped to 44
    np.save(tmp_path / "u8.npy", rows)
    with pytest.raises(
        ValueError,
        match=r"u8\.npy: dtype uint8, which cannot hold the nuScenes-Occupancy label files. voxel indices up to 511",
    ):
        read_openoccupancy_label(tmp_path / "u8.npy")  # was: read as a valid label
    np.save(tmp_path / "u16.npy", rows.astype(np.uint16))
    assert read_openoccupancy_label(tmp_path / "u16.npy")[3, 2, 1] == 4
