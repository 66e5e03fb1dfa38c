"""Web extraction: documents/s on one core, against datatrove reading the same Parquet.

Input: the bundled FineWeb-Edu-schema sample (data/web/fineweb_edu_sample.parquet, 261 real
documentation pages, 2.5 MB of text) written ``--copies`` times into one temp Parquet file
(ids made unique per copy). These pages are far richer in sequences than FineWeb-Edu (about
one in eight is kept, against roughly one in a few thousand on the web) and 3x longer than the
average FineWeb-Edu document, so per-document figures here are pessimistic; MB/s is also shown.
``--prose-only`` uses only the 35 Python documentation pages (no sequences at all), closer to
what most web documents look like to the extractor.

Timed, best of ``--repeat``, one process, one datatrove task (no executor, no worker pool):
  r  datatrove ParquetReader alone (text + id columns, the pipeline's adapter): the baseline
  e  r + WebExtractor (find, judge and keep sequences, build samples, count)
  w  e + WebTaskWriter (per-task samples/rejects Parquet + accounting, to a temp dir)
The ratio is throughput(x) / throughput(r) on the same input, i.e. time(r) / time(x).
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from datatrove.pipeline.readers import ParquetReader  # noqa: E402

import pipelines.web as web  # noqa: E402

SAMPLE = ROOT / "data" / "web" / "fineweb_edu_sample.parquet"


def make_input(tmp: Path, copies: int, prose_only: bool = False) -> tuple[Path, int, int]:
    table = pq.read_table(SAMPLE)
    if prose_only:  # the 35 Python documentation pages: ordinary technical prose, no sequences
        keep = [i for i, fp in enumerate(table.column("file_path").to_pylist()) if "python3.11-doc" in fp]
        table = table.take(keep)
    parts = []
    for k in range(copies):
        ids = pa.array([f"{i}#copy{k}" for i in table.column("id").to_pylist()])
        parts.append(table.set_column(table.schema.get_field_index("id"), "id", ids))
    big = pa.concat_tables(parts)
    path = tmp / "in" / "bench.parquet"
    path.parent.mkdir()
    pq.write_table(big, path, compression="zstd")
    chars = sum(len(t) for t in big.column("text").to_pylist())
    return path, big.num_rows, chars


def reader(path: Path) -> ParquetReader:
    return ParquetReader(str(path.parent), glob_pattern=path.name, read_metadata=False, adapter=web._adapter)


def run_r(path: Path, _tmp: Path) -> int:
    return sum(1 for _ in reader(path)())


def run_e(path: Path, _tmp: Path) -> int:
    return sum(1 for d in web.WebExtractor()(reader(path)()) if d.id != web.ACCOUNTING_DOC)


def run_w(path: Path, tmp: Path) -> int:
    work = tmp / f"work-{time.perf_counter_ns()}"
    for _ in web.WebTaskWriter(str(work), num_shards=1)(web.WebExtractor()(reader(path)())):
        pass
    return len(pq.read_table(web.task_file(str(work), "rejects", 0))) + len(pq.read_table(web.task_file(str(work), "samples", 0)))


def best(fn, path: Path, tmp: Path, repeat: int) -> tuple[float, int]:
    times, out = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(path, tmp)
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--prose-only", action="store_true", help="only the Python documentation pages (no sequences)")
    args = ap.parse_args(argv)
    print(f"$ .venv/bin/python benchmarks/bench_web.py {shlex.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        path, n_docs, chars = make_input(tmp, args.copies, args.prose_only)
        what = "the 35 Python documentation pages" if args.prose_only else "the bundled sample"
        print(f"input: {n_docs} documents, {chars / 1e6:.1f} MB of text ({args.copies} copies of {what}; "
              f"{os.cpu_count()} cpus visible, one process, one task)")
        results = {}
        for key, label, fn in (("r", "datatrove read", run_r), ("e", "read + extract", run_e), ("w", "read + extract + write", run_w)):
            t, n = best(fn, path, tmp, args.repeat)
            results[key] = t
            print(f"  {key} {label:<24}{t * 1e3:9.1f} ms {n_docs / t:10.0f} docs/s {chars / t / 1e6:8.2f} MB/s")
        for key in ("e", "w"):
            print(f"  throughput ({key})/(r) = {results['r'] / results[key]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
