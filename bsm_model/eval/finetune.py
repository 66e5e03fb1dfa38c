"""Supervised fine-tuning (SFT) with a classification or regression head.

Input: one document per example, exactly the training text form; a pair is joined by <sep> in
one context (paper §3: "BSM directly connects the two sequences as input using a <sep> token"):
``<bos><rna>ACGU…<sep><protein>MKV…<eos>``. Sequences that do not fit the model's context are
cut at their 3' / C-terminal end, the budget shared fairly between the members of a pair
(``model_io.truncate_segments``); the number of cut examples is reported per split.

Head: a linear layer on one pooled vector of the final (normed) hidden states, standardised per
dimension with its mean and standard deviation over (up to 512 of) the training examples,
measured once with the loaded weights. That is still a linear head (W(x - m)/s + b is
W'x + b'), only better conditioned: pooled decoder states share large per-dimension offsets,
and a raw linear head needs many more steps to separate them. Default pooling
``last``: the hidden state of the closing <eos>, the only position that has attended to the
whole input in a causal decoder (what ``LlamaForSequenceClassification`` does); ``mean``
averages every real position. Outputs: one logit (binary, BCE loss), one logit per class
(multiclass, cross-entropy) or one value (regression: MSE on labels standardised with the
training mean and standard deviation, predictions mapped back).

Optimisation: the whole model and the head are trained (AdamW, weight decay 0.01 on matrices,
gradient clipping 1.0, constant learning rate). Paper defaults (``--ft-preset paper``, the CLI
default): learning rate 1e-6, batch size 16; the paper gives no epoch count, we use 3. The
``tiny`` preset is for the tiny CPU model and a few hundred steps: body lr 1e-5, head lr 1e-2,
mean pooling, 3 epochs. Measured on nRC (200 items per split, the 300-step tiny model): a
frozen body with a head at 1e-2 reaches 0.22 validation accuracy in 2 epochs, while a body
learning rate of 1e-4 or 1e-3 destroys the pretrained features faster than the head learns
(0.08-0.13, chance is 0.08); 1e-6 would not move a fresh head at all in that budget. After every epoch the validation split is scored and the best epoch's
weights are kept (the last epoch when a task has no validation split); the test split is scored
once, with those weights. Each task starts from the loaded checkpoint (a copy is trained).
Batches: a seeded shuffle per epoch, then length-sorted within chunks of 32 batches, to limit
padding.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import metrics
from .model_io import LoadedModel, autocast, batches_by_length, encode, hidden_states, pad, truncate_segments


@dataclass(frozen=True)
class FTConfig:
    lr: float = 1e-6
    batch_size: int = 16
    epochs: int = 3
    head_lr: float | None = None  # None: same as lr
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    pool: str = "last"  # last | mean
    seed: int = 0
    eval_tokens: int = 32768  # padded tokens per evaluation batch
    max_steps: int | None = None  # stop early (tests)
    standardize: bool = True  # the head reads pooled features standardised with training-split statistics


SCALER_ITEMS = 512  # training examples that set the head's feature mean / std


PRESETS = {
    "paper": FTConfig(lr=1e-6, batch_size=16, epochs=3),
    "tiny": FTConfig(lr=1e-5, head_lr=1e-2, batch_size=16, epochs=3, pool="mean"),
}


class HeadModel(nn.Module):
    def __init__(self, base, n_out: int, pool: str):
        super().__init__()
        if pool not in ("last", "mean"):
            raise ValueError(f"pool must be last or mean, not {pool!r}")
        self.base, self.pool = base, pool
        self.head = nn.Linear(base.cfg.dim, n_out)
        nn.init.normal_(self.head.weight, 0.0, 0.02)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("feat_mean", torch.zeros(base.cfg.dim))
        self.register_buffer("feat_std", torch.ones(base.cfg.dim))

    def pooled(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = hidden_states(self.base, ids)
        if self.pool == "last":
            return h[torch.arange(h.shape[0], device=h.device), lengths - 1].float()
        mask = (torch.arange(h.shape[1], device=h.device)[None, :] < lengths[:, None]).to(h.dtype)
        return ((h * mask[..., None]).sum(1) / lengths[:, None].to(h.dtype)).float()

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head((self.pooled(ids, lengths) - self.feat_mean) / self.feat_std)

    @torch.no_grad()
    def fit_scaler(self, docs: list[np.ndarray], device, eval_tokens: int) -> None:
        """Per-dimension mean and standard deviation of the pooled vector over ``docs`` (the
        training split, before fine-tuning), fixed from then on."""
        was = self.training
        self.eval()
        feats = []
        for batch in batches_by_length([len(d) for d in docs], eval_tokens):
            ids, lengths = pad([docs[i] for i in batch], device)
            with autocast(device):
                feats.append(self.pooled(ids, lengths))
        f = torch.cat(feats)
        self.feat_mean.copy_(f.mean(0))
        self.feat_std.copy_(f.std(0).clamp_min(1e-4) if len(f) > 1 else torch.ones_like(self.feat_std))
        self.train(was)


def encode_split(examples, max_len: int) -> tuple[list[np.ndarray], int]:
    docs, cut = [], 0
    for e in examples:
        segs, was_cut = truncate_segments(e.segments, max_len)
        cut += was_cut
        docs.append(encode(segs))
    return docs, cut


def _loss(kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if kind == "binary":
        return F.binary_cross_entropy_with_logits(out[:, 0], y.float())
    if kind == "multiclass":
        return F.cross_entropy(out, y.long())
    return F.mse_loss(out[:, 0], y.float())


@torch.no_grad()
def predict(model: HeadModel, docs: list[np.ndarray], device, eval_tokens: int) -> np.ndarray:
    model.eval()
    outs: list[np.ndarray | None] = [None] * len(docs)
    for batch in batches_by_length([len(d) for d in docs], eval_tokens):
        ids, lengths = pad([docs[i] for i in batch], device)
        with autocast(device):
            o = model(ids, lengths)
        for row, i in enumerate(batch):
            outs[i] = o[row].float().cpu().numpy()
    return np.stack(outs) if outs else np.zeros((0, 1))


def evaluate(kind: str, out: np.ndarray, y: np.ndarray, y_mean: float = 0.0, y_std: float = 1.0) -> dict:
    if kind == "binary":
        prob = 1.0 / (1.0 + np.exp(-out[:, 0]))
        rep = metrics.binary_report(y, prob, 0.5)
    elif kind == "multiclass":
        rep = metrics.multiclass_report(y, out.argmax(1))
    else:
        rep = metrics.regression_report(y, out[:, 0] * y_std + y_mean)
    return rep


def _batches(n: int, bs: int, rng: np.random.Generator, lengths: list[int]) -> list[np.ndarray]:
    perm = rng.permutation(n)
    chunk = bs * 32
    out = []
    for s in range(0, n, chunk):
        part = perm[s : s + chunk]
        part = part[np.argsort([lengths[i] for i in part], kind="stable")]
        out += [part[k : k + bs] for k in range(0, len(part), bs)]
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def finetune(lm: LoadedModel, task, cfg: FTConfig, log=lambda msg: None) -> dict:
    """Fine-tune a copy of ``lm.model`` with a head on ``task`` (SupervisedTask); test metrics."""
    dev = lm.device
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    model = HeadModel(copy.deepcopy(lm.model), task.n_outputs, cfg.pool).to(dev)
    docs, cut = {}, {}
    for s in ("train", "valid", "test"):
        docs[s], cut[s] = encode_split(task.splits.get(s) or [], lm.max_len)
    y = {s: task.labels(s) if task.splits.get(s) else np.zeros(0) for s in ("train", "valid", "test")}
    if cfg.standardize:
        rng0 = np.random.default_rng(cfg.seed)
        sample = rng0.choice(len(docs["train"]), min(len(docs["train"]), SCALER_ITEMS), replace=False)
        model.fit_scaler([docs["train"][i] for i in sample], dev, cfg.eval_tokens)
    y_mean, y_std = 0.0, 1.0
    if task.kind == "regression":
        y_mean, y_std = float(y["train"].mean()), float(y["train"].std() or 1.0)
    y_fit = (y["train"] - y_mean) / y_std if task.kind == "regression" else y["train"]

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not n.startswith("head.")]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 and not n.startswith("head.")]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay, "lr": cfg.lr},
              {"params": no_decay, "weight_decay": 0.0, "lr": cfg.lr},
              {"params": list(model.head.parameters()), "weight_decay": 0.0, "lr": cfg.head_lr or cfg.lr}]
    opt = torch.optim.AdamW(groups, lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    lengths = [len(d) for d in docs["train"]]
    history, best, best_state, best_epoch, step = [], -math.inf, None, 0, 0
    has_valid = len(docs["valid"]) > 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        losses = []
        for idx in _batches(len(docs["train"]), cfg.batch_size, rng, lengths):
            ids, lens = pad([docs["train"][i] for i in idx], dev)
            target = torch.as_tensor(y_fit[idx], device=dev)
            with autocast(dev):
                out = model(ids, lens)
            loss = _loss(task.kind, out.float(), target)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
            step += 1
            if cfg.max_steps and step >= cfg.max_steps:
                break
        rec = {"epoch": epoch, "steps": step, "train_loss": float(np.mean(losses)) if losses else None}
        if has_valid:
            rep = evaluate(task.kind, predict(model, docs["valid"], dev, cfg.eval_tokens), y["valid"], y_mean, y_std)
            rec["valid"] = rep
            v = rep[task.metric]
            v = -math.inf if v is None or math.isnan(v) else v
            if best_state is None or v > best:
                best, best_epoch = v, epoch
                best_state = {k: t.detach().to("cpu", copy=True) for k, t in model.state_dict().items()}
        history.append(rec)
        log(f"  epoch {epoch}: loss {rec['train_loss']}" + (f", valid {task.metric} {rec['valid'][task.metric]:.4f}" if has_valid else ""))
        if cfg.max_steps and step >= cfg.max_steps:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = history[-1]["epoch"] if history else 0
    rep = evaluate(task.kind, predict(model, docs["test"], dev, cfg.eval_tokens), y["test"], y_mean, y_std)
    return {"score": rep[task.metric], **rep, "best_epoch": best_epoch, "steps": step, "history": history,
            "truncated": cut, "config": asdict(cfg), "time_s": time.perf_counter() - t0}


def config_from(preset: str, **overrides) -> FTConfig:
    cfg = PRESETS[preset]
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
