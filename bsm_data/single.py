"""Single-modal corpora (paper, round 1): sequences that are only DNA, only RNA or only protein.

Engine-free logic shared by the local engine (``build_single_local``) and the Beam pipeline
(``pipelines/single.py``); both give byte-identical output for the same spec, seed, seq_len
and num_shards.

Source spec
-----------
A spec is a list of ``SpecEntry(pattern, modality, source[, fmt])``: a path or glob, the
modality its sequences *must* have (``dna``, ``rna``, ``protein``, or ``auto`` for GenBank
files: each record's modality comes from its LOCUS molecule type), and a source name kept in
the rejects and the manifest options (``uniprot``, ``rfam``, ...). ``expand_spec`` turns it
into ``InputFile`` rows sorted by base name:

- a file matched by several entries takes the *first* entry that matches it (so a specific
  entry listed before a broad glob overrides it);
- a pattern that matches no file at all is an error, and so are two input files with the same
  base name (the base name is the provenance key in sample ids and in the dedup order);
- the format is the entry's ``fmt``, else GenBank by suffix (``.gb .gbk .gbff .genbank``,
  optionally ``.gz``) or a leading ``LOCUS`` line, else ``readers.sniff_format``.

JSON spec file (``load_spec``; relative paths are resolved against the JSON file's folder)::

    {"inputs": [
        {"path": "protein/*.dat", "modality": "protein", "source": "uniprot"},
        {"path": "genbank/*.gbff", "modality": "auto", "source": "refseq"},
        {"path": "odd_suffix.txt", "modality": "rna", "source": "rfam", "format": "fasta"}
    ]}

A bare list of such objects is accepted too. ``default_spec()`` covers the bundled ``data/``.

Stages (each reconciles ``in = out + rejected``; stage order is fixed by ``new_accounting``)
---------------------------------------------------------------------------------------
``read`` -> ``alphabet`` -> ``length`` per file (``entries_for_file``), then ``dedup`` across
all files, then ``window``; ``pack`` is added when shards are written.

- ``read``: the streaming readers of ``bsm_data.readers``; GenBank files are read here, one
  unit per record (whole record sequence, see ``read_genbank``).
- ``alphabet``: ``readers.check_modality`` against the declared modality (GenBank ``auto``:
  mRNA and every other ``*RNA`` molecule type -> rna, ``DNA`` -> dna; an unknown molecule type
  is rejected ``unknown_molecule_type``; a declared modality that contradicts the molecule
  type is rejected ``modality_mismatch``). Accepted sequences are then *normalised* to what the
  model sees (``vocab.normalize``: IUPAC codes -> N, protein J -> X, RNA in U; note
  ``normalized``), so samples decode back from tokens letter for letter, and dedup compares
  what the model would see.
- ``length``: ``readers.check_length`` (fewer than 10 residues -> ``too_short``).
- ``dedup``: exact duplicates across *all* input files by ``readers.sequence_digest(modality,
  normalised sequence)``. The kept copy is the entry with the smallest
  ``(source_file, index)`` (base name, then entry number in the file); every other copy is
  rejected ``duplicate`` with a detail naming the kept entry. The local engine reads files in
  sorted base-name order and keeps the first occurrence (``dedup_sorted``, the
  ``readers.dedup_exact`` semantics across files); Beam groups by digest and keeps the minimum
  (``dedup_group``); both give the same kept entries and the same reject rows.
- ``window``: ``readers.window``: one document ``<bos><tag>seq<eos>`` per window; long
  sequences are cut into near-equal consecutive windows that cover them exactly.

Samples: ``source="single"``, ``group_id = "<source_file>:<index>:<seq_id>"`` and
``sample_id = "single:<group_id>:w<i>"``. The entry index is part of the key because real
files repeat seq_ids (the bundled rRNA FASTA files do, with different sequences), and the base
name keeps ids unique across files that share seq_ids. The source name is not in the sample
row (``source`` is the corpus, ``single``); it is in the manifest's ``pipeline.options.inputs``
(per file) and in every reject row.

Remote inputs: ``expand_spec`` globs local paths unless given a ``match`` function, and the
readers open files with ``open()``; ``gs://`` inputs need both to go through Beam FileSystems.
"""
from __future__ import annotations

import glob as _glob
import io
import json
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .accounting import Accounting
from .records import MODALITIES, Reject, Sample
from .readers import (
    SeqEntry,
    check_length,
    check_modality,
    read_sequences,
    sequence_digest,
    sniff_format,
    window,
)
from .streams import open_binary
from .vocab import ILLEGAL, Vocab, load_vocab, sample_overhead

SOURCE = "single"
PIPELINE = "single"
STAGES = ("read", "alphabet", "length", "dedup", "window")
SPEC_MODALITIES = (*MODALITIES, "auto")
SPEC_FORMATS = ("fasta", "swissprot", "stockholm", "genbank")
GENBANK_SUFFIXES = (".gb", ".gbk", ".gbff", ".genbank")
REPO_DATA = Path(__file__).resolve().parents[1] / "data"
GENBANK_BATCH = 4 << 20  # bytes of whole GenBank records handed to gb-io in one call

_LOWER = bytes(range(ord("a"), ord("z") + 1))
_UPPER_TABLE = bytes.maketrans(_LOWER, _LOWER.upper())
_DELETE = b" \t\r\n\v\f"


# ------------------------------------------------------------------------------------ spec


@dataclass(frozen=True)
class SpecEntry:
    """One line of a source spec: ``pattern`` (path or glob), declared ``modality``, ``source``."""

    pattern: str
    modality: str
    source: str
    fmt: str | None = None

    def __post_init__(self):
        if self.modality not in SPEC_MODALITIES:
            raise ValueError(f"{self.pattern}: modality {self.modality!r}, expected one of {SPEC_MODALITIES}")
        if self.fmt is not None and self.fmt not in SPEC_FORMATS:
            raise ValueError(f"{self.pattern}: format {self.fmt!r}, expected one of {SPEC_FORMATS}")
        if not self.source:
            raise ValueError(f"{self.pattern}: empty source name")


@dataclass(frozen=True)
class InputFile:
    """One input file with its resolved modality, source name, base name and format."""

    path: str
    modality: str
    source: str
    source_file: str
    fmt: str | None  # None: unknown (read_sequences rejects it as unknown_format)

    def option(self) -> dict:
        return {"file": self.source_file, "format": self.fmt, "modality": self.modality, "source": self.source}


def default_spec(data_dir: str | os.PathLike | None = None) -> list[SpecEntry]:
    """The bundled single-modal data (see ``NOTICE``)."""
    d = Path(data_dir) if data_dir is not None else REPO_DATA
    if not d.is_dir():
        raise FileNotFoundError(f"bundled data not found at {d}; run from a source checkout or pass a spec")
    rows = [
        ("protein/*.dat", "protein", "uniprot"),  # Swiss-Prot flat file
        ("protein/flybase_*.faa", "protein", "flybase"),
        ("protein/*.sto", "protein", "pfam"),  # Pfam seed alignments
        ("protein/*.fa", "protein", "hmmer"),  # HMMER tutorial globins
        ("ncrna/ls_orchid.fasta", "dna", "genbank_its"),  # genomic 5.8S + ITS1/ITS2 DNA
        ("ncrna/*.sto", "rna", "rfam"),
        ("ncrna/*.stk", "rna", "rfam"),
        ("ncrna/*.fa", "rna", "ncbi_rrna"),  # rRNA BLAST databases, written in T
        ("genbank/*.faa", "protein", "refseq"),
        ("genbank/*.ffn", "dna", "refseq"),  # CDS nucleotide FASTA
        ("genbank/*.gb*", "auto", "genbank"),  # .gb .gbk .gbff: whole records, modality from LOCUS
    ]
    return [SpecEntry(str(d / pattern), modality, source) for pattern, modality, source in rows]


def load_spec(path: str | os.PathLike) -> list[SpecEntry]:
    """A spec from a JSON file (format in the module docstring)."""
    p = Path(path)
    raw = json.loads(p.read_text())
    items = raw["inputs"] if isinstance(raw, dict) else raw
    if not isinstance(items, list) or not items:
        raise ValueError(f"{p}: expected {{'inputs': [...]}} or a non-empty list")
    spec = []
    for i, item in enumerate(items):
        unknown = set(item) - {"path", "modality", "source", "format"}
        if unknown or "path" not in item or "modality" not in item:
            raise ValueError(f"{p}: input {i} needs 'path' and 'modality' (optional 'source', 'format'); unknown keys {sorted(unknown)}")
        pattern = item["path"]
        if "://" not in pattern and not os.path.isabs(pattern):
            pattern = str(p.parent / pattern)
        spec.append(SpecEntry(pattern, item["modality"], item.get("source", "input"), item.get("format")))
    return spec


def parse_input_arg(arg: str) -> SpecEntry:
    """``PATH:MODALITY[:SOURCE]`` (the path may itself contain ``:``, e.g. ``gs://``)."""
    parts = arg.rsplit(":", 2)
    if len(parts) == 3 and parts[1] in SPEC_MODALITIES and parts[0]:
        return SpecEntry(parts[0], parts[1], parts[2])
    path, _, modality = arg.rpartition(":")
    if path and modality in SPEC_MODALITIES:
        return SpecEntry(path, modality, "input")
    raise ValueError(f"--input {arg!r}: expected PATH:MODALITY[:SOURCE] with MODALITY one of {SPEC_MODALITIES}")


def as_spec(spec) -> list[SpecEntry]:
    """None (default spec), a JSON path, or an iterable of SpecEntry / (pattern, modality, source[, fmt])."""
    if spec is None:
        return default_spec()
    if isinstance(spec, (str, os.PathLike)):
        return load_spec(spec)
    return [s if isinstance(s, SpecEntry) else SpecEntry(*s) for s in spec]


def _strip_gz(name: str) -> str:
    for z in (".gz", ".bgz"):
        if name.endswith(z):
            return name[: -len(z)]
    return name


def detect_format(path: str) -> str | None:
    if _strip_gz(os.path.basename(path).lower()).endswith(GENBANK_SUFFIXES):
        return "genbank"
    fmt = sniff_format(path)
    if fmt is None:
        with open_binary(path) as fh:
            if fh.read(1 << 12).lstrip().startswith(b"LOCUS"):
                return "genbank"
    return fmt


def _local_match(pattern: str) -> list[str]:
    return _glob.glob(pattern) if _glob.has_magic(pattern) else ([pattern] if os.path.exists(pattern) else [])


def expand_spec(spec, *, match: Callable[[str], list[str]] | None = None) -> list[InputFile]:
    """Resolve a spec to input files, sorted by base name (the order the dedup relies on)."""
    match = match or _local_match
    chosen: dict[str, InputFile] = {}
    for entry in as_spec(spec):
        paths = sorted(set(match(entry.pattern)))
        if not paths:
            raise FileNotFoundError(f"no input files match {entry.pattern!r}")
        for path in paths:
            if path in chosen:
                continue  # the first entry that matches a file wins
            fmt = entry.fmt or detect_format(path)
            if entry.modality == "auto" and fmt != "genbank":
                raise ValueError(f"{path}: modality 'auto' is only for GenBank files (format here: {fmt})")
            chosen[path] = InputFile(path, entry.modality, entry.source, os.path.basename(path), fmt)
    files = sorted(chosen.values(), key=lambda f: f.source_file)
    for a, b in zip(files, files[1:]):
        if a.source_file == b.source_file:
            raise ValueError(f"two inputs share the base name {a.source_file!r}: {a.path} and {b.path}; rename one")
    return files


def single_options(files: list[InputFile], num_shards: int) -> dict:
    """The options recorded in the manifest: the same for every engine."""
    return {"inputs": [f.option() for f in files], "num_shards": num_shards}


def new_accounting() -> Accounting:
    """An Accounting with every stage present in the canonical order, so merged partial
    accountings (from any number of workers, in any order) list their stages identically."""
    acct = Accounting()
    for name in STAGES:
        acct.stage(name)
    return acct


# ------------------------------------------------------------------------------------ entries


@dataclass(frozen=True)
class SingleEntry(SeqEntry):
    """A ``SeqEntry`` that passed read/alphabet/length, with its normalised sequence, its
    modality (for GenBank ``auto`` it is the record's) and its source name."""

    modality: str = ""
    source: str = ""

    @property
    def group_id(self) -> str:
        return f"{self.source_file}:{self.index}:{self.seq_id}"

    @property
    def order_key(self) -> tuple[str, int]:
        return (self.source_file, self.index)

    @property
    def digest(self) -> bytes:
        return sequence_digest(self.modality, self.sequence)


_new = object.__new__
_set = object.__setattr__


def _single(e: SeqEntry, sequence: str, modality: str, source: str) -> SingleEntry:
    """``SingleEntry(...)`` without the frozen dataclass's per-field ``__setattr__`` (hot path)."""
    s = _new(SingleEntry)
    _set(s, "__dict__", {"seq_id": e.seq_id, "description": e.description, "sequence": sequence,
                         "source_file": e.source_file, "index": e.index, "modality": modality, "source": source})
    return s


def _where(source_file: str, index: int, seq_id: str) -> str:
    return f"{source_file} entry {index} ({seq_id!r})"


def modality_of_molecule(molecule_type: str | None) -> str | None:
    """GenBank LOCUS molecule type -> modality: ``*RNA`` (mRNA, rRNA, tRNA, RNA, ...) -> rna,
    ``*DNA`` -> dna, ``aa``/``protein`` -> protein, anything else None."""
    m = (molecule_type or "").strip().lower()
    if m[:3] in ("ss-", "ds-", "ms-"):
        m = m[3:]
    if m.endswith("rna"):
        return "rna"
    if m.endswith("dna"):
        return "dna"
    if m in ("aa", "protein"):
        return "protein"
    return None


def _first_word(*fields) -> str:
    for field in fields:
        if field and field.split():
            return field.split()[0]
    return ""


def _parse_genbank_record(text: bytes, stage) -> tuple[str, str, bytes, str | None]:
    """(record_id, definition, raw sequence, molecule type) of one record: gb-io, gb-io on a
    repaired LOCUS line (AUGUSTUS writes short ones), then Biopython. Raises on failure."""
    import gb_io

    try:
        recs = gb_io.load(io.BytesIO(text))
        if len(recs) != 1:
            raise ValueError(f"gb-io found {len(recs)} records in one entry")
        return _from_gb(recs[0])
    except Exception as e:
        gb_error = e
    from .genbank import repair_locus  # public helper of the gene extractor

    repaired = repair_locus(text.lstrip())
    if repaired is not None:
        try:
            recs = gb_io.load(io.BytesIO(repaired))
            if len(recs) == 1:
                stage.note("locus_repaired")
                return _from_gb(recs[0])
        except Exception:
            pass
    from Bio import BiopythonParserWarning, SeqIO
    from Bio.Seq import UndefinedSequenceError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BiopythonParserWarning)
            rec = SeqIO.read(io.StringIO(text.decode("latin-1")), "genbank")
        try:
            seq = bytes(rec.seq)
        except UndefinedSequenceError:
            seq = b""
    except Exception as e:
        raise ValueError(f"gb-io: {_short(gb_error)}; Biopython: {_short(e)}") from None
    stage.note("biopython_fallback")
    rid = rec.id if rec.id and rec.id != "<unknown id>" else rec.name
    return rid, rec.description, seq, rec.annotations.get("molecule_type")


def _from_gb(r) -> tuple[str, str, bytes, str | None]:
    return _first_word(r.version, r.accession, r.name), " ".join((r.definition or "").split()), bytes(r.sequence or b""), r.molecule_type


def _short(e: BaseException, limit: int = 200) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _locus_name(text: bytes) -> str:
    words = text.lstrip().split(None, 2)
    return words[1].decode("latin-1") if len(words) > 1 and words[0] == b"LOCUS" else ""


def read_genbank(path, acct: Accounting, *, source: str = "", source_file: str | None = None) -> Iterator[tuple[SeqEntry, str | None] | Reject]:
    """Whole records of a GenBank file (plain or gzip) as ``(SeqEntry, molecule_type)``.

    Stage ``read`` counts one unit per ``//``-terminated record (and one for an unterminated
    tail). ``seq_id`` is the record's accession.version (else accession, else LOCUS name);
    ``description`` its DEFINITION; ``index`` the record number in the file. Records are
    handed to gb-io in batches of whole records; a batch gb-io refuses is re-parsed record by
    record (gb-io, gb-io on a repaired LOCUS line, Biopython; notes ``locus_repaired`` and
    ``biopython_fallback``). Rejects: ``parse_error``, ``no_sequence`` (e.g. CONTIG-only
    records), ``non_ascii``, ``truncated_record`` (an unterminated last record whose sequence
    is shorter than its LOCUS line says, or that does not parse).

    ``bsm_data.genbank`` (the gene extractor) has no record-level iterator with the molecule
    type, so this reads gb-io directly, with the same fallbacks.
    """
    import gb_io

    name = source_file if source_file is not None else os.path.basename(os.fspath(path))
    stage = acct.stage("read")
    index = 0

    def reject(reason: str, detail: str, record_id: str = "") -> Reject:
        return acct.reject("read", reason, detail=detail, source=source, source_file=name, record_id=record_id)

    def finish(rid: str, definition: str, seq: bytes, mol: str | None, i: int):
        seq = seq.translate(_UPPER_TABLE, _DELETE)
        if not seq:
            return reject("no_sequence", f"{_where(name, i, rid)}: record has no sequence", rid)
        if not seq.isascii():
            return reject("non_ascii", f"{_where(name, i, rid)}: non-ASCII byte in the sequence", rid)
        stage.emit()
        return SeqEntry(rid, definition, seq.decode("ascii"), name, i), mol

    def one(text: bytes, i: int):
        try:
            return finish(*_parse_genbank_record(text, stage), i)
        except Exception as e:
            return reject("parse_error", f"{_where(name, i, _locus_name(text))}: {_short(e, 400)}", _locus_name(text))

    def batch(texts: list[bytes], start: int):
        stage.take(len(texts))
        try:
            recs = gb_io.load(io.BytesIO(b"".join(texts))) if len(texts) > 1 else None
        except Exception:
            recs = None
        if recs is not None and len(recs) == len(texts):
            for i, r in enumerate(recs):
                recs[i] = None
                yield finish(*_from_gb(r), start + i)
        else:
            for i, text in enumerate(texts):
                yield one(text, start + i)

    with open_binary(path) as fh:
        texts: list[bytes] = []
        lines: list[bytes] = []
        size = 0
        for line in fh:
            lines.append(line)
            if line[:2] != b"//":
                continue
            text = b"".join(lines)
            lines = []
            if len(text) < 64 and text.strip() in (b"", b"//"):
                continue  # blank lines or a doubled terminator: not a record
            texts.append(text)
            size += len(text)
            if size >= GENBANK_BATCH:
                yield from batch(texts, index)
                index, texts, size = index + len(texts), [], 0
        if texts:
            yield from batch(texts, index)
            index += len(texts)
        tail = b"".join(lines)
    if tail.strip():
        stage.take()
        try:
            recs = gb_io.load(io.BytesIO(tail))
            r = recs[0] if len(recs) == 1 else None
        except Exception:
            r = None
        if r is None or not r.sequence or len(r.sequence) != r.length:
            got = "does not parse" if r is None else f"LOCUS declares {r.length}, sequence has {len(r.sequence or b'')}"
            yield reject("truncated_record", f"{_where(name, index, _locus_name(tail))}: last record has no '//' and {got}", _locus_name(tail))
        else:
            stage.note("missing_terminator")
            yield finish(*_from_gb(r), index)


def _genbank_entries(path, modality: str, source: str, acct: Accounting, vocab: Vocab, source_file: str | None):
    """GenBank records through the alphabet stage, modality from the molecule type."""
    stage = acct.stage("alphabet")
    for item in read_genbank(path, acct, source=source, source_file=source_file):
        if isinstance(item, Reject):
            yield item
            continue
        entry, mol = item
        implied = modality_of_molecule(mol)
        if implied is None or (modality != "auto" and implied != modality):
            stage.take()
            where = _where(entry.source_file, entry.index, entry.seq_id)
            if implied is None:
                reason, detail = "unknown_molecule_type", f"{where}: molecule type {mol!r} names no modality"
            else:
                reason, detail = "modality_mismatch", f"{where}: molecule type {mol!r} in a {modality} source"
            yield acct.reject("alphabet", reason, detail=detail, source=source, source_file=entry.source_file, record_id=entry.seq_id)
            continue
        stage.note(f"molecule:{mol}")
        yield implied, check_modality(entry, implied, vocab, acct, source)


def entries_for_file(
    path,
    modality: str,
    source: str,
    acct: Accounting,
    *,
    fmt: str | None = None,
    source_file: str | None = None,
    vocab: Vocab | None = None,
) -> Iterator[SingleEntry | Reject]:
    """One file through stages read, alphabet (+ normalisation) and length.

    ``modality`` is the declared one (``auto`` only for GenBank). ``fmt`` None detects it.
    Yields ``SingleEntry`` rows (normalised sequence, resolved modality, source) and Rejects.
    """
    if modality not in SPEC_MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {SPEC_MODALITIES}")
    vocab = vocab or load_vocab()
    fmt = fmt or detect_format(os.fspath(path))
    if fmt == "genbank":
        stream = _genbank_entries(path, modality, source, acct, vocab, source_file)
    elif modality == "auto":
        raise ValueError(f"{path}: modality 'auto' is only for GenBank files (format here: {fmt})")
    else:
        stream = ((modality, x) for x in read_sequences(path, acct, fmt=fmt, source=source, modality=modality, vocab=vocab, source_file=source_file))
    alphabet = acct.stage("alphabet")
    for item in stream:
        if isinstance(item, Reject):
            yield item
            continue
        m, entry = item
        if isinstance(entry, Reject):
            yield entry
            continue
        seq = entry.sequence
        normal = seq.encode("ascii").translate(_normal_table(vocab, m)).decode("ascii")
        if normal != seq:
            alphabet.note("normalized")
        checked = check_length(entry, acct, source)
        if isinstance(checked, Reject):
            yield checked
            continue
        yield _single(entry, normal, m, source)


_NORMAL_TABLES: dict[tuple[str, str], bytes] = {}


def _normal_table(vocab: Vocab, modality: str) -> bytes:
    """``bytes.translate`` table equal to ``vocab.normalize`` on letters the vocabulary accepts
    (entries reaching it passed ``check_modality``); one C pass instead of two numpy lookups."""
    key = (vocab.sha256, modality)
    table = _NORMAL_TABLES.get(key)
    if table is None:
        lut = vocab.luts[modality]
        table = _NORMAL_TABLES[key] = bytes(int(vocab.letter_of_id[lut[b]]) if lut[b] != ILLEGAL else b for b in range(256))
    return table


def file_entries(f: InputFile, acct: Accounting, vocab: Vocab | None = None) -> Iterator[SingleEntry | Reject]:
    return entries_for_file(f.path, f.modality, f.source, acct, fmt=f.fmt, source_file=f.source_file, vocab=vocab)


# ------------------------------------------------------------------------------------ dedup


def duplicate_reject(dup: SingleEntry, kept: SingleEntry | tuple, acct: Accounting) -> Reject:
    """The reject row of a duplicate; ``kept`` is the kept entry or its (source_file, index, seq_id)."""
    k = (kept.source_file, kept.index, kept.seq_id) if isinstance(kept, SingleEntry) else kept
    return acct.reject(
        "dedup", "duplicate",
        detail=f"{_where(dup.source_file, dup.index, dup.seq_id)}: same {dup.modality} sequence as {_where(*k)}",
        source=dup.source, source_file=dup.source_file, record_id=dup.seq_id,
    )


def dedup_sorted(items: Iterable[SingleEntry | Reject], acct: Accounting) -> Iterator[SingleEntry | Reject]:
    """Stage ``dedup`` on a stream in ``(source_file, index)`` order: first occurrence kept.

    Rejects pass through uncounted. Memory: one digest and the kept entry's provenance per
    distinct sequence. Raises if the stream is not in order (the kept copy would then differ
    from ``dedup_group``'s)."""
    stage = acct.stage("dedup")
    seen: dict[bytes, tuple[str, int, str]] = {}
    last: tuple[str, int] | None = None
    for item in items:
        if isinstance(item, Reject):
            yield item
            continue
        key = item.order_key
        if last is not None and key <= last:
            raise ValueError(f"dedup_sorted needs (source_file, index) order: {key} after {last}")
        last = key
        stage.take()
        digest = item.digest
        kept = seen.get(digest)
        if kept is not None:
            yield duplicate_reject(item, kept, acct)
            continue
        seen[digest] = (item.source_file, item.index, item.seq_id)
        stage.emit()
        yield item


def dedup_group(entries: Iterable[SingleEntry], acct: Accounting) -> tuple[SingleEntry, list[Reject]]:
    """Stage ``dedup`` on all entries sharing one digest: keep the smallest ``(source_file, index)``."""
    group = sorted(entries, key=lambda e: e.order_key)
    stage = acct.stage("dedup")
    stage.take(len(group))
    stage.emit()
    kept = group[0]
    return kept, [duplicate_reject(dup, kept, acct) for dup in group[1:]]


# ------------------------------------------------------------------------------------ samples


def entry_to_samples(entry: SingleEntry, modality: str | None, seq_len: int, acct: Accounting) -> list[Sample]:
    """Stage ``window``: one single-segment document per window of the (normalised) entry."""
    modality = modality or entry.modality
    windows = window(entry, seq_len, acct)
    n = len(windows)
    gid = f"{entry.source_file}:{entry.index}:{entry.seq_id}"
    overhead = sample_overhead(1)
    return [
        Sample(
            sample_id=f"{SOURCE}:{gid}:w{i}",
            source=SOURCE,
            group_id=gid,
            window=i,
            n_windows=n,
            segments=((modality, sub),),
            n_tokens=len(sub) + overhead,
            source_file=entry.source_file,
            record_id=entry.seq_id,
        )
        for i, (_, sub) in enumerate(windows)
    ]


def iter_single(files: list[InputFile], acct: Accounting, *, seq_len: int, progress=None) -> Iterator[Sample | Reject]:
    """Every Sample and Reject of a build, in one process (files in base-name order)."""
    vocab = load_vocab()
    files = sorted(files, key=lambda f: f.source_file)
    entries = (item for f in (progress(files) if progress else files) for item in file_entries(f, acct, vocab))
    for item in dedup_sorted(entries, acct):
        if isinstance(item, Reject):
            yield item
        else:
            yield from entry_to_samples(item, item.modality, seq_len, acct)


def build_single_local(spec=None, out_dir: str = "", *, seed: int = 0, seq_len: int = 1024, num_shards: int = 1, progress=None) -> dict:
    """The single-modal build without Beam: same functions, same bytes as ``pipelines.single``."""
    from .build import build_local

    if not out_dir:
        raise ValueError("out_dir is required")
    files = expand_spec(spec)
    acct = new_accounting()
    items = iter_single(files, acct, seq_len=seq_len, progress=progress)
    return build_local(items, acct, out_dir, pipeline=PIPELINE, options=single_options(files, num_shards), seed=seed, seq_len=seq_len, num_shards=num_shards)
