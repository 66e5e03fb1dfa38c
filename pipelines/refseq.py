"""Apache Beam pipeline: RefSeq GenBank files -> pair samples -> packed Parquet shards + manifest.

Thin wiring only; every step is a function in ``bsm_data``. Runs on the local runners
(DirectRunner, FnApiRunner underneath; Prism needs a download) and on DataflowRunner with the
usual options, e.g.::

    bsm data refseq --input 'gs://b/refseq/*.gbff.gz' --output gs://b/bsm/refseq \\
        --runner DataflowRunner --project P --region R --temp_location gs://b/tmp \\
        --sdk_container_image REGION-docker.pkg.dev/P/bsm/dataflow-worker:0.1.0
"""
from __future__ import annotations


import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from bsm_data.accounting import Accounting
from bsm_data.build import genbank_file_to_samples, refseq_options
from bsm_data.shards import clear_for_run

from .common import ACCOUNTING, REJECTS, expand_inputs, route, write_shards


class ExtractGenBank(beam.DoFn):
    """One GenBank file -> bucketed samples (main), bucketed rejects, and the file's accounting."""

    def __init__(self, seed: int, seq_len: int, flank: int, num_shards: int):
        self.seed, self.seq_len, self.flank, self.num_shards = seed, seq_len, flank, num_shards

    def process(self, path: str):
        acct = Accounting()
        for item in genbank_file_to_samples(path, acct, seed=self.seed, seq_len=self.seq_len, flank=self.flank):
            yield route(item, self.num_shards)
        yield beam.pvalue.TaggedOutput(ACCOUNTING, acct.to_dict())


def build_pipeline(p: beam.Pipeline, inputs: list[str], output: str, *, seed: int, seq_len: int, flank: int, num_shards: int):
    extracted = (
        p
        | "Files" >> beam.Create(inputs)
        | "Spread" >> beam.Reshuffle()
        | "Extract" >> beam.ParDo(ExtractGenBank(seed, seq_len, flank, num_shards)).with_outputs(REJECTS, ACCOUNTING, main="samples")
    )
    return write_shards(
        p, extracted.samples, extracted[REJECTS], extracted[ACCOUNTING], output,
        pipeline="refseq", options=refseq_options(inputs, num_shards, flank), seed=seed, seq_len=seq_len, num_shards=num_shards,
    )


def run(inputs: list[str], output: str, *, seed: int = 0, seq_len: int = 1024, flank: int = 100, num_shards: int = 1, beam_args: list[str] | None = None) -> None:
    files = expand_inputs(inputs)
    clear_for_run(output)
    with beam.Pipeline(options=PipelineOptions(beam_args or ["--runner=DirectRunner"])) as p:
        build_pipeline(p, files, output, seed=seed, seq_len=seq_len, flank=flank, num_shards=num_shards)
