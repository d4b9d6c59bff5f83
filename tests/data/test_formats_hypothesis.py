"""Property tests of every reader: the hand-written parsers (IDX, UCR/UEA .ts, UCR-style CSV), where
what a writer writes reads back exactly, and the readers built on libraries (CIFAR batches through
the allow-listing unpickler, image files through Pillow, NPY/NPZ through NumPy, text, the TOML
config): any damaged or arbitrary input is a DataError (ConfigError for the config) of one
sentence, never another exception."""

import csv
import gzip
import io
import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from datagen import ts_text
from layerlab.data.formats.folder import read_image
from layerlab.data.formats.idx import read_idx
from layerlab.data.formats.tabular import read_csv_sequences, read_sequence_file
from layerlab.data.formats.ts import read_ts
from layerlab.errors import DataError, LayerlabError

# one shared directory per test (hypothesis runs many examples per test; tmp_path is per test)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("formats")


def assert_one_sentence(err: DataError, path) -> None:
    msg = str(err)
    assert str(path) in msg and "\n" not in msg and msg.strip() == msg


# ----------------------------------------------------------------------------------------------
# IDX (the element types as the MNIST page lists them, all big-endian)
# ----------------------------------------------------------------------------------------------
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@st.composite
def idx_arrays(draw):
    code = draw(st.sampled_from(sorted(IDX_TYPES)))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5))
    return code, draw(hnp.arrays(np.dtype(IDX_TYPES[code]), shape))


GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"  # magic, deflate, no flags, mtime 0, OS unix


def idx_file(code: int, arr: np.ndarray) -> bytes:
    header = bytes([0, 0, code, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    return header + arr.astype(IDX_TYPES[code]).tobytes()


@SETTINGS
@given(idx_arrays(), st.booleans())
def test_idx_round_trip(workdir, case, gz):
    code, arr = case
    data = idx_file(code, arr)
    p = workdir / "a.idx"
    p.write_bytes(gzip.compress(data) if gz else data)
    out = read_idx(p)
    assert out.shape == arr.shape and out.dtype == arr.dtype.newbyteorder("=")
    np.testing.assert_array_equal(out, arr)  # NaN equals NaN here


@SETTINGS
@given(idx_arrays(), st.data())
def test_idx_truncated_or_padded_is_a_data_error(workdir, case, data):
    code, arr = case
    good = idx_file(code, arr)
    if data.draw(st.booleans()):
        bad = good[: data.draw(st.integers(0, len(good) - 1))]
    else:
        bad = good + data.draw(st.binary(min_size=1, max_size=16))
    p = workdir / "t.idx"
    p.write_bytes(bad)
    with pytest.raises(DataError) as e:
        read_idx(p)
    assert_one_sentence(e.value, p)


@SETTINGS
@given(
    st.one_of(
        st.binary(max_size=64),
        st.binary(max_size=64).map(lambda b: b"\x1f\x8b" + b),  # looks gzipped
        st.binary(max_size=64).map(lambda b: GZIP_HEADER + b),  # a damaged deflate stream
        st.binary(max_size=48).map(lambda b: gzip.compress(b)[: len(b) // 2 + 10]),
        st.tuples(st.sampled_from(sorted(IDX_TYPES)), st.integers(1, 4), st.binary(max_size=40)).map(
            lambda t: bytes([0, 0, t[0], t[1]]) + t[2]
        ),
    )
)  # a valid magic number
def test_idx_arbitrary_bytes_parse_or_raise_data_error(workdir, raw):
    p = workdir / "f.idx"
    p.write_bytes(raw)
    try:
        read_idx(p)
    except DataError as e:
        assert_one_sentence(e, p)


def test_idx_huge_declared_shape(tmp_path):
    """Four dimensions of 2**16 multiply to 2**64, which wraps to 0 in int64: still 'truncated'."""
    p = tmp_path / "big.idx"
    p.write_bytes(bytes([0, 0, 0x08, 4]) + (1 << 16).to_bytes(4, "big") * 4)
    with pytest.raises(DataError, match="truncated"):
        read_idx(p)


# ----------------------------------------------------------------------------------------------
# .ts: writer -> reader
# ----------------------------------------------------------------------------------------------
finite = st.floats(allow_nan=False, allow_infinity=False)
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789_-", min_size=1, max_size=6)


@st.composite
def ts_cases(draw):
    F = draw(st.integers(1, 3))
    n = draw(st.integers(1, 5))
    regression = draw(st.booleans())
    classes = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    series, labels = [], []
    for _ in range(n):
        T = draw(st.integers(1, 6))
        s = np.array(draw(st.lists(st.lists(finite, min_size=F, max_size=F), min_size=T, max_size=T)))
        missing = np.array(draw(st.lists(st.lists(st.booleans(), min_size=F, max_size=F), min_size=T, max_size=T)))
        missing[-1, draw(st.integers(0, F - 1))] = False  # the last step keeps a value, else it is trimmed
        series.append(np.where(missing, np.nan, s))
        labels.append(draw(finite) if regression else draw(st.sampled_from(classes)))
    return series, labels, classes, regression


@SETTINGS
@given(ts_cases())
def test_ts_round_trip(workdir, case):
    series, labels, classes, regression = case
    p = workdir / "Gen_TRAIN.ts"
    p.write_text(ts_text(series, labels, class_names=classes, regression=regression))
    ts = read_ts(p)
    assert ts.regression == regression and ts.problem == "Gen"
    assert ts.labels == labels and ts.class_names == (None if regression else classes)
    assert len(ts.series) == len(series)
    for got, want in zip(ts.series, series, strict=True):
        np.testing.assert_array_equal(got, want)


ts_pieces = st.sampled_from(
    [
        "@problemName X",
        "@timeStamps false",
        "@timeStamps maybe",
        "@classLabel true a b",
        "@classLabel false",
        "@classLabel",
        "@targetLabel true",
        "@dimensions 2",
        "@dimensions two",
        "@data",
        "1,2,3:a",
        "1,?,3:4,5:b",
        "?:?:a",
        ":",
        ",",
        "1.5",
        "nan",
        "x",
        "# comment",
        "",
        "@",
        "1,2:3,4",
        "1e999:a",
        "\t",
        "\r",
    ]
)


@SETTINGS
@given(st.one_of(st.lists(ts_pieces, max_size=12).map("\n".join), st.text(max_size=80)))
def test_ts_arbitrary_text_parses_or_raises_data_error(workdir, text):
    p = workdir / "Fuzz_TRAIN.ts"
    p.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        read_ts(p)
    except DataError as e:
        assert_one_sentence(e, p)


# ----------------------------------------------------------------------------------------------
# UCR-style CSV rows
# ----------------------------------------------------------------------------------------------
labels_text = st.text(alphabet=st.characters(whitelist_categories=("L", "N", "P", "S")), min_size=1, max_size=8)


@st.composite
def csv_rows(draw):
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        values = draw(st.lists(finite, min_size=1, max_size=8))
        missing = draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values)))
        missing[-1] = False  # trailing missing values shorten the sequence; keep the last
        rows.append((draw(labels_text), [math.nan if m else v for v, m in zip(values, missing, strict=True)]))
    return rows


@SETTINGS
@given(csv_rows(), st.sampled_from([",", "\t"]), st.sampled_from(["", "?"]))
def test_csv_rows_round_trip(workdir, rows, delim, blank):
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delim, lineterminator="\n")
    for label, values in rows:
        w.writerow([label] + [blank if math.isnan(v) else repr(v) for v in values])
    p = workdir / ("rows.tsv" if delim == "\t" else "rows.csv")
    p.write_text(buf.getvalue(), encoding="utf-8")
    seqs, labels = read_csv_sequences(p)
    assert labels == [label for label, _ in rows]
    for s, (_, values) in zip(seqs, rows, strict=True):
        np.testing.assert_array_equal(s[:, 0], values)
    unlabelled = workdir / "values.csv"
    unlabelled.write_text("".join(",".join(repr(v) for v in vals) + "\n" for _, vals in rows).replace("nan", ""))
    seqs, labels = read_csv_sequences(unlabelled, labelled=False)
    assert labels == [] and len(seqs) == len(rows)
    for s, (_, values) in zip(seqs, rows, strict=True):
        np.testing.assert_array_equal(s[:, 0], values)


def test_csv_header_row_is_skipped(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("label,t1,t2\na,1,2\nb,3,\n")
    seqs, labels = read_csv_sequences(p)
    assert labels == ["a", "b"] and [s[:, 0].tolist() for s in seqs] == [[1.0, 2.0], [3.0]]


csv_pieces = st.sampled_from(["1", "a", ",", "\t", "?", "", "\n", '"', "1e5", "nan", "-", " ", "x,1,2\n"])


@SETTINGS
@given(st.one_of(st.lists(csv_pieces, max_size=20).map("".join), st.text(max_size=60)), st.booleans())
def test_csv_arbitrary_text_parses_or_raises_data_error(workdir, text, labelled):
    p = workdir / "fuzz.csv"
    p.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        read_csv_sequences(p, labelled=labelled)
    except DataError as e:
        assert_one_sentence(e, p)


def test_csv_field_over_the_csv_modules_limit(tmp_path):
    p = tmp_path / "long.csv"
    p.write_text('a,"' + "1" * 200_000 + '"\n')
    with pytest.raises(DataError, match=r"long\.csv: not a readable CSV file"):
        read_csv_sequences(p)


def test_binary_files_are_data_errors(tmp_path):
    for reader, name in ((read_csv_sequences, "b.csv"), (read_ts, "b_TRAIN.ts")):
        p = tmp_path / name
        p.write_bytes(b"\xff\xfe\x00\x81")
        with pytest.raises(DataError, match="not a text file"):
            reader(p)
    with pytest.raises(DataError, match="cannot be read"):
        read_csv_sequences(tmp_path)  # a directory


# ----------------------------------------------------------------------------------------------
# Every other reader: CIFAR batches, image files, NPY/NPZ, text, the TOML config. Only a
# LayerlabError (DataError, ConfigError) may escape, whatever the bytes or values.
# ----------------------------------------------------------------------------------------------
FEW = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_layerlab_error(err: LayerlabError) -> None:
    msg = str(err)
    assert msg and "\n" not in msg and msg.strip() == msg


pickle_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-300, 300)
    | st.floats()
    | st.binary(max_size=8)
    | st.text(max_size=8)
    | hnp.arrays(st.sampled_from([np.uint8, np.int64, np.float32]), hnp.array_shapes(max_dims=2, max_side=4)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from([b"data", b"labels", "x"]), inner),
    max_leaves=8,
)


@st.composite
def cifar_bytes(draw):
    kind = draw(st.sampled_from(["pickle", "batch", "bytes", "truncated", "global"]))
    if kind == "batch":  # a batch-shaped dict with drawn contents
        n = draw(st.integers(0, 3))
        data = draw(st.one_of(hnp.arrays(np.uint8, (n, 3072)), pickle_values))
        labels = draw(st.one_of(st.lists(st.integers(-5, 20), min_size=n, max_size=n), pickle_values))
        return pickle.dumps({b"data": data, b"labels": labels}, protocol=draw(st.integers(2, 5)))
    if kind == "pickle":
        return pickle.dumps(draw(pickle_values), protocol=draw(st.integers(0, 5)))
    if kind == "truncated":
        raw = pickle.dumps(draw(pickle_values))
        return raw[: draw(st.integers(0, max(len(raw) - 1, 0)))]
    if kind == "global":  # anything but numpy is refused, never called
        return pickle.dumps(draw(st.sampled_from([print, len, OSError("x"), range(3), complex(1, 2)])))
    return draw(st.binary(max_size=64))


@FEW
@given(cifar_bytes())
def test_cifar_batch_parses_or_raises_data_error(workdir, raw):
    from layerlab.data.formats.cifar import _batch, unpickle

    p = workdir / "data_batch_1"
    p.write_bytes(raw)
    try:
        x, y = _batch(unpickle(raw, p), p)
        assert x.shape == (len(y), 3, 32, 32) and x.dtype == np.uint8 and (y >= 0).all()
    except DataError as e:
        assert_one_sentence(e, p)


@pytest.mark.slow
@FEW
@given(cifar_bytes(), st.lists(st.one_of(st.binary(max_size=6), st.text(max_size=6)), max_size=12))
def test_cifar_directory_loads_or_raises_data_error(workdir, raw, names):
    from layerlab.data.formats.cifar import load_cifar10_dir

    d = workdir / "cifar"
    d.mkdir(exist_ok=True)
    good = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
    for i in range(1, 6):
        (d / f"data_batch_{i}").write_bytes(good)
    (d / "test_batch").write_bytes(raw)
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    try:
        ds = load_cifar10_dir(d)
        assert len(ds.test) == 0 or int(ds.test.y.max()) < len(ds.classes)  # an empty split: catalog.load refuses it
    except DataError as e:
        assert_layerlab_error(e)


@st.composite
def image_bytes(draw):
    kind = draw(st.sampled_from(["random", "truncated", "mode", "header"]))
    if kind == "random":
        return draw(st.binary(max_size=200))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "LA", "I;16", "I", "F", "1", "P"]))
    dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}.get(mode, np.uint8)
    shape = {"RGB": (h, w, 3), "RGBA": (h, w, 4), "LA": (h, w, 2)}.get(mode, (h, w))
    elements = st.floats(-1e6, 1e6, width=32) if mode == "F" else None
    arr = draw(hnp.arrays(dtype, shape, elements=elements))
    if mode == "1":
        arr = arr > 127
    from PIL import Image

    buf = io.BytesIO()
    img = Image.fromarray(arr) if mode not in ("P", "LA") else Image.fromarray(arr).convert(mode)
    img.save(buf, format="TIFF" if mode in ("F", "I") else "PNG")
    raw = buf.getvalue()
    if kind == "truncated":
        return raw[: draw(st.integers(0, len(raw) - 1))]
    if kind == "header":  # a PNG claiming a huge size, or a flipped byte
        i = draw(st.integers(0, len(raw) - 1))
        return raw[:i] + bytes([raw[i] ^ draw(st.integers(1, 255))]) + raw[i + 1 :]
    return raw


@FEW
@given(image_bytes(), st.sampled_from([None, 1, 3]), st.sampled_from([None, (3, 5)]))
def test_read_image_parses_or_raises_data_error(workdir, raw, channels, size):
    from layerlab.data.formats.folder import read_image

    p = workdir / "img.png"
    p.write_bytes(raw)
    try:
        x, notes = read_image(p, channels, size)
    except DataError as e:
        assert_one_sentence(e, p)
    else:
        assert x.dtype == torch.float32 and x.ndim == 3 and torch.isfinite(x).all()
        assert channels is None or x.shape[0] == channels
        assert size is None or tuple(x.shape[1:]) == size
        assert isinstance(notes, list)


def test_read_image_huge_declared_size_is_a_data_error(tmp_path):
    """A PNG header declaring 100000 x 100000 pixels (10 gigapixels) is refused before decoding."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    p = tmp_path / "bomb.png"
    p.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )
    with pytest.raises(DataError, match=r"bomb\.png"):
        read_image(p)


@st.composite
def npy_arrays(draw):
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int16, np.uint8, np.bool_, "<U3", np.complex64]))
    return draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)))


@FEW
@given(st.one_of(npy_arrays(), st.binary(max_size=80)), st.integers(1, 3), st.sampled_from([None, 2, 3]))
def test_read_sequence_file_npy_parses_or_raises_data_error(workdir, content, features, length):
    p = workdir / "s.npy"
    if isinstance(content, bytes):
        p.write_bytes(b"\x93NUMPY" + content if content[:1] == b"\x00" else content)
    else:
        np.save(p, content)
    try:
        seqs, names, labels = read_sequence_file(p, features, length)
    except DataError as e:
        assert_one_sentence(e, p)
    else:
        assert len(seqs) == len(names) and labels == []
        assert all(s.ndim == 2 and s.shape[1] == features and len(s) and np.isfinite(s).all() for s in seqs)


@FEW
@given(st.one_of(st.lists(csv_pieces, max_size=20).map("".join), st.text(max_size=60)), st.integers(1, 3))
def test_read_sequence_file_csv_parses_or_raises_data_error(workdir, text, features):
    p = workdir / "s.csv"
    p.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        seqs, _, _ = read_sequence_file(p, features, 2)
    except DataError as e:
        assert_one_sentence(e, p)
    else:
        assert all(s.shape[1] == features and len(s) for s in seqs)


@st.composite
def npz_members(draw):
    members = {}
    for key in draw(st.lists(st.sampled_from(NPZ_KEYS), unique=True, max_size=len(NPZ_KEYS))):
        members[key] = draw(
            st.one_of(npy_arrays(), hnp.arrays(np.int64, st.integers(0, 4), elements=st.integers(-101, 4)))
        )
    return members


NPZ_KEYS = ["x_train", "y_train", "x_test", "y_test", "lengths_train", "lengths_test"]


@st.composite
def valid_npz(draw):
    """Mostly well-formed archives, with one thing drawn wrong now and then."""
    F = draw(st.integers(1, 2))
    T = draw(st.integers(1, 4))
    out = {}
    for part in ("train", "test"):
        n = draw(st.integers(0, 4))
        out[f"x_{part}"] = draw(hnp.arrays(np.float64, (n, T, F), elements=st.floats(allow_subnormal=False)))
        out[f"y_{part}"] = draw(
            st.one_of(
                hnp.arrays(np.int64, (n,), elements=st.integers(-2, 3)),
                hnp.arrays(np.float32, (n,), elements=st.floats(width=32)),
                hnp.arrays(np.int64, (n, T), elements=st.sampled_from([-100, -1, 0, 1, 2])),
            )
        )
        if draw(st.booleans()):
            out[f"lengths_{part}"] = draw(hnp.arrays(np.int64, (n,), elements=st.integers(-1, T + 1)))
    return out


@FEW
@given(st.one_of(valid_npz(), npz_members(), st.binary(max_size=80)))
def test_load_npz_loads_or_raises_data_error(workdir, content):
    from layerlab.fileformats.npz import load as load_npz

    p = workdir / "d.npz"
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        np.savez(p, **content)
    try:
        ds = load_npz(p)
    except DataError as e:
        assert_one_sentence(e, p)
    else:
        assert len(ds.train) and len(ds.test) and torch.isfinite(ds.train.x).all() and torch.isfinite(ds.test.x).all()


@FEW
@given(
    st.one_of(st.text(max_size=400), st.binary(max_size=200)),
    st.sampled_from([None, 1, 3, 50]),
    st.sampled_from([None, 1, 2]),
)
def test_load_text_loads_or_raises_data_error(workdir, content, length, n_train):
    from layerlab.data.formats.text import load_text, read_text

    p = workdir / "t.txt"
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8", errors="surrogatepass")
    try:
        text = read_text(p)
        ds = load_text(p, length=length, n_train=n_train)
    except DataError as e:
        assert_one_sentence(e, p)
    else:
        assert "\r\n" not in text and len(ds.train) >= 1 and len(ds.test) >= 1
        assert ds.train.x.shape[1] == (length or 100) and int(ds.train.x.max()) < ds.num_outputs


toml_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["adam", "sgd", "cpu", "cuda", "rows", "lstm", "article-cnn", "16,32"]),
    st.lists(st.integers(-3, 3), max_size=3),
)
config_dicts = st.dictionaries(
    st.sampled_from(["data", "model", "train", "other"]),
    st.one_of(
        st.dictionaries(
            st.sampled_from(
                ["name", "length", "n_train", "validation", "sequence", "hidden", "layers", "dropout", "channels"]
                + ["epochs", "batch_size", "lr", "optimizer", "seed", "device", "clip", "eps", "bogus"]
            ),
            toml_scalars,
            max_size=4,
        ),
        toml_scalars,
    ),
    max_size=4,
)


@FEW
@given(config_dicts)
def test_config_from_dict_builds_or_raises_config_error(d):
    from layerlab.config import RunConfig

    try:
        RunConfig.from_dict(d, "test.toml")
    except LayerlabError as e:
        assert_layerlab_error(e)


toml_pieces = st.sampled_from(
    [
        "[data]",
        "[model]",
        "[train]",
        "[other]",
        "name = 'x'",
        "epochs = 3",
        "lr = nan",
        "lr = inf",
        "seed = -1",
        "batch_size = 0",
        "= 1",
        "[data",
        "x = [1, 2",
        "hidden = 1e999",
        "'",
        '"',
        "\n",
        " ",
        "#",
    ]
)


@FEW
@given(st.one_of(st.lists(toml_pieces, max_size=10).map("\n".join), st.text(max_size=80), st.binary(max_size=40)))
def test_config_from_toml_parses_or_raises_config_error(workdir, content):
    from layerlab.config import RunConfig

    p = workdir / "c.toml"
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8", errors="surrogatepass")
    try:
        RunConfig.from_toml(p)
    except LayerlabError as e:
        assert_layerlab_error(e)


# ----------------------------------------------------------------------------------------------
# run.json: a hand-edited or truncated run record is one sentence, never a KeyError later
# ----------------------------------------------------------------------------------------------
GOOD_RECORD = {
    "status": "completed",
    "model": {"name": "article-cnn", "options": {}, "parameters": 34826},
    "dataset": {
        "name": "bars",
        "task": "classification",
        "classes": [str(i) for i in range(10)],
        "num_outputs": 10,
        "input_shape": [1, 28, 28],
    },
    "input_spec": {"kind": "image", "shape": [1, 28, 28], "head": "last", "pixel_scale": 1 / 255},
}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 40) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def run_records(draw):
    """A valid record with one field replaced, removed or nested away; or any JSON value."""
    if draw(st.booleans()):
        return draw(json_values)
    import copy as _copy

    rec = _copy.deepcopy(GOOD_RECORD)
    section = draw(st.sampled_from([None, "model", "dataset", "input_spec"]))
    target = rec if section is None else rec[section]
    key = draw(st.sampled_from(sorted(target)))
    if draw(st.booleans()):
        del target[key]
    else:
        target[key] = draw(json_values)
    return rec


@FEW
@given(run_records())
def test_run_json_reads_or_raises_one_sentence(workdir, record):
    import json

    from layerlab.rundir import RunDir

    run = workdir / "run"
    run.mkdir(exist_ok=True)
    (run / "run.json").write_text(json.dumps(record))
    try:
        RunDir(run).info()
        _ = RunDir(run).spec, RunDir(run).classes  # what every command after training reads first
    except LayerlabError as e:
        assert_layerlab_error(e)
