"""Interleaved web data (paper §2.2, appendix B): DNA, RNA and protein sequences found in prose.

Pure logic, no datatrove (``pipelines/web.py`` wires it into a datatrove pipeline). For one
document (FineWeb-Edu ``text``) ``extract_sequences`` finds every sequence in document order;
``document_to_samples`` keeps the document when it holds at least ``min_sequences`` (3, as in
the paper) distinct sequences and turns it into samples ``<bos><tag>s1<sep><tag>s2...<eos>``
in document order. ``build_web_local`` is the engine-free build (same bytes as the pipeline).

Where sequences are looked for (layouts)
----------------------------------------
Only lines with 8 upper-case letters in a row, 8 nucleotide letters (any case) in a row, or
three codons (``ATG GCC ATT``) are looked at (``_HINT``); every candidate below has such a run,
and most prose lines, and most web documents, have none. The price: a row with no 8 letters
between its gaps, or a lower-case run with IUPAC codes every few letters, is not seen.

1. *Blocks* of sequence lines: a line whose whole content, once decorations are removed, is
   residues. Decorations: leading whitespace, interactive prompts (``>>>``, ``...``), the
   ``<<`` code markers of HeVeA text, a leading position number (GenBank ORIGIN ``61 acgt...``,
   scikit-bio ``0 ACGT...``), string quotes and brackets (``"...",`` ``['...``), a ``\\n``
   escape and a trailing position number (EMBL ``... 60``). The residues are one run of letters
   (gaps ``- . ~`` and ``*`` allowed), or groups of exactly 10 letters separated by single
   spaces (GenBank ORIGIN, EMBL, Swiss-Prot ``SQ``), or >= 4 codons of nucleotides. A
   sequence line is *nucleotide* (>= 90 % A C G T U N, any case) or *upper case*; lower-case or
   mixed-case lines of other letters are words. Consecutive sequence lines of the same kind
   form a block; a FASTA header, a blank line, an elision (``...`` alone), a line of the other
   kind (a heading such as ``ORIGIN``) or any other line ends it; a line that is only a
   continuation prompt (``...`` and blanks) does not. This covers FASTA records, sequences
   wrapped over several lines or continued over several string literals, and GenBank/EMBL/
   Swiss-Prot sequence sections, also when a crawler re-wrapped a group onto its own line.
   A block is one sequence (lines joined, spaces and numbers dropped), unless it looks like the
   rows of an alignment: two or more lines of equal length whose columns agree at >=
   ``ROW_IDENTITY`` (55 %) between consecutive lines (wrapped lines of one sequence agree at
   25-30 % for DNA, ~5 % for protein; alignment rows at 70-100 %); then each line is its own
   sequence. A joined block that is rejected is retried line by line.
2. *Inline* runs on the other hinted lines (sentences, code, tables): a maximal run of letters,
   possibly with gaps inside (``AEGDDP---AKAAF``, ``CGTAACAAGG...CGC``), or groups of 10
   letters separated by single spaces (PHYLIP rows behind a name). A run is a *candidate*
   (judged and counted) when it has at least ``CANDIDATE_MIN`` (10) letters and is upper case,
   or nucleotide letters in any case (soft-masked ``agctTTTCATTCgcaac``), or lower case with >=
   90 % nucleotides; other lower-case and mixed-case runs are ordinary words, never counted.

What a candidate must pass (thresholds and why)
-----------------------------------------------
The first failed check is the reject reason (stage ``web_sequences``):

- ``url``: inside a URL or e-mail address.
- ``identifier`` (inline): a letter run glued to a digit or ``_`` (``PRIMER_MAX_TM``,
  ``CIZ78533``, hex digests): code identifiers and accession numbers, never sequences.
- ``mixed_case``: upper and lower case mixed although not all letters are nucleotides.
- modality: *nucleotide* when >= 90 % of the letters are A C G T U N, or >= 75 % and every
  letter is an IUPAC nucleotide code (degenerate primers); then *RNA* if it has U and no T,
  else *DNA*. Anything else is *protein* (the vocabulary's alphabets then decide legality).
  ``lowercase_protein``: real protein in text is upper case; lower-case runs are prose.
- ``stop_in_sequence``: a ``*`` that is not the last residue (a translation table, not a
  protein); one terminal ``*`` is dropped.
- ``low_complexity`` (repeats): more than half of the residues in homopolymer runs (>= 4
  nucleotides, >= 3 amino acids; ``AAAAACCCCCGGGGGTTTTT``, codon tables, ``HHHHCCCEEEE``
  secondary structure lines), or more than half covered by tandem repeats of a 1-4 residue
  unit repeated >= 3 times (``ACACACACAC``, ``ATGCATGCATGC``, ``CAGCAGCAG``).
- ``alphabet_listing``: six letters in alphabet order, or in amino-acid alphabet order
  (``ABCDEFGHIJ``, ``ACDEFGHIKLMNPQRSTVWY``): a protein has such a run with probability
  ~ 20 x 20^-5 per residue.
- ``hex_string``: only the letters A-F.
- ``english_word`` (protein candidates): the mean per-letter log2 likelihood ratio of an
  amino-acid composition model (UniProtKB frequencies) against English letter frequencies is
  below ``ENGLISH_MAX_LLR`` (0). English is rich in E T O H U, proteins in L V G K. Measured on
  real proteins (bundled FASTA): 1.6 % of random 20-residue windows and 0.7 % of 30-residue
  windows score below 0; on upper-cased English word runs of >= 20 letters (concatenated words
  from the bundled prose), 2.4 % score >= 0. Whole labelled proteins scored >= 0.25, upper-case
  words and headings (``ACKNOWLEDGEMENTS``, ``PYTHONDONTWRITEBYTECODE``) below 0. No English
  word of 15+ letters is written with A C G T U N only, so nucleotides need no such test.
- ``too_short``: fewer than ``MIN_NUCLEOTIDE`` (15) nucleotides or ``MIN_PROTEIN`` (20) amino
  acids. Primers (18-30 nt) are kept; restriction sites and motifs (4-12 nt) are not sequences a
  model learns from, and short upper-case words are the main source of false positives.
- ``illegal_letter`` / ``too_ambiguous``: the vocabulary's policy (``bsm_data.vocab``).
- ``low_complexity`` (composition): Shannon entropy of the residue composition below
  ``MIN_ENTROPY``: 1.5 bits for nucleotides, 2.5 for protein (``AAAAAAAAAA`` has 0,
  ``ACACACACAC`` 1.0; real DNA is 1.8-2.0, real protein 3.7-4.2).
  All filters together reject 4.6 % of random 20-nt windows of real DNA (ITS and plasmid
  genes; 1.2 % of 60-nt windows) and 3.6 % of random 20-aa windows of real proteins (0.3 % of
  60-aa windows): the price of rejecting toy strings, paid mostly by short sequences.

Accepted sequences are stored normalised (``vocab.normalize``: upper case, IUPAC codes -> N,
RNA in U). Exact repeats inside one document (same modality and sequence: tutorials print the
same sequence several times) are kept once, at their first position; the later copies are
rejected ``duplicate_in_document``.

Documents and samples
---------------------
A document is kept (stage ``web_docs``) when it has at least ``min_sequences`` distinct
accepted sequences; otherwise it is rejected ``no_candidates`` (not one sequence-like run),
``no_sequences`` (candidates, none accepted) or ``too_few_sequences`` (``empty_text`` for a
document without text, in the pipeline). ``no_candidates`` is counted but gets no reject row:
it is nearly every FineWeb-Edu document, and a row per document would make the reject table as
large as the corpus while saying nothing the count does not. A kept
document becomes one sample whose segments are its sequences in document order, each with its
modality tag, joined by ``<sep>``. When the sample would exceed ``seq_len`` tokens it is split
into consecutive samples (windows ``w0, w1, ...``) that each hold whole sequences, packed
greedily in order; a single sequence longer than a window (``seq_len - 3`` residues) gets
windows of its own, cut by ``readers.window`` itself (the single-modal policy), so both corpora
window alike. Stage ``web_window`` counts documents in and out and notes ``windows``,
``split_documents`` and ``split_sequences``. Sample ids are ``web:<document id>:w<window>``.

Evaluation (``evaluate``; the labelled set is ``data/web``, see its README): a predicted
sequence *matches* a labelled one when both have the same modality and their character spans in
the document overlap by at least half of the shorter span. Precision = predicted sequences of
>= 20 residues that match some label / predicted sequences of >= 20 residues; recall =
labelled sequences of >= 20 residues matched by some prediction / labelled sequences of >= 20
residues; per modality and overall.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
from itertools import accumulate
from collections import Counter
from dataclasses import dataclass, field

from .accounting import Accounting
from .readers import window
from .records import Reject, Sample
from .vocab import TokenizeError, load_vocab, normalize, sample_overhead

SOURCE = "web"
PIPELINE = "web"
EXTRACTOR_VERSION = 2  # 2: no_candidates counted without a row. Bump whenever what is extracted changes: it is in the manifest and the work-dir config
MIN_SEQUENCES = 3
COUNTED_ONLY = frozenset({"no_candidates"})  # reject reasons counted in the accounting without a reject row
CANDIDATE_MIN = 10
MIN_NUCLEOTIDE = 15
MIN_PROTEIN = 20
NUCLEOTIDE_FRACTION = 0.90
IUPAC_NUCLEOTIDE_FRACTION = 0.75
ROW_IDENTITY = 0.55
MIN_ENTROPY = {"dna": 1.5, "rna": 1.5, "protein": 2.5}
HOMOPOLYMER_RUN = {"dna": 4, "rna": 4, "protein": 3}
MAX_HOMOPOLYMER_FRACTION = 0.5
MAX_TANDEM_FRACTION = 0.5
ENGLISH_MAX_LLR = 0.0
ALPHABET_RUN = 6
EVAL_MIN_RESIDUES = 20

STAGE_DOCS, STAGE_SEQS, STAGE_WINDOW = "web_docs", "web_sequences", "web_window"

_NUC = set("ACGTUN")
_IUPAC = set("ACGTUNRYKMSWBDHVX")
_GAPS = "-.~"

# UniProtKB/Swiss-Prot amino-acid composition (%), and English letter frequencies (%).
_PROTEIN_FREQ = {
    "A": 8.25, "R": 5.53, "N": 4.06, "D": 5.46, "C": 1.38, "Q": 3.93, "E": 6.72, "G": 7.07, "H": 2.27,
    "I": 5.91, "L": 9.64, "K": 5.80, "M": 2.41, "F": 3.86, "P": 4.74, "S": 6.65, "T": 5.36, "W": 1.10,
    "Y": 2.92, "V": 6.86,
}
_ENGLISH_FREQ = {
    "E": 12.70, "T": 9.06, "A": 8.17, "O": 7.51, "I": 6.97, "N": 6.75, "S": 6.33, "H": 6.09, "R": 5.99,
    "D": 4.25, "L": 4.03, "C": 2.78, "U": 2.76, "M": 2.41, "W": 2.36, "F": 2.23, "G": 2.02, "Y": 1.97,
    "P": 1.93, "B": 1.29, "V": 0.98, "K": 0.77, "J": 0.15, "X": 0.15, "Q": 0.10, "Z": 0.07,
}
_RARE = 0.01  # % for letters a model does not list (B J O U X Z in proteins)
_LLR = {
    c: math.log2(_PROTEIN_FREQ.get(c, _RARE) / _ENGLISH_FREQ.get(c, _RARE))
    for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
}
_ALPHABETS = ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "ACDEFGHIKLMNPQRSTVWY")

# ------------------------------------------------------------------------------ patterns

_URL = re.compile(r"(?:https?|ftp)://\S+|www\.\S+", re.I)
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+\.[\w.]+")
_PREFIX = re.compile(r"^[ \t]*(?:(?:>>>|\.\.\.)(?:[ \t]+|$)|<<)*[ \t]*")
_LEAD_NUM = re.compile(r"^\d+[ \t]+")
_OPEN = re.compile(r"^[\[(]*[rRbBuU]?[\"']")
_CLOSE = re.compile(r"(?:\\n)?[\"'][ \t]*[,)\]]*[ \t]*$")
_TAIL_NUM = re.compile(r"[ \t]+\d+[ \t]*$")
_BODY = re.compile(r"^[A-Za-z*.~\-]+(?: [A-Za-z*.~\-]+)*$")
_GROUPED = re.compile(r"(?<![A-Za-z0-9_])[A-Za-z]{10}(?: [A-Za-z]{10})+(?: [A-Za-z]{1,9})?(?![A-Za-z0-9_])")
_RUN = re.compile(r"[A-Za-z]+(?:[.~\-]+[A-Za-z]+)*")
# where candidates can be (see extract_sequences): 8 upper-case letters in a row, 8 nucleotide
# letters in a row, or 3 codons. Found on byte translations of the text (C speed): upper-case
# letters -> U, nucleotide letters -> N (spaces kept for codons), newlines kept, the rest '.'.
_HINT = re.compile(r"[A-Z]{8}|[ACGTUNacgtun]{8}|[ACGTUacgtu]{3} [ACGTUacgtu]{3} [ACGTUacgtu]{3}")
_UPPER_MAP = bytes(ord("U") if 65 <= b <= 90 else 10 if b == 10 else 46 for b in range(256))
_NUC_MAP = bytes(ord("N") if chr(b) in "ACGTUNacgtun" else 32 if b == 32 else 10 if b == 10 else 46 for b in range(256))
_UPPER_RUN = re.compile(rb"U{8}")
_NUC_RUN = re.compile(rb"N{8}|NNN NNN NNN")
_IDENT = frozenset("0123456789_")


@dataclass(frozen=True)
class Found:
    """One accepted sequence: where it is in the document and what the model will see."""

    start: int  # character offsets in the document text, end exclusive
    end: int
    modality: str
    sequence: str  # normalised (vocab.normalize)
    layout: str  # block | rows | inline


@dataclass(frozen=True)
class Rejected:
    """One candidate that was not accepted."""

    start: int
    end: int
    reason: str
    text: str


@dataclass
class Extraction:
    found: list[Found] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def n_candidates(self) -> int:
        return len(self.found) + len(self.rejected)


# ---------------------------------------------------------------------------- the checks


def entropy(seq: str) -> float:
    n = len(seq)
    return -sum(c / n * math.log2(c / n) for c in Counter(seq).values()) if n else 0.0


def homopolymer_fraction(seq: str, run: int) -> float:
    covered, i, n = 0, 0, len(seq)
    while i < n:
        j = i + 1
        while j < n and seq[j] == seq[i]:
            j += 1
        if j - i >= run:
            covered += j - i
        i = j
    return covered / n if n else 0.0


def tandem_fraction(seq: str, max_period: int = 4, min_copies: int = 3) -> float:
    """Fraction of positions inside a tandem repeat of a 1..max_period unit (>= min_copies)."""
    n = len(seq)
    covered = bytearray(n)
    for p in range(1, max_period + 1):
        i = p
        while i < n:
            if seq[i] != seq[i - p]:
                i += 1
                continue
            j = i
            while j < n and seq[j] == seq[j - p]:
                j += 1
            if j - (i - p) >= p * min_copies:
                covered[i - p:j] = b"\x01" * (j - i + p)
            i = j
    return sum(covered) / n if n else 0.0


def english_llr(letters: str) -> float:
    """Mean log2 P(protein) / P(English) per letter (upper case)."""
    return sum(_LLR.get(c, 0.0) for c in letters) / len(letters) if letters else 0.0


def _alphabet_run(letters: str) -> bool:
    for alphabet in _ALPHABETS:
        pos = {c: i for i, c in enumerate(alphabet)}
        run = 1
        for a, b in zip(letters, letters[1:]):
            run = run + 1 if a in pos and b in pos and pos[b] == pos[a] + 1 else 1
            if run >= ALPHABET_RUN:
                return True
    return False


def repetitive(seq: str, modality: str) -> bool:
    """Mostly homopolymer runs or short tandem repeats (robust at any length)."""
    return (
        homopolymer_fraction(seq, HOMOPOLYMER_RUN[modality]) > MAX_HOMOPOLYMER_FRACTION
        or tandem_fraction(seq) > MAX_TANDEM_FRACTION
    )


def low_complexity(seq: str, modality: str) -> bool:
    """The ``low_complexity`` rule: repetitive, or a composition entropy below ``MIN_ENTROPY``."""
    return repetitive(seq, modality) or entropy(seq) < MIN_ENTROPY[modality]


def classify(raw: str) -> tuple[str, str] | tuple[None, str]:
    """``(modality, normalised sequence)`` or ``(None, reject reason)`` for residue text.

    ``raw`` may hold gaps (``- . ~``), spaces and a ``*``; letters decide everything else.
    """
    residues = "".join(c for c in raw if c.isalpha() or c == "*")
    if residues.endswith("*"):
        residues = residues[:-1]
    if "*" in residues:
        return None, "stop_in_sequence"
    if not residues:
        return None, "too_short"
    upper = residues.upper()
    has_upper, has_lower = residues != residues.lower(), residues != upper
    nuc = sum(c in _NUC for c in upper)
    nucleotide = nuc >= NUCLEOTIDE_FRACTION * len(upper) or (
        nuc >= IUPAC_NUCLEOTIDE_FRACTION * len(upper) and all(c in _IUPAC for c in upper)
    )
    if has_upper and has_lower and not all(c in _NUC for c in upper):
        return None, "mixed_case"
    if not nucleotide:
        if has_lower:
            return None, "lowercase_protein"
        modality = "protein"
    else:
        modality = "rna" if "U" in upper and "T" not in upper else "dna"
    if repetitive(upper, modality):
        return None, "low_complexity"
    if _alphabet_run(upper):
        return None, "alphabet_listing"
    if all(c in "ABCDEF" for c in upper):
        return None, "hex_string"
    if modality == "protein" and english_llr(upper) < ENGLISH_MAX_LLR:
        return None, "english_word"
    if len(upper) < (MIN_PROTEIN if modality == "protein" else MIN_NUCLEOTIDE):
        return None, "too_short"
    try:
        seq = normalize(load_vocab(), modality, upper)
    except TokenizeError as e:
        return None, e.reason
    if entropy(seq) < MIN_ENTROPY[modality]:
        return None, "low_complexity"
    return modality, seq


# ------------------------------------------------------------------------------- layouts


def _is_candidate(letters: str) -> bool:
    """Worth judging (and counting): long enough, and upper case or nucleotide-like."""
    if len(letters) < CANDIDATE_MIN:
        return False
    upper = letters.upper()
    if letters == upper:
        return True
    nuc = sum(c in _NUC for c in upper)
    if letters == letters.lower():
        return nuc >= NUCLEOTIDE_FRACTION * len(letters)
    return nuc == len(letters)


def _sequence_line(line: str) -> tuple[int, int, str, str] | None:
    """(start, end, residue text, kind) of a line that is all sequence, else None.

    ``kind`` is ``nuc`` (>= 90 % nucleotide letters, any case) or ``upper`` (upper case, other
    letters); lower-case or mixed-case lines of other letters are words, not sequence lines."""
    m = _PREFIX.match(line)
    start, end = m.end(), len(line.rstrip())
    body = line[start:end]
    if not body:
        return None
    if (n := _LEAD_NUM.match(body)) is not None:
        start, body = start + n.end(), body[n.end():]
    if (q := _OPEN.match(body)) is not None:
        start, body = start + q.end(), body[q.end():]
        if (c := _CLOSE.search(body)) is not None:
            end, body = end - (len(body) - c.start()), body[: c.start()]
    if (t := _TAIL_NUM.search(body)) is not None:
        end, body = end - (len(body) - t.start()), body[: t.start()]
    if not body or not _BODY.match(body):
        return None
    groups = body.split(" ")
    if len(groups) > 1:
        sizes = [len(g) for g in groups]
        tens = all(s == 10 for s in sizes[:-1]) and sizes[-1] <= 10
        codons = (
            len(groups) >= 4 and all(s == 3 for s in sizes[:-1]) and sizes[-1] <= 3
            and all(c in "ACGTUNacgtun" for c in body.replace(" ", ""))
        )
        if not (tens or codons):
            return None
    # trim gap characters at the ends of the line
    lead = len(body) - len(body.lstrip(_GAPS))
    trail = len(body) - len(body.rstrip(_GAPS))
    if lead == len(body):
        return None
    letters = [c for c in body if c.isalpha()]
    if sum(c in "ACGTUNacgtun" for c in letters) >= NUCLEOTIDE_FRACTION * len(letters):
        kind = "nuc"
    elif all(c.isupper() for c in letters):
        kind = "upper"
    else:
        return None
    return start + lead, end - trail, body[lead: len(body) - trail], kind


_NEUTRAL = re.compile(r"[ \t]*\.\.\.[ \t]+")


def _neutral(line: str) -> bool:
    """A continuation prompt followed only by blanks: does not end a block (an elision line,
    ``...`` alone, does)."""
    return _NEUTRAL.fullmatch(line) is not None


def _identity(a: str, b: str) -> float:
    return sum(x == y for x, y in zip(a.upper(), b.upper())) / len(a) if a else 0.0


def _judge(ext: Extraction, text: str, start: int, end: int, raw: str, layout: str) -> bool:
    modality, result = classify(raw)
    if modality is None:
        ext.rejected.append(Rejected(start, end, result, text[start:end][:200]))
        return False
    ext.found.append(Found(start, end, modality, result, layout))
    return True


def _judge_inline(ext: Extraction, start: int, end: int, raw: str) -> None:
    modality, result = classify(raw)
    if modality is None:
        ext.rejected.append(Rejected(start, end, result, raw[:200]))
    else:
        ext.found.append(Found(start, end, modality, result, "inline"))


def _hint_lines(text: str) -> list[int]:
    """Sorted numbers of the lines that match ``_HINT`` (same line numbers in bytes and text)."""
    raw = text.encode("utf-8", "surrogatepass")
    upper, nuc = raw.translate(_UPPER_MAP), raw.translate(_NUC_MAP)
    if b"UUUUUUUU" not in upper and b"NNNNNNNN" not in nuc and b"NNN NNN NNN" not in nuc:
        return []
    positions = sorted([m.start() for m in _UPPER_RUN.finditer(upper)] + [m.start() for m in _NUC_RUN.finditer(nuc)])
    lines, line, last = [], 0, 0
    for p in positions:
        line += raw.count(b"\n", last, p)
        last = p
        if not lines or lines[-1] != line:
            lines.append(line)
    return lines


def _url_spans(text: str) -> list[tuple[int, int]]:
    spans = [m.span() for m in _URL.finditer(text)] if ("://" in text or "www." in text or "WWW." in text) else []
    if "@" in text:
        spans += [m.span() for m in _EMAIL.finditer(text)]
    return spans


def _in_spans(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(s < end and start < e for s, e in spans)


def extract_sequences(text: str) -> Extraction:
    """Every candidate of a document, accepted (``found``) or not (``rejected``), in order.

    Only lines that match ``_HINT`` (8 upper-case or 8 nucleotide letters in a row, or three
    codons) are looked at: every candidate has such a run (a gapped row with no 8 letters
    between gaps, or a 10-letter run under 90 % nucleotides, is the price), and most prose
    lines, and most documents, have none, which makes the extractor cheap on the web."""
    ext = Extraction()
    hit_lines = _hint_lines(text)
    if not hit_lines:
        return ext
    lines = text.split("\n")
    offsets = [0, *accumulate(len(line) + 1 for line in lines[:-1])]
    seq_lines: dict[int, tuple[int, int, str, str] | None] = {}

    def seq_line(k: int):
        if k not in seq_lines:
            seq_lines[k] = _sequence_line(lines[k])
        return seq_lines[k]

    consumed: set[int] = set()
    for i in hit_lines:
        if i in consumed:
            continue
        first = seq_line(i)
        if first is not None:  # a block starts here: extend it over the following lines
            block, j = [i], i + 1
            while j < len(lines):
                nxt = seq_line(j)
                if nxt is not None:
                    if nxt[3] != first[3]:
                        break  # a heading next to a sequence, or DNA next to protein: separate blocks
                    block.append(j)
                elif not _neutral(lines[j]):
                    break
                j += 1
            letters = "".join(c for k in block for c in seq_lines[k][2] if c.isalpha())
            if _is_candidate(letters):
                consumed.update(block)
                _judge_block(ext, text, lines, offsets, seq_lines, block)
                continue
        _inline(ext, lines[i], offsets[i])
    ext.found.sort(key=lambda f: f.start)
    ext.rejected.sort(key=lambda r: r.start)
    return ext


def _inline(ext: Extraction, line: str, base: int) -> None:
    urls = _url_spans(line)
    grouped = [m.span() for m in _GROUPED.finditer(line) if _is_candidate(m.group().replace(" ", ""))]
    runs = grouped + [m.span() for m in _RUN.finditer(line) if not any(s <= m.start() < e for s, e in grouped)]
    for s, e in sorted(runs) if grouped else runs:
        if e - s < CANDIDATE_MIN:
            continue
        raw = line[s:e]
        letters = raw if raw.isalpha() else "".join(c for c in raw if c.isalpha())
        if not _is_candidate(letters):
            continue
        start, end = base + s, base + e
        if urls and _in_spans(s, e, urls):
            ext.rejected.append(Rejected(start, end, "url", raw[:200]))
            continue
        if (s and line[s - 1] in _IDENT) or (e < len(line) and line[e] in _IDENT):
            ext.rejected.append(Rejected(start, end, "identifier", raw[:200]))
            continue
        _judge_inline(ext, start, end, raw)


def _judge_block(ext: Extraction, text: str, lines, offsets, seq_lines, block: list[int]) -> None:
    parts = [seq_lines[k][:3] for k in block]
    bodies = [p[2] for p in parts]
    start, end = offsets[block[0]] + parts[0][0], offsets[block[-1]] + parts[-1][1]
    if len(block) > 1:
        lengths = {len(b) for b in bodies}
        rows = len(lengths) == 1 and all(_identity(a, b) >= ROW_IDENTITY for a, b in zip(bodies, bodies[1:]))
        if not rows:
            trial = Extraction()
            if _judge(trial, text, start, end, "".join(bodies), "block"):
                ext.found.extend(trial.found)
                return
        for k, (s, e, body) in zip(block, parts):
            if not _is_candidate("".join(c for c in body if c.isalpha())):
                continue
            _judge(ext, text, offsets[k] + s, offsets[k] + e, body, "rows" if rows else "block")
        return
    _judge(ext, text, start, end, bodies[0], "block")


# ---------------------------------------------------------------------- documents, samples


def dedup_found(found: list[Found]) -> tuple[list[Found], list[Found]]:
    """(first copies in order, later exact copies)."""
    seen, kept, dups = set(), [], []
    for f in found:
        key = (f.modality, f.sequence)
        (dups if key in seen else kept).append(f)
        seen.add(key)
    return kept, dups


def window_segments(segments: list[tuple[str, str]], seq_len: int) -> list[list[tuple[str, str]]]:
    """Consecutive windows of whole sequences that each fit ``seq_len`` tokens (see module doc)."""
    budget = seq_len - sample_overhead(1)
    if budget < 1:
        raise ValueError(f"seq_len {seq_len} leaves no room for residues")
    windows: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for modality, seq in segments:
        if len(seq) > budget:
            if current:
                windows.append(current)
                current = []
            windows.extend([[(modality, piece)] for _, piece in window(seq, seq_len)])
            continue
        if current and sample_overhead(len(current) + 1) + sum(len(s) for _, s in current) + len(seq) > seq_len:
            windows.append(current)
            current = []
        current.append((modality, seq))
    if current:
        windows.append(current)
    return windows


def new_accounting() -> Accounting:
    acct = Accounting()
    for stage in (STAGE_DOCS, STAGE_SEQS, STAGE_WINDOW):
        acct.stage(stage)
    return acct


def document_to_samples(
    doc_id: str, text: str, acct: Accounting, *, source_file: str, seq_len: int = 1024, min_sequences: int = MIN_SEQUENCES
) -> tuple[list[Sample], list[Reject], Extraction]:
    """One document -> its samples (empty when rejected) and rejects, counting into ``acct``."""
    docs, seqs = acct.stage(STAGE_DOCS), acct.stage(STAGE_SEQS)
    docs.take()
    ext = extract_sequences(text)
    rejects: list[Reject] = []
    seqs.take(ext.n_candidates)
    for r in ext.rejected:
        rejects.append(acct.reject(
            STAGE_SEQS, r.reason, detail=f"chars {r.start}-{r.end}: {r.text[:80]!r}", source=SOURCE,
            source_file=source_file, record_id=doc_id, item_id=f"{r.start}-{r.end}",
        ))
    kept, dups = dedup_found(ext.found)
    seqs.emit(len(kept))
    for f in dups:
        rejects.append(acct.reject(
            STAGE_SEQS, "duplicate_in_document", detail=f"chars {f.start}-{f.end}: repeats an earlier {f.modality} sequence",
            source=SOURCE, source_file=source_file, record_id=doc_id, item_id=f"{f.start}-{f.end}",
        ))
    for f in kept:
        seqs.note(f"{f.modality}_sequences")
        seqs.note(f"{f.modality}_residues", len(f.sequence))
    if not ext.n_candidates:
        docs.reject("no_candidates")  # in COUNTED_ONLY: no row, see the module docstring
        return [], rejects, ext
    if len(kept) < min_sequences:
        reason = "no_sequences" if not kept else "too_few_sequences"
        rejects.append(acct.reject(
            STAGE_DOCS, reason, detail=f"{len(kept)} sequence(s) of {ext.n_candidates} candidate(s); {min_sequences} needed",
            source=SOURCE, source_file=source_file, record_id=doc_id,
        ))
        return [], rejects, ext
    docs.emit()
    windows = window_segments([(f.modality, f.sequence) for f in kept], seq_len)
    win = acct.stage(STAGE_WINDOW)
    win.take()
    win.emit()
    win.note("windows", len(windows))
    if len(windows) > 1:
        win.note("split_documents")
    win.note("split_sequences", sum(1 for f in kept if len(f.sequence) > seq_len - sample_overhead(1)))
    samples = [
        Sample(
            sample_id=f"{SOURCE}:{doc_id}:w{i}",
            source=SOURCE,
            group_id=doc_id,
            window=i,
            n_windows=len(windows),
            segments=tuple(w),
            n_tokens=sample_overhead(len(w)) + sum(len(s) for _, s in w),
            source_file=source_file,
            record_id=doc_id,
        )
        for i, w in enumerate(windows)
    ]
    return samples, rejects, ext


def web_options(rel_files: list[str], num_shards: int, min_sequences: int) -> dict:
    """The options recorded in the manifest: the same for any engine, worker or task count."""
    return {"inputs": list(rel_files), "num_shards": num_shards, "min_sequences": min_sequences, "extractor_version": EXTRACTOR_VERSION}


def relative_inputs(paths: list[str]) -> tuple[str, list[str]]:
    """(common root folder, sorted paths relative to it) of local files: their provenance names."""
    files = sorted({os.path.abspath(p) for p in paths})
    if not files:
        raise FileNotFoundError("no input files")
    root = os.path.commonpath([os.path.dirname(f) for f in files])
    return root, [os.path.relpath(f, root) for f in files]


def iter_documents(path: str, batch_size: int = 1000):
    """(id, text) of every row of a FineWeb-Edu Parquet file, in file order (ids as datatrove
    names rows without one: ``<file>/<row>``)."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as f:
        row = 0
        for batch in f.iter_batches(batch_size=batch_size, columns=["text", "id"]):
            for text, doc_id in zip(batch.column("text").to_pylist(), batch.column("id").to_pylist()):
                yield (doc_id, text or "")
                row += 1


def build_web_local(
    inputs: list[str], out_dir: str, *, seed: int = 0, seq_len: int = 1024, num_shards: int = 1,
    min_sequences: int = MIN_SEQUENCES,
) -> dict:
    """The web build without datatrove: same functions, same bytes as ``pipelines.web.run``."""
    from .build import build_local

    root, rel = relative_inputs(inputs)
    acct = new_accounting()

    def items():
        for name in rel:
            for i, (doc_id, text) in enumerate(iter_documents(os.path.join(root, name))):
                doc_id = str(doc_id or f"{name}/{i}")
                if not text.strip():
                    acct.stage(STAGE_DOCS).take()
                    yield acct.reject(STAGE_DOCS, "empty_text", detail="document has no text", source=SOURCE,
                                      source_file=name, record_id=doc_id)
                    continue
                samples, rejects, _ = document_to_samples(doc_id, text, acct, source_file=name, seq_len=seq_len, min_sequences=min_sequences)
                yield from rejects
                yield from samples

    return build_local(items(), acct, out_dir, pipeline=PIPELINE, options=web_options(rel, num_shards, min_sequences),
                       seed=seed, seq_len=seq_len, num_shards=num_shards)


# ------------------------------------------------------------------------------ evaluation


BLIND_SOURCE = "deb:python3-biopython_"  # file_path prefix of the blind documents (data/web/README.md)


def split_of(doc_id: str, file_path: str = "") -> str:
    """Split of a labelled document: ``blind`` (the Biopython API pages, added and labelled after
    the extractor was frozen), else ``heldout`` for a third of the documents by id hash, else
    ``dev`` (the only split the extractor was tuned on)."""
    if file_path.startswith(BLIND_SOURCE):
        return "blind"
    return "heldout" if int(hashlib.sha256(doc_id.encode()).hexdigest(), 16) % 3 == 0 else "dev"


def _match(a: tuple[int, int], b: tuple[int, int]) -> bool:
    overlap = min(a[1], b[1]) - max(a[0], b[0])
    return overlap > 0 and overlap >= 0.5 * min(a[1] - a[0], b[1] - b[0])


def evaluate(predicted: dict[str, list[Found]], labels: list[dict], *, min_residues: int = EVAL_MIN_RESIDUES) -> dict:
    """Precision and recall per modality (see module doc). ``predicted``: doc id -> Found list
    for every evaluated document (documents without labels count: every prediction there is a
    false positive); ``labels``: rows with doc_id, modality, start, end, residues."""
    by_doc: dict[str, list[dict]] = {}
    for lab in labels:
        by_doc.setdefault(lab["doc_id"], []).append(lab)
    counts = {m: Counter() for m in ("dna", "rna", "protein", "all")}
    errors = {"false_positives": [], "misses": []}
    for doc_id, found in predicted.items():
        labs = by_doc.get(doc_id, [])
        for f in found:
            if len(f.sequence) < min_residues:
                continue
            ok = any(lab["modality"] == f.modality and _match((f.start, f.end), (lab["start"], lab["end"])) for lab in labs)
            for m in (f.modality, "all"):
                counts[m]["predicted"] += 1
                counts[m]["tp"] += ok
            if not ok:
                errors["false_positives"].append((doc_id, f))
        for lab in labs:
            if lab["residues"] < min_residues:
                continue
            ok = any(lab["modality"] == f.modality and _match((f.start, f.end), (lab["start"], lab["end"])) for f in found)
            for m in (lab["modality"], "all"):
                counts[m]["labelled"] += 1
                counts[m]["recalled"] += ok
            if not ok:
                errors["misses"].append((doc_id, lab))
    table = {}
    for m, c in counts.items():
        table[m] = {
            "predicted": c["predicted"], "true_positives": c["tp"], "labelled": c["labelled"], "recalled": c["recalled"],
            "precision": c["tp"] / c["predicted"] if c["predicted"] else None,
            "recall": c["recalled"] / c["labelled"] if c["labelled"] else None,
        }
    return {"table": table, "errors": errors}
