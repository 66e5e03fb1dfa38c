"""Checkpoints without pickle: safetensors for every tensor, JSON for everything else.

Layout of a run directory::

    RUN_DIR/checkpoint -> checkpoints/step-00000100     (relative symlink: the latest checkpoint)
    RUN_DIR/checkpoints/step-00000100/
        state.json              step, configs, LR schedule, data position, versions, file sha256s
        model.safetensors       weights (fp32, this package's names; bsm export maps them to Llama)
        optimizer.safetensors   per-parameter optimizer tensors, keyed "<param name>.<state key>"
        optimizer.json          param groups (hyperparameters, parameter names) and non-tensor state
        rng-rank00000.safetensors  torch CPU + CUDA generator states of rank 0; python and numpy
                                   states in its metadata (JSON). One file per rank.

A checkpoint is written into ``checkpoints/.tmp-step-…``, each file fsynced, renamed to
``step-…`` and only then published by atomically replacing the ``checkpoint`` symlink, so a
kill at any moment leaves the previous checkpoint intact and readable. Loading reads only
safetensors and JSON (never ``torch.load``), and checks each file's sha256 against state.json.
Older step directories beyond ``keep`` are deleted after the switch.
With DDP every rank writes its own RNG file into the same directory: RUN_DIR must be on a
filesystem all ranks share.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

FORMAT, VERSION = "bsm-checkpoint", 1
LINK, DIRNAME = "checkpoint", "checkpoints"


class CheckpointError(RuntimeError):
    pass


def step_name(step: int) -> str:
    return f"step-{step:08d}"


def resolve(path: str | os.PathLike) -> Path:
    """A checkpoint directory from itself, or from a run directory holding ``checkpoint``."""
    p = Path(path)
    for cand in (p, p / LINK):
        if (cand / "state.json").is_file():
            return cand.resolve()
    raise CheckpointError(f"{path}: no checkpoint here (expected state.json, or RUN_DIR/{LINK}/state.json)")


def latest(run_dir: str | os.PathLike) -> Path | None:
    p = Path(run_dir) / LINK
    return p.resolve() if (p / "state.json").is_file() else None


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1) + "\n")


def read_state(ckpt: Path) -> dict:
    state = json.loads((ckpt / "state.json").read_text())
    if state.get("format") != FORMAT or state.get("version") != VERSION:
        raise CheckpointError(f"{ckpt}: {state.get('format')!r} v{state.get('version')}, this code reads {FORMAT} v{VERSION}")
    return state


def _verified(ckpt: Path, name: str, state: dict) -> Path:
    path = ckpt / name
    want = state["files"].get(name)
    if want is None or not path.is_file():
        raise CheckpointError(f"{ckpt}: {name} missing")
    got = sha256_file(path)
    if got != want:
        raise CheckpointError(f"{path}: sha256 {got} does not match state.json's {want}")
    return path


# ----------------------------------------------------------------------------------------------
# model and optimizer tensors


def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Persistent weights, each stored once (a tied lm_head is the embedding: not stored)."""
    out, seen = {}, set()
    for name, t in model.state_dict().items():
        key = t.untyped_storage().data_ptr()
        if key in seen:
            continue
        seen.add(key)
        out[name] = t.detach().to("cpu", copy=True).contiguous()
    return out


def load_model_weights(ckpt: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(model config dict, weights, state) of a checkpoint; sha256-checked, safetensors only."""
    ckpt = resolve(ckpt)
    state = read_state(ckpt)
    return state["model_config"], load_file(_verified(ckpt, "model.safetensors", state)), state


def apply_model_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    tied = {n for n in missing if n == "lm_head.weight" and getattr(model, "cfg", None) is not None and model.cfg.tie_embeddings}
    if set(missing) - tied or unexpected:
        raise CheckpointError(f"weights do not fit the model: missing {sorted(set(missing) - tied)}, unexpected {sorted(unexpected)}")


def optimizer_tensors(optimizer: torch.optim.Optimizer, names: list[str]) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"{names[idx]}.{key}"] = value.detach().to("cpu", copy=True).contiguous()
            else:
                scalars.setdefault(names[idx], {})[key] = value
    groups = []
    for g in sd["param_groups"]:
        g = {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
        g["params"] = [names[i] for i in g["params"]]
        groups.append(g)
    return tensors, {"param_groups": groups, "scalar_state": scalars}


def apply_optimizer_state(optimizer: torch.optim.Optimizer, names: list[str], tensors: dict[str, torch.Tensor], meta: dict) -> None:
    index = {n: i for i, n in enumerate(names)}
    saved_names = [n for g in meta["param_groups"] for n in g["params"]]
    if saved_names != names:
        raise CheckpointError("optimizer state was saved for different parameters")
    state: dict[int, dict] = {}
    for key, t in tensors.items():
        name, _, sub = key.rpartition(".")
        state.setdefault(index[name], {})[sub] = t
    for name, st in meta["scalar_state"].items():
        state.setdefault(index[name], {}).update(st)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        g["params"] = [index[n] for n in g["params"]]
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# ----------------------------------------------------------------------------------------------
# RNG states


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{i}"] = s
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    meta = {
        "python": json.dumps([version, list(internal), gauss]),
        "numpy": json.dumps([name, keys.tolist(), int(pos), int(has_gauss), float(cached)]),
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = sorted((k for k in tensors if k.startswith("cuda_")), key=lambda k: int(k[5:]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    version, internal, gauss = json.loads(meta["python"])
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = json.loads(meta["numpy"])
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def rng_file(rank: int) -> str:
    return f"rng-rank{rank:05d}.safetensors"


def load_rng(ckpt: Path, state: dict, rank: int) -> None:
    from safetensors import safe_open

    path = _verified(ckpt, rng_file(rank), state)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    set_rng_state(tensors, meta)


# ----------------------------------------------------------------------------------------------
# save / load


def save(run_dir: str | os.PathLike, *, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         param_names: list[str], state: dict, rank: int = 0, world: int = 1, barrier=lambda: None, keep: int = 2) -> Path:
    """Write a checkpoint for ``step`` and publish it as RUN_DIR/checkpoint. Collective under DDP:
    every rank calls it (rank 0 writes weights and optimizer, each rank its RNG file)."""
    run = Path(run_dir)
    parent = run / DIRNAME
    tmp = parent / f".tmp-{step_name(step)}"
    final = parent / step_name(step)
    if rank == 0:
        parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)  # a leftover of a killed save
        tmp.mkdir()
    barrier()
    rt, rm = rng_state()
    save_file(rt, str(tmp / rng_file(rank)), metadata=rm)
    _fsync(tmp / rng_file(rank))
    barrier()
    if rank == 0:
        save_file(model_tensors(model), str(tmp / "model.safetensors"), metadata={"format": FORMAT})
        ot, ometa = optimizer_tensors(optimizer, param_names)
        save_file(ot, str(tmp / "optimizer.safetensors"))
        _write_json(tmp / "optimizer.json", ometa)
        names = ["model.safetensors", "optimizer.safetensors", "optimizer.json", *(rng_file(r) for r in range(world))]
        for n in names:
            _fsync(tmp / n)
        full = {"format": FORMAT, "version": VERSION, "step": step, "world_size": world, **state,
                "files": {n: sha256_file(tmp / n) for n in names}}
        _write_json(tmp / "state.json", full)
        _fsync(tmp / "state.json")
        _fsync(tmp)
        if final.exists():  # an unpublished copy of this step from a killed run
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync(parent)
        link_tmp = run / f".{LINK}.tmp"
        if link_tmp.is_symlink() or link_tmp.exists():
            link_tmp.unlink()
        os.symlink(os.path.join(DIRNAME, final.name), link_tmp)
        os.replace(link_tmp, run / LINK)  # the commit point
        _fsync(run)
        prune(run, keep)
    barrier()
    return final


def prune(run_dir: Path, keep: int) -> None:
    current = latest(run_dir)
    steps = sorted(p for p in (run_dir / DIRNAME).glob("step-*") if p.is_dir())
    for p in steps[: max(0, len(steps) - max(1, keep))]:
        if current is None or p.resolve() != current:
            shutil.rmtree(p, ignore_errors=True)
    for p in (run_dir / DIRNAME).glob(".tmp-*"):
        shutil.rmtree(p, ignore_errors=True)


def load_training_state(ckpt: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, param_names: list[str],
                        rank: int, world: int) -> dict:
    """Restore model, optimizer and this rank's RNG states; returns state.json."""
    state = read_state(ckpt)
    if state["world_size"] != world:
        raise CheckpointError(f"{ckpt}: saved with {state['world_size']} ranks, resuming with {world}; exact resume needs the same")
    apply_model_weights(model, load_file(_verified(ckpt, "model.safetensors", state)))
    meta = json.loads(_verified(ckpt, "optimizer.json", state).read_text())
    apply_optimizer_state(optimizer, param_names, load_file(_verified(ckpt, "optimizer.safetensors", state)), meta)
    load_rng(ckpt, state, rank)
    return state
