"""Zero-shot fitness prediction from deep mutational scans (paper §3.2 / §3.3, after Evo).

Each variant is read alone as ``<bos><rna>…<eos>`` or ``<bos><protein>…<eos>`` and scored by its
mean log-likelihood per residue (every residue and the closing <eos>, each given the tokens
before it), the quantity Evo uses; the score is correlated with the measured fitness by
Spearman's rank correlation, per DMS set. The task score is the mean over its sets.

The paper's BSM also reads the gene with the protein; the bundled GB1 / Abeta files hold only
protein sequences, so protein variants are scored alone (the RNA sets are RNA already).
Baselines (``baselines.py``): wild-type Markov chain (RNA headline) and BLOSUM62 (protein
headline), both label-free like the model.
"""
from __future__ import annotations

import time

import numpy as np

from . import baselines, metrics
from .model_io import LoadedModel, encode, mean_logprob
from .tasks import DMSSet, subsample


def score_variants(lm: LoadedModel, modality: str, seqs: list[str]) -> np.ndarray:
    docs = [encode([(modality, s)]) for s in seqs]
    spans = [(2, len(d)) for d in docs]  # residues and <eos>; <bos> <tag> are given
    return mean_logprob(lm, docs, spans)


def run_zeroshot(lm: LoadedModel | None, sets: list[DMSSet], *, max_items: int | None = None, seed: int = 0,
                 log=lambda m: None) -> dict:
    rows = []
    for ds in sets:
        t0 = time.perf_counter()
        idx = subsample(list(range(len(ds.variants))), max_items, seed)
        seqs = [ds.variants[i] for i in idx]
        y = ds.fitness[idx]
        rec = {"set": ds.name, "source_file": ds.source_file, "n": len(seqs), "wild_type_length": len(ds.wild_type),
               "skipped_stop_variants": ds.skipped_stop}
        if lm is not None:
            s = score_variants(lm, ds.modality, seqs)
            rec["spearman"] = metrics.spearman(s, y)
        markov = baselines.wt_markov_scores(ds.wild_type, seqs)
        rec["baseline_wt_markov"] = metrics.spearman(markov, y)
        if ds.modality == "protein":
            rec["baseline_blosum62"] = metrics.spearman(baselines.blosum62_scores(ds.wild_type, seqs), y)
            rec["baseline"] = rec["baseline_blosum62"]
            rec["baseline_name"] = "BLOSUM62 substitution score"
        else:
            rec["baseline"] = rec["baseline_wt_markov"]
            rec["baseline_name"] = "wild-type order-2 Markov mean log-likelihood"
        rec["time_s"] = time.perf_counter() - t0
        log(f"  {ds.name}: n={len(seqs)} spearman {rec.get('spearman', float('nan')):.4f} baseline {rec['baseline']:.4f}")
        rows.append(rec)

    def mean(key):
        vals = [r[key] for r in rows if key in r and np.isfinite(r[key])]
        return float(np.mean(vals)) if vals else float("nan")

    return {"sets": rows, "spearman": mean("spearman"), "baseline": mean("baseline"), "n": sum(r["n"] for r in rows)}
