"""The RefSeq spine end to end on the bundled real GenBank files: local engine and Beam."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bsm_data.accounting import Accounting
from bsm_data.build import build_genbank_local
from bsm_data.cli import GENBANK_SUFFIXES
from bsm_data.query import connect, run_query
from bsm_data.schemas import SchemaError, to_table
from bsm_data.shards import ManifestError, read_manifest, read_shard, verify_file
from bsm_data.vocab import decode_sample, load_vocab

from .conftest import digests

ROOT = Path(__file__).resolve().parents[1]
GENBANK = sorted(str(p) for p in (ROOT / "data" / "genbank").iterdir() if p.name.endswith(GENBANK_SUFFIXES))
BSM = [sys.executable, "-m", "bsm_data.cli"]



@pytest.fixture(scope="module")
def local_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    manifest = build_genbank_local(GENBANK, str(out), seed=0, num_shards=2)
    return out, manifest


def test_all_genbank_processes_and_counts_reconcile(local_build):
    out, manifest = local_build
    acct = Accounting.from_dict(manifest["accounting"])
    acct.check()
    assert list(manifest["accounting"]) == ["parse", "extract", "validate", "pair", "pack"]
    assert manifest["accounting"]["parse"]["in"] >= 18
    assert manifest["accounting"]["pack"]["in"] == manifest["totals"]["documents"] > 1000
    con = connect(str(out))
    n_rejects = con.execute("SELECT count(*) FROM rejects").fetchone()[0]
    assert n_rejects == sum(manifest["reject_summary"].values()) > 0
    assert con.execute("SELECT count(*) FROM rejects WHERE reason = '' OR detail = ''").fetchone()[0] == 0
    # rejects on disk agree with the counters, reason by reason
    on_disk = dict(con.execute("SELECT stage || '/' || reason, count(*) FROM rejects GROUP BY ALL").fetchall())
    counted = {f"{s}/{r}": n for s, c in manifest["accounting"].items() for r, n in c["rejected"].items()}
    assert on_disk == counted


def test_manifest_matches_files_and_shards_decode(local_build):
    out, manifest = local_build
    vocab = load_vocab()
    assert manifest["vocab"] == vocab.describe()
    docs = 0
    for entry in manifest["shards"]:
        table = read_shard(str(out), entry)  # checks sha256 and schema version
        assert table.num_rows == entry["rows"]
        samples = pq.read_table(out / entry["path"].replace("shards/", "samples/")).to_pylist()
        seen = set()
        for row in table.to_pylist():
            assert len(row["tokens"]) == manifest["seq_len"]
            for start, i in zip(row["doc_starts"], row["sample_rows"]):
                segs = decode_sample(vocab, row["tokens"][start:])
                assert segs == [(s["modality"], s["sequence"]) for s in samples[i]["segments"]]
                seen.add(i)
                docs += 1
        assert seen == set(range(len(samples)))
    assert docs == manifest["totals"]["documents"]
    t = manifest["totals"]
    assert t["tokens"] + t["pad_tokens"] == t["rows"] * manifest["seq_len"]


def test_local_build_is_byte_identical_across_runs(local_build, tmp_path):
    out, _ = local_build
    build_genbank_local(list(reversed(GENBANK)), str(tmp_path), seed=0, num_shards=2)
    assert digests(tmp_path) == digests(out)


def test_seed_changes_output(local_build, tmp_path):
    out, manifest = local_build
    other = build_genbank_local(GENBANK, str(tmp_path), seed=1, num_shards=2)
    assert other["shards"][0]["sha256"] != manifest["shards"][0]["sha256"]


def test_beam_one_and_two_workers_match_local(local_build, tmp_path):
    out, _ = local_build
    for workers in (1, 2):
        dst = tmp_path / f"beam{workers}"
        subprocess.run([*BSM, "data", "refseq", "--output", str(dst), "--num-shards", "2", "--workers", str(workers)], check=True, cwd=ROOT, capture_output=True)
        assert digests(dst) == digests(out), f"beam with {workers} worker(s) differs from the local engine"


def visible_files_are_whole(out: Path) -> None:
    for p in out.rglob("*"):
        if p.is_file() and not p.name.startswith(".tmp-"):
            if p.suffix == ".parquet":
                pq.read_metadata(p)  # a partial parquet file has no footer and fails here
            elif p.name == "manifest.json":
                json.loads(p.read_text())


def run_and_kill(cmd: list[str], dst: Path, when: str) -> bool:
    """Start a build and SIGKILL it; return True when it was killed before its manifest landed."""
    started, t0 = time.time(), time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while proc.poll() is None and time.monotonic() - t0 < 120:
        if when == "first-file" and dst.exists() and any(p.is_file() and p.stat().st_mtime >= started for p in dst.rglob("*")):
            break  # this run has begun writing
        if when.startswith("after-") and time.monotonic() - t0 > float(when[6:]):
            break
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return not (dst / "manifest.json").exists()


def test_kill_and_rerun_leaves_no_partial_files_and_same_output(local_build, tmp_path):
    out, _ = local_build
    dst = tmp_path / "killed"
    cmd = [*BSM, "data", "refseq", "--output", str(dst), "--num-shards", "2"]
    interrupted = 0
    for when in ("first-file", "after-1.5", "first-file"):
        interrupted += run_and_kill(cmd, dst, when)
        if dst.exists():
            visible_files_are_whole(dst)
    assert interrupted >= 2, "the kills did not interrupt the build; the test proved nothing"
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    assert digests(dst) == digests(out)


def test_tampered_shard_and_foreign_vocab_are_refused(local_build, tmp_path):
    out, manifest = local_build
    dst = tmp_path / "copy"
    shutil.copytree(out, dst)
    shard = dst / manifest["shards"][0]["path"]
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="sha256"):
        verify_file(str(dst), manifest["shards"][0])
    m = json.loads((dst / "manifest.json").read_text())
    m["vocab"]["version"] = 99
    (dst / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ManifestError, match="vocabulary"):
        read_manifest(str(dst))


def test_writers_validate_rows_against_schemas():
    with pytest.raises(SchemaError):
        to_table("reject", [{"stage": "parse", "reason": None}])
    with pytest.raises(SchemaError):
        to_table("sample", [{"sample_id": "x", "n_tokens": "many"}])


def test_queries_from_readme(local_build):
    out, manifest = local_build
    per_modality = dict(connect(str(out)).execute("SELECT modality, sum(length) FROM segments GROUP BY ALL").fetchall())
    assert set(per_modality) == {"dna", "rna", "protein"}
    overhead = connect(str(out)).execute("SELECT sum(2 * len(segments) + 1) FROM samples").fetchone()[0]
    assert sum(per_modality.values()) + overhead == manifest["totals"]["tokens"]
    hist = run_query(str(out), "SELECT n_tokens // 128 * 128 AS bin, count(*) AS n FROM samples GROUP BY ALL ORDER BY bin", fmt="json")
    bins = [json.loads(line) for line in hist.splitlines()]
    assert sum(b["n"] for b in bins) == manifest["totals"]["documents"] and bins[-1]["bin"] <= 1024
    n_docs, doc_tokens = connect(str(out)).execute("SELECT count(*), sum(length) FROM documents").fetchone()
    assert (n_docs, doc_tokens) == (manifest["totals"]["documents"], manifest["totals"]["tokens"])
    shards = run_query(str(out), "SELECT sum(tokens) AS t FROM manifest_shards", fmt="csv")
    assert shards.splitlines()[1] == str(manifest["totals"]["tokens"])


def test_cli_validate_and_query(local_build):
    out, _ = local_build
    r = subprocess.run([*BSM, "validate", str(out)], check=True, cwd=ROOT, capture_output=True, text=True)
    assert "reconciles" in r.stdout
    r = subprocess.run([*BSM, "query", "SELECT stage, reason, count(*) AS n FROM rejects GROUP BY ALL ORDER BY n DESC", "--data", str(out), "--format", "csv"], check=True, cwd=ROOT, capture_output=True, text=True)
    assert r.stdout.startswith("stage,reason,n") and "pseudo" in r.stdout
