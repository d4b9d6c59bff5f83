"""One rule for integer pixels wherever they come from: image files, IDX files, the arrays of an
``.npz`` or of ``fit()``, ``.npy`` files to predict on (tests/export/test_onnx_predict.py checks both
predict paths): an integer type divided by the largest value of its type, wider types refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from datagen import bar_images
from layerlab.data import load_dataset
from layerlab.data.arrays import dataset_from_arrays
from layerlab.errors import DataError
from layerlab.readers import PIXEL_TYPES, read_image, scale_pixels


def _one_sentence(e, *parts):
    msg = str(e.value)
    assert "\n" not in msg and msg.count(". ") == 0, msg
    for p in parts:
        assert p in msg, msg


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(st.sampled_from(PIXEL_TYPES), hnp.array_shapes(max_dims=3, max_side=4)))
def test_integer_pixels_divided_by_the_largest_value_of_their_type(a):
    x, note = scale_pixels(a, "x")
    top = np.iinfo(a.dtype).max
    assert x.dtype == np.float32 and note == f"{a.dtype.name} pixels divided by {top}"
    np.testing.assert_array_equal(x, a.astype(np.float32) / np.float32(top))
    assert (x <= 1).all() and (x >= -1.0 - 1 / top).all()


@pytest.mark.parametrize("dtype", [np.int64, np.uint32, np.uint64])
def test_wider_integer_pixels_are_refused_in_one_sentence(dtype):
    with pytest.raises(DataError) as e:
        scale_pixels(np.ones((2, 3), dtype=dtype), "pixels.npy")
    _one_sentence(e, "pixels.npy", np.dtype(dtype).name, "uint8 pixels (0..255), uint16 (0..65535)")


def test_floats_as_they_are_and_finite():
    x, note = scale_pixels(np.array([0.5, 300.0]), "x")
    assert note is None and x.tolist() == [0.5, 300.0]
    with pytest.raises(DataError) as e:
        scale_pixels(np.array([[0.5, np.inf]]), "f.npy")
    _one_sentence(e, "f.npy", "(0, 1)")


def _npz(path, x_train, x_test):
    y = np.arange(len(x_train)) % 2
    np.savez(path, x_train=x_train, y_train=y, x_test=x_test, y_test=y[: len(x_test)])
    return path


def test_npz_images_uint16_scaled_like_uint8(tmp_path):
    x, _ = bar_images(8, np.random.default_rng(0), size=6)
    x = x[:, None]
    u8 = load_dataset(str(_npz(tmp_path / "u8.npz", x, x)))
    u16 = load_dataset(str(_npz(tmp_path / "u16.npz", x.astype(np.uint16) * 257, x.astype(np.uint16) * 257)))
    assert float(u16.train.x.max()) <= 1.0  # before: 65535.0, taken as it was
    np.testing.assert_allclose(u16.train.x.numpy(), u8.train.x.numpy(), atol=1e-6)


@pytest.mark.parametrize("dtype", [np.int64, np.uint32])
def test_npz_images_of_wide_integers_refused(tmp_path, dtype):
    x = np.ones((4, 1, 3, 3), dtype=dtype)
    p = _npz(tmp_path / "wide.npz", x, x)
    with pytest.raises(DataError) as e:
        load_dataset(str(p))
    _one_sentence(e, "wide.npz", "x_train", np.dtype(dtype).name)


def test_fit_arrays_follow_the_same_rule():
    x, y = bar_images(8, np.random.default_rng(0), size=6)
    u8 = dataset_from_arrays(x, y)
    u16 = dataset_from_arrays(x.astype(np.uint16) * 257, y)  # refused before: fit took uint8 only
    np.testing.assert_allclose(u16.train.x.numpy(), u8.train.x.numpy(), atol=1e-6)
    np.testing.assert_array_equal(u8.train.x.numpy()[:, 0], scale_pixels(x, "x")[0])
    with pytest.raises(DataError) as e:
        dataset_from_arrays(x.astype(np.int64), y)
    _one_sentence(e, "int64", "uint8 pixels (0..255)")


def test_image_files_use_the_rule(tmp_path):
    from PIL import Image

    a = (np.arange(16, dtype=np.uint16) * 4000).reshape(4, 4)
    Image.fromarray(a).save(tmp_path / "g16.png")
    x, _ = read_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(x[0], scale_pixels(a, "a")[0])
    b = (np.arange(16, dtype=np.uint8) * 16).reshape(4, 4)
    Image.fromarray(b).save(tmp_path / "g8.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g8.png")[0][0], scale_pixels(b, "b")[0])
