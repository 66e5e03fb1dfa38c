"""Training data from a shard manifest: a deterministic, resumable row stream and batches.

- ``read_manifest`` (bsm_data.shards) refuses other manifest, vocabulary and schema versions;
  we also refuse a vocabulary file whose sha256 differs from ours and rows longer than the model.
- Every shard is sha256-checked when it is opened (``read_shard``), once per process.
- Order: epoch e is a permutation of the training rows seeded by (seed, e). With
  ``shuffle_window`` W > 0 the shards are permuted and rows are permuted within consecutive
  windows of W shards, so only about W shards are resident at a time (for corpora larger than
  memory); with W = 0 (default) it is one permutation of every (shard, row).
- The stream is the concatenation of the epoch orders; the data position is the number of rows
  consumed (saved as epoch and index into that epoch's order). An optimizer step takes
  ``world * batch_size * grad_accum`` consecutive rows; micro-step a on rank r reads the slice
  ``[(a * world + r) * batch_size, +batch_size)`` of them, so ranks read disjoint rows.
- Validation: the manifest key ``validation`` (a list of shard entries like ``shards``, written
  by the round builder) when present; else a held-out fraction of rows chosen with a fixed seed
  that depends only on the row count (so it does not move when --seed changes), removed from
  the training order. At most ``val_max_rows`` rows (a seeded subset) are evaluated.
- Targets: ``targets[t] = tokens[t + 1]``; IGNORE where t + 1 is padding, at the last position,
  and, with document masking, where t + 1 starts another document (no cross-document targets).
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from bsm_data.shards import ManifestError, read_manifest, read_shard
from bsm_data.vocab import load_vocab

from .model import IGNORE, Documents

MODALITY_NAMES = ("dna", "rna", "protein", "other")  # "other": tokens before any modality tag (<bos>)
VAL_SEED = 0x5EED_0BA1


@dataclass
class Shard:
    tokens: np.ndarray  # (rows, seq_len) uint8
    ds_offsets: np.ndarray  # doc_starts list offsets (rows + 1)
    ds_values: np.ndarray  # doc_starts values
    n_tokens: np.ndarray  # (rows,) int32


def decode_shard(table: pa.Table, seq_len: int) -> Shard:
    tok = table.column("tokens").combine_chunks()
    if tok.type.byte_width != seq_len:
        raise ManifestError(f"shard rows are {tok.type.byte_width} tokens, the manifest says {seq_len}")
    raw = np.frombuffer(tok.buffers()[1], dtype=np.uint8)
    tokens = raw[tok.offset * seq_len : (tok.offset + len(tok)) * seq_len].reshape(len(tok), seq_len)
    ds = table.column("doc_starts").combine_chunks()
    return Shard(tokens, ds.offsets.to_numpy(), ds.values.to_numpy(), table.column("n_tokens").to_numpy())


class ShardSet:
    """Shards listed by a manifest, opened lazily (sha256-checked) and kept in a small LRU."""

    def __init__(self, root: str, entries: list[dict], seq_len: int, max_cached: int = 0):
        for e in entries:
            missing = {"path", "rows", "sha256"} - set(e)
            if missing:
                raise ManifestError(f"{root}: shard entry {e} lacks {sorted(missing)}")
        self.root, self.entries, self.seq_len = root, entries, seq_len
        self.rows = np.array([e["rows"] for e in entries], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.rows)])
        self.max_cached = max_cached or len(entries)
        self._cache: OrderedDict[int, Shard] = OrderedDict()
        self._lock = threading.Lock()  # the trainer prefetches on a thread while validation reads

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def shard(self, i: int) -> Shard:
        with self._lock:
            if i in self._cache:
                self._cache.move_to_end(i)
                return self._cache[i]
            entry = self.entries[i]
            s = decode_shard(read_shard(self.root, entry, verify=True), self.seq_len)
            if len(s.tokens) != entry["rows"]:
                raise ManifestError(f"{self.root}/{entry['path']}: {len(s.tokens)} rows, the manifest says {entry['rows']}")
            self._cache[i] = s
            while len(self._cache) > self.max_cached:
                self._cache.popitem(last=False)
            return s

    def gather(self, ids: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """Rows by global id: tokens (n, seq_len) uint8, doc_starts per row, n_tokens (n,)."""
        shard_of = np.searchsorted(self.offsets, ids, side="right") - 1
        tokens = np.empty((len(ids), self.seq_len), dtype=np.uint8)
        n_tokens = np.empty(len(ids), dtype=np.int64)
        starts = []
        for j, (g, s) in enumerate(zip(ids.tolist(), shard_of.tolist())):
            sh = self.shard(s)
            r = g - int(self.offsets[s])
            tokens[j] = sh.tokens[r]
            n_tokens[j] = sh.n_tokens[r]
            starts.append(sh.ds_values[sh.ds_offsets[r] : sh.ds_offsets[r + 1]])
        return tokens, starts, n_tokens


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, T) int64
    targets: torch.Tensor  # (B, T) int64, IGNORE where no target
    modality: torch.Tensor  # (B, T) int64 index into MODALITY_NAMES of each target's token
    docs: Documents | None  # None: causal over the whole row (no masking, or one document per row)
    n_targets: int

    def pin_memory(self) -> "Batch":
        """Page-locked copies, so the copy to the GPU can overlap compute."""
        return Batch(self.input_ids.pin_memory(), self.targets.pin_memory(), self.modality.pin_memory(), self.docs, self.n_targets)

    def to(self, device) -> "Batch":
        nb = torch.device(device).type == "cuda"
        return Batch(
            self.input_ids.to(device, non_blocking=nb),
            self.targets.to(device, non_blocking=nb),
            self.modality.to(device, non_blocking=nb),
            self.docs.to(device, non_blocking=nb) if self.docs is not None else None,
            self.n_targets,
        )


def _event_lut() -> np.ndarray:
    """token id -> modality index for tags, 'other' for <bos>, -1 for everything else."""
    vocab = load_vocab()
    lut = np.full(256, -1, dtype=np.int64)
    for i, m in enumerate(MODALITY_NAMES[:3]):
        lut[vocab.tag(m)] = i
    lut[vocab.bos] = MODALITY_NAMES.index("other")
    return lut


_EVENTS = _event_lut()


def token_modalities(tokens: np.ndarray) -> np.ndarray:
    """Modality index of every token: the tag of the segment it is in (the tag itself, the
    residues, and the <sep>/<eos> that closes the segment); 'other' before the first tag."""
    ev = _EVENTS[tokens]
    T = tokens.shape[1]
    idx = np.where(ev >= 0, np.arange(T)[None, :], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    mod = np.take_along_axis(ev, idx, axis=1)
    mod[mod < 0] = MODALITY_NAMES.index("other")
    return mod


def make_batch(tokens: np.ndarray, doc_starts: list[np.ndarray], n_tokens: np.ndarray, *, doc_mask: bool) -> Batch:
    B, T = tokens.shape
    tok = tokens.astype(np.int64)
    targets = np.full((B, T), IGNORE, dtype=np.int64)
    targets[:, :-1] = tok[:, 1:]
    targets[np.arange(T)[None, :] + 1 >= n_tokens[:, None]] = IGNORE  # next position is padding
    multi = [len(s) > 1 for s in doc_starts]
    if doc_mask:
        for b, s in enumerate(doc_starts):
            if len(s) > 1:
                targets[b, np.asarray(s[1:]) - 1] = IGNORE
    modality = np.full((B, T), -1, dtype=np.int64)
    modality[:, :-1] = token_modalities(tokens)[:, 1:]
    docs = Documents.from_doc_starts(doc_starts, T) if doc_mask and any(multi) else None
    return Batch(
        torch.from_numpy(tok),
        torch.from_numpy(targets),
        torch.from_numpy(modality),
        docs,
        int((targets != IGNORE).sum()),
    )


class TrainData:
    def __init__(self, manifest_dir: str, *, seed: int = 0, val_fraction: float = 0.01, val_max_rows: int = 512,
                 shuffle_window: int = 0, max_seq_len: int | None = None, vocab_size: int | None = None):
        self.manifest_dir = manifest_dir
        self.manifest = m = read_manifest(manifest_dir)  # format, vocab and schema versions
        vocab = load_vocab()
        if m["vocab"]["sha256"] != vocab.sha256:
            raise ManifestError(
                f"{manifest_dir}: shards were tokenized with a vocabulary file of sha256 {m['vocab']['sha256'][:12]}…, "
                f"this code's {vocab.name} v{vocab.version} file is {vocab.sha256[:12]}…; rebuild the shards"
            )
        if vocab_size is not None and m["vocab"]["size"] > vocab_size:
            raise ManifestError(f"{manifest_dir}: vocabulary of {m['vocab']['size']} ids, the model has {vocab_size}")
        self.seq_len = int(m["seq_len"])
        if max_seq_len is not None and self.seq_len > max_seq_len:
            raise ManifestError(f"{manifest_dir}: rows of {self.seq_len} tokens exceed the model's context {max_seq_len}")
        self.seed, self.shuffle_window = seed, shuffle_window
        n_shards = len(m["shards"])
        window = shuffle_window if 0 < shuffle_window < n_shards else 0
        self.train = ShardSet(manifest_dir, m["shards"], self.seq_len, max_cached=2 * window if window else 0)
        if m.get("validation"):
            self.val_source = "manifest"
            self.val = ShardSet(manifest_dir, m["validation"], self.seq_len)
            self.train_ids = np.arange(len(self.train))
            val_ids = np.arange(len(self.val))
        else:
            self.val_source = "held_out"
            self.val = self.train
            n = len(self.train)
            n_val = min(val_max_rows, max(1, round(val_fraction * n))) if val_fraction > 0 and n > 1 else 0
            val_ids = np.sort(np.random.default_rng(VAL_SEED).choice(n, n_val, replace=False))
            self.train_ids = np.setdiff1d(np.arange(n), val_ids)
        if len(val_ids) > val_max_rows:
            val_ids = np.sort(np.random.default_rng(VAL_SEED).choice(val_ids, val_max_rows, replace=False))
        self.val_ids = val_ids
        if len(self.train_ids) == 0:
            raise ManifestError(f"{manifest_dir}: no training rows")
        self._order_epoch, self._order = -1, None

    @property
    def n_train(self) -> int:
        return len(self.train_ids)

    def order(self, epoch: int) -> np.ndarray:
        """Global row ids of epoch ``epoch`` in training order (cached for the current epoch)."""
        if epoch != self._order_epoch:
            rng = np.random.default_rng([self.seed, epoch])
            n_shards = len(self.train.entries)
            w = self.shuffle_window
            if 0 < w < n_shards:
                shard_of = np.searchsorted(self.train.offsets, self.train_ids, side="right") - 1
                parts = []
                perm = rng.permutation(n_shards)
                for k in range(0, n_shards, w):
                    ids = self.train_ids[np.isin(shard_of, perm[k : k + w])]
                    parts.append(rng.permutation(ids))
                self._order = np.concatenate(parts)
            else:
                self._order = rng.permutation(self.train_ids)
            self._order_epoch = epoch
        return self._order

    def stream(self, position: int, count: int) -> np.ndarray:
        """``count`` row ids starting at stream position ``position`` (crossing epochs)."""
        out, n = [], self.n_train
        while count > 0:
            epoch, index = divmod(position, n)
            take = min(count, n - index)
            out.append(self.order(epoch)[index : index + take])
            position, count = position + take, count - take
        return np.concatenate(out)

    def position_info(self, position: int) -> dict:
        epoch, index = divmod(position, self.n_train)
        return {"position": position, "epoch": epoch, "index": index, "n_train_rows": self.n_train}

    def train_batch(self, position: int, micro: int, rank: int, world: int, batch_size: int, *, doc_mask: bool) -> Batch:
        ids = self.stream(position + (micro * world + rank) * batch_size, batch_size)
        return make_batch(*self.train.gather(ids), doc_mask=doc_mask)

    def val_batches(self, rank: int, world: int, batch_size: int, *, doc_mask: bool):
        ids = self.val_ids[rank::world]
        for k in range(0, len(ids), batch_size):
            yield make_batch(*self.val.gather(ids[k : k + batch_size]), doc_mask=doc_mask)

    def describe(self) -> dict:
        return {
            "manifest": os.path.abspath(self.manifest_dir) if "://" not in self.manifest_dir else self.manifest_dir,
            "seq_len": self.seq_len,
            "train_rows": self.n_train,
            "val_rows": len(self.val_ids),
            "val_source": self.val_source,
            "shards": len(self.train.entries),
        }
