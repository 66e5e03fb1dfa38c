"""DuckDB over a build directory, with ready views.

Views (each present when the directory has that dataset):
- ``shards``: packed rows (tokens BLOB, doc_starts, sample_rows, n_tokens) + ``shard`` file name
  and ``row`` number; ``documents``: one row per packed document (shard, row, start, length)
  joined to its sample (sample_id, source, segments)
- ``samples``: documents before packing; ``segments``: one row per segment with its modality,
  length (residues) and position in the sample
- ``rejects``: everything not used, with stage, reason, detail and provenance
- ``manifest_shards``: the manifest's shard table (path, rows, tokens, pad_tokens, bytes, sha256)
- ``accounting``: per stage in / out / rejected, and ``reject_reasons``: per stage and reason
Any other dataset listed under ``files`` in the manifest gets a view of its own name, so later
stages (decontamination reports, web extraction) become queryable without changing this code.
"""
from __future__ import annotations

import glob
import json
import os

import duckdb

from .shards import MANIFEST, join, read_manifest


def _sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _datasets(data_dir: str) -> tuple[dict[str, list[str]], dict | None]:
    if os.path.exists(os.path.join(data_dir, MANIFEST)) or "://" in data_dir:
        manifest = read_manifest(data_dir)
        sets = {"shards": [join(data_dir, e["path"]) for e in manifest["shards"]]}
        for name, entries in manifest["files"].items():
            sets[name] = [join(data_dir, e["path"]) for e in entries]
        return {k: v for k, v in sets.items() if v}, manifest
    # no manifest: a directory of datasets (e.g. a report) is still queryable, by glob
    sets = {}
    for sub in sorted(glob.glob(os.path.join(data_dir, "*", "*.parquet"))):
        sets.setdefault(os.path.basename(os.path.dirname(sub)), []).append(sub)
    return sets, None


def connect(data_dir: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    sets, manifest = _datasets(data_dir)
    if not sets:
        raise FileNotFoundError(f"{data_dir}: no manifest.json and no <dataset>/*.parquet files")
    for name, paths in sets.items():
        if name == "shards":  # keep which shard, and which row of it, a row is
            con.execute(
                f"CREATE VIEW shards AS SELECT * EXCLUDE (filename, file_row_number), parse_filename(filename) AS shard, "
                f"file_row_number AS row FROM read_parquet({_sql_list(paths)}, filename = true, file_row_number = true)"
            )
        else:
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({_sql_list(paths)})")
    if "samples" in sets and "shards" in sets:
        con.execute(
            f"""CREATE VIEW documents AS
               WITH docs AS (
                   SELECT shard, row, unnest(doc_starts) AS start, unnest(sample_rows) AS sample_row FROM shards),
               s AS (
                   SELECT parse_filename(filename) AS shard, file_row_number AS sample_row, sample_id, source,
                          n_tokens, segments
                   FROM read_parquet({_sql_list(sets['samples'])}, filename = true, file_row_number = true))
               SELECT docs.shard, docs.row, docs.start, s.n_tokens AS length, s.sample_id, s.source, s.segments
               FROM docs JOIN s USING (shard, sample_row)"""
        )
    if "samples" in sets:
        con.execute(
            """CREATE VIEW segments AS
               SELECT sample_id, source, group_id, record_id, u.pos - 1 AS position,
                      u.seg.modality AS modality, length(u.seg.sequence) AS length
               FROM samples, unnest(segments) WITH ORDINALITY AS u(seg, pos)"""
        )
    if manifest is not None:
        shard_rows = [(e["path"], e["rows"], e["tokens"], e["pad_tokens"], e["documents"], e["bytes"], e["sha256"]) for e in manifest["shards"]]
        con.execute("CREATE TABLE manifest_shards (path VARCHAR, rows BIGINT, tokens BIGINT, pad_tokens BIGINT, documents BIGINT, bytes BIGINT, sha256 VARCHAR)")
        if shard_rows:
            con.executemany("INSERT INTO manifest_shards VALUES (?, ?, ?, ?, ?, ?, ?)", shard_rows)
        con.execute('CREATE TABLE accounting (stage VARCHAR, "in" BIGINT, "out" BIGINT, rejected BIGINT)')
        con.execute("CREATE TABLE reject_reasons (stage VARCHAR, reason VARCHAR, n BIGINT)")
        for stage, c in manifest["accounting"].items():
            con.execute("INSERT INTO accounting VALUES (?, ?, ?, ?)", (stage, c["in"], c["out"], sum(c["rejected"].values())))
            for reason, n in c["rejected"].items():
                con.execute("INSERT INTO reject_reasons VALUES (?, ?, ?)", (stage, reason, n))
    return con


def run_query(data_dir: str, sql: str, fmt: str = "table", max_rows: int = 100) -> str:
    con = connect(data_dir)
    rel = con.sql(sql)
    if rel is None:
        return ""
    if fmt == "table":
        return rel.limit(max_rows).__str__() if max_rows else str(rel)
    cols = rel.columns
    rows = rel.fetchall()
    if fmt == "json":
        return "\n".join(json.dumps(dict(zip(cols, r)), default=str) for r in rows)
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(cols)
        w.writerows(rows)
        return buf.getvalue()
    raise ValueError(f"unknown format {fmt!r}")
