"""Pack tokenized documents into fixed-length rows without splitting any document.

Best-fit decreasing: documents are placed longest first, each into the open row with the least
room that still fits it (ties broken by sample_id, so the result does not depend on input
order). This keeps padding low (measured in benchmarks/) while keeping every document whole,
which is what per-document attention masks need. Rows, and documents inside each row, are then
shuffled with a RNG derived from the seed, so long and short documents are not clustered;
``storage_order`` then groups rows by alphabet mix for compression, stably.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from .pairing import gene_rng


@dataclass
class PackedRows:
    tokens: np.ndarray  # (rows, seq_len) uint8, <pad>=0 after the last document
    doc_starts: list[list[int]]
    doc_index: list[list[int]]  # per row, the index of each document in pack()'s input
    n_tokens: np.ndarray  # (rows,) int32

    @property
    def n_rows(self) -> int:
        return len(self.doc_starts)

    @property
    def n_documents(self) -> int:
        return sum(len(d) for d in self.doc_starts)

    def take(self, order) -> "PackedRows":
        return PackedRows(self.tokens[order], [self.doc_starts[i] for i in order], [self.doc_index[i] for i in order], self.n_tokens[order])


def storage_order(rows: PackedRows, protein_ids: np.ndarray, u_id: int) -> np.ndarray:
    """Row order for writing: by share of amino-acid tokens, then of U, stable over the shuffle.

    zstd codes literals with one Huffman table per block, so blocks of rows with a similar
    alphabet mix compress better: 0.353 -> 0.341 bytes/token on data/genbank
    (benchmarks/bench_pack.py). Training order is the trainer's own seeded permutation over
    (shard, row), so this costs nothing there; but the first rows of a shard are not a random
    sample of it.
    """
    n = np.maximum(rows.n_tokens, 1)
    aa = np.isin(rows.tokens, protein_ids).sum(axis=1) / n
    u = (rows.tokens == u_id).sum(axis=1) / n
    return np.lexsort((u, aa))


def assign_rows(lengths: list[int], keys: list[str], seq_len: int) -> list[list[int]]:
    """Best-fit decreasing bin packing; returns document indices per row."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], keys[i]))
    rows: list[list[int]] = []
    rows_with_room: dict[int, list[int]] = {}  # room -> row indices (stack)
    rooms: list[int] = []  # sorted distinct rooms that have rows
    for i in order:
        length = lengths[i]
        if length > seq_len:
            raise ValueError(f"document {keys[i]!r} has {length} tokens > seq_len {seq_len}")
        at = bisect.bisect_left(rooms, length)
        if at < len(rooms):
            room = rooms[at]
            row = rows_with_room[room].pop()
            if not rows_with_room[room]:
                del rows_with_room[room]
                rooms.pop(at)
        else:
            room, row = seq_len, len(rows)
            rows.append([])
        rows[row].append(i)
        left = room - length
        if left > 0:
            if left not in rows_with_room:
                rows_with_room[left] = []
                bisect.insort(rooms, left)
            rows_with_room[left].append(row)
    return rows


def pack(docs: list[tuple[str, np.ndarray]], seq_len: int, seed: int) -> PackedRows:
    """``docs`` are (sample_id, token ids) with unique sample_ids."""
    keys = [k for k, _ in docs]
    rows = assign_rows([len(t) for _, t in docs], keys, seq_len)
    rng = gene_rng(seed, "pack:" + min(keys, default=""))  # order-independent stream
    rng.shuffle(rows)
    tokens = np.zeros((len(rows), seq_len), dtype=np.uint8)
    n_tokens = np.zeros(len(rows), dtype=np.int32)
    doc_starts, doc_index = [], []
    for r, members in enumerate(rows):
        members = sorted(members, key=lambda i: keys[i])
        rng.shuffle(members)
        pos, starts = 0, []
        for i in members:
            ids = docs[i][1]
            tokens[r, pos : pos + len(ids)] = ids
            starts.append(pos)
            pos += len(ids)
        n_tokens[r] = pos
        doc_starts.append(starts)
        doc_index.append(members)
    return PackedRows(tokens, doc_starts, doc_index, n_tokens)
