import gzip

import numpy as np
import pytest

from datagen import idx_bytes, make_idx_dir, write_idx
from layerlab.data.formats.idx import load_idx_dir, read_idx
from layerlab.errors import DataError


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("shape", [(5,), (3, 4, 6), (2, 28, 28)])
def test_read_idx_roundtrip(tmp_path, gz, shape):
    arr = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    out = read_idx(write_idx(tmp_path / "a.idx", arr, gz))
    assert out.shape == shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, arr)


def test_read_idx_big_endian_int32(tmp_path):
    arr = np.array([[1, -2], [70000, 3]], dtype=">i4")
    data = bytes([0, 0, 0x0C, 2]) + (2).to_bytes(4, "big") * 2 + arr.tobytes()
    (tmp_path / "i.idx").write_bytes(data)
    np.testing.assert_array_equal(read_idx(tmp_path / "i.idx"), arr.astype(np.int32))


def test_truncated_payload(tmp_path):
    data = idx_bytes(np.zeros((4, 28, 28)))
    (tmp_path / "t.idx").write_bytes(data[:-10])
    with pytest.raises(DataError, match=r"t\.idx: truncated.*\(4, 28, 28\)"):
        read_idx(tmp_path / "t.idx")


def test_truncated_header(tmp_path):
    (tmp_path / "h.idx").write_bytes(idx_bytes(np.zeros((4, 28, 28)))[:9])
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(tmp_path / "h.idx")


def test_trailing_bytes(tmp_path):
    (tmp_path / "x.idx").write_bytes(idx_bytes(np.zeros((2, 3))) + b"\0")
    with pytest.raises(DataError, match="trailing bytes"):
        read_idx(tmp_path / "x.idx")


@pytest.mark.parametrize("magic", [b"\x00\x01\x08\x03", b"\x00\x00\x07\x03", b"\x00\x00\x08\x00", b"PK\x03\x04"])
def test_wrong_magic(tmp_path, magic):
    (tmp_path / "m.idx").write_bytes(magic + b"\0" * 64)
    with pytest.raises(DataError, match=r"m\.idx: not an IDX file"):
        read_idx(tmp_path / "m.idx")


def test_corrupt_gzip(tmp_path):
    good = gzip.compress(idx_bytes(np.zeros((10, 28, 28))))
    (tmp_path / "c.gz").write_bytes(good[:40])
    with pytest.raises(DataError, match="corrupt gzip"):
        read_idx(tmp_path / "c.gz")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "nope.idx")


def test_idx_dir_loads_as_normalised_tensors(tmp_path):
    d = make_idx_dir(tmp_path / "d", n_train=30, n_test=10, gz=False)
    ds = load_idx_dir(d, "bars")
    assert ds.train.x.shape == (30, 1, 28, 28) and ds.test.x.shape == (10, 1, 28, 28)
    assert ds.train.x.dtype.is_floating_point and 0.0 <= float(ds.train.x.min()) and float(ds.train.x.max()) == 1.0
    assert ds.train.y.dtype.is_signed and ds.num_outputs == 10


def test_label_image_count_mismatch(tmp_path):
    d = make_idx_dir(tmp_path / "d", n_train=30, n_test=10)
    write_idx(d / "train-labels-idx1-ubyte.gz", np.zeros(29), gz=True)
    with pytest.raises(DataError, match="train images and labels disagree: 30 images, 29 labels"):
        load_idx_dir(d, "bars")


def test_labels_with_image_shape_rejected(tmp_path):
    d = make_idx_dir(tmp_path / "d", n_train=30, n_test=10)
    write_idx(d / "t10k-labels-idx1-ubyte.gz", np.zeros((10, 2)), gz=True)
    with pytest.raises(DataError, match=r"expected labels of shape \(N,\)"):
        load_idx_dir(d, "bars")
