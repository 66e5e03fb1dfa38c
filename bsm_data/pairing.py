"""Turn one gene's sequences into cross-modal pair samples (paper §2.2, appendix B).

Policy, per gene, all randomness drawn from ``gene_rng(seed, group_id)`` so reruns, reorderings
and any number of workers give the same samples:

1. Validate each modality with the tokenizer; an invalid sequence is rejected (stage
   ``validate``) and the gene continues with the others. Valid sequences are normalised to
   what the model sees (``vocab.normalize``), so samples decode back from tokens exactly.
2. Candidate combinations are the subsets of two or more valid modalities ("any combination of
   DNA, RNA and protein"). One is chosen uniformly among those that are *windowable* (below),
   and its order is shuffled. Fewer than two valid modalities: the gene is rejected
   (``single_modality``); no windowable combination: rejected (``unpairable_lengths``).
3. Context: a sample that fits ``seq_len`` tokens is one document. A longer one is cut into
   aligned windows: every window takes the same fraction of *every* segment, in the same
   order. DNA span, transcript and protein are colinear 5'->3', so each window still pairs
   corresponding parts of each modality. Windows are full (they fill a packed row) except a
   short last one (see ``window_bounds``), which keeps packing padding low. A combination is
   windowable when every slice keeps at least ``min_slice`` residues; this rules out e.g. a
   2 Mb intron-rich DNA span paired with its protein (slices of 2 aa).
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import random

from .accounting import Accounting
from .records import MODALITIES, GeneSequences, Reject, Sample
from .vocab import TokenizeError, Vocab, normalize, sample_overhead

MIN_SLICE = 64
MIN_TAIL_SLICE = 8


def gene_rng(seed: int, key: str) -> random.Random:
    """A RNG that depends only on (seed, key): independent of worker, order and process."""
    digest = hashlib.sha256(f"{seed}\x1f{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def short_tail(lengths: list[int], seq_len: int, min_slice: int = MIN_TAIL_SLICE) -> bool:
    """Whether the remainder after the full windows would hold a slice under ``min_slice``."""
    k, total = len(lengths), sum(lengths)
    budget = seq_len - sample_overhead(k) - k
    cut = total // budget * budget
    if not 0 < cut < total:
        return False
    shortest = min(lengths)  # n - n * cut // total grows with n: the shortest segment has the shortest slice
    return shortest - shortest * cut // total < min_slice


def windowable(lengths: list[int], seq_len: int, min_slice: int = MIN_SLICE) -> bool:
    """Whether ``window_bounds`` can cut the combination: it fits one window, or every slice of a
    full window keeps at least ``min_slice`` residues (``n * budget // total`` grows with ``n``, so
    the shortest segment has the shortest slice)."""
    k, total = len(lengths), sum(lengths)
    overhead = sample_overhead(k)
    if total + overhead <= seq_len:
        return True
    budget = seq_len - overhead - k  # integer cuts round up by at most one per segment
    return min(lengths) * budget // total >= min_slice


def window_bounds(lengths: list[int], seq_len: int, min_slice: int = MIN_SLICE) -> list[list[tuple[int, int]]] | None:
    """Aligned windows as (start, end) per segment, or None when the combination is unwindowable.

    Full windows each take the same fraction ``budget / total`` of every segment, so they fill a
    row; the remainder becomes one short window, a short aligned fragment of every segment that
    packs into the gaps other rows leave. A tail with under ``MIN_TAIL_SLICE`` residues of some
    segment grows to that, at the expense of the last full window (counted as ``grown_tail``).
    Nothing overlaps (no token is trained twice) and windows cover every segment exactly.
    Measured on data/genbank (benchmarks/bench_pack.py): padding 0.7% with tails of >= 8
    residues per segment, 1.9% with >= 32, 3.1% with >= 64.
    """
    if not windowable(lengths, seq_len, min_slice):
        return None
    k, total = len(lengths), sum(lengths)
    overhead = sample_overhead(k)
    if total + overhead <= seq_len:
        return [[(0, n) for n in lengths]]
    budget = seq_len - overhead - k  # integer cuts round up by at most one per segment
    n_full = total // budget
    cuts = [i * budget for i in range(n_full + 1)]  # in units of the combined length
    if cuts[-1] < total:
        if short_tail(lengths, seq_len):
            # grow the tail to MIN_TAIL_SLICE residues of the shortest segment, taken from the
            # last full window (which stays nearly full, so its row stays nearly full)
            cuts[-1] = total - -(-MIN_TAIL_SLICE * total // min(lengths))
        cuts.append(total)
    return [[(n * a // total, n * b // total) for n in lengths] for a, b in zip(cuts, cuts[1:])]


@functools.lru_cache(maxsize=None)
def candidate_combinations(present: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """The subsets of two or more of the ``present`` modalities, in MODALITIES order, pairs
    first: the list ``pair_gene`` draws from (before dropping unwindowable ones)."""
    canonical = [m for m in MODALITIES if m in present]
    return tuple(c for r in range(2, len(canonical) + 1) for c in itertools.combinations(canonical, r))


@functools.lru_cache(maxsize=None)
def combo_note(combo: tuple[str, ...]) -> str:
    """The ``pair`` stage note counting genes paired as ``combo`` (modalities sorted by name)."""
    return "combo:" + "+".join(sorted(combo))


def valid_modalities(
    gene: GeneSequences, vocab: Vocab, acct: Accounting, source: str
) -> tuple[dict[str, str], list[Reject]]:
    stage = acct.stage("validate")
    present = gene.modalities()
    stage.take(len(present))
    valid, rejects = {}, []
    for modality, seq in present.items():
        try:
            normal = normalize(vocab, modality, seq)
        except TokenizeError as e:
            rejects.append(
                acct.reject(
                    "validate", e.reason, detail=e.detail, source=source, source_file=gene.source_file,
                    record_id=gene.record_id, item_id=f"{gene.group_id}:{modality}",
                )
            )
            continue
        if normal != seq:
            stage.note(f"normalized:{modality}")
        valid[modality] = normal
    stage.emit(len(valid))
    return valid, rejects


def reject_gene(acct: Accounting, gene: GeneSequences, source: str, reason: str, detail: str) -> Reject:
    """Count and return a ``pair`` reject of the whole gene."""
    return acct.reject(
        "pair", reason, detail=detail, source=source, source_file=gene.source_file, record_id=gene.record_id,
        item_id=gene.group_id,
    )


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
    if len(valid) < 2:
        out.append(reject_gene(acct, gene, source, "single_modality", f"valid modalities: {sorted(valid)}"))
        return out
    length = {m: len(s) for m, s in valid.items()}
    combos = [
        c for c in candidate_combinations(tuple(valid))
        if windowable([length[m] for m in c], seq_len, min_slice)
    ]
    if not combos:
        out.append(reject_gene(acct, gene, source, "unpairable_lengths", f"no windowable combination of {length}"))
        return out
    rng = gene_rng(seed, gene.group_id)
    combo = rng.choice(combos)
    order = list(combo)
    rng.shuffle(order)
    seqs = [valid[m] for m in order]
    lengths = [length[m] for m in order]
    overhead = sample_overhead(len(order))
    if sum(lengths) + overhead <= seq_len:
        windows = [seqs]  # fits: one document (each window lists its slice of every segment, in order)
    else:
        windows = [[x[a:b] for x, (a, b) in zip(seqs, bounds)] for bounds in window_bounds(lengths, seq_len, min_slice)]
    n = len(windows)
    stage.emit()
    stage.note(combo_note(combo))
    if n > 1:
        stage.note("windowed_genes")
        if short_tail(lengths, seq_len):
            stage.note("grown_tail")
    stage.note("samples", n)
    for w, parts in enumerate(windows):
        out.append(
            Sample(
                sample_id=f"{source}:{gene.group_id}:w{w}",
                source=source,
                group_id=gene.group_id,
                window=w,
                n_windows=n,
                segments=tuple(zip(order, parts)),
                n_tokens=overhead + sum(map(len, parts)),
                source_file=gene.source_file,
                record_id=gene.record_id,
            )
        )
    return out
