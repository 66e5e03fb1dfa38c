"""Single-modal corpora on the bundled real data: stages, cross-file dedup, windows, modality
checks, GenBank records, and local engine vs Beam (1 and 2 workers) byte for byte."""
import hashlib
import json
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from Bio import SeqIO

from bsm_data.accounting import Accounting
from bsm_data.query import connect
from bsm_data.readers import MIN_TAIL, read_fasta
from bsm_data.records import Reject
from bsm_data.shards import read_shard
from bsm_data.single import (
    STAGES,
    InputFile,
    SingleEntry,
    SpecEntry,
    build_single_local,
    dedup_group,
    dedup_sorted,
    default_spec,
    entries_for_file,
    expand_spec,
    iter_single,
    load_spec,
    modality_of_molecule,
    new_accounting,
    parse_input_arg,
    read_genbank,
)
from bsm_data.vocab import decode_sample, load_vocab, normalize

from .test_readers import independent_count

from .conftest import digests

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
PROTEIN, NCRNA, GENBANK = DATA / "protein", DATA / "ncrna", DATA / "genbank"
GB_SUFFIXES = (".gb", ".gbk", ".gbff")



def split(items):
    entries = [x for x in items if not isinstance(x, Reject)]
    rejects = [x for x in items if isinstance(x, Reject)]
    return entries, rejects


def run_all(spec, seq_len=1024):
    acct = new_accounting()
    items = list(iter_single(expand_spec(spec), acct, seq_len=seq_len))
    acct.check()
    return items, acct


@pytest.fixture(scope="module")
def full_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    manifest = build_single_local(default_spec(), str(out), seed=0, num_shards=2)
    return out, manifest


# ------------------------------------------------------------------------------ whole bundled data


def test_every_stage_reconciles_on_all_bundled_data(full_build):
    out, manifest = full_build
    acc = manifest["accounting"]
    Accounting.from_dict(acc).check()
    assert list(acc) == [*STAGES, "pack"]
    # every bundled single-modal file is an input, each entry counted once in stage read
    files = manifest["pipeline"]["options"]["inputs"]
    expected = sorted(p.name for d in (PROTEIN, NCRNA) for p in d.iterdir()) + sorted(
        p.name for p in GENBANK.iterdir() if p.suffix in (".faa", ".ffn", *GB_SUFFIXES)
    )
    assert [f["file"] for f in files] == sorted(expected)
    n_read = sum(
        independent_count(d / f["file"]) if f["format"] != "genbank" else (GENBANK / f["file"]).read_bytes().count(b"\n//")
        for f in files for d in (PROTEIN, NCRNA, GENBANK) if (d / f["file"]).exists()
    )
    assert acc["read"]["in"] == n_read > 6000
    # the stages chain: each takes exactly what the previous one let through
    for prev, nxt in zip(STAGES, STAGES[1:]):
        assert acc[nxt]["in"] == acc[prev]["out"], (prev, nxt)
    assert acc["pack"]["in"] == acc["window"]["notes"]["windows"] == manifest["totals"]["documents"]
    assert {"dna", "rna", "protein"} == {m for (m,) in connect(str(out)).execute("SELECT DISTINCT modality FROM segments").fetchall()}
    # rejects on disk agree with the counters reason by reason, and all carry provenance
    con = connect(str(out))
    on_disk = dict(con.execute("SELECT stage || '/' || reason, count(*) FROM rejects GROUP BY ALL").fetchall())
    counted = {f"{s}/{r}": n for s, c in acc.items() for r, n in c["rejected"].items()}
    assert on_disk == counted and counted["dedup/duplicate"] > 500
    assert con.execute("SELECT count(*) FROM rejects WHERE reason = '' OR detail = '' OR source = '' OR source_file = '' OR record_id = ''").fetchone()[0] == 0


def test_known_duplicates_removed(full_build):
    out, _ = full_build
    con = connect(str(out))
    kept = dict(con.execute("SELECT source_file, count(DISTINCT group_id) FROM samples GROUP BY ALL").fetchall())
    assert kept["emboss_swissprot100.dat"] == 88  # 100 entries, 88 distinct sequences
    assert kept["flybase_chr2R_proteins.faa"] == 949  # 1117 entries, 949 distinct
    dups = dict(con.execute("SELECT source_file, count(*) FROM rejects WHERE reason = 'duplicate' GROUP BY ALL").fetchall())
    assert (dups["emboss_swissprot100.dat"], dups["flybase_chr2R_proteins.faa"]) == (12, 168)
    # no two kept documents start the same sequence: the dedup is global
    firsts = con.execute("SELECT segments[1].modality, segments[1].sequence FROM samples WHERE \"window\" = 0 AND n_windows = 1").fetchall()
    assert len(firsts) == len(set(firsts))
    # cross-file on real data: srp-euk.sto repeats rows of Plant_SRP.sto, which sorts first
    cross = con.execute("SELECT detail FROM rejects WHERE source_file = 'srp-euk.sto' AND reason = 'duplicate'").fetchall()
    assert cross and all("as Plant_SRP.sto entry" in d for (d,) in cross)


def test_samples_decode_back_from_shards(full_build):
    out, manifest = full_build
    vocab = load_vocab()
    docs = 0
    for entry in manifest["shards"]:
        table = read_shard(str(out), entry)
        samples = pq.read_table(out / entry["path"].replace("shards/", "samples/")).to_pylist()
        for row in table.to_pylist():
            for start, i in zip(row["doc_starts"], row["sample_rows"]):
                s = samples[i]
                assert decode_sample(vocab, row["tokens"][start:]) == [(g["modality"], g["sequence"]) for g in s["segments"]]
                assert len(s["segments"]) == 1 and s["source"] == "single" and s["n_tokens"] <= manifest["seq_len"]
                docs += 1
    assert docs == manifest["totals"]["documents"]


# ------------------------------------------------------------------------------ dedup


def _copy_spec(tmp_path, copy_name):
    src = PROTEIN / "flybase_chr2R_proteins.faa"
    (tmp_path / copy_name).write_bytes(src.read_bytes())
    return [SpecEntry(str(src), "protein", "flybase"), SpecEntry(str(tmp_path / copy_name), "protein", "copy")]


def test_cross_file_copy_is_rejected_entirely(tmp_path):
    items, acct = run_all(_copy_spec(tmp_path, "zz_flybase_copy.faa"))
    samples, rejects = split(items)
    assert {s.source_file for s in samples} == {"flybase_chr2R_proteins.faa"}
    assert len({s.group_id for s in samples}) == 949
    copy_rejects = [r for r in rejects if r.source_file == "zz_flybase_copy.faa"]
    assert len(copy_rejects) == 1117  # every entry of the copy
    assert all(r.stage == "dedup" and r.reason == "duplicate" and r.source == "copy" for r in copy_rejects)
    assert all("as flybase_chr2R_proteins.faa entry" in r.detail for r in copy_rejects)
    assert acct.stage("dedup").to_dict()["in"] == 2 * 1117 and acct.stage("dedup").n_out == 949


def test_kept_copy_is_smallest_source_file_then_index(tmp_path):
    items, _ = run_all(_copy_spec(tmp_path, "aa_flybase_copy.faa"))  # sorts before the original
    samples, rejects = split(items)
    assert {s.source_file for s in samples} == {"aa_flybase_copy.faa"}
    assert Counter(r.source_file for r in rejects) == {"flybase_chr2R_proteins.faa": 1117, "aa_flybase_copy.faa": 168}


def test_streaming_and_grouped_dedup_agree(tmp_path):
    """The local engine's dedup (sorted stream) and Beam's (group by digest, keep the min)."""
    files = expand_spec(_copy_spec(tmp_path, "m_copy.faa") + [SpecEntry(str(NCRNA / "*.sto"), "rna", "rfam")])
    entries = [e for f in files for e in entries_for_file(f.path, f.modality, f.source, Accounting(), fmt=f.fmt)]
    entries = [e for e in entries if isinstance(e, SingleEntry)]
    a, b = new_accounting(), new_accounting()
    stream = split(list(dedup_sorted(entries, a)))
    groups = defaultdict(list)
    for e in reversed(entries):  # arrival order must not matter
        groups[e.digest].append(e)
    kept, rejects = [], []
    for g in groups.values():
        k, r = dedup_group(g, b)
        kept.append(k)
        rejects += r
    assert sorted(stream[0], key=lambda e: e.order_key) == sorted(kept, key=lambda e: e.order_key)
    assert sorted(stream[1], key=repr) == sorted(rejects, key=repr)
    assert a.to_dict() == b.to_dict()
    with pytest.raises(ValueError, match="order"):
        list(dedup_sorted(list(reversed(entries)), new_accounting()))


# ------------------------------------------------------------------------------ windows


def test_windows_fit_seq_len_and_cover_the_sequence():
    seq_len = 200
    spec = [SpecEntry(str(NCRNA / "ls_orchid.fasta"), "dna", "its"), SpecEntry(str(NCRNA / "tRNA.sto"), "rna", "rfam"),
            SpecEntry(str(GENBANK / "cor6_6.gb"), "auto", "genbank"), SpecEntry(str(PROTEIN / "globins45.fa"), "protein", "hmmer")]
    items, acct = run_all(spec, seq_len=seq_len)
    samples, _ = split(items)
    by_group = defaultdict(list)
    for s in samples:
        assert s.n_tokens == len(s.segments[0][1]) + 3 <= seq_len
        by_group[s.group_id].append(s)
    entries = {}
    for f in expand_spec(spec):
        for e in entries_for_file(f.path, f.modality, f.source, Accounting(), fmt=f.fmt):
            if isinstance(e, SingleEntry):
                entries[e.group_id] = e
    split_groups = 0
    for gid, ws in by_group.items():
        ws.sort(key=lambda s: s.window)
        assert [s.window for s in ws] == list(range(ws[0].n_windows)) and len(ws) == ws[0].n_windows
        assert "".join(s.segments[0][1] for s in ws) == entries[gid].sequence  # exact cover, in order
        lengths = [len(s.segments[0][1]) for s in ws]
        assert all(n == seq_len - 3 for n in lengths[:-2]) and min(lengths) >= min(len(entries[gid].sequence), MIN_TAIL, (seq_len - 3) // 2)
        split_groups += len(ws) > 1
    assert split_groups == acct.stage("window").notes["split_entries"] > 50
    assert len(samples) == acct.stage("window").notes["windows"]


# ------------------------------------------------------------------------------ modality checks


def _one_file(path, modality, fmt=None):
    acct = new_accounting()
    items = list(entries_for_file(path, modality, "test", acct, fmt=fmt))
    acct.check()
    return split(items) + (acct,)


def test_misdeclared_real_files_are_rejected_not_tokenized():
    entries, rejects, _ = _one_file(NCRNA / "ls_orchid.fasta", "protein")  # genomic DNA declared protein
    assert entries == [] and len(rejects) == 94
    assert {(r.stage, r.reason) for r in rejects} == {("alphabet", "modality_mismatch")}
    entries, rejects, _ = _one_file(NCRNA / "tRNA.sto", "protein")  # RNA declared protein
    assert entries == [] and {r.reason for r in rejects} == {"modality_mismatch"} and len(rejects) == 967
    entries, rejects, _ = _one_file(PROTEIN / "flybase_chr2R_proteins.faa", "dna")  # protein declared DNA
    assert entries == [] and {r.reason for r in rejects} == {"illegal_letter"} and len(rejects) == 1117
    entries, rejects, _ = _one_file(GENBANK / "noref.gb", "dna")  # an mRNA record declared DNA
    assert entries == [] and [r.reason for r in rejects] == ["modality_mismatch"] and "mRNA" in rejects[0].detail
    with pytest.raises(ValueError, match="auto"):
        expand_spec([SpecEntry(str(PROTEIN / "globins45.fa"), "auto", "x")])


@pytest.mark.parametrize("path,modality", [(NCRNA / "bacteria-archea16SrRNA.fa", "rna"), (NCRNA / "SSU-mito-rRNA.fa", "rna"),
                                           (NCRNA / "ls_orchid.fasta", "dna"), (PROTEIN / "flybase_chr2R_proteins.faa", "protein")])
def test_normalised_sequences_are_what_the_model_sees(path, modality):
    vocab = load_vocab()
    entries, rejects, acct = _one_file(path, modality)
    raw = {e.index: e.sequence for e in read_fasta(path)}
    assert entries and len(entries) + len(rejects) == len(raw)
    for e in entries:
        assert e.sequence == normalize(vocab, modality, raw[e.index].rstrip("*"))
    if modality == "rna":
        assert all("T" not in e.sequence for e in entries)  # rRNA databases write RNA in T
        assert acct.stage("alphabet").notes["normalized"] > 0  # and IUPAC codes, which became N


# ------------------------------------------------------------------------------ GenBank records


def test_genbank_records_match_biopython_and_molecule_types():
    for path in sorted(p for p in GENBANK.iterdir() if p.suffix in GB_SUFFIXES and p.name != "augustus_dmel_genes.gb"):
        acct = Accounting()
        items = list(read_genbank(path, acct))
        acct.check()
        got = [(e.seq_id, e.sequence, mol) for e, mol in items]
        want = [(r.id, str(r.seq).upper(), r.annotations["molecule_type"]) for r in SeqIO.parse(path, "genbank")]
        assert got == want, path.name
    acct = new_accounting()
    entries = [e for e in entries_for_file(GENBANK / "cor6_6.gb", "auto", "genbank", acct) if isinstance(e, SingleEntry)]
    assert Counter(e.modality for e in entries) == {"rna": 3, "dna": 3}  # LOCUS: 3 mRNA, 3 DNA records
    assert all("T" not in e.sequence for e in entries if e.modality == "rna")
    acct = Accounting()
    items = list(read_genbank(GENBANK / "augustus_dmel_genes.gb", acct))  # short LOCUS lines gb-io refuses
    assert len(items) == 586 and acct.stage("read").notes["locus_repaired"] == 586
    assert [modality_of_molecule(m) for m in ("mRNA", "ss-RNA", "DNA", "cDNA", "aa", "", None)] == ["rna", "rna", "dna", "dna", "protein", None, None]


def test_genbank_truncated_and_contig_only_records(tmp_path):
    text = (GENBANK / "cor6_6.gb").read_bytes()
    cut = tmp_path / "cut.gb"
    cut.write_bytes(text[: text.rindex(b"ORIGIN") + 200])  # last record loses sequence and '//'
    acct = Accounting()
    items = list(read_genbank(cut, acct))
    acct.check()
    assert len(items) == 6 and isinstance(items[-1], Reject) and items[-1].reason == "truncated_record"
    first = text[: text.index(b"\n//") + 4]
    nos = tmp_path / "noseq.gb"
    nos.write_bytes(first[: first.index(b"ORIGIN")] + b"//\n")
    assert [r.reason for r in read_genbank(nos, Accounting())] == ["no_sequence"]


# ------------------------------------------------------------------------------ spec


def test_spec_json_input_args_and_expansion_rules(tmp_path):
    (tmp_path / "sub").mkdir()
    shutil.copy(PROTEIN / "globins45.fa", tmp_path / "sub" / "globins45.fa")
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({"inputs": [{"path": "sub/*.fa", "modality": "protein", "source": "hmmer"}]}))
    assert load_spec(spec_file) == [SpecEntry(str(tmp_path / "sub" / "*.fa"), "protein", "hmmer")]
    assert parse_input_arg("gs://b/x.fa:rna:rfam") == SpecEntry("gs://b/x.fa", "rna", "rfam")
    assert parse_input_arg("x.fa:dna") == SpecEntry("x.fa", "dna", "input")
    with pytest.raises(ValueError):
        parse_input_arg("x.fa:rnaa")
    # first matching entry wins: a specific entry before a broad glob overrides it
    files = expand_spec([SpecEntry(str(NCRNA / "ls_orchid.fasta"), "dna", "its"), SpecEntry(str(NCRNA / "*"), "rna", "rfam")])
    assert {f.source_file: f.modality for f in files}["ls_orchid.fasta"] == "dna"
    assert [f.source_file for f in files] == sorted(f.source_file for f in files)
    with pytest.raises(ValueError, match="base name"):
        expand_spec([SpecEntry(str(PROTEIN / "globins45.fa"), "protein", "a"), SpecEntry(str(tmp_path / "sub" / "*.fa"), "protein", "b")])
    with pytest.raises(FileNotFoundError):
        expand_spec([SpecEntry(str(tmp_path / "nothing*.fa"), "dna", "x")])
    assert isinstance(files[0], InputFile)


# ------------------------------------------------------------------------------ engines

SUBSET = [  # every reject reason of the full build plus a mis-declared file, a cross-file dup, GenBank records
    ("ncrna/ls_orchid.fasta", "dna", "genbank_its"),
    ("ncrna/srp-euk.sto", "rna", "rfam"),
    ("ncrna/Plant_SRP.sto", "rna", "rfam"),
    ("protein/emboss_swissprot100.dat", "protein", "uniprot"),
    ("protein/globins45.fa", "dna", "misdeclared"),
    ("genbank/cor6_6.gb", "auto", "genbank"),
    ("genbank/NC_005816.gb", "auto", "genbank"),
]


def test_local_engine_and_beam_1_and_2_workers_are_byte_identical(tmp_path):
    spec = [SpecEntry(str(DATA / p), m, s) for p, m, s in SUBSET]
    local = tmp_path / "local"
    manifest = build_single_local(spec, str(local), seed=3, seq_len=512, num_shards=2)
    reasons = {r for c in manifest["accounting"].values() for r in c["rejected"]}
    assert {"duplicate", "too_ambiguous", "illegal_letter"} <= reasons
    again = tmp_path / "again"
    build_single_local(list(reversed(spec)), str(again), seed=3, seq_len=512, num_shards=2)
    assert digests(again) == digests(local)
    # Beam through the command line: once from a JSON spec, once from --input arguments
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({"inputs": [{"path": str(DATA / p), "modality": m, "source": s} for p, m, s in SUBSET]}))
    common = ["--seed", "3", "--seq-len", "512", "--num-shards", "2"]
    runs = {
        1: ["--spec", str(spec_file)],
        2: [a for p, m, s in SUBSET for a in ("--input", f"{DATA / p}:{m}:{s}")] + ["--workers", "2"],
    }
    for workers, args in runs.items():
        dst = tmp_path / f"beam{workers}"
        r = subprocess.run([sys.executable, "-m", "bsm_data.cli", "data", "single", "--output", str(dst), *common, *args], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "dedup" in r.stdout and "documents" in r.stdout
        assert digests(dst) == digests(local), f"beam with {workers} worker(s) differs from the local engine"
