"""Download layer for NCBI RefSeq, NCBI Gene and UniProt: resumable, verified, cached.

A file reaches its final name only after it has been checked, so the pipelines, which read
final names only, never see a partial or corrupt download:

* the body is streamed to ``<name>.part`` (with ``<name>.part.json`` holding the validators
  needed to resume it), then verified, then renamed into place;
* verification: size (published or announced), md5 when one is published (NCBI
  ``md5checksums.txt``, the RefSeq release catalogue, UniProt ``RELEASE.metalink``), and a
  full streaming decompression of every ``.gz``, so a truncated gzip is refused even where no
  checksum exists (NCBI ``gene/DATA``);
* retries with exponential backoff and jitter on 429 (``Retry-After`` honoured), 5xx,
  connection errors and timeouts; resumption with ``Range`` + ``If-Range`` so a file that
  changed on the server restarts from zero instead of being stitched from two versions;
* a cache directory mirroring ``host/path`` with a JSON Lines fetch log; a file whose log
  entry, size and md5 still agree is not downloaded again.

Remote layouts assumed here (see also each helper):

* RefSeq release: ``/refseq/release/<division>/<division>.<n>[.<m>].{genomic,rna}.gbff.gz``;
  md5s in ``/refseq/release/release-catalog/release<N>.files.installed`` (N from
  ``/refseq/release/RELEASE_NUMBER``), lines ``<checksum> <file name>``.
* RefSeq genomes: ``/genomes/refseq/<group>/assembly_summary.txt`` gives ``ftp_path`` per
  assembly; the file is ``<ftp_path>/<basename(ftp_path)>_genomic.gbff.gz`` with
  ``<ftp_path>/md5checksums.txt`` beside it.
* NCBI Gene: ``/gene/DATA/gene2accession.gz`` and ``gene_info.gz``; nothing published to check
  them against, so size (Content-Length), ETag consistency and the gzip test.
* UniProt: every directory has ``RELEASE.metalink`` with size and md5 of each file.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import sys
import threading
import time
import xml.etree.ElementTree as ET
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, Iterable, NamedTuple
from urllib.parse import unquote, urlsplit

import requests
import urllib3

NCBI_FTP = "https://ftp.ncbi.nlm.nih.gov"
REFSEQ_RELEASE = f"{NCBI_FTP}/refseq/release"
REFSEQ_GENOMES = f"{NCBI_FTP}/genomes/refseq"
GENE_DATA = f"{NCBI_FTP}/gene/DATA"
UNIPROT = "https://ftp.uniprot.org/pub/databases/uniprot/current_release"

# The paper's Table 3 (Mucor saturninus is listed twice there; 14 distinct names), with the
# genomes/refseq group directory whose assembly_summary.txt lists each. Genus- or order-level
# names (Melampsora, Metschnikowia, Xylariales) match every organism_name that starts with them.
DEFAULT_SPECIES = {
    "Bubalus bubalis": "vertebrate_mammalian",
    "Camelus dromedarius": "vertebrate_mammalian",
    "Homo sapiens": "vertebrate_mammalian",
    "Macaca assamensis": "vertebrate_mammalian",
    "Macaca nigra": "vertebrate_mammalian",
    "Peromyscus californicus": "vertebrate_mammalian",
    "Fusarium annulatum": "fungi",
    "Melampsora": "fungi",
    "Metschnikowia": "fungi",
    "Mucor saturninus": "fungi",
    "Penicillium chermesinum": "fungi",
    "Sporopachydermia quercuum": "fungi",
    "Tranzscheliella williamsii": "fungi",
    "Xylariales": "fungi",
}
REFSEQ_GROUPS = ["archaea", "bacteria", "fungi", "invertebrate", "mitochondrion", "plant", "plasmid", "plastid",
                 "protozoa", "unknown", "vertebrate_mammalian", "vertebrate_other", "viral"]
UNIPROT_SETS = {
    "sprot": "knowledgebase/complete/uniprot_sprot.fasta.gz",
    "trembl": "knowledgebase/complete/uniprot_trembl.fasta.gz",
    "uniref50": "uniref/uniref50/uniref50.fasta.gz",
    "uniref90": "uniref/uniref90/uniref90.fasta.gz",
    "uniref100": "uniref/uniref100/uniref100.fasta.gz",
}
LOG_NAME = "fetch-log.jsonl"
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


class FetchError(RuntimeError):
    def __init__(self, message: str, *, url: str, status: str | None = None):
        super().__init__(message)
        self.url, self.status = url, status


class VerificationError(FetchError):
    """The bytes arrived but are not the published file; nothing was put at the final name."""


class Checksum(NamedTuple):
    md5: str | None
    size: int | None


@dataclass(frozen=True)
class FetchItem:
    """One file to fetch. ``checksums_url`` names a published list (md5checksums.txt,
    RELEASE.metalink, release<N>.files.installed) where the file's md5/size are looked up."""

    url: str
    md5: str | None = None
    size: int | None = None
    checksums_url: str | None = None


# ---------------------------------------------------------------------------------------------
# Pure parsers (tested on small real-format samples)
# ---------------------------------------------------------------------------------------------

def parse_md5_listing(text: str) -> dict[str, Checksum]:
    """``md5sum`` style lists: NCBI ``md5checksums.txt`` ("<md5>  ./<name>") and the RefSeq
    ``release<N>.files.installed`` catalogue ("<checksum>\\t<name>"). Lines whose checksum is
    not an md5 (older catalogues used ``cksum`` CRCs; headers) are skipped, not trusted."""
    out: dict[str, Checksum] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2 or not _MD5.match(parts[0]):
            continue
        name = parts[-1].lstrip("*")  # md5sum marks binary mode with '*'
        name = name[2:] if name.startswith("./") else name
        out[name] = Checksum(parts[0].lower(), None)
    return out


def parse_metalink(text: str) -> dict[str, Checksum]:
    """UniProt ``RELEASE.metalink`` (metalink 3, namespace http://www.metalinker.org/; v4 too):
    ``<file name=...><size>N</size><verification><hash type="md5">...``."""
    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    out: dict[str, Checksum] = {}
    for el in ET.fromstring(text).iter():
        if local(el.tag) != "file" or "name" not in el.attrib:
            continue
        md5 = size = None
        for child in el.iter():
            if local(child.tag) == "size" and (child.text or "").strip().isdigit():
                size = int(child.text.strip())
            elif local(child.tag) == "hash" and child.attrib.get("type", "").lower() == "md5":
                md5 = (child.text or "").strip().lower() or None
        out[el.attrib["name"]] = Checksum(md5, size)
    return out


def parse_checksums(name: str, text: str) -> dict[str, Checksum]:
    return parse_metalink(text) if name.endswith(".metalink") else parse_md5_listing(text)


def parse_assembly_summary(text: str) -> list[dict[str, str]]:
    """Rows of an NCBI ``assembly_summary.txt`` as dicts keyed by the header's column names.
    The header is the last '#' line before the data (newer files put a '#   See ...README'
    line before it); column 1 is named ``#assembly_accession`` there, '#' dropped here."""
    header: list[str] | None = None
    rows = []
    for line in text.splitlines():
        if line.startswith("#"):
            if "\t" in line:
                header = line.lstrip("#").strip(" ").split("\t")
            continue
        if not line.strip():
            continue
        if header is None:
            raise ValueError("assembly_summary: no '#assembly_accession\\t...' header line")
        fields = line.split("\t")
        rows.append(dict(zip(header, fields, strict=False)))
    return rows


_CATEGORY_RANK = {"reference genome": 0, "representative genome": 1}


def select_assemblies(rows: list[dict[str, str]], names: Iterable[str]) -> dict[str, list[dict[str, str]]]:
    """For each name: the current (``version_status == latest``) assemblies whose organism_name
    is the name or starts with it plus a space, one per species_taxid (the reference genome if
    there is one, else the representative, else the most recently released)."""
    out = {}
    for name in names:
        hits = [r for r in rows if r.get("version_status") == "latest"
                and (r.get("organism_name") == name or r.get("organism_name", "").startswith(name + " "))]
        best: dict[str, dict[str, str]] = {}
        for r in sorted(hits, key=lambda r: (_CATEGORY_RANK.get(r.get("refseq_category", ""), 9),
                                             _neg_date(r.get("seq_rel_date", "")), r["assembly_accession"])):
            best.setdefault(r.get("species_taxid") or r["assembly_accession"], r)
        out[name] = sorted(best.values(), key=lambda r: r["assembly_accession"])
    return out


def _neg_date(d: str) -> str:
    # seq_rel_date is YYYY/MM/DD; invert the digits so an ascending sort puts the newest first
    return "".join(str(9 - int(c)) if c.isdigit() else c for c in d)


def refseq_species_urls(summary_text: str, species: Iterable[str], *, suffix: str = "_genomic.gbff.gz") -> list[FetchItem]:
    """FetchItems for the chosen assemblies of ``species`` in one group's assembly_summary.txt.
    Names with no assembly there give nothing; ``select_assemblies`` tells which."""
    items = []
    for rows in select_assemblies(parse_assembly_summary(summary_text), species).values():
        for r in rows:
            base = https(r["ftp_path"].rstrip("/"))
            if not base or base == "na":
                continue
            items.append(FetchItem(f"{base}/{base.rsplit('/', 1)[-1]}{suffix}", checksums_url=f"{base}/md5checksums.txt"))
    return items


def https(url: str) -> str:
    # assembly_summary files from before ~2016 give ftp:// paths; the same tree is served over https
    return "https://" + url[len("ftp://"):] if url.startswith("ftp://") else url


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.extend(v for k, v in attrs if k == "href" and v)


def parse_directory_listing(html: str) -> list[str]:
    """File and directory names linked from an HTTP directory index (NCBI and UniProt serve
    Apache-style ``<a href="name">`` listings); parent links, sort links and absolute links
    to elsewhere are dropped."""
    p = _Links()
    p.feed(html)
    names = []
    for h in p.hrefs:
        if h.startswith(("?", "#", "/", "../")) or "://" in h or h == "./":
            continue
        names.append(unquote(h))
    return list(dict.fromkeys(names))


def refseq_division_urls(listing_html: str, division: str, *, kinds: Iterable[str] = ("genomic",),
                         base: str = REFSEQ_RELEASE, checksums_url: str | None = None) -> list[FetchItem]:
    """``<division>.<n>[.<m>].<kind>.gbff.gz`` files from the division directory's listing, in
    numeric order. ``kinds``: genomic (genome records with annotation) and/or rna."""
    kinds = set(kinds)
    pat = re.compile(rf"^{re.escape(division)}\.(\d+)(?:\.(\d+))?\.(\w+)\.gbff\.gz$")
    found = []
    for name in parse_directory_listing(listing_html):
        m = pat.match(name)
        if m and m.group(3) in kinds:
            found.append(((int(m.group(1)), int(m.group(2) or 0), m.group(3)), name))
    return [FetchItem(f"{base}/{division}/{name}", checksums_url=checksums_url) for _, name in sorted(found)]


def refseq_catalog_url(release_number: int | str, base: str = REFSEQ_RELEASE) -> str:
    return f"{base}/release-catalog/release{int(str(release_number).strip())}.files.installed"


def assembly_summary_url(group: str, base: str = REFSEQ_GENOMES) -> str:
    return f"{base}/{group}/assembly_summary.txt"


def gene_urls(base: str = GENE_DATA) -> list[FetchItem]:
    # gene/DATA publishes no md5 files: size + ETag + the gzip test are what we can check
    return [FetchItem(f"{base}/gene2accession.gz"), FetchItem(f"{base}/gene_info.gz")]


def uniprot_urls(sets: Iterable[str] = ("sprot",), base: str = UNIPROT) -> list[FetchItem]:
    items = []
    for s in sets:
        rel = UNIPROT_SETS[s]
        d = rel.rsplit("/", 1)[0]
        items.append(FetchItem(f"{base}/{rel}", checksums_url=f"{base}/{d}/RELEASE.metalink"))
    return items


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date."""
    if not value:
        return None
    v = value.strip()
    if v.isdigit():
        return float(v)
    try:
        when = parsedate_to_datetime(v)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """'bytes 100-199/1000' -> (100, 199, 1000); 'bytes */1000' -> (None, None, 1000)."""
    m = re.match(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", value or "")
    if not m:
        return None, None, None
    a, b, t = m.groups()
    return (int(a) if a else None, int(b) if b else None, int(t) if t and t != "*" else None)


class GzipChecker:
    """Streaming full decompression test. Accepts multi-member files (bgzip, concatenated
    gzips) and zero padding after the last member; anything else after it, a bad CRC or a
    missing end is refused. Output is discarded in bounded pieces (no memory blow-up)."""

    def __init__(self):
        self._d = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self._padding = False

    def feed(self, data: bytes) -> None:
        while data:
            if self._padding:
                if data.strip(b"\0"):
                    raise zlib.error("data after zero padding at the end of the gzip stream")
                return
            if self._d.eof:
                if not data.strip(b"\0"):
                    self._padding = True
                    return
                self._d = zlib.decompressobj(zlib.MAX_WBITS | 16)
            self._d.decompress(data, 1 << 20)
            data = self._d.unused_data if self._d.eof else self._d.unconsumed_tail

    def complete(self) -> bool:
        return self._d.eof or self._padding


class RateLimiter:
    """At most ``rate`` request starts per second, shared by all threads (even spacing: the
    simplest rule that keeps NCBI's 3/s, 10/s with an API key)."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.interval, self.clock, self.sleep = 1.0 / rate, clock, sleep
        self._next = float("-inf")
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self.clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self.sleep(slot - now)


# ---------------------------------------------------------------------------------------------
# Fetcher
# ---------------------------------------------------------------------------------------------

class _Retry(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


# Network failures worth another attempt. Plain OSError is not here on purpose: a full disk
# must fail at once, not be retried.
_NET_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


class Fetcher:
    """Downloads into ``cache_dir/<host>/<path>``; see the module docstring for the guarantees.

    ``retries`` is the number of attempts per file. ``sleep``, ``clock`` and ``seed`` are
    injectable so tests run without real waiting and with reproducible jitter."""

    def __init__(self, cache_dir: str | os.PathLike, *, session: requests.Session | None = None,
                 retries: int = 5, backoff: float = 1.0, backoff_max: float = 60.0,
                 max_retry_after: float = 600.0, max_workers: int = 4,
                 rate_limits: dict[str, float] | None = None, api_key: str | None = None,
                 email: str | None = None, timeout: float | tuple[float, float] = (30, 120),
                 chunk_size: int = 1 << 20, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, seed: int | None = None,
                 progress: bool | None = None):
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.retries, self.backoff, self.backoff_max = max(1, retries), backoff, backoff_max
        self.max_retry_after, self.max_workers = max_retry_after, max(1, max_workers)
        self.timeout, self.chunk_size, self.sleep, self.clock = timeout, chunk_size, sleep, clock
        self.progress = sys.stderr.isatty() if progress is None else progress
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        # NCBI's published limit is per client: 3 requests/s, 10/s with an API key.
        if rate_limits is None:
            rate_limits = {"ncbi.nlm.nih.gov": 10.0 if api_key else 3.0}
        self._limiters = {host: RateLimiter(r, clock=clock, sleep=sleep) for host, r in rate_limits.items()}
        self._own_session = session is None
        if session is None:
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=self.max_workers, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session
        # Accept-Encoding identity: raw bytes only. A server that gzips the transfer of a .gz
        # would otherwise be decoded by requests, and Content-Length / Range offsets would no
        # longer be file offsets.
        self._headers = {"User-Agent": "bsm-fetch/0.1" + (f" (mailto:{email})" if email else ""), "Accept-Encoding": "identity"}
        self._checksums: dict[str, dict[str, Checksum]] = {}
        self._path_locks: dict[Path, threading.Lock] = {}
        self.log_path = self.cache_dir / LOG_NAME
        self._index = self._read_log()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    # -- paths and the log ----------------------------------------------------------------------

    def path_for(self, url: str) -> Path:
        """Cache path mirroring the URL (host/path): distinct URLs never share a file name,
        even the many ``md5checksums.txt``."""
        u = urlsplit(url)
        parts = [u.hostname or "local"] + [unquote(p) for p in u.path.split("/") if p]
        if any(p in (".", "..") or "\0" in p for p in parts) or len(parts) < 2:
            raise ValueError(f"cannot map URL to a cache path: {url}")
        if u.query:
            parts[-1] += "_" + hashlib.sha1(u.query.encode()).hexdigest()[:12]
        return self.cache_dir.joinpath(*parts)

    def _read_log(self) -> dict[str, dict]:
        index: dict[str, dict] = {}
        if self.log_path.exists():
            for line in self.log_path.read_text().splitlines():
                try:
                    e = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash
                if e.get("status") in ("ok", "cached"):
                    index[e["url"]] = e
        return index

    def _log(self, entry: dict) -> None:
        entry = {**entry, "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        with self._lock:
            with self.log_path.open("a") as f:
                f.write(json.dumps(entry, sort_keys=True) + "\n")
            if entry["status"] in ("ok", "cached"):
                self._index[entry["url"]] = entry

    def _cached(self, url: str, final: Path, md5: str | None, size: int | None) -> dict | None:
        e = self._index.get(url)
        if not e or e.get("path") != str(final.relative_to(self.cache_dir)) or not final.is_file():
            return None
        have = final.stat().st_size
        if have != e.get("bytes") or (size is not None and have != size) or (md5 and e.get("md5") != md5.lower()):
            return None
        return e

    # -- requests -------------------------------------------------------------------------------

    def _limit(self, url: str) -> None:
        host = urlsplit(url).hostname or ""
        for suffix, limiter in self._limiters.items():
            if host == suffix or host.endswith("." + suffix):
                limiter.wait()

    def _delay(self, attempt: int, retry_after: float | None, url: str) -> float:
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                raise FetchError(f"{url}: server asks to retry after {retry_after:.0f}s (> {self.max_retry_after:.0f}s); giving up",
                                 url=url, status="429")
            return retry_after
        with self._lock:
            jitter = self._rng.uniform(0.5, 1.0)  # spreads retries of parallel workers apart
        return min(self.backoff_max, self.backoff * 2 ** (attempt - 1)) * jitter

    def _retrying(self, url: str, attempt_fn: Callable[[], object], counter: list[int]):
        """Run ``attempt_fn`` until it returns, at most ``retries`` times; sleep between tries."""
        last = "no attempt"
        for attempt in range(1, self.retries + 1):
            counter[0] += 1
            try:
                return attempt_fn()
            except _Retry as e:
                last, wait = e.reason, e.retry_after
            except _NET_ERRORS as e:
                last, wait = f"{type(e).__name__}: {e}", None
            if attempt < self.retries:
                self.sleep(self._delay(attempt, wait, url))
        raise FetchError(f"{url}: giving up after {self.retries} attempts; last: {last}", url=url, status=last)

    def _check_status(self, r: requests.Response, url: str) -> None:
        if r.status_code == 429 or r.status_code >= 500:
            raise _Retry(f"HTTP {r.status_code}", parse_retry_after(r.headers.get("Retry-After")))
        if r.status_code not in (200, 206):
            # 403/404 and friends will not change by asking again
            raise FetchError(f"{url}: HTTP {r.status_code} {r.reason}", url=url, status=f"HTTP {r.status_code}")

    def get_text(self, url: str) -> str:
        """A small index file (listing, summary, checksum list) into memory, with retries."""
        def attempt():
            self._limit(url)
            r = self.session.get(url, headers=self._headers, timeout=self.timeout)
            self._check_status(r, url)
            return r.text
        return self._retrying(url, attempt, [0])

    def checksums(self, url: str) -> dict[str, Checksum]:
        """The published checksum list at ``url``, parsed; fetched once per Fetcher."""
        with self._lock:
            hit = self._checksums.get(url)
        if hit is None:
            hit = parse_checksums(urlsplit(url).path, self.get_text(url))
            with self._lock:
                self._checksums[url] = hit
        return hit

    # -- the download ---------------------------------------------------------------------------

    def fetch(self, url: str, *, md5: str | None = None, expected_size: int | None = None,
              checksums_url: str | None = None) -> Path:
        """Download ``url`` (or find it in the cache) and return its verified final path."""
        final = self.path_for(url)
        with self._lock:
            path_lock = self._path_locks.setdefault(final, threading.Lock())
        with path_lock:  # one writer per .part: a second caller for the same file waits, then hits the cache
            return self._fetch(url, final, md5, expected_size, checksums_url)

    def _fetch(self, url: str, final: Path, md5: str | None, size: int | None, checksums_url: str | None) -> Path:
        rel = str(final.relative_to(self.cache_dir))
        part, meta_path = final.with_name(final.name + ".part"), final.with_name(final.name + ".part.json")
        counter = [0]
        try:
            if checksums_url and md5 is None:
                name = unquote(urlsplit(url).path).rsplit("/", 1)[-1]
                listed = self.checksums(checksums_url).get(name)
                if listed is None:
                    raise VerificationError(f"{url}: {name} is not listed in {checksums_url}", url=url, status="unlisted")
                md5, size = listed.md5, size if size is not None else listed.size
            md5 = md5.lower() if md5 else None
            hit = self._cached(url, final, md5, size)
            if hit:
                self._log({**hit, "status": "cached", "attempts": 0})
                return final
            final.parent.mkdir(parents=True, exist_ok=True)
            for fresh in (False, True):
                state = {"resumed": False}
                meta = self._retrying(url, lambda st=state: self._attempt(url, part, meta_path, st), counter)
                try:
                    digests = self._verify(url, part, meta, md5, size)
                    break
                except VerificationError:
                    self._discard(part, meta_path)
                    # A file stitched from several responses is the suspicious case: one clean
                    # download from zero before refusing. A single-piece mismatch is final.
                    if fresh or not state["resumed"]:
                        raise
            os.replace(part, final)
            meta_path.unlink(missing_ok=True)
        except FetchError as e:
            self._log({"url": url, "path": rel, "status": "rejected" if isinstance(e, VerificationError) else "failed",
                       "attempts": counter[0], "error": str(e)})
            raise
        self._log({"url": url, "path": rel, "bytes": final.stat().st_size, **digests, "etag": meta.get("etag"),
                   "last_modified": meta.get("last_modified"), "attempts": counter[0], "status": "ok"})
        return final

    def _attempt(self, url: str, part: Path, meta_path: Path, state: dict) -> dict:
        """One GET, appending to ``part`` when the server resumes exactly where we stopped."""
        meta = {}
        if meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text())
            except json.JSONDecodeError:
                meta = {}
        offset = part.stat().st_size if part.exists() else 0
        etag = meta.get("etag")
        # If-Range needs a strong validator: a strong ETag, else the Last-Modified date.
        validator = etag if etag and not etag.startswith("W/") else meta.get("last_modified")
        ranged = bool(offset and validator and meta.get("url") == url)
        headers = {**self._headers, "Range": f"bytes={offset}-", "If-Range": validator} if ranged else self._headers
        offset = offset if ranged else 0  # nothing we could prove is the same file: start over
        self._limit(url)
        with self.session.get(url, headers=headers, stream=True, timeout=self.timeout) as r:
            if r.status_code == 416 and offset:
                total = parse_content_range(r.headers.get("Content-Range"))[2]
                if total == offset and meta.get("total") == offset:
                    return meta  # the part was already whole (killed between last byte and rename)
                self._discard(part, meta_path)
                raise _Retry("HTTP 416 for our resume offset; restarting from zero")
            self._check_status(r, url)
            new_etag, new_lm = r.headers.get("ETag"), r.headers.get("Last-Modified")
            if r.status_code == 206:
                start, _, total = parse_content_range(r.headers.get("Content-Range"))
                changed = (etag and new_etag and new_etag != etag) or (not etag and meta.get("last_modified") != new_lm)
                if start != offset or not ranged or changed:
                    # resumed at the wrong byte, or from another version of the file: never mix
                    self._discard(part, meta_path)
                    raise _Retry(f"HTTP 206 at byte {start} of a changed or misplaced range (wanted {offset}); restarting")
                mode = "ab"
                state["resumed"] = True
            else:
                # 200: the whole file from byte 0, because the server ignores Range or because
                # If-Range told it our copy is of an older version
                offset, total, mode = 0, _int(r.headers.get("Content-Length")), "wb"
            meta = {"url": url, "etag": new_etag, "last_modified": new_lm, "total": total}
            meta_path.write_text(json.dumps(meta))  # before the body: a crash mid-body can resume
            with part.open(mode) as f, _bar(self.progress, total, offset, part.name) as bar:
                for chunk in r.raw.stream(self.chunk_size, decode_content=False):
                    f.write(chunk)
                    bar.update(len(chunk))
        got = part.stat().st_size
        if total is not None and got != total:
            raise _Retry(f"body ended at byte {got} of {total}")
        return meta

    def _verify(self, url: str, part: Path, meta: dict, md5: str | None, size: int | None) -> dict:
        got = part.stat().st_size

        def fail(why: str):
            raise VerificationError(f"{url}: refused, {why}", url=url, status="verification")

        if size is not None and got != size:
            fail(f"size {got} != published {size}")
        if meta.get("total") is not None and got != meta["total"]:
            fail(f"size {got} != announced {meta['total']}")
        h_md5, h_sha = hashlib.md5(), hashlib.sha256()
        gz = GzipChecker() if part.name.endswith(".gz.part") else None
        with part.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h_md5.update(block)
                h_sha.update(block)
                if gz:
                    try:
                        gz.feed(block)
                    except zlib.error as e:
                        fail(f"not a valid gzip stream ({e})")
        if md5 and h_md5.hexdigest() != md5:
            fail(f"md5 {h_md5.hexdigest()} != published {md5}")
        if gz and not gz.complete():
            fail("gzip stream is truncated (no end of member)")
        return {"md5": h_md5.hexdigest(), "sha256": h_sha.hexdigest()}

    @staticmethod
    def _discard(part: Path, meta_path: Path) -> None:
        part.unlink(missing_ok=True)
        meta_path.unlink(missing_ok=True)

    def fetch_many(self, items: Iterable[FetchItem | str]) -> list[Path]:
        """Fetch all items on ``max_workers`` threads; paths in input order. Every item is
        attempted; if any failed, one FetchError naming all failures is raised at the end."""
        items = [FetchItem(i) if isinstance(i, str) else i for i in items]

        def one(item: FetchItem):
            try:
                return self.fetch(item.url, md5=item.md5, expected_size=item.size, checksums_url=item.checksums_url)
            except FetchError as e:
                return e

        with ThreadPoolExecutor(self.max_workers) as pool:
            done = list(pool.map(one, items))
        errors = [e for e in done if isinstance(e, FetchError)]
        if errors:
            msg = f"{len(errors)} of {len(items)} downloads failed:\n" + "\n".join(f"  {e}" for e in errors)
            raise FetchError(msg, url=errors[0].url, status=errors[0].status)
        return done


def _int(v: str | None) -> int | None:
    return int(v) if v and v.strip().isdigit() else None


def _bar(enabled: bool, total: int | None, initial: int, name: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=name[:-5], leave=False, disable=not enabled)


# ---------------------------------------------------------------------------------------------
# Command line (wired into bsm_data/cli.py as `bsm fetch ...`)
# ---------------------------------------------------------------------------------------------

def add_fetch_parser(subparsers) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache", default=os.environ.get("BSM_CACHE", "out/cache"),
                        help="cache directory (files mirror host/path; fetch-log.jsonl). Default $BSM_CACHE or out/cache")
    common.add_argument("--workers", type=int, default=4, help="parallel downloads (default 4)")
    common.add_argument("--retries", type=int, default=5, help="attempts per file (default 5)")
    common.add_argument("--api-key", default=os.environ.get("NCBI_API_KEY"), help="NCBI API key: NCBI rate limit 10/s instead of 3/s")
    common.add_argument("--email", default=os.environ.get("NCBI_EMAIL"), help="contact address sent in the User-Agent")
    common.add_argument("--list", action="store_true", help="print the URLs that would be fetched, download nothing")

    p = subparsers.add_parser("fetch", help="download RefSeq / NCBI Gene / UniProt files into a verified cache")
    t = p.add_subparsers(dest="fetch_target", required=True)
    rs = t.add_parser("refseq", parents=[common], help="RefSeq GenBank flat files (.gbff.gz), per species or per release division")
    which = rs.add_mutually_exclusive_group()
    which.add_argument("--species", nargs="+", metavar="NAME", help="organism names (default: the paper's Table 3 list)")
    which.add_argument("--division", nargs="+", metavar="DIV", help="release divisions, e.g. vertebrate_mammalian, complete")
    rs.add_argument("--group", choices=REFSEQ_GROUPS, help="genomes/refseq group for species outside the default table")
    rs.add_argument("--kind", action="append", choices=["genomic", "rna"], help="division files to take (default genomic)")
    gene = t.add_parser("gene", parents=[common], help="NCBI Gene gene2accession.gz and gene_info.gz")
    uni = t.add_parser("uniprot", parents=[common], help="UniProtKB / UniRef FASTA")
    uni.add_argument("--set", dest="sets", action="append", choices=sorted(UNIPROT_SETS), help="default sprot; repeatable")
    one = t.add_parser("url", parents=[common], help="any single URL")
    one.add_argument("url")
    one.add_argument("--md5", help="expected md5 of the file")
    for sp in (rs, gene, uni, one):
        sp.set_defaults(func=cmd_fetch)
    return p


def fetch_items(args, fetcher: Fetcher) -> list[FetchItem]:
    """The FetchItems a parsed ``bsm fetch`` command asks for (index files are read here)."""
    if args.fetch_target == "gene":
        return gene_urls()
    if args.fetch_target == "uniprot":
        return uniprot_urls(args.sets or ["sprot"])
    if args.fetch_target == "url":
        return [FetchItem(args.url, md5=args.md5)]
    # module constants are read here, at call time, so tests can point them at a loopback server
    kinds = args.kind or ["genomic"]
    if args.division:
        release = fetcher.get_text(f"{REFSEQ_RELEASE}/RELEASE_NUMBER").strip()
        catalog = refseq_catalog_url(release, REFSEQ_RELEASE)
        items = []
        for div in args.division:
            listing = fetcher.get_text(f"{REFSEQ_RELEASE}/{div}/")
            items += refseq_division_urls(listing, div, kinds=kinds, base=REFSEQ_RELEASE, checksums_url=catalog)
        return items
    species = args.species or list(DEFAULT_SPECIES)
    by_group: dict[str, list[str]] = {}
    for name in species:
        group = args.group or DEFAULT_SPECIES.get(name)
        if group is None:
            raise SystemExit(f"bsm fetch refseq: no known group for {name!r}; pass --group (one of {', '.join(REFSEQ_GROUPS)})")
        by_group.setdefault(group, []).append(name)
    items = []
    for group, names in by_group.items():
        text = fetcher.get_text(assembly_summary_url(group, REFSEQ_GENOMES))
        chosen = select_assemblies(parse_assembly_summary(text), names)
        for name in names:
            if not chosen[name]:
                print(f"warning: no current RefSeq assembly for {name!r} in {group}/assembly_summary.txt", file=sys.stderr)
        items += refseq_species_urls(text, names)
    return items


def cmd_fetch(args, _rest=None) -> int:
    with Fetcher(args.cache, retries=args.retries, max_workers=args.workers, api_key=args.api_key, email=args.email) as fetcher:
        items = fetch_items(args, fetcher)
        if args.list:
            for it in items:
                print(it.url)
            return 0
        try:
            paths = fetcher.fetch_many(items)
        except FetchError as e:
            print(f"bsm fetch: {e}", file=sys.stderr)
            return 1
    for path in paths:
        print(path)
    return 0
