"""The ``bsm`` command line: one entry point, subcommands for data, queries and models."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

GENBANK_SUFFIXES = ("gb", "gbk", "gbff", "gb.gz", "gbk.gz", "gbff.gz")
REPO_DATA = Path(__file__).resolve().parents[1] / "data"


def bundled(*parts: str) -> str:
    path = REPO_DATA.joinpath(*parts)
    if not path.exists():
        raise SystemExit(f"bundled data not found at {path}; run from a source checkout or pass --input")
    return str(path)


def summary_table(manifest: dict, out_dir: str) -> str:
    t = manifest["totals"]
    lines = [
        f"shards written to {os.path.abspath(out_dir)}",
        f"  manifest: {os.path.join(os.path.abspath(out_dir), 'manifest.json')}",
        "",
        f"{'shards':<22}{len(manifest['shards']):>12}",
        f"{'rows x seq_len':<22}{t['rows']:>12} x {manifest['seq_len']}",
        f"{'documents':<22}{t['documents']:>12}",
        f"{'tokens':<22}{t['tokens']:>12}",
        f"{'padding fraction':<22}{t['padding_fraction']:>12.4f}",
        f"{'bytes per token':<22}{t['bytes_per_token']:>12.4f}",
        "",
    ]
    from .accounting import Accounting

    lines.append(Accounting.from_dict(manifest["accounting"]).table())
    return "\n".join(lines)


def cmd_data_refseq(args, beam_args: list[str]) -> int:
    import glob

    from pipelines.options import run_build

    from .build import build_genbank_local

    inputs = args.input or [os.path.join(bundled("genbank"), f"*.{ext}") for ext in GENBANK_SUFFIXES]
    opts = dict(seed=args.seed, seq_len=args.seq_len, flank=args.flank, num_shards=args.num_shards)

    def beam(b):
        from pipelines.refseq import run

        run(inputs, args.output, beam_args=b, **opts)

    return run_build(
        args, beam_args,
        local=lambda: build_genbank_local(sorted(p for pat in inputs for p in glob.glob(pat)), args.output, progress=_progress("files"), **opts),
        beam=beam,
    )


def cmd_data_build(args, _beam) -> int:
    from .rounds import build_round, mix_error

    ratios = dict(args.ratio) if args.ratio else None
    registry = None if args.no_decontam else args.registry
    if registry is None and not args.no_decontam:
        from .evalsets import build_builtin_registry

        registry = os.path.join(args.output, "registry")
        build_builtin_registry(registry)
    manifest = build_round(
        args.round, args.sources, args.output, ratios=ratios, total_tokens=args.total_tokens, seed=args.seed,
        seq_len=args.seq_len, num_shards=args.num_shards, valid_fraction=args.valid_fraction, registry=registry,
    )
    print(summary_table(manifest, args.output))
    print(f"\n{'source':<10}{'available':>12}{'tokens':>12}{'upsample':>10}{'target':>9}{'achieved':>10}")
    for name, r in manifest["mix"].items():
        print(f"{name:<10}{r['available_tokens']:>12}{r['tokens']:>12}{r['upsample']:>10.3f}{r['target_ratio']:>9.4f}{r['achieved_ratio']:>10.4f}")
    print(f"largest ratio deviation: {100 * mix_error(manifest):.3f}%")
    d = manifest["decontamination"]
    if d.get("skipped"):
        print("decontamination: skipped (--no-decontam)")
    else:
        print(f"decontamination: {d['samples_removed']} of {d['samples_checked']} samples removed; "
              f"report {os.path.join(os.path.abspath(args.output), d['report'])}")
    return 0


def _progress(unit: str):
    from tqdm import tqdm

    return lambda it: tqdm(it, unit=unit, disable=not sys.stderr.isatty())


def cmd_query(args, _beam) -> int:
    from .query import run_query

    print(run_query(args.data, args.sql, fmt=args.format, max_rows=args.max_rows))
    return 0


def cmd_validate(args, _beam) -> int:
    from .shards import read_manifest, verify_file

    manifest = read_manifest(args.data)
    entries = manifest["shards"] + [e for es in manifest["files"].values() for e in es]
    for entry in _progress("files")(entries):
        verify_file(args.data, entry)
    manifest_accounting = manifest["accounting"]
    from .accounting import Accounting

    Accounting.from_dict(manifest_accounting).check()
    print(f"ok: {len(entries)} files match their sha256; every stage reconciles")
    return 0


def cmd_vocab(args, _beam) -> int:
    from .vocab import load_vocab

    v = load_vocab()
    print(f"{v.name} v{v.version}: {v.size} ids, sha256 {v.sha256[:16]}…")
    for t in v.tokens:
        if t["kind"] != "reserved":
            print(f"{t['id']:>4}  {t['token']:<10} {t['kind']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bsm", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    from .demo import add_demo_parser

    add_demo_parser(sub, main)

    data = sub.add_parser("data", help="build datasets and shards").add_subparsers(dest="data_command", required=True)
    rs = data.add_parser(
        "refseq",
        help="RefSeq GenBank -> DNA/RNA/protein pair samples -> packed Parquet shards + manifest",
        description="Unknown options are passed to Apache Beam (e.g. --runner DataflowRunner --project P ...).",
    )
    rs.add_argument("--input", action="append", help="GenBank file or glob (plain or .gz; local or gs://); repeatable. Default: bundled data/genbank")
    rs.add_argument("--output", required=True, help="build directory (local path or gs://)")
    rs.add_argument("--seed", type=int, default=0)
    rs.add_argument("--seq-len", type=int, default=1024)
    rs.add_argument("--flank", type=int, default=100, help="genomic flank (nt) on each side of the gene span")
    rs.add_argument("--num-shards", type=int, default=1, help="output shards; fixes the bucketing, so it is part of the result")
    rs.add_argument("--engine", choices=["beam", "local"], default="beam", help="beam (default) or a plain loop without Beam")
    rs.add_argument("--workers", type=int, default=1, help="local Beam workers (DirectRunner multi-processing)")
    rs.set_defaults(func=cmd_data_refseq, beam_passthrough=True)

    from pipelines.single import add_single_parser

    add_single_parser(data)

    from pipelines.gene import add_gene_parser

    add_gene_parser(data)

    from pipelines.web import add_web_parser

    add_web_parser(data)

    from .fetch import add_fetch_parser

    add_fetch_parser(sub)

    from .evalsets import add_registry_parsers

    add_registry_parsers(sub)

    from bsm_model.cli import add_train_parsers

    add_train_parsers(sub)

    from bsm_model.eval.cli import add_eval_parser

    add_eval_parser(sub)

    from bsm_model.experiment import add_experiment_parser

    add_experiment_parser(sub)

    from .rounds import parse_ratio

    rb = data.add_parser(
        "build",
        help="decontaminate, mix and pack one training round from source builds",
        description="Mixes source build directories (outputs of bsm data refseq/gene/single/web) at the paper's "
        "token ratios: round 1 single; round 2 single:refseq:gene = 10:2:1; round 3 refseq:gene:web = 1:1:10.",
    )
    rb.add_argument("sources", nargs="+", help="source build directories, one source each")
    rb.add_argument("--round", type=int, choices=[1, 2, 3], required=True)
    rb.add_argument("--output", required=True)
    rb.add_argument("--ratio", action="append", default=[], type=parse_ratio, metavar="SOURCE=WEIGHT", help="override the paper's mix (repeatable)")
    rb.add_argument("--total-tokens", type=int, help="token budget of the round (default: the tokens available)")
    rb.add_argument("--valid-fraction", type=float, default=0.01, help="held-out fraction per source, by gene/group")
    rb.add_argument("--seed", type=int, default=0)
    rb.add_argument("--seq-len", type=int, default=1024)
    rb.add_argument("--num-shards", type=int, default=1)
    rb.add_argument("--registry", help="evaluation registry to decontaminate against (default: every built-in test set, built into OUTPUT/registry)")
    rb.add_argument("--no-decontam", action="store_true", help="skip decontamination (recorded in the manifest)")
    rb.set_defaults(func=cmd_data_build)

    q = sub.add_parser("query", help="SQL over a build directory through DuckDB (views: shards, samples, segments, rejects, manifest_shards, accounting, reject_reasons)")
    q.add_argument("sql")
    q.add_argument("--data", default="out/demo", help="build directory (default out/demo)")
    q.add_argument("--format", choices=["table", "csv", "json"], default="table")
    q.add_argument("--max-rows", type=int, default=100)
    q.set_defaults(func=cmd_query)

    v = sub.add_parser("validate", help="check a build directory: manifest, versions, sha256 of every file, reconciled counts")
    v.add_argument("data")
    v.set_defaults(func=cmd_validate)

    voc = sub.add_parser("vocab", help="print the vocabulary")
    voc.set_defaults(func=cmd_vocab)
    return p


def main(argv: list[str] | None = None) -> int:
    import signal

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `bsm query ... | head` ends quietly
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "beam_passthrough", False):  # Beam commands pass unknown options to Beam
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args.func(args, rest)


if __name__ == "__main__":
    sys.exit(main())
