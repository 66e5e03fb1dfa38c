"""Evaluation registry: every evaluation test set registered once, in its published format.

A test set is a list of ``EvalItem`` rows (schema ``eval_item``): ``task``, ``split``,
``item_id``, ``role``, ``modality``, ``sequence`` (normalised with ``bsm_data.vocab.normalize``,
i.e. exactly as a training sample would hold it) and ``source_file``. Decontamination
(``bsm_data.decontam``) reads only these rows, so any test set, built in or added by a user,
is handled the same way.

Granularity: one item is one *sequence*. A pair task registers both members of each pair as
separate items (``role`` ``a`` / ``b``; a protein that occurs on both sides of a PPI pair has
role ``ab``); single-sequence tasks use role ``seq``. A training sample is contaminated when it
contains any registered sequence (or a near copy of it), whichever pair it belongs to: a model
that has seen one side of a test pair has seen part of the test input.

Built-in test sets (``data/eval``, ``data/dms``; sources and licences in ``NOTICE``):

=========================  ===========  ==========================================================
task                       split        items
=========================  ===========  ==========================================================
``ncrpi``                  ``all``      NPInter2.0_lncRNA (NPInter4158): 990 lncRNAs (rna, role a)
                                        and 27 proteins (role b). The published files hold the
                                        interaction matrix only; the train/test split is drawn
                                        later by the evaluation code (issue 7), so any sequence
                                        can land in test: all are registered, split ``all``.
``ppi``                    ``all``      Guo 2008 yeast PPI (seq_ppi): every protein of
                                        ``yeast_dictionary.tsv`` (2,497), split ``all`` for the
                                        same reason (the pair split is drawn by the evaluation).
``protstab``               ``test``     TAPE stability ``stability_test.csv`` (12,851 rows) and
                           ``valid``    ``stability_valid.csv`` (2,512); item id = row number.
``ncrnafam``               ``test``     nRC ``nRC_test.fasta`` (2,529; the header is the class, so
                                        the item id is ``<entry index>:<class>``).
``zeroshot_ncrna_fitness`` ``test``     Kobori DMS of the twister (Osa_1_4) and drz-agam-2-1
                                        ribozymes: the wild type of each (see below).
``zeroshot_protein_fitness`` ``test``   mavenn GB1 (Nisthal singles, Olson doubles) and Abeta42
                                        amyloid DMS: the wild type of each.
``central_dogma``          ``test``     built by ``bsm_data.central_dogma`` from the GenBank genes
                                        of ``data/genbank`` (the evaluation's 4:3:25 gene split):
                                        DNA (role a) and protein (role b) of every test gene. The
                                        same genes feed the RefSeq training spine, so this is the
                                        set that removes most from a bundled-data build.
=========================  ===========  ==========================================================

DMS sets: the files hold 1- and 2-substitution variants of one wild type (20,448 twister
variants, 16,066 Abeta42 variants, ...; drz-agam-2-1 randomises a 6-nt window), mostly without
the wild type itself. The wild type is recovered as the per-column consensus of the variants
(all variants have the wild type's length; every column keeps the wild-type letter in most
variants), except where the published excerpt mutates a column in every row
(``KNOWN_WILD_TYPES``: Olson's GB1), and is checked to be within 6 substitutions of every
variant. It is registered alone, item id ``<file stem>:wt``. A training sequence that contains any variant
(>= 96 % identical to the wild type) matches the wild type by k-mer containment, so registering
thousands of near-identical variants would add nothing but index size.

Registry directory (``register_items`` / ``open_registry``)::

    registry.json                 commit point, written last: one entry per (task, split) with
                                  item and residue counts, file sha256 and skipped items
    items/part-<task>--<split>.parquet   the items (schema eval_item), one file per (task, split)

``bsm query "SELECT task, split, count(*) FROM items GROUP BY ALL" --data REGISTRY`` works on it.

Command line (``bsm eval ...``, or ``python -m bsm_data.evalsets ...``)::

    bsm registry build --output REG                       # every built-in set
    bsm registry register --registry REG --task NAME --split test --input FILE.fasta --modality rna
    bsm registry register --registry REG --task NAME --split test --input FILE.csv --modality protein --column seq [--id-column id]
    bsm registry register --registry REG --config sets.toml  # [[set]] task/split/input/modality/column
    bsm registry list --registry REG
    bsm decontam --data BUILD_DIR --registry REG --report OUT   # report in OUT/report/
Registering a (task, split) again replaces it. Items whose sequence the vocabulary rejects
(illegal letters, too ambiguous) cannot occur in a training sample either; they are skipped and
counted by reason in ``registry.json``.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from .records import MODALITIES
from .schemas import SchemaError, check_file_schema, to_table
from .shards import atomic_write, write_dataset_file
from .streams import open_binary
from .vocab import TokenizeError, load_vocab, normalize

REPO_DATA = Path(__file__).resolve().parents[1] / "data"
REGISTRY_JSON = "registry.json"
REGISTRY_FORMAT = "bsm-eval-registry"
REGISTRY_VERSION = 1
ROLES = ("seq", "a", "b", "ab")


class RegistryError(RuntimeError):
    pass


@dataclass(frozen=True)
class EvalItem:
    """One registered evaluation sequence (schema ``eval_item``)."""

    task: str
    split: str
    item_id: str
    role: str  # seq | a | b | ab
    modality: str  # dna | rna | protein
    sequence: str  # normalised (vocab.normalize)
    source_file: str

    def as_row(self) -> dict:
        return {
            "task": self.task,
            "split": self.split,
            "item_id": self.item_id,
            "role": self.role,
            "modality": self.modality,
            "sequence": self.sequence,
            "source_file": self.source_file,
        }

    @classmethod
    def from_row(cls, row: dict) -> "EvalItem":
        return cls(**{k: row[k] for k in ("task", "split", "item_id", "role", "modality", "sequence", "source_file")})

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.task, self.split, self.item_id)


@dataclass(frozen=True)
class Skipped:
    """A test-set entry that could not be registered (the vocabulary rejects its sequence)."""

    task: str
    split: str
    item_id: str
    reason: str
    detail: str


class ItemBuilder:
    """Normalises raw sequences into EvalItems and keeps the ones it has to skip."""

    def __init__(self, task: str, split: str, source_file: str):
        self.task, self.split, self.source_file = task, split, source_file
        self.items: list[EvalItem] = []
        self.skipped: list[Skipped] = []
        self._vocab = load_vocab()

    def add(self, item_id: str, modality: str, sequence: str, role: str = "seq") -> None:
        if modality not in MODALITIES:
            raise ValueError(f"{self.task}/{item_id}: modality {modality!r}, expected one of {MODALITIES}")
        if role not in ROLES:
            raise ValueError(f"{self.task}/{item_id}: role {role!r}, expected one of {ROLES}")
        seq = re.sub(r"\s+", "", sequence)
        if modality == "protein" and seq.endswith("*"):
            seq = seq[:-1]
        try:
            seq = normalize(self._vocab, modality, seq)
        except TokenizeError as e:
            self.skipped.append(Skipped(self.task, self.split, item_id, e.reason, f"{self.source_file}: {e.detail}"))
            return
        self.items.append(EvalItem(self.task, self.split, item_id, role, modality, seq, self.source_file))


# ----------------------------------------------------------------------------- file readers


def read_fasta_records(path) -> list[tuple[str, str]]:
    """(header, sequence) pairs of a FASTA file (plain or gzip), in file order."""
    from .readers import read_fasta
    from .records import Reject

    out = []
    for e in read_fasta(path):
        if isinstance(e, Reject):
            raise RegistryError(f"{path}: {e.reason}: {e.detail}")
        out.append(((e.seq_id + (" " + e.description if e.description else "")), e.sequence))
    return out


def read_csv_rows(path) -> list[dict]:
    with open_binary(path) as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
        sample = fh.read(4096)
        fh.seek(0)
        dialect = csv.excel_tab if sample.count("\t") > sample.count(",") else csv.excel
        return list(csv.DictReader(fh, dialect=dialect))


def consensus(seqs: list[str]) -> str:
    """Per-column majority letter of equal-length sequences (ties: alphabetical)."""
    lengths = Counter(len(s) for s in seqs)
    if len(lengths) != 1:
        raise RegistryError(f"consensus needs equal lengths, got {dict(lengths.most_common(5))}")
    cols = zip(*seqs)
    return "".join(min(Counter(c).items(), key=lambda kv: (-kv[1], kv[0]))[0] for c in cols)


# ------------------------------------------------------------------------------ built-ins


def load_ncrpi_npinter_lncrna(data_dir: Path) -> tuple[list[EvalItem], list[Skipped]]:
    d = Path(data_dir) / "eval" / "ncrpi_npinter_lncrna"
    out_items, out_skipped = [], []
    for name, list_file, modality, role in (
        ("NPInter4158_lncRNA_sequence.fa", "NPInter4158_lncRNA.txt", "rna", "a"),
        ("NPInter4158_protein_sequence.fa", "NPInter4158_protein.txt", "protein", "b"),
    ):
        listed = [line.strip() for line in open(d / list_file) if line.strip()]
        records = {h.split()[0]: s for h, s in read_fasta_records(d / name)}
        b = ItemBuilder("ncrpi", "all", name)
        for acc in listed:  # the matrix's row / column order; protein ids carry a taxon prefix
            seq_id = acc.split(".", 1)[1] if acc.startswith("9606.") else acc
            if seq_id not in records:
                raise RegistryError(f"{d / list_file}: {acc} has no sequence in {name}")
            b.add(f"NPInter4158:{seq_id}", modality, records[seq_id], role)
        out_items += b.items
        out_skipped += b.skipped
    return out_items, out_skipped


def load_ppi_yeast(data_dir: Path) -> tuple[list[EvalItem], list[Skipped]]:
    d = Path(data_dir) / "eval" / "ppi_yeast"
    sides: dict[str, set] = defaultdict(set)
    with open(d / "yeast_actions.tsv") as fh:
        for line in fh:
            f = line.rstrip("\n").split("\t")
            if len(f) >= 2:
                sides[f[0]].add("a")
                sides[f[1]].add("b")
    b = ItemBuilder("ppi", "all", "yeast_dictionary.tsv")
    with open(d / "yeast_dictionary.tsv") as fh:
        for line in fh:
            f = line.rstrip("\n").split("\t")
            if len(f) < 2:
                continue
            role = "".join(sorted(sides.get(f[0], set()))) or "ab"
            b.add(f"yeast:{f[0]}", "protein", f[1], role)
    return b.items, b.skipped


def load_protstab(data_dir: Path) -> tuple[list[EvalItem], list[Skipped]]:
    d = Path(data_dir) / "eval" / "protstab_tape"
    items, skipped = [], []
    for split, name in (("test", "stability_test.csv"), ("valid", "stability_valid.csv")):
        b = ItemBuilder("protstab", split, name)
        for i, row in enumerate(read_csv_rows(d / name)):
            b.add(f"{split}:{i:05d}", "protein", row["seq"])
        items += b.items
        skipped += b.skipped
    return items, skipped


def load_ncrnafam_nrc(data_dir: Path) -> tuple[list[EvalItem], list[Skipped]]:
    name = "nRC_test.fasta"
    b = ItemBuilder("ncrnafam", "test", name)
    for i, (header, seq) in enumerate(read_fasta_records(Path(data_dir) / "eval" / "ncrna_family_nrc" / name)):
        b.add(f"nRC:{i:05d}:{header.split()[0]}", "rna", seq)
    return b.items, b.skipped


# Wild types the variants alone cannot give: the first 5,000 rows of Olson 2014's doubles all
# mutate position 1, so its consensus letter there is a mutant's. GB1 residues 2-56 (Olson et
# al. 2014; mavenn's wt_seq); checked below against every variant like the consensus is.
KNOWN_WILD_TYPES = {"gb1_olson2014_doubles_first5000": "QYKLILNGKTLKGETTTEAVDAATAEKVFKQYANDNGVDGEWTYDDATKTFTVTE"}
MAX_DMS_DISTANCE = 6  # drz-agam-2-1 randomises a 6-nt window; the other sets are 1-2 substitutions


def dms_wild_type(stem: str, seqs: list[str]) -> str:
    """The wild type of a DMS file: its variants' consensus (or ``KNOWN_WILD_TYPES``), checked
    to be within ``MAX_DMS_DISTANCE`` substitutions of every variant."""
    wt = KNOWN_WILD_TYPES.get(stem) or consensus(seqs)
    far = [s for s in seqs if len(s) != len(wt) or sum(a != b for a, b in zip(s, wt)) > MAX_DMS_DISTANCE]
    if far:
        raise RegistryError(f"{stem}: {len(far)} variants are more than {MAX_DMS_DISTANCE} substitutions from the wild type {wt}")
    return wt


def _dms(task: str, modality: str, files: list[tuple[Path, str]]) -> tuple[list[EvalItem], list[Skipped]]:
    items, skipped = [], []
    for path, column in files:
        b = ItemBuilder(task, "test", path.name)
        seqs = [r[column].strip().upper() for r in read_csv_rows(path)]
        if modality == "rna":
            seqs = [s.replace("T", "U") for s in seqs]
        stem = path.name.split(".")[0]
        b.add(f"{stem}:wt", modality, dms_wild_type(stem, seqs))
        items += b.items
        skipped += b.skipped
    return items, skipped


def load_dms_ncrna(data_dir: Path) -> tuple[list[EvalItem], list[Skipped]]:
    d = Path(data_dir) / "eval" / "dms_ncrna"
    return _dms("zeroshot_ncrna_fitness", "rna", [(p, "seq") for p in sorted(d.glob("*.csv"))])


def load_dms_protein(data_dir: Path) -> tuple[list[EvalItem], list[Skipped]]:
    d = Path(data_dir) / "dms"
    files = [d / "nisthal_data.csv.gz", d / "gb1_olson2014_doubles_first5000.csv", d / "amyloid_data.csv.gz"]
    return _dms("zeroshot_protein_fitness", "protein", [(p, "x") for p in files])


def load_central_dogma(data_dir: Path) -> tuple[list[EvalItem], list[Skipped]]:
    """The DNA and protein of every Central Dogma *test* gene, built from ``data_dir/genbank``
    by ``bsm_data.central_dogma`` (the evaluation's own split, default seed)."""
    from .central_dogma import load_central_dogma as load

    return load(Path(data_dir))


BUILTIN = {
    "ncrpi": load_ncrpi_npinter_lncrna,
    "ppi": load_ppi_yeast,
    "protstab": load_protstab,
    "ncrnafam": load_ncrnafam_nrc,
    "zeroshot_ncrna_fitness": load_dms_ncrna,
    "zeroshot_protein_fitness": load_dms_protein,
    "central_dogma": load_central_dogma,
}
PUBLISHED = tuple(k for k in BUILTIN if k != "central_dogma")  # read from data/eval and data/dms as published


def builtin_items(data_dir: str | os.PathLike | None = None, tasks: Iterable[str] | None = None) -> tuple[list[EvalItem], list[Skipped]]:
    """Every built-in test set (or ``tasks``), read from ``data_dir`` (default: bundled data/)."""
    d = Path(data_dir) if data_dir is not None else REPO_DATA
    items, skipped = [], []
    for name in tasks or BUILTIN:
        if name not in BUILTIN:
            raise KeyError(f"unknown built-in task {name!r}; known: {sorted(BUILTIN)}")
        i, s = BUILTIN[name](d)
        items += i
        skipped += s
    return items, skipped


def items_from_file(
    path: str | os.PathLike,
    *,
    task: str,
    split: str,
    modality: str,
    column: str | None = None,
    id_column: str | None = None,
    role: str = "seq",
) -> tuple[list[EvalItem], list[Skipped]]:
    """A user's test set: FASTA (item id = first header word) or CSV/TSV (``column`` holds the
    sequence, default ``seq`` or ``sequence``; ``id_column`` the id, default the row number)."""
    path = Path(path)
    name = path.name
    lower = name.lower().removesuffix(".gz")
    b = ItemBuilder(task, split, name)
    if lower.endswith((".csv", ".tsv", ".txt")):
        rows = read_csv_rows(path)
        if not rows:
            raise RegistryError(f"{path}: no rows")
        col = column or next((c for c in ("seq", "sequence", "x") if c in rows[0]), None)
        if col is None or col not in rows[0]:
            raise RegistryError(f"{path}: no sequence column {column or 'seq/sequence'!r}; columns: {list(rows[0])}")
        if id_column and id_column not in rows[0]:
            raise RegistryError(f"{path}: no id column {id_column!r}; columns: {list(rows[0])}")
        for i, row in enumerate(rows):
            b.add(row[id_column] if id_column else f"{i:06d}", modality, row[col], role)
    else:
        seen: Counter = Counter()
        for header, seq in read_fasta_records(path):
            word = header.split()[0]
            seen[word] += 1
            b.add(word if seen[word] == 1 else f"{word}#{seen[word]}", modality, seq, role)
    return b.items, b.skipped


# ------------------------------------------------------------------------------- registry


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _items_digest(items: list[EvalItem]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update("\x1f".join(it.as_row().values()).encode() + b"\x1e")
    return h.hexdigest()


def _entry_digest(entries: list[dict]) -> str:
    return hashlib.sha256(json.dumps([(e["task"], e["split"], e["sha256"]) for e in entries]).encode()).hexdigest()


def read_registry_json(registry_dir: str | os.PathLike) -> dict | None:
    p = Path(registry_dir) / REGISTRY_JSON
    if not p.exists():
        return None
    meta = json.loads(p.read_text())
    if meta.get("format") != REGISTRY_FORMAT or meta.get("version") != REGISTRY_VERSION:
        raise RegistryError(f"{p}: format {meta.get('format')!r} v{meta.get('version')}, this code reads {REGISTRY_FORMAT} v{REGISTRY_VERSION}")
    return meta


def register_items(registry_dir: str | os.PathLike, items: Iterable[EvalItem], skipped: Iterable[Skipped] = ()) -> dict:
    """Add test sets to a registry directory; each (task, split) present in ``items`` replaces
    the registered one. Items are sorted by item id; duplicate ids in one (task, split) are an
    error. Returns the new ``registry.json`` (written last, atomically)."""
    registry_dir = str(registry_dir)
    groups: dict[tuple[str, str], list[EvalItem]] = defaultdict(list)
    for it in items:
        groups[(it.task, it.split)].append(it)
    skipped_by: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for s in skipped:
        skipped_by[(s.task, s.split)][s.reason] += 1
    for key in skipped_by:
        groups.setdefault(key, [])
    meta = read_registry_json(registry_dir) or {}
    entries = {(e["task"], e["split"]): e for e in meta.get("entries", [])}
    vocab = load_vocab()
    for (task, split), group in sorted(groups.items()):
        group = sorted(group, key=lambda it: it.item_id)
        dup = [k for k, n in Counter(it.item_id for it in group).items() if n > 1]
        if dup:
            raise RegistryError(f"{task}/{split}: duplicate item ids {dup[:5]}")
        rel = f"items/part-{_slug(task)}--{_slug(split)}.parquet"
        clash = [k for k, e in entries.items() if e["path"] == rel and k != (task, split)]
        if clash:
            raise RegistryError(f"{task}/{split} would share {rel} with {clash[0][0]}/{clash[0][1]}; rename the task or split")
        old = entries.get((task, split))
        if old and old["path"] != rel:
            Path(registry_dir, old["path"]).unlink(missing_ok=True)
        if not group:
            Path(registry_dir, rel).unlink(missing_ok=True)
            info = {"path": rel, "rows": 0, "bytes": 0, "sha256": hashlib.sha256(b"").hexdigest()}
        else:
            table = to_table("eval_item", [it.as_row() for it in group])
            info = write_dataset_file("eval_item", table, registry_dir, rel, dictionary=["task", "split", "role", "modality", "source_file"])
        entries[(task, split)] = {
            "task": task,
            "split": split,
            "path": rel,
            "items": info["rows"],
            "residues": sum(len(it.sequence) for it in group),
            "modalities": dict(sorted(Counter(it.modality for it in group).items())),
            "roles": dict(sorted(Counter(it.role for it in group).items())),
            "source_files": sorted({it.source_file for it in group}),
            "skipped": dict(sorted(skipped_by.get((task, split), Counter()).items())),
            "bytes": info["bytes"],
            "sha256": info["sha256"],
            "items_sha256": _items_digest(group),
        }
    ordered = [entries[k] for k in sorted(entries)]
    meta = {
        "format": REGISTRY_FORMAT,
        "version": REGISTRY_VERSION,
        "vocab": vocab.describe(),
        "schemas": {"eval_item": 1},
        "sha256": _entry_digest(ordered),
        "entries": ordered,
    }
    atomic_write(os.path.join(registry_dir, REGISTRY_JSON), (json.dumps(meta, indent=1) + "\n").encode())
    return meta


def build_builtin_registry(registry_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None, tasks: Iterable[str] | None = None) -> dict:
    items, skipped = builtin_items(data_dir, tasks)
    return register_items(registry_dir, items, skipped)


class Registry:
    """A registry directory, checked on open (format, vocabulary, every file's sha256)."""

    def __init__(self, registry_dir: str | os.PathLike):
        self.dir = Path(registry_dir)
        meta = read_registry_json(self.dir)
        if meta is None:
            raise RegistryError(f"{self.dir}: no {REGISTRY_JSON} (not a registry; build one with `bsm registry build`)")
        vocab = load_vocab()
        if (meta["vocab"]["name"], meta["vocab"]["version"]) != (vocab.name, vocab.version):
            raise RegistryError(f"{self.dir}: registered with vocabulary {meta['vocab']}, this code uses {vocab.describe()}")
        self.meta = meta

    @property
    def sha256(self) -> str:
        return self.meta["sha256"]

    @property
    def entries(self) -> list[dict]:
        return self.meta["entries"]

    def items(self, tasks: Iterable[str] | None = None, splits: Iterable[str] | None = None) -> list[EvalItem]:
        tasks = set(tasks) if tasks else None
        splits = set(splits) if splits else None
        out = []
        for e in self.entries:
            if (tasks and e["task"] not in tasks) or (splits and e["split"] not in splits) or not e["items"]:
                continue
            data = (self.dir / e["path"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != e["sha256"]:
                raise RegistryError(f"{self.dir / e['path']}: sha256 does not match {REGISTRY_JSON}")
            table = pq.read_table(io.BytesIO(data))
            try:
                check_file_schema("eval_item", table.schema, str(self.dir / e["path"]))
            except SchemaError as err:
                raise RegistryError(str(err)) from None
            out += [EvalItem.from_row(r) for r in table.to_pylist()]
        return out

    def table(self) -> str:
        lines = [f"{'task':<26}{'split':<8}{'items':>8}{'residues':>12}  modalities  skipped"]
        for e in self.entries:
            mods = ",".join(f"{m}={n}" for m, n in e["modalities"].items())
            skipped = ",".join(f"{r}={n}" for r, n in e["skipped"].items()) or "-"
            lines.append(f"{e['task']:<26}{e['split']:<8}{e['items']:>8}{e['residues']:>12}  {mods}  {skipped}")
        return "\n".join(lines)


def open_registry(registry_dir: str | os.PathLike) -> Registry:
    return Registry(registry_dir)


# ------------------------------------------------------------------------------------ CLI


def load_config(path: str | os.PathLike) -> list[dict]:
    """Test sets to register, TOML or JSON: ``[[set]]`` tables (JSON: ``{"set": [...]}`` or a
    list) with keys task, split, input, modality and optional column, id_column, role.
    Relative inputs are relative to the config file."""
    p = Path(path)
    text = p.read_bytes()
    if p.suffix.lower() == ".json":
        spec = json.loads(text)
    else:
        import tomllib

        spec = tomllib.loads(text.decode())
    sets = spec.get("set", []) if isinstance(spec, dict) else spec
    out = []
    for s in sets:
        missing = {"task", "split", "input", "modality"} - set(s)
        if missing:
            raise RegistryError(f"{p}: a set lacks {sorted(missing)}: {s}")
        s = dict(s)
        if not os.path.isabs(s["input"]):
            s["input"] = str(p.parent / s["input"])
        out.append(s)
    return out


def cmd_registry(args, _rest=None) -> int:
    meta = build_builtin_registry(args.output, args.data, args.task or None)
    reg = Registry(args.output)
    print(reg.table())
    print(f"\nregistry written to {os.path.abspath(args.output)} (sha256 {meta['sha256'][:16]}…)")
    return 0


def cmd_register(args, _rest=None) -> int:
    if args.config:
        sets = load_config(args.config)
    else:
        if not (args.task and args.split and args.input and args.modality):
            raise SystemExit("bsm registry register: give --config, or --task, --split, --input and --modality")
        sets = [{"task": args.task, "split": args.split, "input": args.input, "modality": args.modality,
                 "column": args.column, "id_column": args.id_column, "role": args.role}]
    items, skipped = [], []
    for s in sets:
        i, sk = items_from_file(
            s["input"], task=s["task"], split=s["split"], modality=s["modality"],
            column=s.get("column"), id_column=s.get("id_column"), role=s.get("role") or "seq",
        )
        items += i
        skipped += sk
    register_items(args.registry, items, skipped)
    print(Registry(args.registry).table())
    return 0


def cmd_list(args, _rest=None) -> int:
    print(Registry(args.registry).table())
    return 0


def cmd_decontam(args, _rest=None) -> int:
    """Decontaminate the samples of a build directory against a registry and write the report."""
    from .decontam import run_on_build

    summary = run_on_build(args.data, args.registry, args.report, tasks=args.task or None)
    print(summary["text"])
    return 0


def add_registry_parsers(sub) -> None:
    """``bsm registry build|register|list`` and ``bsm decontam`` (``bsm eval`` runs evaluations)."""
    ev = sub.add_parser("registry", help="evaluation test-set registry (what decontamination removes)").add_subparsers(dest="registry_command", required=True)

    r = ev.add_parser("build", help="register every built-in test set (data/eval, data/dms, Central Dogma) in a registry directory")
    r.add_argument("--output", required=True, help="registry directory")
    r.add_argument("--data", default=None, help="data directory holding eval/ and dms/ (default: bundled data/)")
    r.add_argument("--task", action="append", help=f"only these built-in tasks ({', '.join(BUILTIN)}); repeatable")
    r.set_defaults(func=cmd_registry)

    g = ev.add_parser("register", help="add (or replace) a test set: one file, or a TOML/JSON config of several")
    g.add_argument("--registry", required=True, help="registry directory (created if missing)")
    g.add_argument("--task")
    g.add_argument("--split")
    g.add_argument("--input", help="FASTA (.fa/.fasta, plain or .gz) or CSV/TSV file")
    g.add_argument("--modality", choices=MODALITIES)
    g.add_argument("--column", help="CSV/TSV column holding the sequence (default seq, sequence or x)")
    g.add_argument("--id-column", help="CSV/TSV column holding the item id (default: row number)")
    g.add_argument("--role", choices=ROLES, default="seq")
    g.add_argument("--config", help="TOML ([[set]] tables) or JSON file listing several test sets")
    g.set_defaults(func=cmd_register)

    ls = ev.add_parser("list", help="print a registry's test sets")
    ls.add_argument("--registry", required=True)
    ls.set_defaults(func=cmd_list)

    dc = sub.add_parser("decontam", help="check a build directory's samples against a registry; write the contamination report")
    dc.add_argument("--data", required=True, help="build directory (with manifest.json and samples/)")
    dc.add_argument("--registry", required=True)
    dc.add_argument("--report", required=True, help="output directory; the report goes to <report>/report/")
    dc.add_argument("--task", action="append", help="only these tasks; repeatable")
    dc.set_defaults(func=cmd_decontam)
