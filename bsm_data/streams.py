"""Opening inputs: local paths, any Beam filesystem URI (gs://, s3://) or an open binary stream,
gunzipped when the data starts with the gzip magic (suffixes are not trusted)."""
from __future__ import annotations

import gzip
import io
from contextlib import contextmanager

GZIP_MAGIC = b"\x1f\x8b"


def open_stream(path):
    """(stream, is_gzip, close): a buffered binary stream, decompressed when the data starts
    with the gzip magic; ``close`` releases only what this module opened."""
    owned = not hasattr(path, "read")
    if not owned:
        raw = path
    elif isinstance(path, str) and "://" in path:
        from apache_beam.io.filesystems import CompressionTypes, FileSystems

        raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    else:
        raw = open(path, "rb")
    if hasattr(raw, "peek"):
        buffered = raw
        magic = raw.peek(2)[:2]
    elif raw.seekable():  # e.g. BytesIO: no wrapper, so reading it whole copies nothing
        buffered = raw
        pos = raw.tell()
        magic = raw.read(2)
        raw.seek(pos)
    else:
        buffered = io.BufferedReader(raw)
        magic = buffered.peek(2)[:2]
    fh = buffered
    is_gzip = magic == GZIP_MAGIC
    if is_gzip:
        fh = gzip.GzipFile(fileobj=buffered, mode="rb")

    def close():
        if fh is not buffered:
            fh.close()  # a GzipFile on a fileobj leaves that fileobj open
        if owned:
            buffered.close()
        elif buffered is not raw:
            buffered.detach()  # a caller's stream stays open

    return fh, is_gzip, close


@contextmanager
def open_binary(path):
    """``with open_binary(path) as fh``: the stream of ``open_stream``, closed on exit."""
    fh, _, close = open_stream(path)
    try:
        yield fh
    finally:
        close()
