"""GenBank -> GeneSequences on the real files in data/genbank (synthetic input only for edge cases).

Expectations come from independent sources wherever possible: NCBI's .faa/.ffn files, Biopython's
own parser and translator, and counts read straight from the flat-file text.
"""
from __future__ import annotations

import gzip
import io
import re
from functools import lru_cache
from pathlib import Path

import pytest
from Bio import SeqIO
from Bio.Seq import Seq

import bsm_data.genbank as genbank
from bsm_data.accounting import Accounting
from bsm_data.genbank import extract_genbank
from bsm_data.records import GeneSequences, Reject

GENBANK = Path(__file__).resolve().parents[1] / "data" / "genbank"
FILES = sorted(p for p in GENBANK.iterdir() if p.suffix not in (".faa", ".ffn"))


ENGINE = "auto"


@pytest.fixture(autouse=True, params=["python", "compiled"])
def engine(request):
    """Every test here runs on both GenBank paths (the compiled one only when it is built)."""
    global ENGINE
    if request.param == "compiled" and genbank._gbfast is None:
        pytest.skip("bsm_data._gbfast is not built")
    ENGINE = request.param
    yield request.param
    ENGINE = "auto"


def run(name: str, flank: int = 100):
    """(genes, rejects, accounting) for one file of data/genbank, cached across tests."""
    return _run(name, flank, ENGINE)


@lru_cache(maxsize=None)
def _run(name: str, flank: int, engine: str):
    acct = Accounting()
    items = list(extract_genbank(GENBANK / name, acct, flank=flank, engine=engine))
    genes = [x for x in items if isinstance(x, GeneSequences)]
    rejects = [x for x in items if isinstance(x, Reject)]
    assert len(genes) + len(rejects) == len(items)
    return genes, rejects, acct


def run_bytes(data: bytes, name: str = "input.gb", **kw):
    acct = Accounting()
    items = list(extract_genbank(io.BytesIO(data), acct, engine=ENGINE, **kw))
    acct.check()
    return [x for x in items if isinstance(x, GeneSequences)], [x for x in items if isinstance(x, Reject)], acct


def read_fasta(path: Path) -> list[tuple[str, str]]:
    out = []
    for block in path.read_text().split(">")[1:]:
        header, _, seq = block.partition("\n")
        out.append((header.strip(), "".join(seq.split())))
    return out


def by_protein_id(genes):
    return {g.attributes["protein_id"]: g for g in genes if g.attributes["protein_id"]}


def gene(genes, **attrs) -> GeneSequences:
    found = [g for g in genes if all(g.attributes.get(k) == v for k, v in attrs.items())]
    assert len(found) == 1, (attrs, len(found))
    return found[0]


def revcomp(s: str) -> str:
    return str(Seq(s).reverse_complement())


# --------------------------------------------------------------------------- every file


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_file_processes_and_reconciles(path):
    genes, rejects, acct = run(path.name)
    acct.check()
    assert set(acct.stages) >= {"parse", "extract"}
    text = path.read_bytes()
    entries = len(re.findall(rb"^//", text, re.M))
    parse = acct.stages["parse"]
    assert parse.n_in == entries and parse.n_out == entries and not parse.rejected
    extract = acct.stages["extract"]
    assert extract.n_out == len(genes) and extract.n_rejected == sum(r.stage == "extract" for r in rejects)
    for r in rejects:
        assert r.reason and r.detail and r.source == "refseq" and r.source_file == path.name
        assert r.record_id
    assert len({g.group_id for g in genes}) == len(genes), "group ids must be unique"
    for g in genes:
        assert g.source_file == path.name and g.group_id.startswith(g.record_id + ":")
        for s in (g.dna, g.rna, g.protein, g.cds):
            assert s is None or (s and s == s.upper())
        assert g.rna and "T" not in g.rna
        assert all(isinstance(v, (str, int, bool)) for v in g.attributes.values())
        for key in ("gene", "locus_tag", "protein_id", "transcript_id", "gene_id", "product", "transl_table",
                    "codon_start", "partial_5", "partial_3", "location", "rna_source", "translation_check"):
            assert key in g.attributes
        if g.kind == "CDS":
            assert g.protein and g.cds and g.attributes["translation_check"] in ("match", "mismatch", "translated")
        else:
            assert g.protein is None and g.attributes["rna_source"] == "feature"


# --------------------------------------------------------------------------- NCBI protein / CDS files


@pytest.mark.parametrize("stem", ["NC_005816", "NC_000932"])
def test_proteins_equal_ncbi_faa(stem):
    genes, _, _ = run(f"{stem}.gb")
    proteins = by_protein_id(genes)
    faa = read_fasta(GENBANK / f"{stem}.faa")
    assert faa
    for header, seq in faa:
        m = re.search(r"ref\|([^|]+)\|", header) or re.match(r"(\S+)", header)
        assert proteins[m.group(1)].protein == seq, m.group(1)
    assert len(faa) == len(proteins)  # and no protein without an NCBI counterpart


def test_cds_equal_ncbi_ffn():
    genes, _, _ = run("NC_005816.gb")
    by_location = {}
    for g in genes:
        m = re.fullmatch(r"(complement\()?(\d+)\.\.(\d+)\)?", g.attributes["location"])
        start, end = m.group(2), m.group(3)
        by_location[f"c{end}-{start}" if m.group(1) else f"{start}-{end}"] = g
    ffn = read_fasta(GENBANK / "NC_005816.ffn")
    assert len(ffn) == len(genes) == 10
    for header, seq in ffn:
        coords = re.search(r"\|:(c?\d+-\d+)", header).group(1)
        g = by_location[coords]
        assert g.cds == seq
        assert g.rna == seq.replace("T", "U")  # no mRNA features in RefSeq plasmid records
        assert g.dna[g.attributes["flank_5"] : len(g.dna) - g.attributes["flank_3"]] == seq


# --------------------------------------------------------------------------- translation tables


def test_mycoplasma_table4_alternative_starts_and_pseudo():
    genes, rejects, acct = run("NZ_LAEX_mycoplasma_mycoides.gbff")
    extract = acct.stages["extract"]
    assert extract.notes["translation_mismatch"] == 0
    assert {g.attributes["translation_check"] for g in genes if g.kind == "CDS"} == {"match"}
    assert {g.attributes["transl_table"] for g in genes if g.kind == "CDS"} == {4}
    alternative = [g for g in genes if g.kind == "CDS" and not g.attributes["partial_5"]
                   and g.attributes["codon_start"] == 1 and g.cds[:3] != "ATG"]
    assert len(alternative) > 100
    for g in alternative:
        assert g.cds[:3] in {"TTA", "TTG", "CTG", "ATT", "ATC", "ATA", "GTG"}
        assert g.protein[0] == "M" and Seq(g.cds[:3]).translate(table=4) != "M"
    # TGA is Trp in table 4: internal TGA codons must not read as stops
    assert any("TGA" in [g.cds[i : i + 3] for i in range(0, len(g.cds) - 3, 3)] for g in genes if g.cds)

    # pseudo rejects = CDS carrying /pseudo, counted independently with Biopython
    records = list(SeqIO.parse(GENBANK / "NZ_LAEX_mycoplasma_mycoides.gbff", "genbank"))
    pseudo_cds = sum("pseudo" in f.qualifiers for r in records for f in r.features if f.type == "CDS")
    assert pseudo_cds == 81
    assert extract.rejected == {"pseudo": 81}
    assert sum(r.reason == "pseudo" for r in rejects) == 81


def test_augustus_short_locus_lines_are_repaired_and_translated():
    genes, rejects, acct = run("augustus_dmel_genes.gb")
    assert not rejects
    assert acct.stages["parse"].n_out == 586 and acct.stages["parse"].notes["locus_repaired"] == 586
    assert len(genes) == 586
    for g in genes:
        assert g.attributes["translation_check"] == "translated"
        assert "*" not in g.protein
        assert g.protein == str(Seq(g.cds).translate()).rstrip("*")  # ends before the stop
    assert sum(g.attributes["location"].startswith(("join", "complement(join")) for g in genes) > 300


def test_emboss_human_external_references_and_translation_checks():
    genes, rejects, acct = run("emboss_gbpri1_human_noHLA.gb")
    external = [r for r in rejects if r.reason == "external_reference"]
    assert external
    for r in external:
        assert r.record_id == "X03487.1" and "X03487.1" in r.detail and "X03488.1" in r.detail
    # The pseudo CDS whose exons lie in Z84723.1 is counted as pseudo (checked first).
    assert {r.item_id for r in rejects if r.reason == "pseudo"} >= {"Z84723.2-001"}
    # Every /translation agrees with our translation, including RHBDF1's 3'-partial CDS whose
    # final incomplete codon NCBI translated (a naive codon-by-codon check flags it).
    assert acct.stages["extract"].notes["translation_mismatch"] == 0
    rhbdf1 = gene(genes, locus_tag="Z69719.3-010")
    assert rhbdf1.attributes["partial_3"] and len(rhbdf1.cds) % 3 == 2
    assert rhbdf1.attributes["translation_check"] == "match"
    # Isoforms whose mRNA has exons in another record fall back to the CDS for the RNA.
    assert acct.stages["extract"].notes["mrna_external"] == 3
    assert gene(genes, locus_tag="Z69719.3-001").attributes["rna_source"] == "CDS"


def test_rna_editing_is_a_noted_mismatch():
    genes, _, acct = run("NC_000932.gb")
    ndhd = gene(genes, gene="ndhD")
    assert ndhd.attributes["exception"] == "RNA editing"
    assert ndhd.attributes["translation_check"] == "mismatch"
    assert acct.stages["extract"].notes["translation_mismatch"] == 1
    assert ndhd.protein.startswith("M") and ndhd.cds.startswith("ACG")  # ACG edited to AUG


# --------------------------------------------------------------------------- strand, splicing, mRNA


def test_minus_strand_join_sequences():
    genes, _, _ = run("NC_000932.gb")
    g = gene(genes, locus_tag="ArthCp004")  # rps16, complement(join(5084..5283,6149..6188))
    assert g.attributes["location"] == "complement(join(5084..5283,6149..6188))"
    assert g.attributes["strand"] == -1 and g.attributes["rna_source"] == "CDS"
    rec = SeqIO.read(GENBANK / "NC_000932.gb", "genbank")
    feature = next(f for f in rec.features if f.type == "CDS" and f.qualifiers["locus_tag"] == ["ArthCp004"])
    assert g.cds == str(feature.location.extract(rec.seq)).upper()
    assert g.rna == g.cds.replace("T", "U")
    assert g.protein == str(Seq(g.cds).translate(table=11, cds=True))  # Biopython's CDS rules
    assert g.attributes["translation_check"] == "match"
    # dna: genomic span with the intron, 100 nt flanks, reverse complemented
    genome = str(rec.seq).upper()
    exon_5, exon_3 = revcomp(genome[6148:6188]), revcomp(genome[5083:5283])
    assert g.cds == exon_5 + exon_3
    i = g.dna.index(exon_5)
    assert i == g.attributes["flank_5"] == 100
    assert g.dna.index(exon_3, i + len(exon_5)) > i + len(exon_5)  # after the intron
    gene_feature = next(f for f in rec.features if f.type == "gene" and f.qualifiers["locus_tag"] == ["ArthCp004"])
    lo, hi = int(gene_feature.location.start), int(gene_feature.location.end)
    assert g.dna == revcomp(genome[lo - 100 : hi + 100])


def test_rna_comes_from_matching_mrna():
    genes, _, acct = run("cor6_6.gb")
    records = {r.id: r for r in SeqIO.parse(GENBANK / "cor6_6.gb", "genbank")}
    with_mrna = [g for g in genes if g.attributes["rna_source"] == "mRNA"]
    assert len(with_mrna) == acct.stages["extract"].notes["rna_from_mrna"] == 3
    for g in with_mrna:
        rec = records[g.record_id]
        mrnas = [f for f in rec.features if f.type == "mRNA" and f.qualifiers["gene"] == [g.attributes["gene"]]]
        assert len(mrnas) == 1
        expected = str(mrnas[0].location.extract(rec.seq).transcribe()).upper()
        assert g.rna == expected
        assert g.cds.replace("T", "U") in g.rna
    kin2 = gene(genes, gene="kin2")  # mRNA 44..>579 includes the 5' UTR
    assert kin2.rna.startswith(str(records["X62281.1"].seq[43:160]).upper().replace("T", "U"))


def test_flanks_are_clipped_at_linear_record_ends():
    genes, _, acct = run("cor6_6.gb")
    g = gene(genes, gene="cor6.6")  # CDS 50..250 in a linear record
    assert (g.attributes["flank_5"], g.attributes["flank_3"]) == (49, 100)
    assert len(g.dna) == 49 + 201 + 100
    assert acct.stages["extract"].notes["flank_clipped"] >= 1


# --------------------------------------------------------------------------- edge cases (synthetic)


def test_truncated_gzip_keeps_records_before_the_cut(tmp_path):
    name = "NZ_LAEX_mycoplasma_mycoides.gbff"
    full_genes, _, _ = run(name)
    packed = gzip.compress((GENBANK / name).read_bytes())
    path = tmp_path / (name + ".gz")
    path.write_bytes(packed[: len(packed) // 2])
    acct = Accounting()
    items = list(extract_genbank(path, acct, engine=ENGINE))
    acct.check()
    parse = acct.stages["parse"]
    assert 0 < parse.n_out < 8 and parse.rejected == {"truncated_file": 1}
    reject = next(x for x in items if isinstance(x, Reject) and x.stage == "parse")
    kept = [x for x in items if isinstance(x, GeneSequences)]
    last_id = kept[-1].record_id
    assert path.name in reject.detail and last_id in reject.detail
    assert reject.record_id.startswith("NZ_LAEX")  # the LOCUS name of the partial entry
    assert [g.group_id for g in kept] == [g.group_id for g in full_genes[: len(kept)]]


def test_gzip_is_detected_by_magic_bytes(tmp_path):
    path = tmp_path / "plasmid.gbk"  # no .gz suffix
    path.write_bytes(gzip.compress((GENBANK / "NC_005816.gb").read_bytes()))
    acct = Accounting()
    genes = [x for x in extract_genbank(path, acct, engine=ENGINE) if isinstance(x, GeneSequences)]
    assert len(genes) == 10 and genes[0].source_file == "plasmid.gbk"


def test_garbage_feature_tables():
    good = (GENBANK / "NC_005816.gb").read_bytes()
    start, end = good.index(b"FEATURES"), good.index(b"ORIGIN")
    lines = good[start:end].split(b"\n")
    # every feature-table line reversed: neither gb-io nor Biopython can read it
    scrambled = good[:start] + lines[0] + b"\n" + b"\n".join(l[::-1] for l in lines[1:]) + good[end:]
    genes, rejects, acct = run_bytes(scrambled + good)
    assert acct.stages["parse"].n_in == 2 and acct.stages["parse"].rejected == {"parse_error": 1}
    (reject,) = rejects
    assert reject.record_id == "NC_005816" and "gb-io" in reject.detail and "Biopython" in reject.detail
    assert len(genes) == 10  # the good copy after it is unaffected

    # a CDS location that is not a location at all
    broken = good.replace(b"     CDS             87..1109", b"     CDS             join(87..1109")
    genes, rejects, acct = run_bytes(broken)
    assert acct.stages["extract"].rejected == {"invalid_location": 1} and len(genes) == 9
    assert rejects[0].item_id == "YP_pPCP01"


def test_empty_and_blank_files():
    for data in (b"", b"\n\n   \n"):
        genes, rejects, acct = run_bytes(data)
        assert not genes and not rejects
        assert acct.stages["parse"].n_in == 0 and acct.stages["extract"].n_in == 0


def test_missing_final_terminator():
    good = (GENBANK / "NC_005816.gb").read_bytes()
    unterminated = good[: good.rindex(b"//")]
    genes, rejects, acct = run_bytes(good + unterminated)
    assert not rejects and len(genes) == 20 and acct.stages["parse"].notes["missing_terminator"] == 1
    # cut inside the sequence: a truncated record, rejected, and the one before it kept
    genes, rejects, acct = run_bytes(good + good[: len(good) - 500])
    assert len(genes) == 10 and [r.reason for r in rejects] == ["truncated_record"]
    assert "NC_005816.1" in rejects[0].detail  # names the last good record


def test_order_location_concatenates_parts_in_listed_order():
    good = (GENBANK / "NC_005816.gb").read_bytes()
    reference = by_protein_id(run("NC_005816.gb")[0])["NP_995567.1"]
    split = good.replace(b"     CDS             87..1109", b"     CDS             order(87..500,501..1109)")
    genes, _, acct = run_bytes(split)
    g = by_protein_id(genes)["NP_995567.1"]
    assert g.attributes["location"] == "order(87..500,501..1109)"
    assert acct.stages["extract"].notes["order_location"] == 1
    assert (g.cds, g.protein, g.dna) == (reference.cds, reference.protein, reference.dna)
    assert g.attributes["translation_check"] == "match"


def genbank_text(name: str, seq: str, features: str, circular: bool) -> bytes:
    rows = []
    for i in range(0, len(seq), 60):
        chunk = seq[i : i + 60].lower()
        rows.append(f"{i + 1:>9} " + " ".join(chunk[j : j + 10] for j in range(0, len(chunk), 10)))
    topology = "circular" if circular else "linear  "
    return (
        f"LOCUS       {name:<16} {len(seq):>11} bp    DNA     {topology} SYN 01-JAN-2000\n"
        f"DEFINITION  synthetic test record.\nACCESSION   {name}\nVERSION     {name}.1\n"
        f"FEATURES             Location/Qualifiers\n     source          1..{len(seq)}\n{features}"
        "ORIGIN\n" + "\n".join(rows) + "\n//\n"
    ).encode()


def test_circular_gene_across_the_origin():
    cds = "ATG" + "GCT" * 9 + "TAA"  # 33 nt: M A*9 stop
    filler = "C" * 87
    seq = cds[21:] + filler + cds[:21]  # the CDS starts at 100 and runs through the origin
    features = (
        "     gene            join(100..120,1..12)\n                     /locus_tag=\"W1\"\n"
        "     CDS             join(100..120,1..12)\n                     /locus_tag=\"W1\"\n"
        "                     /transl_table=11\n"
        "     CDS             complement(join(110..120,1..22))\n                     /locus_tag=\"W2\"\n"
    )
    genes, rejects, _ = run_bytes(genbank_text("SYNWRAP", seq, features, circular=True), flank=10)
    assert not rejects
    w1, w2 = genes
    assert w1.group_id == "SYNWRAP.1:W1" and w1.cds == cds and w1.protein == "M" + "A" * 9
    assert w1.dna == (seq + seq)[89:142]  # 10 nt wrapped flanks on both sides
    assert w1.attributes["translation_check"] == "translated"
    assert w2.cds == revcomp((seq + seq)[109:142])
    assert w2.dna == revcomp((seq + seq)[99:152])
    # with flanks longer than the genome allows, the region stops at one full circle
    genes, _, acct = run_bytes(genbank_text("SYNWRAP", seq, features, circular=True), flank=100)
    assert len(genes[0].dna) == len(seq) and acct.stages["extract"].notes["flank_clipped"] == 2
    # the same record declared linear: the gene is not colinear, so no genomic span
    genes, _, acct = run_bytes(genbank_text("SYNLIN", seq, features, circular=False), flank=10)
    assert genes[0].dna is None and genes[0].cds == cds
    assert acct.stages["extract"].notes["noncolinear_no_dna"] == 2


def test_isoforms_get_distinct_group_ids():
    genes, _, _ = run("emboss_gbinv1.gb")
    isoforms = [g for g in genes if g.attributes["locus_tag"] == "ZK637.8"]
    assert len(isoforms) == 6
    assert sorted(g.group_id for g in isoforms) == sorted(
        f"Z11115.3:ZK637.8|{g.attributes['protein_id']}" for g in isoforms
    )
    assert len({g.protein for g in isoforms}) == 6
    assert all(g.attributes["translation_check"] == "match" for g in isoforms)
    # one gene feature, so every isoform's genomic span covers it
    assert len({g.dna[g.attributes["flank_5"] :][:50] for g in isoforms}) == 1


def test_file_objects_are_left_open():
    handle = io.BytesIO((GENBANK / "NC_005816.gb").read_bytes())
    acct = Accounting()
    assert sum(isinstance(x, GeneSequences) for x in extract_genbank(handle, acct, engine=ENGINE)) == 10
    assert not handle.closed


@pytest.mark.parametrize("name", ["NC_000932.gb", "emboss_gbinv1.gb", "emboss_gbpri1_human_noHLA.gb",
                                  "cor6_6.gb", "extra_keywords.gb", "NC_005816.gb"])
def test_biopython_fallback_gives_the_same_rows(name):
    """The Biopython model feeds the same extraction: identical genes and rejects."""
    import gb_io

    from bsm_data import genbank

    text = (GENBANK / name).read_bytes()
    via_gbio, via_biopython = (genbank._Extractor(Accounting(), "refseq", name, 100) for _ in range(2))
    rows_gbio = [x for r in gb_io.load(io.BytesIO(text)) for x in via_gbio.record(genbank._record_from_gb(r, text))]
    rows_bio = [x for r in SeqIO.parse(io.StringIO(text.decode()), "genbank")
                for x in via_biopython.record(genbank._record_from_bio(r))]
    assert rows_gbio and rows_gbio == rows_bio
    assert via_gbio.stage.to_dict() == via_biopython.stage.to_dict()


def test_record_rejected_by_gbio_goes_through_biopython():
    good = (GENBANK / "NC_005816.gb").read_bytes()
    start = good.index(b"FEATURES")
    # a binary line before the feature table: gb-io refuses the record, Biopython skips the line
    odd = good[:start] + b"\xff\xfe\x00 binary\n" + good[start:]
    genes, rejects, acct = run_bytes(odd)
    assert acct.stages["parse"].notes["biopython_fallback"] == 1 and not rejects
    assert [(g.group_id, g.protein, g.dna) for g in genes] == [
        (g.group_id, g.protein, g.dna) for g in run("NC_005816.gb")[0]
    ]


def test_transl_except_selenocysteine_on_both_strands():
    cds = "ATGGCTTGAGCTTAA"  # M A (TGA -> Sec) A stop
    seq = "CC" + cds + "GG" + revcomp(cds) + "CC"  # plus copy at 3..17, minus copy at 20..34
    features = (
        "     CDS             3..17\n                     /locus_tag=\"P\"\n"
        "                     /transl_except=(pos:9..11,aa:Sec)\n"
        "     CDS             complement(20..34)\n                     /locus_tag=\"M\"\n"
        "                     /transl_except=(pos:complement(26..28),aa:Sec)\n"
        "                     /translation=\"MAUA\"\n"
    )
    genes, _, acct = run_bytes(genbank_text("SYNSEC", seq, features, circular=False), flank=2)
    plus, minus = genes
    assert plus.cds == minus.cds == cds
    assert plus.protein == "MAUA" and plus.attributes["translation_check"] == "translated"
    assert minus.protein == "MAUA" and minus.attributes["translation_check"] == "match"
    assert acct.stages["extract"].notes["transl_except"] == 2


def test_repeated_qualifiers_keep_the_first_value_on_both_parsers():
    """/product and /gene given twice keep the first value; gene_id is the first GeneID db_xref
    after other db_xrefs; every /transl_except is kept. gb-io and Biopython agree."""
    import gb_io

    from bsm_data import genbank

    cds = "ATGGCTTGAGCTTAA"  # M A (TGA -> Sec) A stop
    features = (
        "     CDS             3..17\n                     /locus_tag=\"R1\"\n"
        "                     /gene=\"first\"\n                     /gene=\"second\"\n"
        "                     /product=\"one\"\n                     /product=\"two\"\n"
        "                     /db_xref=\"UniProtKB:P1\"\n                     /db_xref=\"GeneID:11\"\n"
        "                     /db_xref=\"GeneID:22\"\n"
        "                     /transl_except=(pos:9..11,aa:Sec)\n"
        "                     /transl_except=(pos:12..14,aa:Trp)\n"
    )
    text = genbank_text("SYNREP", "CC" + cds + "CC", features, circular=False)
    genes, rejects, acct = run_bytes(text, flank=2)
    (g,) = genes
    assert not rejects
    assert (g.attributes["gene"], g.attributes["product"], g.attributes["gene_id"]) == ("first", "one", "11")
    assert g.protein == "MAUW" and acct.stages["extract"].notes["transl_except"] == 1
    via_gbio, via_biopython = (genbank._Extractor(Accounting(), "refseq", "", 2) for _ in range(2))
    rows_gbio = [x for r in gb_io.load(io.BytesIO(text)) for x in via_gbio.record(genbank._record_from_gb(r, text))]
    rows_bio = [x for r in SeqIO.parse(io.StringIO(text.decode()), "genbank")
                for x in via_biopython.record(genbank._record_from_bio(r))]
    assert rows_gbio == rows_bio == genes
