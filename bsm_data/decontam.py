"""Decontamination: remove every training sample that contains an evaluation test item.

Test items come from the evaluation registry (``bsm_data.evalsets``). Every segment of a
training sample is compared with every item of the same alphabet; a sample is removed *whole*
(stage ``decontam``, reason ``contaminated``) when any segment matches any item, and every
match is kept as evidence for the report (``write_report``).

API::

    index = ContaminationIndex.build(items)            # or .from_registry(registry_dir)
    index.match(sample) -> list[Match]                 # index.match_many(samples): vectorised
    matches = []
    for x in decontaminate(samples, index, acct, matches=matches): ...   # Sample | Reject
    write_report(out_dir, matches, summarize(index, matches, acct))
    # or, as the rounds builder's hook: d = Decontaminator(index); d(samples, acct); d.matches

Matching
--------
- Alphabets. Nucleotides: DNA and RNA in one alphabet (U == T), both strands through
  canonical k-mers, min(k-mer, reverse complement), 2-bit packed. Amino acids as amino acids,
  base-25 packed (the vocabulary's letters). k-mers holding N / X are skipped; DNA is not
  translated. Hashing is numpy only (one vectorised pass per seed letter); the index is the
  sorted array of distinct k-mers with posting lists (item, first position, orientation),
  looked up through a direct-address table (the k-mer spaces are 4^12 and 25^5) or, for
  larger k, ``searchsorted``. No Python work per k-mer.
- Seeds. Protein: contiguous 5-mers. Nucleotides: the spaced seed ``1111011001101111``
  (weight k = 12, span 16; palindromic, so canonical k-mers stay well defined). A spaced seed
  of the same weight keeps the same specificity as a contiguous 12-mer but is hit far more
  often by a mutated copy (it straddles substitutions): on 45-nt items with 5 substitutions,
  P(>= 2 seed hits) = 0.97 against 0.86 for a contiguous 12-mer (simulated).
- Informative k-mers. Low-complexity windows are masked in the index: a window is
  low-complexity when, for some period p (1..6 nucleotides, 1..3 amino acids), >= 80 % of its
  letters equal the letter p positions on (poly-A, (CA)n, (CAG)n, QQQQQ, SGSGS ...).
- Colinear shared k-mers. For a (segment, item) pair, only k-mer hits on one strand whose
  diagonals (segment position - item position) fall within two adjacent bins of 16 count, so
  repeats elsewhere in either sequence (an Alu in a human lncRNA and another Alu in a
  genomic window) and chance hits do not add up. ``shared`` is that count.
- Scores. ``containment`` = shared / informative k-mers of the item: the fraction of the
  *test item* found, so an item embedded in a longer sequence scores like an exact copy.
  ``segment_containment`` = shared / valid k-mers of the segment: the fraction of the segment
  taken from the item, which catches a context window of an item longer than the window (a
  1 kb window of a 5 kb lncRNA has item containment <= 0.2 but segment containment ~1).
- Decision (per alphabet, ``THRESHOLDS``): a match when ``shared >= min_shared`` and
  ``max(containment, segment_containment) >= min_containment``; or, for items of 30 to 300
  residues, when >= 2 colinear k-mers put the item on a diagonal where it is >= 85 % identical
  without gaps over >= 90 % of its length (10 %-mutated 40-60 nt ncRNAs can keep too few
  k-mers for the containment rule). Items with fewer informative k-mers than ``min_shared``
  (very short or low-complexity) are matched by exact substring search, both strands.
- Evidence. ``identity`` is the ungapped identity on the best diagonal over the span of its
  k-mers, ``coverage`` that span / item length, ``kind`` ``exact`` when the whole item occurs
  verbatim (either strand); ``evidence`` holds the coordinates and, for the 8 strongest
  matches of a segment, an excerpt of the alignment (a copy of one ProtStab design matches
  hundreds of near-identical test designs).

Thresholds and why
------------------
A substitution rate p leaves a k-mer with probability (1-p)^k, so a full-length copy at
identity i keeps containment ~ i^k, and a copy of a fraction f of the item ~ f * i^k.

==========  ===================  ===============  ==========  ================================
alphabet    seed                 min_containment  min_shared  copies caught (full / half item)
==========  ===================  ===============  ==========  ================================
nucleotide  1111011001101111     0.15             6           identity >= 85.4 % / >= 90.5 %
protein     11111                0.30             5           identity >= 78.6 % / >= 90.3 %
==========  ===================  ===============  ==========  ================================

- What must be caught: 5 % substitutions keep 0.95^12 = 0.54 (nt) and 0.95^5 = 0.77 (aa) of
  the k-mers; 10 % keep 0.28 and 0.59; a 50 % truncation keeps ~0.5. Every minimum sits below
  these with room for the spread of random mutation placement (planted tests: lowest
  containment 0.25 nt / 0.51 aa at 10 %, 0.36 / 0.42 for halves); short nucleotide items
  also have the ungapped rule.
- What is left alone: homologs. ESM drops training sequences >= 50 % identical to its
  validation set; that is a homology filter, and applied to a gene-centric corpus it would
  remove whole families from every species (each tRNA, rRNA, kinase, actin ...). We remove the
  test items and their near copies (>= ~85 % nt / ~79 % aa identity over the item, or over a
  whole window). Conserved families still cross the line where they share long identical
  blocks: on the bundled data every flagged pair aligns (Biopython local alignment,
  independent of k-mers) at >= 69 % identity, none below 50 % (``tests/test_decontam.py``).
- Chance: a given 12-mer seed hit occurs in a 1 kb segment (both strands) with probability
  ~2e3 / 4^12 = 1.2e-4, a given 5-mer of protein with ~1e3 / 20^5 = 3e-4; >= 6 / 5 of them on
  one diagonal band, and >= 15 % / 30 % of an item's k-mers, do not occur by chance.
- Speed: weight 12 keeps random index occupancy at ~25 % of the 4^12 / 2 canonical k-mers
  for the 3.2 Mnt of bundled test items; a denser seed would multiply posting-list work.

Determinism: items are indexed in (task, split, item_id) order, samples are processed in input
order, every array operation is order-stable and chunking does not change results, so a rerun
gives the same matches and rejects.
"""
from __future__ import annotations

import hashlib
import html
import io
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from . import htmlpage
from .accounting import Accounting
from .evalsets import EvalItem
from .records import Reject, Sample
from .schemas import to_table
from .shards import atomic_write, join, write_dataset_file

STAGE = "decontam"
REASON = "contaminated"
NUCLEOTIDE = "nucleotide"
PROTEIN = "protein"
INVALID = 255
_PROTEIN_LETTERS = "ACDEFGHIKLMNPQRSTVWYXBZUO"  # the vocabulary's order; X is skipped


def alphabet_of(modality: str) -> str:
    if modality in ("dna", "rna"):
        return NUCLEOTIDE
    if modality == "protein":
        return PROTEIN
    raise ValueError(f"unknown modality {modality!r}")


def _lut(pairs: dict[str, int]) -> np.ndarray:
    lut = np.full(256, INVALID, dtype=np.uint8)
    for letter, code in pairs.items():
        lut[ord(letter)] = lut[ord(letter.lower())] = code
    return lut


LUTS = {
    NUCLEOTIDE: _lut({"A": 0, "C": 1, "G": 2, "T": 3, "U": 3}),
    PROTEIN: _lut({c: i for i, c in enumerate(_PROTEIN_LETTERS) if c != "X"}),
}
_COMPLEMENT = str.maketrans("ACGTUN", "TGCAAN")


@dataclass(frozen=True)
class Thresholds:
    """Matching parameters of one alphabet (see the module docstring for the justification).

    ``seed`` is the k-mer pattern: ``1`` positions are read, ``0`` positions skipped; ``k`` is
    its weight (letters read) and ``span`` its length. Nucleotide seeds must be palindromic so
    that canonical (both-strand) k-mers stay well defined."""

    seed: str
    min_containment: float
    min_shared: int
    band: int = 16  # colinear: shared k-mers whose diagonals lie within two adjacent bins of this width
    rescue_max_length: int = 300  # short items: ungapped check of the whole item on the best diagonal
    rescue_min_length: int = 30  # below this a 1-2 mismatch "near copy" can occur by chance
    rescue_min_shared: int = 2
    rescue_min_identity: float = 0.85
    rescue_min_coverage: float = 0.9
    low_complexity: float = 0.8  # mask a window >= this fraction periodic with period 1..3
    periods: tuple[int, ...] = (1, 2, 3)

    def __post_init__(self):
        if set(self.seed) - {"0", "1"} or not self.seed.startswith("1") or not self.seed.endswith("1"):
            raise ValueError(f"seed {self.seed!r}: a 0/1 pattern that starts and ends with 1")
        if not 1 <= self.k <= 32:
            raise ValueError(f"seed {self.seed!r}: weight {self.k}, 2-bit packing allows 1..32")

    @property
    def k(self) -> int:
        return self.seed.count("1")

    @property
    def span(self) -> int:
        return len(self.seed)

    @property
    def offsets(self) -> list[int]:
        return [i for i, c in enumerate(self.seed) if c == "1"]

    def describe(self) -> dict:
        return {"k": self.k, "span": self.span, **asdict(self)}


THRESHOLDS = {
    NUCLEOTIDE: Thresholds(seed="1111011001101111", min_containment=0.15, min_shared=6, periods=(1, 2, 3, 4, 5, 6)),
    PROTEIN: Thresholds(seed="11111", min_containment=0.30, min_shared=5),
}


# --------------------------------------------------------------------------------- k-mers


def encode(seqs: list[str], alphabet: str) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the sequences concatenated with one INVALID separator after each, and the
    start offset of each sequence (plus the total length)."""
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    starts = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths + 1, out=starts[1:])
    raw = ("*".join(seqs) + "*").encode("ascii", "replace")
    return LUTS[alphabet][np.frombuffer(raw, dtype=np.uint8)], starts


def _hash_dtype(th: Thresholds, alphabet: str):
    bits = 2 * th.k if alphabet == NUCLEOTIDE else int(np.ceil(th.k * np.log2(25)))
    return np.uint32 if bits <= 32 else np.uint64


def kmer_hashes(codes: np.ndarray, th: Thresholds, alphabet: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every window start 0..n-span: (hash, forward-is-canonical, valid).

    Nucleotides: the seed's letters 2-bit packed, canonical = min(forward, reverse complement)
    (the seed is palindromic, so the reverse complement's letters are the complements of the
    same positions in reverse order). Protein: base-25 packed. uint32 when the packed k-mer
    fits (nucleotide k <= 16, protein k <= 6), else uint64. ``valid`` is False for windows
    holding an INVALID code (N, X, separators). numpy only: one vectorised pass per seed
    letter, no per-k-mer Python work."""
    n, span = len(codes), th.span
    m = n - span + 1
    dt = _hash_dtype(th, alphabet)
    if m <= 0:
        return np.zeros(0, dt), np.zeros(0, bool), np.zeros(0, bool)
    bad = codes == INVALID
    c = codes.astype(dt)
    c[bad] = 0
    h = np.zeros(m, dtype=dt)
    offsets = th.offsets
    if alphabet == NUCLEOTIDE:
        two = dt(2)
        for o in offsets:
            np.left_shift(h, two, out=h)
            np.bitwise_or(h, c[o : o + m], out=h)
        cc = dt(3) - c
        rc = np.zeros(m, dtype=dt)
        tmp = np.empty(m, dtype=dt)
        for j, o in enumerate(offsets):
            np.left_shift(cc[o : o + m], dt(2 * j), out=tmp)
            np.bitwise_or(rc, tmp, out=rc)
        forward = h <= rc
        np.minimum(h, rc, out=h)
    else:
        base = dt(25)
        for o in offsets:
            np.multiply(h, base, out=h)
            np.add(h, c[o : o + m], out=h)
        forward = np.ones(m, dtype=bool)
    cb = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(bad, out=cb[1:])
    valid = (cb[span:] - cb[:m]) == 0
    return h, forward, valid


def low_complexity(codes: np.ndarray, th: Thresholds) -> np.ndarray:
    """True for window starts whose span is >= ``th.low_complexity`` periodic for a period in
    ``th.periods`` (letters equal to the letter p positions on)."""
    n, span = len(codes), th.span
    m = n - span + 1
    mask = np.zeros(max(m, 0), dtype=bool)
    if m <= 0:
        return mask
    for p in th.periods:
        w = span - p
        if w <= 0 or p >= n:
            continue
        eq = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(codes[:-p] == codes[p:], out=eq[1 : n - p + 1])
        eq[n - p + 1 :] = eq[n - p]
        need = int(np.ceil(th.low_complexity * w))
        mask |= (eq[w : w + m] - eq[:m]) >= need
    return mask


def _window_seq(starts: np.ndarray, m: int) -> np.ndarray:
    """Sequence number of every window start 0..m-1 of a concatenation (``encode``)."""
    return np.repeat(np.arange(len(starts) - 1, dtype=np.int32), np.diff(starts))[:m]


def informative_kmers(seqs: list[str], alphabet: str, th: Thresholds, *, mask: bool = True):
    """The k-mers of ``seqs`` that are valid and (``mask``) not low-complexity, in sequence then
    position order: (hashes, forward flags, positions in their sequence, sequence numbers,
    concatenated codes, sequence starts in the codes).

    Queries pass ``mask=False``: the index holds no low-complexity k-mer, so masking the query
    changes no hit; it would only change the segment's k-mer count (there: valid k-mers)."""
    codes, starts = encode(seqs, alphabet)
    h, fwd, valid = kmer_hashes(codes, th, alphabet)
    keep = valid & ~low_complexity(codes, th) if mask else valid
    pos = np.flatnonzero(keep)
    seq_of = _window_seq(starts, len(keep))[pos]
    small = len(codes) < (1 << 31)
    return h[pos], fwd[pos], (pos - starts[seq_of]).astype(np.int32 if small else np.int64), seq_of, codes, starts


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + c) for each (s, c), vectorised."""
    total = int(counts.sum())
    dt = np.int32 if total < (1 << 31) and (not len(starts) or starts.max() < (1 << 31)) else np.int64
    return np.repeat((starts - (np.cumsum(counts) - counts)).astype(dt), counts) + np.arange(total, dtype=dt)


# ---------------------------------------------------------------------------- exact search

_B = np.uint64(0x9E3779B97F4A7C15)  # odd, so invertible mod 2^64
_B_INV = np.uint64(pow(0x9E3779B97F4A7C15, -1, 1 << 64))


def _poly_prefix(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prefix sums of (code+1) * B^j mod 2^64 and the powers B^-j (both wrap on purpose)."""
    n = len(codes)
    pw = np.full(n, _B, dtype=np.uint64)
    pw[0] = 1
    np.cumprod(pw, out=pw)
    inv = np.full(n, _B_INV, dtype=np.uint64)
    inv[0] = 1
    np.cumprod(inv, out=inv)
    pre = np.zeros(n + 1, dtype=np.uint64)
    np.cumsum((codes.astype(np.uint64) + np.uint64(1)) * pw, out=pre[1:])
    return pre, inv


def window_poly_hashes(codes: np.ndarray, length: int, pre=None, inv=None) -> np.ndarray:
    """Hash of every window of ``length`` codes (equal windows, equal hashes)."""
    if pre is None:
        pre, inv = _poly_prefix(codes)
    m = len(codes) - length + 1
    if m <= 0:
        return np.zeros(0, np.uint64)
    return (pre[length : length + m] - pre[:m]) * inv[:m]


def revcomp(seq: str) -> str:
    return seq.translate(_COMPLEMENT)[::-1]


# ---------------------------------------------------------------------------------- matches


@dataclass(frozen=True)
class Match:
    """One (training segment, evaluation item) match: a row of the ``contamination`` dataset."""

    task: str
    split: str
    item_id: str
    sample_id: str
    source: str
    source_file: str
    record_id: str
    segment: int
    modality: str
    item_modality: str
    kind: str  # exact | near
    strand: str  # + | -
    shared_kmers: int
    item_kmers: int
    containment: float
    segment_containment: float
    identity: float
    coverage: float
    evidence: str

    def as_row(self) -> dict:
        return asdict(self)


@dataclass
class _Alphabet:
    """The index of one alphabet: sorted unique k-mers and, per k-mer, its postings (item
    number, first position in the item, orientation)."""

    alphabet: str
    th: Thresholds
    members: np.ndarray  # global item numbers in this alphabet
    ukmers: np.ndarray  # packed k-mers (uint32 or uint64), sorted, distinct
    offsets: np.ndarray  # postings of ukmers[i]: offsets[i]:offsets[i + 1]
    post_item: np.ndarray  # int32 global item numbers
    post_pos: np.ndarray  # int32 first position of the k-mer in the item
    post_fwd: np.ndarray  # bool: the k-mer reads forward there (nucleotides)
    codes: np.ndarray  # items' codes, concatenated (encode), for the ungapped check
    code_start: np.ndarray  # global item number -> start in codes (-1: other alphabet)
    exact_only: dict = field(default_factory=dict)  # length -> (sorted hashes, item numbers)
    _table: np.ndarray | None = field(default=None, repr=False)

    DIRECT_MAX = 1 << 25  # k-mer spaces up to this size get a direct-address table (int32)

    def lookup(self, h: np.ndarray) -> np.ndarray:
        """Index into ``ukmers`` of each hash, -1 where absent. A direct-address table (built
        on first use, not pickled) when the k-mer space is small (nucleotide k=12: 4^12,
        protein k=5: 25^5), else a binary search over the sorted needles."""
        space = (4 if self.alphabet == NUCLEOTIDE else 25) ** self.th.k
        if not len(self.ukmers):
            return np.full(len(h), -1, dtype=np.int64)
        if space <= self.DIRECT_MAX:
            if self._table is None:
                t = np.full(space, -1, dtype=np.int32)
                t[self.ukmers] = np.arange(len(self.ukmers), dtype=np.int32)
                self._table = t
            return self._table[h]
        order = np.argsort(h, kind="stable")
        idx = np.searchsorted(self.ukmers, h[order])
        np.minimum(idx, len(self.ukmers) - 1, out=idx)
        out = np.full(len(h), -1, dtype=np.int64)
        found = self.ukmers[idx] == h[order]
        out[order[found]] = idx[found]
        return out

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_table"} | {"_table": None}


@dataclass
class _Pairs:
    """Candidate (segment, item) pairs of one batch, with their colinear evidence."""

    seg: np.ndarray
    item: np.ndarray
    shared: np.ndarray  # colinear shared k-mers
    strand_minus: np.ndarray  # bool
    diag: np.ndarray  # exact best diagonal (plus: spos - ipos; minus: spos + ipos)
    lo: np.ndarray  # item span of the k-mers on that diagonal: [lo, hi)
    hi: np.ndarray


class ContaminationIndex:
    """All registered items, indexed by informative k-mers per alphabet.

    ``ContaminationIndex.build(items)``; ``index.match(sample)`` -> list[Match];
    ``index.match_many(samples)`` -> one list per sample (vectorised over the batch)."""

    def __init__(self, items: list[EvalItem], alphabets: dict[str, _Alphabet], n_kmers: np.ndarray, thresholds: dict, registry_sha256: str | None):
        self.items = items
        self.alphabets = alphabets
        self.n_kmers = n_kmers
        self.thresholds = thresholds
        self.registry_sha256 = registry_sha256
        self.lengths = np.array([len(it.sequence) for it in items], dtype=np.int64)

    @classmethod
    def build(cls, items: Iterable[EvalItem], thresholds: dict[str, Thresholds] | None = None, *, registry_sha256: str | None = None) -> "ContaminationIndex":
        th_all = dict(THRESHOLDS)
        th_all.update(thresholds or {})
        for a, th in th_all.items():
            if a == NUCLEOTIDE and th.seed != th.seed[::-1]:
                raise ValueError(f"nucleotide seed {th.seed!r} must be palindromic (canonical k-mers)")
        items = sorted(items, key=lambda it: it.key)
        dup = [k for k, n in Counter(it.key for it in items).items() if n > 1]
        if dup:
            raise ValueError(f"duplicate evaluation items {dup[:5]}")
        n_kmers = np.zeros(len(items), dtype=np.int64)
        alphabets = {}
        for alphabet, th in th_all.items():
            members = np.array([i for i, it in enumerate(items) if alphabet_of(it.modality) == alphabet], dtype=np.int64)
            seqs = [items[i].sequence for i in members]
            h, fwd, pos, local, codes, starts = informative_kmers(seqs, alphabet, th)
            item_no = members[local] if len(members) else np.zeros(0, np.int64)
            # order by (k-mer, item, position): k-mers come in (item, position) order, so a
            # sort of (hash << 32 | running number) gives it without an argsort
            if h.dtype == np.uint32 and len(h) < (1 << 32):
                order = (np.sort((h.astype(np.uint64) << np.uint64(32)) | np.arange(len(h), dtype=np.uint64)) & np.uint64(0xFFFFFFFF)).astype(np.int64)
            else:
                order = np.argsort(h, kind="stable")
            h, item_no, pos, fwd = h[order], item_no[order], pos[order], fwd[order]
            if len(h):  # one posting per (k-mer, item): its first position
                first = np.ones(len(h), dtype=bool)
                first[1:] = (h[1:] != h[:-1]) | (item_no[1:] != item_no[:-1])
                h, item_no, pos, fwd = h[first], item_no[first], pos[first], fwd[first]
            n_kmers += np.bincount(item_no, minlength=len(items))
            ustart = np.flatnonzero(np.r_[True, h[1:] != h[:-1]]) if len(h) else np.zeros(0, np.int64)
            ukmers = h[ustart]
            code_start = np.full(len(items), -1, dtype=np.int64)
            code_start[members] = starts[:-1]
            a = _Alphabet(
                alphabet, th, members, ukmers, np.append(ustart, len(h)).astype(np.int32 if len(h) < (1 << 31) else np.int64), item_no.astype(np.int32),
                pos.astype(np.int32), fwd, codes, code_start,
            )
            short = [i for i in members if n_kmers[i] < th.min_shared]
            by_len: dict[int, list] = defaultdict(list)
            for i in short:
                seq = items[i].sequence
                by_len[len(seq)].append((seq, i))
                if alphabet == NUCLEOTIDE:
                    by_len[len(seq)].append((revcomp(seq), i))
            for length, entries in sorted(by_len.items()):
                ecodes, _ = encode([e[0] for e in entries], alphabet)
                pre, inv = _poly_prefix(ecodes)
                s = np.arange(len(entries)) * (length + 1)
                hashes = (pre[s + length] - pre[s]) * inv[s]
                o = np.argsort(hashes, kind="stable")
                a.exact_only[length] = (hashes[o], np.array([entries[j][1] for j in o], dtype=np.int64))
            alphabets[alphabet] = a
        return cls(items, alphabets, n_kmers, th_all, registry_sha256)

    @classmethod
    def from_registry(cls, registry, tasks=None, splits=None, thresholds=None) -> "ContaminationIndex":
        from .evalsets import Registry

        reg = registry if isinstance(registry, Registry) else Registry(registry)
        return cls.build(reg.items(tasks, splits), thresholds, registry_sha256=reg.sha256)

    # ------------------------------------------------------------------------ description

    def describe(self) -> dict:
        """Parameters and counts, for manifests and reports."""
        tasks: dict[tuple, Counter] = defaultdict(Counter)
        for i, it in enumerate(self.items):
            c = tasks[(it.task, it.split)]
            c["items"] += 1
            c["residues"] += len(it.sequence)
            if self.n_kmers[i] < self.thresholds[alphabet_of(it.modality)].min_shared:
                c["exact_only"] += 1
        h = hashlib.sha256()
        for it in self.items:
            h.update("\x1f".join((it.task, it.split, it.item_id, it.modality, it.sequence)).encode() + b"\x1e")
        return {
            "items": len(self.items),
            "items_sha256": h.hexdigest(),
            "registry_sha256": self.registry_sha256,
            "thresholds": {a: th.describe() for a, th in self.thresholds.items()},
            "index": {a: {"kmers": int(len(x.ukmers)), "postings": int(len(x.post_item))} for a, x in self.alphabets.items()},
            "tasks": [{"task": t, "split": s, **dict(c)} for (t, s), c in sorted(tasks.items())],
        }

    # ---------------------------------------------------------------------------- match

    def match(self, sample: Sample) -> list[Match]:
        return self.match_many([sample])[0]

    CHUNK_RESIDUES = 400_000  # measured: arrays of a few MB stay in cache; 2.5x faster than 20M

    def match_many(self, samples: list[Sample]) -> list[list[Match]]:
        """Matches of each sample, in sample order; each list sorted by (segment, task, split, item).
        Vectorised over chunks of about ``CHUNK_RESIDUES`` residues."""
        out: list[list[Match]] = []
        chunk, size = [], 0
        for smp in samples:
            chunk.append(smp)
            size += sum(len(x) for _, x in smp.segments)
            if size >= self.CHUNK_RESIDUES:
                out += self._match_chunk(chunk)
                chunk, size = [], 0
        if chunk:
            out += self._match_chunk(chunk)
        return out

    def _match_chunk(self, samples: list[Sample]) -> list[list[Match]]:
        out: list[list[Match]] = [[] for _ in samples]
        for alphabet, a in self.alphabets.items():
            segs = [(si, gi, seq) for si, s in enumerate(samples) for gi, (m, seq) in enumerate(s.segments) if alphabet_of(m) == alphabet]
            if not segs:
                continue
            seqs = [x[2] for x in segs]
            found, codes, starts = self._kmer_matches(a, alphabet, seqs)
            if a.exact_only:
                for key, val in self._exact_matches(a, alphabet, seqs).items():
                    found.setdefault(key, val)
            if not found:
                continue
            keys = sorted(found)
            g = np.array([k[0] for k in keys], dtype=np.int64)
            item = np.array([k[1] for k in keys], dtype=np.int64)
            shared, seg_k, minus, diag, lo, hi = (np.array([found[k][j] for k in keys], dtype=np.int64) for j in range(6))
            minus = minus.astype(bool)
            span_id, _ = self._ungapped(a, alphabet, g, item, minus, diag, codes, starts, lo, hi)
            full_id, full_cov = self._ungapped(a, alphabet, g, item, minus, diag, codes, starts)
            exact = (full_id == 1.0) & (full_cov == 1.0)
            lo, hi = np.where(exact, 0, lo), np.where(exact, self.lengths[item], hi)
            span_id = np.where(exact, 1.0, span_id)
            self._add_matches(out, samples, segs, alphabet, g, item, shared, seg_k, minus, diag, lo, hi, span_id, exact)
        for lst in out:
            lst.sort(key=lambda m: (m.segment, m.task, m.split, m.item_id))
        return out

    def _add_matches(self, out, samples, segs, alphabet, g, item, shared, seg_k, minus, diag, lo, hi, ident, exact) -> None:
        span = self.thresholds[alphabet].span
        item_k = self.n_kmers[item]
        cont = np.where(item_k > 0, np.minimum(shared / np.maximum(item_k, 1), 1.0), 1.0)
        cont = np.where(exact, 1.0, cont)
        seg_len = np.array([len(segs[x][2]) for x in g], dtype=np.int64)
        seg_cont = np.minimum(shared / np.maximum(seg_k, 1), 1.0)
        seg_cont = np.where(shared == 0, self.lengths[item] / np.maximum(seg_len, 1), seg_cont)  # exact search only
        cov = (hi - lo) / self.lengths[item]
        # excerpts for the strongest MAX_EXCERPTS matches of each segment (a copy of one item of
        # a family of near-identical test items, e.g. ProtStab designs, matches hundreds)
        rank = np.lexsort((item, -shared, -cont, ~exact, g))
        first = np.r_[True, g[rank][1:] != g[rank][:-1]]
        run = np.arange(len(rank)) - np.maximum.accumulate(np.where(first, np.arange(len(rank)), 0))
        with_excerpt = np.zeros(len(g), dtype=bool)
        with_excerpt[rank[run < MAX_EXCERPTS]] = True
        n_seg = np.bincount(g, minlength=len(segs))
        for j in range(len(g)):
            si, gi, seq = segs[g[j]]
            smp, it = samples[si], self.items[item[j]]
            strand = "-" if minus[j] else "+"
            # item position i pairs with target position i + d (target: segment, or its reverse complement)
            d = int(diag[j]) if not minus[j] else len(seq) - span - int(diag[j])
            length = int(hi[j] - lo[j])
            if with_excerpt[j]:
                norm = (lambda x: x.replace("U", "T")) if alphabet == NUCLEOTIDE else (lambda x: x)
                target = norm(seq) if not minus[j] else revcomp(norm(seq))
                text = _excerpt(norm(it.sequence), target, int(lo[j]), int(lo[j]) + d, length, strand, len(seq), float(ident[j]))
            else:
                text = _where(int(lo[j]), int(lo[j]) + d, length, strand, len(seq), float(ident[j]))
                text += f" (excerpts for the {MAX_EXCERPTS} strongest of this segment's {n_seg[g[j]]} matches)"
            out[si].append(Match(
                task=it.task, split=it.split, item_id=it.item_id, sample_id=smp.sample_id, source=smp.source,
                source_file=smp.source_file, record_id=smp.record_id, segment=gi, modality=smp.segments[gi][0],
                item_modality=it.modality, kind="exact" if exact[j] else "near", strand=strand,
                shared_kmers=int(shared[j]), item_kmers=int(item_k[j]), containment=round(float(cont[j]), 4),
                segment_containment=round(float(seg_cont[j]), 4), identity=round(float(ident[j]), 4),
                coverage=round(float(cov[j]), 4), evidence=text,
            ))

    def candidate_pairs(self, a: _Alphabet, alphabet: str, seqs: list[str]) -> tuple[_Pairs, np.ndarray, np.ndarray, np.ndarray]:
        """The (segment, item) pairs that may match, with their colinear shared k-mers: the
        k-mer hits whose diagonals fall in the best two adjacent bins of width ``band`` on one
        strand (so repeats elsewhere in either sequence, and chance hits, do not add up).

        Pairs that cannot reach the thresholds even counting every hit are dropped before the
        diagonal work. Returns the pairs, the segments' informative k-mer counts, and the
        batch's codes and sequence starts."""
        th = a.th
        h, fwd, pos, seg, codes, starts = informative_kmers(seqs, alphabet, th, mask=False)
        seg_kmers = np.bincount(seg, minlength=len(seqs))
        z = np.zeros(0, np.int64)
        empty = _Pairs(z, z, z, np.zeros(0, bool), z, z, z)
        slot = a.lookup(h)
        hit = np.flatnonzero(slot >= 0)
        if not len(hit):
            return empty, seg_kmers, codes, starts
        u = slot[hit]
        counts = a.offsets[u + 1] - a.offsets[u]
        post = _ranges(a.offsets[u], counts)
        hit = np.repeat(hit.astype(np.int32 if len(h) < (1 << 31) else np.int64), counts)  # query k-mer of each posting
        n_items = len(self.items)
        hseg, hitem = seg[hit], a.post_item[post]
        small = len(seqs) * n_items < (1 << 31)
        pair_key = hseg.astype(np.int32) * np.int32(n_items) + hitem if small else hseg * np.int64(n_items) + hitem
        # group by pair with a plain sort (much faster than argsort / unique(return_inverse))
        sk = np.sort(pair_key)
        bounds = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
        pairs = sk[bounds].astype(np.int64)
        n_hits = np.diff(np.r_[bounds, len(sk)])
        p_seg, p_item = pairs // n_items, pairs % n_items
        # upper bound: every hit colinear
        bound = np.maximum(n_hits / np.maximum(self.n_kmers[p_item], 1), n_hits / np.maximum(seg_kmers[p_seg], 1))
        maybe = (n_hits >= th.min_shared) & (bound >= th.min_containment)
        L = self.lengths[p_item]
        maybe |= (n_hits >= th.rescue_min_shared) & (L <= th.rescue_max_length) & (L >= th.rescue_min_length)
        if not maybe.any():
            return empty, seg_kmers, codes, starts
        # hits of the kept pairs: cheap superset by segment and item, then exact by key
        seg_ok = np.zeros(len(seqs), dtype=bool)
        seg_ok[p_seg[maybe]] = True
        item_ok = np.zeros(n_items, dtype=bool)
        item_ok[p_item[maybe]] = True
        sel = np.flatnonzero(seg_ok[hseg] & item_ok[hitem])
        kept = pairs[maybe].astype(pair_key.dtype)
        j = np.minimum(np.searchsorted(kept, pair_key[sel]), len(kept) - 1)
        keep = kept[j] == pair_key[sel]
        pid = j[keep].astype(np.int64)
        sel = sel[keep]
        hit, post = hit[sel], post[sel]
        p_seg, p_item = p_seg[maybe], p_item[maybe]
        spos, ipos = pos[hit], a.post_pos[post].astype(np.int64)
        minus = fwd[hit] != a.post_fwd[post]
        diag = np.where(minus, spos + ipos, spos - ipos)
        # colinear count: hits per (pair, strand, diagonal bin); best two adjacent bins
        off = np.int64(1 << 31)  # |diagonal| < 2^31; keys: (pair * 2 + strand) << 33 | diagonal bits
        sh = np.int64(33)
        ps = pid * 2 + minus
        keys, kc = np.unique((ps << sh) + (diag + off) // th.band, return_counts=True)
        nxt = np.zeros(len(keys), dtype=np.int64)
        adj = np.flatnonzero(keys[1:] == keys[:-1] + 1)
        nxt[adj] = kc[adj + 1]
        band_count = kc + nxt
        kp = keys >> sh
        order = np.lexsort((-band_count, kp >> 1))
        first = np.ones(len(order), dtype=bool)
        first[1:] = (kp[order] >> 1)[1:] != (kp[order] >> 1)[:-1]
        best = order[first]  # one per pair, in pair order
        colinear = band_count[best]
        best_ps = kp[best]
        # the most frequent exact diagonal of the best strand (for the ungapped check)
        on = ps == best_ps[pid]
        k3, c3 = np.unique((ps[on] << sh) + (diag[on] + off), return_counts=True)
        o3 = np.lexsort((-c3, k3 >> sh))
        f3 = np.ones(len(o3), dtype=bool)
        f3[1:] = (k3[o3] >> sh)[1:] != (k3[o3] >> sh)[:-1]
        best_diag = (k3[o3[f3]] & ((np.int64(1) << sh) - 1)) - off
        # item span of the hits on the best diagonal
        on = np.flatnonzero((ps == best_ps[pid]) & (diag == best_diag[pid]))
        lo = np.full(len(p_seg), np.iinfo(np.int64).max, dtype=np.int64)
        hi = np.zeros(len(p_seg), dtype=np.int64)
        np.minimum.at(lo, pid[on], ipos[on])
        np.maximum.at(hi, pid[on], ipos[on] + th.span)
        return _Pairs(p_seg, p_item, colinear, (best_ps & 1).astype(bool), best_diag, lo, hi), seg_kmers, codes, starts

    def _kmer_matches(self, a: _Alphabet, alphabet: str, seqs: list[str]) -> tuple[dict, np.ndarray, np.ndarray]:
        """(segment, item) -> (shared, segment k-mers, minus strand, diagonal, lo, hi) of the
        pairs that pass the thresholds, plus the batch's codes and sequence starts."""
        th = a.th
        p, seg_kmers, codes, starts = self.candidate_pairs(a, alphabet, seqs)
        if not len(p.seg):
            return {}, codes, starts
        shared = np.minimum(p.shared, self.n_kmers[p.item])
        score = np.maximum(shared / np.maximum(self.n_kmers[p.item], 1), shared / np.maximum(seg_kmers[p.seg], 1))
        ok = (shared >= th.min_shared) & (score >= th.min_containment)
        # short items: ungapped check of the whole item on the best diagonal
        L = self.lengths[p.item]
        r = np.flatnonzero(~ok & (shared >= th.rescue_min_shared) & (L <= th.rescue_max_length) & (L >= th.rescue_min_length))
        if len(r):
            ident, cov = self._ungapped(a, alphabet, p.seg[r], p.item[r], p.strand_minus[r], p.diag[r], codes, starts)
            ok[r] = (ident >= th.rescue_min_identity) & (cov >= th.rescue_min_coverage)
        k = np.flatnonzero(ok)
        found = {
            (int(p.seg[j]), int(p.item[j])): (int(shared[j]), int(seg_kmers[p.seg[j]]), bool(p.strand_minus[j]), int(p.diag[j]), int(p.lo[j]), int(p.hi[j]))
            for j in k
        }
        return found, codes, starts

    def _ungapped(self, a: _Alphabet, alphabet: str, seg, item, minus, diag, codes, starts, lo=None, hi=None) -> tuple[np.ndarray, np.ndarray]:
        """Identity and coverage of each item on its diagonal, without gaps, vectorised: over
        item positions [lo, hi) (default: the whole item), counting only positions that fall
        inside the segment. Coverage = positions inside / item length."""
        L = self.lengths[item]
        lo = np.zeros(len(item), np.int64) if lo is None else lo
        hi = L if hi is None else hi
        n = hi - lo
        owner = np.repeat(np.arange(len(item)), n)
        j = _ranges(lo, n).astype(np.int64)  # item positions
        d, mi = diag[owner], minus[owner]
        ls = (starts[seg + 1] - starts[seg] - 1)[owner]
        # plus: item j pairs with segment j + d; minus: with the complement of segment
        # d + span - 1 - j (d = spos + ipos of the k-mer hits)
        t = np.where(mi, d + a.th.span - 1 - j, j + d)
        inside = (t >= 0) & (t < ls)
        sc = codes[starts[seg][owner] + np.clip(t, 0, np.maximum(ls - 1, 0))]
        ic = a.codes[a.code_start[item][owner] + j]
        if alphabet == NUCLEOTIDE:
            sc = np.where(mi & (sc != INVALID), np.uint8(3) - sc, sc)
        eq = inside & (sc == ic) & (ic != INVALID)
        n_in = np.bincount(owner, weights=inside, minlength=len(item))
        n_eq = np.bincount(owner, weights=eq, minlength=len(item))
        return n_eq / np.maximum(n_in, 1), n_in / L

    def _exact_matches(self, a: _Alphabet, alphabet: str, seqs: list[str]) -> dict:
        """Exact occurrences of the items too short or too repetitive for k-mers."""
        found = {}
        n_patterns = sum(len(v[1]) for v in a.exact_only.values())
        if n_patterns <= 64:  # a few patterns: C substring search over the joined batch
            norm = (lambda x: x.replace("U", "T")) if alphabet == NUCLEOTIDE else (lambda x: x)
            text = norm("*".join(seqs))
            starts = np.cumsum([0] + [len(x) + 1 for x in seqs])
            span = a.th.span
            for item_nos in (v[1] for v in a.exact_only.values()):
                for i in sorted(set(int(x) for x in item_nos)):
                    target = norm(self.items[i].sequence)
                    L = len(target)
                    pats = [(target, False)] + ([(revcomp(target), True)] if alphabet == NUCLEOTIDE else [])
                    for pat, minus in pats:
                        q = text.find(pat)
                        while q >= 0:
                            g = int(np.searchsorted(starts, q, side="right") - 1)
                            x = q - int(starts[g])
                            found.setdefault((g, i), (0, 0, minus, x + L - span if minus else x, 0, L))
                            q = text.find(pat, q + 1)
            return found
        codes, starts = encode(seqs, alphabet)
        pre, inv = _poly_prefix(codes)
        for length, (hashes, item_nos) in a.exact_only.items():
            w = window_poly_hashes(codes, length, pre, inv)
            if not len(w):
                continue
            idx = np.searchsorted(hashes, w)
            np.minimum(idx, len(hashes) - 1, out=idx)
            span = a.th.span
            for q in np.flatnonzero(hashes[idx] == w):
                g = int(np.searchsorted(starts, q, side="right") - 1)
                x = int(q - starts[g])
                window = seqs[g][x : x + length]
                j = idx[q]
                while j < len(hashes) and hashes[j] == w[q]:
                    i = int(item_nos[j])
                    target = self.items[i].sequence
                    if len(window) == length:
                        if _same(window, target, alphabet):
                            found.setdefault((g, i), (0, 0, False, x, 0, length))
                        elif alphabet == NUCLEOTIDE and _same(window, revcomp(target), alphabet):
                            found.setdefault((g, i), (0, 0, True, x + length - span, 0, length))
                    j += 1
        return found


def _same(a: str, b: str, alphabet: str) -> bool:
    if alphabet == NUCLEOTIDE:
        return a.replace("U", "T") == b.replace("U", "T")
    return a == b


# --------------------------------------------------------------------------------- evidence

EXCERPT = 60


MAX_EXCERPTS = 8


def _where(i0: int, t0: int, length: int, strand: str, seg_len: int, ident: float) -> str:
    if strand == "+":
        where = f"segment[{t0}:{t0 + length}]"
    else:  # the target is the reverse complement: map back to segment coordinates
        where = f"revcomp(segment[{seg_len - t0 - length}:{seg_len - t0}])"
    return f"item[{i0}:{i0 + length}] ~ {where} strand {strand}, identity {ident:.3f} over {length} columns"


def _excerpt(item: str, target: str, i0: int, t0: int, length: int, strand: str, seg_len: int, ident: float = 1.0) -> str:
    """Where the item lies in the segment and up to EXCERPT aligned columns (item / match
    line / segment), starting just before the first mismatch so a difference shows."""
    head = _where(i0, t0, length, strand, seg_len, ident)
    a = item[i0 : i0 + length]
    b = target[t0 : t0 + length]
    first = next((j for j, (x, y) in enumerate(zip(a, b)) if x != y), 0)
    s = max(0, min(first - 10, length - EXCERPT))
    a, b = a[s : s + EXCERPT], b[s : s + EXCERPT]
    mid = "".join("|" if x == y else "." for x, y in zip(a, b))
    label = "segment" if strand == "+" else "revcomp"
    return f"{head}\nitem    {i0 + s:>6} {a}\n               {mid}\n{label} {t0 + s:>6} {b}"


# ---------------------------------------------------------------------------- the stage


class Decontaminator:
    """The ``decontam`` stage as a callable: ``Decontaminator(index)(samples, acct)``.

    Yields kept Samples and a Reject (stage ``decontam``, reason ``contaminated``) for every
    removed sample, in input order; Rejects in the input pass through uncounted. Keeps every
    Match in ``self.matches`` for the report. Samples are buffered in batches of about
    ``batch_residues`` residues and matched in chunks of ``CHUNK_RESIDUES``; the index itself
    takes ~16 bytes per test-item residue plus two direct-address tables (64 MiB + 37 MiB)."""

    def __init__(self, index: ContaminationIndex, *, batch_residues: int = 1_000_000, matches: list | None = None):
        self.index = index
        self.batch_residues = batch_residues
        self.matches: list[Match] = matches if matches is not None else []

    def __call__(self, samples: Iterable[Sample | Reject], acct: Accounting) -> Iterator[Sample | Reject]:
        stage = acct.stage(STAGE)
        batch: list[Sample | Reject] = []
        size = 0
        for item in samples:
            batch.append(item)
            if isinstance(item, Sample):
                size += sum(len(s) for _, s in item.segments)
            if size >= self.batch_residues:
                yield from self._flush(batch, stage, acct)
                batch, size = [], 0
        yield from self._flush(batch, stage, acct)

    def _flush(self, batch, stage, acct) -> Iterator[Sample | Reject]:
        samples = [x for x in batch if isinstance(x, Sample)]
        found = iter(self.index.match_many(samples))
        for x in batch:
            if isinstance(x, Reject):
                yield x
                continue
            stage.take()
            ms = next(found)
            if not ms:
                stage.emit()
                yield x
                continue
            self.matches += ms
            stage.note("matches", len(ms))
            yield acct.reject(
                STAGE, REASON, detail=reject_detail(ms), source=x.source, source_file=x.source_file,
                record_id=x.record_id, item_id=x.sample_id,
            )


def reject_detail(ms: list[Match]) -> str:
    best = max(ms, key=lambda m: (m.kind == "exact", m.containment, m.identity))
    tasks = sorted({m.task for m in ms})
    more = f"; {len(ms)} matches in {', '.join(tasks)}" if len(ms) > 1 else ""
    return (
        f"{best.kind} match of {best.task}/{best.split} item {best.item_id} in segment {best.segment} "
        f"({best.modality}, strand {best.strand}): containment {best.containment:.2f}, "
        f"identity {best.identity:.2f} over {best.coverage:.0%} of the item{more}"
    )


def decontaminate(
    samples: Iterable[Sample | Reject], index: ContaminationIndex, acct: Accounting, *, matches: list | None = None,
    batch_residues: int = 1_000_000,
) -> Iterator[Sample | Reject]:
    """Stage ``decontam``: kept Samples pass through, contaminated ones become Rejects
    (reason ``contaminated``), in input order. Appends every Match to ``matches`` (as the
    samples are checked) when given."""
    yield from Decontaminator(index, batch_residues=batch_residues, matches=matches)(samples, acct)


# ----------------------------------------------------------------------------------- report

REPORT_DIR = "report"
MAX_EXAMPLES = 5
MAX_REMOVED_ROWS = 500


def summarize(index: ContaminationIndex, matches: list[Match], acct: Accounting | None = None) -> dict:
    """Per task and split: items registered, items hit, samples removed, matches, kinds."""
    desc = index.describe()
    stage = acct.stages.get(STAGE) if acct is not None else None
    per: dict[tuple, dict] = {}
    for t in desc["tasks"]:
        per[(t["task"], t["split"])] = {"task": t["task"], "split": t["split"], "items": t["items"], "items_hit": set(), "samples": set(), "matches": 0, "kinds": Counter(), "sources": Counter()}
    for m in matches:
        p = per[(m.task, m.split)]
        p["items_hit"].add(m.item_id)
        if m.sample_id not in p["samples"]:
            p["sources"][m.source] += 1
        p["samples"].add(m.sample_id)
        p["matches"] += 1
        p["kinds"][m.kind] += 1
    tasks = [
        {**{k: v for k, v in p.items() if k not in ("items_hit", "samples", "kinds", "sources")},
         "items_hit": len(p["items_hit"]), "samples_removed": len(p["samples"]),
         "kinds": dict(sorted(p["kinds"].items())), "sources": dict(sorted(p["sources"].items()))}
        for _, p in sorted(per.items())
    ]
    removed: dict[str, str] = {}
    for m in matches:
        removed.setdefault(m.sample_id, m.source)
    return {
        "samples_checked": stage.n_in if stage else None,
        "samples_removed": stage.n_rejected if stage else len(removed),
        "samples_with_matches": len(removed),
        "removed_by_source": dict(sorted(Counter(removed.values()).items())),
        "matches": len(matches),
        "tasks": tasks,
        "index": desc,
    }


def _sorted_rows(matches: list[Match]) -> list[dict]:
    return [m.as_row() for m in sorted(matches, key=lambda m: (m.task, m.split, m.item_id, m.sample_id, m.segment))]


def write_report(out_dir: str, matches: list[Match], summary: dict) -> dict:
    """Write ``<out_dir>/report/``: ``contamination/part-00000.parquet`` (schema contamination),
    ``contamination.md``, ``contamination.html`` (self-contained) and ``summary.json``.
    ``bsm query "SELECT ..." --data <out_dir>/report`` opens the Parquet as view
    ``contamination``. Returns the Parquet file's entry (path relative to ``out_dir``, rows,
    bytes, sha256), ready for a manifest's ``files["contamination"]`` (then ``bsm query`` on
    ``out_dir`` itself has the view too, and ``bsm validate`` checks it)."""
    rdir = join(out_dir, REPORT_DIR)
    rows = _sorted_rows(matches)
    entry = write_dataset_file(
        "contamination", to_table("contamination", rows), rdir, "contamination/part-00000.parquet",
        dictionary=["task", "split", "source", "source_file", "modality", "item_modality", "kind", "strand"],
    )
    entry["path"] = f"{REPORT_DIR}/{entry['path']}"
    summary = {**summary, "report_file": entry}
    atomic_write(join(rdir, "summary.json"), (json.dumps(summary, indent=1, default=str) + "\n").encode())
    atomic_write(join(rdir, "contamination.md"), render_markdown(rows, summary).encode())
    atomic_write(join(rdir, "contamination.html"), render_html(rows, summary).encode())
    return entry


def _removed_samples(rows: list[dict]) -> list[dict]:
    by: dict[str, dict] = {}
    for r in rows:
        s = by.setdefault(r["sample_id"], {"sample_id": r["sample_id"], "source": r["source"], "source_file": r["source_file"], "record_id": r["record_id"], "hits": []})
        s["hits"].append(f"{r['task']}/{r['item_id']} ({r['containment']:.2f})")
    return [by[k] for k in sorted(by)]


def _examples(rows: list[dict]) -> dict[str, list[dict]]:
    """Per task, up to MAX_EXAMPLES matches: the strongest first, one per item."""
    per: dict[str, list] = defaultdict(list)
    for r in rows:
        per[r["task"]].append(r)
    out = {}
    for task, rs in sorted(per.items()):
        rs = sorted(rs, key=lambda r: (-r["containment"], -r["identity"], r["item_id"], r["sample_id"]))
        seen, pick = set(), []
        for r in rs:  # one example per item and per sample, so a family hit shows variety
            if r["item_id"] not in seen and r["sample_id"] not in seen:
                seen.update((r["item_id"], r["sample_id"]))
                pick.append(r)
            if len(pick) == MAX_EXAMPLES:
                break
        out[task] = pick
    return out


THRESHOLD_HEAD = ["alphabet", "seed (k / span)", "min containment", "min shared k-mers", "diagonal band",
                  "low-complexity mask", "short items (ungapped rule)"]


def _threshold_rows(summary: dict) -> list[list]:
    return [
        [a, f"{t['seed']} ({t['k']} / {t['span']})", t["min_containment"], t["min_shared"], t["band"],
         f">= {t['low_complexity']:.0%} periodic, p in {','.join(map(str, t['periods']))}",
         f"{t['rescue_min_length']}-{t['rescue_max_length']}: >= {t['rescue_min_identity']:.0%} identity over >= {t['rescue_min_coverage']:.0%}"]
        for a, t in summary["index"]["thresholds"].items()
    ]


def _md(x) -> str:
    return str(x).replace("|", "\\|")


def render_markdown(rows: list[dict], summary: dict) -> str:
    L = ["# Decontamination report", ""]
    checked = summary.get("samples_checked")
    L.append(f"- samples checked: {checked if checked is not None else 'n/a'}")
    L.append(f"- samples removed: {summary['samples_removed']}")
    L.append(f"- matches: {summary['matches']}")
    L.append(f"- evaluation items: {summary['index']['items']} (registry sha256 {summary['index']['registry_sha256'] or 'n/a'})")
    L.append("- match rows: `report/contamination/part-00000.parquet` (query with `bsm query \"SELECT * FROM contamination\" --data <dir>/report`)")
    L += ["", "## Thresholds", "", "| " + " | ".join(THRESHOLD_HEAD) + " |", "|" + "---|" * len(THRESHOLD_HEAD)]
    L += ["| " + " | ".join(str(c) for c in row) + " |" for row in _threshold_rows(summary)]
    if summary.get("removed_by_source"):
        L.append("\nRemoved samples by source: " + ", ".join(f"{k}={n}" for k, n in summary["removed_by_source"].items()))
    L += ["", "## Per task", "", "| task | split | items | items hit | samples removed | matches | kinds | sources of removed samples |", "|---|---|---|---|---|---|---|---|"]
    for t in summary["tasks"]:
        kinds = ", ".join(f"{k}={n}" for k, n in t["kinds"].items()) or "-"
        src = ", ".join(f"{k}={n}" for k, n in t["sources"].items()) or "-"
        L.append(f"| {_md(t['task'])} | {_md(t['split'])} | {t['items']} | {t['items_hit']} | {t['samples_removed']} | {t['matches']} | {kinds} | {_md(src)} |")
    L += ["", "## Examples", ""]
    examples = _examples(rows)
    if not examples:
        L.append("No training sample matched an evaluation item.")
    for task, rs in examples.items():
        L += [f"### {task}", ""]
        for r in rs:
            L.append(
                f"- **{r['item_id']}** ({r['split']}, {r['item_modality']}) in sample `{r['sample_id']}` segment {r['segment']} "
                f"({r['modality']}); source {r['source']}, file {r['source_file']}, record {r['record_id']}: {r['kind']}, "
                f"containment {r['containment']:.3f}, segment containment {r['segment_containment']:.3f}, "
                f"{r['shared_kmers']}/{r['item_kmers']} k-mers, identity {r['identity']:.3f}, coverage {r['coverage']:.3f}"
            )
            L += ["", "```", r["evidence"], "```", ""]
    removed = _removed_samples(rows)
    L += ["## Removed samples", "", "| sample | source | source file | record | matched items (containment) |", "|---|---|---|---|---|"]
    for s in removed[:MAX_REMOVED_ROWS]:
        hits = "; ".join(s["hits"][:5]) + (" …" if len(s["hits"]) > 5 else "")
        L.append(f"| {_md(s['sample_id'])} | {_md(s['source'])} | {_md(s['source_file'])} | {_md(s['record_id'])} | {_md(hits)} |")
    if len(removed) > MAX_REMOVED_ROWS:
        L.append(f"\n{len(removed) - MAX_REMOVED_ROWS} more in the Parquet file.")
    return "\n".join(L) + "\n"


def render_html(rows: list[dict], summary: dict) -> str:
    e = html.escape
    checked = summary.get("samples_checked")
    parts = [
        "<h1>Decontamination report</h1>",
        "<section id=\"summary\"><h2>Summary</h2>",
        htmlpage.table(["samples checked", "samples removed", "matches", "evaluation items", "registry sha256"],
               [[checked if checked is not None else "n/a", summary["samples_removed"], summary["matches"], summary["index"]["items"], summary["index"]["registry_sha256"] or "n/a"]]),
        "<p>Match rows: <code>report/contamination/part-00000.parquet</code>; query them with "
        "<code>bsm query \"SELECT * FROM contamination\" --data &lt;dir&gt;/report</code>.</p>",
        "<h3>Thresholds</h3>",
        htmlpage.table(THRESHOLD_HEAD, _threshold_rows(summary)),
        "<p>Removed samples by source: " + (e(", ".join(f"{k}={n}" for k, n in summary.get("removed_by_source", {}).items())) or "none") + "</p>",
        "</section>",
        "<section id=\"tasks\"><h2>Per task</h2>",
        htmlpage.table(
            ["task", "split", "items", "items hit", "samples removed", "matches", "kinds", "sources of removed samples"],
            [[t["task"], t["split"], t["items"], t["items_hit"], t["samples_removed"], t["matches"],
              ", ".join(f"{k}={n}" for k, n in t["kinds"].items()) or "-", ", ".join(f"{k}={n}" for k, n in t["sources"].items()) or "-"]
             for t in summary["tasks"]],
            num={2, 3, 4, 5},
        ),
        "</section>",
        "<section id=\"examples\"><h2>Examples</h2>",
    ]
    examples = _examples(rows)
    if not examples:
        parts.append("<p>No training sample matched an evaluation item.</p>")
    for task, rs in examples.items():
        parts.append(f"<h3>{e(task)}</h3>")
        for r in rs:
            parts.append(
                f"<p><b>{e(r['item_id'])}</b> ({e(r['split'])}, {e(r['item_modality'])}) in sample <code>{e(r['sample_id'])}</code> "
                f"segment {r['segment']} ({e(r['modality'])}); source {e(r['source'])}, file {e(r['source_file'])}, record "
                f"{e(r['record_id'])}: {e(r['kind'])}, containment {r['containment']:.3f}, segment containment "
                f"{r['segment_containment']:.3f}, {r['shared_kmers']}/{r['item_kmers']} k-mers, identity {r['identity']:.3f}, "
                f"coverage {r['coverage']:.3f}</p><pre>{e(r['evidence'])}</pre>"
            )
    parts.append("</section>")
    removed = _removed_samples(rows)
    parts.append("<section id=\"removed\"><h2>Removed samples</h2>")
    parts.append(htmlpage.table(
        ["sample", "source", "source file", "record", "matched items (containment)"],
        [[s["sample_id"], s["source"], s["source_file"], s["record_id"], "; ".join(s["hits"][:5]) + (" …" if len(s["hits"]) > 5 else "")] for s in removed[:MAX_REMOVED_ROWS]],
    ))
    if len(removed) > MAX_REMOVED_ROWS:
        parts.append(f"<p>{len(removed) - MAX_REMOVED_ROWS} more in the Parquet file.</p>")
    parts.append("</section>")
    return htmlpage.page("Decontamination report", "".join(parts))


# ------------------------------------------------------------------------- planted copies

PLANT_KINDS = ("exact", "embedded", "mut5", "mut10", "revcomp", "half", "embedded_rc_mut5", "window_mut5")
_SUBSTITUTE = {"dna": "ACGT", "rna": "ACGU", "protein": "ACDEFGHIKLMNPQRSTVWY"}


@dataclass(frozen=True)
class Planted:
    """Ground truth of one planted copy: evaluation item ``key`` in ``sample_id``."""

    kind: str
    task: str
    split: str
    item_id: str
    sample_id: str
    segment: int


def complexity(item: EvalItem, th: Thresholds | None = None) -> float:
    """Fraction of the item's windows that are informative (valid, not low-complexity)."""
    a = alphabet_of(item.modality)
    th = th or THRESHOLDS[a]
    n = len(item.sequence) - th.span + 1
    return len(informative_kmers([item.sequence], a, th)[0]) / n if n > 0 else 0.0


def plant_contamination(items: list[EvalItem], hosts: list[Sample], *, per_kind: int = 20, kinds=PLANT_KINDS, seed: int = 0, min_complexity: float = 0.5) -> tuple[list[Sample], list[Planted]]:
    """Copies of real evaluation items planted into real training samples, for recall checks.

    For each kind and each of ``per_kind`` items (drawn with ``seed`` among items whose
    ``complexity`` >= ``min_complexity``; ``revcomp`` and ``embedded_rc_mut5`` only for
    nucleotide items, ``window_mut5`` only for items longer than 1,000 residues) one host
    sample is drawn whose segment of the item's alphabet is replaced by:
    ``exact`` the item; ``embedded`` host[:x] + item + host[x:]; ``mut5`` / ``mut10`` the item
    with exactly round(p * length) substitutions; ``revcomp`` its reverse complement; ``half``
    a random half (50 % truncation); ``embedded_rc_mut5`` the reverse complement with 5 %
    substitutions, embedded; ``window_mut5`` a random 1,000-residue window with 5 %
    substitutions (a context window of a long item). Letters follow the host's modality
    (T in DNA, U in RNA)."""
    import random

    rng = random.Random(seed)
    by_alpha: dict[str, list[EvalItem]] = defaultdict(list)
    for it in sorted(items, key=lambda x: x.key):
        if complexity(it) >= min_complexity:
            by_alpha[alphabet_of(it.modality)].append(it)
    host_slots: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for si, smp in enumerate(hosts):
        for gi, (m, _) in enumerate(smp.segments):
            host_slots[alphabet_of(m)].append((si, gi))

    def mutate(seq: str, p: float, letters: str) -> str:
        out = list(seq)
        for i in rng.sample(range(len(seq)), round(p * len(seq))):
            out[i] = rng.choice([c for c in letters if c != out[i]])
        return "".join(out)

    samples, truth = [], []
    for kind in kinds:
        for alphabet, pool in sorted(by_alpha.items()):
            if kind in ("revcomp", "embedded_rc_mut5") and alphabet != NUCLEOTIDE:
                continue
            cand = [it for it in pool if len(it.sequence) > 1000] if kind == "window_mut5" else pool
            if not cand or not host_slots[alphabet]:
                continue
            for it in rng.sample(cand, min(per_kind, len(cand))):
                si, gi = rng.choice(host_slots[alphabet])
                host = hosts[si]
                modality, host_seq = host.segments[gi]
                seq = it.sequence
                if alphabet == NUCLEOTIDE:
                    seq = seq.replace("U", "T") if modality == "dna" else seq.replace("T", "U")
                letters = _SUBSTITUTE[modality]
                if kind == "exact":
                    new = seq
                elif kind == "embedded":
                    x = rng.randint(0, len(host_seq))
                    new = host_seq[:x] + seq + host_seq[x:]
                elif kind in ("mut5", "mut10"):
                    new = mutate(seq, 0.05 if kind == "mut5" else 0.10, letters)
                elif kind == "revcomp":
                    new = revcomp(seq)
                elif kind == "half":
                    a = rng.randint(0, len(seq) - len(seq) // 2)
                    new = seq[a : a + len(seq) // 2]
                elif kind == "embedded_rc_mut5":
                    x = rng.randint(0, len(host_seq))
                    new = host_seq[:x] + mutate(revcomp(seq), 0.05, letters) + host_seq[x:]
                elif kind == "window_mut5":
                    a = rng.randint(0, len(seq) - 1000)
                    new = mutate(seq[a : a + 1000], 0.05, letters)
                else:
                    raise ValueError(f"unknown kind {kind!r}")
                if modality == "dna":
                    new = new.replace("U", "T")
                elif modality == "rna":
                    new = new.replace("T", "U")
                segs = list(host.segments)
                segs[gi] = (modality, new)
                sid = f"planted:{kind}:{len(samples)}:{host.sample_id}"
                samples.append(Sample(sid, host.source, host.group_id, host.window, host.n_windows, tuple(segs),
                                      host.n_tokens - len(host_seq) + len(new), host.source_file, host.record_id))
                truth.append(Planted(kind, it.task, it.split, it.item_id, sid, gi))
    return samples, truth


# ------------------------------------------------------------------------ build directories


def run_on_build(data_dir: str, registry_dir: str, report_dir: str, *, tasks=None) -> dict:
    """Check every sample of a build directory against a registry; write the report under
    ``<report_dir>/report``. The build is not modified (a round build removes samples itself)."""
    import pyarrow.parquet as pq

    from .shards import read_manifest, verify_file

    index = ContaminationIndex.from_registry(registry_dir, tasks=tasks)
    manifest = read_manifest(data_dir)
    acct = Accounting()
    d = Decontaminator(index)

    def samples():
        for entry in manifest["files"].get("samples", []):
            table = pq.read_table(io.BytesIO(verify_file(data_dir, entry)))
            for row in table.to_pylist():
                yield Sample.from_row(row)

    for _ in d(samples(), acct):
        pass
    summary = summarize(index, d.matches, acct)
    write_report(report_dir, d.matches, summary)
    lines = [f"{'task':<26}{'split':<8}{'items':>8}{'hit':>8}{'removed':>9}"]
    lines += [f"{t['task']:<26}{t['split']:<8}{t['items']:>8}{t['items_hit']:>8}{t['samples_removed']:>9}" for t in summary["tasks"]]
    lines.append(f"\n{summary['samples_removed']} of {summary['samples_checked']} samples contaminated; report in {os.path.join(os.path.abspath(report_dir), REPORT_DIR)}")
    summary["text"] = "\n".join(lines)
    return summary
