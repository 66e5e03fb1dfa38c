"""GenBank flat files -> one ``GeneSequences`` per gene (DNA span, spliced RNA, protein).

``extract_genbank(path, acct)`` streams a plain or gzip GenBank file (gzip found by its magic
bytes), parses it with gb-io in batches of whole records and yields ``GeneSequences`` and
``Reject`` rows. Two stages are counted in ``acct`` and always reconcile:

* ``parse``: one unit per record found (each ``//``-terminated entry, plus an unterminated
  tail; a gzip stream that breaks off counts one more, rejected as ``truncated_file``).
* ``extract``: one unit per gene candidate: every CDS, and every ncRNA / tRNA / rRNA / tmRNA /
  misc_RNA / precursor_RNA feature whose gene has no CDS.

Parsing policy. A batch that gb-io rejects is re-parsed record by record; a record gb-io
rejects is retried with its LOCUS line rewritten in the standard column layout (short LOCUS
lines such as AUGUSTUS writes make gb-io fail), then with Biopython, and only then rejected as
``parse_error``. Both parsers are converted into one location model (parts in transcript order,
each ``(start, end, strand, partial_left, partial_right, accession_or_None)``, 0-based
half-open) so the extraction below is written once (the tests check that both give identical
rows). gb-io reads ``order()`` as ``join()``; when a record has a multi-part feature and the
text ``order(``, its raw feature table is scanned to recover the operator.
An entry without a final ``//`` is kept only when its sequence is as long as its LOCUS line
says (note ``missing_terminator``), else rejected as ``truncated_record``.

Per gene:

* Span: the union extent of the anchor (CDS or RNA feature), its gene feature and the mRNA
  chosen below, matched by /locus_tag (else /gene) and overlapping parts; parts of the gene
  or mRNA in other records are ignored for the span. ``dna`` is
  that span with introns, plus ``flank`` nt each side (appendix C: 100 nt 5' and 3'), 5'->3' on
  the gene's strand. Linear records clip the flanks at the record ends; circular records wrap
  the flanks (and origin-spanning genes) around the origin, never making ``dna`` longer than
  the record. Attributes ``flank_5``/``flank_3`` give the flank lengths actually included.
  Genes whose parts are not colinear on one strand (trans-splicing, e.g. chloroplast rps12)
  have no genomic span: ``dna`` is None (note ``noncolinear_no_dna``).
* RNA source: the matching mRNA whose exon structure agrees with the CDS (inside the CDS
  extent the mRNA exons are exactly the CDS parts); among several, the first in the file.
  Otherwise the CDS itself (``rna_source="CDS"``, note ``mrna_inconsistent`` or
  ``mrna_external`` when an mRNA was there but unusable); RNA genes use their own feature.
* Isoforms: every CDS is its own gene row; group keys (locus_tag, else protein_id, else gene
  name + start) that repeat within a record get ``|protein_id`` (or ``|n``) appended.
* ``order()``: parts are concatenated in the listed order, like Biopython's ``extract``.
* Protein: /translation when present. The CDS is always translated as well (record's
  /transl_table, default 1; /codon_start; /transl_except; first codon -> M when it is a start
  codon of the table and the 5' end is complete; terminal stop dropped). A differing
  /translation is kept, with ``translation_check="mismatch"`` and the note
  ``translation_mismatch`` (RNA editing, ribosomal slippage annotations, etc.).
* Rejects, checked in this order: ``pseudo`` (/pseudo or /pseudogene on the feature or its
  gene), ``invalid_location`` (text gb-io could not read), ``unsupported_location`` (between,
  one-of, bond), ``external_reference``, ``empty_sequence`` (record without sequence),
  ``location_out_of_bounds``.
* Attributes: gene, locus_tag, protein_id, transcript_id, gene_id (db_xref GeneID), product,
  transl_table, codon_start (0 for RNA genes), partial_5, partial_3, location (GenBank text),
  strand, flank_5, flank_3, rna_source, translation_check ("match" | "mismatch" |
  "translated" | "none" for RNA genes | "unchecked" for an unknown genetic code); only when
  they apply: trans_spliced, mrna_location, exception, ribosomal_slippage.
* Parse-stage notes: ``locus_repaired``, ``biopython_fallback``, ``missing_terminator``
  (they count records). Extract-stage notes count genes: ``translation_mismatch``,
  ``translated``, ``alternative_start``, ``transl_except``, ``rna_from_mrna`` / ``_cds`` /
  ``_feature``, ``flank_clipped``, ``partial_5``, ``partial_3``, ``order_location``,
  ``trans_spliced``, ``noncolinear_no_dna``, ``internal_stop``, ``rna_feature_with_cds``, ...

Engines. Each entry goes first to the compiled fast path, ``bsm_data._gbfast`` (C, in
``bsm_data/csrc``, built by setup.py). It reads the common well-formed subset of the format
(modern LOCUS line, ranges under complement/join/order, no /transl_except, single-line values
except /product and /translation, ...) and returns finished rows; it implements the rules above
rule for rule. Every other entry, and every entry when the module is not built or
``engine="python"``, goes through gb-io and the Python code below, which is the reference: the
tests run both paths over every bundled file and mutated copies and require identical rows,
rejects and counts. The compiled path runs at about gb-io's own parse speed; the Python path at
about a fifth of it (benchmarks/RESULTS.md, Issue 2).

Speed of the Python path: only the features and qualifiers used are read from gb-io's (lazily
converted) objects; sequences are sliced from the record's upper-cased bytes,
reverse-complemented with ``bytes.translate``; all CDS of a record are translated in one numpy
call. Sequences and text are decoded as latin-1, so no byte is ever dropped or rejected here.
"""
from __future__ import annotations

import gzip
import io
import os
import re
import warnings
import zlib
from collections.abc import Iterator
from functools import lru_cache

import gb_io
import numpy as np

from .accounting import Accounting
from .streams import open_stream
from .genetic_code import (
    BYTE_CLASS, TABLE_IDS, THREE_TO_ONE, UnknownTable, codon_lookup, start_codons, translate_many,
)
from .records import GeneSequences, Reject

try:  # the compiled fast path (setup.py builds it); without it every entry takes the Python path
    from . import _gbfast
except ImportError:  # pragma: no cover - exercised only on installs without a C compiler
    _gbfast = None

__all__ = ["extract_genbank"]

READ_CHUNK = 4 << 20  # bytes read per step; a batch is every complete record in the buffer

RNA_KINDS = frozenset({"ncRNA", "tRNA", "rRNA", "tmRNA", "misc_RNA", "precursor_RNA"})
KEPT_KINDS = frozenset({"CDS", "gene", "mRNA"}) | RNA_KINDS
# Qualifiers read from the parser; everything else (notes, inference, ...) is never touched.
# The first value of each is kept; db_xref and transl_except are repeated and handled apart.
FIRST_VALUE_QUALIFIERS = frozenset({
    "gene", "locus_tag", "protein_id", "transcript_id", "product", "transl_table", "codon_start",
    "translation", "pseudo", "pseudogene", "exception", "trans_splicing", "ribosomal_slippage",
})
WANTED_QUALIFIERS = FIRST_VALUE_QUALIFIERS | {"db_xref", "transl_except"}

_LOWER = b"abcdefghijklmnopqrstuvwxyz"
_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
UPPER = bytes.maketrans(_LOWER, _UPPER)
# IUPAC complement of upper- and lower-case input, giving upper case (U pairs with A).
COMPLEMENT = bytes.maketrans(
    b"ACGTURYSWKMBDHVNacgturyswkmbdhvn", b"TGCAAYRSWMKVHDBNTGCAAYRSWMKVHDBN"
)
T_TO_U = bytes.maketrans(b"T", b"U")

_Range, _Complement, _Join, _Order = gb_io.Range, gb_io.Complement, gb_io.Join, gb_io.Order
_External, _Between, _OneOf, _Bond = gb_io.External, gb_io.Between, gb_io.OneOf, gb_io.Bond


# ----------------------------------------------------------------------------- data model


class LocationError(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


class Feature:
    """The parts of a parsed feature this module uses, whichever parser produced it.

    ``parts`` are in transcript order (5'->3' of the feature); ``error`` is set instead when the
    location cannot be represented. ``q`` holds the wanted qualifiers (first value each;
    flags map to None; ``transl_except`` is a list; ``gene_id`` comes from db_xref GeneID).
    """

    __slots__ = ("index", "kind", "parts", "operator", "error", "q")

    def __init__(self, index, kind, parts, operator, error, q):
        self.index, self.kind, self.parts, self.operator, self.error, self.q = (
            index, kind, parts, operator, error, q,
        )


class Record:
    __slots__ = ("id", "seq", "circular", "features")

    def __init__(self, rid: str, seq: bytes, circular: bool, features: list[Feature]):
        self.id, self.seq, self.circular, self.features = rid, seq, circular, features


# ----------------------------------------------------------------------------- gb-io -> model


def _gb_parts(loc, strand: int, ref):
    t = type(loc)
    if t is _Range:
        return [(loc.start, loc.end, strand, loc.before, loc.after, ref)]
    if t is _Complement:
        parts = _gb_parts(loc.location, -strand, ref)
        parts.reverse()
        return parts
    if t is _Join or t is _Order:
        # listed order; an enclosing complement() reverses the whole list
        return [p for sub in loc.locations for p in _gb_parts(sub, strand, ref)]
    if t is _External:
        if loc.location is None:  # gb-io's way of keeping text it could not parse
            raise LocationError("invalid_location", f"unparsable location {loc.accession!r}")
        return _gb_parts(loc.location, strand, loc.accession)
    if t is _Between:
        raise LocationError("unsupported_location", f"between-position location {loc!r}")
    if t is _OneOf:
        raise LocationError("unsupported_location", f"one-of location {loc!r}")
    if t is _Bond:
        raise LocationError("unsupported_location", f"bond location {loc!r}")
    raise LocationError("unsupported_location", f"location type {t.__name__}")


def _record_id_gb(r) -> str:
    for field in (r.version, r.accession, r.name):
        if field and field.split():
            return field.split()[0]
    return ""


def _record_from_gb(r, text) -> Record:
    """Model of a gb-io record. ``text`` is the raw entry, or a callable giving it, read only
    when a kept feature has several parts (to tell order() from join())."""
    features, order_indices = [], None
    for i, f in enumerate(r.features):
        kind = f.kind
        if kind not in KEPT_KINDS:
            continue
        loc, error = f.location, None
        # fast paths for the common single-interval locations
        if type(loc) is _Range:
            parts = [(loc.start, loc.end, 1, loc.before, loc.after, None)]
        elif type(loc) is _Complement and type(inner := loc.location) is _Range:
            parts = [(inner.start, inner.end, -1, inner.before, inner.after, None)]
        else:
            try:
                parts = _gb_parts(loc, 1, None)
            except LocationError as e:
                parts, error = None, e
        operator = "single"
        if parts is not None and len(parts) > 1:
            if order_indices is None:
                order_indices = _order_indices(text() if callable(text) else text)
            operator = "order" if i in order_indices else "join"
        q: dict = {}
        for qual in f.qualifiers:
            k = qual.key
            if k in FIRST_VALUE_QUALIFIERS:  # the common case first: one set lookup per qualifier
                if k not in q:
                    q[k] = qual.value
            elif k == "db_xref":
                v = qual.value
                if v and v.startswith("GeneID:") and "gene_id" not in q:
                    q["gene_id"] = v[7:]
            elif k == "transl_except":
                q.setdefault(k, []).append(qual.value or "")
        features.append(Feature(i, kind, parts, operator, error, q))
    seq = r.sequence
    return Record(_record_id_gb(r), bytes(seq.translate(UPPER)) if seq else b"", bool(r.circular), features)


def _order_feature_indices(text: bytes) -> frozenset[int]:
    """Indices (in feature-table order) of features whose location is written ``order(...)``.

    gb-io returns order() as Join; the operator only matters for the attributes and the note,
    so this scan runs only on records that contain ``order(`` at all.
    """
    start = text.find(b"\nFEATURES")
    if start < 0:
        return frozenset()
    found, index, in_location, location = set(), -1, False, []
    for line in text[start + 1 :].split(b"\n")[1:]:
        if line[:1] not in (b" ", b""):
            break  # ORIGIN, CONTIG, BASE COUNT, //
        body = line.strip()
        if line[:5] == b"     " and line[5:6] not in (b" ", b""):
            if location and b"order(" in b"".join(location):
                found.add(index)
            index, in_location, location = index + 1, True, [line[21:].strip()]
        elif in_location and not body.startswith(b"/"):
            location.append(body)
        else:
            in_location = False
    if location and b"order(" in b"".join(location):
        found.add(index)
    return frozenset(found)


# ----------------------------------------------------------------------------- Biopython -> model


def _bio_parts(loc):
    from Bio.SeqFeature import AfterPosition, BeforePosition, CompoundLocation, ExactPosition

    if loc is None:
        raise LocationError("invalid_location", "location could not be parsed")
    parts = []
    for p in loc.parts:
        s, e = p.start, p.end
        for pos in (s, e):
            if not isinstance(pos, (ExactPosition, BeforePosition, AfterPosition)):
                raise LocationError("unsupported_location", f"{type(pos).__name__} in {p}")
        strand = -1 if p.strand == -1 else 1
        before, after = isinstance(s, BeforePosition), isinstance(e, AfterPosition)
        parts.append((int(s), int(e), strand, before, after, p.ref))
    operator = loc.operator if isinstance(loc, CompoundLocation) else "single"
    return parts, operator


def _record_from_bio(rec) -> Record:
    from Bio.Seq import UndefinedSequenceError

    features = []
    for i, f in enumerate(rec.features):
        if f.type not in KEPT_KINDS:
            continue
        try:
            (parts, operator), error = _bio_parts(f.location), None
        except LocationError as e:
            parts, operator, error = None, "single", e
        q: dict = {}
        for k, values in f.qualifiers.items():
            if k == "db_xref":
                gid = [v[7:] for v in values if v.startswith("GeneID:")]
                if gid:
                    q["gene_id"] = gid[0]
            elif k == "transl_except":
                q[k] = list(values)
            elif k in WANTED_QUALIFIERS:
                q[k] = values[0] if values and values[0] != "" else None
        if q.get("translation"):
            q["translation"] = "".join(q["translation"].split())
        features.append(Feature(i, f.type, parts, operator, error, q))
    try:
        seq = bytes(rec.seq).translate(UPPER)
    except UndefinedSequenceError:
        seq = b""
    rid = rec.id if rec.id and rec.id != "<unknown id>" else rec.name
    return Record(rid, seq, rec.annotations.get("topology") == "circular", features)


# ----------------------------------------------------------------------------- reading & parsing


def _terminator_ends(buf: bytes, limit: int) -> list[int]:
    """Offsets just past each ``//`` line in ``buf[:limit]`` (``limit`` ends a line).

    numpy finds the candidate slashes: ``bytes.find`` is slow on GenBank text, where both
    newlines and slashes are frequent, and this scan otherwise costs a quarter of the parse.
    """
    a = np.frombuffer(buf, dtype=np.uint8, count=limit)
    slashes = np.flatnonzero(a[1:-1] == 47) + 1  # "/" with a byte either side
    starts = slashes[(a[slashes - 1] == 10) & (a[slashes + 1] == 47)].tolist()
    if buf[:2] == b"//":
        starts.insert(0, 0)
    ends = []
    for i in starts:
        nl = buf.find(b"\n", i, limit)
        ends.append(limit if nl < 0 else nl + 1)
    return ends


def _last_complete_end(buf: bytes) -> int:
    """Offset just past the last complete ``//`` line (0 if none): where a batch may stop."""
    end = len(buf)
    while True:
        i = buf.rfind(b"\n//", 0, end)
        if i < 0:
            if buf[:2] == b"//" and b"\n" in buf:
                return buf.index(b"\n") + 1
            return 0
        nl = buf.find(b"\n", i + 1)
        if nl >= 0:
            return nl + 1
        end = i  # this terminator line is not complete yet


def _entries(batch: bytes) -> list[tuple[int, int]]:
    """(start, end) of each entry of a batch; blank pieces (a doubled ``//``, stray blank
    lines) are not entries and are not counted."""
    spans, start = [], 0
    for end in _terminator_ends(batch, len(batch)):
        if not _is_blank(batch[start:end]):
            spans.append((start, end))
        start = end
    return spans


def _is_blank(piece: bytes) -> bool:
    """True for whitespace or a bare ``//``: not a record (e.g. blank lines between entries)."""
    return len(piece) < 64 and piece.strip() in (b"", b"//")


def _read_chunk(fh, is_gzip: bool):
    """(data, error): about READ_CHUNK bytes, b"" at the end. ``error`` is set when a
    compressed stream breaks off; ``data`` then still holds everything decompressed before.

    read1() is used because read(n) on a gzip stream discards what it had decompressed
    when the stream turns out to be truncated.
    """
    read = getattr(fh, "read1", fh.read)
    pieces, size = [], 0
    while size < READ_CHUNK:
        try:
            data = read(READ_CHUNK - size)
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            if not is_gzip:
                raise
            return b"".join(pieces), e
        if not data:
            break
        pieces.append(data)
        size += len(data)
    return (pieces[0] if len(pieces) == 1 else b"".join(pieces)), None


def _read_batches(fh, is_gzip: bool):
    """Yield ("records", batch) per read step, where ``batch`` holds whole entries only,
    then ("tail", bytes) for an unterminated last entry, or ("truncated", bytes, error)."""
    buf = b""
    while True:
        chunk, error = _read_chunk(fh, is_gzip)
        eof = not chunk or error is not None
        buf = buf + chunk if buf else chunk
        cut = _last_complete_end(buf)
        if eof and error is None and buf[buf.rfind(b"\n") + 1 :].startswith(b"//"):
            cut = len(buf)  # a final "//" needs no newline
        if cut:
            batch, buf = (buf, b"") if cut == len(buf) else (buf[:cut], buf[cut:])
            if not batch.isspace():  # (strip() would copy the whole batch)
                yield ("records", batch)
        if error is not None:
            yield ("truncated", buf, error)
            return
        if eof:
            if buf and not buf.isspace():
                yield ("tail", buf)
            return


_LOCUS_LINE = re.compile(rb"^LOCUS[ \t]+(\S+)[ \t]+(\d+)[ \t]+(bp|aa|rc)\b([^\r\n]*)")
_DATE = re.compile(rb"^\d{1,2}-[A-Z]{3}-\d{4}$")
_TOPOLOGIES = (b"linear", b"circular")


def repair_locus(text: bytes) -> bytes | None:
    """Rewrite the LOCUS line in the standard columns; None when it cannot or need not change.

    Molecule type defaults to DNA and topology to linear when missing; a missing division
    becomes UNK; a missing date stays missing (gb-io accepts that).
    """
    m = _LOCUS_LINE.match(text)
    if not m:
        return None
    name, length, unit, rest = m.groups()
    mol, topology, division, date = b"DNA", b"linear", b"UNK", b""
    for token in rest.split():
        if token.lower() in _TOPOLOGIES:
            topology = token.lower()
        elif _DATE.match(token):
            date = token
        elif re.fullmatch(rb"(ss-|ds-|ms-)?(DNA|RNA|mRNA|rRNA|tRNA|uRNA|snRNA|snoRNA|cDNA|NA)", token, re.I):
            mol = token
        elif re.fullmatch(rb"[A-Z]{3}", token):
            division = token
    strandedness = b""
    if mol[:3].lower() in (b"ss-", b"ds-", b"ms-"):
        strandedness, mol = mol[:3], mol[3:]
    line = b"LOCUS       %-16s %11s %s %3s%-6s  %-8s %s" % (
        name, length, unit, strandedness, mol, topology, division,
    )
    if date:
        line += b" " + date
    if line == m.group(0):
        return None
    return line + text[m.end() :]


def _locus_name(text: bytes) -> str:
    m = re.match(rb"\s*LOCUS\s+(\S+)", text)
    return m.group(1).decode("latin-1") if m else ""


def _gb_parse_one(text: bytes):
    recs = gb_io.load(io.BytesIO(text))
    if len(recs) != 1:
        raise ValueError(f"gb-io found {len(recs)} records in one entry")
    return recs[0]


def _bio_parse_one(text: bytes):
    from Bio import BiopythonParserWarning, SeqIO

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BiopythonParserWarning)
        return SeqIO.read(io.StringIO(text.decode("latin-1")), "genbank")


def _order_indices(text: bytes) -> frozenset[int]:
    return _order_feature_indices(text) if b"order(" in text else frozenset()


class _Parser:
    """Turns raw record bytes into ``Record`` models, counting the ``parse`` stage."""

    def __init__(self, acct: Accounting, source: str, source_file: str):
        self.acct, self.source, self.source_file = acct, source, source_file
        self.stage = acct.stage("parse")
        self.last_id = ""

    def reject(self, reason: str, detail: str, record_id: str = "") -> Reject:
        return self.acct.reject("parse", reason, detail=detail, source=self.source,
                                source_file=self.source_file, record_id=record_id)

    def accept(self, rec: Record) -> Record:
        self.stage.emit()
        self.last_id = rec.id or self.last_id
        return rec

    def batch(self, batch: bytes):
        """Records (or parse Rejects) for a run of whole entries, one gb-io call when possible.

        When gb-io accepts the batch its record count is the entry count (it fails on empty
        or partial entries), so the entries are only located when needed: to re-parse them
        one by one, or to read a record's raw text for order().
        """
        try:
            recs = gb_io.load(io.BytesIO(batch))
        except Exception:  # gb-io raises ValueError; be robust to anything from the Rust side
            recs = None
        if recs:
            self.stage.take(len(recs))
            return self._models(recs, batch)
        spans = _entries(batch)
        self.stage.take(len(spans))
        return (self.one(batch[s:e]) for s, e in spans)

    def _models(self, recs: list, batch: bytes):
        """Convert lazily, dropping each gb-io record once converted (bounds memory)."""
        spans: list = []

        def raw(i: int) -> bytes:
            if not spans:
                spans.extend(_entries(batch))
            s, e = spans[i] if len(spans) == len(recs) else (0, len(batch))
            return batch[s:e]

        for i in range(len(recs)):
            r, recs[i] = recs[i], None
            yield self.accept(_record_from_gb(r, lambda i=i: raw(i)))

    def one(self, text: bytes, *, allow_biopython: bool = True):
        """gb-io, then gb-io on a repaired LOCUS line, then Biopython, then a parse_error."""
        try:
            return self.accept(_record_from_gb(_gb_parse_one(text), text))
        except Exception as e:
            gb_error = e
        repaired = repair_locus(text.lstrip())
        if repaired is not None:
            try:
                rec = _record_from_gb(_gb_parse_one(repaired), text)
                self.stage.note("locus_repaired")
                return self.accept(rec)
            except Exception:
                pass
        bio_error = None
        if allow_biopython:
            try:
                rec = _record_from_bio(_bio_parse_one(text))
                self.stage.note("biopython_fallback")
                return self.accept(rec)
            except Exception as e:
                bio_error = e
        detail = f"gb-io: {_short(gb_error)}"
        if bio_error is not None:
            detail += f"; Biopython: {_short(bio_error)}"
        return self.reject("parse_error", detail, _locus_name(text))

    def tail(self, text: bytes):
        """An entry without ``//`` at the end of the file: kept only if visibly complete."""
        self.stage.take()
        name, repaired_used, r = _locus_name(text), False, None
        try:
            r = _gb_parse_one(text)
        except Exception as e:
            error = e
            repaired = repair_locus(text.lstrip())
            if repaired is not None:
                try:
                    r, repaired_used = _gb_parse_one(repaired), True
                except Exception:
                    pass
        if r is None:
            return self.reject("truncated_record", f"last entry has no // terminator and does not parse "
                               f"({_short(error)}); previous record {self.last_id or '-'}", name)
        declared, got = r.length, len(r.sequence or b"")
        if not got or declared != got:
            return self.reject("truncated_record", f"last entry has no // terminator; LOCUS declares "
                               f"{declared} bp, sequence has {got}; previous record {self.last_id or '-'}",
                               _record_id_gb(r) or name)
        self.stage.note("missing_terminator")
        if repaired_used:
            self.stage.note("locus_repaired")
        return self.accept(_record_from_gb(r, text))

    def truncated(self, text: bytes, error: Exception) -> Reject:
        self.stage.take()
        return self.reject(
            "truncated_file",
            f"{self.source_file or 'input'}: compressed stream ends early ({_short(error)}) after record "
            f"{self.last_id or '(none)'}; {len(text)} bytes of a partial entry discarded",
            _locus_name(text),
        )


def _short(e: BaseException, limit: int = 300) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------- locations


def format_location(parts, operator: str) -> str:
    """GenBank-style text of a location in the internal model (1-based, closed)."""

    def one(p):
        s, e, strand, before, after, ref = p
        text = f"{'<' if before else ''}{s + 1}"
        if e - s != 1 or after:
            text += f"..{'>' if after else ''}{e}"
        if ref:
            text = f"{ref}:{text}"
        return text

    if len(parts) == 1:
        p = parts[0]
        if not (p[3] or p[4] or p[5]) and p[1] - p[0] > 1:
            return f"{p[0] + 1}..{p[1]}" if p[2] > 0 else f"complement({p[0] + 1}..{p[1]})"
        return one(p) if p[2] > 0 else f"complement({one(p)})"
    op = "order" if operator == "order" else "join"
    if all(p[2] < 0 for p in parts):
        return f"complement({op}({','.join(one(p) for p in reversed(parts))}))"
    return f"{op}({','.join(one(p) if p[2] > 0 else f'complement({one(p)})' for p in parts)})"


def _extent(parts, length: int, circular: bool):
    """(lo, hi) genomic extent of colinear parts, hi may exceed ``length`` when a circular
    feature crosses the origin; None when the parts are not colinear on one strand."""
    if len(parts) == 1:
        return parts[0][0], parts[0][1]
    strand = parts[0][2]
    if any(p[2] != strand for p in parts):
        return None
    genomic = parts if strand > 0 else parts[::-1]
    lo, hi = genomic[0][0], genomic[0][1]
    prev, shift, crossing = lo, 0, None
    for s, e, *_ in genomic[1:]:
        if s + shift < prev:
            if shift or not circular:
                return None
            shift, crossing = length, (prev, s)
        prev = s + shift
        lo, hi = min(lo, s + shift), max(hi, e + shift)
    if crossing is not None and hi - lo > length // 2:
        # A long "wrap" is far more likely trans-splicing than a gene across the origin,
        # unless the parts meet exactly at the origin.
        before_jump = max(e for s, e, *_ in genomic if s <= crossing[0])
        if not (before_jump == length and crossing[1] == 0):
            return None
    return lo, hi


def _overlaps(a_parts, b_parts) -> bool:
    for s1, e1, *_ in a_parts:
        for s2, e2, *_r in b_parts:
            if s1 < e2 and s2 < e1:
                return True
    return False


def _union(span, other, length: int, circular: bool):
    """Union of two extents; on circular records ``other`` may be shifted by one genome."""
    lo, hi = span
    olo, ohi = other
    if circular and not (olo < hi and lo < ohi):
        for shift in (length, -length):
            if olo + shift < hi and lo < ohi + shift:
                olo, ohi = olo + shift, ohi + shift
                break
    if not (olo < hi and lo < ohi):
        return span
    return min(lo, olo), max(hi, ohi)


def _splice(seq: bytes, parts) -> bytes:
    """The parts' sequences joined in transcript order, each on its own strand."""
    return b"".join(seq[s:e] if strand > 0 else _revcomp(seq[s:e]) for s, e, strand, *_ in parts)


def _region(seq: bytes, lo: int, hi: int, circular: bool) -> bytes:
    length = len(seq)
    if 0 <= lo and hi <= length:
        return seq[lo:hi]
    if not circular:
        return seq[max(lo, 0) : min(hi, length)]
    lo_mod = lo % length
    end = lo_mod + (hi - lo)
    return seq[lo_mod:end] if end <= length else seq[lo_mod:] + seq[: end - length]


# ----------------------------------------------------------------------------- extraction

_POS = re.compile(r"(\d+)")
_AA = re.compile(r"aa:\s*([A-Za-z]+)")


def _transl_except_codons(values, parts, codon_start: int):
    """{codon index: amino-acid letter} for /transl_except values that fall in this CDS."""
    out, bad = {}, []
    for value in values:
        aa_m = _AA.search(value)
        letter = THREE_TO_ONE.get(aa_m.group(1).upper()) if aa_m else None
        nums = [int(n) - 1 for n in _POS.findall(value.split("aa:")[0])]
        if letter is None or not nums:
            bad.append(value)
            continue
        five_prime = max(nums) if "complement" in value else min(nums)
        offset = 0
        for s, e, strand, *_ in parts:
            if s <= five_prime < e:
                within = five_prime - s if strand > 0 else e - 1 - five_prime
                out[(offset + within - (codon_start - 1)) // 3] = letter
                break
            offset += e - s
        else:
            bad.append(value)
    return out, bad


def _mrna_consistent(cds_parts, mrna_parts) -> bool:
    """Inside the CDS extent, the mRNA exons are exactly the (merged) CDS parts."""
    cds = sorted((s, e) for s, e, *_ in cds_parts)
    merged = [list(cds[0])]
    for s, e in cds[1:]:
        if s <= merged[-1][1]:  # overlapping parts (ribosomal slippage) form one exon
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    lo, hi = merged[0][0], merged[-1][1]
    clipped = sorted([max(s, lo), min(e, hi)] for s, e, *_ in mrna_parts if s < hi and lo < e)
    return clipped == merged


def _lookup(by_tag: dict, by_name: dict, f: Feature) -> list:
    """Features sharing the anchor's /locus_tag, else its /gene (without a conflicting tag)."""
    q = f.q
    tag = q.get("locus_tag")
    found = by_tag.get(tag) if tag else None
    if not found:
        name = q.get("gene")
        if name and name in by_name:
            found = [g for g in by_name[name] if not tag or not g.q.get("locus_tag")]
    return found or []


def _matching(candidates: list, parts) -> list:
    return [g for g in candidates if parts is None or g.parts is None or _overlaps(parts, g.parts)]


class _Pending:
    """A gene that passed the checks: its sequences as bytes, waiting for the record-wide
    translation and its unique key."""

    __slots__ = ("f", "nt", "dna", "flank_5", "flank_3", "strand", "gene", "mrna", "partial_5",
                 "partial_3", "codon_start", "table", "own", "key")

    def __init__(self, f: Feature, gene, mrna):
        self.f, self.gene, self.mrna = f, gene, mrna
        parts = f.parts
        first, last = parts[0], parts[-1]
        self.strand = first[2]
        # partial flags are positional (<left, >right); the 5' end is the right one on minus
        self.partial_5 = bool(first[3] if first[2] > 0 else first[4])
        self.partial_3 = bool(last[4] if last[2] > 0 else last[3])
        self.codon_start = self.table = self.flank_5 = self.flank_3 = 0
        self.own = self.dna = None


class _Extractor:
    """Per-record gene extraction; counts the ``extract`` stage."""

    def __init__(self, acct: Accounting, source: str, source_file: str, flank: int):
        self.acct, self.source, self.source_file, self.flank = acct, source, source_file, flank
        self.stage = acct.stage("extract")
        self.notes: dict[str, int] = {}  # flushed into the stage once per record

    def note(self, key: str) -> None:
        self.notes[key] = self.notes.get(key, 0) + 1

    def reject(self, rec: Record, reason: str, detail: str, f: Feature) -> Reject:
        q = f.q
        item_id = q.get("locus_tag") or q.get("protein_id") or q.get("gene") or f"{f.kind}#{f.index}"
        return self.acct.reject("extract", reason, detail=detail, source=self.source,
                                source_file=self.source_file, record_id=rec.id, item_id=item_id)

    def record(self, rec: Record) -> list:
        genes_t, genes_n, mrnas_t, mrnas_n, cds_t, cds_n = {}, {}, {}, {}, {}, {}
        index = {"CDS": (cds_t, cds_n), "gene": (genes_t, genes_n), "mRNA": (mrnas_t, mrnas_n)}
        anchors, rnas = [], []
        for f in rec.features:
            by = index.get(f.kind)
            if by is None:
                rnas.append(f)
                continue
            if by[0] is cds_t:
                anchors.append(f)
            tag, name = f.q.get("locus_tag"), f.q.get("gene")
            if tag:
                by[0].setdefault(tag, []).append(f)
            if name:
                by[1].setdefault(name, []).append(f)
        if rnas:
            for f in rnas:
                if f.parts is not None and _matching(_lookup(cds_t, cds_n, f), f.parts):
                    self.note("rna_feature_with_cds")
                else:
                    anchors.append(f)
            anchors.sort(key=lambda f: f.index)
        if not anchors:
            return []
        self.stage.take(len(anchors))

        has_mrna = bool(mrnas_t or mrnas_n)
        out, pending = [], []
        for f in anchors:
            item = self.check(rec, f, _matching(_lookup(genes_t, genes_n, f), f.parts))
            if type(item) is _Pending:
                if has_mrna and f.kind == "CDS":
                    item.mrna = self.choose_mrna(rec, f, _lookup(mrnas_t, mrnas_n, f))
                self.sequences(rec, item)
                pending.append(item)
            out.append(item)
        self.translate(pending)
        _assign_keys(pending)
        result = [self.finish(rec, p) if type(p) is _Pending else p for p in out]
        self.stage.emit(len(pending))
        for key, n in self.notes.items():
            self.stage.note(key, n)
        self.notes.clear()
        return result

    def compiled(self, result) -> list:
        """The rows of one entry that ``_gbfast.extract_entry`` finished: the same rows, rejects
        and counts that ``record`` gives for it (keys made unique here, by ``_unique_keys``)."""
        rid, rows, notes, anchors, emitted = result
        if not anchors:
            return []
        self.stage.take(anchors)
        genes = [r for r in rows if len(r) == 8]
        keys = iter(_unique_keys([r[0] for r in genes], [r[1] for r in genes]))
        out = []
        for r in rows:
            if len(r) == 3:
                out.append(self.acct.reject("extract", r[0], detail=r[1], source=self.source,
                                            source_file=self.source_file, record_id=rid, item_id=r[2]))
            else:
                out.append(GeneSequences(f"{rid}:{next(keys)}", rid, self.source_file, *r[2:]))
        self.stage.emit(emitted)
        for key, n in notes.items():
            self.stage.note(key, n)
        return out

    def check(self, rec: Record, f: Feature, gene_feats: list):
        """A Reject, or a _Pending for a gene whose location can be extracted."""
        q = f.q
        if "pseudo" in q or "pseudogene" in q:
            return self.reject(rec, "pseudo", f"/pseudo on {f.kind} {_loc_text(f)}", f)
        for g in gene_feats:
            if "pseudo" in g.q or "pseudogene" in g.q:
                return self.reject(rec, "pseudo", f"/pseudo on the gene of {f.kind} {_loc_text(f)}", f)
        if f.error is not None:
            return self.reject(rec, f.error.reason, f"{f.kind}: {f.error}", f)
        parts, length = f.parts, len(rec.seq)
        for s, e, strand, before, after, ref in parts:
            if ref:
                refs = ", ".join(sorted({p[5] for p in parts if p[5]}))
                return self.reject(rec, "external_reference", f"{f.kind} {_loc_text(f)} of record "
                                   f"{rec.id} has parts in {refs}", f)
        if not length:
            return self.reject(rec, "empty_sequence", f"record {rec.id} has no sequence", f)
        for s, e, *_ in parts:
            if not 0 <= s < e <= length:
                reason = "location_out_of_bounds" if s < e else "invalid_location"
                return self.reject(rec, reason, f"{f.kind} {_loc_text(f)} outside 1..{length}", f)
        return _Pending(f, gene_feats[0] if gene_feats else None, None)

    def choose_mrna(self, rec: Record, f: Feature, candidates: list):
        """The first overlapping mRNA whose exons agree with the CDS, if any."""
        candidates = [m for m in candidates if m.parts and _overlaps(f.parts, m.parts)]
        if not candidates:
            return None
        length, external = len(rec.seq), False
        for m in candidates:
            if any(p[5] for p in m.parts):
                external = True  # exons in another record: the transcript cannot be built here
            elif all(0 <= s < e <= length for s, e, *_ in m.parts) and _mrna_consistent(f.parts, m.parts):
                return m
        self.note("mrna_external" if external else "mrna_inconsistent")
        return None

    def sequences(self, rec: Record, p: _Pending) -> None:
        """Set p.dna (genomic span + flanks) and p.nt (spliced feature), oriented 5'->3'."""
        f, seq, circular, flank = p.f, rec.seq, rec.circular, self.flank
        parts, length = f.parts, len(seq)
        span = _extent(parts, length, circular)
        if span is None:
            p.nt = _splice(seq, parts)
            return
        for other in (p.gene, p.mrna):
            if other is not None and other.parts is not None and other.parts != parts:
                local = [x for x in other.parts if not x[5]]
                ext = _extent(local, length, circular) if local else None
                if ext is not None:
                    span = _union(span, ext, length, circular)
        lo, hi = span
        if circular:
            left, right = _circular_flanks(hi - lo, flank, length)
        else:
            left, right = min(flank, lo), min(flank, length - hi)
        region = _region(seq, lo - left, hi + right, circular)
        if left < flank or right < flank:
            self.note("flank_clipped")
        if p.strand > 0:
            p.dna, p.flank_5, p.flank_3 = region, left, right
        else:
            p.dna, p.flank_5, p.flank_3 = _revcomp(region), right, left
        if len(parts) == 1:  # the feature is a slice of the oriented span: no second pass
            s, e = parts[0][:2]
            start = p.flank_5 + (s - lo if p.strand > 0 else hi - e)
            p.nt = bytes(p.dna[start : start + e - s])
        else:
            p.nt = _splice(seq, parts)

    def translate(self, pending: list) -> None:
        """Translate every CDS of the record, one vectorised call per genetic code."""
        by_table: dict[int, list] = {}
        for p in pending:
            if p.f.kind != "CDS":
                continue
            q = p.f.q
            p.codon_start = _CODON_START.get(q.get("codon_start"), 0)
            if not p.codon_start:
                self.note("bad_codon_start")
                p.codon_start = 1
            p.table = _int(q.get("transl_table"), 1)
            by_table.setdefault(p.table, []).append(p)
        for table, items in by_table.items():
            try:
                framed = [p.nt[p.codon_start - 1 :] if p.codon_start > 1 else p.nt for p in items]
                proteins = translate_many(framed, table)
                starts = start_codons(table)
            except UnknownTable:
                self.note("unknown_transl_table")
                continue
            for p, prot in zip(items, proteins):
                # NCBI: a start codon of the table at a complete 5' end reads as M
                if p.codon_start == 1 and not p.partial_5 and prot[:1] not in ("M", "") and p.nt[:3] in starts:
                    prot = "M" + prot[1:]
                    self.note("alternative_start")
                if "transl_except" in p.f.q:
                    prot = self.apply_transl_except(p, prot)
                p.own = prot[:-1] if prot[-1:] == "*" else prot

    def apply_transl_except(self, p: _Pending, prot: str) -> str:
        self.note("transl_except")
        exceptions, bad = _transl_except_codons(p.f.q["transl_except"], p.f.parts, p.codon_start)
        if bad:
            self.note("transl_except_unresolved")
        chars = list(prot)
        for i, letter in exceptions.items():
            if 0 <= i < len(chars):
                chars[i] = letter
        return "".join(chars)

    def finish(self, rec: Record, p: _Pending) -> GeneSequences:
        f, q, note, mrna = p.f, p.f.q, self.note, p.mrna
        nt = p.nt
        if f.kind != "CDS":
            rna_source, rna_bytes, protein, cds, check = "feature", nt, None, None, "none"
        else:
            if mrna is not None:
                rna_source, rna_bytes = "mRNA", _splice(rec.seq, mrna.parts)
            else:
                rna_source, rna_bytes = "CDS", nt
            cds = nt.decode("latin-1")
            protein, check = self.protein(q.get("translation"), p.own)
        note(_RNA_NOTE[rna_source])

        gq = p.gene.q if p.gene is not None else q
        product = q.get("product") or ""
        if "\n" in product:
            product = " ".join(product.split())
        attributes = {
            "gene": q.get("gene") or gq.get("gene") or "",
            "locus_tag": q.get("locus_tag") or gq.get("locus_tag") or "",
            "protein_id": q.get("protein_id") or "",
            "transcript_id": (mrna.q.get("transcript_id") if mrna is not None else None)
            or q.get("transcript_id") or "",
            "gene_id": q.get("gene_id") or gq.get("gene_id") or "",
            "product": product,
            "transl_table": p.table,
            "codon_start": p.codon_start,
            "partial_5": p.partial_5,
            "partial_3": p.partial_3,
            "location": format_location(f.parts, f.operator),
            "strand": p.strand,
            "flank_5": p.flank_5,
            "flank_3": p.flank_3,
            "rna_source": rna_source,
            "translation_check": check,
        }
        # rare facts only appear when true, to keep the common row small
        if p.partial_5:
            note("partial_5")
        if p.partial_3:
            note("partial_3")
        if f.operator == "order":
            note("order_location")
        if p.dna is None or "trans_splicing" in q:
            attributes["trans_spliced"] = True
            note("trans_spliced")
            if p.dna is None:
                note("noncolinear_no_dna")
        if mrna is not None:
            attributes["mrna_location"] = format_location(mrna.parts, mrna.operator)
        if "exception" in q:
            attributes["exception"] = q["exception"] or ""
        if "ribosomal_slippage" in q:
            attributes["ribosomal_slippage"] = True
        return GeneSequences(
            f"{rec.id}:{p.key}", rec.id, self.source_file, f.kind,
            p.dna.decode("latin-1") if p.dna is not None else None,
            rna_bytes.translate(T_TO_U).decode("latin-1"), protein, cds, attributes,
        )

    def protein(self, given, own) -> tuple[str | None, str]:
        """(protein, translation_check): /translation when given, checked against our own."""
        if given and (" " in given or "\n" in given):
            given = "".join(given.split())
        if given:
            if own is None:
                return given, "unchecked"
            if own == given:
                return given, "match"
            self.note("translation_mismatch")
            return given, "mismatch"
        if own is None:
            return None, "unchecked"
        self.note("translated")
        if "*" in own:
            self.note("internal_stop")
        return own, "translated"


_RNA_NOTE = {"feature": "rna_from_feature", "mRNA": "rna_from_mrna", "CDS": "rna_from_cds"}


def _revcomp(b) -> bytearray:
    out = bytearray(b.translate(COMPLEMENT))
    out.reverse()  # in place: about twice as fast as [::-1]
    return out


def _circular_flanks(size: int, flank: int, length: int) -> tuple[int, int]:
    """Flanks that wrap around the origin but never make the region longer than the genome."""
    room = max(length - size, 0)
    if 2 * flank <= room:
        return flank, flank
    left = min(flank, room // 2)
    return left, min(flank, room - left)


def _assign_keys(pending: list) -> None:
    """Group keys unique within the record: locus_tag, protein_id, or gene name + start."""
    keys = []
    for p in pending:
        q = p.f.q
        key = q.get("locus_tag") or q.get("protein_id")
        if not key:
            key = f"{q.get('gene') or p.f.kind}_{min(s for s, *_ in p.f.parts) + 1}"
        keys.append(key)
    for p, key in zip(pending, _unique_keys(keys, [p.f.q.get("protein_id") for p in pending])):
        p.key = key


def _unique_keys(keys: list[str], protein_ids: list) -> list[str]:
    """Isoforms (a repeated key) get ``|protein_id``, else ``|n``; what still repeats is numbered."""
    counts: dict[str, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    if len(counts) == len(keys):
        return keys
    seen: dict[str, int] = {}
    out = []
    for key, pid in zip(keys, protein_ids):
        if counts[key] > 1:
            n = seen[key] = seen.get(key, 0) + 1
            key = f"{key}|{pid}" if pid and pid != key else f"{key}|{n}"
        out.append(key)
    used: set[str] = set()
    for i, base in enumerate(out):  # a repeated protein_id: fall back to numbering
        key, n = base, 1
        while key in used:
            n += 1
            key = f"{base}|{n}"
        out[i] = key
        used.add(key)
    return out


def _loc_text(f: Feature) -> str:
    return format_location(f.parts, f.operator) if f.parts else "(unparsed location)"


_CODON_START = {None: 1, "1": 1, "2": 2, "3": 3}


@lru_cache(maxsize=256)
def _int(value, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


# ----------------------------------------------------------------------------- public API


ENGINES = ("auto", "compiled", "python")


@lru_cache(maxsize=1)
def _compiled_tables() -> tuple:
    """What the compiled path translates with: genetic_code's byte classes, and per table its
    codon lookup and start codons (so both paths read the same tables)."""
    return BYTE_CLASS.tobytes(), {
        t: (codon_lookup(t).tobytes(), b"".join(sorted(start_codons(t)))) for t in TABLE_IDS
    }


def extract_genbank(
    path, acct: Accounting, *, source: str = "refseq", flank: int = 100, engine: str = "auto"
) -> Iterator[GeneSequences | Reject]:
    """Yield a ``GeneSequences`` per gene and a ``Reject`` per unusable record or gene.

    ``path`` is a local path, a Beam-readable URL, or a binary file object; gzip is detected
    from the magic bytes. Counts go to the ``parse`` and ``extract`` stages of ``acct``.
    ``engine``: "auto" uses the compiled fast path when it is built, "compiled" requires it,
    "python" never uses it (gb-io for every entry). All three give the same rows and counts.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    if engine == "compiled" and _gbfast is None:
        raise RuntimeError("bsm_data._gbfast is not built (pip install -e . builds it; it needs a C compiler)")
    compiled = _gbfast is not None and engine != "python"
    name = path if isinstance(path, (str, os.PathLike)) else getattr(path, "name", "")
    source_file = os.path.basename(os.fspath(name)) if name else ""
    parser = _Parser(acct, source, source_file)
    extractor = _Extractor(acct, source, source_file, flank)
    fh, is_gzip, close = open_stream(path)
    try:
        for event in _read_batches(fh, is_gzip):
            if event[0] == "records":
                items = _compiled_batch(event[1], parser, extractor) if compiled else parser.batch(event[1])
            elif event[0] == "tail":
                items = [parser.tail(event[1])]
            else:
                items = [parser.truncated(event[1], event[2])]
            for item in items:  # parsed Records still to extract, or finished rows and Rejects
                if type(item) is Record:
                    yield from extractor.record(item)
                else:
                    yield item
    finally:
        close()


def _compiled_batch(batch: bytes, parser: _Parser, extractor: _Extractor):
    """Each entry through ``_gbfast`` (its finished rows and Rejects); the ones outside its
    subset through ``parser.one`` (a Record to extract, or a parse Reject)."""
    tables, flank = _compiled_tables(), extractor.flank
    spans = _entries(batch)
    parser.stage.take(len(spans))
    for start, end in spans:
        result = _gbfast.extract_entry(batch, start, end, flank, tables)
        if result is None:
            yield parser.one(batch[start:end])
            continue
        parser.stage.emit()
        parser.last_id = result[0] or parser.last_id
        yield from extractor.compiled(result)
