"""bsm_data/csrc/parse.c (the compiled GenBank reader) against the gb-io path it replaces.

Whenever ``_gbfast._debug_parse`` returns a model it must equal what
``bsm_data.genbank._record_from_gb`` builds from gb-io for the same entry; when gb-io cannot
parse an entry, the C reader must decline it (None) so the Python path keeps handling it.
"""
from __future__ import annotations

import io
import random
from pathlib import Path

import gb_io
import pytest

from bsm_data import genbank

_gbfast = pytest.importorskip(
    "bsm_data._gbfast", reason="bsm_data._gbfast is not built (python setup.py build_ext --inplace)"
)

DATA = Path(__file__).resolve().parent.parent / "data" / "genbank"
FILES = sorted(p for p in DATA.iterdir() if p.suffix in (".gb", ".gbk", ".gbff"))
REFSEQ = [
    "NC_000866_phageT4.gbff",
    "NC_000902_phageVT2.gbk",
    "NZ_LAEX_mycoplasma_mycoides.gbff",
    "NC_000932.gb",
    "NC_005816.gb",
]


def _entries(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return [data[s:e] for s, e in genbank._entries(data)]


def _gb_model(entry: bytes):
    """The Python path's model of one entry, or None when gb-io rejects it."""
    try:
        recs = gb_io.load(io.BytesIO(entry))
    except Exception:
        return None
    if len(recs) != 1:
        return None
    return genbank._record_from_gb(recs[0], entry)


def _norm_q(q: dict) -> dict:
    """Values as bsm_data.genbank uses them: a product with a line break has its words joined
    by single spaces, a translation loses its whitespace (C gives multi-line values raw)."""
    out = dict(q)
    product, translation = out.get("product"), out.get("translation")
    if isinstance(product, str) and "\n" in product:
        out["product"] = " ".join(product.split())
    if isinstance(translation, str) and (" " in translation or "\n" in translation):
        out["translation"] = "".join(translation.split())
    return out


def _compare(c_model, py) -> None:
    """Assert the C model equals the gb-io model (as _debug_parse and _record_from_gb give them)."""
    rid, seq, circular, feats = c_model
    assert rid == py.id
    assert seq == py.seq
    assert circular == py.circular
    assert len(feats) == len(py.features)
    for (index, kind, parts, op, q), f in zip(feats, py.features):
        assert f.error is None, (index, kind, f.error)
        assert (index, kind) == (f.index, f.kind)
        assert parts == [tuple(p) for p in f.parts], (index, kind)
        assert op == f.operator, (index, kind)
        assert _norm_q(q) == _norm_q(f.q), (index, kind)


def _check(entry: bytes):
    """(accepted, model or None); asserts agreement when C accepts."""
    c_model = _gbfast._debug_parse(entry)
    if c_model is None:
        return False, None
    py = _gb_model(entry)
    assert py is not None, "C accepted an entry gb-io cannot parse"
    _compare(c_model, py)
    return True, c_model


# ----------------------------------------------------------------------------- bundled files


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_bundled_files_agree(path: Path):
    """Every entry: C declines it, or gives gb-io's model; entries gb-io fails on are declined."""
    entries = _entries(path)
    accepted = cds_total = cds_accepted = gbio_failed = 0
    for entry in entries:
        py = _gb_model(entry)
        c_model = _gbfast._debug_parse(entry)
        if py is None:
            gbio_failed += 1
            assert c_model is None, "C accepted an entry gb-io cannot parse"
            continue
        n_cds = sum(f.kind == "CDS" for f in py.features)
        cds_total += n_cds
        if c_model is not None:
            _compare(c_model, py)
            accepted += 1
            cds_accepted += n_cds
    print(f"{path.name}: {accepted}/{len(entries)} entries ({gbio_failed} gb-io failures), "
          f"{cds_accepted}/{cds_total} CDS accepted")
    if path.name in REFSEQ:
        assert accepted == len(entries), f"{path.name}: RefSeq entries declined"


def test_acceptance_summary():
    """Every RefSeq entry is taken by the fast path (the legacy files mostly are not: old
    LOCUS layouts, remote accessions in locations, short AUGUSTUS LOCUS lines)."""
    rows = []
    for path in FILES:
        entries = _entries(path)
        taken = [e for e in entries if _gbfast._debug_parse(e) is not None]
        cds = sum(e.count(b"\n     CDS  ") for e in entries)
        cds_taken = sum(e.count(b"\n     CDS  ") for e in taken)
        rows.append((path.name, len(taken), len(entries), cds_taken, cds))
    print()
    for name, t, n, ct, c in rows:
        print(f"{name}: {t}/{n} entries, {ct}/{c} CDS")
    print(f"all: {sum(r[1] for r in rows)}/{sum(r[2] for r in rows)} entries, "
          f"{sum(r[3] for r in rows)}/{sum(r[4] for r in rows)} CDS")
    for name, t, n, _, _ in rows:
        if name in REFSEQ:
            assert t == n, name


# ----------------------------------------------------------------------------- synthetic entries

HEAD = b"""LOCUS       TEST                      60 bp    DNA     linear   BCT 01-JAN-2000
DEFINITION  Synthetic test entry.
ACCESSION   TEST
VERSION     TEST.1
KEYWORDS    .
SOURCE      synthetic
  ORGANISM  synthetic
            Bacteria.
FEATURES             Location/Qualifiers
     source          1..60
                     /organism="synthetic"
                     /mol_type="genomic DNA"
"""
SEQ = b"""ORIGIN      
        1 atgaaacccg ggtttaaacc cgggtttaaa cccgggttta aacccgggtt taaacccggg
//
"""


def entry(features: bytes, *, head: bytes = HEAD, seq: bytes = SEQ) -> bytes:
    return head + features + seq


def cds(loc: bytes, *quals: bytes) -> bytes:
    out = b"     CDS             " + loc + b"\n"
    for q in quals:
        out += b"                     " + q + b"\n"
    return out


ACCEPTED = {
    "plain": entry(cds(b"1..30", b'/gene="abc"', b'/locus_tag="T_1"', b"/codon_start=1",
                       b"/transl_table=11", b'/product="a protein"', b'/protein_id="P1.1"',
                       b'/db_xref="GI:1"', b'/db_xref="GeneID:42"', b'/db_xref="GeneID:43"',
                       b'/translation="MKPGFKPGFK"')),
    "complement_join": entry(cds(b"complement(join(1..10,21..30))", b'/gene="x"')),
    "join_complements": entry(cds(b"join(complement(21..30),complement(1..10))", b'/gene="x"')),
    "order": entry(cds(b"order(1..10,21..30)", b'/gene="x"')),
    "order_single_part": entry(cds(b"order(1..10)", b'/gene="x"')),
    "nested": entry(cds(b"join(1..3,complement(join(5..7,9..12)),order(20..22,25..30))")),
    "partial": entry(cds(b"<1..>30", b'/gene="x"')),
    "partial_complement": entry(cds(b"complement(<3..>60)")),
    "single_base": entry(b"     gene            5\n                     /gene=\"x\"\n"),
    "multiline_location": entry(cds(b"join(1..5,\n                     10..20,\n                     30..40)",
                                    b'/gene="x"')),
    "multiline_location_split_number": entry(cds(b"join(1..5,1\n                     0..20)")),
    "multiline_product_translation": entry(cds(
        b"1..30",
        b'/product="a rather long product name that goes on\n                     over a line"',
        b'/translation="MKPGFKPGF\n                     KPGF\n                       KPG"')),
    "flags": entry(cds(b"1..30", b"/pseudo", b"/ribosomal_slippage", b"/trans_splicing", b'/gene="g"')),
    "exception_empty": entry(cds(b"1..30", b'/exception=""', b'/pseudogene="unknown"')),
    "first_value_wins": entry(cds(b"1..30", b"/gene", b'/gene="second"', b'/product="p1"',
                                  b'/product="p2\n                     spans"')),
    "bare_values": entry(cds(b"1..30", b"/gene=abc", b"/codon_start=2", b"/transl_table=")),
    "rna_kinds": entry(
        b"     gene            1..30\n                     /gene=\"g\"\n"
        b"     mRNA            join(1..10,15..30)\n                     /gene=\"g\"\n"
        b"     tRNA            complement(31..40)\n                     /product=\"tRNA-Ala\"\n"
        b"     rRNA            41..50\n     ncRNA           51..60\n"
        b"     tmRNA           1..60\n     misc_RNA        2..60\n     precursor_RNA   3..60\n"
        b"     misc_feature    1..60\n                     /note=\"multi\n                     /line\n"
        b"                     note\"\n"
        b"     repeat_region   join(1..5, 8..9)\n                     /rpt_type=direct\n"
        b"                     more\n"),
    "unwanted_values_anything": entry(cds(b"1..30", b'/note="has ""quotes"" and\n                     lines"',
                                          b'/inference="x"', b'/gene="g"')),
    "other_feature_odd_location": entry(b"     misc_feature    X12345.1:10..20\n     gap             10.20\n"
                                        + cds(b"1..30")),
    "upper_case_sequence": entry(cds(b"1..30"), seq=SEQ.upper()),
    "mixed_case_sequence": entry(cds(b"1..30"), seq=SEQ.replace(b"atgaaacccg", b"AtGaAaCcCg")),
    "circular": entry(cds(b"join(50..60,1..10)"),
                      head=HEAD.replace(b"linear  ", b"circular")),
    "no_version": entry(cds(b"1..30"), head=HEAD.replace(b"VERSION     TEST.1\n", b"")),
    "no_accession_no_version": entry(
        cds(b"1..30"), head=HEAD.replace(b"VERSION     TEST.1\n", b"").replace(b"ACCESSION   TEST\n", b"")),
    "version_extra": entry(cds(b"1..30"), head=HEAD.replace(b"TEST.1\n", b"TEST.7  GI:123\n")),
    "leading_blank_lines": b"\n   \n" + entry(cds(b"1..30")),
    "no_features": HEAD.split(b"FEATURES")[0] + SEQ,
    "empty_feature_table": HEAD.split(b"     source")[0] + SEQ,
    "base_count": entry(cds(b"1..30"), seq=b"BASE COUNT       15 a     15 c     15 g     15 t\n" + SEQ),
    "no_final_newline": entry(cds(b"1..30"))[:-1],
    "ss_moltype": entry(cds(b"1..30"), head=HEAD.replace(b"DNA     linear", b"ss-RNA  linear")),
    "gene_id_bare": entry(cds(b"1..30", b"/db_xref=GeneID:7")),
    "contig": entry(cds(b"1..30"), seq=b"CONTIG      join(X1.1:1..60)\n" + SEQ),
    "contig_multiline": entry(cds(b"1..30"), seq=b"CONTIG      join(X1.1:1..30,\n            X2.1:1..30)\n" + SEQ),
    "contig_without_features": HEAD.split(b"FEATURES")[0] + b"CONTIG      join(X1.1:1..60)\n" + SEQ,
}

REJECTED = {
    "escaped_quote_in_wanted": entry(cds(b"1..30", b'/gene="a ""b"" c"')),
    "escaped_quote_in_product": entry(cds(b"1..30", b'/product="a ""b"" c"')),
    "remote_accession": entry(cds(b"join(1..10,X12345.1:10..20)")),
    "between": entry(cds(b"10^11")),
    "one_of": entry(cds(b"one-of(1,2)..30")),
    "bond": entry(cds(b"bond(1,30)")),
    "gap": entry(cds(b"gap(10)")),
    "single_dot": entry(cds(b"10.20")),
    "trailing_garbage": entry(cds(b"1..20x")),
    "space_in_location": entry(cds(b"join(1..5, 10..20)")),
    "lt_on_single": entry(cds(b"<5")),
    "gt_on_start": entry(cds(b">5..10")),
    "start_after_end": entry(cds(b"20..10")),
    "zero_start": entry(cds(b"0..10")),
    "end_past_length": entry(cds(b"1..61")),
    "transl_except": entry(cds(b"1..30", b'/transl_except=(pos:1..3,aa:Met)')),
    "wrong_sequence_length": entry(cds(b"1..30"), head=HEAD.replace(b"  60 bp", b"  61 bp")),
    "missing_origin": entry(cds(b"1..30"), seq=b"//\n"),
    "empty_origin": entry(cds(b"1..30"), seq=b"ORIGIN\n//\n"),
    "truncated_quote": entry(cds(b"1..30", b'/gene="abc')),
    "quote_then_text": entry(cds(b"1..30", b'/gene="abc"def"')),
    "quote_then_space": entry(cds(b"1..30", b'/gene="abc" ')),
    "split_escaped_quote": entry(cds(b"1..30", b'/note="abc"', b'"def"')),
    "crlf": entry(cds(b"1..30")).replace(b"\n", b"\r\n"),
    "cr_in_value": entry(cds(b"1..30", b'/gene="a\rb"')),
    "tab_in_value": entry(cds(b"1..30", b'/gene="a\tb"')),
    "non_ascii": entry(cds(b"1..30", b'/note="caf\xc3\xa9"')),
    "multiline_gene": entry(cds(b"1..30", b'/gene="a\n                     b"')),
    "multiline_bare": entry(cds(b"1..30", b"/codon_start=1\n                     2")),
    "gene_id_multiline": entry(cds(b"1..30", b'/db_xref="GeneID:1\n                     2"')),
    "qualifier_wrong_indent": entry(cds(b"1..30", b' /gene="x"')),
    "feature_wrong_indent": entry(b"    CDS              1..30\n"),
    "long_feature_key": entry(b"     misc_recombination 1..30\n" + cds(b"1..30")),
    "blank_line_in_table": entry(cds(b"1..30") + b"\n"),
    "features_trailing_space": entry(cds(b"1..30"), head=HEAD.replace(b"Qualifiers\n", b"Qualifiers \n")),
    "contig_before_features": entry(cds(b"1..30"), head=HEAD.replace(
        b"FEATURES", b"CONTIG      join(X1.1:1..60)\nFEATURES")),
    "contig_colon": entry(cds(b"1..30"), seq=b"CONTIG      :join(X1.1:1..60)\n" + SEQ),
    "contig_empty": entry(cds(b"1..30"), seq=b"CONTIG      \n" + SEQ),
    "contig_short_continuation": entry(cds(b"1..30"), seq=b"CONTIG      join(X1.1:1..30,\n           X2.1:1..30)\n" + SEQ),
    "text_after_sequence": entry(cds(b"1..30"), seq=SEQ.replace(b"//\n", b"xx\n//\n")),
    "text_after_terminator": entry(cds(b"1..30")) + b"junk\n",
    "space_after_terminator": entry(cds(b"1..30"))[:-1] + b"  \n",
    "no_terminator": entry(cds(b"1..30"))[:-3],
    "slash_in_sequence": entry(cds(b"1..30"), seq=SEQ.replace(b"atgaaacccg", b"atgaa/cccg")),
    "dash_in_sequence": entry(cds(b"1..30"), seq=SEQ.replace(b"atgaaacccg", b"atgaa-cccg")),
    "locus_no_topology": entry(cds(b"1..30"), head=HEAD.replace(b"linear   BCT", b"BCT")),
    "locus_aa": entry(cds(b"1..30"), head=HEAD.replace(b" bp ", b" aa ")),
    "locus_bad_date": entry(cds(b"1..30"), head=HEAD.replace(b"01-JAN-2000", b"32-JAN-2000")),
    "locus_lower_month": entry(cds(b"1..30"), head=HEAD.replace(b"01-JAN-2000", b"01-Jan-2000")),
    "locus_extra_token": entry(cds(b"1..30"), head=HEAD.replace(b"01-JAN-2000", b"01-JAN-2000 x")),
    "two_definitions": entry(cds(b"1..30"), head=HEAD.replace(b"ACCESSION", b"DEFINITION  again\nACCESSION")),
    "preamble": b"some header\n" + entry(cds(b"1..30")),
    "continuation_after_quoted": entry(cds(b"1..30", b'/gene="x"', b"more")),
    "empty_key": entry(cds(b"1..30", b"/=x")),
    "origin_with_text": entry(cds(b"1..30"), seq=SEQ.replace(b"ORIGIN      \n", b"ORIGIN      x\n")),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_synthetic_accepted(name):
    data = ACCEPTED[name]
    ok, model = _check(data)
    assert ok, f"{name}: declined"


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_synthetic_rejected(name):
    assert _gbfast._debug_parse(REJECTED[name]) is None


def test_synthetic_details():
    """Spot checks of the model itself (independent of gb-io)."""
    m = _gbfast._debug_parse(ACCEPTED["complement_join"])
    assert m[3][0][2] == [(20, 30, -1, False, False, None), (0, 10, -1, False, False, None)]
    assert m[3][0][3] == "join"
    m = _gbfast._debug_parse(ACCEPTED["order"])
    assert m[3][0][3] == "order"
    assert _gbfast._debug_parse(ACCEPTED["order_single_part"])[3][0][3] == "single"
    m = _gbfast._debug_parse(ACCEPTED["partial"])
    assert m[3][0][2] == [(0, 30, 1, True, True, None)]
    m = _gbfast._debug_parse(ACCEPTED["single_base"])
    assert m[3][0][:3] == (1, "gene", [(4, 5, 1, False, False, None)])
    m = _gbfast._debug_parse(ACCEPTED["flags"])
    assert m[3][0][4] == {"pseudo": None, "ribosomal_slippage": None, "trans_splicing": None, "gene": "g"}
    m = _gbfast._debug_parse(ACCEPTED["exception_empty"])
    assert m[3][0][4]["exception"] == ""
    m = _gbfast._debug_parse(ACCEPTED["plain"])
    assert m[0] == "TEST.1" and m[1][:10] == b"ATGAAACCCG" and m[2] is False
    assert m[3][0][4]["gene_id"] == "42"
    assert m[3][0][0] == 1  # the source feature counts
    m = _gbfast._debug_parse(ACCEPTED["multiline_product_translation"])
    assert "\n" in m[3][0][4]["product"]
    assert _gbfast._debug_parse(ACCEPTED["no_accession_no_version"])[0] == "TEST"
    assert _gbfast._debug_parse(ACCEPTED["version_extra"])[0] == "TEST.7"
    assert _gbfast._debug_parse(ACCEPTED["circular"])[2] is True
    assert [f[1] for f in _gbfast._debug_parse(ACCEPTED["rna_kinds"])[3]] == [
        "gene", "mRNA", "tRNA", "rRNA", "ncRNA", "tmRNA", "misc_RNA", "precursor_RNA"]


# ----------------------------------------------------------------------------- robustness


def _robust_entry() -> bytes:
    for e in _entries(DATA / "NC_005816.gb"):
        return e
    raise AssertionError


def _agree_or_decline(data: bytes, problems: list) -> None:
    c_model = _gbfast._debug_parse(data)
    if c_model is None:
        return
    py = _gb_model(data)
    if py is None:
        problems.append(("gb-io failed, C accepted", data))
        return
    try:
        _compare(c_model, py)
    except AssertionError as e:
        problems.append((f"models differ: {e}", data))


def test_truncated_prefixes():
    e = _robust_entry()
    problems: list = []
    for cut in range(0, len(e), 97):
        _agree_or_decline(e[:cut], problems)
    _agree_or_decline(e, problems)
    assert not problems, problems[:3]


def test_random_mutations():
    rng = random.Random(20240611)
    entries = [_robust_entry()] + [e for e in _entries(DATA / "NC_000902_phageVT2.gbk")]
    interesting = b' \n"/=<>.,()0123456789:^acgtACGT\r\tjoinrdecmpl'
    problems: list = []
    n = 0
    for base in entries:
        # mutations concentrated on the header and feature table (where the rules are)
        end = base.find(b"\nORIGIN")
        seq_start = end if end > 0 else len(base)
        for i in range(300):
            b = bytearray(base)
            k = rng.randrange(len(b)) if i % 4 == 0 else rng.randrange(seq_start)
            op = rng.randrange(3)
            if op == 0:
                b[k] = rng.choice(interesting)
            elif op == 1:
                del b[k]
            else:
                b.insert(k, rng.choice(interesting))
            _agree_or_decline(bytes(b), problems)
            n += 1
    assert n >= 300
    assert not problems, [(p[0], len(p[1])) for p in problems[:5]]


def test_record_reuse_and_garbage():
    """Odd inputs never crash; repeated parses give identical results."""
    for data in (b"", b"\n", b"//", b"LOCUS", b"LOCUS \n//\n", b"\x00" * 100, bytes(range(256)) * 4):
        assert _gbfast._debug_parse(data) is None
    e = ACCEPTED["plain"]
    first = _gbfast._debug_parse(e)
    for _ in range(3):
        assert _gbfast._debug_parse(e) == first
