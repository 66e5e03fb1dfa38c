"""NCBI Gene "Gene Related Sequences": gene2accession rows joined to sequences -> pair samples.

Paper §2.2 / appendix B: tokens are drawn from many species by pairing the DNA, RNA and protein
sequences NCBI Gene relates to one GeneID, with the same shuffled-order ``<sep>`` pairing as the
RefSeq spine (``bsm_data.pairing.pair_gene``, ``source="gene"``).

gene2accession (NCBI ``gene/DATA/gene2accession.gz``; ``gene2refseq.gz`` has the same layout)
--------------------------------------------------------------------------------------------
Tab-separated, first line a header starting with ``#``, 16 columns (``G2A_COLUMNS``); ``-``
means missing. ``read_gene2accession`` streams it (plain or gzip, local or any Beam filesystem),
refuses a file whose header is not exactly that layout (``Gene2AccessionFormatError``), and
quarantines malformed lines as Rejects (stage ``gene2accession``, reason ``malformed_line``,
detail and item_id naming the line number): wrong column count, empty column, non-numeric
tax_id / GeneID / positions, only one of start/end, positions without a genomic accession, an
orientation other than ``+ - ?``. A gzip stream that breaks off is one ``truncated_file`` reject.

Positions. NCBI's Gene README defines both position columns as "position 0-based": they are
0-based and *inclusive* (NCBI Gene shows A1BG at NC_000019.10 58345183..58353492; its
gene2accession row has 58345182 and 58353491). So the GenBank span ``a..b`` is written
``a-1``/``b-1`` and read back as the slice ``[start, end + 1)``. A row whose end is below its
start on a circular sequence crosses the origin (that is how the derived file writes such
genes); on a linear sequence it is ``position_out_of_bounds``.

``--tax-id`` selects rows before the stage counts them: lines of other taxa are not input of this
build (note ``other_tax_id``), so selecting one species out of 285 M lines writes no reject rows.

Sequence sources (stage ``index``)
----------------------------------
``sequence_items`` turns each file into accession-keyed ``SeqItem``s (the index), by format:

* GenBank (``.gb .gbk .gbff .gbff.gz``...; parsed entry by entry with ``bsm_data.genbank``'s
  parser, so LOCUS repair and the Biopython fallback apply, stage ``parse``):
  every record -> ``record`` item (accession.version -> record sequence, molecule from LOCUS,
  topology); every CDS with ``/protein_id`` -> ``protein`` item, the protein exactly as the RefSeq
  extraction makes it (``/translation``, else translated with the record's genetic code); a
  CDS the extraction cannot use (parts in another record, an unsupported location) still gives
  its ``/translation`` (note ``protein_from_translation_only``), a ``/pseudo`` one nothing;
  every mRNA / ncRNA / rRNA / tRNA / misc_RNA ... feature with ``/transcript_id`` -> ``transcript``
  item, the spliced feature. Protein GenBank (GenPept, unit ``aa``) records are ``protein`` items.
* FASTA (stage ``read`` of ``bsm_data.readers``): NCBI headers ``>gi|..|ref|NP_1.1| ...``,
  ``>ref|NP_1.1|``, ``>sp|P12345|NAME``, ``>NP_1.1 desc``. Headers naming a sub-range
  (``>ref|NC_1.1|:87-1109``, ``.ffn``) are not accessions (reject ``subsequence``). ``.faa`` is
  protein, ``.fna .ffn .frn`` nucleotide, anything else by content (>= 90 % ACGTUN: nucleotide).

``index`` counts one unit per accession-bearing entry; an entry that yields no sequence (record
without sequence, CDS the extraction rejects, transcript with parts in another record, header
without an accession) is a reject with the reason, and is still passed on so that an
unresolved accession can say why.

The join (stages ``join`` and ``gene``)
---------------------------------------
Rows are grouped by GeneID (``gene_refs``). Each distinct accession a GeneID names is one
reference, per column: ``genomic`` (accession + span + orientation; a genomic accession without
positions is no reference, note ``genomic_without_position``), ``rna``, ``protein``.
``mature_peptide`` accessions are not used (note). References and index items meet by accession
without version (``resolve``); a reference matches an item of the same accession.version (or an
item whose accession has no version); a protein reference only ``protein`` items, an RNA
reference ``transcript`` or nucleotide ``record`` items, a genomic reference only ``record``
items. Several matching items (the same protein from a GenBank CDS and from a .faa file): the
first by (source file, position) wins; differing sequences are noted ``accession_conflict``.

Stage ``join`` counts references: out = resolved, rejected ``unresolved_accession`` (detail: the
accession, the column, the first gene2accession line, and why: not in the sources / only other
versions / found but unusable), ``unknown_orientation`` (``?``: trans-spliced genes have no one
genomic span), ``position_out_of_bounds``. Resolved sequences:

* DNA: the span ``start..end`` plus ``flank`` (100) nt each side, clipped at the ends of linear
  sequences, wrapped around the origin of circular ones (never longer than the genome; the same
  rule as the RefSeq extraction), reverse-complemented for ``-``: 5'->3' on the gene's strand.
* RNA: the RNA accession's sequence in U. Protein: the protein accession's sequence (one
  terminal ``*`` removed).

Stage ``gene`` counts GeneIDs (in = out; every GeneID becomes one ``GeneSequences`` with
``group_id="GeneID:<id>"``, ``kind="gene"``; ``pair_gene`` rejects one with fewer than two
valid modalities as ``single_modality``). Choice among isoforms: candidates are the (RNA,
protein) pairs written on the same gene2accession line with both resolved (a transcript and its
product). One is drawn with ``gene_rng(seed, "GeneID:<id>:isoform")`` from the sorted
candidates (a key of its own, so this draw is independent of pair_gene's draw for the same
gene). With no such pair, the RNA and the protein are drawn independently from the resolved
ones (note ``rna_protein_different_rows``). The DNA is the resolved genomic span on the chosen
line, else on a line naming the chosen RNA or protein, else the smallest (accession, start, end).

Determinism: every step sorts its inputs, so the local engine (``build_gene_local``) and the
Beam pipeline (``pipelines/gene.py``) write the same bytes with any worker count.
"""
from __future__ import annotations

import gzip
import io
import os
import re
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from . import genbank as gb
from .accounting import Accounting
from .build import build_local
from .pairing import gene_rng, pair_gene
from .readers import NUCLEOTIDE_LIKE_FRACTION, _nucleotide_fraction, read_sequences, sniff_content
from .records import GeneSequences, Reject
from .streams import open_stream
from .vocab import load_vocab

__all__ = [
    "G2A_COLUMNS", "G2A_HEADER", "STAGES", "Gene2AccessionFormatError", "Gene2AccRow", "SeqItem", "Ref",
    "GeneRows", "Resolved", "new_accounting", "read_gene2accession", "format_gene2accession",
    "write_gene2accession", "base_accession", "fasta_accession", "sequence_items", "gene_refs",
    "resolve", "assemble", "gene_to_samples", "join_local", "build_gene_local", "gene_options",
    "read_genbank_entries", "derive_gene2accession",
]

SOURCE = "gene"
FLANK = 100
MISSING = "-"
ORIENTATIONS = ("+", "-", "?")
G2A_COLUMNS = (
    "tax_id", "GeneID", "status", "RNA_nucleotide_accession.version", "RNA_nucleotide_gi",
    "protein_accession.version", "protein_gi", "genomic_nucleotide_accession.version",
    "genomic_nucleotide_gi", "start_position_on_the_genomic_accession",
    "end_position_on_the_genomic_accession", "orientation", "assembly",
    "mature_peptide_accession.version", "mature_peptide_gi", "Symbol",
)
G2A_HEADER = "#" + "\t".join(G2A_COLUMNS)
# Every accounting this module creates has these stages, in this order, so the manifest's
# accounting is byte-identical whichever engine, worker or bundle merged it first.
STAGES = ("gene2accession", "parse", "read", "index", "join", "gene", "validate", "pair")

GENBANK_SUFFIXES = (".gb", ".gbk", ".gbff", ".genbank", ".gp", ".gpff")
PROTEIN_FASTA = (".faa", ".mpfa")
NUCLEOTIDE_FASTA = (".fna", ".ffn", ".frn")
TRANSCRIPT_KINDS = frozenset({"mRNA"}) | gb.RNA_KINDS


class Gene2AccessionFormatError(ValueError):
    """The file is not in the gene2accession layout (missing or different header)."""


def new_accounting() -> Accounting:
    acct = Accounting()
    for name in STAGES:
        acct.stage(name)
    return acct


def _base(path) -> str:
    return os.path.basename(os.fspath(path).rstrip("/"))


def _strip_gz(name: str) -> str:
    for z in (".gz", ".bgz"):
        if name.lower().endswith(z):
            return name[: -len(z)]
    return name


# ============================================================================ gene2accession


@dataclass(frozen=True)
class Gene2AccRow:
    """One gene2accession line. Accessions and text columns are None where the file has '-';
    ``start``/``end`` are the file's 0-based inclusive positions."""

    line: int
    tax_id: int
    gene_id: int
    status: str | None
    rna: str | None
    rna_gi: str | None
    protein: str | None
    protein_gi: str | None
    genomic: str | None
    genomic_gi: str | None
    start: int | None
    end: int | None
    orientation: str
    assembly: str | None
    mature_peptide: str | None
    mature_peptide_gi: str | None
    symbol: str | None
    source_file: str = ""

    def fields(self) -> list[str]:
        def t(v):
            return MISSING if v is None else str(v)

        return [
            str(self.tax_id), str(self.gene_id), t(self.status), t(self.rna), t(self.rna_gi), t(self.protein),
            t(self.protein_gi), t(self.genomic), t(self.genomic_gi), t(self.start), t(self.end), self.orientation,
            t(self.assembly), t(self.mature_peptide), t(self.mature_peptide_gi), t(self.symbol),
        ]

    def to_line(self) -> str:
        return "\t".join(self.fields())


def _digits(s: str) -> bool:
    return s.isascii() and s.isdigit()


def _parse_row(fields: list[str], lineno: int, source_file: str) -> Gene2AccRow | str:
    """A row, or the reason (text) the line is malformed."""
    if len(fields) != len(G2A_COLUMNS):
        return f"{len(fields)} columns, expected {len(G2A_COLUMNS)}"
    for name, value in zip(G2A_COLUMNS, fields):
        if value == "" or value != value.strip():
            return f"column {name} is empty or has surrounding spaces ({value!r}); missing values are '-'"
    tax, gid, start, end, orientation = fields[0], fields[1], fields[9], fields[10], fields[11]
    if not _digits(tax):
        return f"non-numeric tax_id {tax!r}"
    if not _digits(gid):
        return f"non-numeric GeneID {gid!r}"
    for name, value in (("start", start), ("end", end)):
        if value != MISSING and not _digits(value):
            return f"non-numeric {name} position {value!r}"
    if (start == MISSING) != (end == MISSING):
        return f"only one of start/end is given ({start!r}, {end!r})"
    if orientation not in ORIENTATIONS:
        return f"orientation {orientation!r} is not one of + - ?"
    if start != MISSING and fields[7] == MISSING:
        return "positions without a genomic accession"

    def v(i):
        return None if fields[i] == MISSING else fields[i]

    return Gene2AccRow(
        line=lineno, tax_id=int(tax), gene_id=int(gid), status=v(2), rna=v(3), rna_gi=v(4), protein=v(5),
        protein_gi=v(6), genomic=v(7), genomic_gi=v(8), start=None if start == MISSING else int(start),
        end=None if end == MISSING else int(end), orientation=orientation, assembly=v(12), mature_peptide=v(13),
        mature_peptide_gi=v(14), symbol=v(15), source_file=source_file,
    )


def read_gene2accession(
    path, acct: Accounting, *, tax_ids: Iterable[int] | None = None, source: str = SOURCE, source_file: str | None = None
) -> Iterator[Gene2AccRow | Reject]:
    """Stream gene2accession rows (stage ``gene2accession``: data lines in = rows + rejects).

    Raises ``Gene2AccessionFormatError`` when the first line is not the 16-column header.
    Lines starting with '#' after the header are comments (note ``comment_lines``).
    """
    name = source_file if source_file is not None else _base(path)
    wanted = frozenset(int(t) for t in tax_ids) if tax_ids else None
    stage = acct.stage("gene2accession")
    fh, is_gzip, close = open_stream(path)
    lineno = 0
    try:
        try:
            header = fh.readline()
            lineno = 1
            text = header.decode("utf-8", "replace").rstrip("\r\n")
            if text != G2A_HEADER:
                got = text[:200] if text else "an empty file"
                raise Gene2AccessionFormatError(
                    f"{name}: not gene2accession: line 1 is {got!r}, expected the header {G2A_HEADER[:60]!r}... "
                    f"({len(G2A_COLUMNS)} tab-separated columns)"
                )
            for lineno, raw in enumerate(fh, 2):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith("#"):
                    stage.note("comment_lines")
                    continue
                fields = line.split("\t")
                if wanted is not None and _digits(fields[0]) and int(fields[0]) not in wanted:
                    stage.note("other_tax_id")
                    continue
                stage.take()
                row = _parse_row(fields, lineno, name)
                if isinstance(row, str):
                    gid = fields[1] if len(fields) > 1 and _digits(fields[1]) else ""
                    yield acct.reject(
                        "gene2accession", "malformed_line", detail=f"{name} line {lineno}: {row}",
                        source=source, source_file=name, record_id=f"GeneID:{gid}" if gid else "",
                        item_id=f"line:{lineno}",
                    )
                    continue
                stage.emit()
                if row.mature_peptide is not None:
                    stage.note("mature_peptide_ignored")
                if row.genomic is not None and row.start is None:
                    stage.note("genomic_without_position")
                yield row
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            if not is_gzip:
                raise
            stage.take()
            yield acct.reject(
                "gene2accession", "truncated_file",
                detail=f"{name}: compressed stream ends early after line {lineno} ({gb._short(e)})",
                source=source, source_file=name, item_id=f"line:{lineno + 1}",
            )
    finally:
        close()


def format_gene2accession(rows: Iterable[Gene2AccRow]) -> bytes:
    """The text of a gene2accession file (header + one line per row, '\\n' line ends)."""
    out = io.StringIO()
    out.write(G2A_HEADER + "\n")
    for r in rows:
        out.write(r.to_line() + "\n")
    return out.getvalue().encode("utf-8")


def write_gene2accession(rows: Iterable[Gene2AccRow], path: str) -> bytes:
    """Write rows as gzip with deterministic bytes (mtime 0, no file name in the header).
    Returns the uncompressed text."""
    text = format_gene2accession(rows)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as z:
        z.write(text)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)
    return text


# ============================================================================ sequence index


@dataclass(frozen=True)
class SeqItem:
    """One accession-bearing sequence from a source file (an entry of the index).

    ``kind``: ``record`` (a whole nucleotide sequence: genomic coordinates refer to it),
    ``transcript`` (a spliced RNA feature) or ``protein``. ``sequence`` is upper case, in the
    source's alphabet (DNA letters for transcripts), None when the entry exists but gives no
    sequence (``problem`` says why)."""

    accession: str
    kind: str
    molecule: str
    sequence: bytes | None
    circular: bool
    source_file: str
    order: int
    problem: str = ""

    def sort_key(self) -> tuple:
        return (self.source_file, self.order, self.kind, self.accession, self.sequence is None, self.sequence or b"")


_VERSION = re.compile(r"\.\d+$")


def base_accession(accession: str) -> str:
    """The accession without its ``.version`` (the join key; versions are matched inside)."""
    return _VERSION.sub("", accession)


_FASTA_TAGS = frozenset({"ref", "gb", "emb", "dbj", "sp", "tr", "tpg", "tpe", "tpd", "pir", "prf", "lcl"})
_RANGE_SUFFIX = re.compile(r":c?\d+-\d+$")


def fasta_accession(seq_id: str) -> tuple[str | None, str]:
    """(accession, problem) of a FASTA header's first word: NCBI ``gi|1|ref|NP_1.1|``,
    ``ref|NP_1.1|``, UniProt ``sp|P12345|NAME``, or a plain ``NP_1.1``. A header naming a
    sub-range of a sequence (``ref|NC_1.1|:87-1109``, ``NC_1.1:87-1109``) is a ``subsequence``."""
    if "|" in seq_id:
        parts = seq_id.split("|")
        for i, tag in enumerate(parts[:-1]):
            if tag in _FASTA_TAGS and parts[i + 1]:
                rest = "|".join(parts[i + 2:])
                if rest.startswith(":"):
                    return None, "subsequence"
                return parts[i + 1], ""
        return None, "no_accession"
    if _RANGE_SUFFIX.search(seq_id):
        return None, "subsequence"
    return (seq_id, "") if seq_id else (None, "no_accession")


# --- GenBank entries with the record-level facts the gene side needs


@dataclass
class GenBankEntry:
    """A parsed GenBank record (``bsm_data.genbank``'s model) plus the record-level facts read
    from its text: LOCUS molecule type (``protein`` for ``aa`` records), taxon, RefSeq status
    (COMMENT ``REVIEWED REFSEQ:`` ...), and old LocusLink ids per feature index."""

    record: gb.Record
    molecule: str
    taxon: str | None
    status: str | None
    locus_ids: dict = field(default_factory=dict)

    def gene_id(self, f: gb.Feature) -> str | None:
        """db_xref GeneID, else LocusID (LocusLink ids are GeneIDs, per NCBI's Gene README)."""
        return f.q.get("gene_id") or self.locus_ids.get(f.index)


_LOCUS = re.compile(rb"\s*LOCUS[ \t]+\S+[ \t]+\d+[ \t]+(bp|aa|rc)\b([^\r\n]*)")
_MOLECULE = re.compile(rb"(?:ss-|ds-|ms-)?((?:m|r|t|u|sn|sno|c)?RNA|c?DNA|NA)", re.I)
_TAXON = re.compile(rb'/db_xref="taxon:(\d+)"')
_STATUS = re.compile(rb"^COMMENT\s+([A-Z]+) REFSEQ", re.M)
_LOCUS_ID = re.compile(rb'/db_xref="LocusID:(\d+)"')


def _entry_facts(text: bytes) -> tuple[str, str | None, str | None, dict]:
    molecule = "DNA"
    m = _LOCUS.match(text)
    if m:
        if m.group(1) == b"aa":
            molecule = "protein"
        else:
            for token in m.group(2).split():
                mm = _MOLECULE.fullmatch(token)
                if mm:
                    molecule = mm.group(1).decode("ascii")
                    break
    t = _TAXON.search(text)
    s = _STATUS.search(text)
    locus_ids = _feature_xrefs(text, _LOCUS_ID) if b"LocusID:" in text else {}
    return molecule, t.group(1).decode() if t else None, s.group(1).decode() if s else None, locus_ids


def _feature_xrefs(text: bytes, pattern: re.Pattern) -> dict[int, str]:
    """{feature index: first match of ``pattern``} over the feature table (indices count every
    feature, as the parsers do; the same scan as genbank's order() recovery)."""
    start = text.find(b"\nFEATURES")
    if start < 0:
        return {}
    found, index = {}, -1
    for line in text[start + 1:].split(b"\n")[1:]:
        if line[:1] not in (b" ", b""):
            break
        if line[:5] == b"     " and line[5:6] not in (b" ", b""):
            index += 1
        elif index >= 0 and index not in found:
            m = pattern.search(line)
            if m:
                found[index] = m.group(1).decode("ascii")
    return found


def read_genbank_entries(path, acct: Accounting, *, source: str = SOURCE) -> Iterator[GenBankEntry | Reject]:
    """GenBank records one entry at a time with genbank.py's parser (stage ``parse``: gb-io,
    repaired LOCUS, Biopython, else a reject), each with its record-level facts."""
    source_file = _base(path) if isinstance(path, (str, os.PathLike)) else ""
    parser = gb._Parser(acct, source, source_file)
    fh, is_gzip, close = open_stream(path)

    def one(item, text):
        if isinstance(item, Reject):
            return item
        molecule, taxon, status, locus_ids = _entry_facts(text.lstrip())
        return GenBankEntry(item, molecule, taxon, status, locus_ids)

    try:
        for event in gb._read_batches(fh, is_gzip):
            if event[0] == "records":
                batch = event[1]
                spans = gb._entries(batch)
                parser.stage.take(len(spans))
                for s, e in spans:
                    text = batch[s:e]
                    yield one(parser.one(text), text)
            elif event[0] == "tail":
                yield one(parser.tail(event[1]), event[1])
            else:
                yield parser.truncated(event[1], event[2])
    finally:
        close()


class _Index:
    """Counts the ``index`` stage and numbers a file's items."""

    def __init__(self, acct: Accounting, source: str, source_file: str):
        self.acct, self.source, self.source_file = acct, source, source_file
        self.stage = acct.stage("index")
        self.order = 0

    def item(self, accession, kind, molecule, sequence, circular=False, problem="", reason="", record_id=""):
        """The SeqItem, plus its Reject when it has no sequence."""
        self.stage.take()
        item = SeqItem(accession or "", kind, molecule, sequence if not problem else None, circular,
                       self.source_file, self.order, problem)
        self.order += 1
        if problem:
            return item, self.acct.reject(
                "index", reason or "no_sequence", detail=f"{self.source_file}: {kind} {accession or '?'}: {problem}",
                source=self.source, source_file=self.source_file, record_id=record_id, item_id=accession or "",
            )
        self.stage.emit()
        return item, None


def _genbank_items(path, acct: Accounting, source: str) -> Iterator[SeqItem | Reject]:
    source_file = _base(path)
    idx = _Index(acct, source, source_file)
    scratch = Accounting()  # the extraction's own stages are not stages of this build
    extractor = gb._Extractor(scratch, source, source_file, 0)
    for entry in read_genbank_entries(path, acct, source=source):
        if isinstance(entry, Reject):
            yield entry
            continue
        rec = entry.record
        if entry.molecule == "protein":
            problem = "" if rec.seq else "record has no sequence"
            yield from _emit(idx.item(rec.id, "protein", "protein", rec.seq, problem=problem,
                                      reason="empty_sequence", record_id=rec.id))
            continue
        problem = "" if rec.seq else "record has no sequence"
        yield from _emit(idx.item(rec.id, "record", entry.molecule, rec.seq, rec.circular, problem,
                                  "empty_sequence", rec.id))
        yield from _protein_items(rec, extractor, idx)
        yield from _transcript_items(rec, idx)


def _emit(pair):
    item, reject = pair
    if reject is not None:
        yield reject
    yield item


def _protein_items(rec: gb.Record, extractor, idx: _Index) -> Iterator[SeqItem | Reject]:
    """Every CDS with /protein_id -> its protein, made by the RefSeq extraction itself."""
    cds = [f for f in rec.features if f.kind == "CDS" and f.q.get("protein_id")]
    if not cds:
        return
    made: dict[str, GeneSequences] = {}
    failed: dict[str, list[Reject]] = defaultdict(list)
    for out in extractor.record(rec):
        if isinstance(out, Reject):
            failed[out.item_id].append(out)
        elif out.kind == "CDS" and out.attributes.get("protein_id"):
            made.setdefault(out.attributes["protein_id"], out)
    for f in cds:
        pid = f.q["protein_id"]
        g = made.get(pid)
        if g is not None and g.protein:
            yield from _emit(idx.item(pid, "protein", "protein", g.protein.encode("latin-1"), record_id=rec.id))
            continue
        if g is not None:
            problem = "CDS gives no protein (unknown genetic code and no /translation)"
        else:
            q = f.q
            key = q.get("locus_tag") or q.get("protein_id") or q.get("gene") or f"{f.kind}#{f.index}"
            why = failed[key].pop(0) if failed.get(key) else None
            translation = "".join((q.get("translation") or "").split())
            if translation and not (why and why.reason == "pseudo"):
                # the extraction needs the CDS's DNA (here: parts in other records, or an
                # unsupported location); the product is still stated by /translation
                idx.stage.note("protein_from_translation_only")
                yield from _emit(idx.item(pid, "protein", "protein", translation.upper().encode("latin-1"), record_id=rec.id))
                continue
            problem = f"CDS of {rec.id} not extracted ({why.reason}: {why.detail})" if why else \
                f"CDS {gb._loc_text(f)} of {rec.id} not extracted"
        yield from _emit(idx.item(pid, "protein", "protein", None, problem=problem, reason="no_protein", record_id=rec.id))


def _transcript_items(rec: gb.Record, idx: _Index) -> Iterator[SeqItem | Reject]:
    """Every RNA feature with /transcript_id -> the spliced feature (DNA letters)."""
    for f in rec.features:
        tid = f.q.get("transcript_id")
        if f.kind not in TRANSCRIPT_KINDS or not tid:
            continue
        problem, reason, seq = "", "", None
        if f.parts is None:
            problem, reason = f"{f.kind}: {f.error}", f.error.reason
        elif any(p[5] for p in f.parts):
            problem, reason = f"{f.kind} {gb._loc_text(f)} has parts in another record", "external_reference"
        elif not rec.seq:
            problem, reason = f"record {rec.id} has no sequence", "empty_sequence"
        elif not all(0 <= s < e <= len(rec.seq) for s, e, *_ in f.parts):
            problem, reason = f"{f.kind} {gb._loc_text(f)} outside 1..{len(rec.seq)}", "location_out_of_bounds"
        else:
            seq = bytes(gb._splice(rec.seq, f.parts))
        yield from _emit(idx.item(tid, "transcript", f.kind, seq, problem=problem, reason=reason, record_id=rec.id))


def _fasta_items(path, acct: Accounting, source: str) -> Iterator[SeqItem | Reject]:
    source_file = _base(path)
    idx = _Index(acct, source, source_file)
    suffix = os.path.splitext(_strip_gz(source_file).lower())[1]
    for entry in read_sequences(path, acct, fmt="fasta", source=source):
        if isinstance(entry, Reject):
            yield entry
            continue
        accession, problem = fasta_accession(entry.seq_id)
        if suffix in PROTEIN_FASTA:
            protein = True
        elif suffix in NUCLEOTIDE_FASTA:
            protein = False
        else:
            protein = _nucleotide_fraction(entry.sequence) < NUCLEOTIDE_LIKE_FRACTION
        kind, molecule = ("protein", "protein") if protein else ("record", "DNA")
        if problem:
            problem_text = (f"entry {entry.index} header {entry.seq_id!r} names a sub-range, not an accession"
                            if problem == "subsequence" else f"entry {entry.index} header {entry.seq_id!r} has no accession")
            yield from _emit(idx.item(accession or entry.seq_id, kind, molecule, None, problem=problem_text, reason=problem))
            continue
        yield from _emit(idx.item(accession, kind, molecule, entry.sequence.encode("ascii")))


def _is_genbank(path) -> bool:
    name = _strip_gz(_base(path)).lower()
    if name.endswith(GENBANK_SUFFIXES):
        return True
    if "://" in os.fspath(path):
        return False
    fh, _, close = open_stream(path)  # content: LOCUS at the start
    try:
        return fh.read(4096).lstrip().startswith(b"LOCUS")
    finally:
        close()


def sequence_items(path, acct: Accounting, *, source: str = SOURCE) -> Iterator[SeqItem | Reject]:
    """The index entries of one sequence file (GenBank or FASTA, plain or gzip)."""
    if _is_genbank(path):
        yield from _genbank_items(path, acct, source)
        return
    name = _strip_gz(_base(path)).lower()
    fasta = os.path.splitext(name)[1] in PROTEIN_FASTA + NUCLEOTIDE_FASTA + (".fa", ".fasta", ".fas", ".seq")
    if fasta or ("://" not in os.fspath(path) and sniff_content(path) == "fasta"):
        yield from _fasta_items(path, acct, source)
        return
    stage = acct.stage("index")
    stage.take()
    yield acct.reject("index", "unknown_format", detail=f"{_base(path)}: neither GenBank nor FASTA",
                      source=source, source_file=_base(path))


# ============================================================================ the join


@dataclass(frozen=True)
class Ref:
    """One accession a GeneID names, in one column (``genomic`` refs carry the span)."""

    gene_id: int
    column: str  # genomic | rna | protein
    accession: str
    start: int | None
    end: int | None
    orientation: str | None
    line: int  # first gene2accession line naming it
    source_file: str

    def key(self) -> tuple:
        return (self.column, self.accession, self.start if self.start is not None else -1,
                self.end if self.end is not None else -1, self.orientation or "")

    def describe(self) -> str:
        span = f" {self.start}-{self.end} ({self.orientation})" if self.column == "genomic" else ""
        return f"{self.column} accession {self.accession}{span} of GeneID {self.gene_id} ({self.source_file} line {self.line})"


@dataclass(frozen=True)
class GeneRows:
    """What the assembly needs of one GeneID's rows: identity and its lines' accession sets."""

    gene_id: int
    tax_id: int
    symbol: str
    status: str
    source_file: str
    first_line: int
    products: tuple  # distinct (rna, protein, genomic key or None) per line, in line order


@dataclass(frozen=True)
class Resolved:
    ref: Ref
    sequence: str  # DNA with flanks 5'->3' | RNA in U | protein
    found_in: str  # source file of the sequence
    flank_5: int = 0
    flank_3: int = 0


def gene_refs(gene_id: int, rows: Iterable[Gene2AccRow]) -> tuple[GeneRows, list[Ref]]:
    """One GeneID's rows (any order) -> its summary and its distinct references."""
    rows = sorted(rows, key=lambda r: r.line)
    first = rows[0]
    refs: dict[tuple, Ref] = {}
    products = []

    def add(column, accession, row, start=None, end=None, orientation=None):
        ref = Ref(gene_id, column, accession, start, end, orientation, row.line, row.source_file)
        refs.setdefault(ref.key(), ref)
        return ref.key()

    for r in rows:
        g = add("genomic", r.genomic, r, r.start, r.end, r.orientation) if r.genomic and r.start is not None else None
        if r.rna:
            add("rna", r.rna, r)
        if r.protein:
            add("protein", r.protein, r)
        product = (r.rna, r.protein, g)
        if product not in products:
            products.append(product)
    summary = GeneRows(
        gene_id=gene_id, tax_id=first.tax_id, symbol=first.symbol or "", status=first.status or "",
        source_file=first.source_file, first_line=first.line, products=tuple(products),
    )
    return summary, [refs[k] for k in sorted(refs)]


_COLUMN_KINDS = {"genomic": ("record",), "rna": ("transcript", "record"), "protein": ("protein",)}
_T_TO_U = bytes.maketrans(b"T", b"U")


def _matching(ref: Ref, items: list[SeqItem]) -> tuple[list[SeqItem], str]:
    """Items that may stand for ``ref`` (best first), or [] and why none does."""
    kinds = _COLUMN_KINDS[ref.column]
    acc, has_version = ref.accession, bool(_VERSION.search(ref.accession))
    same = [i for i in items if i.accession == acc]
    if not has_version:  # a versionless reference takes any version; the highest first
        same = sorted((i for i in items if base_accession(i.accession) == acc),
                      key=lambda i: (i.accession != acc, -int(i.accession.rsplit(".", 1)[1]) if i.accession != acc else 0))
    loose = [i for i in items if i.accession == base_accession(acc)] if has_version else []
    candidates = [i for i in same + loose if i.kind in kinds]
    usable = [i for i in candidates if i.sequence is not None]
    if usable:
        return usable, ""
    if candidates:
        i = candidates[0]
        return [], f"found in {i.source_file} but unusable: {i.problem}"
    if same or loose:
        i = (same + loose)[0]
        return [], f"found only as a {i.kind} ({i.molecule}) in {i.source_file}, not usable as {ref.column}"
    others = sorted({i.accession for i in items})
    if others:
        return [], f"not in the sequence sources; other versions present: {', '.join(others[:5])}"
    return [], "not in the sequence sources"


def _dna(ref: Ref, item: SeqItem, flank: int) -> tuple[str, int, int] | tuple[None, str, str]:
    seq, length, circular = item.sequence, len(item.sequence), item.circular
    s, e = ref.start, ref.end
    if ref.orientation not in ("+", "-"):
        return None, "unknown_orientation", f"orientation {ref.orientation!r}: no single genomic span"
    if e >= s:
        lo, hi = s, e + 1
        if hi > length:
            return None, "position_out_of_bounds", f"span {s}-{e} (0-based) outside a {length} nt sequence"
    elif circular and s < length:
        lo, hi = s, e + 1 + length  # crosses the origin
    else:
        return None, "position_out_of_bounds", (
            f"start {s} > end {e} on a {'circular' if circular else 'linear'} {length} nt sequence")
    if circular:
        left, right = gb._circular_flanks(hi - lo, flank, length)
    else:
        left, right = min(flank, lo), min(flank, length - hi)
    region = gb._region(seq, lo - left, hi + right, circular)
    if ref.orientation == "-":
        return bytes(gb._revcomp(region)).decode("latin-1"), right, left
    return region.decode("latin-1"), left, right


def resolve(
    base: str, refs: Iterable[Ref], items: Iterable[SeqItem], acct: Accounting, *, flank: int = FLANK, source: str = SOURCE
) -> list[tuple[int, Resolved] | Reject]:
    """Stage ``join`` for one accession (without version): every reference to it, resolved
    against every index item of it -> ``(gene_id, Resolved)`` or a Reject."""
    stage = acct.stage("join")
    items = sorted(items, key=SeqItem.sort_key)
    out: list = []
    for ref in sorted(refs, key=lambda r: (r.gene_id, r.key())):
        stage.take()
        usable, why = _matching(ref, items)
        where = dict(source=source, source_file=ref.source_file, record_id=ref.accession,
                     item_id=f"GeneID:{ref.gene_id}:{ref.column}")
        if not usable:
            out.append(acct.reject("join", "unresolved_accession", detail=f"{ref.describe()}: {why}", **where))
            continue
        item = usable[0]
        if len({i.sequence for i in usable}) > 1:
            stage.note("accession_conflict")
        if ref.column == "genomic":
            seq, f5, f3 = _dna(ref, item, flank)
            if seq is None:
                out.append(acct.reject("join", f5, detail=f"{ref.describe()}: {f3}", **where))
                continue
            if f5 < flank or f3 < flank:
                stage.note("flank_clipped")
            resolved = Resolved(ref, seq, item.source_file, f5, f3)
        elif ref.column == "rna":
            resolved = Resolved(ref, item.sequence.translate(_T_TO_U).decode("latin-1"), item.source_file)
        else:
            protein = item.sequence[:-1] if item.sequence.endswith(b"*") else item.sequence
            resolved = Resolved(ref, protein.decode("latin-1"), item.source_file)
        stage.emit()
        stage.note(f"resolved:{ref.column}")
        out.append((ref.gene_id, resolved))
    return out


def assemble(gene: GeneRows, resolved: Iterable[Resolved], acct: Accounting, *, seed: int) -> GeneSequences:
    """Stage ``gene``: one GeneID's resolved sequences -> its GeneSequences (policy above)."""
    stage = acct.stage("gene")
    stage.take()
    dna_ok, rna_ok, prot_ok = {}, {}, {}
    for r in sorted(resolved, key=lambda r: r.ref.key()):
        ref = r.ref
        if ref.column == "genomic":
            dna_ok[ref.key()] = r
        elif ref.column == "rna":
            rna_ok[ref.accession] = r
        else:
            prot_ok[ref.accession] = r
    rng = gene_rng(seed, f"GeneID:{gene.gene_id}:isoform")
    pairs = sorted({(rna, prot) for rna, prot, _ in gene.products if rna in rna_ok and prot in prot_ok})
    if pairs:
        rna, prot = rng.choice(pairs)
        stage.note("rna_protein_same_row")
        if len(pairs) > 1:
            stage.note("isoform_choice")
    else:
        rna = rng.choice(sorted(rna_ok)) if rna_ok else None
        prot = rng.choice(sorted(prot_ok)) if prot_ok else None
        if rna and prot:
            stage.note("rna_protein_different_rows")
        if len(rna_ok) > 1 or len(prot_ok) > 1:
            stage.note("isoform_choice")
    dna_key = None
    if dna_ok:
        for pick in (lambda p: p[0] == rna and p[1] == prot, lambda p: (rna and p[0] == rna) or (prot and p[1] == prot)):
            keys = sorted(p[2] for p in gene.products if p[2] in dna_ok and pick(p))
            if keys:
                dna_key = keys[0]
                break
        if dna_key is None:
            dna_key = min(dna_ok)
        if len(dna_ok) > 1:
            stage.note("multiple_genomic_spans")
    d = dna_ok.get(dna_key)
    r = rna_ok.get(rna)
    p = prot_ok.get(prot)
    present = "+".join(m for m, x in (("dna", d), ("rna", r), ("protein", p)) if x) or "none"
    stage.note(f"resolved:{present}")
    stage.emit()
    record_id = (d.ref.accession if d else None) or rna or prot or ""
    attributes = {
        "gene_id": str(gene.gene_id), "tax_id": gene.tax_id, "symbol": gene.symbol, "status": gene.status,
        "genomic": f"{d.ref.accession}:{d.ref.start}-{d.ref.end}({d.ref.orientation})" if d else "",
        "rna_accession": rna or "", "protein_accession": prot or "",
        "flank_5": d.flank_5 if d else 0, "flank_3": d.flank_3 if d else 0,
        "line": gene.first_line,
    }
    return GeneSequences(
        group_id=f"GeneID:{gene.gene_id}", record_id=record_id, source_file=gene.source_file, kind="gene",
        dna=d.sequence if d else None, rna=r.sequence if r else None, protein=p.sequence if p else None,
        attributes=attributes,
    )


def gene_to_samples(gene: GeneRows, resolved: Iterable[Resolved], acct: Accounting, *, seed: int, seq_len: int, vocab=None):
    """assemble + pair_gene: the Samples and Rejects of one GeneID."""
    g = assemble(gene, resolved, acct, seed=seed)
    return pair_gene(g, vocab or load_vocab(), acct, seed=seed, seq_len=seq_len, source=SOURCE)


# ============================================================================ local engine


def gene_options(gene2accession: str, sequences: list[str], num_shards: int, flank: int, tax_ids) -> dict:
    """The options recorded in the manifest: the same for every engine."""
    return {
        "gene2accession": _base(gene2accession),
        "sequences": sorted(_base(p) for p in sequences),
        "num_shards": num_shards,
        "flank": flank,
        "tax_ids": sorted(int(t) for t in tax_ids) if tax_ids else [],
    }


def join_local(
    gene2accession: str, sequences: list[str], acct: Accounting, *, seed: int = 0, flank: int = FLANK,
    tax_ids: Iterable[int] | None = None, progress=None,
) -> Iterator[GeneSequences | Reject]:
    """The join in one process: a GeneSequences per GeneID (in GeneID order) and every Reject of
    the stages before pairing. Only the sequences some row asks for are kept in memory."""
    rows: dict[int, list] = defaultdict(list)
    for item in read_gene2accession(gene2accession, acct, tax_ids=tax_ids):
        if isinstance(item, Reject):
            yield item
        else:
            rows[item.gene_id].append(item)
    genes: dict[int, GeneRows] = {}
    refs: dict[str, list[Ref]] = defaultdict(list)
    for gid in sorted(rows):
        genes[gid], gene_refs_ = gene_refs(gid, rows.pop(gid))
        for ref in gene_refs_:
            refs[base_accession(ref.accession)].append(ref)
    items: dict[str, list[SeqItem]] = defaultdict(list)
    for path in (progress(sequences) if progress else sequences):
        for item in sequence_items(path, acct):
            if isinstance(item, Reject):
                yield item
            elif base_accession(item.accession) in refs:  # counted either way; kept only when asked for
                items[base_accession(item.accession)].append(item)
    resolved: dict[int, list[Resolved]] = defaultdict(list)
    for base in sorted(refs):
        for out in resolve(base, refs[base], items.pop(base, []), acct, flank=flank):
            if isinstance(out, Reject):
                yield out
            else:
                resolved[out[0]].append(out[1])
    for gid in sorted(genes):
        yield assemble(genes[gid], resolved.pop(gid, []), acct, seed=seed)


def _local_items(gene2accession, sequences, acct, *, seed, seq_len, flank, tax_ids, progress):
    vocab = load_vocab()
    for item in join_local(gene2accession, sequences, acct, seed=seed, flank=flank, tax_ids=tax_ids, progress=progress):
        if isinstance(item, Reject):
            yield item
        else:
            yield from pair_gene(item, vocab, acct, seed=seed, seq_len=seq_len, source=SOURCE)


def build_gene_local(
    gene2accession: str, sequences: list[str], out_dir: str, *, seed: int = 0, seq_len: int = 1024, flank: int = FLANK,
    num_shards: int = 1, tax_ids: Iterable[int] | None = None, progress=None,
) -> dict:
    """The NCBI Gene build without Beam: same functions, same bytes as ``pipelines/gene.py``."""
    sequences = sorted(sequences)
    tax_ids = sorted(set(int(t) for t in tax_ids)) if tax_ids else None
    acct = new_accounting()
    items = _local_items(gene2accession, sequences, acct, seed=seed, seq_len=seq_len, flank=flank,
                         tax_ids=tax_ids, progress=progress)
    return build_local(
        items, acct, out_dir, pipeline="gene", options=gene_options(gene2accession, sequences, num_shards, flank, tax_ids),
        seed=seed, seq_len=seq_len, num_shards=num_shards,
    )


# ============================================================================ derivation


_REFSEQ = re.compile(r"^[A-Z]{2}_")


def _span(parts_list, length: int, circular: bool):
    """(start, end, orientation) in gene2accession terms (0-based inclusive) for the union of
    features' local parts; orientation '?' when they are not colinear on one strand."""
    local = [[p for p in parts if not p[5]] for parts in parts_list]
    local = [ps for ps in local if ps]
    if not local:
        return None
    strands = {p[2] for ps in local for p in ps}
    extents = [gb._extent(ps, length, circular) for ps in local]
    if len(strands) != 1 or any(x is None for x in extents):
        lo = min(p[0] for ps in local for p in ps)
        hi = max(p[1] for ps in local for p in ps)
        return lo, hi - 1, "?"
    lo, hi = extents[0]
    for x in extents[1:]:
        lo, hi = gb._union((lo, hi), x, length, circular)
    if hi - lo > length:
        return None
    return lo % length, (hi - 1) % length, "+" if strands == {1} else "-"


def derive_gene2accession(paths: Iterable[str]) -> tuple[list[Gene2AccRow], dict]:
    """gene2accession rows from the GeneID (or LocusID) db_xrefs of GenBank files, the way NCBI
    relates a GeneID to sequences. Returns (rows sorted by tax_id, GeneID, ...; stats).

    Per record and GeneID: the gene span is the gene feature(s) (else the union of the
    products), 0-based inclusive, orientation '?' when not colinear on one strand or
    /trans_splicing; genomic columns are filled only for DNA records. One row per product:
    each CDS with /protein_id (RNA = the /transcript_id of the GeneID's mRNA whose exons agree
    with the CDS, or the record itself when the record is an RNA), each RNA feature with a
    /transcript_id no CDS row used; a GeneID without products gets one row. tax_id from the
    source db_xref taxon, Symbol from /gene else /locus_tag, status from the record's COMMENT
    (``REVIEWED REFSEQ`` -> REVIEWED, ...) for RefSeq accessions, else '-'; gi and assembly '-'.
    """
    acct = Accounting()
    rows: set[tuple] = set()
    stats = {"records": 0, "records_with_gene_ids": 0, "no_taxon": 0}
    for path in sorted(paths):
        for entry in read_genbank_entries(path, acct, source="derive"):
            if isinstance(entry, Reject) or entry.molecule == "protein":
                continue
            stats["records"] += 1
            rec = entry.record
            by_gene: dict[str, list] = defaultdict(list)
            for f in rec.features:
                gid = entry.gene_id(f)
                if gid and gid.isdigit() and (f.kind in ("gene", "CDS") or f.kind in TRANSCRIPT_KINDS):
                    by_gene[gid].append(f)
            if not by_gene:
                continue
            stats["records_with_gene_ids"] += 1
            if not entry.taxon:
                stats["no_taxon"] += 1
                continue
            rna_record = "RNA" in entry.molecule.upper()
            status = entry.status if entry.status and _REFSEQ.match(rec.id) else None
            for gid, feats in by_gene.items():
                rows.update(_derive_gene(rec, entry, int(gid), feats, rna_record, status))
    out = [Gene2AccRow(i + 2, *r) for i, r in enumerate(sorted(rows, key=_derived_order))]
    stats["rows"] = len(out)
    stats["gene_ids"] = len({r.gene_id for r in out})
    return out, stats


def _derived_order(t: tuple) -> tuple:
    """A total order: (tax_id, GeneID, genomic accession, start, RNA, protein), then everything."""
    def n(v):
        return -1 if v is None else v

    return (t[0], t[1], t[7] or "", n(t[9]), t[3] or "", t[5] or "", n(t[10]), t[11],
            tuple("" if v is None else str(v) for v in t))


def _derive_gene(rec: gb.Record, entry: GenBankEntry, gid: int, feats: list, rna_record: bool, status) -> list[tuple]:
    genes = [f for f in feats if f.kind == "gene" and f.parts]
    products = [f for f in feats if f.kind != "gene"]
    named = genes[0] if genes else feats[0]
    symbol = named.q.get("gene") or named.q.get("locus_tag") or next(
        (f.q.get("gene") or f.q.get("locus_tag") for f in feats if f.q.get("gene") or f.q.get("locus_tag")), None)
    length, circular = len(rec.seq), rec.circular
    trans = any("trans_splicing" in f.q for f in feats)

    # spans: one per gene feature (products assigned by overlap), else one for all products
    groups = []
    if genes and not rna_record:
        for g in genes:
            mine = [p for p in products if p.parts and (len(genes) == 1 or gb._overlaps(g.parts, p.parts))]
            groups.append(([g.parts], mine))
    else:
        groups.append(([p.parts for p in products if p.parts], products))
    out = []
    for span_parts, prods in groups:
        genomic = start = end = None
        orientation = "?"
        if not rna_record and length:
            span = _span(span_parts, length, circular)
            if span is not None:
                genomic, (start, end, orientation) = rec.id, span
                if trans:
                    orientation = "?"
        mrnas = [p for p in prods if p.kind in TRANSCRIPT_KINDS and p.q.get("transcript_id") and p.parts]
        used, lines = set(), []
        for c in (p for p in prods if p.kind == "CDS" and p.q.get("protein_id")):
            rna = rec.id if rna_record else None
            if not rna_record and c.parts:
                for m in mrnas:
                    if m.kind == "mRNA" and gb._overlaps(c.parts, m.parts) and gb._mrna_consistent(c.parts, m.parts):
                        rna = m.q["transcript_id"]
                        used.add(rna)
                        break
            lines.append((rna, c.q["protein_id"]))
        for m in mrnas:
            if m.q["transcript_id"] not in used:
                lines.append((m.q["transcript_id"], None))
        if not lines:
            lines.append((rec.id if rna_record else None, None))
        for rna, protein in lines:
            if genomic is None and rna is None and protein is None:
                continue
            out.append((int(entry.taxon), gid, status, rna, None, protein, None, genomic, None, start, end,
                        orientation, None, None, None, symbol, ""))
    return out
