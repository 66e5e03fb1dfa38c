"""Load the on-disk contracts in ``schemas/`` and validate what writers produce against them.

Arrow schemas are kept as small JSON files (readable, diffable, versioned); this module turns
them into ``pyarrow.Schema`` objects. Writers call ``validate_table`` before every write.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pyarrow as pa

SCHEMA_VERSIONS = {"sequence_record": 1, "sample": 1, "packed_row": 1, "reject": 1, "eval_item": 1, "contamination": 1}
MANIFEST_VERSION = 1


class SchemaError(ValueError):
    pass


def schema_dir() -> Path:
    try:  # installed wheel: schemas ship as the bsm_schemas package
        from importlib.resources import files

        return Path(str(files("bsm_schemas")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[1] / "schemas"


_PRIMITIVES = {
    "string": pa.string(),
    "binary": pa.binary(),
    "bool": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "float32": pa.float32(),
    "float64": pa.float64(),
}


def _arrow_type(spec, params: dict) -> pa.DataType:
    if isinstance(spec, str):
        return _PRIMITIVES[spec]
    if "list" in spec:
        return pa.list_(_arrow_type(spec["list"], params))
    if "struct" in spec:
        return pa.struct([_arrow_field(f, params) for f in spec["struct"]])
    if "fixed_size_binary" in spec:  # width is a number or a named run parameter (seq_len)
        width = spec["fixed_size_binary"]
        if isinstance(width, str):
            if width not in params:
                raise SchemaError(f"schema needs parameter {width!r}")
            width = params[width]
        return pa.binary(int(width))
    raise SchemaError(f"unknown type spec {spec!r}")


def _arrow_field(f: dict, params: dict) -> pa.Field:
    return pa.field(f["name"], _arrow_type(f["type"], params), nullable=f.get("nullable", False))


@lru_cache(maxsize=None)
def _schema_spec(name: str) -> dict:
    version = SCHEMA_VERSIONS[name]
    spec = json.loads((schema_dir() / f"{name}.v{version}.json").read_text())
    if spec["version"] != version:
        raise SchemaError(f"schemas/{name}.v{version}.json says version {spec['version']}")
    return spec


def arrow_schema(name: str, **params) -> pa.Schema:
    """The Arrow schema of dataset ``name``; packed_row needs ``seq_len``."""
    meta = {b"bsm_schema": name.encode(), b"bsm_schema_version": str(SCHEMA_VERSIONS[name]).encode()}
    return pa.schema([_arrow_field(f, params) for f in _schema_spec(name)["fields"]], metadata=meta)


def to_table(name: str, rows: list[dict], **params) -> pa.Table:
    """Build a table from row dicts; raises SchemaError naming the bad column."""
    schema = arrow_schema(name, **params)
    try:
        table = pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError) as e:
        raise SchemaError(f"{name}: rows do not fit schema v{SCHEMA_VERSIONS[name]}: {e}") from e
    validate_table(name, table, **params)
    return table


def validate_table(name: str, table: pa.Table, **params) -> None:
    schema = arrow_schema(name, **params)
    if not table.schema.equals(schema, check_metadata=False):
        raise SchemaError(f"{name}: schema mismatch\nexpected:\n{schema}\ngot:\n{table.schema}")
    for field in schema:
        if not field.nullable and table.column(field.name).null_count:
            raise SchemaError(f"{name}: column {field.name!r} has nulls")


def check_file_schema(name: str, schema: pa.Schema, where: str) -> None:
    """Readers: refuse a file whose schema name or version is not the one this code reads."""
    meta = schema.metadata or {}
    got = (meta.get(b"bsm_schema", b"?").decode(), meta.get(b"bsm_schema_version", b"?").decode())
    want = (name, str(SCHEMA_VERSIONS[name]))
    if got != want:
        raise SchemaError(f"{where}: file holds schema {got[0]} v{got[1]}, this code reads {want[0]} v{want[1]}")


@lru_cache(maxsize=None)
def manifest_json_schema() -> dict:
    return json.loads((schema_dir() / f"manifest.v{MANIFEST_VERSION}.schema.json").read_text())


def validate_manifest(manifest: dict, where: str = "manifest") -> None:
    import jsonschema

    try:
        jsonschema.validate(manifest, manifest_json_schema())
    except jsonschema.ValidationError as e:
        path = "/".join(str(p) for p in e.absolute_path)
        raise SchemaError(f"{where}: invalid at {path or '<root>'}: {e.message}") from None
