"""The tasks of the suite and their real datasets (``data/eval``, ``data/dms``, ``data/genbank``).

=====================  ==========  ==============  ===================================================
task                   kind        input           data, negatives and split
=====================  ==========  ==============  ===================================================
perplexity             lm          shards          validation shards of a round (perplexity.py)
central_dogma_sft      binary      dna <sep> prot  bsm_data.central_dogma: GenBank genes, 4:3:25 by gene
central_dogma_icl      few-shot    dna <sep> prot  the same items, k = 0, 1, 2, 4, 8 (icl.py)
ncrpi                  binary      rna <sep> prot  NPInter2.0_lncRNA: the 4,158 ones of the 990 x 27
                                                   matrix; as many negatives drawn (seeded) from its
                                                   zero cells; stratified 80:20 train:test as in the
                                                   paper (16,658/-/4,166 for NPInter2.0), 10 % of
                                                   train held out (stratified) as validation
ppi                    binary      prot <sep> prot Guo 2008 yeast (5,594 + 5,594 pairs); stratified
                                                   80:10:10 (the DeepPPI human split is not offline)
protstab               regression  prot            TAPE stability, its own 53,614/2,512/12,851 split
ncrnafam               multiclass  rna             nRC, 13 Rfam classes (paper: 88-class version);
                                                   its train/test files, 10 % of train (stratified)
                                                   as validation
zeroshot_ncrna         zero-shot   rna             Kobori twister (Osa_1_4) and drz-agam-2-1 ribozyme
                                                   DMS; fitness = label / FC (fraction cleaved)
zeroshot_protein       zero-shot   prot            GB1 Nisthal singles (fitness = -y: y is a ddG,
                                                   the reference row has -0.34 and 69 % of the
                                                   variants are higher), Olson doubles (first
                                                   5,000; y = log enrichment), Abeta42 amyloid
                                                   nucleation (nonsense variants with * skipped)
=====================  ==========  ==============  ===================================================

Pairs are split at the pair level (a protein may occur in train and test pairs, as in the
published splits). Splits are seeded (``seed``) and deterministic. Sequences the vocabulary
rejects are skipped and counted (``notes``). ``--max-items N`` keeps at most N items per split
(stratified by label: every class keeps its share) and N variants per DMS set.
"""
from __future__ import annotations

import io
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bsm_data.evalsets import read_csv_rows as read_csv
from bsm_data.streams import open_binary
from bsm_data.vocab import TokenizeError, load_vocab, normalize

REPO_DATA = Path(__file__).resolve().parents[2] / "data"
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Example:
    item_id: str
    segments: tuple[tuple[str, str], ...]  # (modality, normalised sequence) in input order
    label: float


@dataclass
class SupervisedTask:
    name: str
    kind: str  # binary | multiclass | regression
    splits: dict[str, list[Example]]
    classes: list[str] | None = None  # multiclass label names (label = index)
    notes: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def metric(self) -> str:
        return {"binary": "accuracy", "multiclass": "accuracy", "regression": "spearman"}[self.kind]

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.kind == "multiclass" else 1

    def sizes(self) -> dict[str, int]:
        return {s: len(self.splits.get(s, [])) for s in SPLITS}

    def labels(self, split: str) -> np.ndarray:
        return np.array([e.label for e in self.splits[split]], dtype=np.float64 if self.kind == "regression" else np.int64)


@dataclass
class DMSSet:
    name: str
    modality: str
    wild_type: str
    variants: list[str]
    fitness: np.ndarray
    source_file: str
    skipped_stop: int = 0  # variants with a stop codon (*), not scored


# ----------------------------------------------------------------------------- helpers


class _Normalizer:
    def __init__(self):
        self.vocab = load_vocab()
        self.skipped: Counter = Counter()

    def __call__(self, modality: str, seq: str) -> str | None:
        seq = "".join(seq.split())
        if modality == "protein" and seq.endswith("*"):
            seq = seq[:-1]
        try:
            return normalize(self.vocab, modality, seq)
        except TokenizeError as e:
            self.skipped[e.reason] += 1
            return None

    def notes(self) -> list[str]:
        return [f"skipped {n} sequences the vocabulary rejects ({r})" for r, n in sorted(self.skipped.items())]


def read_fasta(path: Path) -> list[tuple[str, str]]:
    """(header, letters as published) of a FASTA file; evalsets.read_fasta_records normalises."""
    out, header, seq = [], None, []
    with open_binary(path) as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
        for line in fh:
            line = line.strip()
            if line.startswith(">"):
                if header is not None:
                    out.append((header, "".join(seq)))
                header, seq = line[1:], []
            elif line:
                seq.append(line)
    if header is not None:
        out.append((header, "".join(seq)))
    return out


def stratified_split(labels, fractions: dict[str, float], seed: int, stratify: bool = True) -> dict[str, np.ndarray]:
    """Indices per split; within each label, a seeded permutation cut at the fractions."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    names = list(fractions)
    out: dict[str, list] = {n: [] for n in names}
    groups = [np.flatnonzero(labels == v) for v in np.unique(labels)] if stratify else [np.arange(len(labels))]
    for idx in groups:
        idx = rng.permutation(idx)
        bounds = np.round(np.cumsum([fractions[n] for n in names]) * len(idx)).astype(int)
        start = 0
        for n, end in zip(names, bounds):
            out[n].extend(idx[start:end].tolist())
            start = end
    return {n: np.array(sorted(v), dtype=np.int64) for n, v in out.items()}


def subsample(examples: list, n: int | None, seed: int, labels=None) -> list:
    """At most n examples, seeded; with labels, every class keeps its share (proportional
    interleaving of per-class permutations), order preserved."""
    if n is None or len(examples) <= n:
        return examples
    rng = np.random.default_rng(seed)
    if labels is None:
        keep = np.sort(rng.choice(len(examples), n, replace=False))
        return [examples[i] for i in keep]
    labels = np.asarray(labels)
    key = np.empty(len(examples))
    for v in np.unique(labels):
        idx = np.flatnonzero(labels == v)
        perm = rng.permutation(len(idx))
        key[idx[perm]] = (np.arange(len(idx)) + 0.5) / len(idx)
    keep = np.sort(np.argsort(key, kind="stable")[:n])
    return [examples[i] for i in keep]


def cap_task(task: SupervisedTask, max_items: int | None, seed: int) -> SupervisedTask:
    if max_items is None:
        return task
    strat = task.kind != "regression"
    splits = {s: subsample(ex, max_items, seed, [e.label for e in ex] if strat else None) for s, ex in task.splits.items()}
    return SupervisedTask(task.name, task.kind, splits, task.classes, task.notes + [f"--max-items {max_items}: at most {max_items} items per split"], task.source)


# ----------------------------------------------------------------------------- loaders


def load_ncrpi(data_dir: Path = REPO_DATA, seed: int = 0) -> SupervisedTask:
    d = Path(data_dir) / "eval" / "ncrpi_npinter_lncrna"
    rnas = [ln.strip() for ln in open(d / "NPInter4158_lncRNA.txt") if ln.strip()]
    prots = [ln.strip() for ln in open(d / "NPInter4158_protein.txt") if ln.strip()]
    matrix = np.loadtxt(d / "NPInter4158_interaction.txt", dtype=np.int64)
    if matrix.shape != (len(rnas), len(prots)):
        raise ValueError(f"{d}: interaction matrix {matrix.shape} does not match {len(rnas)} lncRNAs x {len(prots)} proteins")
    norm = _Normalizer()
    rseq = {h.split()[0]: s for h, s in read_fasta(d / "NPInter4158_lncRNA_sequence.fa")}
    pseq = {h.split()[0]: s for h, s in read_fasta(d / "NPInter4158_protein_sequence.fa")}
    r_norm = [norm("rna", rseq[r]) for r in rnas]
    p_norm = [norm("protein", pseq[p.split(".", 1)[1] if p.startswith("9606.") else p]) for p in prots]
    pos = np.argwhere(matrix == 1)
    neg_cells = np.argwhere(matrix == 0)
    rng = np.random.default_rng(seed)
    neg = neg_cells[np.sort(rng.choice(len(neg_cells), len(pos), replace=False))]
    examples, labels = [], []
    for cells, label in ((pos, 1), (neg, 0)):
        for i, j in cells.tolist():
            if r_norm[i] is None or p_norm[j] is None:
                continue
            examples.append(Example(f"{rnas[i]}|{prots[j]}", (("rna", r_norm[i]), ("protein", p_norm[j])), label))
            labels.append(label)
    first = stratified_split(labels, {"train": 0.8, "test": 0.2}, seed)
    tr = first["train"]
    inner = stratified_split([labels[i] for i in tr], {"train": 0.9, "valid": 0.1}, seed + 1)
    splits = {"train": [examples[tr[i]] for i in inner["train"]], "valid": [examples[tr[i]] for i in inner["valid"]],
              "test": [examples[i] for i in first["test"]]}
    notes = [f"{len(pos)} positive pairs (matrix ones), {len(neg)} negatives drawn from {len(neg_cells)} zero cells (seed {seed})",
             "stratified 80:20 train:test, 10 % of train held out as validation", *norm.notes()]
    return SupervisedTask("ncrpi", "binary", splits, None, notes, str(d))


def load_ppi(data_dir: Path = REPO_DATA, seed: int = 0) -> SupervisedTask:
    d = Path(data_dir) / "eval" / "ppi_yeast"
    norm = _Normalizer()
    seqs = {}
    for line in open(d / "yeast_dictionary.tsv"):
        f = line.rstrip("\n").split("\t")
        if len(f) >= 2:
            seqs[f[0]] = norm("protein", f[1])
    examples, labels = [], []
    for line in open(d / "yeast_actions.tsv"):
        f = line.rstrip("\n").split("\t")
        if len(f) < 3 or seqs.get(f[0]) is None or seqs.get(f[1]) is None:
            continue
        label = int(float(f[2]))
        examples.append(Example(f"{f[0]}|{f[1]}", (("protein", seqs[f[0]]), ("protein", seqs[f[1]])), label))
        labels.append(label)
    idx = stratified_split(labels, {"train": 0.8, "valid": 0.1, "test": 0.1}, seed)
    splits = {s: [examples[i] for i in idx[s]] for s in SPLITS}
    notes = [f"{sum(labels)} interacting / {len(labels) - sum(labels)} non-interacting pairs, stratified 80:10:10 (seed {seed})", *norm.notes()]
    return SupervisedTask("ppi", "binary", splits, None, notes, str(d))


def load_protstab(data_dir: Path = REPO_DATA, seed: int = 0) -> SupervisedTask:
    d = Path(data_dir) / "eval" / "protstab_tape"
    norm = _Normalizer()
    splits = {}
    for split in SPLITS:
        rows = read_csv(d / f"stability_{split}.csv")
        out = []
        for i, r in enumerate(rows):
            s = norm("protein", r["seq"])
            if s is not None:
                out.append(Example(f"{split}:{i:05d}", (("protein", s),), float(r["label"])))
        splits[split] = out
    return SupervisedTask("protstab", "regression", splits, None, ["TAPE split as published", *norm.notes()], str(d))


def load_ncrnafam(data_dir: Path = REPO_DATA, seed: int = 0) -> SupervisedTask:
    d = Path(data_dir) / "eval" / "ncrna_family_nrc"
    norm = _Normalizer()
    raw = {s: read_fasta(d / f"nRC_{s}.fasta") for s in ("train", "test")}
    classes = sorted({h.split()[0] for rows in raw.values() for h, _ in rows})
    index = {c: i for i, c in enumerate(classes)}
    ex = {}
    for s, rows in raw.items():
        out = []
        for i, (h, seq) in enumerate(rows):
            n = norm("rna", seq)
            if n is not None:
                out.append(Example(f"nRC_{s}:{i:05d}", (("rna", n),), index[h.split()[0]]))
        ex[s] = out
    idx = stratified_split([e.label for e in ex["train"]], {"train": 0.9, "valid": 0.1}, seed)
    splits = {"train": [ex["train"][i] for i in idx["train"]], "valid": [ex["train"][i] for i in idx["valid"]], "test": ex["test"]}
    notes = [f"{len(classes)} classes (nRC; the paper's ncRNAFam has 88)", "10 % of nRC_train held out (stratified) as validation", *norm.notes()]
    return SupervisedTask("ncrnafam", "multiclass", splits, classes, notes, str(d))


def load_central_dogma(data_dir: Path = REPO_DATA, seed: int = 0, max_tokens: int = 1024):
    """(SupervisedTask over the Central Dogma items, the CentralDogmaSet)."""
    from bsm_data import central_dogma

    cd = central_dogma.build(data_dir=data_dir, seed=seed, max_tokens=max_tokens)
    splits = {s: [Example(it.item_id, (("dna", it.dna), ("protein", it.protein)), it.label) for it in cd.split(s)] for s in SPLITS}
    st = cd.stats()
    notes = [f"{st['filters'].get('cds', 0)} CDS in {data_dir}/genbank -> {sum(st['genes'].values())} genes "
             f"(translation_check match, pair fits {max_tokens} tokens; filters {st['filters']})",
             "3 items per gene (1 positive, 1 DNA negative, 1 protein negative); split 4:3:25 by gene group"]
    return SupervisedTask("central_dogma_sft", "binary", splits, None, notes, str(Path(data_dir) / "genbank")), cd


SUPERVISED = {
    "ncrpi": load_ncrpi,
    "ppi": load_ppi,
    "protstab": load_protstab,
    "ncrnafam": load_ncrnafam,
}


# y is a stability ddG in mavenn's Nisthal file (higher = less stable): fitness = -y.
FITNESS_SIGN = {"nisthal_data": -1.0}


def load_dms(kind: str, data_dir: Path = REPO_DATA) -> list[DMSSet]:
    """The DMS sets of ``zeroshot_ncrna`` or ``zeroshot_protein`` with their wild types
    (``bsm_data.evalsets.dms_wild_type``: per-column consensus, Olson's GB1 from the paper)."""
    from bsm_data.evalsets import dms_wild_type

    data_dir = Path(data_dir)
    if kind == "zeroshot_ncrna":
        files = [(p, "seq", "FC" if "drz" in p.name else "label") for p in sorted((data_dir / "eval" / "dms_ncrna").glob("*.csv"))]
        modality = "rna"
    elif kind == "zeroshot_protein":
        d = data_dir / "dms"
        files = [(d / "nisthal_data.csv.gz", "x", "y"), (d / "gb1_olson2014_doubles_first5000.csv", "x", "y"),
                 (d / "amyloid_data.csv.gz", "x", "y")]
        modality = "protein"
    else:
        raise KeyError(kind)
    norm = _Normalizer()
    out = []
    for path, scol, ycol in files:
        rows = read_csv(path)
        seqs, ys, stops = [], [], 0
        for r in rows:
            s = r[scol].strip().upper()
            if "*" in s:  # nonsense variants (Abeta): the vocabulary has no stop token
                stops += 1
                continue
            y = float(r[ycol]) if r[ycol] not in ("", "nan", "NA") else math.nan
            if not math.isfinite(y):
                continue
            s = norm(modality, s)
            if s is not None:
                seqs.append(s)
                ys.append(y)
        stem = path.name.split(".")[0]
        wt = normalize(norm.vocab, modality, dms_wild_type(stem, seqs))
        out.append(DMSSet(stem, modality, wt, seqs, FITNESS_SIGN.get(stem, 1.0) * np.array(ys), path.name, stops))
    return out
