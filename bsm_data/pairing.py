"""Turn one gene's sequences into cross-modal pair samples (paper §2.2, appendix B).

Policy, per gene, all randomness drawn from ``gene_rng(seed, group_id)`` so reruns, reorderings
and any number of workers give the same samples:

1. Validate each modality with the tokenizer; an invalid sequence is rejected (stage
   ``validate``) and the gene continues with the others.
2. Candidate combinations are the subsets of two or more valid modalities ("any combination of
   DNA, RNA and protein"). One is chosen uniformly among those that are *windowable* (below),
   and its order is shuffled. Fewer than two valid modalities: the gene is rejected
   (``single_modality``); no windowable combination: rejected (``unpairable_lengths``).
3. Context: a sample that fits ``seq_len`` tokens is one document. A longer one is cut into
   ``n`` aligned windows: window ``i`` holds the ``i``-th of ``n`` equal slices of *every*
   segment, in the same order. DNA span, transcript and protein are colinear 5'->3', so each
   window still pairs corresponding parts of each modality. ``n`` is the smallest count that
   fits. A combination is windowable when every slice keeps at least ``min_slice`` residues;
   this rules out e.g. a 2 Mb intron-rich DNA span paired with its protein (slices of 2 aa).
"""
from __future__ import annotations

import hashlib
import itertools
import math
import random

from .accounting import Accounting
from .records import MODALITIES, GeneSequences, Reject, Sample
from .vocab import TokenizeError, Vocab, encode_sequence, sample_overhead

MIN_SLICE = 64


def gene_rng(seed: int, key: str) -> random.Random:
    """A RNG that depends only on (seed, key): independent of worker, order and process."""
    digest = hashlib.sha256(f"{seed}\x1f{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def n_windows(lengths: list[int], seq_len: int) -> int:
    """Fewest aligned windows whose documents fit ``seq_len`` tokens."""
    k, total = len(lengths), sum(lengths)
    if total + sample_overhead(k) <= seq_len:
        return 1
    budget = seq_len - sample_overhead(k) - k  # each slice may round up by one residue
    return math.ceil(total / budget)


def windowable(lengths: list[int], seq_len: int, min_slice: int) -> bool:
    n = n_windows(lengths, seq_len)
    return n == 1 or min(lengths) // n >= min_slice


def window_slices(length: int, n: int) -> list[tuple[int, int]]:
    return [(length * i // n, length * (i + 1) // n) for i in range(n)]


def valid_modalities(
    gene: GeneSequences, vocab: Vocab, acct: Accounting, source: str
) -> tuple[dict[str, str], list[Reject]]:
    stage = acct.stage("validate")
    valid, rejects = {}, []
    for modality, seq in gene.modalities().items():
        stage.take()
        try:
            encode_sequence(vocab, modality, seq)
        except TokenizeError as e:
            rejects.append(
                acct.reject(
                    "validate", e.reason, detail=e.detail, source=source, source_file=gene.source_file,
                    record_id=gene.record_id, item_id=f"{gene.group_id}:{modality}",
                )
            )
            continue
        stage.emit()
        valid[modality] = seq
    return valid, rejects


def pair_gene(
    gene: GeneSequences,
    vocab: Vocab,
    acct: Accounting,
    *,
    seed: int,
    seq_len: int = 1024,
    source: str = "refseq",
    min_slice: int = MIN_SLICE,
) -> list[Sample | Reject]:
    """Samples (one, or several aligned windows) for one gene, or the rejects explaining why not."""
    valid, out = valid_modalities(gene, vocab, acct, source)
    stage = acct.stage("pair")
    stage.take()
    where = dict(source=source, source_file=gene.source_file, record_id=gene.record_id, item_id=gene.group_id)
    if len(valid) < 2:
        out.append(acct.reject("pair", "single_modality", detail=f"valid modalities: {sorted(valid)}", **where))
        return out
    combos = [
        c
        for r in range(2, len(valid) + 1)
        for c in itertools.combinations([m for m in MODALITIES if m in valid], r)
        if windowable([len(valid[m]) for m in c], seq_len, min_slice)
    ]
    if not combos:
        lengths = {m: len(s) for m, s in valid.items()}
        out.append(acct.reject("pair", "unpairable_lengths", detail=f"no windowable combination of {lengths}", **where))
        return out
    rng = gene_rng(seed, gene.group_id)
    order = list(rng.choice(combos))
    rng.shuffle(order)
    seqs = [valid[m] for m in order]
    n = n_windows([len(s) for s in seqs], seq_len)
    stage.emit()
    stage.note("combo:" + "+".join(sorted(order)))
    if n > 1:
        stage.note("windowed_genes")
    stage.note("samples", n)
    slices = [window_slices(len(s), n) for s in seqs]
    for w in range(n):
        segments = tuple((m, s[a:b]) for m, s, (a, b) in zip(order, seqs, (sl[w] for sl in slices)))
        n_tokens = sample_overhead(len(segments)) + sum(len(s) for _, s in segments)
        out.append(
            Sample(
                sample_id=f"{source}:{gene.group_id}:w{w}",
                source=source,
                group_id=gene.group_id,
                window=w,
                n_windows=n,
                segments=segments,
                n_tokens=n_tokens,
                source_file=gene.source_file,
                record_id=gene.record_id,
            )
        )
    return out
