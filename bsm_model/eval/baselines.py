"""Non-neural baselines, one per task, so every model score has a reference next to it.

Supervised tasks (``kmer_baseline``): k-mer frequency features (protein k = 3; DNA/RNA
k = 4, 5 and 6 concatenated; k-mers with N/X are skipped; a pair concatenates the features of
both members), then logistic regression (binary, multiclass) or ridge regression. The
regularisation strength is chosen on the validation split (C in 0.1..100, alpha in
0.1..1000; liblinear, one-vs-rest for multiclass); the baseline reads whole sequences (no context limit).

Perplexity (``NGramLM``): an interpolated Witten-Bell n-gram model over token ids, counted on
the round's training rows with the same document boundaries and targets as the model's loss;
order 3 (two tokens of context) for protein targets, 6 for DNA/RNA targets.

Zero-shot fitness (no labels, like the model): ``wt_markov_scores`` is the mean log-likelihood
of each variant under an order-2 Markov chain estimated on the wild type alone (add-0.5
smoothing); it ranks variants by how much they disturb the wild type's local k-mer content.
For proteins ``blosum62_scores`` (sum of BLOSUM62 wild type -> mutant substitution scores) is
the classical sequence-only zero-shot predictor and is the headline protein baseline.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from bsm_data.vocab import load_vocab

from . import metrics

KMER_K = {"protein": (3,), "dna": (4, 5, 6), "rna": (4, 5, 6)}
ALPHABETS = {"protein": "ACDEFGHIKLMNPQRSTVWY", "dna": "ACGT", "rna": "ACGU"}


# ----------------------------------------------------------------------------- k-mer features


def _codes(seq: str, alphabet: str) -> np.ndarray:
    lut = np.full(256, -1, dtype=np.int64)
    for i, c in enumerate(alphabet):
        lut[ord(c)] = i
    if alphabet == ALPHABETS["rna"]:
        lut[ord("T")] = alphabet.index("U")
    return lut[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]


def kmer_features(seqs: list[str], modality: str, ks=None) -> sp.csr_matrix:
    """Rows of k-mer frequencies (counts / number of valid k-mers), one block per k."""
    ks = ks or KMER_K[modality]
    alphabet = ALPHABETS[modality]
    A = len(alphabet)
    dims = [A**k for k in ks]
    offsets = np.concatenate([[0], np.cumsum(dims)])
    indptr, indices, data, nnz = [0], [], [], 0
    for seq in seqs:
        codes = _codes(seq, alphabet)
        for b, k in enumerate(ks):
            if len(codes) < k:
                continue
            win = np.lib.stride_tricks.sliding_window_view(codes, k)
            ok = (win >= 0).all(axis=1)
            if not ok.any():
                continue
            idx = (win[ok] * (A ** np.arange(k - 1, -1, -1))).sum(axis=1)
            u, c = np.unique(idx, return_counts=True)
            indices.append(u + offsets[b])
            data.append(c / ok.sum())
            nnz += len(u)
        indptr.append(nnz)
    ind = np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64)
    dat = np.concatenate(data) if data else np.zeros(0)
    return sp.csr_matrix((dat, ind, np.array(indptr)), shape=(len(seqs), int(offsets[-1])))


def example_features(examples) -> sp.csr_matrix:
    """Features of examples (each a tuple of (modality, seq) segments): blocks side by side."""
    n_seg = len(examples[0].segments)
    blocks = []
    for j in range(n_seg):
        modality = examples[0].segments[j][0]
        blocks.append(kmer_features([e.segments[j][1] for e in examples], modality))
    return sp.hstack(blocks, format="csr")


def kmer_baseline(task) -> dict:
    """Fit on train, choose regularisation on valid (train when there is none), report test."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import MaxAbsScaler

    tr, va, te = task.splits["train"], task.splits.get("valid") or [], task.splits["test"]
    scaler = MaxAbsScaler()
    X_tr = scaler.fit_transform(example_features(tr))
    X_va = scaler.transform(example_features(va)) if va else None
    X_te = scaler.transform(example_features(te))
    y_tr, y_te = task.labels("train"), task.labels("test")
    y_va = task.labels("valid") if va else None
    if task.kind == "regression":
        grid = [("alpha", a, lambda a=a: Ridge(alpha=a)) for a in (0.1, 1.0, 10.0, 100.0, 1000.0)]
    else:
        from sklearn.multiclass import OneVsRestClassifier

        def logistic(c):
            lr = LogisticRegression(C=c, solver="liblinear", max_iter=1000)
            return lr if task.kind == "binary" else OneVsRestClassifier(lr)

        grid = [("C", c, lambda c=c: logistic(c)) for c in (0.1, 1.0, 10.0, 100.0)]

    def score(model, X, y):
        if task.kind == "regression":
            return metrics.spearman(model.predict(X), y)
        return metrics.accuracy(y, model.predict(X))

    best, best_val, chosen = None, -math.inf, None
    single_class = task.kind != "regression" and len(np.unique(y_tr)) < 2
    if single_class:  # a tiny subset with one class: predict it
        pred = np.full(len(y_te), y_tr[0])
        return _report(task, y_te, pred, None, {"model": "constant (one class in train)"})
    for name, value, make in grid:
        m = make().fit(X_tr, y_tr)
        v = score(m, X_va, y_va) if va else score(m, X_tr, y_tr)
        v = -math.inf if v is None or math.isnan(v) else v
        if v > best_val or best is None:
            best, best_val, chosen = m, v, (name, value)
    pred = best.predict(X_te)
    proba = best.predict_proba(X_te)[:, 1] if task.kind == "binary" else None
    info = {"model": f"{'ridge' if task.kind == 'regression' else 'logistic regression'} on k-mer frequencies",
            "k": {m: list(KMER_K[m]) for m in {s[0] for s in tr[0].segments}}, chosen[0]: chosen[1],
            "selected_on": "valid" if va else "train", "features": int(X_tr.shape[1])}
    return _report(task, y_te, pred, proba, info)


def _report(task, y_te, pred, proba, info) -> dict:
    if task.kind == "regression":
        rep = metrics.regression_report(y_te, pred)
    elif task.kind == "binary":
        rep = metrics.binary_report(y_te, proba if proba is not None else pred, 0.5)
    else:
        rep = metrics.multiclass_report(y_te, pred)
    return {"score": rep[task.metric], **rep, **info}


# ----------------------------------------------------------------------------- n-gram LM


class NGramLM:
    """Interpolated Witten-Bell n-gram model over token ids (vocabulary V, order up to K).

    P_0(w) = (c(w) + 1) / (N + V);  P_n(w|h) = (c(h,w) + T(h) P_{n-1}(w|h')) / (c(h) + T(h)),
    where T(h) is the number of distinct words seen after h, h' the context one token shorter;
    unseen contexts back off to P_{n-1}. Context positions before the start of a document hold a
    boundary symbol (id V), so no context crosses documents.
    """

    def __init__(self, vocab_size: int, order: int):
        self.V, self.K = vocab_size, order
        self.base = vocab_size + 1
        self.tables: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.unigram = np.zeros(vocab_size)
        self.n = 0
        self._keys: list[list[np.ndarray]] = [[] for _ in range(order)]

    @staticmethod
    def contexts(tokens: np.ndarray, doc_starts: list[np.ndarray], order: int, boundary: int) -> np.ndarray:
        """(rows, T, order-1) previous tokens of every position (boundary before doc start)."""
        B, T = tokens.shape
        start = np.zeros((B, T), dtype=np.int64)
        for b, s in enumerate(doc_starts):
            start[b, np.asarray(s, dtype=np.int64)] = np.asarray(s, dtype=np.int64)
        start = np.maximum.accumulate(start, axis=1)
        ctx = np.full((B, T, max(order - 1, 0)), boundary, dtype=np.int64)
        pos = np.arange(T)[None, :]
        for j in range(1, order):
            src = pos - j
            ok = src >= start
            shifted = np.full((B, T), boundary, dtype=np.int64)
            shifted[:, j:] = tokens[:, :-j]
            ctx[:, :, j - 1] = np.where(ok, shifted, boundary)
        return ctx

    def _hash(self, ctx: np.ndarray, n: int) -> np.ndarray:
        h = np.zeros(ctx.shape[0], dtype=np.int64)
        for j in range(n):
            h = h * self.base + ctx[:, j]
        return h

    def add(self, ctx: np.ndarray, targets: np.ndarray) -> None:
        """ctx (N, K-1) previous tokens (nearest first), targets (N,)."""
        self.unigram += np.bincount(targets, minlength=self.V)[: self.V]
        self.n += len(targets)
        for n in range(1, self.K):
            self._keys[n].append(self._hash(ctx, n) * self.V + targets)

    def finish(self) -> "NGramLM":
        self.tables = [None]  # type: ignore[list-item]
        for n in range(1, self.K):
            keys = np.concatenate(self._keys[n]) if self._keys[n] else np.zeros(0, dtype=np.int64)
            hw, c_hw = np.unique(keys, return_counts=True)
            h_of = hw // self.V
            h, first = np.unique(h_of, return_index=True)
            c_h = np.add.reduceat(c_hw, first) if len(first) else np.zeros(0, dtype=np.int64)
            t_h = np.diff(np.r_[first, len(hw)])
            self.tables.append((hw, c_hw, h, c_h, t_h))
        self._keys = []
        return self

    @staticmethod
    def _lookup(keys: np.ndarray, values: np.ndarray, q: np.ndarray) -> np.ndarray:
        if not len(keys):
            return np.zeros(len(q), dtype=np.int64)
        i = np.clip(np.searchsorted(keys, q), 0, len(keys) - 1)
        return np.where(keys[i] == q, values[i], 0)

    def logprob(self, ctx: np.ndarray, targets: np.ndarray, order: np.ndarray | int | None = None) -> np.ndarray:
        """Natural-log probability of each target; ``order`` caps the order per target."""
        order = np.full(len(targets), self.K) if order is None else np.broadcast_to(order, targets.shape)
        p = (self.unigram[targets] + 1.0) / (self.n + self.V)
        for n in range(1, self.K):
            hw, c_hw, h, c_h, t_h = self.tables[n]
            hq = self._hash(ctx, n)
            chw = self._lookup(hw, c_hw, hq * self.V + targets)
            ch = self._lookup(h, c_h, hq)
            th = self._lookup(h, t_h, hq)
            new = np.where(ch > 0, (chw + th * p) / np.maximum(ch + th, 1), p)
            p = np.where(order > n, new, p)
        return np.log(p)


# ----------------------------------------------------------------------------- zero-shot


def wt_markov_scores(wild_type: str, variants: list[str], order: int = 2, alpha: float = 0.5, alphabet: str | None = None) -> np.ndarray:
    """Mean log-likelihood of each variant under an order-``order`` Markov chain of the wild type."""
    alphabet = alphabet or "".join(sorted(set(wild_type) | {c for v in variants[:200] for c in v}))
    A = len(alphabet)
    idx = {c: i for i, c in enumerate(alphabet)}
    counts: dict[str, np.ndarray] = {}
    for i in range(order, len(wild_type)):
        counts.setdefault(wild_type[i - order:i], np.zeros(A))[idx[wild_type[i]]] += 1
    out = np.empty(len(variants))
    for j, v in enumerate(variants):
        lp = 0.0
        for i in range(order, len(v)):
            c = counts.get(v[i - order:i])
            c_w = c[idx[v[i]]] if c is not None and v[i] in idx else 0.0
            total = c.sum() if c is not None else 0.0
            lp += math.log((c_w + alpha) / (total + alpha * A))
        out[j] = lp / max(1, len(v) - order)
    return out


def blosum62_scores(wild_type: str, variants: list[str]) -> np.ndarray:
    """Sum over substituted positions of BLOSUM62(wt, mutant) (equal-length variants)."""
    from Bio.Align import substitution_matrices

    m = substitution_matrices.load("BLOSUM62")
    out = np.empty(len(variants))
    for j, v in enumerate(variants):
        out[j] = sum(float(m[a, b]) for a, b in zip(wild_type, v) if a != b)
    return out


def vocab_size() -> int:
    return load_vocab().size
