"""Parquet shards and the manifest: atomic writes, checksums, version checks.

Every file is written under a hidden temporary name in its final directory and renamed into
place, so a killed run never leaves a partial file under a visible name. ``manifest.json`` is
written last and is the commit point: readers trust only the files it lists, and check their
sha256, the vocabulary and the schema versions before use. Works on local paths and on any
URI pyarrow.fs understands (gs://, s3://), which is what Dataflow workers write to.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .packing import PackedRows
from .schemas import (
    MANIFEST_VERSION,
    SCHEMA_VERSIONS,
    SchemaError,
    arrow_schema,
    check_file_schema,
    validate_manifest,
    validate_table,
)
from .vocab import load_vocab

MANIFEST = "manifest.json"
ZSTD_LEVEL = 5  # benchmarks/bench_pack.py: best bytes/token among levels that keep >= 20M tokens/s


class ManifestError(RuntimeError):
    pass


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def join(base: str, *parts: str) -> str:
    return posixpath.join(base, *parts) if "://" in base else os.path.join(base, *parts)


def atomic_write(uri: str, data: bytes) -> None:
    fs, path = filesystem(uri)
    parent, name = posixpath.split(path) if "://" in uri else os.path.split(path)
    fs.create_dir(parent, recursive=True)
    tmp = f"{parent}/.tmp-{name}-{uuid.uuid4().hex[:8]}"
    with fs.open_output_stream(tmp) as f:
        f.write(data)
    fs.move(tmp, path)


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as f:
        return f.read()


def parquet_bytes(table: pa.Table, *, dictionary: list[str] = (), statistics: list[str] = ()) -> bytes:
    buf = io.BytesIO()
    pq.write_table(
        table,
        buf,
        compression="zstd",
        compression_level=ZSTD_LEVEL,
        use_dictionary=list(dictionary) or False,
        write_statistics=list(statistics) or False,
        row_group_size=8192,
        data_page_size=8 << 20,  # bigger pages give zstd more context: measured -0.005 bytes/token
    )
    return buf.getvalue()


def write_dataset_file(schema_name: str, table: pa.Table, out_dir: str, rel_path: str, *, seq_len: int | None = None, **parquet_opts) -> dict:
    """Validate, write atomically, and return the manifest entry (path, rows, bytes, sha256)."""
    validate_table(schema_name, table, **({"seq_len": seq_len} if seq_len else {}))
    data = parquet_bytes(table, **parquet_opts)
    atomic_write(join(out_dir, rel_path), data)
    return {"path": rel_path, "rows": table.num_rows, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def packed_table(rows: PackedRows) -> pa.Table:
    """Rows as Arrow, zero-copy: ``tokens`` is fixed_size_binary(seq_len) over the uint8 matrix.

    ``sample_rows`` are pack()'s input indices, which are row numbers in the bucket's samples
    file because write_bucket packs samples in that file's (sample_id) order.
    """
    n, seq_len = rows.tokens.shape
    tokens = pa.Array.from_buffers(pa.binary(seq_len), n, [None, pa.py_buffer(rows.tokens)])
    return pa.Table.from_arrays(
        [
            tokens,
            pa.array(rows.doc_starts, pa.list_(pa.int32())),
            pa.array(rows.doc_index, pa.list_(pa.int32())),
            pa.array(rows.n_tokens, pa.int32()),
        ],
        schema=arrow_schema("packed_row", seq_len=seq_len),
    )


def write_shard(rows: PackedRows, out_dir: str, rel_path: str) -> dict:
    seq_len = rows.tokens.shape[1]
    entry = write_dataset_file("packed_row", packed_table(rows), out_dir, rel_path, statistics=["n_tokens"], seq_len=seq_len)
    tokens = int(rows.n_tokens.sum())
    entry.update(tokens=tokens, pad_tokens=rows.n_rows * seq_len - tokens, documents=rows.n_documents)
    return entry


def write_manifest(out_dir: str, manifest: dict) -> str:
    validate_manifest(manifest)
    uri = join(out_dir, MANIFEST)
    atomic_write(uri, (json.dumps(manifest, indent=1, sort_keys=False) + "\n").encode())
    return uri


def read_manifest(out_dir: str) -> dict:
    """Load and check a manifest; refuses unknown versions or a different vocabulary."""
    uri = join(out_dir, MANIFEST)
    try:
        manifest = json.loads(read_bytes(uri))
    except FileNotFoundError:
        raise ManifestError(f"{uri}: no manifest (the run did not finish, or this is not a shard directory)") from None
    if manifest.get("format") != "bsm-shards" or manifest.get("manifest_version") != MANIFEST_VERSION:
        raise ManifestError(
            f"{uri}: format {manifest.get('format')!r} v{manifest.get('manifest_version')}, "
            f"this code reads bsm-shards v{MANIFEST_VERSION}"
        )
    try:
        validate_manifest(manifest, uri)
    except SchemaError as e:
        raise ManifestError(str(e)) from None
    vocab = load_vocab()
    if (manifest["vocab"]["name"], manifest["vocab"]["version"]) != (vocab.name, vocab.version):
        raise ManifestError(
            f"{uri}: shards use vocabulary {manifest['vocab']['name']} v{manifest['vocab']['version']}, "
            f"this code uses {vocab.name} v{vocab.version}; rebuild the shards or use a matching release"
        )
    for name, version in manifest["schemas"].items():
        if SCHEMA_VERSIONS.get(name) != version:
            raise ManifestError(f"{uri}: schema {name} v{version}, this code reads v{SCHEMA_VERSIONS.get(name)}")
    return manifest


def verify_file(out_dir: str, entry: dict) -> bytes:
    """Read one listed file and check its sha256; returns its bytes."""
    uri = join(out_dir, entry["path"])
    data = read_bytes(uri)
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise ManifestError(f"{uri}: sha256 {digest} does not match the manifest's {entry['sha256']}")
    return data


def read_shard(out_dir: str, entry: dict, *, verify: bool = True) -> pa.Table:
    uri = join(out_dir, entry["path"])
    data = verify_file(out_dir, entry) if verify else read_bytes(uri)
    table = pq.read_table(io.BytesIO(data))
    check_file_schema("packed_row", table.schema, uri)
    return table


def clear_for_run(out_dir: str) -> None:
    """Before a run: retract the old commit point and remove leftovers of killed runs."""
    fs, path = filesystem(out_dir)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return
    for info in fs.get_file_info(pafs.FileSelector(path, recursive=True)):
        if info.base_name == MANIFEST or info.base_name.startswith(".tmp-"):
            fs.delete_file(info.path)


def remove_unlisted(out_dir: str, listed: set[str], subdirs: list[str]) -> list[str]:
    """Delete part files of earlier runs that this run's manifest does not list."""
    fs, path = filesystem(out_dir)
    removed = []
    for sub in subdirs:
        info = fs.get_file_info(join(path, sub))
        if info.type != pafs.FileType.Directory:
            continue
        for f in fs.get_file_info(pafs.FileSelector(info.path)):
            rel = f"{sub}/{f.base_name}"
            if f.type == pafs.FileType.File and rel not in listed:
                fs.delete_file(f.path)
                removed.append(rel)
    return removed
