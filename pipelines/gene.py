"""Apache Beam pipeline: NCBI gene2accession + sequence files -> Gene pair samples -> shards + manifest.

Thin wiring only; every step is a function in ``bsm_data.gene`` (which documents the policy)::

    gene2accession ──ReadRows──> (GeneID, row) ──GroupByKey──GeneRefs──> (accession, Ref) ─┐
                                                             └──> (GeneID, GeneRows) ──┐    │ CoGroupByKey
    sequence files ──IndexFile──> (accession, SeqItem) ──────────────────────────────┼────┘ by accession
                                                                     (GeneID, Resolved) <──Resolve
                                              CoGroupByKey by GeneID ──AssemblePair──> samples, rejects
                                                                 ──> pipelines.common.write_shards

Accessions are keyed without their version (versions are matched inside ``Resolve``). The
gene2accession file is read by one worker (gzip does not split; the real file is ~4 GiB
compressed, ~285 M lines, so use ``--tax-id`` or a pre-split file for a quick run); everything
after the first GroupByKey runs in parallel. DirectRunner locally; DataflowRunner with the usual
options, e.g.::

    bsm data gene --gene2accession gs://b/gene/gene2accession.gz \\
        --sequences 'gs://b/refseq/*.gbff.gz' --output gs://b/bsm/gene \\
        --runner DataflowRunner --project P --region R --temp_location gs://b/tmp \\
        --sdk_container_image REGION-docker.pkg.dev/P/bsm/dataflow-worker:0.1.0

Importing this module imports neither Apache Beam (about 2 s) nor ``bsm_data`` (pyarrow, gb-io),
so ``add_gene_parser`` costs the ``bsm`` command line nothing. The DoFns are defined on first
use, under their module-level names, so they pickle by reference like any module-level class.
"""
from __future__ import annotations

import glob
import os

GENES = "genes"
FLANK = 100  # bsm_data.gene.FLANK (not imported here: this module must stay cheap to import)
_BEAM_NAMES = ("ReadRows", "GeneRefs", "IndexFile", "Resolve", "AssemblePair")


def __getattr__(name):  # PEP 562: the Beam DoFns, defined when first asked for
    if name in _BEAM_NAMES:
        _define_beam()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _define_beam() -> None:
    if "ReadRows" in globals():
        return
    import apache_beam as beam
    from apache_beam.transforms.window import GlobalWindow
    from apache_beam.utils.timestamp import MIN_TIMESTAMP
    from apache_beam.utils.windowed_value import WindowedValue

    from bsm_data.gene import (
        base_accession, gene_refs, gene_to_samples, new_accounting, read_gene2accession, resolve, sequence_items,
    )
    from bsm_data.records import Reject

    from .common import ACCOUNTING, REJECTS, route

    class Counted(beam.DoFn):
        """Counts into one Accounting per bundle, emitted once when the bundle ends."""

        def start_bundle(self):
            self.acct = new_accounting()

        def finish_bundle(self):
            yield beam.pvalue.TaggedOutput(
                ACCOUNTING, WindowedValue(self.acct.to_dict(), MIN_TIMESTAMP, [GlobalWindow()])
            )

    class ReadRows(Counted):
        """gene2accession file -> (GeneID, row); malformed lines -> bucketed rejects."""

        def __init__(self, tax_ids, num_shards: int):
            self.tax_ids, self.num_shards = tax_ids, num_shards

        def process(self, path: str):
            for item in read_gene2accession(path, self.acct, tax_ids=self.tax_ids):
                yield route(item, self.num_shards) if isinstance(item, Reject) else (item.gene_id, item)

    class GeneRefs(beam.DoFn):
        """(GeneID, rows) -> (accession, Ref) per distinct reference; (GeneID, GeneRows) tagged."""

        def process(self, element):
            gene_id, rows = element
            summary, refs = gene_refs(gene_id, rows)
            yield beam.pvalue.TaggedOutput(GENES, (gene_id, summary))
            for ref in refs:
                yield base_accession(ref.accession), ref

    class IndexFile(Counted):
        """Sequence file -> (accession, SeqItem); unusable entries -> bucketed rejects."""

        def __init__(self, num_shards: int):
            self.num_shards = num_shards

        def process(self, path: str):
            for item in sequence_items(path, self.acct):
                yield route(item, self.num_shards) if isinstance(item, Reject) else (base_accession(item.accession), item)

    class Resolve(Counted):
        """(accession, {refs, items}) -> (GeneID, Resolved); unresolved references -> rejects."""

        def __init__(self, flank: int, num_shards: int):
            self.flank, self.num_shards = flank, num_shards

        def process(self, element):
            base, groups = element
            refs = list(groups["refs"])
            if not refs:  # a sequence no GeneID asks for: indexed (counted) but not joined
                return
            for out in resolve(base, refs, groups["items"], self.acct, flank=self.flank):
                yield route(out, self.num_shards) if isinstance(out, Reject) else out

    class AssemblePair(Counted):
        """(GeneID, {gene, resolved}) -> bucketed samples and rejects."""

        def __init__(self, seed: int, seq_len: int, num_shards: int):
            self.seed, self.seq_len, self.num_shards = seed, seq_len, num_shards

        def process(self, element):
            gene_id, groups = element
            (summary,) = list(groups["gene"])
            for item in gene_to_samples(summary, groups["resolved"], self.acct, seed=self.seed, seq_len=self.seq_len):
                yield route(item, self.num_shards)

    for cls in (Counted, ReadRows, GeneRefs, IndexFile, Resolve, AssemblePair):
        cls.__qualname__ = cls.__name__
        cls.__module__ = __name__
        globals()[cls.__name__] = cls


def build_pipeline(p, gene2accession: str, sequences: list[str], output: str, *, seed: int, seq_len: int, flank: int,
                   num_shards: int, tax_ids=None):
    import apache_beam as beam

    from bsm_data.gene import gene_options

    from .common import ACCOUNTING, REJECTS, write_shards

    _define_beam()
    g = globals()
    tax_ids = sorted(set(int(t) for t in tax_ids)) if tax_ids else None
    read = (
        p
        | "Gene2Accession" >> beam.Create([gene2accession])
        | "ReadRows" >> beam.ParDo(g["ReadRows"](tax_ids, num_shards)).with_outputs(REJECTS, ACCOUNTING, main="rows")
    )
    genes = (
        read.rows
        | "RowsByGene" >> beam.GroupByKey()
        | "GeneRefs" >> beam.ParDo(g["GeneRefs"]()).with_outputs(GENES, main="refs")
    )
    indexed = (
        p
        | "Sequences" >> beam.Create(sequences)
        | "SpreadFiles" >> beam.Reshuffle()
        | "IndexFile" >> beam.ParDo(g["IndexFile"](num_shards)).with_outputs(REJECTS, ACCOUNTING, main="items")
    )
    joined = (
        {"refs": genes.refs, "items": indexed.items}
        | "ByAccession" >> beam.CoGroupByKey()
        | "Resolve" >> beam.ParDo(g["Resolve"](flank, num_shards)).with_outputs(REJECTS, ACCOUNTING, main="resolved")
    )
    paired = (
        {"gene": genes[GENES], "resolved": joined.resolved}
        | "ByGene" >> beam.CoGroupByKey()
        | "AssemblePair" >> beam.ParDo(g["AssemblePair"](seed, seq_len, num_shards)).with_outputs(REJECTS, ACCOUNTING, main="samples")
    )
    steps = (read, indexed, joined, paired)
    rejects = tuple(s[REJECTS] for s in steps) | "Rejects" >> beam.Flatten()
    accounting = tuple(s[ACCOUNTING] for s in steps) | "AllAccounting" >> beam.Flatten()
    return write_shards(
        p, paired.samples, rejects, accounting, output, pipeline="gene",
        options=gene_options(gene2accession, sequences, num_shards, flank, tax_ids),
        seed=seed, seq_len=seq_len, num_shards=num_shards,
    )


def run(gene2accession: str, sequences: list[str], output: str, *, seed: int = 0, seq_len: int = 1024, flank: int = FLANK,
        num_shards: int = 1, tax_ids=None, beam_args: list[str] | None = None) -> None:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from bsm_data.shards import clear_for_run

    from .common import expand_inputs

    files = expand_inputs(sequences)
    (g2a,) = expand_inputs([gene2accession])
    clear_for_run(output)
    with beam.Pipeline(options=PipelineOptions(beam_args or ["--runner=DirectRunner"])) as p:
        build_pipeline(p, g2a, files, output, seed=seed, seq_len=seq_len, flank=flank, num_shards=num_shards, tax_ids=tax_ids)


# ----------------------------------------------------------------------------------- CLI


def default_inputs() -> tuple[str, list[str]]:
    """The bundled derived gene2accession and the bundled GenBank files + NCBI protein FASTA."""
    from bsm_data.cli import GENBANK_SUFFIXES, bundled

    genbank = bundled("genbank")
    return (
        os.path.join(bundled("gene"), "gene2accession.derived.gz"),
        [os.path.join(genbank, f"*.{ext}") for ext in (*GENBANK_SUFFIXES, "faa")],
    )


def add_gene_parser(data_subparsers):
    """``bsm data gene``: add to the ``data`` subparsers. Unknown options go to Apache Beam."""
    g = data_subparsers.add_parser(
        "gene",
        help="NCBI Gene (gene2accession) -> DNA/RNA/protein pair samples -> packed Parquet shards + manifest",
        description="Joins gene2accession rows to GenBank/FASTA sequences by accession and pairs each "
        "GeneID's DNA span, RNA and protein. Unknown options are passed to Apache Beam "
        "(e.g. --runner DataflowRunner --project P ...).",
    )
    g.add_argument("--gene2accession", help="gene2accession file (plain or .gz; local or gs://). "
                   "Default: bundled data/gene/gene2accession.derived.gz")
    g.add_argument("--sequences", action="append", help="GenBank or FASTA file or glob (plain or .gz), repeatable. "
                   "Default: bundled data/genbank GenBank files and *.faa")
    g.add_argument("--output", required=True, help="build directory (local path or gs://)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--seq-len", type=int, default=1024)
    g.add_argument("--flank", type=int, default=FLANK, help="genomic flank (nt) on each side of the gene span")
    g.add_argument("--num-shards", type=int, default=1, help="output shards; fixes the bucketing, so it is part of the result")
    g.add_argument("--engine", choices=["beam", "local"], default="beam", help="beam (default) or a plain loop without Beam")
    g.add_argument("--workers", type=int, default=1, help="local Beam workers (DirectRunner multi-processing)")
    g.add_argument("--tax-id", dest="tax_ids", type=int, nargs="+", action="extend", metavar="N",
                   help="only rows of these NCBI taxonomy ids (repeatable)")
    g.set_defaults(func=cmd_data_gene, beam_passthrough=True)
    return g


def cmd_data_gene(args, beam_args: list[str]) -> int:
    from bsm_data.cli import _progress
    from bsm_data.gene import build_gene_local

    from .options import run_build

    default_g2a, default_seqs = default_inputs() if not (args.gene2accession and args.sequences) else (None, None)
    gene2accession = args.gene2accession or default_g2a
    sequences = args.sequences or default_seqs
    opts = dict(seed=args.seed, seq_len=args.seq_len, flank=args.flank, num_shards=args.num_shards, tax_ids=args.tax_ids)

    def local():
        files = sorted({p for pat in sequences for p in glob.glob(pat)})
        if not files:
            raise SystemExit(f"no sequence files match {sequences}")
        return build_gene_local(gene2accession, files, args.output, progress=_progress("files"), **opts)

    return run_build(args, beam_args, local=local, beam=lambda b: run(gene2accession, sequences, args.output, beam_args=b, **opts))

