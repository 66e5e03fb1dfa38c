"""NCBI Gene pairs: gene2accession reader, derived file, accession join, local and Beam builds."""
import gzip
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from bsm_data.accounting import Accounting
from bsm_data.gene import (
    G2A_HEADER, STAGES, Gene2AccessionFormatError, GeneRows, Ref, Resolved, SeqItem, assemble, derive_gene2accession,
    fasta_accession, format_gene2accession, gene_refs, join_local, new_accounting, read_gene2accession, resolve,
    build_gene_local,
)
from bsm_data.genbank import _revcomp, extract_genbank
from bsm_data.query import connect
from bsm_data.records import GeneSequences, Reject
from bsm_data.shards import read_manifest
from bsm_data.vocab import decode_sample, load_vocab

from .conftest import digests, read_fasta

ROOT = Path(__file__).resolve().parents[1]
GENBANK_DIR = ROOT / "data" / "genbank"
DERIVED = ROOT / "data" / "gene" / "gene2accession.derived.gz"
SEQUENCES = sorted(
    str(p) for p in GENBANK_DIR.iterdir() if p.name.endswith((".gb", ".gbk", ".gbff", ".faa"))
)
GENEID_FILES = ["NC_000866_phageT4.gbff", "NC_000902_phageVT2.gbk", "NC_000932.gb", "NC_005816.gb"]

# The A1BG row of the real file (GeneID 1; NCBI Gene shows NC_000019.10 58345183..58353492,
# complement: the position columns are 0-based and inclusive).
A1BG = ("9606\t1\tREVIEWED\tNM_130786.4\t1653960645\tNP_570602.2\t-\tNC_000019.10\t-\t58345182\t58353491\t-\t"
        "Reference GRCh38.p14 Primary Assembly\t-\t-\tA1BG")
PROKARYOTE = "229193\t2767720\tREVIEWED\t-\t-\tNP_995567.1\t-\tNC_005816.1\t-\t86\t1108\t+\t-\t-\t-\tYP_pPCP01"
GENBANK_ONLY = "9606\t1\t-\tAB073611.1\t-\tBAB85000.1\t-\t-\t-\t-\t-\t?\t-\t-\t-\tA1BG"



def write_g2a(path: Path, lines: list[str], *, gz: bool = False, header: str = G2A_HEADER) -> Path:
    data = ("\n".join([header, *lines]) + "\n").encode()
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def read_all(path, **kw):
    acct = new_accounting()
    items = list(read_gene2accession(str(path), acct, **kw))
    acct.check()
    return items, acct


# --------------------------------------------------------------------------- the reader


@pytest.mark.parametrize("gz", [False, True])
def test_reader_real_layout_and_missing_values(tmp_path, gz):
    path = write_g2a(tmp_path / ("g2a.gz" if gz else "g2a"), [A1BG, PROKARYOTE, GENBANK_ONLY], gz=gz)
    items, acct = read_all(path)
    a1bg, prok, gbonly = items
    assert (a1bg.tax_id, a1bg.gene_id, a1bg.status, a1bg.rna, a1bg.rna_gi, a1bg.protein) == (
        9606, 1, "REVIEWED", "NM_130786.4", "1653960645", "NP_570602.2")
    assert (a1bg.genomic, a1bg.start, a1bg.end, a1bg.orientation) == ("NC_000019.10", 58345182, 58353491, "-")
    assert a1bg.assembly == "Reference GRCh38.p14 Primary Assembly" and a1bg.symbol == "A1BG"
    assert a1bg.protein_gi is None and a1bg.mature_peptide is None and a1bg.line == 2
    assert (gbonly.genomic, gbonly.start, gbonly.end, gbonly.status) == (None, None, None, None)
    assert [r.to_line() for r in items] == [A1BG, PROKARYOTE, GENBANK_ONLY]
    assert acct.stages["gene2accession"].to_dict()["in"] == 3 == acct.stages["gene2accession"].n_out


def test_reader_refuses_a_file_that_is_not_gene2accession(tmp_path):
    for header in ("", "tax_id\tGeneID", "#tax_id\tGeneID\tstatus\tRNA_nucleotide_accession.version"):
        path = write_g2a(tmp_path / "bad", [PROKARYOTE], header=header)
        with pytest.raises(Gene2AccessionFormatError, match="not gene2accession"):
            read_all(path)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(Gene2AccessionFormatError):
        read_all(tmp_path / "empty")


def test_reader_quarantines_malformed_lines_with_line_numbers(tmp_path):
    f = PROKARYOTE.split("\t")

    def edit(i, v):
        g = list(f)
        g[i] = v
        return "\t".join(g)

    bad = {
        3: "\t".join(f[:15]),  # 15 columns
        4: edit(1, "27677x0"),  # GeneID
        5: edit(0, "human"),  # tax_id
        6: edit(9, "86.5"),  # start
        7: edit(10, "-"),  # only one position
        8: edit(11, "+1"),  # orientation
        9: edit(7, "-"),  # positions without a genomic accession
        10: edit(15, ""),  # empty column
        11: "",  # blank line
    }
    lines = [PROKARYOTE] + [bad[n] for n in sorted(bad)] + ["# a comment", PROKARYOTE]
    items, acct = read_all(write_g2a(tmp_path / "g2a", lines))
    rows = [i for i in items if not isinstance(i, Reject)]
    rejects = [i for i in items if isinstance(i, Reject)]
    assert [r.line for r in rows] == [2, 13]
    assert [r.item_id for r in rejects] == [f"line:{n}" for n in sorted(bad)]
    assert {r.stage for r in rejects} == {"gene2accession"} and {r.reason for r in rejects} == {"malformed_line"}
    for r in rejects:
        assert r.detail.startswith(f"g2a line {r.item_id[5:]}: ")
    assert "15 columns" in rejects[0].detail and "GeneID" in rejects[1].detail and "orientation" in rejects[5].detail
    stage = acct.stages["gene2accession"]
    assert (stage.n_in, stage.n_out, stage.n_rejected, stage.notes["comment_lines"]) == (11, 2, 9, 1)


def test_reader_truncated_gzip_and_tax_filter(tmp_path):
    data = gzip.compress(("\n".join([G2A_HEADER, *[PROKARYOTE] * 2000, A1BG]) + "\n").encode(), mtime=0)
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    items, acct = read_all(tmp_path / "cut.gz")
    assert isinstance(items[-1], Reject) and items[-1].reason == "truncated_file"
    assert all(not isinstance(i, Reject) for i in items[:-1])
    items, acct = read_all(write_g2a(tmp_path / "g2a", [A1BG, PROKARYOTE, GENBANK_ONLY]), tax_ids=[229193])
    assert [i.gene_id for i in items] == [2767720]
    assert acct.stages["gene2accession"].n_in == 1 and acct.stages["gene2accession"].notes["other_tax_id"] == 2


# --------------------------------------------------------------------------- the derived file


def test_derived_file_is_current_deterministic_and_round_trips():
    rows, stats = derive_gene2accession([p for p in SEQUENCES if not p.endswith(".faa")])
    raw = DERIVED.read_bytes()
    assert raw[4:8] == b"\0\0\0\0", "gzip mtime must be 0 for deterministic bytes"
    text = gzip.decompress(raw)
    assert format_gene2accession(rows) == text, "data/gene/gene2accession.derived.gz is stale: rerun scripts/derive_gene2accession.py"
    read, acct = read_all(DERIVED)
    assert [r.to_line() for r in read] == text.decode().splitlines()[1:]
    assert stats["gene_ids"] == len({r.gene_id for r in read}) == len(read) == 514
    by_gene = {r.gene_id: r for r in read}
    # LocusLink ids are GeneIDs: noref.gb (an mRNA RefSeq, LocusID:1783) relates RNA and protein only
    assert by_gene[1783].to_line() == "9606\t1783\tPROVISIONAL\tNM_006141.1\t-\tNP_006132.1\t-\t-\t-\t-\t-\t?\t-\t-\t-\tDNCLI2"
    # trans-spliced rps12 has no single genomic span
    assert by_gene[844801].orientation == "?" and by_gene[844801].symbol == "rps12"


# --------------------------------------------------------------------------- the join, pure


def test_fasta_accessions():
    assert fasta_accession("gi|7525080|ref|NP_051037.1|") == ("NP_051037.1", "")
    assert fasta_accession("ref|NP_051037.1|") == ("NP_051037.1", "")
    assert fasta_accession("sp|P04217|A1BG_HUMAN") == ("P04217", "")
    assert fasta_accession("NP_051037.1") == ("NP_051037.1", "")
    assert fasta_accession("ref|NC_005816.1|:87-1109") == (None, "subsequence")
    assert fasta_accession("NC_005816.1:c1109-87") == (None, "subsequence")


def ref(column, acc, start=None, end=None, orientation=None, gene_id=7):
    return Ref(gene_id, column, acc, start, end, orientation, 2, "g2a")


def test_resolve_spans_versions_and_failures():
    seq = bytes((b"ACGT" * 250)[:1000])
    circ = SeqItem("NC_1.1", "record", "DNA", seq, True, "a.gb", 0)
    lin = SeqItem("NC_1.1", "record", "DNA", seq, False, "a.gb", 0)
    acct = new_accounting()
    wrap = [ref("genomic", "NC_1.1", 950, 49, "+"), ref("genomic", "NC_1.1", 950, 49, "-"), ref("genomic", "NC_1.1", 10, 19, "+")]
    got = {o[1].ref.key(): o[1] for o in resolve("NC_1", wrap, [circ], acct, flank=100)}
    assert got[wrap[0].key()].sequence == (seq[850:] + seq[:150]).decode()  # across the origin, flanks wrap
    assert got[wrap[1].key()].sequence == bytes(_revcomp(seq[850:] + seq[:150])).decode()  # minus strand: 5'->3'
    assert got[wrap[2].key()].sequence == (seq[910:] + seq[:120]).decode()  # the 5' flank wraps too
    assert (got[wrap[1].key()].flank_5, got[wrap[1].key()].flank_3) == (100, 100)
    out = resolve("NC_1", [ref("genomic", "NC_1.1", 950, 49, "+"), ref("genomic", "NC_1.1", 10, 19, "+"),
                           ref("genomic", "NC_1.1", 10, 1000, "+"), ref("genomic", "NC_1.1", 10, 19, "?")], [lin], acct)
    ok = [o for o in out if not isinstance(o, Reject)]
    assert [o[1].sequence for o in ok] == [seq[:120].decode()]  # clipped 5' flank on a linear sequence
    assert sorted(r.reason for r in out if isinstance(r, Reject)) == ["position_out_of_bounds"] * 2 + ["unknown_orientation"]
    prot = SeqItem("NP_1.1", "protein", "protein", b"MKV*", False, "a.faa", 3)
    out = resolve("NP_1", [ref("protein", "NP_1.1"), ref("protein", "NP_1.2"), ref("rna", "NP_1.1")], [prot], acct)
    assert out[0][1].sequence == "MKV"
    assert [r.detail.split(": ", 1)[1] for r in out[1:]] == [
        "not in the sequence sources; other versions present: NP_1.1",
        "found only as a protein (protein) in a.faa, not usable as rna"]
    acct.check()
    assert acct.stages["join"].rejected["unresolved_accession"] == 2


def test_isoform_choice_prefers_a_transcript_with_its_product():
    gene = GeneRows(7, 9606, "X", "", "g2a", 2, (("NM_1.1", "NP_1.1", None), ("NM_2.1", "NP_2.1", None), ("NM_3.1", None, None)))
    resolved = [Resolved(ref("rna", a), "ACGU", "f") for a in ("NM_1.1", "NM_2.1", "NM_3.1")] + \
               [Resolved(ref("protein", a), "MKV", "f") for a in ("NP_1.1", "NP_2.1")]
    picks = set()
    for seed in range(20):
        acct = new_accounting()
        g = assemble(gene, list(reversed(resolved)) if seed % 2 else resolved, acct, seed=seed)
        pair = (g.attributes["rna_accession"], g.attributes["protein_accession"])
        assert pair in {("NM_1.1", "NP_1.1"), ("NM_2.1", "NP_2.1")}
        assert assemble(gene, resolved, new_accounting(), seed=seed).attributes == g.attributes  # order-free
        picks.add(pair)
    assert len(picks) == 2, "the seeded choice should visit both isoforms over 20 seeds"
    # without a row holding both, RNA and protein are drawn independently (and noted)
    acct = new_accounting()
    g = assemble(GeneRows(8, 1, "", "", "g2a", 2, (("NM_3.1", None, None), (None, "NP_1.1", None))), resolved, acct, seed=0)
    assert (g.rna, g.protein, g.dna) == ("ACGU", "MKV", None) and acct.stages["gene"].notes["rna_protein_different_rows"] == 1


def test_gene_refs_deduplicate_and_keep_the_first_line():
    rows, _ = read_all(DERIVED)
    one = [r for r in rows if r.gene_id == 2767720][0]
    again = type(one)(**{**one.__dict__, "line": 900})
    summary, refs = gene_refs(one.gene_id, [again, one])
    assert [(r.column, r.accession, r.line) for r in refs] == [("genomic", "NC_005816.1", one.line), ("protein", one.protein, one.line)]
    assert summary.first_line == one.line and len(summary.products) == 1


# --------------------------------------------------------------------------- the join on real data


@pytest.fixture(scope="module")
def joined():
    acct = new_accounting()
    items = list(join_local(str(DERIVED), SEQUENCES, acct, seed=0))
    return {i.group_id: i for i in items if isinstance(i, GeneSequences)}, [i for i in items if isinstance(i, Reject)], acct


def test_known_genes_check_out(joined):
    genes, rejects, _ = joined
    faa = {h.split("|")[3]: s for name in ("NC_005816.faa", "NC_000932.faa") for h, s in read_fasta(GENBANK_DIR / name)}
    ffn = [(h, s) for h, s in read_fasta(GENBANK_DIR / "NC_005816.ffn")]
    checked = 0
    for g in genes.values():
        acc = g.attributes["protein_accession"]
        if acc in faa:
            assert g.protein == faa[acc], g.group_id
            checked += 1
    assert checked == len(faa) == 95  # every protein of both .faa files is some GeneID's protein, letter for letter
    # every NC_005816 CDS (the .ffn) lies inside its gene's DNA span, oriented
    nc5816 = [g for g in genes.values() if g.record_id == "NC_005816.1"]
    assert len(nc5816) == 10
    for h, cds in ffn:
        assert sum(cds in g.dna for g in nc5816) == 1, h
    # the DNA span is exactly what the RefSeq extraction makes for the same GeneID (span + 100 nt flanks)
    refseq = {}
    for name in GENEID_FILES:
        for g in extract_genbank(str(GENBANK_DIR / name), Accounting()):
            if isinstance(g, GeneSequences) and g.attributes["gene_id"]:
                refseq.setdefault(f"GeneID:{g.attributes['gene_id']}", g)
    with_dna = [g for g in genes.values() if g.dna]
    assert len(with_dna) == 511 and all(g.dna == refseq[g.group_id].dna for g in with_dna)
    # an mRNA RefSeq: the record is the RNA, its CDS the protein, no genomic span
    dncli2 = genes["GeneID:1783"]
    noref = read_fasta_like_genbank_sequence(GENBANK_DIR / "noref.gb")
    assert dncli2.rna == noref.replace("T", "U") and dncli2.protein.startswith("MAPVGVEKKLLLGPNG") and dncli2.dna is None
    # trans-spliced rps12: no DNA, rejected at the join with the reason
    assert genes["GeneID:844801"].dna is None
    assert {(r.reason, r.item_id) for r in rejects if r.stage == "join"} == {
        ("unknown_orientation", "GeneID:844801:genomic"), ("unknown_orientation", "GeneID:1466250:genomic")}


def read_fasta_like_genbank_sequence(path: Path) -> str:
    text = path.read_text()
    body = text[text.index("\nORIGIN") + 7: text.rindex("//")]
    return "".join(c for c in body if c.isalpha()).upper()


# --------------------------------------------------------------------------- builds


@pytest.fixture(scope="module")
def local_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("gene_local")
    manifest = build_gene_local(str(DERIVED), SEQUENCES, str(out), seed=0, num_shards=2)
    return out, manifest


def test_counts_reconcile_and_rejects_match_the_counters(local_build, joined):
    out, manifest = local_build
    acct = Accounting.from_dict(manifest["accounting"])
    acct.check()
    assert list(manifest["accounting"]) == [*STAGES, "pack"]
    a = manifest["accounting"]
    assert a["gene2accession"]["in"] == a["gene2accession"]["out"] == 514
    assert a["gene"]["in"] == a["gene"]["out"] == a["pair"]["in"] == 514
    assert a["join"]["in"] == a["join"]["out"] + sum(a["join"]["rejected"].values()) == 971
    assert a["pair"]["out"] > 450 and a["pair"]["rejected"]["single_modality"] >= 57  # tRNA/rRNA genes: DNA only
    con = connect(str(out))
    on_disk = dict(con.execute("SELECT stage || '/' || reason, count(*) FROM rejects GROUP BY ALL").fetchall())
    counted = {f"{s}/{r}": n for s, c in a.items() for r, n in c["rejected"].items()}
    assert on_disk == counted
    assert con.execute("SELECT count(*) FROM rejects WHERE reason = '' OR detail = ''").fetchone()[0] == 0
    assert manifest["sources"]["gene"]["samples"] == manifest["totals"]["documents"] == a["pack"]["in"]


def test_samples_are_gene_pairs(local_build):
    out, manifest = local_build
    con = connect(str(out))
    rows = con.execute("SELECT source, group_id, segments FROM samples").fetchall()
    assert rows and {r[0] for r in rows} == {"gene"}
    for _, group_id, segments in rows:
        modalities = [s["modality"] for s in segments]
        assert group_id.startswith("GeneID:") and len(modalities) >= 2 and len(set(modalities)) == len(modalities)
    assert con.execute("SELECT count(*) FROM segments WHERE modality = 'rna'").fetchone()[0] >= 1  # DNCLI2
    vocab = load_vocab()
    row = con.execute("SELECT tokens, doc_starts FROM shards LIMIT 1").fetchone()
    assert decode_sample(vocab, row[0][row[1][0]:])[0][0] in ("dna", "rna", "protein")


def test_unresolvable_accessions_are_counted_and_kept(tmp_path):
    rows = gzip.decompress(DERIVED.read_bytes()).decode().splitlines()
    extra = [
        "229193\t99999991\t-\t-\t-\tNP_999999999.1\t-\t-\t-\t-\t-\t?\t-\t-\t-\tfake1",  # protein nobody has
        "229193\t2767720\t-\tNM_999999999.1\t-\tNP_995567.1\t-\tNC_005816.1\t-\t86\t1108\t+\t-\t-\t-\tYP_pPCP01",  # RNA nobody has
        "229193\t99999992\t-\t-\t-\t-\t-\tNC_005816.1\t-\t9000\t9700\t+\t-\t-\t-\tfake2",  # past the end (9609 nt)
    ]
    g2a = write_g2a(tmp_path / "g2a.tsv", rows[1:] + extra)
    seqs = [str(GENBANK_DIR / n) for n in ("NC_005816.gb", "NC_005816.faa")]
    manifest = build_gene_local(str(g2a), seqs, str(tmp_path / "out"), tax_ids=[229193])
    a = manifest["accounting"]
    assert a["gene2accession"]["in"] == 13 and a["gene2accession"]["notes"]["other_tax_id"] == len(rows) - 1 - 10
    assert a["join"]["rejected"] == {"unresolved_accession": 2, "position_out_of_bounds": 1}
    found = connect(str(tmp_path / "out")).execute(
        "SELECT record_id, item_id, detail FROM rejects WHERE stage = 'join' ORDER BY record_id").fetchall()
    assert [(r[0], r[1]) for r in found] == [
        ("NC_005816.1", "GeneID:99999992:genomic"), ("NM_999999999.1", "GeneID:2767720:rna"),
        ("NP_999999999.1", "GeneID:99999991:protein")]
    assert "rna accession NM_999999999.1" in found[1][2] and f"line {len(rows) + 2}" in found[1][2] and "not in the sequence sources" in found[1][2]
    pair = connect(str(tmp_path / "out")).execute(
        "SELECT item_id FROM rejects WHERE stage = 'pair' AND reason = 'single_modality'").fetchall()
    assert {("GeneID:99999991",), ("GeneID:99999992",)} <= set(pair)  # nothing resolvable -> single_modality
    Accounting.from_dict(a).check()


def test_local_and_beam_one_and_two_workers_are_byte_identical(local_build, tmp_path):
    out, _ = local_build
    for workers in (1, 2):
        dst = tmp_path / f"beam{workers}"
        subprocess.run(
            [sys.executable, "-m", "bsm_data.cli", "data", "gene", "--output", str(dst), "--num-shards", "2", "--workers", str(workers),
             "--gene2accession", str(DERIVED), *[a for p in SEQUENCES for a in ("--sequences", p)]],
            check=True, cwd=ROOT, capture_output=True,
        )
        assert digests(dst) == digests(out), f"beam with {workers} worker(s) differs from the local engine"
    assert read_manifest(str(dst))["pipeline"]["name"] == "gene"


def test_cli_parser_and_lazy_beam_import():
    import argparse

    from pipelines.gene import add_gene_parser

    parser = argparse.ArgumentParser()
    add_gene_parser(parser.add_subparsers(dest="command"))
    args, rest = parser.parse_known_args(
        ["gene", "--output", "o", "--tax-id", "9606", "3702", "--tax-id", "10665", "--runner", "DataflowRunner", "--project", "p"])
    assert args.tax_ids == [9606, 3702, 10665] and args.beam_passthrough and rest == ["--runner", "DataflowRunner", "--project", "p"]
    assert (args.engine, args.num_shards, args.seed, args.seq_len, args.flank) == ("beam", 1, 0, 1024, 100)
    code = ("import sys, pipelines.gene; assert not {'apache_beam', 'pyarrow', 'bsm_data.gene'} & set(sys.modules); "
            "pipelines.gene.Resolve; assert 'apache_beam' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
