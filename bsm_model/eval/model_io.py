"""Model side of the suite: load a checkpoint, encode documents, score them.

Documents are encoded with ``bsm_data.vocab.encode_sample`` exactly as training samples:
``<bos> <tag> seq (<sep> <tag> seq)* <eos>``. Batches are right-padded with <pad>; the model is
causal, so no real token attends to a pad and no mask is needed (one document per row).
Batches are formed from length-sorted documents under a token budget, so short sequences (DMS
variants) go through hundreds at a time and long ones (Central Dogma pairs) a few at a time.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bsm_data.vocab import encode_sample, load_vocab

from .. import checkpoint as ckpt
from ..model import BSM, ModelConfig


@dataclass
class LoadedModel:
    model: BSM
    path: Path  # the checkpoint directory
    state: dict  # its state.json
    device: torch.device

    @property
    def cfg(self) -> ModelConfig:
        return self.model.cfg

    @property
    def max_len(self) -> int:
        return self.model.cfg.max_seq_len

    def train_manifest(self) -> str | None:
        return (self.state.get("train_config") or {}).get("manifest")

    def describe(self) -> dict:
        return {"checkpoint": str(self.path), "step": self.state.get("step"), "params": self.model.num_params(),
                "config": self.cfg.to_dict(), "train_manifest": self.train_manifest(), "device": str(self.device)}


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bsm eval: --device cuda but CUDA is not available")
    return torch.device(name)


def load(path: str, device: str = "cpu") -> LoadedModel:
    """A run directory or checkpoint directory -> model in eval mode (sha256-checked weights)."""
    cfg, weights, state = ckpt.load_model_weights(path)
    model = BSM(ModelConfig.from_dict(cfg), attn_backend="auto")
    ckpt.apply_model_weights(model, weights)
    dev = pick_device(device)
    model.to(dev).eval()
    return LoadedModel(model, ckpt.resolve(path), state, dev)


def autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


# ----------------------------------------------------------------------------- encoding


def encode(segments) -> np.ndarray:
    """Token ids (uint8) of one document from (modality, sequence) segments."""
    return encode_sample(load_vocab(), list(segments))


def truncate_segments(segments, max_len: int) -> tuple[list[tuple[str, str]], bool]:
    """Cut sequences so the document fits ``max_len`` tokens; keeps each sequence's start (5'
    end / N-terminus). The budget is shared fairly: a segment shorter than its equal share
    keeps all of it, the rest is split equally among the longer ones."""
    segments = [(m, s) for m, s in segments]
    budget = max_len - (2 + 2 * len(segments) - 1)
    lengths = [len(s) for _, s in segments]
    if sum(lengths) <= budget:
        return segments, False
    alloc = [0] * len(segments)
    todo = sorted(range(len(segments)), key=lambda i: lengths[i])
    left = budget
    for n, i in enumerate(todo):
        share = left // (len(todo) - n)
        alloc[i] = min(lengths[i], share)
        left -= alloc[i]
    return [(m, s[:a]) for (m, s), a in zip(segments, alloc)], True


def batches_by_length(lengths, max_tokens: int, max_rows: int = 512):
    """Index batches of length-sorted documents, each at most ``max_tokens`` padded tokens."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    batch: list[int] = []
    longest = 0
    for i in order.tolist():
        n = int(lengths[i])
        if batch and (max(longest, n) * (len(batch) + 1) > max_tokens or len(batch) >= max_rows):
            yield batch
            batch, longest = [], 0
        batch.append(i)
        longest = max(longest, n)
    if batch:
        yield batch


def pad(docs: list[np.ndarray], device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (B, T) int64 right-padded with <pad>, lengths (B,))."""
    vocab = load_vocab()
    T = max(len(d) for d in docs)
    ids = np.full((len(docs), T), vocab.pad, dtype=np.int64)
    for b, d in enumerate(docs):
        ids[b, : len(d)] = d
    lengths = torch.tensor([len(d) for d in docs], dtype=torch.long)
    return torch.from_numpy(ids).to(device), lengths.to(device)


# ----------------------------------------------------------------------------- scoring


def hidden_states(model: BSM, ids: torch.Tensor) -> torch.Tensor:
    """Final-norm hidden states (B, T, dim) of a causal forward (one document per row): the
    output of ``model.norm``, captured with a forward hook so this never depends on the
    blocks' internal signatures (the LM head's extra matmul is 64 columns)."""
    captured: list[torch.Tensor] = []
    handle = model.norm.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        model(ids)
    finally:
        handle.remove()
    return captured[-1]


@torch.no_grad()
def token_logprobs(lm: LoadedModel, docs: list[np.ndarray], spans: list[tuple[int, int]], *,
                   max_tokens: int = 32768) -> list[np.ndarray]:
    """For each document, log p(token t | tokens < t) for t in its span [start, end)."""
    out: list[np.ndarray | None] = [None] * len(docs)
    model, dev = lm.model, lm.device
    for batch in batches_by_length([len(d) for d in docs], max_tokens):
        ids, _ = pad([docs[i] for i in batch], dev)
        with autocast(dev):
            logits, _ = model(ids)
        logp = F.log_softmax(logits.float(), dim=-1)
        for row, i in enumerate(batch):
            s, e = spans[i]
            tgt = ids[row, s:e]
            out[i] = logp[row, s - 1 : e - 1].gather(-1, tgt[:, None])[:, 0].cpu().numpy().astype(np.float64)
    return out  # type: ignore[return-value]


def mean_logprob(lm: LoadedModel, docs: list[np.ndarray], spans: list[tuple[int, int]], **kw) -> np.ndarray:
    return np.array([lp.mean() if len(lp) else np.nan for lp in token_logprobs(lm, docs, spans, **kw)])
