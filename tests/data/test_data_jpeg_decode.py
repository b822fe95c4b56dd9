"""occkit decodes JPEGs with torchvision's libjpeg-turbo: the same pixels as Pillow, and a
corrupt file refused naming it."""

import numpy as np
import pytest
from PIL import Image

from occkit.data.occ3d import load_image


def _pil(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize("mode,subsampling", [("RGB", 0), ("RGB", 2), ("L", 0), ("CMYK", 0)])
def test_same_pixels_as_pillow(tmp_path, mode, subsampling):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:90, 0:160]
    base = np.stack([xx * 1.5, yy * 2.5, (xx + yy) % 255], -1) + rng.normal(0, 20, (90, 160, 3))
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).convert(mode)
    path = tmp_path / "a.jpg"
    img.save(path, quality=90, subsampling=subsampling)
    got = load_image(path)
    assert got.dtype == np.uint8 and got.shape == (90, 160, 3)
    if mode == "CMYK":  # Adobe's inverted CMYK: decoders may round the conversion differently
        assert np.abs(got.astype(int) - _pil(path).astype(int)).max() <= 2
    else:
        assert np.array_equal(got, _pil(path))


def test_corrupt_and_truncated_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    with pytest.raises(ValueError, match="bad.jpg: cannot decode image"):
        load_image(bad)
    good = tmp_path / "good.jpg"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 100).save(good)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="cut.jpg: cannot decode image"):
        load_image(cut)
    with pytest.raises(FileNotFoundError, match="missing.jpg: image not found"):
        load_image(tmp_path / "missing.jpg")
