"""Decontamination: recall on planted copies and throughput, against MMseqs2 ``easy-search``.

Data (the same for both tools, in one run):
  targets  the published evaluation test sets (``bsm_data.evalsets.PUBLISHED``: ncRPI, PPI,
           ProtStab test+valid, nRC, DMS wild types): nucleotide and protein items;
  queries  every segment of the real training samples built from the bundled data (single-modal
           data/ncrna, data/protein, data/genbank sequences + RefSeq pair samples of every
           data/genbank file), plus ``--per-kind`` planted copies of real test items per kind and
           alphabet (``bsm_data.decontam.plant_contamination``: exact, embedded, 5 % / 10 %
           substitutions, reverse complement, 50 % truncation, reverse complement + 5 %
           embedded, 1,000-residue windows with 5 % of long items).

Timed (wall clock, best of ``--repeat``; input preparation not counted):
  bsm      ContaminationIndex.build + decontaminate() over every sample (one process, one thread)
  mmseqs   ``mmseqs easy-search`` per alphabet (createdb, prefilter, align, convert), protein
           search and ``--search-type 3`` (nucleotide), ``--min-seq-id 0.9``, ``--max-seqs``
           raised so a copy of one ProtStab design can report the whole family, ``--threads``
Recall: a planted copy is found when the tool reports its (sample segment, item) pair (bsm: any
match in that sample; MMseqs2: a hit of that segment on that item at >= 90 % identity).
MMseqs2 is optional: when ``mmseqs`` is not on PATH the comparison is skipped (apt-get install
mmseqs2).
"""
from __future__ import annotations

import argparse
import glob
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bsm_data.accounting import Accounting  # noqa: E402
from bsm_data.build import genbank_file_to_samples  # noqa: E402
from bsm_data.decontam import ContaminationIndex, Decontaminator, alphabet_of, plant_contamination  # noqa: E402
from bsm_data.evalsets import PUBLISHED, builtin_items  # noqa: E402
from bsm_data.records import Sample  # noqa: E402
from bsm_data.single import default_spec, expand_spec, iter_single, new_accounting  # noqa: E402

DATA = ROOT / "data"


def real_samples() -> list[Sample]:
    singles = [s for s in iter_single(expand_spec(default_spec(DATA)), new_accounting(), seq_len=1024) if isinstance(s, Sample)]
    acct = Accounting()
    pairs = [s for f in sorted(glob.glob(str(DATA / "genbank" / "*.gb*")))
             for s in genbank_file_to_samples(f, acct, seed=0, seq_len=1024, flank=100) if isinstance(s, Sample)]
    return singles + pairs


def run_bsm(items, samples, repeat: int):
    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        index = ContaminationIndex.build(items)
        t1 = time.perf_counter()
        d = Decontaminator(index)
        removed = sum(not isinstance(x, Sample) for x in d(samples, Accounting()))
        t2 = time.perf_counter()
        if best is None or t2 - t0 < best[0]:
            best = (t2 - t0, t1 - t0, t2 - t1, d.matches, removed)
    return best


def write_fasta(path: Path, records) -> None:
    with open(path, "w") as fh:
        for name, seq in records:
            fh.write(f">{name}\n{seq}\n")


def run_mmseqs(mmseqs: str, items, samples, tmp: Path, threads: int, max_seqs: int, repeat: int):
    """Returns (seconds, {alphabet: seconds}, set of (sample number, item number) hits >= 90 %)."""
    for alphabet in ("nucleotide", "protein"):
        norm = (lambda x: x.replace("U", "T")) if alphabet == "nucleotide" else (lambda x: x)
        write_fasta(tmp / f"{alphabet}_targets.fa", ((f"i{i}", norm(it.sequence)) for i, it in enumerate(items) if alphabet_of(it.modality) == alphabet))
        write_fasta(tmp / f"{alphabet}_queries.fa", ((f"s{si}_{gi}", norm(seq)) for si, s in enumerate(samples)
                                                    for gi, (m, seq) in enumerate(s.segments) if alphabet_of(m) == alphabet))
    best = None
    for _ in range(repeat):
        times, hits = {}, set()
        for alphabet in ("nucleotide", "protein"):
            out = tmp / f"{alphabet}.m8"
            work = tmp / f"work_{alphabet}"
            shutil.rmtree(work, ignore_errors=True)
            cmd = [mmseqs, "easy-search", str(tmp / f"{alphabet}_queries.fa"), str(tmp / f"{alphabet}_targets.fa"), str(out), str(work),
                   "--min-seq-id", "0.9", "--max-seqs", str(max_seqs), "--threads", str(threads), "-v", "1"]
            if alphabet == "nucleotide":
                cmd += ["--search-type", "3"]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            times[alphabet] = time.perf_counter() - t0
            for line in open(out):  # default columns: query, target, fident (0..1), ...
                q, t, fident = line.split("\t")[:3]
                if float(fident) >= 0.9:
                    hits.add((int(q[1:].split("_")[0]), int(t[1:])))
        total = sum(times.values())
        if best is None or total < best[0]:
            best = (total, times, hits)
    return best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--per-kind", type=int, default=25, help="planted copies per kind and alphabet")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="MMseqs2 threads (bsm uses one)")
    p.add_argument("--max-seqs", type=int, default=4000, help="MMseqs2 --max-seqs")
    p.add_argument("--no-mmseqs", action="store_true")
    args = p.parse_args()
    print("$ " + shlex.join([Path(sys.executable).name, *sys.argv]))

    items = builtin_items(tasks=PUBLISHED)[0]
    items.sort(key=lambda it: it.key)
    hosts = real_samples()
    planted, truth = plant_contamination(items, hosts, per_kind=args.per_kind, seed=args.seed)
    samples = hosts + planted
    residues = defaultdict(int)
    for s in samples:
        for m, seq in s.segments:
            residues[alphabet_of(m)] += len(seq)
    item_res = defaultdict(int)
    for it in items:
        item_res[alphabet_of(it.modality)] += len(it.sequence)
    print(f"targets: {len(items)} evaluation items, {item_res['nucleotide']:,} nt + {item_res['protein']:,} aa")
    print(f"queries: {len(samples)} samples ({len(planted)} planted), {residues['nucleotide']:,} nt + {residues['protein']:,} aa; "
          f"{os.cpu_count()} cpus visible")

    secs, build_s, match_s, matches, removed = run_bsm(items, samples, args.repeat)
    found = {(m.sample_id, m.task, m.split, m.item_id) for m in matches}
    total_res = residues["nucleotide"] + residues["protein"]
    print(f"\nbsm     {secs:7.2f} s  (index {build_s:.2f} s + match {match_s:.2f} s)  {total_res / secs / 1e6:6.2f} M residues/s  "
          f"removed {removed} samples, {len(matches)} matches")

    item_no = {it.key: i for i, it in enumerate(items)}
    sample_no = {s.sample_id: i for i, s in enumerate(samples)}
    mm = None
    mmseqs = shutil.which("mmseqs")
    if args.no_mmseqs or mmseqs is None:
        print("mmseqs  skipped: " + ("--no-mmseqs" if args.no_mmseqs else "mmseqs not on PATH (apt-get install mmseqs2)"))
    else:
        version = subprocess.run([mmseqs, "version"], capture_output=True, text=True).stdout.strip()
        with tempfile.TemporaryDirectory() as tmp:
            mm = run_mmseqs(mmseqs, items, samples, Path(tmp), args.threads, args.max_seqs, args.repeat)
        print(f"mmseqs  {mm[0]:7.2f} s  (nucleotide {mm[1]['nucleotide']:.2f} s + protein {mm[1]['protein']:.2f} s)  "
              f"{total_res / mm[0] / 1e6:6.2f} M residues/s  MMseqs2 {version}, {args.threads} threads")
        print(f"speed   bsm / mmseqs = {mm[0] / secs:.1f}x")

    print("\nrecall on planted copies (found / planted)")
    print(f"{'kind':<18}{'alphabet':<12}{'bsm':>10}{'mmseqs>=90%':>14}")
    rows = defaultdict(lambda: [0, 0, 0])
    for t in truth:
        key = (t.task, t.split, t.item_id)
        alphabet = alphabet_of(items[item_no[key]].modality)
        r = rows[(t.kind, alphabet)]
        r[0] += 1
        r[1] += (t.sample_id, *key) in found
        if mm is not None:
            r[2] += (sample_no[t.sample_id], item_no[key]) in mm[2]
    tot = [0, 0, 0]
    for (kind, alphabet), (n, b, m) in sorted(rows.items()):
        tot = [tot[0] + n, tot[1] + b, tot[2] + m]
        print(f"{kind:<18}{alphabet:<12}{b:>6}/{n:<3}{(f'{m:>6}/{n:<3}' if mm else '-'):>14}")
    print(f"{'all':<30}{tot[1] / tot[0]:>10.3f}{(f'{tot[2] / tot[0]:.3f}' if mm else '-'):>14}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
