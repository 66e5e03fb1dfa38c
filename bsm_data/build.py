"""Engine-free steps of a dataset build: file -> samples, bucket -> shard, results -> manifest.

The Beam pipelines in ``pipelines/`` call exactly these functions; ``build_local`` calls them
in a plain loop. Output of a build directory::

    manifest.json               commit point, written last
    shards/part-NNNNN.parquet   packed rows (schema packed_row)
    samples/part-NNNNN.parquet  documents before packing (schema sample)
    rejects/part-NNNNN.parquet  everything not used, with its reason (schema reject)

Determinism: samples go to bucket ``sha256(sample_id) mod num_shards``; each bucket is sorted
before packing, so the bytes written depend on the inputs, the seed and num_shards only: not
on file order, worker count or runner.
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from importlib.metadata import PackageNotFoundError, version

from .accounting import Accounting, StageCounts
from .genbank import extract_genbank
from .packing import pack, storage_order
from .pairing import pair_gene
from .records import Reject, Sample
from .schemas import SCHEMA_VERSIONS, to_table
from .shards import clear_for_run, remove_unlisted, write_dataset_file, write_manifest, write_shard
from .vocab import encode_sample, load_vocab

DATASET_DIRS = ["shards", "samples", "rejects", "valid/shards", "valid/samples"]
SPLITS = {"train": "", "valid": "valid/"}  # split -> directory prefix


def package_version() -> str:
    try:
        return version("bsm")
    except PackageNotFoundError:
        return "0+unknown"


def bucket_of(key: str, num_buckets: int) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") % num_buckets


def reject_key(r: Reject) -> tuple:
    return (r.source_file, r.record_id, r.item_id, r.stage, r.reason, r.detail)


def genbank_file_to_samples(path: str, acct: Accounting, *, seed: int, seq_len: int, flank: int, source: str = "refseq"):
    """Yield the Samples and Rejects of one GenBank file, counting into ``acct``."""
    vocab = load_vocab()
    for item in extract_genbank(path, acct, source=source, flank=flank):
        if isinstance(item, Reject):
            yield item
        else:
            yield from pair_gene(item, vocab, acct, seed=seed, seq_len=seq_len, source=source)


def write_bucket(out_dir: str, bucket: int, samples: list[Sample], rejects: list[Reject], *, seed: int, seq_len: int, split: str = "train") -> dict:
    """Tokenize, pack and write one bucket's shard, samples and rejects. Returns manifest parts.

    ``split="valid"`` writes under ``valid/`` (held-out rows for validation loss)."""
    vocab = load_vocab()
    samples = sorted(samples, key=lambda s: s.sample_id)
    rejects = sorted(rejects, key=reject_key)
    name = f"part-{bucket:05d}.parquet"
    prefix = SPLITS[split]
    result = {"bucket": bucket, "split": split, "shard": None, "files": {}, "sources": {}, "pack": StageCounts("pack").to_dict()}
    if rejects:
        result["files"]["rejects"] = write_dataset_file(
            "reject", to_table("reject", [r.as_row() for r in rejects]), out_dir, f"rejects/{name}",
            dictionary=["stage", "reason", "source", "source_file"],
        )
    if not samples:
        return result
    docs = [(s.sample_id, encode_sample(vocab, s.segments)) for s in samples]
    pack_counts = StageCounts("pack")
    pack_counts.take(len(docs))
    rows = pack(docs, seq_len, seed)
    rows = rows.take(storage_order(rows, vocab.protein_ids, vocab.id_of["u"]))
    pack_counts.emit(rows.n_documents)
    result["pack"] = pack_counts.to_dict()
    result["shard"] = write_shard(rows, out_dir, f"{prefix}shards/{name}")
    result["files"]["valid_samples" if prefix else "samples"] = write_dataset_file(
        "sample", to_table("sample", [s.as_row() for s in samples]), out_dir, f"{prefix}samples/{name}",
        dictionary=["source", "source_file", "record_id"],
    )
    sources: dict[str, Counter] = {}
    for s, (_, ids) in zip(samples, docs):
        c = sources.setdefault(s.source, Counter())
        c["samples"] += 1
        c["tokens"] += len(ids)
    result["sources"] = {k: dict(v) for k, v in sources.items()}
    return result


def finalize(
    out_dir: str,
    bucket_results: list[dict],
    acct: Accounting,
    *,
    pipeline: str,
    options: dict,
    seed: int,
    seq_len: int,
    upsample: dict[str, float] | None = None,
    extra: dict | None = None,
    extra_files: dict[str, list] | None = None,
) -> dict:
    """Merge bucket results, check every count reconciles, and write the manifest last.

    ``upsample`` gives each source's upsampling factor (default 1.0); ``extra`` adds top-level
    manifest keys (a round's mix and decontamination summaries); ``extra_files`` lists other
    files the run wrote (a contamination report) under ``files``."""
    bucket_results = sorted(bucket_results, key=lambda r: (r.get("split", "train"), r["bucket"]))
    pack_counts = StageCounts("pack")
    sources: dict[str, Counter] = {}
    files: dict[str, list] = {"samples": [], "rejects": []}
    shards, validation = [], []
    for r in bucket_results:
        pack_counts.merge(StageCounts.from_dict("pack", r["pack"]))
        train = r.get("split", "train") == "train"
        if train:
            for src, c in r["sources"].items():
                sources.setdefault(src, Counter()).update(c)
        for kind, entry in r["files"].items():
            files.setdefault(kind, []).append(entry)
        if r["shard"]:
            (shards if train else validation).append(r["shard"])
    for kind, entries in (extra_files or {}).items():
        files[kind] = list(entries)
    acct.stages["pack"] = pack_counts
    acct.check()
    n_samples = sum(s["rows"] for s in files["samples"] + files.get("valid_samples", []))
    if n_samples != pack_counts.n_in:
        raise RuntimeError(f"samples written ({n_samples}) != samples packed ({pack_counts.n_in})")
    rows = sum(s["rows"] for s in shards)
    tokens = sum(s["tokens"] for s in shards)
    pad = sum(s["pad_tokens"] for s in shards)
    shard_bytes = sum(s["bytes"] for s in shards)
    reject_summary = Counter()
    for stage in acct.stages.values():
        reject_summary.update(stage.rejected)
    manifest = {
        "format": "bsm-shards",
        "manifest_version": 1,
        "created_by": f"bsm {package_version()}",
        "pipeline": {"name": pipeline, "version": package_version(), "options": options},
        "seed": seed,
        "seq_len": seq_len,
        "vocab": load_vocab().describe(),
        "schemas": dict(SCHEMA_VERSIONS),
        "shards": shards,
        "files": files,
        "sources": {
            k: {"samples": v["samples"], "tokens": v["tokens"], "upsample": (upsample or {}).get(k, 1.0)}
            for k, v in sorted(sources.items())
        },
        "totals": {
            "rows": rows,
            "tokens": tokens,
            "pad_tokens": pad,
            "documents": sum(s["documents"] for s in shards),
            "bytes": shard_bytes,
            "padding_fraction": round(pad / (rows * seq_len), 6) if rows else 0.0,
            "bytes_per_token": round(shard_bytes / tokens, 6) if tokens else 0.0,
        },
        "accounting": acct.to_dict(),
        "reject_summary": dict(sorted(reject_summary.items())),
    }
    if validation:
        manifest["validation"] = validation
    manifest.update(extra or {})
    listed = {e["path"] for e in shards + validation} | {e["path"] for es in files.values() for e in es}
    remove_unlisted(out_dir, listed, DATASET_DIRS)
    write_manifest(out_dir, manifest)
    return manifest


def build_local(items, acct: Accounting, out_dir: str, *, pipeline: str, options: dict, seed: int, seq_len: int, num_shards: int) -> dict:
    """Bucket a stream of Samples and Rejects, write every bucket, then the manifest.

    The engine-free twin of ``pipelines.common.write_shards``; the bytes are the same.
    ``acct`` must have counted everything that produced ``items``.
    """
    clear_for_run(out_dir)
    samples: dict[int, list] = {b: [] for b in range(num_shards)}
    rejects: dict[int, list] = {b: [] for b in range(num_shards)}
    for item in items:
        if isinstance(item, Sample):
            samples[bucket_of(item.sample_id, num_shards)].append(item)
        else:
            rejects[bucket_of("|".join(reject_key(item)), num_shards)].append(item)
    results = [write_bucket(out_dir, b, samples[b], rejects[b], seed=seed, seq_len=seq_len) for b in range(num_shards)]
    return finalize(out_dir, results, acct, pipeline=pipeline, options=options, seed=seed, seq_len=seq_len)


def build_genbank_local(inputs: list[str], out_dir: str, *, seed: int = 0, seq_len: int = 1024, flank: int = 100, num_shards: int = 1, source: str = "refseq", progress=None) -> dict:
    """The RefSeq build without Beam: same functions, same bytes, one process."""
    acct = Accounting()
    items = (
        item
        for path in (progress(inputs) if progress else inputs)
        for item in genbank_file_to_samples(path, acct, seed=seed, seq_len=seq_len, flank=flank, source=source)
    )
    return build_local(items, acct, out_dir, pipeline="refseq", options=refseq_options(inputs, num_shards, flank), seed=seed, seq_len=seq_len, num_shards=num_shards)


def refseq_options(inputs: list[str], num_shards: int, flank: int) -> dict:
    """The options recorded in the manifest: the same for every engine, so manifests match."""
    return {"inputs": sorted(os.path.basename(p) for p in inputs), "num_shards": num_shards, "flank": flank}
