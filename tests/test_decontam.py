"""Decontamination acceptance: planted copies of real test items are all caught, the false-
positive rate on unrelated real sequences is measured and bounded, the report renders.

Figures (bundled data, default thresholds; printed with ``pytest -s``):
- planted recall: 1.0 for every kind (exact, embedded, 5 % and 10 % substitutions, reverse
  complement, 50 % truncation, reverse complement + 5 % embedded, 1,000-residue windows of
  long items with 5 %), nucleotide and protein, 25 items per kind and alphabet;
- false positives: 0 flagged (segment, item) pairs below 50 % aligned identity among the
  20,331 real training samples of data/ncrna, data/protein and data/genbank; 354 samples are
  flagged, all homolog or near-copy hits (aligned identity >= 69 %).
"""
from __future__ import annotations

import glob
import html.parser
import re
from collections import Counter, defaultdict

import numpy as np
import pyarrow.parquet as pq
import pytest
from Bio.Align import PairwiseAligner, substitution_matrices

from bsm_data.cli import main as bsm
from bsm_data.accounting import Accounting
from bsm_data.build import build_genbank_local, genbank_file_to_samples
from bsm_data.decontam import (
    NUCLEOTIDE,
    PLANT_KINDS,
    REASON,
    STAGE,
    THRESHOLDS,
    ContaminationIndex,
    Decontaminator,
    Thresholds,
    alphabet_of,
    decontaminate,
    encode,
    informative_kmers,
    kmer_hashes,
    low_complexity,
    plant_contamination,
    revcomp,
    summarize,
    write_report,
)
from bsm_data.evalsets import PUBLISHED, EvalItem, builtin_items
from bsm_data.query import run_query
from bsm_data.records import Reject, Sample
from bsm_data.schemas import check_file_schema
from bsm_data.single import default_spec, expand_spec, iter_single, new_accounting
from bsm_data.vocab import load_vocab, normalize

PER_KIND = 25
FP_IDENTITY = 0.50  # below this aligned identity a flagged pair is not even a homolog (ESM's bound)
FP_BOUND = 1e-3  # false-positive pairs per checked sample


@pytest.fixture(scope="module")
def items():
    """The published test sets (data/eval, data/dms). Central Dogma's test genes come from
    data/genbank itself (the training spine's input), so they are tested on their own."""
    return builtin_items(tasks=PUBLISHED)[0]


@pytest.fixture(scope="module")
def index(items):
    return ContaminationIndex.build(items)


@pytest.fixture(scope="module")
def real_samples(data_dir):
    """Unrelated real training samples: single-modal data/ncrna + data/protein + data/genbank
    sequences, and RefSeq-style pair samples of every data/genbank file."""
    singles = [s for s in iter_single(expand_spec(default_spec(data_dir)), new_accounting(), seq_len=1024) if isinstance(s, Sample)]
    acct = Accounting()
    pairs = [
        s for f in sorted(glob.glob(str(data_dir / "genbank" / "*.gb*")))
        for s in genbank_file_to_samples(f, acct, seed=0, seq_len=1024, flank=100) if isinstance(s, Sample)
    ]
    return singles + pairs


def _sample(sid: str, *segments) -> Sample:
    return Sample(sid, "test", sid, 0, 1, tuple(segments), sum(len(s) for _, s in segments) + 3, "t.fa", sid)


def _item(item_id: str, modality: str, seq: str, task: str = "t") -> EvalItem:
    return EvalItem(task, "test", item_id, "seq", modality, normalize(load_vocab(), modality, seq), "t.fa")


# ------------------------------------------------------------------------------- k-mers


def test_canonical_kmers_are_strand_free_and_u_equals_t():
    rng = np.random.default_rng(1)
    dna = "".join(rng.choice(list("ACGT"), 300))
    th = THRESHOLDS[NUCLEOTIDE]
    fwd = sorted(informative_kmers([dna], NUCLEOTIDE, th)[0].tolist())
    rev = sorted(informative_kmers([revcomp(dna)], NUCLEOTIDE, th)[0].tolist())
    rna = sorted(informative_kmers([dna.replace("T", "U")], NUCLEOTIDE, th)[0].tolist())
    assert fwd == rev == rna and len(fwd) == 300 - th.span + 1
    codes, _ = encode(["ACGTNACGT"], NUCLEOTIDE)
    _, _, valid = kmer_hashes(codes, Thresholds(seed="111", min_containment=0.5, min_shared=1), NUCLEOTIDE)
    assert valid.tolist() == [True, True, False, False, False, True, True, False]  # N and the separator
    with pytest.raises(ValueError, match="palindromic"):
        ContaminationIndex.build([], {NUCLEOTIDE: Thresholds(seed="1101", min_containment=0.1, min_shared=2)})


def test_low_complexity_mask():
    th = THRESHOLDS[NUCLEOTIDE]
    for repeat in ("A" * 40, "CA" * 20, "CAG" * 14, "GATA" * 10, "TTAGGG" * 7):
        codes, _ = encode([repeat], NUCLEOTIDE)
        assert low_complexity(codes[:-1], th).all(), repeat
    rng = np.random.default_rng(2)
    codes, _ = encode(["".join(rng.choice(list("ACGT"), 2000))], NUCLEOTIDE)
    assert low_complexity(codes[:-1], th).mean() < 0.01
    pth = THRESHOLDS["protein"]
    for repeat in ("QQQQQQQQ", "SGSGSGSG", "PEPPEPPEP"):
        codes, _ = encode([repeat], "protein")
        assert low_complexity(codes[:-1], pth).all(), repeat


def test_short_and_low_complexity_items_are_matched_exactly():
    items = [
        _item("pep", "protein", "MKWVTFL"),  # 3 k-mers < min_shared: exact search only
        _item("nt", "dna", "ACGTTGCAAGGCTTAC"),  # 1 seed window
        _item("polyq", "protein", "QQQQQQQQQQQQQQQQQQQQ"),  # fully masked
    ]
    index = ContaminationIndex.build(items)
    assert index.describe()["tasks"][0]["exact_only"] == 3
    hits = index.match_many([
        _sample("s1", ("protein", "MAAAMKWVTFLGGG")),
        _sample("s2", ("dna", "TTTT" + revcomp("ACGTTGCAAGGCTTAC") + "GGGG")),
        _sample("s3", ("rna", "UUUU" + "ACGUUGCAAGGCUUAC")),
        _sample("s4", ("protein", "MKWVTFAL"), ("protein", "QQQQQQQQQQQQQQQQQQQ")),
    ])
    got = [[(m.item_id, m.kind, m.strand) for m in ms] for ms in hits]
    assert got == [[("pep", "exact", "+")], [("nt", "exact", "-")], [("nt", "exact", "+")], []]
    # many short items: the rolling-hash path (same answers)
    rng = np.random.default_rng(3)
    peps = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 8)) for _ in range(80)]
    index = ContaminationIndex.build([_item(f"p{i}", "protein", p) for i, p in enumerate(peps)])
    ms = index.match_many([_sample(f"s{i}", ("protein", "MM" + p + "WW")) for i, p in enumerate(peps[:10])])
    assert [[m.item_id for m in x] for x in ms] == [[f"p{i}"] for i in range(10)]


# ------------------------------------------------------------------------- planted copies


def test_planted_contamination_is_all_caught(tmp_path, items, index, data_dir):
    """Copies of real test items planted into real training samples: RefSeq pair samples built
    with build_genbank_local (read back from their Parquet files) and single-modal samples."""
    out = tmp_path / "refseq"
    files = [str(data_dir / "genbank" / n) for n in ("NC_000932.gb", "NC_005816.gb", "NC_000866_phageT4.gbff", "emboss_gbpri1_human_noHLA.gb")]
    manifest = build_genbank_local(files, str(out))
    hosts = [Sample.from_row(r) for e in manifest["files"]["samples"] for r in pq.read_table(out / e["path"]).to_pylist()]
    singles = [s for s in iter_single(expand_spec(default_spec(data_dir)), new_accounting(), seq_len=1024) if isinstance(s, Sample)]
    hosts += singles[::20]
    planted, truth = plant_contamination(items, hosts, per_kind=PER_KIND, seed=7)
    acct = Accounting()
    matches = []
    result = list(decontaminate(planted, index, acct, matches=matches))
    acct.check()
    by_sample = defaultdict(set)
    best = {}
    for m in matches:
        by_sample[m.sample_id].add((m.task, m.split, m.item_id))
        best[(m.sample_id, m.task, m.split, m.item_id)] = m
    modality = {it.key: alphabet_of(it.modality) for it in items}
    recall = defaultdict(lambda: [0, 0])
    for t in truth:
        key = (t.kind, modality[(t.task, t.split, t.item_id)])
        recall[key][0] += (t.task, t.split, t.item_id) in by_sample[t.sample_id]
        recall[key][1] += 1
    print("\nplanted recall:", {f"{k}/{a[:4]}": f"{c}/{n}" for (k, a), (c, n) in sorted(recall.items())})
    expected = {(k, a) for k in PLANT_KINDS for a in (NUCLEOTIDE, "protein")} - {("revcomp", "protein"), ("embedded_rc_mut5", "protein")}
    assert set(recall) == expected
    assert all(c == n == PER_KIND for c, n in recall.values()), dict(recall)
    # every planted sample is removed whole, with a detail naming what it matched
    rejects = [r for r in result if isinstance(r, Reject)]
    assert {r.item_id for r in rejects} == {t.sample_id for t in truth}
    assert all(r.stage == STAGE and r.reason == REASON and " item " in r.detail for r in rejects)
    assert acct.stages[STAGE].n_in == len(planted) and acct.stages[STAGE].n_rejected == len(planted)
    # the evidence fits what was planted
    for t in truth:
        m = best[(t.sample_id, t.task, t.split, t.item_id)]
        if t.kind in ("exact", "embedded", "revcomp"):
            assert m.kind == "exact" and m.identity == 1.0 and m.coverage == 1.0
            assert m.strand == ("-" if t.kind == "revcomp" else "+")
        elif t.kind == "half":
            assert m.identity == 1.0 and 0.45 <= m.coverage <= 0.55
        elif t.kind in ("mut5", "mut10", "embedded_rc_mut5", "window_mut5"):
            assert m.identity >= 0.85, (t, m)
        if t.kind == "embedded_rc_mut5":
            assert m.strand == "-"


def test_decontamination_is_deterministic(index, real_samples):
    sub = real_samples[::5]
    runs = []
    for batch in (50_000, 1_000_000):
        acct = Accounting()
        matches = []
        out = list(decontaminate(sub, index, acct, matches=matches, batch_residues=batch))
        runs.append(([m.as_row() for m in matches], [x.as_row() for x in out], acct.to_dict()))
    assert runs[0] == runs[1]
    assert runs[0][0], "the bundled data holds near copies of some test items"


def test_false_positive_rate_on_unrelated_real_sequences(items, index, real_samples):
    """Flagged pairs are checked with an independent gapped local alignment (Biopython). A
    false positive is a flagged pair below 50 % aligned identity: not even a homolog by ESM's
    criterion, let alone a near copy. Bound: 1e-3 per checked sample (at 1e-3, a corpus loses
    0.1 % of its samples to false alarms)."""
    acct = Accounting()
    d = Decontaminator(index)
    kept = sum(isinstance(x, Sample) for x in d(real_samples, acct))
    flagged = len(real_samples) - kept
    by_key = {it.key: it for it in items}
    by_id = {s.sample_id: s for s in real_samples}
    aligners = {NUCLEOTIDE: PairwiseAligner(mode="local", match_score=2, mismatch_score=-3, open_gap_score=-5, extend_gap_score=-2),
                "protein": PairwiseAligner(mode="local", substitution_matrix=substitution_matrices.load("BLOSUM62"), open_gap_score=-11, extend_gap_score=-1)}
    identities = defaultdict(list)
    false_pos = []
    for m in d.matches:
        alphabet = alphabet_of(m.item_modality)
        norm = (lambda x: x.replace("U", "T")) if alphabet == NUCLEOTIDE else (lambda x: x)
        item = norm(by_key[(m.task, m.split, m.item_id)].sequence)
        seg = norm(by_id[m.sample_id].segments[m.segment][1])
        target = seg if m.strand == "+" else revcomp(seg)
        lo, hi = map(int, re.match(r"item\[(\d+):(\d+)\]", m.evidence).groups())
        window = item[max(0, lo - len(seg)) : hi + len(seg)]  # long items: the region around the match
        aln = aligners[alphabet].align(window, target)[0]
        same = sum(x == y for (a0, a1), (b0, b1) in zip(*aln.aligned) for x, y in zip(window[a0:a1], target[b0:b1]))
        identity = same / aln.length
        identities[alphabet].append(identity)
        if identity < FP_IDENTITY:
            false_pos.append((m, identity))
    rate = len(false_pos) / len(real_samples)
    print(f"\nchecked {len(real_samples)} samples, flagged {flagged} ({flagged / len(real_samples):.2%}), "
          f"{len(d.matches)} matches; aligned identity of flagged pairs: "
          + ", ".join(f"{a} min {min(v):.3f} median {np.median(v):.3f}" for a, v in sorted(identities.items()))
          + f"; false positives (< {FP_IDENTITY:.0%}): {len(false_pos)} (rate {rate:.1e})")
    assert rate <= FP_BOUND, false_pos[:5]
    assert flagged / len(real_samples) < 0.05  # homologs of the test families, not the corpus at large
    acct.check()


def test_central_dogma_test_genes_are_removed_from_the_refseq_spine(data_dir):
    """The hook end to end: the evaluation's Central Dogma test genes (DNA + protein) are
    registered; the RefSeq pair samples of those very genes are removed."""
    from bsm_data.central_dogma import build, eval_items

    path = str(data_dir / "genbank" / "NC_000932.gb")
    cd_items, _ = eval_items(build([path]))
    test_genes = {it.item_id.rsplit(":", 1)[0] for it in cd_items}
    index = ContaminationIndex.build(cd_items)
    acct = Accounting()
    samples = [s for s in genbank_file_to_samples(path, acct, seed=0, seq_len=1024, flank=100) if isinstance(s, Sample)]
    removed = {x.item_id for x in decontaminate(samples, index, acct) if isinstance(x, Reject)}
    of_test_genes = {s.sample_id for s in samples if s.group_id in test_genes}
    assert of_test_genes and of_test_genes <= removed
    acct.check()


def test_index_pickles_for_workers(index, real_samples):
    """Beam / multiprocessing ship the index to workers by pickling (the lookup table is rebuilt)."""
    import pickle

    sub = real_samples[::40]
    again = pickle.loads(pickle.dumps(index))
    assert [[m.as_row() for m in ms] for ms in again.match_many(sub)] == [[m.as_row() for m in ms] for ms in index.match_many(sub)]


def test_cli_decontaminates_a_build_directory(tmp_path, data_dir):
    from bsm_data import evalsets

    reg = tmp_path / "reg"
    fa = tmp_path / "genes.fa"
    # a real plasmid gene (NC_005816.ffn) registered as a test item: its RefSeq samples go
    records = [r for r in (data_dir / "genbank" / "NC_005816.ffn").read_text().split(">") if r]
    fa.write_text(">" + records[0])
    assert bsm(["registry", "register", "--registry", str(reg), "--task", "mine", "--split", "test", "--input", str(fa), "--modality", "dna"]) == 0
    build_genbank_local([str(data_dir / "genbank" / "NC_005816.gb")], str(tmp_path / "build"))
    assert bsm(["decontam", "--data", str(tmp_path / "build"), "--registry", str(reg), "--report", str(tmp_path / "out")]) == 0
    report = str(tmp_path / "out" / "report")
    rows = run_query(report, "SELECT DISTINCT task, item_id, min(identity) AS i FROM contamination GROUP BY ALL", fmt="csv").splitlines()[1:]
    assert len(rows) == 1 and rows[0].startswith(f"mine,{records[0].split()[0]},") and float(rows[0].split(",")[-1]) >= 0.99
    # the gene's pair samples are windows (CDS span + flanks + protein exceed 1,024 tokens): every one
    # goes; a neighbour's sample goes too when its DNA flank covers enough of the gene's end
    removed = set(run_query(report, "SELECT DISTINCT sample_id FROM contamination", fmt="csv").splitlines()[1:])
    gene = "NC_005816.1:YP_pPCP01"
    windows = run_query(str(tmp_path / "build"), f"SELECT sample_id FROM samples WHERE group_id = '{gene}'", fmt="csv").splitlines()[1:]
    assert len(windows) > 1 and set(windows) <= removed
    others = run_query(report, f"SELECT max(coverage) FROM contamination WHERE sample_id NOT LIKE 'refseq:{gene}:%'",
                       fmt="csv").splitlines()[1:]
    assert others == [""] or float(others[0]) < 0.2  # a flank's worth (100 nt of 1,023), not the gene


# --------------------------------------------------------------------------------- report


class _Sections(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.tags, self.text = [], Counter(), []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        if tag == "section":
            self.sections.append(dict(attrs).get("id"))

    def handle_data(self, data):
        self.text.append(data)


def test_report_renders_and_is_queryable(tmp_path, items, index, data_dir):
    acct = Accounting()
    hosts = [s for s in genbank_file_to_samples(str(data_dir / "genbank" / "NC_000932.gb"), acct, seed=0, seq_len=1024, flank=100) if isinstance(s, Sample)]
    planted, truth = plant_contamination(items, hosts, per_kind=2, kinds=("exact", "mut5"), seed=1)
    samples = hosts + planted
    matches = []
    out = list(decontaminate(samples, index, acct, matches=matches))
    summary = summarize(index, matches, acct)
    entry = write_report(str(tmp_path), matches, summary)
    report = tmp_path / "report"
    assert entry["path"] == "report/contamination/part-00000.parquet" and entry["rows"] == len(matches)
    table = pq.read_table(report / "contamination" / "part-00000.parquet")
    check_file_schema("contamination", table.schema, "report")
    removed = {r.item_id for r in out if isinstance(r, Reject)}
    assert set(table.column("sample_id").to_pylist()) == removed >= {t.sample_id for t in truth}

    page = (report / "contamination.html").read_text()
    p = _Sections()
    p.feed(page)
    p.close()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page  # self-contained
    assert p.sections == ["summary", "tasks", "examples", "removed"]
    text = " ".join(p.text)
    for t in summary["tasks"]:
        assert t["task"] in text
    assert p.tags["pre"] >= len({m.task for m in matches})  # an alignment excerpt per task at least
    for t in truth:
        assert t.sample_id in text  # provenance of each removed sample is listed
    md = (report / "contamination.md").read_text()
    for heading in ("# Decontamination report", "## Thresholds", "## Per task", "## Examples", "## Removed samples"):
        assert heading in md

    csv = run_query(str(report), "SELECT task, count(DISTINCT sample_id) AS n FROM contamination GROUP BY ALL ORDER BY task", fmt="csv")
    per_task = Counter()
    for m in {(m.task, m.sample_id) for m in matches}:
        per_task[m[0]] += 1
    assert dict((r.split(",")[0], int(r.split(",")[1])) for r in csv.splitlines()[1:]) == per_task
    assert sum(t["samples_removed"] for t in summary["tasks"] if t["task"] == "protstab") >= per_task["protstab"]
    assert summary["samples_checked"] == len(samples) and summary["samples_removed"] == len(removed)

    # no match at all still writes a queryable, empty report
    write_report(str(tmp_path / "empty"), [], summarize(index, [], None))
    assert run_query(str(tmp_path / "empty" / "report"), "SELECT count(*) FROM contamination", fmt="csv").splitlines()[1] == "0"
