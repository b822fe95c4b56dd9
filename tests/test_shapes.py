import pytest
import torch

from occkit.shapes import check_shape


def test_binds_and_checks_named_axes():
    x = torch.zeros(2, 6, 3, 8, 16)
    assert check_shape(x, "B N 3 H W") == {"B": 2, "N": 6, "H": 8, "W": 16}
    with pytest.raises(ValueError, match=r"images: expected shape \(B N 3 H W\).*got \(2, 6, 4, 8, 16\)"):
        check_shape(torch.zeros(2, 6, 4, 8, 16), "B N 3 H W", name="images")


def test_repeated_axis_and_given_dims():
    check_shape(torch.zeros(4, 4), "N N")
    with pytest.raises(ValueError):
        check_shape(torch.zeros(4, 5), "N N")
    with pytest.raises(ValueError):
        check_shape(torch.zeros(4, 5), "N M", dims={"N": 3})


def test_ellipsis_and_wildcard():
    check_shape(torch.zeros(7, 2, 4, 4), "... 4 4")
    check_shape(torch.zeros(3, 9), "_ 9")
    with pytest.raises(ValueError):
        check_shape(torch.zeros(3), "... 4 4")
