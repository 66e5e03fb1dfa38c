"""The training loop: one process, or one per GPU under torchrun (DDP).

    bsm train --manifest out/round-1 --config bsm-110m --round 1 --out runs/r1
    bsm train --manifest out/round-2 --round 2 --init-from runs/r1/checkpoint --out runs/r2
    torchrun --nproc_per_node 8 -m bsm_model.cli train --manifest ... --out ...

Per optimizer step: ``grad_accum`` micro-batches of ``batch_size`` rows per rank; the loss is
the mean over every target token of the step on all ranks (token-weighted, so grad accumulation
and DDP give the same gradient as one big batch). bf16 autocast on CUDA with fp32 master
weights; AdamW (fused on CUDA), weight decay on matrices only; gradient clipping.
Running it again with the same --out resumes exactly from RUN_DIR/checkpoint: model, optimizer,
schedule, data position and RNG states, so the losses are the ones an uninterrupted run logs
(bitwise on CPU, where deterministic algorithms are on by default).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bsm_data.shards import MANIFEST, join, read_bytes
from bsm_data.vocab import load_vocab

from . import checkpoint as ckpt
from .config import RESUME_KEYS, LRSchedule, TrainConfig
from .data import MODALITY_NAMES, TrainData
from .metrics import MetricsLog, flops_per_token, log_line, mfu, peak_flops, plot_curves
from .model import BSM, CONFIGS, IGNORE, ModelConfig


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def setup(cls, device_type: str) -> "Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(t)
        return t


def pick_device(name: str, dist: Dist) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("bsm train: --device cuda but CUDA is not available")
        torch.cuda.set_device(dist.local_rank)
        return torch.device("cuda", dist.local_rank)
    return torch.device(name)


def autocast_for(device: torch.device, dtype: str):
    if dtype == "auto":
        dtype = "bf16" if device.type == "cuda" else "fp32"
    if dtype == "bf16":
        return dtype, torch.autocast(device.type, dtype=torch.bfloat16)
    if dtype == "fp32":
        return dtype, contextlib.nullcontext()
    raise ValueError(f"unknown dtype {dtype!r}")


def build_optimizer(model: BSM, cfg: TrainConfig, device: torch.device) -> tuple[torch.optim.Optimizer, list[str]]:
    """AdamW; weight decay on matrices (projections, embeddings), none on norm gains."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 else no_decay).append((name, p))
    groups = [
        {"params": [p for _, p in decay], "weight_decay": cfg.weight_decay},
        {"params": [p for _, p in no_decay], "weight_decay": 0.0},
    ]
    names = [n for n, _ in decay] + [n for n, _ in no_decay]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                            fused=True if device.type == "cuda" else None)
    return opt, names


@torch.no_grad()
def evaluate(model, data: TrainData, cfg: TrainConfig, device, dist: Dist, amp) -> dict:
    """Mean validation loss over all target tokens and per modality of the target token."""
    was_training = model.training
    model.eval()
    k = len(MODALITY_NAMES)
    sums = torch.zeros(k, dtype=torch.float64, device=device)
    counts = torch.zeros(k, dtype=torch.float64, device=device)
    bs = cfg.val_batch_size or cfg.batch_size
    for batch in data.val_batches(dist.rank, dist.world, bs, doc_mask=cfg.doc_mask):
        b = batch.to(device)
        with amp:
            _, loss = model(b.input_ids, b.targets, docs=b.docs, reduction="none")
        keep = b.targets != IGNORE
        mod = b.modality[keep]
        sums.index_add_(0, mod, loss[keep].double())
        counts.index_add_(0, mod, torch.ones_like(mod, dtype=torch.float64))
    dist.all_reduce(sums)
    dist.all_reduce(counts)
    model.train(was_training)
    s, c = sums.tolist(), counts.tolist()
    out = {"loss_all": sum(s) / sum(c) if sum(c) else None, "tokens_all": int(sum(c))}
    for i, name in enumerate(MODALITY_NAMES):
        out[f"loss_{name}"] = s[i] / c[i] if c[i] else None
        out[f"tokens_{name}"] = int(c[i])
    return out


def _check_resume(saved: dict, cfg: TrainConfig) -> None:
    now = cfg.to_dict()
    diff = [k for k in RESUME_KEYS if saved.get(k) != now.get(k)]
    if diff:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diff)
        raise SystemExit(
            f"bsm train: {cfg.out} holds a run with different settings ({detail}); "
            f"resume with the same settings, or use a new --out"
        )


def run(cfg: TrainConfig, *, hooks=(), explicit: set[str] = frozenset()) -> dict:
    """Train according to ``cfg``; returns a summary. ``hooks`` are called with each step's
    metrics record (used by tests)."""
    prev_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device_type = "cuda" if (cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())) else cfg.device
    if device_type == "auto":
        device_type = "cpu"
    deterministic = cfg.deterministic if cfg.deterministic is not None else device_type == "cpu"
    if deterministic and device_type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before cuBLAS starts
    if device_type == "cuda" and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))  # before NCCL starts
    dist = Dist.setup(device_type)
    device = pick_device(device_type, dist)
    prev_det = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        return _run(cfg, dist, device, hooks, explicit)
    finally:
        torch.use_deterministic_algorithms(prev_det)
        torch.set_num_threads(prev_threads)
        if dist.world > 1:
            import torch.distributed as tdist

            tdist.destroy_process_group()


def _say(dist: Dist, msg: str) -> None:
    if dist.main:
        print(msg, file=sys.stderr, flush=True)


def _run(cfg: TrainConfig, dist: Dist, device: torch.device, hooks, explicit) -> dict:
    run_dir = Path(cfg.out)
    resume_from = ckpt.latest(run_dir)
    resume_state = ckpt.read_state(resume_from) if resume_from else None

    # --- model config: the preset, or the one of the run / checkpoint we continue from
    init_state = None
    if resume_state:
        mcfg = ModelConfig.from_dict(resume_state["model_config"])
        if "model" not in explicit:  # e.g. taken from --init-from's checkpoint when the run started
            cfg.model = resume_state["train_config"]["model"]
    elif cfg.init_from:
        init_mcfg, init_weights, init_state = ckpt.load_model_weights(cfg.init_from)
        mcfg = ModelConfig.from_dict(init_mcfg)
        if "model" in explicit and CONFIGS.get(cfg.model) != mcfg:
            raise SystemExit(f"bsm train: --config {cfg.model} does not match the model in {cfg.init_from}")
        cfg.model = next((name for name, c in CONFIGS.items() if c == mcfg), "custom")
    else:
        if cfg.model not in CONFIGS:
            raise SystemExit(f"bsm train: unknown --config {cfg.model!r}; choose from {', '.join(CONFIGS)}")
        mcfg = CONFIGS[cfg.model]

    data = TrainData(cfg.manifest, seed=cfg.seed, val_fraction=cfg.val_fraction, val_max_rows=cfg.val_max_rows,
                     shuffle_window=cfg.shuffle_window, max_seq_len=mcfg.max_seq_len, vocab_size=mcfg.vocab_size)
    rows_per_step = dist.world * cfg.batch_size * cfg.grad_accum
    if cfg.steps:
        total_steps = cfg.steps
    else:
        total_steps = max(1, math.ceil((cfg.epochs or 1.0) * data.n_train / rows_per_step))
    cfg.resolve_warmup(total_steps)
    schedule = LRSchedule(cfg.lr, cfg.min_lr, total_steps, cfg.warmup_steps, cfg.decay)

    manifest_sha = hashlib.sha256(read_bytes(join(cfg.manifest, MANIFEST))).hexdigest()
    if resume_state:
        _check_resume(resume_state["train_config"], cfg)
        if resume_state["manifest_sha256"] != manifest_sha:
            raise SystemExit(f"bsm train: {run_dir} was trained on another manifest (sha256 {resume_state['manifest_sha256'][:12]}…, "
                             f"{cfg.manifest} is {manifest_sha[:12]}…); resume on the same data, or use a new --out")
        if resume_state["schedule"] != schedule.state_dict():
            raise SystemExit(f"bsm train: {run_dir} was scheduled as {resume_state['schedule']}, now {schedule.state_dict()}; "
                             f"resume with the same --steps/--epochs and schedule, or use a new --out")
        if resume_state["data"]["global_batch_rows"] != rows_per_step:
            raise SystemExit("bsm train: rows per step differ from the checkpoint (batch size x accumulation x ranks)")

    # --- build
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = BSM(mcfg, attn_backend=cfg.attn).to(device)
    if init_state is not None and not resume_state:
        ckpt.apply_model_weights(model, init_weights)
        del init_weights
    opt, names = build_optimizer(model, cfg, device)
    step, position = 0, 0
    if resume_state:
        ckpt.load_training_state(resume_from, model=model, optimizer=opt, param_names=names, rank=dist.rank, world=dist.world)
        step, position = resume_state["step"], resume_state["data"]["position"]
        _say(dist, f"resuming {run_dir} from step {step} ({resume_from.name}; epoch {resume_state['data']['epoch']}, row {resume_state['data']['index']})")
    amp_name, amp = autocast_for(device, cfg.dtype)
    if cfg.compile:
        if cfg.attn == "auto" and device.type == "cpu":
            model.attn_backend = "mask"  # static shapes; the per-document calls would recompile per layout
        model.compile_blocks()
    fwd = model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        fwd = DDP(fwd, device_ids=[dist.local_rank] if device.type == "cuda" else None)

    n_matmul = model.num_params(matmul_only=True)
    ftok = flops_per_token(mcfg, n_matmul, data.seq_len)
    peak = peak_flops(device, cfg.peak_flops)
    vocab = load_vocab()
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "run.json").write_text(json.dumps({
            "train_config": cfg.to_dict(), "model_config": mcfg.to_dict(), "schedule": schedule.state_dict(),
            "data": data.describe(), "params": model.num_params(), "params_matmul": n_matmul,
            "flops_per_token": ftok, "device": str(device), "world_size": dist.world, "dtype": amp_name,
            "init_from": {"path": str(ckpt.resolve(cfg.init_from)), "step": init_state["step"]} if init_state else None,
        }, indent=1) + "\n")
    log = MetricsLog(run_dir / "metrics.jsonl", keep_through_step=step if resume_state else None, enabled=dist.main)
    _say(dist, f"model {cfg.model}: {model.num_params() / 1e6:.2f}M params, "
               f"{dist.world} x {device.type}, {amp_name}, attention {'per document' if cfg.doc_mask else 'causal over packed rows'}; "
               f"data {data.n_train} train rows, {len(data.val_ids)} val rows ({data.val_source}); "
               f"{total_steps} steps of {rows_per_step} rows x {data.seq_len} tokens")

    def save_ckpt():
        state = {
            "model_config": mcfg.to_dict(), "train_config": cfg.to_dict(), "schedule": schedule.state_dict(),
            "data": {**data.position_info(position), "global_batch_rows": rows_per_step, "seed": cfg.seed},
            "vocab": vocab.describe(), "manifest_sha256": manifest_sha,
        }
        path = ckpt.save(run_dir, step=step, model=model, optimizer=opt, param_names=names, state=state,
                         rank=dist.rank, world=dist.world, barrier=dist.barrier, keep=cfg.keep_checkpoints)
        _say(dist, f"checkpoint {path}")

    def validate():
        if len(data.val_ids) == 0:
            return None
        t = time.perf_counter()
        res = evaluate(fwd.module if dist.world > 1 else fwd, data, cfg, device, dist, amp)
        rec = {"kind": "val", "step": step, "loss": res["loss_all"], **res, "time_s": time.perf_counter() - t}
        log.write(rec)
        parts = " ".join(f"{m} {res[f'loss_{m}']:.4f}" for m in MODALITY_NAMES[:3] if res[f"loss_{m}"] is not None)
        _say(dist, f"val step {step}: loss {res['loss_all']:.4f} | {parts}")
        return rec

    def load_step(pos):  # a pure function of the stream position: prefetching keeps runs exact
        micro = [data.train_batch(pos, a, dist.rank, dist.world, cfg.batch_size, doc_mask=cfg.doc_mask)
                 for a in range(cfg.grad_accum)]
        return [b.pin_memory() for b in micro] if device.type == "cuda" else micro

    fwd.train()
    t_start = time.perf_counter()
    last_val = None
    prefetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bsm-data")
    pending = prefetch.submit(load_step, position) if step < total_steps else None
    while step < total_steps:
        t0 = time.perf_counter()
        lr = schedule(step)
        for g in opt.param_groups:
            g["lr"] = lr
        micro = pending.result()
        if step + 1 < total_steps:
            pending = prefetch.submit(load_step, position + rows_per_step)
        n_targets = float(sum(b.n_targets for b in micro))
        if dist.world > 1:
            n_targets = dist.all_reduce(torch.tensor(n_targets, dtype=torch.float64, device=device)).item()
        n_targets = max(1.0, n_targets)
        loss_sum = torch.zeros((), dtype=torch.float32, device=device)
        for a, batch in enumerate(micro):
            b = batch.to(device)
            sync = fwd.no_sync() if dist.world > 1 and a < cfg.grad_accum - 1 else contextlib.nullcontext()
            with sync:
                with amp:
                    _, loss = fwd(b.input_ids, b.targets, docs=b.docs, reduction="sum")
                (loss * (dist.world / n_targets)).backward()  # DDP averages over ranks
            loss_sum += loss.detach()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        position += rows_per_step
        loss_val = dist.all_reduce(loss_sum.double()).item() / n_targets
        dt = time.perf_counter() - t0
        tps = rows_per_step * data.seq_len / dt
        rec = {
            "kind": "train", "step": step, "loss": loss_val, "lr": lr, "grad_norm": float(grad_norm),
            "tokens_per_s": tps, "mfu": mfu(tps, ftok, peak, dist.world), "step_time_s": dt,
            "tokens": step * rows_per_step * data.seq_len, "target_tokens": int(n_targets),
            "epoch": position / data.n_train, "elapsed_s": time.perf_counter() - t_start,
        }
        log.write(rec)
        if dist.main and (step % cfg.log_every == 0 or step == total_steps or step == 1):
            print(log_line(rec, total_steps), file=sys.stderr, flush=True)
        for h in hooks:
            h(rec)
        if cfg.val_every and step % cfg.val_every == 0 and step < total_steps:
            last_val = validate()
        if cfg.ckpt_every and step % cfg.ckpt_every == 0 and step < total_steps:
            save_ckpt()
    prefetch.shutdown()
    if resume_state is None or resume_state["step"] < total_steps:
        last_val = validate()
        save_ckpt()
    log.close()
    png = None
    if dist.main:
        png = plot_curves(run_dir / "metrics.jsonl", run_dir / "loss.png")
        _say(dist, f"done: {step} steps; metrics {run_dir / 'metrics.jsonl'}, plot {png}, checkpoint {run_dir / ckpt.LINK}")
    return {"steps": step, "run_dir": str(run_dir), "val": last_val, "plot": str(png) if png else None}
