"""Apache Beam pipeline: RefSeq GenBank files -> pair samples -> packed Parquet shards + manifest.

Thin wiring only; every step is a function in ``bsm_data.build``. Runs on the local runners
(DirectRunner, FnApiRunner underneath; Prism needs a download) and on DataflowRunner with the
usual options, e.g.::

    bsm data refseq --input 'gs://b/refseq/*.gbff.gz' --output gs://b/bsm/refseq \
        --runner DataflowRunner --project P --region R --temp_location gs://b/tmp \
        --sdk_container_image REGION-docker.pkg.dev/P/bsm/dataflow-worker:0.1.0
"""
from __future__ import annotations

import os

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from bsm_data.accounting import Accounting
from bsm_data.build import bucket_of, finalize, genbank_file_to_samples, reject_key, write_bucket
from bsm_data.records import Sample
from bsm_data.shards import clear_for_run

REJECTS, ACCOUNTING = "rejects", "accounting"


def expand_inputs(patterns: list[str]) -> list[str]:
    paths = sorted({m.path for r in FileSystems.match(list(patterns)) for m in r.metadata_list})
    if not paths:
        raise FileNotFoundError(f"no input files match {patterns}")
    return paths


class ExtractGenBank(beam.DoFn):
    """One GenBank file -> keyed samples (main), keyed rejects, and the file's accounting."""

    def __init__(self, seed: int, seq_len: int, flank: int, num_shards: int):
        self.seed, self.seq_len, self.flank, self.num_shards = seed, seq_len, flank, num_shards

    def process(self, path: str):
        acct = Accounting()
        for item in genbank_file_to_samples(path, acct, seed=self.seed, seq_len=self.seq_len, flank=self.flank):
            if isinstance(item, Sample):
                yield bucket_of(item.sample_id, self.num_shards), item
            else:
                yield beam.pvalue.TaggedOutput(REJECTS, (bucket_of("|".join(reject_key(item)), self.num_shards), item))
        yield beam.pvalue.TaggedOutput(ACCOUNTING, acct.to_dict())


class MergeAccounting(beam.CombineFn):
    def create_accumulator(self):
        return {}

    def add_input(self, acc, d):
        return Accounting.from_dict(acc).merge(Accounting.from_dict(d)).to_dict()

    def merge_accumulators(self, accs):
        total = Accounting()
        for a in accs:
            total.merge(Accounting.from_dict(a))
        return total.to_dict()

    def extract_output(self, acc):
        return acc


def build_pipeline(p: beam.Pipeline, inputs: list[str], output: str, *, seed: int, seq_len: int, flank: int, num_shards: int):
    extracted = (
        p
        | "Files" >> beam.Create(inputs)
        | "Spread" >> beam.Reshuffle()
        | "Extract" >> beam.ParDo(ExtractGenBank(seed, seq_len, flank, num_shards)).with_outputs(REJECTS, ACCOUNTING, main="samples")
    )
    buckets = p | "Buckets" >> beam.Create([(b, None) for b in range(num_shards)])
    written = (
        {"samples": extracted.samples, "rejects": extracted[REJECTS], "bucket": buckets}
        | "ByBucket" >> beam.CoGroupByKey()
        | "Write" >> beam.MapTuple(
            lambda b, g: write_bucket(output, b, list(g["samples"]), list(g["rejects"]), seed=seed, seq_len=seq_len)
        )
    )
    accounting = extracted[ACCOUNTING] | "Accounting" >> beam.CombineGlobally(MergeAccounting())
    options = {"inputs": sorted(os.path.basename(x) for x in inputs), "num_shards": num_shards, "flank": flank}
    return (
        p
        | "Once" >> beam.Create([None])
        | "Manifest" >> beam.Map(
            lambda _, results, acct: finalize(
                output, results, Accounting.from_dict(acct), pipeline="refseq", options=options, seed=seed, seq_len=seq_len
            ),
            results=beam.pvalue.AsList(written),
            acct=beam.pvalue.AsSingleton(accounting),
        )
    )


def run(inputs: list[str], output: str, *, seed: int = 0, seq_len: int = 1024, flank: int = 100, num_shards: int = 1, beam_args: list[str] | None = None) -> None:
    files = expand_inputs(inputs)
    clear_for_run(output)
    options = PipelineOptions(beam_args or ["--runner=DirectRunner"])
    with beam.Pipeline(options=options) as p:
        build_pipeline(p, files, output, seed=seed, seq_len=seq_len, flank=flank, num_shards=num_shards)
