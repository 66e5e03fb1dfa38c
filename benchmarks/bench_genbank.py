"""Single-core throughput of GenBank -> GeneSequences against the parsers it is built on.

For each RefSeq-style file (read into memory once) it times, best of N:
  (a) Biopython SeqIO.parse alone            (b) gb-io load alone
  (c) gb-io load + touching every feature's kind / location / qualifiers (a materialised parse)
  (p) bsm_data.genbank.extract_genbank(engine="python"): gb-io for every entry, then the
      Python extraction (the reference path)
  (d) bsm_data.genbank.extract_genbank, default engine: the compiled fast path
      (bsm_data._gbfast), with entries outside its subset going through (p)'s path
  (s) GenBank -> pair samples: (d) plus pairing, as the RefSeq build runs it
      (bsm_data.build.genbank_file_to_samples: shuffled modalities joined by <sep>, windows;
      pair_gene's common case compiled too, bsm_data/csrc/pair.c)
and prints MB/s, genes/s, and the throughput ratios against (b), (a) and (p).
The acceptance bar is (s)/(b) >= 0.5 over all files together: GenBank -> samples at half of
gb-io's parse-only throughput or better.

Run:  .venv/bin/python benchmarks/bench_genbank.py [--repeat N] [--data DIR]
"""
from __future__ import annotations

import argparse
import io
import os
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
from bsm_data.build import genbank_file_to_samples  # noqa: E402
from bsm_data.genbank import extract_genbank  # noqa: E402
from bsm_data.records import GeneSequences, Sample  # noqa: E402

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


def extract_python(data: bytes) -> int:
    return sum(type(x) is GeneSequences
               for x in extract_genbank(io.BytesIO(data), Accounting(), engine="python"))


def extract(data: bytes) -> int:
    return sum(type(x) is GeneSequences
               for x in extract_genbank(io.BytesIO(data), Accounting(), engine="compiled"))


def samples(data: bytes) -> int:
    items = genbank_file_to_samples(io.BytesIO(data), Accounting(), seed=0, seq_len=1024, flank=100)
    return sum(type(x) is Sample for x in items)


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
               ("c gb-io touch", gbio_touch, args.repeat), ("p extract python", extract_python, args.repeat),
               ("d extract", extract, args.repeat), ("s samples", samples, args.repeat)]
    totals = {name: 0.0 for name, *_ in methods}
    total_bytes = total_genes = 0
    header = f"{'file':34}{'MB':>7}{'genes':>7}" + "".join(f"{name:>18}" for name, *_ in methods)
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
        print(f"{fname:34}{mb:7.2f}{genes:7d}" + "".join(f"{mb / times[name]:18.1f}" for name, *_ in methods))

    mb = total_bytes / 1e6
    print(f"\nall files: {mb:.2f} MB, {total_genes} genes")
    for name, *_ in methods:
        t = totals[name]
        print(f"  {name:18} {t * 1e3:8.1f} ms  {mb / t:8.1f} MB/s  {total_genes / t:10.0f} genes/s")
    def ratio(x: str, y: str) -> str:
        return f"  throughput ({x[0]})/({y[0]}) = {totals[y] / totals[x]:.2f}"

    print(ratio("s samples", "b gb-io load") + "   <- acceptance: >= 0.5")
    print(ratio("s samples", "a biopython"))
    for other in ("b gb-io load", "c gb-io touch", "a biopython", "p extract python"):
        print(ratio("d extract", other))
    print(ratio("p extract python", "b gb-io load") + "   (the Python path alone)")


if __name__ == "__main__":
    main()
