"""Property tests of the hand-written parsers (IDX, UCR/UEA .ts, UCR-style CSV): what a writer
writes reads back exactly, and any damaged or arbitrary input is a DataError of one sentence
naming the file, never another exception."""

import csv
import gzip
import io
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from datagen import ts_text
from layerlab.data.formats.idx import read_idx
from layerlab.data.formats.tabular import read_csv_sequences
from layerlab.data.formats.ts import read_ts
from layerlab.errors import DataError

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
