"""The Central Dogma task (paper appendix C, after LucaOne), built from real GenBank genes.

Does this DNA encode this protein? Binary classification of (DNA, protein) pairs.

Positives. One per gene: every CDS that ``bsm_data.genbank.extract_genbank`` extracts with
``translation_check == "match"`` (its /translation equals our translation of the CDS). The DNA
is the extractor's genomic span *including introns*, with 100 nt of flank on each side
(appendix C: "extended to include an additional 100 nucleotides at both the 5' and 3'
contexts, preserving intron sequences"), 5'->3' on the gene's strand; the protein is
/translation. Sequences are normalised as the model reads them (``vocab.normalize``).

Negatives. Two per gene, so a gene gives three items: the paper's 3,200 + 2,400 + 19,943 =
25,543 items are 3 x 8,533 genes minus the 57 test items it removed as contaminated.

* DNA negative (the protein is kept): one event chosen uniformly among
  - ``dna_substitution``: 1-3 point substitutions in distinct codons, each non-synonymous
    (sense -> other amino acid or stop);
  - ``dna_insertion``: 1-2 random nucleotides inserted inside an exon (frameshift);
  - ``dna_deletion``: 1-2 consecutive coding nucleotides deleted inside an exon (frameshift).
  Mutations fall inside the coding region, mapped from CDS coordinates onto the DNA span
  through the exon structure (``/location``), never on a splice junction.
* Protein negative (the DNA is kept): ``protein_substitution``, 1-3 residues replaced by another
  of the 20 standard amino acids.

Every negative is verified: the (mutated) CDS, re-spliced from the (mutated) DNA and translated
with the gene's genetic code, codon_start and start-codon rule, must *not* give the pair's
protein; a draw that fails (a deletion of the stop codon's last base, a GTG start read as M, ...)
is redrawn (at most 100 times, then the gene is dropped and counted).

Filters, each counted in ``CentralDogmaSet.counts`` (the paper's 8,533 genes from 13 RefSeq
species are not available offline; the bundled GenBank files give the numbers in ``stats()``):
``translation_check`` not ``match`` (e.g. AUGUSTUS genes without /translation are
``translated``), no genomic span (trans-spliced), ``transl_except`` (our verification would
need the exception table), the CDS not found in the span (origin-crossing), letters the
vocabulary rejects, exact duplicate (DNA, protein) pairs, and the context filter:
``len(dna) + 2 + len(protein) + 5 <= max_tokens`` (1024: the pair plus <bos> <dna> <sep>
<protein> <eos>, with room for a 2-nt insertion), so every item fits the model without cutting.

Split. 4:3:25 (train:valid:test) *by gene*: all three items of a gene, and all genes that share
a protein, a DNA span or a locus (isoforms), form one group and land in one split. Groups are
ordered by sha256(seed, first gene id) and cut at 4/32 and 7/32 of the genes. Everything is a
pure function of the input files and the seed (per-gene RNGs: adding a file does not change
the negatives of other genes).

Decontamination: ``eval_items`` gives the DNA and protein of every *test* gene as ``EvalItem``
rows (task ``central_dogma``, split ``test``), for ``bsm_data.evalsets.register_items``; the
registry's k-mer containment also catches the mutated copies.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .accounting import Accounting
from .genbank import extract_genbank
from .genetic_code import UnknownTable, start_codons, translate
from .pairing import gene_rng
from .records import GeneSequences
from .vocab import TokenizeError, load_vocab, normalize

TASK = "central_dogma"
SPLITS = ("train", "valid", "test")
SPLIT_RATIO = (4, 3, 25)
MAX_TOKENS = 1024
PAIR_OVERHEAD = 5  # <bos> <dna> <sep> <protein> <eos>
MAX_INSERT = 2
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
BASES = "ACGT"
DNA_KINDS = ("dna_substitution", "dna_insertion", "dna_deletion")
GENBANK_SUFFIXES = (".gb", ".gbk", ".gbff", ".gb.gz", ".gbk.gz", ".gbff.gz")
REPO_DATA = Path(__file__).resolve().parents[1] / "data"
MAX_TRIES = 100


@dataclass(frozen=True)
class Gene:
    gene_id: str  # the extractor's group_id ("record:locus"), made unique across files
    source_file: str
    record_id: str
    locus: str
    dna: str  # normalised genomic span with introns and flanks
    protein: str  # normalised /translation
    cds: str  # spliced coding DNA (upper case, as in the record)
    cds_map: tuple[int, ...]  # position in ``dna`` of every CDS nucleotide
    table: int
    codon_start: int
    partial_5: bool


@dataclass(frozen=True)
class Item:
    item_id: str
    gene_id: str
    split: str
    label: int  # 1 = the DNA encodes the protein
    kind: str  # positive | dna_substitution | dna_insertion | dna_deletion | protein_substitution
    dna: str
    protein: str
    detail: str  # what was changed, CDS/protein coordinates (1-based)

    def as_row(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class CentralDogmaSet:
    items: list[Item]
    genes: dict[str, Gene]
    split_of: dict[str, str]  # gene id -> split
    counts: Counter = field(default_factory=Counter)
    seed: int = 0
    max_tokens: int = MAX_TOKENS

    def split(self, name: str) -> list[Item]:
        return [it for it in self.items if it.split == name]

    def stats(self) -> dict:
        by_split = {s: Counter(it.kind for it in self.items if it.split == s) for s in SPLITS}
        return {
            "genes": {s: sum(1 for v in self.split_of.values() if v == s) for s in SPLITS},
            "items": {s: sum(c.values()) for s, c in by_split.items()},
            "kinds": {s: dict(sorted(c.items())) for s, c in by_split.items()},
            "filters": dict(sorted(self.counts.items())),
            "seed": self.seed,
            "max_tokens": self.max_tokens,
        }


# ----------------------------------------------------------------------------- translation


def translate_cds(cds: str, table: int, codon_start: int = 1, partial_5: bool = False) -> str:
    """Protein of a CDS exactly as the extractor checks /translation: frame from codon_start,
    a start codon at a complete 5' end reads as M, a terminal stop is dropped."""
    framed = cds[codon_start - 1:].encode("ascii")
    if not framed:
        return ""
    prot = translate(framed, table)
    if codon_start == 1 and not partial_5 and prot[:1] not in ("M", "") and framed[:3] in start_codons(table):
        prot = "M" + prot[1:]
    return prot[:-1] if prot.endswith("*") else prot


# ----------------------------------------------------------------------------- exon mapping

_INTERVAL = re.compile(r"<?(\d+)(?:\.\.>?(\d+))?")


def parse_location(text: str) -> tuple[int, list[tuple[int, int]]] | None:
    """(strand, exons in transcript order as 0-based half-open genomic intervals) of a
    GenBank location written by ``genbank.format_location``; None for remote parts."""
    if ":" in text:
        return None
    strand = -1 if text.startswith("complement(") else 1
    if strand > 0 and "complement(" in text:
        return None  # mixed strands (trans-splicing): no colinear span
    exons = [(int(a) - 1, int(b) if b else int(a)) for a, b in _INTERVAL.findall(text)]
    if not exons:
        return None
    return strand, (exons[::-1] if strand < 0 else exons)


def locate_cds(dna: str, cds: str, location: str) -> tuple[int, ...] | None:
    """Position in ``dna`` (the oriented span) of every nucleotide of ``cds``, found by placing
    the whole exon structure of ``location`` in the span; None when it does not fit exactly."""
    parsed = parse_location(location)
    if parsed is None:
        return None
    strand, exons = parsed
    lengths = [e - s for s, e in exons]
    if sum(lengths) != len(cds) or any(n <= 0 for n in lengths):
        return None
    s0, e0 = exons[0]
    rel = [(s - s0) if strand > 0 else (e0 - e) for s, e in exons]
    if any(r < 0 for r in rel):
        return None  # not monotonic on the strand (origin-crossing)
    pieces, pos = [], 0
    for n in lengths:
        pieces.append(cds[pos:pos + n])
        pos += n
    start = dna.find(pieces[0])
    while start >= 0:
        if all(dna[start + r:start + r + len(p)] == p for r, p in zip(rel, pieces)):
            out = []
            for r, n in zip(rel, lengths):
                out.extend(range(start + r, start + r + n))
            return tuple(out)
        start = dna.find(pieces[0], start + 1)
    return None


# ----------------------------------------------------------------------------- genes


def default_inputs(data_dir: str | os.PathLike | None = None) -> list[str]:
    d = Path(data_dir) if data_dir is not None else REPO_DATA
    d = d / "genbank" if (d / "genbank").is_dir() else d
    return sorted(str(p) for p in d.iterdir() if p.name.endswith(GENBANK_SUFFIXES))


def collect_genes(paths: list[str], *, max_tokens: int = MAX_TOKENS, counts: Counter | None = None) -> list[Gene]:
    """Positive genes of the task from GenBank files, in file order, each filter counted."""
    counts = Counter() if counts is None else counts
    vocab = load_vocab()
    genes: list[Gene] = []
    seen_pairs: set[tuple[str, str]] = set()
    used_ids: set[str] = set()
    for path in paths:
        for g in extract_genbank(path, Accounting()):
            if not isinstance(g, GeneSequences) or g.kind != "CDS":
                continue
            counts["cds"] += 1
            a = g.attributes
            if a.get("translation_check") != "match":
                counts[f"skip_translation_{a.get('translation_check')}"] += 1
                continue
            if not g.dna or not g.protein or not g.cds:
                counts["skip_no_genomic_span"] += 1
                continue
            try:
                own = translate_cds(g.cds, a["transl_table"], a["codon_start"], a["partial_5"])
            except UnknownTable:
                own = None
            if own != g.protein:
                counts["skip_own_translation_differs"] += 1  # /transl_except: verification needs the plain code
                continue
            if len(g.dna) + MAX_INSERT + len(g.protein) + PAIR_OVERHEAD > max_tokens:
                counts["skip_longer_than_context"] += 1
                continue
            cmap = locate_cds(g.dna, g.cds, a["location"])
            if cmap is None:
                counts["skip_cds_not_located"] += 1
                continue
            try:
                dna = normalize(vocab, "dna", g.dna)
                protein = normalize(vocab, "protein", g.protein)
            except TokenizeError as e:
                counts[f"skip_vocab_{e.reason}"] += 1
                continue
            if translate_cds(splice(dna, cmap), a["transl_table"], a["codon_start"], a["partial_5"]) != protein:
                counts["skip_ambiguous_codons"] += 1  # the normalised span no longer translates exactly
                continue
            if (dna, protein) in seen_pairs:
                counts["skip_duplicate_pair"] += 1
                continue
            seen_pairs.add((dna, protein))
            gid = g.group_id
            if gid in used_ids:
                gid = f"{g.source_file}:{g.group_id}"
            used_ids.add(gid)
            counts["genes"] += 1
            genes.append(Gene(gid, g.source_file, g.record_id, a.get("locus_tag") or a.get("gene") or g.group_id,
                              dna, protein, g.cds.upper(), cmap, int(a["transl_table"]), int(a["codon_start"]), bool(a["partial_5"])))
    return genes


# ----------------------------------------------------------------------------- negatives


def _codon_aa(codon: str, table: int) -> str:
    return translate(codon.encode("ascii"), table)


def _exon_interior(cmap: tuple[int, ...], i: int) -> bool:
    """CDS positions i-1 and i are adjacent in the DNA (same exon)."""
    return 0 < i < len(cmap) and cmap[i] == cmap[i - 1] + 1


def splice(dna: str, cds_map) -> str:
    return "".join(dna[i] for i in cds_map)


def mutate_dna(gene: Gene, kind: str, rng) -> tuple[str, tuple[int, ...], str] | None:
    """(mutated dna, its CDS map, detail) for one DNA event, or None when no site qualifies.
    The CDS is only used to choose the sites; the caller re-splices it from the new DNA."""
    cds, cmap, off = gene.cds, gene.cds_map, gene.codon_start - 1
    dna = gene.dna
    if kind == "dna_substitution":
        codons = [c for c in range((len(cds) - off) // 3) if set(cds[off + 3 * c: off + 3 * c + 3]) <= set(BASES)]
        if not codons:
            return None
        n = rng.randint(1, min(3, len(codons)))
        chosen = sorted(rng.sample(codons, n))
        chars, notes = list(dna), []
        for c in chosen:
            start = off + 3 * c
            codon = cds[start:start + 3]
            aa = _codon_aa(codon, gene.table)
            options = [(p, b) for p in range(3) for b in BASES
                       if b != codon[p] and _codon_aa(codon[:p] + b + codon[p + 1:], gene.table) != aa]
            if not options:
                return None
            p, b = rng.choice(options)
            chars[cmap[start + p]] = b
            notes.append(f"c.{start + p + 1}{codon[p]}>{b}")
        return "".join(chars), cmap, ",".join(notes)
    if kind == "dna_insertion":
        sites = [i for i in range(off + 1, len(cds)) if _exon_interior(cmap, i)]
        if not sites:
            return None
        i = rng.choice(sites)
        ins = "".join(rng.choice(BASES) for _ in range(rng.randint(1, MAX_INSERT)))
        p, k = cmap[i], len(ins)
        new_map = cmap[:i] + tuple(range(p, p + k)) + tuple(q + k for q in cmap[i:])
        return dna[:p] + ins + dna[p:], new_map, f"c.{i}_{i + 1}ins{ins}"
    if kind == "dna_deletion":
        n = rng.randint(1, 2)
        sites = [i for i in range(off, len(cds) - n + 1) if all(_exon_interior(cmap, j) for j in range(i + 1, i + n))]
        if not sites:
            return None
        i = rng.choice(sites)
        p = cmap[i]
        new_map = cmap[:i] + tuple(q - n for q in cmap[i + n:])
        return dna[:p] + dna[p + n:], new_map, f"c.{i + 1}_{i + n}del{cds[i:i + n]}"
    raise ValueError(f"unknown DNA mutation kind {kind!r}")


def mutate_protein(protein: str, rng) -> tuple[str, str]:
    n = rng.randint(1, min(3, len(protein)))
    pos = sorted(rng.sample(range(len(protein)), n))
    chars, notes = list(protein), []
    for p in pos:
        new = rng.choice([a for a in AMINO_ACIDS if a != protein[p]])
        notes.append(f"p.{protein[p]}{p + 1}{new}")
        chars[p] = new
    return "".join(chars), ",".join(notes)


def negatives(gene: Gene, seed: int, counts: Counter) -> list[tuple[str, str, str, str]] | None:
    """[(kind, dna, protein, detail)] for the gene's DNA and protein negatives, verified."""
    rng = gene_rng(seed, f"{TASK}:{gene.gene_id}")
    kind = rng.choice(DNA_KINDS)
    out = []
    for _ in range(MAX_TRIES):
        m = mutate_dna(gene, kind, rng)
        if m is None:
            break
        dna, cmap, detail = m
        try:
            # verified on the DNA itself: the CDS re-spliced from the mutated span
            if translate_cds(splice(dna, cmap), gene.table, gene.codon_start, gene.partial_5) != gene.protein:
                out.append((kind, dna, gene.protein, detail))
                break
        except UnknownTable:
            break
        counts[f"redraw_{kind}"] += 1
    if not out:
        counts[f"drop_no_{kind}"] += 1
        return None
    for _ in range(MAX_TRIES):
        prot, detail = mutate_protein(gene.protein, rng)
        if translate_cds(splice(gene.dna, gene.cds_map), gene.table, gene.codon_start, gene.partial_5) != prot:
            out.append(("protein_substitution", gene.dna, prot, detail))
            return out
    counts["drop_no_protein_substitution"] += 1
    return None


# ----------------------------------------------------------------------------- split


def gene_groups(genes: list[Gene]) -> list[list[Gene]]:
    """Genes linked by a shared protein, DNA span or locus (isoforms), in file order."""
    parent = list(range(len(genes)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, g in enumerate(genes):
        for key in (f"p:{g.protein}", f"d:{g.dna}", f"l:{g.source_file}:{g.record_id}:{g.locus}"):
            j = first.setdefault(key, i)
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[Gene]] = {}
    for i, g in enumerate(genes):
        groups.setdefault(find(i), []).append(g)
    return list(groups.values())


def assign_splits(genes: list[Gene], seed: int, ratio=SPLIT_RATIO) -> dict[str, str]:
    groups = gene_groups(genes)
    groups.sort(key=lambda grp: hashlib.sha256(f"{seed}\x1f{TASK}\x1f{grp[0].gene_id}".encode()).hexdigest())
    total, acc = len(genes), 0
    bounds = [total * ratio[0] / sum(ratio), total * (ratio[0] + ratio[1]) / sum(ratio)]
    out = {}
    for grp in groups:
        split = "train" if acc < bounds[0] else "valid" if acc < bounds[1] else "test"
        for g in grp:
            out[g.gene_id] = split
        acc += len(grp)
    return out


# ----------------------------------------------------------------------------- public API


def build(paths: list[str] | None = None, *, seed: int = 0, max_tokens: int = MAX_TOKENS,
          data_dir: str | os.PathLike | None = None) -> CentralDogmaSet:
    """The task from GenBank files (default: the bundled ``data/genbank``)."""
    paths = list(paths) if paths else default_inputs(data_dir)
    counts: Counter = Counter()
    genes = collect_genes(paths, max_tokens=max_tokens, counts=counts)
    kept, negs = [], {}
    for g in genes:
        n = negatives(g, seed, counts)
        if n is None:
            counts["genes"] -= 1
            continue
        kept.append(g)
        negs[g.gene_id] = n
    split_of = assign_splits(kept, seed)
    items = []
    for g in kept:
        split = split_of[g.gene_id]
        items.append(Item(f"{g.gene_id}|pos", g.gene_id, split, 1, "positive", g.dna, g.protein, ""))
        for kind, dna, prot, detail in negs[g.gene_id]:
            tag = "neg_dna" if kind.startswith("dna") else "neg_protein"
            items.append(Item(f"{g.gene_id}|{tag}", g.gene_id, split, 0, kind, dna, prot, detail))
    return CentralDogmaSet(items, {g.gene_id: g for g in kept}, split_of, counts, seed, max_tokens)


def eval_items(cd: CentralDogmaSet, split: str = "test"):
    """(EvalItems, skipped) of the DNA (role a) and protein (role b) of every gene in ``split``,
    for ``bsm_data.evalsets.register_items``."""
    from .evalsets import ItemBuilder

    builders: dict[str, ItemBuilder] = {}
    for gid, g in cd.genes.items():
        if cd.split_of[gid] != split:
            continue
        b = builders.setdefault(g.source_file, ItemBuilder(TASK, split, g.source_file))
        b.add(f"{gid}:dna", "dna", g.dna, "a")
        b.add(f"{gid}:protein", "protein", g.protein, "b")
    items = [it for b in builders.values() for it in b.items]
    skipped = [s for b in builders.values() for s in b.skipped]
    return items, skipped


def load_central_dogma(data_dir: Path):
    """``bsm_data.evalsets.BUILTIN`` loader signature: the test split's items from
    ``data_dir/genbank`` with the default seed."""
    return eval_items(build(data_dir=data_dir))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bsm_data.central_dogma", description=__doc__.split("\n\n")[0])
    p.add_argument("--input", action="append", help="GenBank file or glob (default: bundled data/genbank)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-tokens", type=int, default=MAX_TOKENS)
    p.add_argument("--register", metavar="REGISTRY", help="register the test split's DNA and proteins in this registry")
    p.add_argument("--csv", metavar="PATH", help="write every item (split, label, kind, dna, protein) as CSV")
    args = p.parse_args(argv)
    paths = sorted(q for pat in args.input for q in glob.glob(pat)) if args.input else None
    cd = build(paths, seed=args.seed, max_tokens=args.max_tokens)
    import json

    print(json.dumps(cd.stats(), indent=1))
    if args.csv:
        import csv

        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(Item.__dataclass_fields__))
            w.writeheader()
            for it in cd.items:
                w.writerow(it.as_row())
    if args.register:
        from .evalsets import Registry, register_items

        items, skipped = eval_items(cd)
        register_items(args.register, items, skipped)
        print(Registry(args.register).table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
