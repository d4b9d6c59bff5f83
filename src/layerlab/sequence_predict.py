"""After training a recurrent model: predictions on sequence files, and sampling text.

- :func:`predict_sequence_files` reads ``.npy``, ``.csv``/``.tsv``, ``.ts`` and ``.txt`` files into
  the sequences the run was trained on (same standardisation, same padding rules), and returns one
  result per sequence: top-k classes, a regression value, or per-step classes.
- :func:`generate` samples characters from a character-level language model run.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data import Split
from .data.images import IMAGE_SUFFIXES
from .errors import DataError, LayerlabError

SEQUENCE_SUFFIXES = (".npy", ".csv", ".tsv", ".ts", ".txt")


def _load_model(run_dir, which: str, device: str):
    from . import api

    return api.load_run(run_dir, which, device)


def read_sequence_file(path: Path, features: int) -> tuple[list[np.ndarray], list[str], list]:
    """Sequences ``(T_i, F)`` from one file, a name for each, and the labels the file carries (``.ts``).

    ``.npy``: ``(N, T, F)``; ``(N, T)`` N univariate sequences when ``F == 1``, else one ``(T, F)``
    sequence; ``(T,)`` one univariate sequence. ``.csv``/``.tsv``: with ``F == 1`` one sequence per
    row, else one sequence with a row per step and a column per feature. ``.ts``: every case.
    """
    from .data.sequences import read_csv_sequences, read_ts

    suffix = path.suffix.lower()
    labels: list = []
    if suffix == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: not a NumPy .npy file ({e})") from None
        if a.dtype.kind not in "iuf":
            raise DataError(f"{path}: expected numbers, got an array of {a.dtype}")
        a = a.astype(np.float64)
        if a.ndim == 1:
            if features != 1:
                raise DataError(f"{path}: a 1-D array is one univariate sequence, the model takes {features} features")
            seqs = [a[:, None]]
        elif a.ndim == 2:
            seqs = [row[:, None] for row in a] if features == 1 else [a]
        elif a.ndim == 3:
            seqs = list(a)
        else:
            raise DataError(f"{path}: expected (N, T, F), (N, T) or (T, F) sequences, got shape {a.shape}")
    elif suffix in (".csv", ".tsv"):
        if features == 1:
            seqs, _ = read_csv_sequences(path, labelled=False)
        else:
            delim = "\t" if suffix == ".tsv" else ","
            try:
                a = np.genfromtxt(path, delimiter=delim, dtype=np.float64)
            except (OSError, ValueError) as e:
                raise DataError(f"{path}: not a table of numbers ({e})") from None
            if a.ndim == 2 and np.isnan(a[0]).all():
                a = a[1:]                                                  # a header row
            seqs = [np.atleast_2d(a)]
    elif suffix == ".ts":
        ts = read_ts(path)
        seqs, labels = ts.series, list(ts.labels)
    else:
        raise DataError(f"{path}: cannot predict on a {suffix or 'suffix-less'} file; give .npy, .csv, .tsv or .ts "
                        f"sequences")
    for s in seqs:
        if s.shape[1] != features:
            raise DataError(f"{path}: sequences of {s.shape[1]} features, the model takes {features}")
        if len(s) == 0:
            raise DataError(f"{path}: an empty sequence")
    names = [str(path)] if len(seqs) == 1 else [f"{path}[{i}]" for i in range(len(seqs))]
    return seqs, names, labels


def predict_sequence_files(run_dir: str | Path, files: list[str | Path], *, top_k: int = 3, which: str = "best",
                           device: str = "cpu") -> list[dict]:
    """Predictions of a recurrent run for every sequence in ``files``.

    Each result has ``file`` (``path[i]`` for the i-th sequence of a file), ``label`` and ``text`` (a
    line to print), plus by task: ``index``, ``probability``, ``top_k`` (classes); ``value``
    (regression); ``labels`` (one class per step). Image files go through the run's
    ``--sequence`` reading when it had one. ``.txt`` files given to a character model predict the
    character after the text.
    """
    from . import engine
    from .data.sequences import image_sequence, pad_sequences, pixel_permutation, standardise

    model, run, info = _load_model(run_dir, which, device)
    ds = info["dataset"]
    meta = ds.get("meta", {})
    shape = tuple(ds["input_shape"])
    classes = ds.get("classes") or [str(i) for i in range(ds["num_outputs"])]
    task = ds["task"]
    seqs, names, truths, notes = [], [], [], []
    for f in map(Path, files):
        if f.suffix.lower() in IMAGE_SUFFIXES:
            if "sequence" not in meta:
                raise LayerlabError(f"the model of {run.path} takes sequences of shape {shape}, not image files")
            from .data.images import read_image

            C, H, W = meta["image_shape"]
            x, n = read_image(f, channels=C, size=(H, W))
            perm = pixel_permutation(H * W, meta.get("permutation_seed", 0)) if meta["sequence"] == "permuted" else None
            seqs.append(image_sequence(x[None], meta["sequence"], perm)[0].numpy())
            names.append(str(f))
            truths.append(None)
            notes.append(n)
            continue
        if len(shape) == 1:                                                 # a character model
            from .data.text import Vocabulary, read_text

            if "vocab" not in meta:
                raise LayerlabError(f"the model of {run.path} takes token sequences but its run keeps no vocabulary")
            ids = Vocabulary(meta["vocab"]).encode(read_text(f), f"file {f}")
            if len(ids) == 0:
                raise DataError(f"{f}: empty text")
            seqs.append(ids.numpy())
            names.append(str(f))
            truths.append(None)
            notes.append([])
            continue
        s, n, lab = read_sequence_file(f, shape[-1])
        if "feature_mean" in meta:
            s, missing = standardise(s, meta["feature_mean"], meta["feature_std"])
            if missing:
                notes_f = [f"{missing} missing values filled with the training mean"]
            else:
                notes_f = []
        else:
            s, notes_f = [np.nan_to_num(v).astype(np.float32) for v in s], []
        seqs += s
        names += n
        truths += lab if lab else [None] * len(s)
        notes += [notes_f] * len(s)
    if not seqs:
        return []
    if len(shape) == 1:
        T = max(len(s) for s in seqs)
        x = torch.zeros(len(seqs), T, dtype=torch.int64)
        lengths = torch.tensor([len(s) for s in seqs])
        for i, s in enumerate(seqs):
            x[i, :len(s)] = torch.as_tensor(s)
        if bool((lengths == T).all()):
            lengths = None
    else:
        x, lengths = pad_sequences([np.asarray(s, dtype=np.float32) for s in seqs])
    out = engine.predict_logits(model, Split(x, torch.zeros(len(seqs)), lengths),
                                device=next(model.parameters()).device)
    results = []
    for i, (name, truth, note) in enumerate(zip(names, truths, notes)):
        r = {"file": name, "notes": note}
        n_i = len(seqs[i])
        if task == "regression":
            o = out[i].reshape(-1)
            if o.numel() == 1:
                r.update(value=float(o[0]), label=f"{float(o[0]):.6g}")
            else:
                vals = [float(v) for v in o[:n_i]]
                r.update(values=vals, label=" ".join(f"{v:.4g}" for v in vals[:20]) + (" ..." if n_i > 20 else ""))
            r["text"] = f"{name}: {r['label']}"
        elif out.dim() == 3 and len(shape) == 1:                            # character model: next char
            p = torch.softmax(out[i, n_i - 1], -1)
            k = max(1, min(top_k, len(classes)))
            vals, idx = p.topk(k)
            top = [{"index": int(j), "label": classes[int(j)], "probability": float(v)} for v, j in zip(vals, idx)]
            r.update(index=top[0]["index"], label=top[0]["label"], probability=top[0]["probability"], top_k=top)
            r["text"] = f"{name}: next character " + ", ".join(f"{t['label']!r} {t['probability']:.3f}" for t in top)
        elif out.dim() == 3:                                                # one class per step
            ids = out[i, :n_i].argmax(-1)
            r.update(labels=[classes[int(j)] for j in ids], label=" ".join(classes[int(j)] for j in ids[:40]))
            r["text"] = f"{name}: {r['label']}" + (" ..." if n_i > 40 else "")
        else:
            p = torch.softmax(out[i], -1)
            k = max(1, min(top_k, len(classes)))
            vals, idx = p.topk(k)
            top = [{"index": int(j), "label": classes[int(j)], "probability": float(v)} for v, j in zip(vals, idx)]
            r.update(index=top[0]["index"], label=top[0]["label"], probability=top[0]["probability"], top_k=top)
            tops = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in top)
            r["text"] = f"{name}: {r['label']} ({r['probability']:.3f})   top-{len(top)}: {tops}"
        if truth is not None:
            r["true_label"] = truth if isinstance(truth, str) else float(truth)
            r["text"] += f"   (file says {truth})"
        results.append(r)
    return results


@torch.no_grad()
def generate(run_dir: str | Path, prompt: str = "", length: int = 200, *, temperature: float = 1.0,
             seed: int = 0, which: str = "best", device: str = "cpu") -> dict:
    """Sample ``length`` characters from a character-level language model run, after ``prompt``.

    ``temperature`` divides the logits before the softmax: below 1 is more conservative, above 1
    more varied, 0 picks the most likely character every time. Returns ``{"prompt", "text",
    "sample", "seed", "temperature"}`` where ``text = prompt + sample``.
    """
    from .data.text import Vocabulary

    if length < 0:
        raise LayerlabError(f"--length must be 0 or more, got {length}")
    if temperature < 0:
        raise LayerlabError(f"--temperature must be 0 or more, got {temperature}")
    model, run, info = _load_model(run_dir, which, device)
    meta = info["dataset"].get("meta", {})
    if "vocab" not in meta or getattr(model, "input_kind", None) != "tokens":
        raise LayerlabError(f"{run.path} is not a character-level language model (it was trained on "
                            f"{info['dataset']['name']}); generate needs a recurrent run trained on a text file")
    if getattr(model, "bidirectional", False):
        raise LayerlabError(f"{run.path} holds a bidirectional model, which reads whole sequences; it cannot "
                            f"generate one character at a time")
    vocab = Vocabulary(meta["vocab"])
    dev = next(model.parameters()).device
    if prompt:
        ids = vocab.encode(prompt, "prompt")
    else:                                                   # start after a line break, or any character
        ids = torch.tensor([vocab.index.get("\n", 0)])
    g = torch.Generator().manual_seed(seed)
    logits, state = model.step_logits(ids[None].to(dev))
    last = logits[0, -1].float().cpu()
    sample = []
    for _ in range(length):
        if temperature == 0:
            nxt = int(last.argmax())
        else:
            nxt = int(torch.multinomial(torch.softmax(last / temperature, -1), 1, generator=g))
        sample.append(nxt)
        logits, state = model.step_logits(torch.tensor([[nxt]], device=dev), state)
        last = logits[0, -1].float().cpu()
    text = vocab.decode(sample)
    return {"prompt": prompt, "sample": text, "text": prompt + text, "seed": seed, "temperature": temperature,
            "run": str(run.path)}
