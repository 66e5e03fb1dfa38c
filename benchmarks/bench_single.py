"""Single-modal FASTA -> packed shards: tokens/s on one core, against Biopython's SeqIO.parse.

Input: every bundled FASTA file (data/protein/*.fa *.faa, data/ncrna/*.fa *.fasta,
data/genbank/*.faa *.ffn), concatenated per modality into three temp files, ``--copies``
times. Copy k rotates every sequence by k residues, so copies are real sequences but not exact
duplicates (the dedup would otherwise drop every copy after the first and skip windowing,
tokenizing and packing); duplicates inside a file stay duplicates in every copy.

Timed, best of ``--repeat``, one process:
  a  Biopython: ``for rec in SeqIO.parse(path, "fasta"): len(rec.seq)`` (parse only)
  r  bsm_data.readers.read_fasta alone (parse only, like a)
  e  entries_for_file: read + modality/alphabet check + normalise + length
  s  iter_single: e + cross-file dedup + windows -> Sample objects
  b  build_single_local: s + tokenize + best-fit pack + zstd Parquet shards, samples, rejects
     and manifest written to a temp dir (the whole ``bsm data single --engine local``)
tokens = documents' tokens in the shards (residues + 3 per document). The ratio is
throughput(x) / throughput(a) on the same input, i.e. time(a) / time(x).
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

from Bio import SeqIO  # noqa: E402

from bsm_data.accounting import Accounting  # noqa: E402
from bsm_data.readers import read_fasta  # noqa: E402
from bsm_data.single import SpecEntry, build_single_local, entries_for_file, expand_spec, iter_single, new_accounting  # noqa: E402

DATA = ROOT / "data"
SOURCES = {  # modality -> bundled FASTA files
    "protein": ["protein/flybase_chr2R_proteins.faa", "protein/globins45.fa", "genbank/NC_000932.faa", "genbank/NC_005816.faa"],
    "rna": ["ncrna/LSU_chloro_rRNA.fa", "ncrna/SSU-mito-rRNA.fa", "ncrna/SSU_chloro_rRNA.fa", "ncrna/bacteria-archea16SrRNA.fa"],
    "dna": ["ncrna/ls_orchid.fasta", "genbank/NC_005816.ffn"],
}


def make_inputs(tmp: Path, copies: int) -> list[SpecEntry]:
    spec = []
    for modality, names in SOURCES.items():
        records = [(e.seq_id, e.sequence) for name in names for e in read_fasta(DATA / name)]
        path = tmp / f"bench_{modality}.fa"
        with open(path, "w") as fh:
            for k in range(copies):
                for seq_id, seq in records:
                    r = k % len(seq)
                    rotated = seq[r:] + seq[:r]
                    fh.write(f">{seq_id}_copy{k}\n")
                    fh.writelines(rotated[i : i + 80] + "\n" for i in range(0, len(rotated), 80))
        spec.append(SpecEntry(str(path), modality, "bench"))
    return spec


def best(fn, repeat: int):
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=4, help="copies of the bundled FASTA data (each rotated)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N")
    args = ap.parse_args()
    print("$ .venv/bin/python benchmarks/bench_single.py " + shlex.join(sys.argv[1:]))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = make_inputs(tmp, args.copies)
        files = expand_spec(spec)
        paths = [f.path for f in files]
        size = sum(os.path.getsize(p) for p in paths)

        def biopython():
            return sum(len(rec.seq) for p in paths for rec in SeqIO.parse(p, "fasta"))

        def readers_only():
            return sum(len(e.sequence) for p in paths for e in read_fasta(p))

        def entries():
            acct = new_accounting()
            return sum(1 for f in files for _ in entries_for_file(f.path, f.modality, f.source, acct, fmt=f.fmt))

        def samples():
            acct = new_accounting()
            n = sum(1 for _ in iter_single(files, acct, seq_len=1024))
            acct.check()
            return n

        def build():
            return build_single_local(spec, str(tmp / "out"), seed=0, seq_len=1024, num_shards=1)

        t_bio, residues = best(biopython, args.repeat)
        t_read, residues_read = best(readers_only, args.repeat)
        assert residues_read == residues, (residues_read, residues)
        t_entries, _ = best(entries, args.repeat)
        t_samples, _ = best(samples, args.repeat)
        t_build, manifest = best(build, args.repeat)
        Accounting.from_dict(manifest["accounting"]).check()
        tokens = manifest["totals"]["tokens"]
        acc = manifest["accounting"]
        print(f"input: {len(paths)} FASTA files, {size / 1e6:.1f} MB, {acc['read']['in']} entries, {residues / 1e6:.1f}M residues "
              f"({args.copies} rotated copies of the bundled FASTA; {os.cpu_count()} cpus visible, one process)")
        print(f"kept: {acc['dedup']['out']} entries after dedup -> {manifest['totals']['documents']} documents, "
              f"{tokens / 1e6:.1f}M tokens, {manifest['totals']['rows']} rows, padding {manifest['totals']['padding_fraction']:.4f}")
        print(f"{'step':<44}{'time':>9}{'MB/s':>9}{'Mtok/s':>9}{'vs a':>7}")
        for label, t in (
            ("a Biopython SeqIO.parse (parse only)", t_bio),
            ("r readers.read_fasta (parse only)", t_read),
            ("e + alphabet, normalise, length", t_entries),
            ("s + dedup, windows -> samples", t_samples),
            ("b + tokenize, pack, write shards (full)", t_build),
        ):
            print(f"{label:<44}{t * 1e3:>7.0f}ms{size / t / 1e6:>9.1f}{tokens / t / 1e6:>9.2f}{t_bio / t:>7.2f}")


if __name__ == "__main__":
    main()
