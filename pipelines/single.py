"""Apache Beam pipeline: single-modal corpora (FASTA, Swiss-Prot, Stockholm, whole GenBank
records) -> one document per window -> packed Parquet shards + manifest.

Thin wiring only; every step is a function in ``bsm_data.single``::

    files --Reshuffle--> read+alphabet+length per file --(digest, entry)--> GroupByKey
          --> keep min (source_file, index), reject the rest as duplicates --> windows
          --> pipelines.common.write_shards (bucket, pack, write, manifest)

Same bytes as ``bsm_data.single.build_single_local`` for the same spec, seed, seq_len and
num_shards, with any number of workers (``--direct_num_workers=2
--direct_running_mode=multi_processing``). Unknown command-line options go to Beam, e.g.
``--runner DataflowRunner --project P --region R --temp_location gs://b/tmp``.

Apache Beam and ``bsm_data`` are imported only inside functions, so ``add_single_parser``
costs the ``bsm`` command line nothing (importing Beam takes about 1.5 s).
"""
from __future__ import annotations

import argparse

GROUPS_PER_BATCH = 512  # digest groups deduplicated per call (one accounting dict per batch)


def read_file(f, num_shards: int):
    """One InputFile -> (digest, entry) for the dedup (main), bucketed rejects, the file's accounting."""
    from apache_beam.pvalue import TaggedOutput

    from bsm_data.records import Reject
    from bsm_data.single import file_entries, new_accounting

    from .common import ACCOUNTING, route

    acct = new_accounting()
    for item in file_entries(f, acct):
        if isinstance(item, Reject):
            yield route(item, num_shards)
        else:
            yield item.digest, item
    yield TaggedOutput(ACCOUNTING, acct.to_dict())


def dedup_and_window(groups: list, seq_len: int, num_shards: int):
    """A batch of (digest, entries) groups -> bucketed samples (main), rejects, accounting."""
    from apache_beam.pvalue import TaggedOutput

    from bsm_data.single import dedup_group, entry_to_samples, new_accounting

    from .common import ACCOUNTING, route

    acct = new_accounting()
    for _, entries in groups:
        kept, rejects = dedup_group(entries, acct)
        for r in rejects:
            yield route(r, num_shards)
        for s in entry_to_samples(kept, kept.modality, seq_len, acct):
            yield route(s, num_shards)
    yield TaggedOutput(ACCOUNTING, acct.to_dict())


def build_pipeline(p, files: list, output: str, *, seed: int, seq_len: int, num_shards: int):
    """``files``: ``bsm_data.single.InputFile`` rows (``expand_spec``)."""
    import apache_beam as beam

    from bsm_data.single import PIPELINE, single_options

    from .common import ACCOUNTING, REJECTS, write_shards

    read = (
        p
        | "Files" >> beam.Create(files)
        | "Spread" >> beam.Reshuffle()
        | "Read" >> beam.FlatMap(read_file, num_shards).with_outputs(REJECTS, ACCOUNTING, main="entries")
    )
    deduped = (
        read.entries
        | "ByDigest" >> beam.GroupByKey()
        | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=GROUPS_PER_BATCH)
        | "DedupWindow" >> beam.FlatMap(dedup_and_window, seq_len, num_shards).with_outputs(REJECTS, ACCOUNTING, main="samples")
    )
    rejects = (read[REJECTS], deduped[REJECTS]) | "Rejects" >> beam.Flatten()
    accounting = (read[ACCOUNTING], deduped[ACCOUNTING]) | "Counts" >> beam.Flatten()
    return write_shards(
        p, deduped.samples, rejects, accounting, output,
        pipeline=PIPELINE, options=single_options(files, num_shards), seed=seed, seq_len=seq_len, num_shards=num_shards,
    )


def run(spec=None, output: str = "", *, seed: int = 0, seq_len: int = 1024, num_shards: int = 1, beam_args: list[str] | None = None) -> None:
    """Run the pipeline; ``spec`` as in ``bsm_data.single.as_spec`` (None: bundled data)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from bsm_data.shards import clear_for_run
    from bsm_data.single import as_spec, expand_spec

    if not output:
        raise ValueError("output is required")
    files = expand_spec(as_spec(spec))
    clear_for_run(output)
    with beam.Pipeline(options=PipelineOptions(beam_args or ["--runner=DirectRunner"])) as p:
        build_pipeline(p, files, output, seed=seed, seq_len=seq_len, num_shards=num_shards)


# ------------------------------------------------------------------------------------ CLI


def cmd_data_single(args, beam_args: list[str]) -> int:
    from bsm_data.single import default_spec, load_spec, parse_input_arg

    if args.spec:
        spec = load_spec(args.spec)
    elif args.input:
        try:
            spec = [parse_input_arg(a) for a in args.input]
        except ValueError as e:
            raise SystemExit(str(e)) from None
    else:
        spec = default_spec()
    from bsm_data.cli import _progress
    from bsm_data.single import build_single_local

    from .options import run_build

    opts = dict(seed=args.seed, seq_len=args.seq_len, num_shards=args.num_shards)
    return run_build(
        args, beam_args,
        local=lambda: build_single_local(spec, args.output, progress=_progress("files"), **opts),
        beam=lambda b: run(spec, args.output, beam_args=b, **opts),
    )


def add_single_parser(data_subparsers) -> argparse.ArgumentParser:
    """``bsm data single``: define the subcommand on ``bsm data``'s subparsers."""
    sp = data_subparsers.add_parser(
        "single",
        help="single-modal corpora (DNA-only, RNA-only, protein-only) -> packed Parquet shards + manifest",
        description=(
            "Reads FASTA, Swiss-Prot, Stockholm and GenBank files with a declared modality, checks it, "
            "removes exact duplicates across all files, cuts long sequences into windows and writes packed "
            "shards. Without --spec or --input: the bundled data/. Unknown options are passed to Apache Beam "
            "(e.g. --runner DataflowRunner --project P ...). Spec JSON: "
            '{"inputs": [{"path": "x/*.fa", "modality": "rna", "source": "rfam", "format": "fasta"}]} '
            "(modality dna|rna|protein|auto; auto = GenBank molecule type; source and format optional; "
            "relative paths are relative to the JSON file)."
        ),
    )
    src = sp.add_mutually_exclusive_group()
    src.add_argument("--spec", help="JSON source spec (see above)")
    src.add_argument("--input", action="append", metavar="PATH:MODALITY[:SOURCE]", help="file or glob with its modality (dna, rna, protein, auto for GenBank) and source name; repeatable")
    sp.add_argument("--output", required=True, help="build directory")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--seq-len", type=int, default=1024)
    sp.add_argument("--num-shards", type=int, default=1, help="output shards; fixes the bucketing, so it is part of the result")
    sp.add_argument("--engine", choices=["beam", "local"], default="beam", help="beam (default) or a plain loop without Beam")
    sp.add_argument("--workers", type=int, default=1, help="local Beam workers (DirectRunner multi-processing)")
    sp.set_defaults(func=cmd_data_single, beam_passthrough=True)
    return sp

