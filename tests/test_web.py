"""Web interleaved data (FineWeb-Edu): the extractor on every layout, its rejections, the >= 3
sequences rule and document order, precision/recall on the hand-labelled real documents, and the
datatrove pipeline end to end (shards + manifest, reconciled counts, resume after kill -9)."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bsm_data.accounting import Accounting
from bsm_data.readers import window
from bsm_data.shards import read_manifest, verify_file
from bsm_data.vocab import decode_sample, encode_sample, load_vocab, sample_overhead
from bsm_data.web import (
    COUNTED_ONLY,
    EVAL_MIN_RESIDUES,
    build_web_local,
    classify,
    document_to_samples,
    evaluate,
    extract_sequences,
    new_accounting,
    split_of,
    window_segments,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
SAMPLE = DATA / "web" / "fineweb_edu_sample.parquet"
LABELS = DATA / "web" / "labels.jsonl"
UNLABELLED = {f"bio:section-6.{i}" for i in range(2, 9)}  # the alignment-heavy sections were not labelled


def found(text):
    return [(f.modality, f.sequence, f.layout) for f in extract_sequences(text).found]


def rejected(text):
    return {(r.text, r.reason) for r in extract_sequences(text).rejected}


def fasta(path: Path, n: int = 1) -> list[tuple[str, list[str]]]:
    records, cur = [], None
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            if len(records) == n:
                break
            cur = (line, [])
            records.append(cur)
        elif cur is not None and line.strip():
            cur[1].append(line.strip())
    return records


# ------------------------------------------------------------------------------------ layouts


def test_fasta_block_wrapped_over_lines():
    (header, lines), = fasta(DATA / "protein" / "globins45.fa")
    doc = f"The first globin of the HMMER tutorial file:\n{header}\n" + "\n".join(lines) + "\nwhich is a myoglobin."
    assert found(doc) == [("protein", "".join(lines), "block")]
    assert len(lines) > 2 and len(lines[-1]) < len(lines[0])  # the short last line joins too


def test_dna_fasta_with_indentation_and_prompts():
    (header, lines), = fasta(DATA / "genbank" / "NC_005816.ffn")
    seq = "".join(lines[:3])
    doc = ">>> print(record.format('fasta'))\n  " + header + "\n" + "\n".join("  " + s for s in lines[:3]) + "\n  <BLANKLINE>"
    assert found(doc) == [("dna", seq, "block")]
    # a string continued on several prompt lines, with a prompt-only line in between
    cont = 'gene = Seq(\n  ...     "' + lines[0] + '"\n  ...        \n  ...     "' + lines[1] + '"\n  ... )'
    assert found(cont) == [("dna", lines[0] + lines[1], "block")]


def test_genbank_origin_groups_of_ten_with_positions():
    text = (DATA / "genbank" / "noref.gb").read_text().split("ORIGIN", 1)[1].split("//")[0]
    lines = text.split("\n")[1:5]
    doc = "The record ends with its sequence:\nORIGIN\n" + "\n".join(lines) + "\n//\n"
    expected = "".join(c for line in lines for c in line if c.isalpha()).upper()
    assert len(expected) == 240
    assert found(doc) == [("dna", expected, "block")]
    # a crawler that re-wrapped the 6th group onto its own line still gives one sequence
    rewrapped = "\n".join(part for line in lines for part in (line[:-11], line[-10:]))
    assert found("ORIGIN\n" + rewrapped + "\n//") == [("dna", expected, "block")]


def test_swissprot_sq_and_embl_trailing_numbers():
    dat = (DATA / "protein" / "emboss_swissprot100.dat").read_text().split("\nSQ ", 1)[1].split("\n")[1:4]
    doc = "SQ   SEQUENCE   472 AA;\n" + "\n".join(dat) + "\n//"
    assert found(doc) == [("protein", "".join(dat).replace(" ", ""), "block")]
    embl = "\n".join(f"     {line.strip().lower()} {60 * (i + 1):>9}" for i, line in enumerate(
        ["ggcaagatgg cgccggtggg ggtggagaag aagctgctgc taggtcccaa cgggcccgcg",
         "gtggcggccg ccggcgacct gaccagtgag gaggaggaag gccagagcct atggtcctcc"]))
    assert found(embl)[0][:2] == ("dna", "GGCAAGATGGCGCCGGTGGGGGTGGAGAAGAAGCTGCTGCTAGGTCCCAACGGGCCCGCGGTGGCGGCCGCCGGCGACCTGACCAGTGAGGAGGAGGAAGGCCAGAGCCTATGGTCCTCC")


def test_inline_runs_in_sentences_any_case():
    doc = ("The Illumina adapter 5'-GATCGGAAGAGCTCGTATGCCGTCTTCTGCTTG-3' was trimmed, and the "
           "lower-case primer tgcatgattggatacgtttga bound; its soft-masked copy agctTTTCATTCTGACTgcaac too. "
           "The mRNA AUGGCCAUUGUAAUGGGCCGCUGAAAGGGUGCCCGAUAG encodes MAIVMGRWKGARSNDIYFNFQRFNETNLILQRDASV.")
    assert found(doc) == [
        ("dna", "GATCGGAAGAGCTCGTATGCCGTCTTCTGCTTG", "inline"),
        ("dna", "TGCATGATTGGATACGTTTGA", "inline"),
        ("dna", "AGCTTTTCATTCTGACTGCAAC", "inline"),
        ("rna", "AUGGCCAUUGUAAUGGGCCGCUGAAAGGGUGCCCGAUAG", "inline"),
        ("protein", "MAIVMGRWKGARSNDIYFNFQRFNETNLILQRDASV", "inline"),
    ]


def test_code_strings_truncated_reprs_and_gapped_rows():
    doc = ("  >>> my_seq = Seq(\"GATCGATGGGCCTATATAGGATCGAAAATCGC\")\n"
           "  Seq('CGTAACAAGGTTTCCGTAGGTGAACCTGCGGAAGGATCATTGATGAGACCGTGG...CGC')\n"
           "O83071/192-246 MTCRAQLIAVPRASSLAE..AIACAQKM....RVSRV\n")
    got = found(doc)
    assert [m for m, _, _ in got] == ["dna", "dna", "protein"]
    assert got[2][1] == "MTCRAQLIAVPRASSLAEAIACAQKMRVSRV"  # gaps dropped


def test_alignment_rows_are_separate_sequences():
    rows = ["ACTAAGGCTCTCT-ACCCC----TCTCAGA", "ACTAAGGCTC-CTAACCCCCTTTTCTCAGA"]
    got = found("TabularMSA[DNA]\n" + "\n".join(rows) + "\n>>> score")
    assert [(m, layout) for m, _, layout in got] == [("dna", "rows"), ("dna", "rows")]
    # while two unrelated wrapped lines of one FASTA record are joined
    wrapped = ["TACGAGAATAATTTCTCATCATCCAGCTTTAACACAAAATTCGCACAGTTTTCGTTAAGA",
               "GAACTTAACATTTTCTTATGACGTAAATGAAGTTTATATATAAATTTCCTTTTTATTGGA"]
    assert found(">YAL068C\n" + "\n".join(wrapped)) == [("dna", "".join(wrapped), "block")]


def test_modality_rules():
    assert classify("ACGTACGATCGATCGGATCGATCGATTTAGC")[0] == "dna"
    assert classify("ACGUACGAUCGAUCGGAUCGAUCGAUUUAGC")[0] == "rna"
    assert classify("GCTGGTCARTTYGAYGGNTGGAGC")[0] == "dna"  # degenerate primer, IUPAC codes
    assert classify("MVLLLILSVLLLKEDVRGSAQSSERRVVAHMPGD")[0] == "protein"
    assert classify("mvllllilsvlllkedvrgsaqsserrvvahmpgd") == (None, "lowercase_protein")


# -------------------------------------------------------------------------------- rejections


@pytest.mark.parametrize("text,reason", [
    ("INTERNATIONALIZATION", "english_word"),
    ("PYTHONDONTWRITEBYTECODE", "english_word"),
    ("ACKNOWLEDGEMENTS", "english_word"),
    ("ACCEPTANCE", "english_word"),
    ("ACDEFGHIKLMNPQRSTVWY", "alphabet_listing"),
    ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "alphabet_listing"),
    ("AAAAAAAAAAAAAAAAAAAA", "low_complexity"),
    ("ACACACACACACACACACAC", "low_complexity"),
    ("ATGCATGCATGCATGCATGCATGC", "low_complexity"),
    ("AAAAACCCCCGGGGGTTTTT", "low_complexity"),
    ("QQQQQQQQQQQQPPPPPPPPPPQQQQ", "low_complexity"),
    ("ACGTAGCTAGCT", "too_short"),
    ("MAIVMGRWKGAR", "too_short"),
])
def test_classify_rejects(text, reason):
    assert classify(text) == (None, reason)


def test_english_identifiers_urls_hex_are_not_sequences():
    doc = """THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND. DEFINE the CAGE.
    PRIMER_THERMODYNAMIC_OLIGO_ALIGNMENT=1 and SQLITE_LIMIT_LENGTH are settings; ACKNOWLEDGEMENTS
    See https://www.ncbi.nlm.nih.gov/nuccore/GATTACAGATTACAGATTACAGGGATCC for the record.
    sha256: deadbeefcafebabe0123456789abcdefdeadbeefcafebabe0123456789abcdef; CAFEBABEDEADBEEFFACE
    INTERNATIONALIZATION PYTHONDONTWRITEBYTECODE ACDEFGHIKLMNPQRSTVWY"""
    ext = extract_sequences(doc)
    assert ext.found == []
    reasons = {r.text.split("/")[-1]: r.reason for r in ext.rejected}
    assert reasons["THERMODYNAMIC"] == "identifier"
    assert reasons["GATTACAGATTACAGATTACAGGGATCC"] == "url"
    assert reasons["CAFEBABEDEADBEEFFACE"] in ("hex_string", "english_word")
    assert reasons["INTERNATIONALIZATION"] == "english_word"
    assert reasons["ACDEFGHIKLMNPQRSTVWY"] == "alphabet_listing"
    assert "CAGE" not in reasons and "DEFINE" not in reasons  # too short to be candidates at all


def test_low_complexity_tables_are_rejected():
    # a codon table as printed by scikit-bio and Biopython: not sequences
    doc = ("  AAs  = FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG\n"
           "Base1  = TTTTTTTTTTTTTTTTCCCCCCCCCCCCCCCCAAAAAAAAAAAAAAAAGGGGGGGGGGGGGGGG\n"
           "Base2  = TTTTCCCCAAAAGGGGTTTTCCCCAAAAGGGGTTTTCCCCAAAAGGGGTTTTCCCCAAAAGGGG\n"
           "Base3  = TCAGTCAGTCAGTCAGTCAGTCAGTCAGTCAGTCAGTCAGTCAGTCAGTCAGTCAGTCAGTCAG\n")
    ext = extract_sequences(doc)
    assert ext.found == []
    reasons = {r.text: r.reason for r in ext.rejected}
    assert set(reasons.values()) == {"low_complexity", "too_short"}
    assert reasons["FFLLSSSSYY"] == "too_short"  # the '*' split the table row


# ------------------------------------------------------------------- documents and samples

SEQS = [  # real sequences from the Biopython tutorial and the primer3 manual
    ("dna", "ATGGCCATTGTAATGGGCCGCTGAAAGGGTGCCCGATAG"),
    ("protein", "MGGGMISKLFCLALIFLSSSGLAEKNTYTAKDILQNLELNTFGNSLSHGIYGKQTTFKQTEFTNIKSNTK"),
    ("rna", "AUGGCCAUUGUAAUGGGCCGCUGAAAGGGUGCCCGAUAG"),
    ("dna", "GACTGATCGATGCTAGCTACGATCGATCGATGCATGCTAGCTAGCTAGCTGCTAGC"),
]


def prose(seqs) -> str:
    return "".join(f"Step {i}: the sequence {s} is shown.\n" for i, (_, s) in enumerate(seqs))


def test_three_sequences_rule_and_document_order():
    acct = new_accounting()
    samples, rejects, _ = document_to_samples("d2", prose(SEQS[:2]), acct, source_file="f.parquet")
    assert samples == [] and [r.reason for r in rejects] == ["too_few_sequences"]
    samples, rejects, _ = document_to_samples("d0", "No sequences here, only prose.", acct, source_file="f.parquet")
    assert samples == [] and rejects == []  # no_candidates: counted, no row (nearly every web document)
    samples, rejects, _ = document_to_samples("d5", "Only a short run: ACGTACGTAC, and prose.", acct, source_file="f.parquet")
    assert samples == [] and [r.reason for r in rejects][-1:] == ["no_sequences"]
    # three copies of one sequence are one distinct sequence
    samples, rejects, _ = document_to_samples("d1", prose([SEQS[0]] * 3), acct, source_file="f.parquet")
    assert samples == [] and Counter(r.reason for r in rejects) == {"duplicate_in_document": 2, "too_few_sequences": 1}
    order = [SEQS[2], SEQS[0], SEQS[3], SEQS[1]]
    samples, rejects, _ = document_to_samples("d4", prose(order), acct, source_file="f.parquet")
    assert rejects == [] and len(samples) == 1
    s = samples[0]
    assert s.segments == tuple(order) and s.source == "web" and s.sample_id == "web:d4:w0"
    ids = encode_sample(load_vocab(), s.segments)
    assert len(ids) == s.n_tokens and decode_sample(load_vocab(), ids) == list(order)
    assert ids.tolist().count(load_vocab().sep) == 3
    acct.check()
    assert acct.stages["web_docs"].to_dict()["rejected"] == {"no_candidates": 1, "no_sequences": 1, "too_few_sequences": 2}


def test_long_documents_split_into_windows_of_whole_sequences():
    segs = [("dna", "A" * 30), ("protein", "M" * 25), ("rna", "G" * 20), ("dna", "C" * 130), ("dna", "T" * 10)]
    wins = window_segments(segs, 64)
    pieces = [s for _, s in window("C" * 130, 64)]  # the over-long sequence: cut by readers.window
    assert len(pieces) > 1
    assert [[len(s) for _, s in w] for w in wins] == [[30, 25], [20], *[[len(p)] for p in pieces], [10]]
    assert all(sample_overhead(len(w)) + sum(len(s) for _, s in w) <= 64 for w in wins)
    assert "".join(s for w in wins for _, s in w) == "".join(s for _, s in segs)
    acct = new_accounting()
    samples, _, _ = document_to_samples("long", prose(SEQS * 1), acct, source_file="f", seq_len=100)
    assert [s.window for s in samples] == list(range(len(samples))) and all(s.n_windows == len(samples) for s in samples)
    assert [seg for s in samples for seg in s.segments] == SEQS and all(s.n_tokens <= 100 for s in samples)
    assert acct.stages["web_window"].notes["split_documents"] == 1


# ----------------------------------------------------------------------- precision / recall


def _short_name(file_path: str) -> str:
    sys.path.insert(0, str(ROOT / "scripts"))
    from make_web_testset import short_name

    return short_name(file_path)


@pytest.fixture(scope="module")
def labelled():
    docs = pq.read_table(SAMPLE, columns=["id", "text", "file_path"]).to_pylist()
    labels = [json.loads(line) for line in LABELS.read_text().splitlines()]
    texts = {d["id"]: d["text"] for d in docs}
    for lab in labels:  # the resolved spans still point at the labelled text
        assert texts[lab["doc_id"]][lab["start"]:lab["end"]] == lab["text"]
    evaluated = {d["id"]: (d["text"], d["file_path"]) for d in docs if _short_name(d["file_path"]) not in UNLABELLED}
    return evaluated, labels


@pytest.mark.parametrize("split", ["dev", "heldout", "blind"])
def test_precision_recall_on_labelled_real_documents(labelled, split):
    texts, labels = labelled
    pred = {i: extract_sequences(t).found for i, (t, fp) in texts.items() if split_of(i, fp) == split}
    table = evaluate(pred, [lab for lab in labels if lab["doc_id"] in pred])["table"]
    assert table["all"]["labelled"] >= 50 and all(table[m]["labelled"] > 0 for m in ("dna", "rna", "protein"))
    for m in ("dna", "rna", "protein", "all"):
        assert table[m]["precision"] >= 0.95, (m, table[m])
        assert table[m]["recall"] >= 0.90, (m, table[m])


def test_evaluation_matching_rule():
    from bsm_data.web import Found

    labels = [{"doc_id": "d", "modality": "dna", "start": 0, "end": 40, "residues": 40}]
    hit = Found(10, 40, "dna", "A" * 30, "inline")          # covers 30 of 40: >= half the shorter
    wrong_modality = Found(0, 40, "protein", "M" * 40, "inline")
    assert evaluate({"d": [hit]}, labels)["table"]["all"]["recall"] == 1.0
    t = evaluate({"d": [wrong_modality]}, labels)["table"]
    assert t["protein"]["precision"] == 0.0 and t["dna"]["recall"] == 0.0
    short = Found(0, 19, "dna", "A" * 19, "inline")           # below EVAL_MIN_RESIDUES: not judged
    assert evaluate({"d": [short]}, labels)["table"]["all"]["predicted"] == 0 and EVAL_MIN_RESIDUES == 20


# --------------------------------------------------------------------------- datatrove


def digests(out: Path) -> dict[str, str]:
    files = [out / "manifest.json", *sorted((out).glob("*/part-*.parquet"))]
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def split_inputs(tmp_path_factory):
    """The bundled sample cut into 4 Parquet files (4 datatrove tasks)."""
    d = tmp_path_factory.mktemp("web_in")
    table = pq.read_table(SAMPLE)
    n = table.num_rows
    for i in range(4):
        pq.write_table(table.slice(n * i // 4, n * (i + 1) // 4 - n * i // 4), d / f"part-{i}.parquet")
    return d, n


@pytest.fixture(scope="module")
def reference(split_inputs, tmp_path_factory):
    """Uninterrupted datatrove run: 2 workers, 3 tasks over 4 files."""
    from pipelines.web import run

    d, _ = split_inputs
    out = tmp_path_factory.mktemp("web_ref")
    manifest = run([str(d)], str(out), num_shards=3, workers=2, tasks=3)
    return out, manifest


def test_pipeline_end_to_end(reference, split_inputs, tmp_path):
    out, manifest = reference
    _, n_docs = split_inputs
    assert read_manifest(str(out)) == manifest
    for entry in manifest["shards"] + [e for es in manifest["files"].values() for e in es]:
        verify_file(str(out), entry)
    acct = Accounting.from_dict(manifest["accounting"])
    acct.check()
    docs = acct.stages["web_docs"]
    assert docs.n_in == n_docs == docs.n_out + sum(docs.rejected.values())
    assert set(docs.rejected) <= {"no_candidates", "no_sequences", "too_few_sequences", "empty_text"}
    n_samples = sum(e["rows"] for e in manifest["files"]["samples"])
    assert n_samples == manifest["totals"]["documents"] >= docs.n_out > 10
    rejects = pq.read_table(out / "rejects").to_pylist() if (out / "rejects").exists() else []
    by_stage = Counter((r["stage"], r["reason"]) for r in rejects)
    for stage in ("web_docs", "web_sequences"):
        counted_only = {r: n for r, n in acct.stages[stage].rejected.items() if r in COUNTED_ONLY}
        assert {reason: n for (s, reason), n in by_stage.items() if s == stage} | counted_only == acct.stages[stage].rejected
    samples = pq.read_table(out / "samples").to_pylist()
    assert {s["source"] for s in samples} == {"web"} and all(len(s["segments"]) >= 1 for s in samples)
    stats = json.loads((out / "datatrove" / "stats.json").read_text())
    ext = next(s for s in stats if "Web sequences" in s["name"])["stats"]
    assert ext["documents_in"]["total"] == n_docs and ext["documents_kept"]["total"] == docs.n_out
    assert all(ext[f"sequences_{m}"]["total"] > 0 for m in ("dna", "rna", "protein"))
    # same bytes as the engine-free build, with any task and worker count
    local = tmp_path / "local"
    build_web_local(sorted(str(p) for p in split_inputs[0].glob("*.parquet")), str(local), num_shards=3)
    assert digests(local) == digests(out)


DRIVER = """
import sys, time
import pipelines.web as w
orig = w.WebExtractor.run
def slow(self, data, rank=0, world_size=1):
    time.sleep(0.6)  # make "mid-run" reachable: each task takes a while
    yield from orig(self, data, rank, world_size)
w.WebExtractor.run = slow
w.run([sys.argv[1]], sys.argv[2], num_shards=3, workers=1, tasks=4)
"""


def test_relaunch_after_kill_resumes_and_gives_identical_output(reference, split_inputs, tmp_path):
    from pipelines.web import run

    d, _ = split_inputs
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(d), str(out)], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = out / "datatrove" / "logs" / "extract" / "completions"
    deadline = time.time() + 30
    while time.time() < deadline and len(list(done.glob("*")) if done.exists() else []) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    completed = sorted(p.name for p in done.glob("*"))
    assert 2 <= len(completed) < 4, completed  # killed mid-run
    assert not (out / "manifest.json").exists()
    before = {p.name: p.stat().st_mtime_ns for p in (out / "datatrove" / "tasks").glob("*")}
    manifest = run([str(d)], str(out), num_shards=3, workers=1, tasks=4)
    after = {p.name: p.stat().st_mtime_ns for p in (out / "datatrove" / "tasks").glob("*")}
    for rank in completed:  # completed tasks were skipped, not redone
        assert after[f"accounting-{rank}.json"] == before[f"accounting-{rank}.json"]
    assert digests(out) == digests(reference[0])
    assert manifest == read_manifest(str(reference[0]))
    assert not list(out.rglob(".tmp-*"))


def test_cli_parser_refuses_unknown_arguments(tmp_path):
    import argparse

    from pipelines.web import add_web_parser

    parser = argparse.ArgumentParser(prog="bsm data")
    add_web_parser(parser.add_subparsers(dest="cmd"))
    args, rest = parser.parse_known_args(["web", "--output", str(tmp_path), "--min-sequences", "4", "--bogus"])
    assert args.min_sequences == 4 and args.workers == 1 and args.num_shards == 1 and rest == ["--bogus"]
    with pytest.raises(SystemExit):
        args.func(args, rest)
