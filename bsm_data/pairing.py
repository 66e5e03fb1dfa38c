"""Turn one gene's sequences into cross-modal pair samples (paper §2.2, appendix B).

Policy, per gene, all randomness drawn from ``pair_draws(seed, group_id)`` (a sha256 digest:
uniform 64-bit draws that depend on nothing else) so reruns, reorderings and any number of
workers give the same samples:

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

try:  # the compiled common path of pair_gene (bsm_data/csrc/pair.c); optional
    from ._gbfast import pair_common as _pair_common
except ImportError:  # pragma: no cover - built without a C compiler
    _pair_common = None

MIN_SLICE = 64
MIN_TAIL_SLICE = 8


def gene_rng(seed: int, key: str) -> random.Random:
    """A RNG that depends only on (seed, key): independent of worker, order and process."""
    return random.Random(int.from_bytes(pair_draws(seed, key)[:8], "little"))


def pair_draws(seed: int, key: str) -> bytes:
    """sha256 of (seed, key): four uniform 64-bit draws, enough for pair_gene's choice of a
    combination and the shuffle of up to three modalities. Seeding a ``random.Random`` per gene
    cost more than the rest of the compiled pairing together."""
    return hashlib.sha256(f"{seed}\x1f{key}".encode()).digest()


def draw_below(draws: bytes, slot: int, n: int) -> int:
    """The ``slot``-th 64-bit little-endian word of ``draws`` reduced to [0, n); the bias of the
    modulo is below n / 2**64."""
    return int.from_bytes(draws[8 * slot : 8 * slot + 8], "little") % n


def choose_and_shuffle(draws: bytes, combos: list) -> list:
    """One of ``combos`` (slot 0), its modalities shuffled by Fisher-Yates (slots 1, 2)."""
    order = list(combos[draw_below(draws, 0, len(combos))])
    for slot, i in enumerate(range(len(order) - 1, 0, -1), start=1):
        j = draw_below(draws, slot, i + 1)
        order[i], order[j] = order[j], order[i]
    return order


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


_compiled_ctx: tuple = (None, None)  # (vocab, its pair_common context)


def compiled_context(vocab: Vocab) -> tuple:
    """What pair_common needs of ``vocab`` (cached for the last vocab): the letter tables and
    ambiguous letters in MODALITIES order, max_ambiguous_fraction, and the notes as ready-made
    tuples (see bsm_data/csrc/pair.c): the pair notes of each combination (bit mask dna=1 rna=2
    protein=4) for one window, windows, windows with a grown tail; the normalized notes of each
    mask of changed modalities."""
    global _compiled_ctx
    if _compiled_ctx[0] is not vocab:
        def of_mask(mask):
            return tuple(m for i, m in enumerate(MODALITIES) if mask >> i & 1)

        ctx = (
            tuple(vocab.letter_tables[m] for m in MODALITIES),
            bytes(vocab.ambiguous_letter[m] for m in MODALITIES),
            float(vocab.max_ambiguous_fraction),
            tuple((combo_note(of_mask(mask)),) + extra for mask in range(8)
                  for extra in ((), ("windowed_genes",), ("windowed_genes", "grown_tail"))),
            tuple(tuple(f"normalized:{m}" for m in of_mask(mask)) for mask in range(8)),
        )
        _compiled_ctx = (vocab, ctx)
    return _compiled_ctx[1]


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
    """Samples (one, or several aligned windows) for one gene, or the rejects explaining why not.

    The common case (every present modality valid, a windowable combination) runs compiled
    (``_gbfast.pair_common``, which returns None, having counted nothing, for anything else); the
    Python code below is the reference and gives the same samples and counts."""
    if _pair_common is not None:
        done = _pair_common(gene, compiled_context(vocab), seed, seq_len, min_slice, source, Sample)
        if done is not None:  # the counts valid_modalities and the code below would make
            samples, n_present, normalized, pair_notes = done
            stage = acct.stage("validate")
            stage.take(n_present)
            stage.emit(n_present)
            for note in normalized:
                stage.note(note)
            stage = acct.stage("pair")
            stage.take()
            stage.emit()
            for note in pair_notes:  # combo_note, then windowed_genes and grown_tail if due
                stage.note(note)
            stage.note("samples", len(samples))
            return samples
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
    order = choose_and_shuffle(pair_draws(seed, gene.group_id), combos)
    seqs = [valid[m] for m in order]
    lengths = [length[m] for m in order]
    overhead = sample_overhead(len(order))
    if sum(lengths) + overhead <= seq_len:
        windows = [seqs]  # fits: one document (each window lists its slice of every segment, in order)
    else:
        windows = [[x[a:b] for x, (a, b) in zip(seqs, bounds)] for bounds in window_bounds(lengths, seq_len, min_slice)]
    n = len(windows)
    stage.emit()
    stage.note(combo_note(tuple(order)))
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
