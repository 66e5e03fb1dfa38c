"""Beam wiring shared by every dataset pipeline: bucket, pack, write shards, write the manifest.

A pipeline supplies three PCollections (samples, rejects, per-worker accounting dicts); this
module groups them by bucket, calls ``bsm_data.build.write_bucket`` per bucket and
``bsm_data.build.finalize`` once, after every bucket is written.
"""
from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from bsm_data.accounting import Accounting
from bsm_data.build import bucket_of, finalize, reject_key, write_bucket
from bsm_data.records import Sample

REJECTS, ACCOUNTING = "rejects", "accounting"


def expand_inputs(patterns: list[str]) -> list[str]:
    """Local paths or any Beam filesystem (gs://, s3://); sorted, so runs see the same list."""
    paths = sorted({m.path for r in FileSystems.match(list(patterns)) for m in r.metadata_list})
    if not paths:
        raise FileNotFoundError(f"no input files match {patterns}")
    return paths


def route(item, num_shards: int):
    """Key a Sample (main output) or a Reject (tagged) by its bucket."""
    if isinstance(item, Sample):
        return bucket_of(item.sample_id, num_shards), item
    return beam.pvalue.TaggedOutput(REJECTS, (bucket_of("|".join(reject_key(item)), num_shards), item))


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


def write_shards(p, samples, rejects, accounting, output: str, *, pipeline: str, options: dict, seed: int, seq_len: int, num_shards: int):
    """samples/rejects: PCollections of (bucket, item); accounting: PCollection of dicts."""
    buckets = p | "Buckets" >> beam.Create([(b, None) for b in range(num_shards)])
    written = (
        {"samples": samples, "rejects": rejects, "bucket": buckets}
        | "ByBucket" >> beam.CoGroupByKey()
        | "Write" >> beam.MapTuple(
            lambda b, g: write_bucket(output, b, list(g["samples"]), list(g["rejects"]), seed=seed, seq_len=seq_len)
        )
    )
    total = accounting | "Accounting" >> beam.CombineGlobally(MergeAccounting())
    return (
        p
        | "Once" >> beam.Create([None])
        | "Manifest" >> beam.Map(
            lambda _, results, acct: finalize(
                output, results, Accounting.from_dict(acct), pipeline=pipeline, options=options, seed=seed, seq_len=seq_len
            ),
            results=beam.pvalue.AsList(written),
            acct=beam.pvalue.AsSingleton(total),
        )
    )
