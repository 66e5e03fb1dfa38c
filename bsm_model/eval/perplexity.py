"""Perplexity per modality on held-out shards (paper §3.6, Table 1b).

Rows: the manifest's ``validation`` shards (a round built by ``bsm data build``), else the rows
``bsm train`` held out of that manifest (same fixed seed and ``val_fraction``, read from the
run's config when the manifest is the one it trained on). The manifest defaults to the one the
checkpoint was trained on; ``--manifest`` picks another. ``--max-items N`` keeps a seeded subset
of N rows (the same subset training validation uses for ``val_max_rows = N``).

Tokens are exactly the training loss's targets (``bsm_model.data.make_batch``: per-document
attention and positions, no target across documents or into padding) and each target is
attributed to the modality of the segment it is in (the tag, residues, and the <sep>/<eos>
that closes the segment; ``other`` is the <bos>-led tag prediction). Perplexity =
exp(mean negative log-likelihood) over a modality's targets.

Baseline: ``baselines.NGramLM`` counted on the same manifest's training rows (order 3 for
protein targets, 6 for DNA/RNA), scored on the same targets.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from bsm_data.vocab import load_vocab

from ..data import MODALITY_NAMES, TrainData, make_batch
from ..model import IGNORE
from .baselines import NGramLM
from .model_io import LoadedModel, autocast

NGRAM_ORDER = {"dna": 6, "rna": 6, "protein": 3, "other": 3}
BIG = 1 << 40


def open_rows(manifest: str, lm: LoadedModel | None, max_items: int | None) -> TrainData:
    tc = (lm.state.get("train_config") or {}) if lm is not None else {}
    val_fraction = tc.get("val_fraction", 0.01) if tc.get("manifest") == manifest else 0.01
    return TrainData(manifest, seed=0, val_fraction=val_fraction, val_max_rows=max_items or BIG)


def _batches(data: TrainData, ids: np.ndarray, shards, rows: int):
    for k in range(0, len(ids), rows):
        tokens, starts, n_tokens = shards.gather(ids[k : k + rows])
        yield tokens, starts, make_batch(tokens, starts, n_tokens, doc_mask=True)


@torch.no_grad()
def model_nll(lm: LoadedModel, data: TrainData, batch_rows: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Summed NLL and target counts per modality (MODALITY_NAMES order)."""
    k = len(MODALITY_NAMES)
    sums, counts = np.zeros(k), np.zeros(k)
    lm.model.eval()
    for _, _, batch in _batches(data, data.val_ids, data.val, batch_rows):
        b = batch.to(lm.device)
        with autocast(lm.device):
            _, loss = lm.model(b.input_ids, b.targets, docs=b.docs, reduction="none")
        keep = b.targets != IGNORE
        mod = b.modality[keep].cpu().numpy()
        sums += np.bincount(mod, weights=loss[keep].double().cpu().numpy(), minlength=k)
        counts += np.bincount(mod, minlength=k)
    return sums, counts


def _targets(tokens, starts, batch, order: int, boundary: int):
    ctx = NGramLM.contexts(tokens.astype(np.int64), starts, order, boundary)
    tg = batch.targets.numpy()
    keep = tg != IGNORE
    # the target of input position t is token t+1; its context is the tokens before t+1
    ctx_next = np.zeros_like(ctx)
    ctx_next[:, :-1] = ctx[:, 1:]
    return ctx_next[keep], tg[keep], batch.modality.numpy()[keep]


def ngram_nll(data: TrainData, *, max_train_rows: int | None = None, batch_rows: int = 256) -> tuple[np.ndarray, np.ndarray, dict]:
    vocab_size = load_vocab().size
    K = max(NGRAM_ORDER.values())
    lm = NGramLM(vocab_size, K)
    train_ids = data.train_ids if max_train_rows is None else data.train_ids[:max_train_rows]
    n_train = 0
    for tokens, starts, batch in _batches(data, train_ids, data.train, batch_rows):
        ctx, tg, _ = _targets(tokens, starts, batch, K, vocab_size)
        lm.add(ctx, tg)
        n_train += len(tg)
    lm.finish()
    k = len(MODALITY_NAMES)
    sums, counts = np.zeros(k), np.zeros(k)
    order_of = np.array([NGRAM_ORDER[m] for m in MODALITY_NAMES])
    for tokens, starts, batch in _batches(data, data.val_ids, data.val, batch_rows):
        ctx, tg, mod = _targets(tokens, starts, batch, K, vocab_size)
        lp = lm.logprob(ctx, tg, order_of[mod])
        sums += np.bincount(mod, weights=-lp, minlength=k)
        counts += np.bincount(mod, minlength=k)
    return sums, counts, {"train_rows": int(len(train_ids)), "train_targets": int(n_train), "orders": NGRAM_ORDER}


def run_perplexity(lm: LoadedModel | None, manifest: str, *, max_items: int | None = None, log=lambda m: None) -> dict:
    t0 = time.perf_counter()
    data = open_rows(manifest, lm, max_items)
    out = {"manifest": manifest, "rows": int(len(data.val_ids)), "row_source": data.val_source, "modalities": {}}
    m_sums = m_counts = None
    if lm is not None:
        m_sums, m_counts = model_nll(lm, data)
    b_sums, b_counts, info = ngram_nll(data)
    out["baseline_info"] = info
    for i, name in enumerate(MODALITY_NAMES[:3]):
        n = int(b_counts[i])
        rec = {"tokens": n, "baseline_ppl": math.exp(b_sums[i] / n) if n else None}
        if m_sums is not None:
            rec["ppl"] = math.exp(m_sums[i] / m_counts[i]) if m_counts[i] else None
            rec["nll"] = m_sums[i] / m_counts[i] if m_counts[i] else None
        out["modalities"][name] = rec
        log(f"  {name}: {n} tokens, ppl {rec.get('ppl')}, n-gram {rec['baseline_ppl']}")
    tot = b_counts.sum()
    out["all"] = {"tokens": int(tot), "baseline_ppl": math.exp(b_sums.sum() / tot) if tot else None,
                  "ppl": math.exp(m_sums.sum() / m_counts.sum()) if m_sums is not None and m_counts.sum() else None}
    out["time_s"] = time.perf_counter() - t0
    return out
