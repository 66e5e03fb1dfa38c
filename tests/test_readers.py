"""Single-modal readers: real files against Biopython, modality checks, dedup, windows, edge cases."""
import gzip
import math
import shutil
from collections import Counter
from pathlib import Path

import pytest
from Bio import AlignIO, SeqIO

import bsm_data.readers as readers
from bsm_data.accounting import Accounting
from bsm_data.readers import (
    MIN_TAIL,
    SeqEntry,
    check_length,
    check_modality,
    dedup_exact,
    read_fasta,
    read_sequences,
    read_stockholm,
    read_swissprot,
    sequence_digest,
    sniff_format,
    window,
)
from bsm_data.records import Reject
from bsm_data.vocab import encode_sequence, load_vocab

DATA = Path(__file__).parents[1] / "data"
PROTEIN = DATA / "protein"
NCRNA = DATA / "ncrna"
REAL_FILES = sorted(PROTEIN.iterdir()) + sorted(NCRNA.iterdir())
GAPS = str.maketrans("", "", "-.~")


@pytest.fixture(scope="module")
def vocab():
    return load_vocab()


def split(items):
    entries = [x for x in items if isinstance(x, SeqEntry)]
    rejects = [x for x in items if isinstance(x, Reject)]
    assert len(entries) + len(rejects) == len(items)
    return entries, rejects


def read_all(path, **kw):
    acct = Accounting()
    items = list(read_sequences(path, acct, source="test", **kw))
    acct.check()
    return items, acct


# ------------------------------------------------------------------------------ real data


def independent_count(path: Path) -> int:
    """Entries counted without our readers: '>' lines, '//' lines, distinct Stockholm row names."""
    lines = path.read_bytes().splitlines()
    fmt = sniff_format(path)
    if fmt == "fasta":
        return sum(line.startswith(b">") for line in lines)
    if fmt == "swissprot":
        return sum(line.startswith(b"//") for line in lines)
    total, names = 0, set()
    for line in lines:
        if line.startswith(b"//"):
            total, names = total + len(names), set()
        elif line.strip() and not line.startswith(b"#"):
            names.add(line.split()[0])
    return total


def biopython_entries(path: Path) -> list[tuple[str, str]]:
    fmt = sniff_format(path)
    if fmt == "fasta":
        return [(r.id, str(r.seq).upper()) for r in SeqIO.parse(path, "fasta")]
    if fmt == "swissprot":
        return [(r.id, str(r.seq)) for r in SeqIO.parse(path, "swiss")]
    return [(r.id, str(r.seq).upper().translate(GAPS)) for aln in AlignIO.parse(path, "stockholm") for r in aln]


def test_every_bundled_file_is_present():
    names = {p.name for p in REAL_FILES}
    assert {"emboss_swissprot100.dat", "flybase_chr2R_proteins.faa", "globins45.fa", "fn3.sto", "Pkinase.sto"} <= names
    assert {"tRNA.sto", "3.4.12.rf.stk", "bacteria-archea16SrRNA.fa", "ls_orchid.fasta"} <= names
    assert len(REAL_FILES) == 15


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_real_file_matches_independent_count_and_biopython(path):
    items, acct = read_all(path)
    entries, rejects = split(items)
    assert rejects == []
    assert len(entries) == independent_count(path)
    assert [(e.seq_id, e.sequence) for e in entries] == biopython_entries(path)
    assert [e.index for e in entries] == list(range(len(entries)))
    assert {e.source_file for e in entries} == {path.name}
    for e in entries:
        assert e.sequence == e.sequence.upper() and not set(e.sequence) & set("-.~ \r\n")
    assert acct.to_dict()["read"] == {"in": len(entries), "out": len(entries), "rejected": {}, "notes": {}}


def test_known_counts_and_descriptions():
    assert len(list(read_swissprot(PROTEIN / "emboss_swissprot100.dat"))) == 100
    assert len(list(read_stockholm(NCRNA / "tRNA.sto"))) == 967
    assert len(list(read_fasta(PROTEIN / "flybase_chr2R_proteins.faa"))) == 1117
    first = next(read_swissprot(PROTEIN / "emboss_swissprot100.dat"))
    assert (first.seq_id, first.description) == ("P15455", "12S seed storage protein CRU4")  # AC line 1, RecName
    assert len(first.sequence) == 472  # "SQ   SEQUENCE   472 AA"
    u1, *_, u3 = list(read_stockholm(NCRNA / "3.4.12.rf.stk"))  # three alignments in one file
    assert (u1.description, u3.description) == ("RF00003 U1", "RF00012 U3")
    orchid = next(read_fasta(NCRNA / "ls_orchid.fasta"))
    assert orchid.seq_id == "gi|2765658|emb|Z78533.1|CIZ78533"
    assert orchid.description == "C.irapeanum 5.8S rRNA gene and ITS1 and ITS2 DNA"


def test_stockholm_keeps_lower_case_inserts_upper_cased():
    raw = (NCRNA / "srp-euk.sto").read_text().splitlines()
    name, aligned = next(line.split() for line in raw if line.startswith("ZEA.M._A "))
    assert any(c.islower() for c in aligned)
    entry = next(e for e in read_stockholm(NCRNA / "srp-euk.sto") if e.seq_id == name)
    assert entry.sequence.startswith(aligned.translate(GAPS).upper())


def test_tiny_blocks_give_the_same_fasta_entries(monkeypatch):
    path = PROTEIN / "globins45.fa"
    expected = list(read_fasta(path))
    for block in (1, 2, 7, 61, 4096):
        monkeypatch.setattr(readers, "_BLOCK", block)
        assert list(read_fasta(path)) == expected


# ------------------------------------------------------------------------------ modality


def test_modality_from_source_is_checked(vocab):
    _, acct = read_all(PROTEIN / "flybase_chr2R_proteins.faa", modality="protein")
    assert acct.to_dict()["alphabet"] == {"in": 1117, "out": 1117, "rejected": {}, "notes": {}}

    items, acct = read_all(NCRNA / "bacteria-archea16SrRNA.fa", modality="rna")
    entries, rejects = split(items)
    assert len(entries) == 494 and rejects == []
    assert all("T" not in e.sequence and "U" in e.sequence for e in entries)  # stored in T, returned in U
    raw = next(read_fasta(NCRNA / "bacteria-archea16SrRNA.fa"))
    assert entries[0].sequence == raw.sequence.replace("T", "U")
    assert list(encode_sequence(vocab, "rna", entries[0].sequence)) == list(encode_sequence(vocab, "rna", raw.sequence))

    for path in (PROTEIN / "flybase_chr2R_proteins.faa", PROTEIN / "emboss_swissprot100.dat"):
        items, acct = read_all(path, modality="rna")
        entries, rejects = split(items)
        assert entries == [] and {r.reason for r in rejects} == {"illegal_letter"}
        assert all(r.stage == "alphabet" and r.source == "test" and r.record_id for r in rejects)

    for path in (NCRNA / "bacteria-archea16SrRNA.fa", NCRNA / "tRNA.sto"):
        items, acct = read_all(path, modality="protein")
        entries, rejects = split(items)
        assert entries == [] and {r.reason for r in rejects} == {"modality_mismatch"}
        assert acct.stage("alphabet").rejected["modality_mismatch"] == acct.stage("read").n_out


def test_check_modality_on_single_entries(vocab):
    acct = Accounting()
    prot = next(read_fasta(PROTEIN / "globins45.fa"))
    assert check_modality(prot, "protein", vocab, acct, "s") is prot
    stop = SeqEntry("p", "", prot.sequence + "*", "f.faa", 0)
    assert check_modality(stop, "protein", vocab, acct, "s").sequence == prot.sequence
    inner = SeqEntry("q", "", prot.sequence[:20] + "*" + prot.sequence[20:], "f.faa", 1)
    assert check_modality(inner, "protein", vocab, acct, "s").reason == "illegal_letter"
    dna = SeqEntry("d", "", "ACGTNACGTTTGACCAGTA", "f.fna", 2)
    assert check_modality(dna, "dna", vocab, acct, "s") is dna
    assert check_modality(dna, "rna", vocab, acct, "s").sequence == "ACGUNACGUUUGACCAGUA"
    r = check_modality(dna, "protein", vocab, acct, "s")
    assert r.reason == "modality_mismatch" and "f.fna entry 2 ('d')" in r.detail
    assert check_modality(SeqEntry("u", "", "ACGU", "x", 3), "dna", vocab, acct, "s").reason == "illegal_letter"
    assert check_modality(SeqEntry("n", "", "NNNNACGT", "x", 4), "dna", vocab, acct, "s").reason == "too_ambiguous"
    acct.check()
    assert acct.stage("alphabet").notes["terminal_stop_stripped"] == 1


# ------------------------------------------------------------------------------ dedup


@pytest.mark.parametrize("name,modality", [("bacteria-archea16SrRNA.fa", "rna"), ("flybase_chr2R_proteins.faa", "protein")])
def test_dedup_real_file_concatenated_twice(tmp_path, name, modality):
    src = next(p for p in REAL_FILES if p.name == name)
    twice = tmp_path / name
    twice.write_bytes(src.read_bytes() * 2)
    acct = Accounting()
    stream = read_sequences(twice, acct, source="test", modality=modality)
    out = list(dedup_exact(stream, acct, modality, source="test"))
    acct.check()
    entries, rejects = split(out)
    single = [e.sequence for e in read_sequences(src, Accounting(), modality=modality)]
    n = len(single)
    assert acct.stage("read").n_out == 2 * n
    assert len(entries) == len(set(single))
    assert all(r.reason == "duplicate" and r.stage == "dedup" for r in rejects)
    assert len(rejects) == 2 * n - len(set(single))
    if len(set(single)) == n:  # no duplicates inside the file: exactly the second copy goes
        assert len(rejects) == n and [e.index for e in entries] == list(range(n))
    first_id = {}
    for e in read_sequences(src, Accounting(), modality=modality):
        first_id.setdefault(e.sequence, e.seq_id)
    for r in rejects[:50]:
        assert repr(first_id[single[int(r.detail.split(" entry ")[1].split()[0]) % n]]) in r.detail


def test_digest_is_16_bytes_and_modality_keyed():
    assert len(sequence_digest("dna", "ACGT")) == 16
    assert sequence_digest("dna", "acgt") == sequence_digest("dna", "ACGT")
    assert sequence_digest("dna", "ACGT") != sequence_digest("rna", "ACGT")
    acct = Accounting()
    acct.stage("read").take()
    items = [SeqEntry("a", "", "ACGT", "f", 0), acct.reject("read", "truncated"), SeqEntry("b", "", "ACGT", "f", 1)]
    out = list(dedup_exact(items, acct, "dna", name_kept=False))
    assert out[0] is items[0] and out[1] is items[1] and out[2].reason == "duplicate"
    acct.check()


# ------------------------------------------------------------------------------ length + windows


def test_min_length_policy():
    acct = Accounting()
    assert check_length(SeqEntry("a", "", "MKV" * 4, "f", 0), acct, "s").seq_id == "a"
    r = check_length(SeqEntry("b", "", "MKVLA", "f", 1), acct, "s")
    assert r.reason == "too_short" and r.stage == "length"
    assert check_length(SeqEntry("c", "", "MKVLA", "f", 2), acct, "s", min_length=5).seq_id == "c"
    acct.check()
    assert acct.to_dict()["length"]["rejected"] == {"too_short": 1}


@pytest.mark.parametrize("seq_len", [13, 64, 1024])
def test_windows_cover_exactly_and_fit(seq_len):
    budget = seq_len - 3
    for length in [1, 2, budget - 1, budget, budget + 1, 2 * budget, 2 * budget + 1, 7 * budget - 3, 5000]:
        seq = ("ACDEFGHIKLMNPQRSTVWY" * (length // 20 + 1))[:length]
        wins = window(seq, seq_len)
        assert len(wins) == max(1, math.ceil(length / budget))
        assert "".join(w for _, w in wins) == seq
        assert [s for s, _ in wins] == [sum(len(w) for _, w in wins[:i]) for i in range(len(wins))]
        sizes = [len(w) for _, w in wins]
        assert max(sizes) + 3 <= seq_len
        assert all(n == budget for n in sizes[:-2])  # full windows fill a packed row
        assert min(sizes) >= min(length, MIN_TAIL, budget // 2)  # no fragment window


def test_windows_on_real_rrna_with_notes():
    acct = Accounting()
    entries = list(read_fasta(NCRNA / "bacteria-archea16SrRNA.fa"))
    total = 0
    for e in entries:
        wins = window(e, 1024, acct)
        assert "".join(w for _, w in wins) == e.sequence and all(len(w) <= 1021 for _, w in wins)
        total += len(wins)
    acct.check()
    counts = acct.to_dict()["window"]
    assert counts["in"] == counts["out"] == len(entries) == 494
    assert counts["notes"]["windows"] == total == 2 * 494  # 16S rRNA is 1,335-1,651 nt: two windows each
    assert counts["notes"]["split_entries"] == 494
    with pytest.raises(ValueError):
        window("ACGT", 3)


# ------------------------------------------------------------------------------ edge cases


def swiss_text(n: int) -> str:
    """The first n real entries of the Swiss-Prot file."""
    text = (PROTEIN / "emboss_swissprot100.dat").read_text()
    return "".join(e + "//\n" for e in text.split("//\n")[:n])


def test_truncated_swissprot(tmp_path):
    text = swiss_text(3)
    cut = text[: text.rindex("SQ   SEQUENCE")]  # third entry loses its sequence and its '//'
    second = swiss_text(2)
    mid = second[: second.rindex("//")] + swiss_text(3)[len(second):]  # second entry has no '//'
    (tmp_path / "a.dat").write_text(cut)
    (tmp_path / "b.dat").write_text(mid)
    items, acct = read_all(tmp_path / "a.dat")
    entries, rejects = split(items)
    assert [e.index for e in entries] == [0, 1]
    assert [(r.reason, r.record_id) for r in rejects] == [("truncated", "P17644")]
    assert "a.dat entry 2 ('P17644')" in rejects[0].detail
    items, acct = read_all(tmp_path / "b.dat")
    assert [(x.index, x.seq_id) if isinstance(x, SeqEntry) else x.reason for x in items] == [
        (0, "P15455"), "truncated", (2, "P17644"),
    ]
    assert acct.to_dict()["read"] == {"in": 3, "out": 2, "rejected": {"truncated": 1}, "notes": {}}


def test_swissprot_length_mismatch_and_missing_sequence(tmp_path):
    one = swiss_text(1)
    lines = one.splitlines(keepends=True)
    seq_line = next(i for i, line in enumerate(lines) if line.startswith("     "))
    dropped = "".join(lines[:seq_line] + lines[seq_line + 1:])
    no_sq = "".join(line for line in lines if not line.startswith(("SQ", "     ")))
    (tmp_path / "x.dat").write_text(dropped + no_sq + one)
    items, acct = read_all(tmp_path / "x.dat")
    assert [x.reason if isinstance(x, Reject) else x.index for x in items] == ["length_mismatch", "no_sequence", 2]


def test_empty_files(tmp_path):
    for name in ("e.fa", "e.dat", "e.sto", "e.unknown", "blank.fa"):
        p = tmp_path / name
        p.write_text("\n\n" if name.startswith("blank") else "")
        items, acct = read_all(p)
        assert items == [] and acct.stage("read").n_in == 0
    assert list(read_fasta(tmp_path / "e.fa")) == list(read_swissprot(tmp_path / "e.dat")) == []
    assert list(read_stockholm(tmp_path / "e.sto")) == []


def test_fasta_header_only_and_missing_sequences(tmp_path):
    p = tmp_path / "h.fa"
    p.write_text(">only_header description\n")
    items, acct = read_all(p)
    assert [(r.reason, r.record_id) for r in items] == [("no_sequence", "only_header")]
    assert "h.fa entry 0 ('only_header')" in items[0].detail
    p.write_text(">a\nMKVLAAGIVGLLLA\n>b empty\n\n>\nMKV\n>c\nmkv-la.agi\n>d")
    items, acct = read_all(p)
    got = [x.reason if isinstance(x, Reject) else (x.index, x.seq_id, x.sequence) for x in items]
    assert got == [(0, "a", "MKVLAAGIVGLLLA"), "no_sequence", "missing_id", (3, "c", "MKVLAAGI"), "no_sequence"]
    assert acct.to_dict()["read"]["rejected"] == {"missing_id": 1, "no_sequence": 2}


def test_fasta_text_before_first_header_and_non_ascii(tmp_path):
    p = tmp_path / "j.fasta"
    p.write_bytes(b"some notes\n>a first\nACGTACGTAC\n>b\nACG\xc3\xa9TAC\n>c\nGGGCCCAAAT\n")
    items, acct = read_all(p)
    got = [x.reason if isinstance(x, Reject) else x.seq_id for x in items]
    assert got == ["no_header", "a", "non_ascii", "c"]
    assert "j.fasta entry 1 ('b')" in items[2].detail
    assert [x.index for x in items if isinstance(x, SeqEntry)] == [0, 2]


def test_gzip_detected_by_magic_bytes(tmp_path):
    src = NCRNA / "ls_orchid.fasta"
    expected = list(read_fasta(src))
    for name in ("ls_orchid.fasta.gz", "ls_orchid.fasta"):  # with and without the .gz suffix
        dst = tmp_path / name
        with open(src, "rb") as fi, gzip.open(dst, "wb") as fo:
            shutil.copyfileobj(fi, fo)
        items, acct = read_all(dst, source_file=src.name)
        assert items == expected
    gz = tmp_path / "pk.sto.gz"
    gz.write_bytes(gzip.compress((PROTEIN / "Pkinase.sto").read_bytes()))
    assert list(read_stockholm(gz, source_file="Pkinase.sto")) == list(read_stockholm(PROTEIN / "Pkinase.sto"))


def test_crlf_line_endings(tmp_path):
    for src, reader in ((PROTEIN / "globins45.fa", read_fasta), (PROTEIN / "emboss_swissprot100.dat", read_swissprot),
                        (NCRNA / "3.4.12.rf.stk", read_stockholm)):
        dst = tmp_path / src.name
        dst.write_bytes(src.read_bytes().replace(b"\n", b"\r\n"))
        assert list(reader(dst)) == list(reader(src))


STOCKHOLM = """# STOCKHOLM 1.0
#=GF ID   toy
#=GF AC   RF99999
#=GS seq1 DE first sequence
seq1   ACGU..ac-gu
seq2   AC~UU.acGGU
#=GR seq1 SS <<..>>.....
#=GC SS_cons <<..>>.....

seq1   GGGA
#=GR seq1 SS ....
seq2   GG-A
#=GC SS_cons ....
//
# STOCKHOLM 1.0
#=GF ID   second
seq3   UUUUCCCCAAAAGGGG
seq4
seq5   UUUUCC
//
# STOCKHOLM 1.0
seq6   ACGUACGUACGU
"""


def test_stockholm_interleaved_blocks_and_malformed_rows(tmp_path):
    p = tmp_path / "toy.sto"
    p.write_text(STOCKHOLM)
    items, acct = read_all(p)
    got = [x.reason if isinstance(x, Reject) else (x.index, x.seq_id, x.sequence, x.description) for x in items]
    assert got == [
        (0, "seq1", "ACGUACGUGGGA", "RF99999 toy"),
        (1, "seq2", "ACUUACGGUGGA", "RF99999 toy"),
        (2, "seq3", "UUUUCCCCAAAAGGGG", "second"),
        "malformed_line",
        "inconsistent_alignment_length",
        "truncated",
    ]
    assert "toy.sto entry 5 ('seq6')" in items[-1].detail
    assert acct.to_dict()["read"]["rejected"] == {"inconsistent_alignment_length": 1, "malformed_line": 1, "truncated": 1}
    # the first (well-formed) alignment agrees with Biopython
    p.write_text(STOCKHOLM.split("//\n")[0] + "//\n")
    bio = [(r.id, str(r.seq).upper().translate(GAPS)) for r in AlignIO.read(p, "stockholm")]
    assert [(e.seq_id, e.sequence) for e in read_stockholm(p)] == bio


def test_stockholm_header_before_terminator(tmp_path):
    p = tmp_path / "two.stk"
    p.write_text("# STOCKHOLM 1.0\nx  ACGU\n# STOCKHOLM 1.0\ny  GGCC\n//\nstray line\n")
    got = [x.reason if isinstance(x, Reject) else x.seq_id for x in read_stockholm(p)]
    assert got == ["truncated", "y", "no_header"]


def test_format_sniffing(tmp_path):
    assert sniff_format(PROTEIN / "fn3.sto") == "stockholm"
    for src, fmt in ((PROTEIN / "globins45.fa", "fasta"), (PROTEIN / "emboss_swissprot100.dat", "swissprot"),
                     (NCRNA / "srp-euk.sto", "stockholm")):
        dst = tmp_path / (src.stem + "_nosuffix")
        dst.write_bytes(src.read_bytes())
        assert sniff_format(dst) == fmt
        items, _ = read_all(dst)
        assert len(items) == independent_count(src)
    junk = tmp_path / "notes.txt"
    junk.write_text("not a sequence file\n")
    items, acct = read_all(junk)
    assert [r.reason for r in items] == ["unknown_format"]
    with pytest.raises(ValueError):
        list(read_sequences(junk, Accounting(), fmt="genbank"))


def test_full_chain_reconciles_on_real_data(vocab):
    acct = Accounting()
    counts = Counter()
    for path, modality in ((PROTEIN / "emboss_swissprot100.dat", "protein"), (NCRNA / "rnaseP-eubact.sto", "rna")):
        stream = read_sequences(path, acct, source="single", modality=modality)
        for item in dedup_exact(stream, acct, modality, source="single"):
            if isinstance(item, Reject):
                counts[(item.stage, item.reason)] += 1
                continue
            item = check_length(item, acct, "single")
            if isinstance(item, Reject):
                counts[(item.stage, item.reason)] += 1
                continue
            counts["windows"] += len(window(item, 1024, acct))
    acct.check()
    d = acct.to_dict()
    assert d["read"]["in"] == 100 + 340
    assert d["dedup"]["in"] == d["alphabet"]["out"]
    assert d["window"]["notes"]["windows"] == counts["windows"]
    # 11 RNase P rows hold 'X'; the vocabulary maps nucleotide X to N, so they pass, and nothing is lost
    assert d["alphabet"]["rejected"] == {} and d["alphabet"]["in"] == d["alphabet"]["out"] == 440
    assert counts[("dedup", "duplicate")] == d["dedup"]["rejected"]["duplicate"] > 0  # identical Swiss-Prot sequences
