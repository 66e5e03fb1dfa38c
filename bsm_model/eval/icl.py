"""Central Dogma few-shot in-context learning (paper §3.1, "Few-shot Learning").

The paper concatenates k demonstrations with the test pair, scores "the log probability for
each token in the tested protein sequence" and classifies with a threshold on that score. We
score the *mean* log-probability of the test protein's residues (the <eos> excluded), so
proteins of different lengths share one threshold, and choose the threshold that maximises
accuracy on the validation split, separately for each k; test accuracy uses it unchanged.

Prompt (one document, vocabulary tokens only, the pretraining text form)::

    <bos> <dna> d1 <sep> <protein> p1 <sep> ... <dna> dk <sep> <protein> pk <sep> <dna> D <sep> <protein> P <eos>

Demonstrations are *correct* pairs from the train split. Their label is stated by the format
itself: a demo is a DNA followed by the protein it encodes, which is what every RefSeq pair
the model saw in pretraining is. A negative demo cannot be marked as negative without a label
token the vocabulary does not have (and the model never saw), and an unmarked mismatched pair
would teach the opposite of the task, so none are shown.

Context budget: the test pair is never cut (every Central Dogma item fits the context), so the
demonstrations get what is left: B = context - (test pair + 2 nt of indel room); each of the k
demos gets B // k tokens. A demo is the first train pair (in a seeded per-gene order) whose
whole (DNA span, protein) fits its share; when none does, the next train gene is cut to an
aligned window of its coding sequence: the first w codons (3w nt) and the first w residues,
w = (share - 4) // 4, the same aligned-window policy the corpus uses for long pairs. A slot with
fewer than 4 codons of room is left out, so long test genes get fewer demos: the mean effective
k and demo tokens are reported per k. The demos depend on the gene, not the item, so a gene's
positive and its two negatives are scored in the same context (only the test pair differs).
"""
from __future__ import annotations

import time

import numpy as np

from bsm_data.central_dogma import MAX_INSERT, PAIR_OVERHEAD
from bsm_data.pairing import gene_rng
from bsm_data.vocab import load_vocab, normalize

from . import metrics
from .model_io import LoadedModel, encode, mean_logprob

K_VALUES = (0, 1, 2, 4, 8)
MIN_CODONS = 4


def _demo_pool(cd) -> list[tuple[str, str, str]]:
    """(gene_id, dna, protein, coding dna) of the train genes, in gene-id order."""
    vocab = load_vocab()
    pool = []
    for gid in sorted(g for g, s in cd.split_of.items() if s == "train"):
        g = cd.genes[gid]
        coding = normalize(vocab, "dna", g.cds[g.codon_start - 1:])
        pool.append((gid, g.dna, g.protein, coding))
    return pool


def choose_demos(pool, gene_id: str, k: int, budget: int, seed: int) -> list[tuple[str, str, bool]]:
    """[(dna, protein, is_full_pair)] for k demo slots of ``budget // k`` tokens each."""
    if k == 0 or not pool:
        return []
    rng = gene_rng(seed, f"icl:{gene_id}")
    order = [i for i in rng.sample(range(len(pool)), len(pool)) if pool[i][0] != gene_id]
    share = budget // k
    used: set[int] = set()
    demos = []
    for _ in range(k):
        pick = next((i for i in order if i not in used and len(pool[i][1]) + len(pool[i][2]) + 4 <= share), None)
        if pick is not None:
            used.add(pick)
            demos.append((pool[pick][1], pool[pick][2], True))
            continue
        w = (share - 4) // 4
        nxt = next((i for i in order if i not in used), None)
        if w < MIN_CODONS or nxt is None:
            continue
        used.add(nxt)
        _, _, prot, coding = pool[nxt]
        w = min(w, len(prot), len(coding) // 3)
        demos.append((coding[: 3 * w], prot[:w], False))
    return demos


def prompt(demos, dna: str, protein: str) -> tuple[np.ndarray, tuple[int, int]]:
    segs = []
    for d, p, _ in demos:
        segs += [("dna", d), ("protein", p)]
    segs += [("dna", dna), ("protein", protein)]
    ids = encode(segs)
    end = len(ids) - 1  # <eos>
    return ids, (end - len(protein), end)


def run_icl(lm: LoadedModel, cd, *, ks=K_VALUES, seed: int = 0, max_items: int | None = None, log=lambda m: None) -> dict:
    """Accuracy per k on the test split, thresholds from the validation split."""
    from .tasks import subsample

    pool = _demo_pool(cd)
    splits = {}
    for s in ("valid", "test"):
        items = cd.split(s)
        splits[s] = subsample(items, max_items, seed, [it.label for it in items])
    curve = []
    for k in ks:
        t0 = time.perf_counter()
        scores, info = {}, {"k_eff": [], "demo_tokens": [], "full_demos": []}
        for s, items in splits.items():
            docs, spans = [], []
            for it in items:
                g = cd.genes[it.gene_id]
                budget = lm.max_len - (len(g.dna) + MAX_INSERT + len(g.protein) + PAIR_OVERHEAD)
                demos = choose_demos(pool, it.gene_id, k, budget, seed)
                ids, span = prompt(demos, it.dna, it.protein)
                if len(ids) > lm.max_len:
                    raise AssertionError(f"ICL prompt of {len(ids)} tokens exceeds the context {lm.max_len}")
                docs.append(ids)
                spans.append(span)
                if s == "test":
                    info["k_eff"].append(len(demos))
                    info["demo_tokens"].append(sum(len(d) + len(p) + 4 for d, p, _ in demos))
                    info["full_demos"].append(sum(f for _, _, f in demos))
            scores[s] = mean_logprob(lm, docs, spans)
        y = {s: np.array([it.label for it in items]) for s, items in splits.items()}
        thr = metrics.best_threshold(y["valid"], scores["valid"])
        rep = metrics.binary_report(y["test"], scores["test"], thr)
        rec = {"k": k, **rep, "valid_accuracy": metrics.accuracy(y["valid"], scores["valid"] >= thr),
               "mean_k_eff": float(np.mean(info["k_eff"])) if info["k_eff"] else 0.0,
               "mean_demo_tokens": float(np.mean(info["demo_tokens"])) if info["demo_tokens"] else 0.0,
               "full_pair_demos": int(np.sum(info["full_demos"])) if info["full_demos"] else 0,
               "mean_score_pos": float(np.nanmean(scores["test"][y["test"] == 1])) if (y["test"] == 1).any() else None,
               "mean_score_neg": float(np.nanmean(scores["test"][y["test"] == 0])) if (y["test"] == 0).any() else None,
               "n_valid": len(y["valid"]), "n_test": len(y["test"]), "time_s": time.perf_counter() - t0}
        log(f"  k={k}: test accuracy {rec['accuracy']:.4f} (AUROC {rec['auroc']:.4f}, mean k_eff {rec['mean_k_eff']:.2f})")
        curve.append(rec)
    return {"curve": curve, "n_valid": len(splits["valid"]), "n_test": len(splits["test"]), "demo_pool": len(pool)}
