"""datatrove pipeline: FineWeb-Edu parquet -> interleaved web samples -> packed shards + manifest.

Thin wiring; the biology is ``bsm_data.web`` and the shard/manifest contract is
``bsm_data.build`` (``write_bucket``, ``finalize``). Two datatrove jobs, both run with
``LocalPipelineExecutor`` (swap in ``SlurmPipelineExecutor``/``RayPipelineExecutor`` to scale
out; the steps do not change)::

  extract (one task per input file, or --tasks):
      ParquetReader (FineWeb-Edu schema: text, id, dump, url, ...; local or hf://datasets/...)
      -> WebExtractor   per document: sequences, keep/reject, samples (bsm_data.web)
      -> WebTaskWriter  per task: samples + rejects Parquet (with their final bucket) + accounting
  pack (one task per output shard):
      PackBucket        reads every task file, keeps its bucket, bsm_data.build.write_bucket
  then, in this process: bsm_data.build.finalize -> manifest.json (written last, the commit point)

Work files live in ``OUTPUT/datatrove/``: ``config.json`` (the run's options; a relaunch with
other options starts the work over), ``inputs.txt`` (the input files, relative to their root),
``tasks/`` (per-task samples, rejects, accounting), ``buckets/`` (per-bucket manifest parts),
``logs/extract`` and ``logs/pack`` (datatrove logging dirs: ``completions/`` markers,
``stats/`` per task, ``logs/``), and ``stats.json`` (the extract job's datatrove stats summed
over every task, also the ones a relaunch skipped).

Resume: every file a task writes is written under a temporary name and renamed, and datatrove
marks the task complete only after its writer has finished, so a relaunch after ``kill -9``
skips completed tasks, redoes the others and finalises: the output is byte-identical to an
uninterrupted run (samples are bucketed by ``sha256(sample_id)`` and sorted in each bucket,
as in every bsm build, so neither task count, worker count nor completion order matters).
Documents whose text is empty are counted and rejected (``empty_text``), not dropped.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import posixpath
import sys
import time
from glob import has_magic

WORK = "datatrove"
ACCOUNTING_DOC = "bsm:web:task-accounting"
MIN_SEQUENCES = 3  # = bsm_data.web.MIN_SEQUENCES (the paper's rule), repeated to keep this import light
PIPELINE = "web"


# ----------------------------------------------------------------------------------- inputs


def _fs(path: str):
    import fsspec

    return fsspec.core.url_to_fs(path)


def resolve_inputs(inputs: list[str]) -> tuple[str, list[str]]:
    """Input files as (root folder, sorted paths relative to it).

    Each input is a Parquet file, a folder (every ``*.parquet`` below it) or a glob; local or
    any fsspec URL (``hf://datasets/HuggingFaceFW/fineweb-edu/data/CC-MAIN-2024-10/*.parquet``).
    """
    protocols, files = set(), []
    for inp in inputs:
        fs, path = _fs(inp)
        proto = inp.split("://", 1)[0] + "://" if "://" in inp else ""
        protocols.add(proto)
        if has_magic(path):
            found = fs.glob(path)
        elif fs.isdir(path):
            found = [p for p in fs.find(path) if p.endswith(".parquet")]
        elif fs.exists(path):
            found = [path]
        else:
            raise FileNotFoundError(f"no input at {inp}")
        if not found:
            raise FileNotFoundError(f"no Parquet files match {inp}")
        files.extend(found)
    if len(protocols) > 1:
        raise ValueError(f"inputs mix filesystems: {sorted(protocols)}")
    proto = protocols.pop()
    if not proto:
        from bsm_data.web import relative_inputs

        return relative_inputs(files)
    files = sorted(set(files))
    root = posixpath.commonpath([posixpath.dirname(f) for f in files])
    return proto + root, [posixpath.relpath(f, root) for f in files]


# ------------------------------------------------------------------------------------ steps
#
# The datatrove steps are defined on first use (PEP 562 ``__getattr__``), so that importing this
# module for ``add_web_parser`` does not import datatrove, pyarrow and numpy (~0.4 s on every
# ``bsm`` command). Pickling (datatrove's worker processes) finds them by name as usual.

_STEPS = ("WebExtractor", "WebTaskWriter", "PackBucket")


def __getattr__(name: str):
    if name in _STEPS:
        _define_steps()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _adapter(self, data: dict, path: str, id_in_file) -> dict:
    """FineWeb-Edu row -> Document dict. Keeps empty documents (marked) so they are counted."""
    text = data.get(self.text_key) or ""
    return {
        "text": text or " ",
        "id": str(data.get(self.id_key) or f"{path}/{id_in_file}"),
        "metadata": {"source_file": path, "empty_text": not text.strip()},
    }


def task_file(work_dir: str, kind: str, rank: int) -> str:
    from bsm_data.shards import join

    ext = "json" if kind == "accounting" else "parquet"
    return join(work_dir, "tasks", f"{kind}-{rank:05d}.{ext}")


def _define_steps() -> None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from datatrove.data import Document
    from datatrove.pipeline.base import PipelineStep

    from bsm_data.build import bucket_of, reject_key, write_bucket
    from bsm_data.records import Reject, Sample
    from bsm_data.schemas import arrow_schema
    from bsm_data.shards import atomic_write, join, read_bytes
    from bsm_data.web import STAGE_DOCS, document_to_samples, new_accounting

    class WebExtractor(PipelineStep):
        """Finds sequences in each document, keeps documents with >= min_sequences, builds samples.

        Yields every document (kept or not) with ``metadata["bsm_samples"]`` / ``["bsm_rejects"]``,
        then one last Document (id ``bsm:web:task-accounting``) carrying the task's accounting.
        Stats: ``documents_in``, ``documents_kept``, ``documents_rejected_<reason>``,
        ``sequences_<modality>`` (occurrences found, repeats included), ``candidates_rejected_<reason>``,
        ``samples``, ``sample_tokens``; exact, reconciled counts are in the task accounting.
        """

        name = "🧬 Web sequences"
        type = "🔬 - EXTRACT"

        def __init__(self, *, seq_len: int = 1024, min_sequences: int = MIN_SEQUENCES):
            super().__init__()
            self.seq_len = seq_len
            self.min_sequences = min_sequences

        def run(self, data, rank: int = 0, world_size: int = 1):
            acct = new_accounting()
            for doc in data or ():
                self.stat_update("documents_in")
                source_file = doc.metadata.get("source_file", "")
                with self.track_time():
                    if doc.metadata.get("empty_text"):
                        acct.stage(STAGE_DOCS).take()
                        samples, rejects = [], [acct.reject(
                            STAGE_DOCS, "empty_text", detail="document has no text", source="web",
                            source_file=source_file, record_id=doc.id,
                        )]
                        found, rejected = [], []
                    else:
                        samples, rejects, ext = document_to_samples(
                            doc.id, doc.text, acct, source_file=source_file, seq_len=self.seq_len, min_sequences=self.min_sequences,
                        )
                        found, rejected = ext.found, ext.rejected
                for f in found:
                    self.stat_update(f"sequences_{f.modality}")
                for r in rejected:
                    self.stat_update(f"candidates_rejected_{r.reason}")
                if samples:
                    self.stat_update("documents_kept")
                    self.stat_update("samples", value=len(samples))
                    self.stat_update("sample_tokens", value=sum(s.n_tokens for s in samples))
                else:
                    self.stat_update(f"documents_rejected_{rejects[-1].reason if rejects else 'no_candidates'}")
                doc.metadata["bsm_samples"] = samples
                doc.metadata["bsm_rejects"] = rejects
                yield doc
            yield Document(text=" ", id=ACCOUNTING_DOC, metadata={"bsm_accounting": acct.to_dict(), "rank": rank})

    def _sample_table(samples: list[Sample], num_shards: int) -> pa.Table:
        schema = arrow_schema("sample").append(pa.field("bucket", pa.int32(), nullable=False))
        rows = [s.as_row() | {"bucket": bucket_of(s.sample_id, num_shards)} for s in samples]
        return pa.Table.from_pylist(rows, schema=schema)

    def _reject_table(rejects: list[Reject], num_shards: int) -> pa.Table:
        schema = arrow_schema("reject").append(pa.field("bucket", pa.int32(), nullable=False))
        rows = [r.as_row() | {"bucket": bucket_of("|".join(reject_key(r)), num_shards)} for r in rejects]
        return pa.Table.from_pylist(rows, schema=schema)

    def _parquet(table: pa.Table) -> bytes:
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        return buf.getvalue()

    class WebTaskWriter(PipelineStep):
        """Writes one task's samples and rejects (with their output bucket) and its accounting.

        Files are written under temporary names and renamed; the accounting file is written last.
        """

        name = "💾 Web task files"
        type = "💽 - WRITER"

        def __init__(self, work_dir: str, *, num_shards: int):
            super().__init__()
            self.work_dir = work_dir
            self.num_shards = num_shards

        def run(self, data, rank: int = 0, world_size: int = 1):
            samples: list[Sample] = []
            rejects: list[Reject] = []
            accounting = None
            for doc in data or ():
                if doc.id == ACCOUNTING_DOC:
                    accounting = doc.metadata["bsm_accounting"]
                    continue
                samples.extend(doc.metadata.pop("bsm_samples", ()))
                rejects.extend(doc.metadata.pop("bsm_rejects", ()))
            if accounting is None:
                raise RuntimeError("WebTaskWriter got no accounting: it must follow WebExtractor")
            with self.track_time("task"):
                atomic_write(task_file(self.work_dir, "samples", rank), _parquet(_sample_table(samples, self.num_shards)))
                atomic_write(task_file(self.work_dir, "rejects", rank), _parquet(_reject_table(rejects, self.num_shards)))
                atomic_write(task_file(self.work_dir, "accounting", rank), json.dumps(accounting, sort_keys=True).encode())
            self.stat_update("samples_written", value=len(samples))
            self.stat_update("rejects_written", value=len(rejects))
            return
            yield  # a generator that yields nothing: the writer ends the pipeline

    class PackBucket(PipelineStep):
        """Task ``b`` of the pack job: bucket ``b``'s samples and rejects -> shard, files, result."""

        name = "📦 Pack bucket"
        type = "💽 - WRITER"

        def __init__(self, output: str, work_dir: str, *, n_tasks: int, seed: int, seq_len: int):
            super().__init__()
            self.output = output
            self.work_dir = work_dir
            self.n_tasks = n_tasks
            self.seed = seed
            self.seq_len = seq_len

        def _rows(self, kind: str, bucket: int) -> list[dict]:
            rows = []
            for t in range(self.n_tasks):
                table = pq.read_table(io.BytesIO(read_bytes(task_file(self.work_dir, kind, t))))
                table = table.filter(pc.equal(table["bucket"], bucket)).drop_columns(["bucket"])
                rows.extend(table.to_pylist())
            return rows

        def run(self, data, rank: int = 0, world_size: int = 1):
            with self.track_time("bucket"):
                samples = [Sample.from_row(r) for r in self._rows("samples", rank)]
                rejects = [Reject(**r) for r in self._rows("rejects", rank)]
                result = write_bucket(self.output, rank, samples, rejects, seed=self.seed, seq_len=self.seq_len)
                atomic_write(join(self.work_dir, "buckets", f"{rank:05d}.json"), json.dumps(result).encode())  # key order is the manifest's
            self.stat_update("samples", value=len(samples))
            self.stat_update("rejects", value=len(rejects))
            return
            yield

    for cls in (WebExtractor, WebTaskWriter, PackBucket):
        cls.__module__, cls.__qualname__ = __name__, cls.__name__
    globals().update(WebExtractor=WebExtractor, WebTaskWriter=WebTaskWriter, PackBucket=PackBucket)


# -------------------------------------------------------------------------------------- run


def _prepare_work_dir(work: str, config: dict) -> None:
    """Keep the work of an interrupted run with the same options; otherwise start over."""
    from bsm_data.shards import atomic_write, filesystem, join, read_bytes

    fs, path = filesystem(work)
    cfg = join(work, "config.json")
    blob = (json.dumps(config, indent=1, sort_keys=True) + "\n").encode()
    try:
        same = read_bytes(cfg) == blob
    except (FileNotFoundError, OSError):
        same = False
    if not same:
        from pyarrow.fs import FileType

        if fs.get_file_info(path).type == FileType.Directory:
            fs.delete_dir(path)
        atomic_write(cfg, blob)


def _merge_stats(logging_dir: str, n_tasks: int) -> str:
    from datatrove.utils.stats import PipelineStats

    from bsm_data.shards import join, read_bytes

    total = PipelineStats()
    for t in range(n_tasks):
        total = total + PipelineStats.from_json(json.loads(read_bytes(join(logging_dir, "stats", f"{t:05d}.json"))))
    return total.to_json()


def run(
    inputs: list[str], output: str, *, seed: int = 0, seq_len: int = 1024, num_shards: int = 1, workers: int = 1,
    tasks: int | None = None, min_sequences: int = MIN_SEQUENCES, limit: int = -1,
) -> dict:
    """Run (or resume) the web build into ``output``; returns the manifest."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import ParquetReader

    from bsm_data.accounting import Accounting
    from bsm_data.build import finalize, package_version
    from bsm_data.shards import atomic_write, clear_for_run, join, read_bytes
    from bsm_data.web import EXTRACTOR_VERSION, new_accounting, web_options

    steps = sys.modules[__name__]
    if num_shards < 1 or workers < 1 or min_sequences < 1:
        raise ValueError("num_shards, workers and min_sequences must be >= 1")
    root, rel = resolve_inputs(inputs)
    n_tasks = tasks or len(rel)
    work = join(output, WORK)
    config = {
        "pipeline": PIPELINE, "version": package_version(), "extractor_version": EXTRACTOR_VERSION, "root": root,
        "inputs": rel, "inputs_sha256": hashlib.sha256("\n".join(rel).encode()).hexdigest(), "tasks": n_tasks,
        "seed": seed, "seq_len": seq_len, "num_shards": num_shards, "min_sequences": min_sequences, "limit": limit,
    }
    _prepare_work_dir(work, config)
    clear_for_run(output)  # retracts an old manifest, removes .tmp- leftovers of killed runs
    paths_file = join(work, "inputs.txt")
    atomic_write(paths_file, ("\n".join(rel) + "\n").encode())
    extract = LocalPipelineExecutor(
        pipeline=[
            ParquetReader(root, paths_file=paths_file, read_metadata=False, adapter=_adapter, limit=limit),
            steps.WebExtractor(seq_len=seq_len, min_sequences=min_sequences),
            steps.WebTaskWriter(work, num_shards=num_shards),
        ],
        tasks=n_tasks, workers=min(workers, n_tasks), logging_dir=join(work, "logs", "extract"), skip_completed=True,
    )
    extract.run()
    if missing := extract.get_incomplete_ranks():
        raise RuntimeError(f"extract tasks {missing} did not complete; relaunch to resume")
    atomic_write(join(work, "stats.json"), _merge_stats(join(work, "logs", "extract"), n_tasks).encode())
    pack = LocalPipelineExecutor(
        pipeline=[steps.PackBucket(output, work, n_tasks=n_tasks, seed=seed, seq_len=seq_len)],
        tasks=num_shards, workers=min(workers, num_shards), logging_dir=join(work, "logs", "pack"), skip_completed=True,
    )
    pack.run()
    if missing := pack.get_incomplete_ranks():
        raise RuntimeError(f"pack tasks {missing} did not complete; relaunch to resume")
    acct = new_accounting()
    for t in range(n_tasks):
        acct.merge(Accounting.from_dict(json.loads(read_bytes(task_file(work, "accounting", t)))))
    results = [json.loads(read_bytes(join(work, "buckets", f"{b:05d}.json"))) for b in range(num_shards)]
    return finalize(output, results, acct, pipeline=PIPELINE, options=web_options(rel, num_shards, min_sequences), seed=seed, seq_len=seq_len)


# -------------------------------------------------------------------------------------- CLI

def cmd_data_web(args, rest: list[str]) -> int:
    if rest:
        raise SystemExit(f"bsm data web: unrecognized arguments: {' '.join(rest)}")
    from bsm_data.cli import bundled, summary_table

    inputs = args.input or [bundled("web", "fineweb_edu_sample.parquet")]
    start = time.perf_counter()
    manifest = run(
        inputs, args.output, seed=args.seed, seq_len=args.seq_len, num_shards=args.num_shards, workers=args.workers,
        tasks=args.tasks, min_sequences=args.min_sequences, limit=args.limit,
    )
    print(summary_table(manifest, args.output))
    print(f"\ndatatrove stats: {os.path.join(args.output, WORK, 'stats.json')}")
    print(f"done in {time.perf_counter() - start:.1f}s")
    return 0


def add_web_parser(data_subparsers) -> argparse.ArgumentParser:
    """``bsm data web``: define the subcommand on ``bsm data``'s subparsers."""
    sp = data_subparsers.add_parser(
        "web",
        help="FineWeb-Edu documents -> interleaved DNA/RNA/protein samples (datatrove) -> packed Parquet shards + manifest",
        description=(
            "Reads FineWeb-Edu Parquet (text, id, dump, url, ...), finds DNA, RNA and protein sequences in each "
            "document, keeps documents with at least --min-sequences of them and writes one sample per document "
            "(sequences in document order, joined by <sep>). Resumable: rerun the same command after an "
            "interruption. Without --input: the bundled data/web sample."
        ),
    )
    sp.add_argument("--input", action="append", metavar="PARQUET_OR_HF_PATH",
                    help="Parquet file, folder or glob; local or hf://datasets/HuggingFaceFW/fineweb-edu/...; repeatable")
    sp.add_argument("--output", required=True, help="build directory")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--seq-len", type=int, default=1024)
    sp.add_argument("--num-shards", type=int, default=1, help="output shards; fixes the bucketing, so it is part of the result")
    sp.add_argument("--workers", type=int, default=1, help="datatrove tasks run in parallel")
    sp.add_argument("--tasks", type=int, default=None, help="datatrove extract tasks (default: one per input file)")
    sp.add_argument("--min-sequences", type=int, default=MIN_SEQUENCES, help="keep documents with at least this many distinct sequences (paper: 3)")
    sp.add_argument("--limit", type=int, default=-1, help="read at most this many documents per task (debugging)")
    sp.set_defaults(func=cmd_data_web)
    return sp


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.web ARGS`` == ``bsm data web ARGS``."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.web")
    add_web_parser(parser.add_subparsers(dest="command", required=True))
    args, rest = parser.parse_known_args(["web", *(sys.argv[1:] if argv is None else argv)])
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args.func(args, rest)


if __name__ == "__main__":
    sys.exit(main())
