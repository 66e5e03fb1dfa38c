#!/usr/bin/env python
"""Derive a gene2accession file (NCBI's real 16-column layout) from GenBank GeneID db_xrefs.

Offline there is no real ``gene/DATA/gene2accession.gz``; NCBI builds that file from the same
GeneID cross-references its sequence records carry, so this script does the same on the bundled
GenBank files (``bsm_data.gene.derive_gene2accession`` documents the rules) and writes
``data/gene/gene2accession.derived.gz`` with deterministic bytes (gzip, mtime 0, no file name).

    .venv/bin/python scripts/derive_gene2accession.py                  # bundled data -> data/gene/
    .venv/bin/python scripts/derive_gene2accession.py --input 'x/*.gbff.gz' --output g2a.gz
    .venv/bin/python scripts/derive_gene2accession.py --check           # exit 1 if the file is stale
"""
from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bsm_data.gene import derive_gene2accession, format_gene2accession, write_gene2accession  # noqa: E402

GENBANK_PATTERNS = ("*.gb", "*.gbk", "*.gbff", "*.gb.gz", "*.gbk.gz", "*.gbff.gz")
DEFAULT_OUTPUT = ROOT / "data" / "gene" / "gene2accession.derived.gz"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", action="append", help="GenBank file or glob (repeatable); default: data/genbank")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT))
    p.add_argument("--check", action="store_true", help="do not write; fail when --output differs from a fresh derivation")
    args = p.parse_args(argv)
    patterns = args.input or [str(ROOT / "data" / "genbank" / pat) for pat in GENBANK_PATTERNS]
    paths = sorted({f for pat in patterns for f in glob.glob(pat)})
    if not paths:
        p.error(f"no GenBank files match {patterns}")
    rows, stats = derive_gene2accession(paths)
    if args.check:
        fresh = format_gene2accession(rows)
        current = gzip.decompress(Path(args.output).read_bytes()) if os.path.exists(args.output) else b""
        if current != fresh:
            print(f"{args.output} is stale: rerun {Path(__file__).name}", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date ({stats['rows']} rows)")
        return 0
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    write_gene2accession(rows, args.output)
    digest = hashlib.sha256(Path(args.output).read_bytes()).hexdigest()
    print(f"{args.output}: {stats['rows']} rows, {stats['gene_ids']} GeneIDs from {stats['records_with_gene_ids']} "
          f"of {stats['records']} records in {len(paths)} files (records without a taxon: {stats['no_taxon']})")
    print(f"sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
