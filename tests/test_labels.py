import numpy as np

from occkit import labels


def test_occ3d_tables_agree():
    assert len(labels.OCC3D_CLASSES) == labels.OCC3D_NUM_CLASSES == len(labels.OCC3D_PALETTE) == 18
    assert labels.OCC3D_CLASSES[labels.OCC3D_FREE] == "free"
    assert labels.OCC3D_CLASSES[11] == "driveable_surface"
    assert labels.palette_array().shape == (18, 3)


def test_semantickitti_completion_lut():
    lut = labels.semantickitti_remap_lut(for_completion=True)
    assert lut[0] == 0  # empty stays empty
    assert lut[1] == 255  # outlier -> unlabeled -> ignored in SSC evaluation
    assert lut[52] == 255 and lut[99] == 255
    assert lut[10] == 1 and lut[252] == 1 and lut[81] == 19
    assert lut[5] == 255  # an id that maps to nothing
    plain = labels.semantickitti_remap_lut(for_completion=False)
    assert plain[1] == 0


def test_semantickitti_inverse_round_trip():
    lut = labels.semantickitti_remap_lut(for_completion=True)
    inv = labels.semantickitti_inverse_lut()
    assert inv.dtype == np.uint16
    assert np.array_equal(lut[inv], np.arange(20))
