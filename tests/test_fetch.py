"""The fetch layer against a loopback server with injected faults, plus its pure parsers.

Every download test serves a real file (a gzipped GenBank file from data/genbank) from
tests/http_fault_server.py on 127.0.0.1; no other host is contacted. Sleeping is injected, so
backoff and Retry-After waits are recorded, not spent.
"""
import argparse
import gzip
import hashlib
import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest

from bsm_data.fetch import (
    DEFAULT_SPECIES,
    Checksum,
    Fetcher,
    FetchError,
    FetchItem,
    RateLimiter,
    VerificationError,
    add_fetch_parser,
    gene_urls,
    parse_assembly_summary,
    parse_content_range,
    parse_directory_listing,
    parse_md5_listing,
    parse_metalink,
    parse_retry_after,
    refseq_catalog_url,
    refseq_division_urls,
    refseq_species_urls,
    select_assemblies,
    uniprot_urls,
)

from .http_fault_server import Fault, FaultServer

GENBANK = Path(__file__).resolve().parents[1] / "data" / "genbank"
NAME = "GCF_000000001.1_test_genomic.gbff.gz"
PATH = f"/genomes/all/{NAME}"
MD5_PATH = "/genomes/all/md5checksums.txt"


@pytest.fixture(scope="module")
def gz() -> bytes:
    # a real GenBank file, gzipped at test time (mtime=0: same bytes every run); ~90 kB
    return gzip.compress((GENBANK / "NC_000932.gb").read_bytes(), mtime=0)


@pytest.fixture(scope="module")
def gz_other() -> bytes:
    return gzip.compress((GENBANK / "NC_005816.gb").read_bytes(), mtime=0)


@pytest.fixture
def server(gz):
    with FaultServer() as srv:
        srv.add_file(PATH, gz)
        srv.add_file(MD5_PATH, f"{hashlib.md5(gz).hexdigest()}  ./{NAME}\n".encode())
        yield srv


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_fetcher(tmp_path, sleeps):
    made = []

    def make(**kw):
        kw = {"sleep": sleeps.append, "seed": 0, "retries": 4, "timeout": 5, "chunk_size": 4096, "progress": False, **kw}
        f = Fetcher(tmp_path / "cache", **kw)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


def gets(srv, path=PATH):
    return [h for m, p, h in srv.requests if m == "GET" and p == path]


def log_entries(fetcher) -> list[dict]:
    return [json.loads(line) for line in fetcher.log_path.read_text().splitlines()]


def no_leftovers(final: Path):
    assert not final.exists()
    assert not final.with_name(final.name + ".part").exists()
    assert not final.with_name(final.name + ".part.json").exists()


# ---------------------------------------------------------------------------------------------
# downloads under faults
# ---------------------------------------------------------------------------------------------

def test_fetch_verifies_md5_and_logs(server, make_fetcher, gz, sleeps):
    f = make_fetcher()
    path = f.fetch(server.url(PATH), checksums_url=server.url(MD5_PATH))
    assert path.read_bytes() == gz
    assert path == f.cache_dir / "127.0.0.1" / "genomes" / "all" / NAME
    [e] = log_entries(f)
    assert e["status"] == "ok" and e["attempts"] == 1 and e["bytes"] == len(gz)
    assert e["md5"] == hashlib.md5(gz).hexdigest() and e["sha256"] == hashlib.sha256(gz).hexdigest()
    assert e["etag"] == server.files[PATH].etag and e["last_modified"] and e["url"] == server.url(PATH)
    assert {"path", "time"} <= e.keys() and sleeps == []


def test_connection_dropped_mid_body_resumes_with_range(server, make_fetcher, gz):
    server.add_fault(PATH, Fault(drop_after=30_000))
    f = make_fetcher()
    path = f.fetch(server.url(PATH), checksums_url=server.url(MD5_PATH))
    assert path.read_bytes() == gz
    first, second = gets(server)
    assert "Range" not in first
    start = int(second["Range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= 30_000  # picked up where the part file ended, not from zero
    assert second["If-Range"] == server.files[PATH].etag
    assert log_entries(f)[-1]["attempts"] == 2


def test_429_waits_for_retry_after(server, make_fetcher, gz, sleeps):
    server.add_fault(PATH, Fault(status=429, headers={"Retry-After": "7"}))
    path = make_fetcher().fetch(server.url(PATH))
    assert path.read_bytes() == gz
    assert sleeps == [7.0]


def test_503_with_http_date_retry_after(server, make_fetcher, gz, sleeps):
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    server.add_fault(PATH, Fault(status=503, headers={"Retry-After": format_datetime(when, usegmt=True)}))
    make_fetcher().fetch(server.url(PATH))
    assert len(sleeps) == 1 and 25 <= sleeps[0] <= 31


def test_retry_after_beyond_limit_is_a_clear_error(server, make_fetcher):
    server.add_fault(PATH, Fault(status=429, headers={"Retry-After": "86400"}))
    with pytest.raises(FetchError, match="retry after 86400s"):
        make_fetcher(max_retry_after=600).fetch(server.url(PATH))


def test_repeated_500s_give_up_with_clear_error(server, make_fetcher, sleeps):
    server.add_fault(PATH, Fault(status=500), times=10)
    f = make_fetcher(retries=4)
    with pytest.raises(FetchError) as err:
        f.fetch(server.url(PATH))
    msg = str(err.value)
    assert server.url(PATH) in msg and "HTTP 500" in msg and "4 attempts" in msg
    assert len(gets(server)) == 4
    # exponential backoff with jitter in [0.5, 1): 1, 2, 4 seconds scaled
    assert len(sleeps) == 3 and all(0.5 * 2**i <= s < 2**i for i, s in enumerate(sleeps))
    assert log_entries(f)[-1]["status"] == "failed"
    no_leftovers(f.path_for(server.url(PATH)))


def test_recovers_after_some_500s(server, make_fetcher, gz, sleeps):
    server.add_fault(PATH, Fault(status=500), times=2)
    path = make_fetcher(retries=4).fetch(server.url(PATH), checksums_url=server.url(MD5_PATH))
    assert path.read_bytes() == gz and len(sleeps) == 2 and len(gets(server)) == 3


def test_wrong_published_md5_is_refused(server, make_fetcher):
    server.add_file(MD5_PATH, f"{'0' * 32}  ./{NAME}\n".encode())
    f = make_fetcher()
    with pytest.raises(VerificationError, match="md5"):
        f.fetch(server.url(PATH), checksums_url=server.url(MD5_PATH))
    no_leftovers(f.path_for(server.url(PATH)))
    assert log_entries(f)[-1]["status"] == "rejected"
    assert len(gets(server)) == 1  # a single-piece download is not retried after a mismatch


def test_md5_mismatch_after_resume_gets_one_clean_retry(server, make_fetcher, gz):
    server.add_fault(PATH, Fault(drop_after=20_000))
    f = make_fetcher()
    with pytest.raises(VerificationError):
        f.fetch(server.url(PATH), md5="f" * 32)
    assert len(gets(server)) == 3  # dropped, resumed (mismatch), one fresh download (mismatch)
    assert "Range" not in gets(server)[2]
    no_leftovers(f.path_for(server.url(PATH)))


def test_truncated_gzip_with_consistent_length_is_refused(server, make_fetcher, gz):
    server.add_file(PATH, gz[: len(gz) // 2])  # Content-Length says exactly this: only gunzip can tell
    f = make_fetcher()
    with pytest.raises(VerificationError, match="gzip"):
        f.fetch(server.url(PATH))
    no_leftovers(f.path_for(server.url(PATH)))


def test_corrupt_gzip_is_refused(server, make_fetcher, gz):
    bad = bytearray(gz)
    bad[len(bad) // 2] ^= 0xFF
    server.add_file(PATH, bytes(bad))
    with pytest.raises(VerificationError, match="gzip"):
        make_fetcher().fetch(server.url(PATH))


def test_server_ignoring_range_restarts_from_zero(server, make_fetcher, gz):
    server.add_fault(PATH, Fault(drop_after=25_000))
    server.add_fault(PATH, Fault(ignore_range=True))
    path = make_fetcher().fetch(server.url(PATH), checksums_url=server.url(MD5_PATH))
    assert path.read_bytes() == gz
    assert "Range" in gets(server)[1]  # asked to resume, got 200 with the whole file
    assert len(gets(server)) == 2  # and wrote it from zero: no further repair needed


def test_remote_changed_between_attempts_restarts(server, make_fetcher, gz_other):
    # first response dies mid-body; then the remote file is replaced (new ETag)
    server.add_fault(PATH, Fault(drop_after=20_000, then=lambda s: s.add_file(PATH, gz_other)))
    f = make_fetcher()
    path = f.fetch(server.url(PATH))
    assert path.read_bytes() == gz_other  # the new version whole, not old head + new tail
    assert len(gets(server)) == 2
    second = gets(server)[1]
    assert second["If-Range"] != server.files[PATH].etag  # we sent the old validator; server said 200
    assert log_entries(f)[-1]["etag"] == server.files[PATH].etag


def test_changed_file_answered_206_anyway_is_not_mixed(server, make_fetcher):
    # A server that ignores If-Range and resumes from the new version: the new ETag must give it
    # away. A plain (not .gz) file with no md5, so no later check could catch a mixed file.
    old, new = (GENBANK / "NC_000932.gb").read_bytes(), (GENBANK / "NC_000866_phageT4.gbff").read_bytes()
    server.add_file("/plain.gb", old)
    server.add_fault("/plain.gb", Fault(drop_after=50_000, then=lambda s: s.add_file("/plain.gb", new)))
    server.add_fault("/plain.gb", Fault(ignore_if_range=True))
    path = make_fetcher().fetch(server.url("/plain.gb"))
    assert path.read_bytes() == new
    first, resumed, fresh = gets(server, "/plain.gb")
    assert resumed["Range"] == "bytes=50000-" and "Range" not in fresh  # the 206 was thrown away


def test_cache_hit_makes_no_body_request(server, make_fetcher, gz):
    url, sums = server.url(PATH), server.url(MD5_PATH)
    f = make_fetcher()
    first = f.fetch(url, checksums_url=sums)
    assert f.fetch(url, checksums_url=sums) == first
    assert len(gets(server)) == 1 and len(gets(server, MD5_PATH)) == 1
    # a new process: the log on disk is the memory; the md5 list is read again, the body is not
    g = make_fetcher()
    assert g.fetch(url, checksums_url=sums) == first
    assert len(gets(server)) == 1 and len(gets(server, MD5_PATH)) == 2
    assert log_entries(g)[-1]["status"] == "cached"
    # a local file that no longer matches its log entry is fetched again
    first.write_bytes(gz[:-1])
    assert make_fetcher().fetch(url, checksums_url=sums).read_bytes() == gz
    assert len(gets(server)) == 2


def test_new_published_md5_invalidates_cache(server, make_fetcher, gz, gz_other):
    url, sums = server.url(PATH), server.url(MD5_PATH)
    make_fetcher().fetch(url, checksums_url=sums)
    server.add_file(PATH, gz_other)
    server.add_file(MD5_PATH, f"{hashlib.md5(gz_other).hexdigest()}  ./{NAME}\n".encode())
    assert make_fetcher().fetch(url, checksums_url=sums).read_bytes() == gz_other


def test_part_left_by_an_interrupted_run_is_resumed(server, make_fetcher, gz):
    server.add_fault(PATH, Fault(drop_after=40_000))
    url = server.url(PATH)
    with pytest.raises(FetchError):
        make_fetcher(retries=1).fetch(url)
    final = make_fetcher().path_for(url)
    part = final.with_name(final.name + ".part")
    assert part.exists() and not final.exists()  # the partial file stays under its temporary name
    done = part.stat().st_size
    assert make_fetcher().fetch(url).read_bytes() == gz
    assert gets(server)[-1]["Range"] == f"bytes={done}-"


def test_whole_part_left_before_rename_is_accepted_on_416(server, make_fetcher, gz):
    # killed after the last byte but before the rename: the server answers 416 to bytes=N-
    f = make_fetcher()
    final = f.path_for(server.url(PATH))
    final.parent.mkdir(parents=True)
    final.with_name(final.name + ".part").write_bytes(gz)
    final.with_name(final.name + ".part.json").write_text(json.dumps(
        {"url": server.url(PATH), "etag": server.files[PATH].etag, "last_modified": None, "total": len(gz)}))
    assert f.fetch(server.url(PATH), checksums_url=server.url(MD5_PATH)).read_bytes() == gz
    [only] = gets(server)
    assert only["Range"] == f"bytes={len(gz)}-" and log_entries(f)[-1]["bytes"] == len(gz)


def test_404_fails_at_once(server, make_fetcher, sleeps):
    with pytest.raises(FetchError, match="HTTP 404"):
        make_fetcher().fetch(server.url("/missing.gz"))
    assert sleeps == [] and len(gets(server, "/missing.gz")) == 1


def test_file_missing_from_checksum_list_is_refused(server, make_fetcher):
    server.add_file(MD5_PATH, b"0123456789abcdef0123456789abcdef  ./other.gbff.gz\n")
    with pytest.raises(VerificationError, match="not listed"):
        make_fetcher().fetch(server.url(PATH), checksums_url=server.url(MD5_PATH))
    assert gets(server) == []


def test_metalink_size_is_enforced(server, make_fetcher, gz):
    meta = METALINK.replace("SIZE", str(len(gz) + 1)).replace("MD5", hashlib.md5(gz).hexdigest())
    server.add_file("/uniprot/RELEASE.metalink", meta.encode())
    server.add_file("/uniprot/uniprot_sprot.fasta.gz", gz)
    with pytest.raises(VerificationError, match="published"):
        make_fetcher().fetch(server.url("/uniprot/uniprot_sprot.fasta.gz"), checksums_url=server.url("/uniprot/RELEASE.metalink"))


def test_fetch_many_bounded_pool_and_collected_errors(server, make_fetcher, gz, gz_other):
    server.add_file("/b.gz", gz_other)
    server.add_fault("/b.gz", Fault(drop_after=1000))
    items = [FetchItem(server.url(PATH), checksums_url=server.url(MD5_PATH)), server.url("/b.gz"), server.url(PATH)]
    f = make_fetcher(max_workers=2)
    paths = f.fetch_many(items)
    assert [p.read_bytes() for p in paths] == [gz, gz_other, gz]
    assert len(gets(server)) == 1  # the duplicate item was fetched once
    with pytest.raises(FetchError) as err:
        f.fetch_many([server.url("/b.gz"), server.url("/nope.gz")])
    assert "1 of 2 downloads failed" in str(err.value) and "/nope.gz" in str(err.value)


def test_rate_limiter_spaces_requests():
    now, slept = [100.0], []

    def sleep(s):
        slept.append(s)
        now[0] += s

    lim = RateLimiter(3, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        lim.wait()
    assert slept == pytest.approx([1 / 3, 1 / 3, 1 / 3])


def test_ncbi_hosts_are_rate_limited(make_fetcher):
    f = make_fetcher()
    assert [(h, round(1 / lim.interval)) for h, lim in f._limiters.items()] == [("ncbi.nlm.nih.gov", 3)]
    assert round(1 / make_fetcher(api_key="k")._limiters["ncbi.nlm.nih.gov"].interval) == 10


def test_loopback_rate_limit_is_applied(server, make_fetcher, sleeps):
    f = make_fetcher(rate_limits={"127.0.0.1": 2.0}, clock=lambda: 0.0)  # frozen clock: every slot waits
    f.get_text(server.url(MD5_PATH))
    f.get_text(server.url(MD5_PATH))
    assert sleeps == [0.5]


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------

def parser():
    p = argparse.ArgumentParser(prog="bsm")
    add_fetch_parser(p.add_subparsers(dest="command", required=True))
    return p


def test_cli_url_target(server, tmp_path, capsys, gz):
    args = parser().parse_args(["fetch", "url", server.url(PATH), "--md5", hashlib.md5(gz).hexdigest(), "--cache", str(tmp_path / "c")])
    assert args.func(args, []) == 0
    out = capsys.readouterr().out.strip()
    assert Path(out).read_bytes() == gz
    args = parser().parse_args(["fetch", "url", server.url(PATH), "--md5", "0" * 32, "--cache", str(tmp_path / "d"), "--retries", "1"])
    assert args.func(args, []) == 1
    assert "md5" in capsys.readouterr().err


def test_cli_list_needs_no_download(tmp_path, capsys):
    for argv, expect in [
        (["fetch", "uniprot", "--set", "sprot", "--set", "uniref50"], ["uniprot_sprot.fasta.gz", "uniref50.fasta.gz"]),
        (["fetch", "gene"], ["gene2accession.gz", "gene_info.gz"]),
    ]:
        args = parser().parse_args(argv + ["--list", "--cache", str(tmp_path)])
        assert args.func(args, []) == 0
        assert [u.rsplit("/", 1)[-1] for u in capsys.readouterr().out.split()] == expect
    args = parser().parse_args(["fetch", "refseq", "--species", "Homo sapiens", "--workers", "2", "--email", "a@b.c"])
    assert args.species == ["Homo sapiens"] and args.workers == 2 and args.division is None
    with pytest.raises(SystemExit):
        parser().parse_args(["fetch", "refseq", "--species", "X", "--division", "fungi"])


def test_cli_refseq_division_end_to_end(server, tmp_path, capsys, monkeypatch, gz):
    # RELEASE_NUMBER -> division listing -> release catalogue md5 -> verified download
    monkeypatch.setattr("bsm_data.fetch.REFSEQ_RELEASE", server.url("/refseq/release"))
    name = "vertebrate_mammalian.1.genomic.gbff.gz"
    server.add_file("/refseq/release/RELEASE_NUMBER", b"229\n")
    server.add_file("/refseq/release/vertebrate_mammalian/", LISTING.encode())
    server.add_file(f"/refseq/release/vertebrate_mammalian/{name}", gz)
    server.add_file("/refseq/release/release-catalog/release229.files.installed",
                    f"{hashlib.md5(gz).hexdigest()}\t{name}\n".encode())
    argv = ["fetch", "refseq", "--division", "vertebrate_mammalian", "--cache", str(tmp_path)]
    args = parser().parse_args(argv + ["--list"])
    assert args.func(args, []) == 0
    assert len(capsys.readouterr().out.split()) == 4  # every genomic file in the listing
    server.add_file("/refseq/release/vertebrate_mammalian/", LISTING.split("vertebrate_mammalian.1.protein")[0].encode())
    args = parser().parse_args(argv)
    assert args.func(args, []) == 0
    assert Path(capsys.readouterr().out.strip()).read_bytes() == gz


def test_cli_refseq_species_lists_and_warns(server, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("bsm_data.fetch.REFSEQ_GENOMES", server.url("/genomes/refseq"))
    server.add_file("/genomes/refseq/vertebrate_mammalian/assembly_summary.txt", ASSEMBLY_SUMMARY.encode())
    server.add_file("/genomes/refseq/fungi/assembly_summary.txt", ASSEMBLY_SUMMARY.encode())
    args = parser().parse_args(["fetch", "refseq", "--species", "Homo sapiens", "Mucor saturninus", "--list", "--cache", str(tmp_path)])
    assert args.func(args, []) == 0
    out, err = capsys.readouterr()
    assert out.split() == [f"{ALL}/000/001/405/GCF_000001405.40_GRCh38.p14/GCF_000001405.40_GRCh38.p14_genomic.gbff.gz"]
    assert "Mucor saturninus" in err
    args = parser().parse_args(["fetch", "refseq", "--species", "Felis catus", "--list", "--cache", str(tmp_path)])
    with pytest.raises(SystemExit, match="--group"):
        args.func(args, [])


# ---------------------------------------------------------------------------------------------
# pure parsers, on samples in the real formats
# ---------------------------------------------------------------------------------------------

MD5CHECKSUMS = """\
5e0b5f0bd49c0d8d7c1c33b6d8f6c4a1  ./GCF_000001405.40_GRCh38.p14_assembly_report.txt
0a3b7d1c6f1c9e0b8f2e3d4c5b6a7980  ./GCF_000001405.40_GRCh38.p14_genomic.gbff.gz
9F8E7D6C5B4A39281706F5E4D3C2B1A0  ./GCF_000001405.40_GRCh38.p14_protein.faa.gz
1234567890abcdef1234567890abcdef  annotation_hashes.txt
"""

FILES_INSTALLED = """\
checksum\tfile name
2b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e\tvertebrate_mammalian.1.genomic.gbff.gz
3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f\tvertebrate_mammalian.1.rna.gbff.gz
1798341652\tcomplete.1.genomic.gbff.gz
"""


def test_parse_md5_listings():
    got = parse_md5_listing(MD5CHECKSUMS)
    assert got["GCF_000001405.40_GRCh38.p14_genomic.gbff.gz"] == Checksum("0a3b7d1c6f1c9e0b8f2e3d4c5b6a7980", None)
    assert got["GCF_000001405.40_GRCh38.p14_protein.faa.gz"].md5 == "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    assert "annotation_hashes.txt" in got and len(got) == 4
    cat = parse_md5_listing(FILES_INSTALLED)
    # the header and an old-style cksum CRC line are skipped, not trusted as md5
    assert sorted(cat) == ["vertebrate_mammalian.1.genomic.gbff.gz", "vertebrate_mammalian.1.rna.gbff.gz"]
    assert refseq_catalog_url("229\n") == "https://ftp.ncbi.nlm.nih.gov/refseq/release/release-catalog/release229.files.installed"


METALINK = """<?xml version="1.0" encoding="UTF-8"?>
<metalink xmlns="http://www.metalinker.org/" version="3.0">
<publisher><name>UniProt Consortium</name><url>https://www.uniprot.org</url></publisher>
<version>2025_01</version>
<files>
<file name="uniprot_sprot.fasta.gz">
<size>SIZE</size>
<verification>
<hash type="md5">MD5</hash>
</verification>
<resources>
<url location="ch" type="ftp">ftp://ftp.expasy.org/databases/uniprot/current_release/knowledgebase/complete/uniprot_sprot.fasta.gz</url>
<url location="uk" type="ftp">ftp://ftp.ebi.ac.uk/pub/databases/uniprot/current_release/knowledgebase/complete/uniprot_sprot.fasta.gz</url>
</resources>
</file>
<file name="reldate.txt"><size>150</size></file>
</files>
</metalink>
"""


def test_parse_metalink():
    got = parse_metalink(METALINK.replace("SIZE", "92156227").replace("MD5", "0123456789ABCDEF0123456789abcdef"))
    assert got["uniprot_sprot.fasta.gz"] == Checksum("0123456789abcdef0123456789abcdef", 92156227)
    assert got["reldate.txt"] == Checksum(None, 150)


HEADER = ("assembly_accession\tbioproject\tbiosample\twgs_master\trefseq_category\ttaxid\tspecies_taxid\torganism_name\t"
          "infraspecific_name\tisolate\tversion_status\tassembly_level\trelease_type\tgenome_rep\tseq_rel_date\tasm_name\t"
          "asm_submitter\tgbrs_paired_asm\tpaired_asm_comp\tftp_path\texcluded_from_refseq\trelation_to_type_material\t"
          "asm_not_live_date\tassembly_type\tgroup\tgenome_size\tgenome_size_ungapped\tgc_percent\treplicon_count\t"
          "scaffold_count\tcontig_count\tannotation_provider\tannotation_name\tannotation_date\ttotal_gene_count\t"
          "protein_coding_gene_count\tnon_coding_gene_count\tpubmed_id")


def row(acc, cat, taxid, org, status, date, asm, ftp):
    cols = [acc, "PRJNA0", "na", "", cat, taxid, taxid, org, "", "", status, "Chromosome", "Major", "Full", date, asm,
            "Submitter", "GCA_" + acc[4:], "identical", ftp, "", "", "na", "haploid", "group", "1", "1", "40", "1", "1", "1",
            "NCBI RefSeq", "x", "01/01/24", "1", "1", "0", "na"]
    return "\t".join(cols)


ALL = "https://ftp.ncbi.nlm.nih.gov/genomes/all/GCF"
# Format as published (37+ tab-separated columns, two '#' header lines). The human rows are the
# real accessions; the other rows are made-up examples of the same shape.
ASSEMBLY_SUMMARY = "\n".join([
    "##  See ftp://ftp.ncbi.nlm.nih.gov/genomes/README_assembly_summary.txt for a description of the columns in this file.",
    "#" + HEADER,
    row("GCF_000001405.40", "reference genome", "9606", "Homo sapiens", "latest", "2022/02/03", "GRCh38.p14",
        f"{ALL}/000/001/405/GCF_000001405.40_GRCh38.p14"),
    row("GCF_009914755.1", "na", "9606", "Homo sapiens", "latest", "2022/01/24", "T2T-CHM13v2.0",
        f"{ALL}/009/914/755/GCF_009914755.1_T2T-CHM13v2.0"),
    row("GCF_000001405.39", "reference genome", "9606", "Homo sapiens", "replaced", "2019/02/28", "GRCh38.p13",
        f"{ALL}/000/001/405/GCF_000001405.39_GRCh38.p13"),
    row("GCF_900000001.1", "na", "111", "Metschnikowia aff. pulcherrima", "latest", "2020/01/01", "ASM1v1",
        "ftp://ftp.ncbi.nlm.nih.gov/genomes/all/GCF/900/000/001/GCF_900000001.1_ASM1v1"),
    row("GCF_900000002.1", "representative genome", "222", "Metschnikowia bicuspidata", "latest", "2016/01/01", "ASM2v1",
        f"{ALL}/900/000/002/GCF_900000002.1_ASM2v1"),
    row("GCF_900000003.1", "na", "333", "Xylariales sp. PMI_506", "latest", "2018/01/01", "ASM3v1",
        f"{ALL}/900/000/003/GCF_900000003.1_ASM3v1"),
    row("GCF_900000004.1", "na", "444", "Homo sapiensis fictus", "latest", "2018/01/01", "ASM4v1", f"{ALL}/x"),
]) + "\n"


def test_parse_assembly_summary_and_species_urls():
    rows = parse_assembly_summary(ASSEMBLY_SUMMARY)
    assert len(rows) == 7 and rows[0]["assembly_accession"] == "GCF_000001405.40" and rows[0]["ftp_path"].endswith("GRCh38.p14")
    chosen = select_assemblies(rows, ["Homo sapiens", "Metschnikowia", "Xylariales", "Mucor saturninus"])
    assert [r["asm_name"] for r in chosen["Homo sapiens"]] == ["GRCh38.p14"]  # reference genome of the species, latest only
    assert [r["assembly_accession"] for r in chosen["Metschnikowia"]] == ["GCF_900000001.1", "GCF_900000002.1"]  # genus: each species
    assert len(chosen["Xylariales"]) == 1 and chosen["Mucor saturninus"] == []
    items = refseq_species_urls(ASSEMBLY_SUMMARY, ["Homo sapiens", "Metschnikowia"])
    assert items[0] == FetchItem(f"{ALL}/000/001/405/GCF_000001405.40_GRCh38.p14/GCF_000001405.40_GRCh38.p14_genomic.gbff.gz",
                                 checksums_url=f"{ALL}/000/001/405/GCF_000001405.40_GRCh38.p14/md5checksums.txt")
    assert items[1].url == f"{ALL}/900/000/001/GCF_900000001.1_ASM1v1/GCF_900000001.1_ASM1v1_genomic.gbff.gz"  # ftp:// -> https://
    assert len(DEFAULT_SPECIES) == 14


LISTING = """<html>
 <head>
  <title>Index of /refseq/release/vertebrate_mammalian</title>
 </head>
 <body>
<h1>Index of /refseq/release/vertebrate_mammalian</h1>
<pre>Name                                             Last modified      Size  <hr><a href="/refseq/release/">Parent Directory</a>                                                      -
<a href="vertebrate_mammalian.1.1.genomic.fna.gz">vertebrate_mammalian.1.1.genomic.fna.gz</a>          2025-01-06 10:12  1.0G
<a href="vertebrate_mammalian.1.genomic.gbff.gz">vertebrate_mammalian.1.genomic.gbff.gz</a>           2025-01-06 10:40  2.1G
<a href="vertebrate_mammalian.1.protein.faa.gz">vertebrate_mammalian.1.protein.faa.gz</a>            2025-01-06 09:58   20M
<a href="vertebrate_mammalian.1.rna.gbff.gz">vertebrate_mammalian.1.rna.gbff.gz</a>               2025-01-06 09:59  136M
<a href="vertebrate_mammalian.10.genomic.gbff.gz">vertebrate_mammalian.10.genomic.gbff.gz</a>          2025-01-06 11:02  1.9G
<a href="vertebrate_mammalian.2.genomic.gbff.gz">vertebrate_mammalian.2.genomic.gbff.gz</a>           2025-01-06 10:41  2.0G
<a href="vertebrate_mammalian.2.1.genomic.gbff.gz">vertebrate_mammalian.2.1.genomic.gbff.gz</a>         2025-01-06 10:41  2.0G
<a href="vertebrate_mammalian.wgs_mstr.gbff.gz">vertebrate_mammalian.wgs_mstr.gbff.gz</a>            2025-01-06 09:01  1.2M
<a href="vertebrate_other.1.genomic.gbff.gz">vertebrate_other.1.genomic.gbff.gz</a>                2025-01-06 09:01  1.2M
<a href="?C=M;O=A">Last modified</a>
<hr></pre>
</body></html>
"""


def test_parse_directory_listing_and_division_urls():
    names = parse_directory_listing(LISTING)
    assert "vertebrate_mammalian.1.genomic.gbff.gz" in names and not any(n.startswith(("/", "?")) for n in names)
    base = "https://ftp.ncbi.nlm.nih.gov/refseq/release"
    items = refseq_division_urls(LISTING, "vertebrate_mammalian", checksums_url="C")
    assert [i.url.rsplit("/", 1)[-1] for i in items] == [
        "vertebrate_mammalian.1.genomic.gbff.gz", "vertebrate_mammalian.2.genomic.gbff.gz",
        "vertebrate_mammalian.2.1.genomic.gbff.gz", "vertebrate_mammalian.10.genomic.gbff.gz"]  # numeric order
    assert items[0] == FetchItem(f"{base}/vertebrate_mammalian/vertebrate_mammalian.1.genomic.gbff.gz", checksums_url="C")
    both = refseq_division_urls(LISTING, "vertebrate_mammalian", kinds=["genomic", "rna"])
    assert "vertebrate_mammalian.1.rna.gbff.gz" in [i.url.rsplit("/", 1)[-1] for i in both] and len(both) == 5


def test_source_url_helpers():
    assert [i.url for i in gene_urls()] == ["https://ftp.ncbi.nlm.nih.gov/gene/DATA/gene2accession.gz",
                                           "https://ftp.ncbi.nlm.nih.gov/gene/DATA/gene_info.gz"]
    assert all(i.checksums_url is None for i in gene_urls())
    sp, u50 = uniprot_urls(["sprot", "uniref50"])
    root = "https://ftp.uniprot.org/pub/databases/uniprot/current_release"
    assert sp == FetchItem(f"{root}/knowledgebase/complete/uniprot_sprot.fasta.gz",
                           checksums_url=f"{root}/knowledgebase/complete/RELEASE.metalink")
    assert u50 == FetchItem(f"{root}/uniref/uniref50/uniref50.fasta.gz", checksums_url=f"{root}/uniref/uniref50/RELEASE.metalink")


def test_retry_after_and_content_range_parsing():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 60) == pytest.approx(60.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 + 60) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_content_range("bytes 100-199/1000") == (100, 199, 1000)
    assert parse_content_range("bytes */1000") == (None, None, 1000)
    assert parse_content_range("bytes 0-9/*") == (0, 9, None)
    assert parse_content_range("garbage") == (None, None, None)


def test_cache_paths_stay_inside_the_cache(make_fetcher):
    f = make_fetcher()
    assert f.path_for("https://h.org/a/b%20c.gz") == f.cache_dir / "h.org" / "a" / "b c.gz"
    with pytest.raises(ValueError):
        f.path_for("https://h.org/a/%2E%2E/x")
