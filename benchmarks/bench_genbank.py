"""Single-core throughput of GenBank -> GeneSequences against the parsers it is built on.

For each RefSeq-style file (read into memory once) it times, best of N:
  (a) Biopython SeqIO.parse alone            (b) gb-io load alone
  (c) gb-io load + touching every feature's kind / location / qualifiers (a materialised parse)
  (m) gb-io load + reading only the features and qualifiers extract_genbank needs: the floor
      for anything built on gb-io's Python objects
  (s) a lower bound for a pure-Python scanner of the raw text instead of gb-io: entries
      located, ORIGIN cleaned with bytes.translate, feature starts found and the wanted
      qualifiers of kept features captured by one regex each. It is deliberately incomplete
      (no quote-safety, no location parsing, no value normalisation, no model objects), so
      any real scanner is slower than this row
  (e) extraction alone: extract_genbank's per-gene work on records already parsed and
      converted (outside the timing); no parser change can remove this part
  (d) bsm_data.genbank.extract_genbank, complete (parse + extraction + translation check)
and prints MB/s, genes/s, the ratios (d)/(b), (d)/(c), (d)/(a), (d)/(m) of throughput, and the
ceilings (m)/(b) and (s)/(b), what (d)/(b) would be if extraction cost nothing, and (e)/(b),
what it would be if parsing cost nothing.
The acceptance bar is (d)/(b) >= 0.5 over all files together.

Run:  .venv/bin/python benchmarks/bench_genbank.py [--repeat N] [--data DIR]
"""
from __future__ import annotations

import argparse
import io
import os
import re
import shlex
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gb_io  # noqa: E402
from Bio import BiopythonParserWarning, SeqIO  # noqa: E402

from bsm_data.accounting import Accounting  # noqa: E402
from bsm_data.genbank import (  # noqa: E402
    KEPT_KINDS, WANTED_QUALIFIERS, _entries, _Extractor, _Parser, extract_genbank,
)
from bsm_data.records import GeneSequences, Reject  # noqa: E402

FILES = [
    "NC_000866_phageT4.gbff",
    "NC_000902_phageVT2.gbk",
    "NZ_LAEX_mycoplasma_mycoides.gbff",
    "NC_000932.gb",
    "NC_005816.gb",
]


def biopython_parse(data: bytes) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BiopythonParserWarning)
        return len(list(SeqIO.parse(io.StringIO(data.decode("latin-1")), "genbank")))


def gbio_load(data: bytes) -> int:
    return len(gb_io.load(io.BytesIO(data)))


def gbio_touch(data: bytes) -> int:
    n = 0
    for record in gb_io.load(io.BytesIO(data)):
        record.sequence
        for f in record.features:
            f.kind, f.location
            for q in f.qualifiers:
                q.key, q.value
            n += 1
    return n


def gbio_needed(data: bytes) -> int:
    """The floor for any gb-io based extractor: read only what extract_genbank reads."""
    n = 0
    for record in gb_io.load(io.BytesIO(data)):
        record.sequence
        for f in record.features:
            if f.kind in KEPT_KINDS:
                f.location
                for q in f.qualifiers:
                    if q.key in WANTED_QUALIFIERS:
                        q.value
                n += 1
    return n


_FEATURE_START = re.compile(r"\n     (\S+) +")
_WANTED_QUALIFIER = re.compile(
    r'\n {21}/(%s)(?:=("[^"]*"|[^\n]*))?(?=\n)' % "|".join(sorted(WANTED_QUALIFIERS, key=len, reverse=True))
)


def scan_floor(data: bytes) -> int:
    """Row (s): the least work a raw-text scanner must do (see the module docstring)."""
    n = 0
    for start, end in _entries(data):
        table = data.find(b"\nFEATURES ", start, end)
        table = data.find(b"\n", table + 1, end)
        origin = data.find(b"\nORIGIN", table, end)
        data[data.find(b"\n", origin + 1, end) : end].translate(None, b" 0123456789\n/")
        text = data[table : origin + 1].decode("latin-1")
        starts = list(_FEATURE_START.finditer(text))
        for m, after in zip(starts, starts[1:] + [None]):
            if m.group(1) in KEPT_KINDS:
                dict(_WANTED_QUALIFIER.findall(text, m.end(), after.start() if after else len(text)))
                n += 1
    return n


_converted: dict[bytes, list] = {}  # keyed by the file's bytes (their hash is computed once)


def extraction_only(data: bytes) -> int:
    """Row (e): the per-gene part of extract_genbank, on records converted once beforehand."""
    records = _converted.get(data)
    if records is None:
        parsed = _Parser(Accounting(), "refseq", "").batch(data)
        records = _converted[data] = [r for r in parsed if type(r) is not Reject]
    extractor = _Extractor(Accounting(), "refseq", "", 100)
    return sum(type(x) is GeneSequences for rec in records for x in extractor.record(rec))


def extract(data: bytes) -> int:
    return sum(type(x) is GeneSequences for x in extract_genbank(io.BytesIO(data), Accounting()))


def best_times(methods, data: bytes, repeat: int) -> dict[str, float]:
    """Best wall time per method; rounds interleave the methods so that drift in machine
    load hits all of them alike."""
    best = {name: float("inf") for name, *_ in methods}
    for name, fn, _ in methods:
        fn(data)  # warm-up: imports, codon tables, caches
    for round_ in range(repeat):
        for name, fn, n in methods:
            if round_ < n:
                t = time.perf_counter()
                fn(data)
                best[name] = min(best[name], time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20, help="best of N (Biopython uses N/3)")
    ap.add_argument("--data", default=str(ROOT / "data" / "genbank"))
    args = ap.parse_args()
    print("$", shlex.join([os.path.relpath(sys.executable), os.path.relpath(__file__), *sys.argv[1:]]))
    print(f"python {sys.version.split()[0]}, gb-io {gb_io.__version__}, one process, one core\n")

    methods = [("a biopython", biopython_parse, max(args.repeat // 3, 2)), ("b gb-io load", gbio_load, args.repeat),
               ("c gb-io touch", gbio_touch, args.repeat), ("m gb-io needed", gbio_needed, args.repeat),
               ("s scan floor", scan_floor, args.repeat), ("e extract only", extraction_only, args.repeat),
               ("d extract", extract, args.repeat)]
    totals = {name: 0.0 for name, *_ in methods}
    total_bytes = total_genes = 0
    header = f"{'file':34}{'MB':>7}{'genes':>7}" + "".join(f"{name:>16}" for name, *_ in methods)
    print(header + "   (MB/s)")
    for fname in FILES:
        data = (Path(args.data) / fname).read_bytes()
        genes = extract(data)
        times = best_times(methods, data, args.repeat)
        for name, t in times.items():
            totals[name] += t
        total_bytes += len(data)
        total_genes += genes
        mb = len(data) / 1e6
        print(f"{fname:34}{mb:7.2f}{genes:7d}" + "".join(f"{mb / times[name]:16.1f}" for name, *_ in methods))

    mb = total_bytes / 1e6
    print(f"\nall files: {mb:.2f} MB, {total_genes} genes")
    for name, *_ in methods:
        t = totals[name]
        print(f"  {name:18} {t * 1e3:8.1f} ms  {mb / t:8.1f} MB/s  {total_genes / t:10.0f} genes/s")
    d = totals["d extract"]
    for other in ("b gb-io load", "c gb-io touch", "a biopython", "m gb-io needed"):
        print(f"  throughput (d)/({other[0]}) = {totals[other] / d:.2f}")
    load = totals["b gb-io load"]
    for floor in ("m gb-io needed", "s scan floor"):
        print(f"  ceiling ({floor[0]})/(b) = {load / totals[floor]:.2f}   (d)/(b) if extraction cost nothing")
    print(f"  ceiling (e)/(b) = {load / totals['e extract only']:.2f}   (d)/(b) if parsing cost nothing")


if __name__ == "__main__":
    main()
