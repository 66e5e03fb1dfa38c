"""Tokenize + pack + write throughput, padding fraction and bytes per token on real data.

    .venv/bin/python benchmarks/bench_pack.py            # all of data/genbank
    .venv/bin/python benchmarks/bench_pack.py --levels 3 6 9 12 15

Samples come from the real RefSeq spine (data/genbank, untimed). The timed part is exactly what
a bucket write does: encode every sample, best-fit pack into 1024-token rows, order them for
storage, build the Arrow table and serialise zstd Parquet (bytes in memory, so disk speed does not enter). One process,
one core. Targets (issue 2): >= 20M tokens/s per core, padding <= 2%, <= 0.35 bytes/token.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bsm_data import shards  # noqa: E402
from bsm_data.accounting import Accounting  # noqa: E402
from bsm_data.build import genbank_file_to_samples  # noqa: E402
from bsm_data.packing import pack, storage_order  # noqa: E402
from bsm_data.records import Sample  # noqa: E402
from bsm_data.vocab import encode_sample, load_vocab  # noqa: E402


def load_samples(seed: int) -> list[Sample]:
    acct = Accounting()
    out = []
    for path in sorted(glob.glob(str(ROOT / "data" / "genbank" / "*"))):
        out += [s for s in genbank_file_to_samples(path, acct, seed=seed, seq_len=1024, flank=100) if isinstance(s, Sample)]
    return out


def run_once(samples: list[Sample], level: int) -> tuple[float, int, int, int, int]:
    vocab = load_vocab()
    shards.ZSTD_LEVEL = level
    t0 = time.perf_counter()
    docs = [(s.sample_id, encode_sample(vocab, s.segments)) for s in samples]
    rows = pack(docs, 1024, seed=0)
    rows = rows.take(storage_order(rows, vocab.protein_ids, vocab.id_of["u"]))
    data = shards.parquet_bytes(shards.packed_table(rows), statistics=["n_tokens"])
    elapsed = time.perf_counter() - t0
    tokens = int(rows.n_tokens.sum())
    return elapsed, tokens, rows.n_rows * 1024 - tokens, len(data), rows.n_rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--levels", type=int, nargs="+", default=[shards.ZSTD_LEVEL])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"$ python benchmarks/bench_pack.py {' '.join(sys.argv[1:])}")
    samples = load_samples(seed=0)
    print(f"real samples: {len(samples)} from data/genbank ({os.cpu_count()} cpus visible, single process)")
    print(f"{'zstd':>5} {'tokens':>10} {'rows':>7} {'Mtok/s':>8} {'padding':>8} {'bytes/tok':>10}")
    for level in args.levels:
        best = min((run_once(samples, level) for _ in range(args.repeat)), key=lambda r: r[0])
        elapsed, tokens, pad, nbytes, rows = best
        print(f"{level:>5} {tokens:>10} {rows:>7} {tokens / elapsed / 1e6:>8.1f} {pad / (rows * 1024):>8.4f} {nbytes / tokens:>10.4f}")


if __name__ == "__main__":
    main()
