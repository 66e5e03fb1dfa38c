"""``bsm train`` and ``bsm export``: ``add_train_parsers(subparsers)`` adds both to the ``bsm``
command line; ``python -m bsm_model.cli train ...`` runs them standalone (also under torchrun)."""
from __future__ import annotations

import argparse
import sys

from .config import ROUNDS, TrainConfig

SCHEDULE_KEYS = ("lr", "min_lr", "decay", "warmup_steps")


def _refuse(rest: list[str], command: str) -> None:
    if rest:
        raise SystemExit(f"bsm {command}: unrecognized arguments: {' '.join(rest)}")


def train_config_from_args(args) -> tuple[TrainConfig, set[str]]:
    """The TrainConfig of parsed ``bsm train`` arguments, and the names given explicitly."""
    defaults = TrainConfig(manifest="", out="")
    explicit = {k for k in (*SCHEDULE_KEYS, "model") if getattr(args, k, None) is not None}
    values = {}
    for f in TrainConfig.__dataclass_fields__:
        if f == "extra":
            continue
        v = getattr(args, f, None)
        values[f] = getattr(defaults, f) if v is None else v
    if args.model is None:
        values["model"] = "bsm-110m"
    cfg = TrainConfig(**values)
    cfg.apply_round(explicit)
    return cfg, explicit


def cmd_train(args, rest: list[str]) -> int:
    _refuse(rest, "train")
    from bsm_data.shards import ManifestError

    from .checkpoint import CheckpointError
    from .train import run

    cfg, explicit = train_config_from_args(args)
    try:
        run(cfg, explicit=explicit)
    except (ManifestError, CheckpointError) as e:
        raise SystemExit(f"bsm train: {e}") from None
    return 0


def cmd_export(args, rest: list[str]) -> int:
    _refuse(rest, "export")
    from .checkpoint import CheckpointError
    from .export import export_hf

    try:
        out = export_hf(args.checkpoint, args.hf, dtype=args.dtype, force=args.force)
    except (CheckpointError, FileExistsError) as e:
        raise SystemExit(f"bsm export: {e}") from None
    print(f"Hugging Face model directory written to {out}")
    return 0


def add_train_parsers(subparsers) -> None:
    rounds = "; ".join(f"{r}: {p['lr']:g} -> {p['min_lr']:g} {p['decay']}" + (f", warmup {p['warmup_fraction']:.0%}%" if p["warmup_fraction"] else "")
                       for r, p in ROUNDS.items())
    t = subparsers.add_parser(
        "train",
        help="train a BSM model on a shard manifest (resumes from OUT/checkpoint when present)",
        description="Train on the shards of a manifest. Rerunning with the same --out resumes exactly from its checkpoint. "
                    "Under torchrun every rank reads a disjoint slice of each step's rows.",
    )
    t.add_argument("--manifest", required=True, help="shard directory holding manifest.json (local or gs://)")
    t.add_argument("--out", required=True, help="run directory: metrics.jsonl, loss.png, checkpoint")
    t.add_argument("--config", dest="model", choices=["tiny", "bsm-110m", "bsm-270m"], default=None,
                   help="model size (default bsm-110m, or the --init-from checkpoint's)")
    t.add_argument("--round", type=int, choices=sorted(ROUNDS), help=f"paper LR schedule preset ({rounds}); flags below override it")
    t.add_argument("--init-from", help="start from this checkpoint's weights (PREV_RUN_DIR/checkpoint), fresh optimizer and schedule")
    g = t.add_argument_group("schedule")
    g.add_argument("--steps", type=int, help="optimizer steps (default: --epochs of the training rows)")
    g.add_argument("--epochs", type=float, help="epochs when --steps is not given (default 1)")
    g.add_argument("--lr", type=float, help="peak learning rate (default 2e-5)")
    g.add_argument("--min-lr", type=float, help="final learning rate (default 1e-5)")
    g.add_argument("--decay", choices=["cosine", "linear", "constant"], help="decay after warmup (default cosine)")
    g.add_argument("--warmup-steps", type=int, help="linear warmup steps (default 0; round 1: 1%% of steps, at most 2000)")
    o = t.add_argument_group("optimisation")
    o.add_argument("--batch-size", type=int, help="rows per micro-batch per rank (default 8)")
    o.add_argument("--grad-accum", type=int, help="micro-batches per optimizer step (default 1)")
    o.add_argument("--weight-decay", type=float, help="AdamW weight decay on matrices (default 0.1)")
    o.add_argument("--grad-clip", type=float, help="max global gradient norm, 0 = off (default 1.0)")
    o.add_argument("--seed", type=int, help="data order and initialisation seed (default 0)")
    d = t.add_argument_group("data and attention")
    d.add_argument("--doc-mask", action=argparse.BooleanOptionalAction, default=None,
                   help="attend within documents only, positions restart per document (default on)")
    d.add_argument("--attn", choices=["auto", "sdpa", "mask", "flex", "varlen"],
                   help="per-document attention: varlen (flash-attn), flex (FlexAttention), sdpa (a causal call per document), "
                        "mask (dense block-diagonal mask); default auto: varlen on CUDA when flash-attn is installed, else flex; sdpa on CPU")
    d.add_argument("--shuffle-window", type=int, help="shuffle rows within windows of this many shards (default 0: all shards)")
    d.add_argument("--val-fraction", type=float, help="rows held out for validation when the manifest has no validation split (default 0.01)")
    d.add_argument("--val-max-rows", type=int, help="at most this many validation rows (default 512)")
    d.add_argument("--val-every", type=int, help="validate every N steps (default 0: at the end only)")
    d.add_argument("--val-batch-size", type=int, help="validation rows per batch (default --batch-size)")
    r = t.add_argument_group("runtime")
    r.add_argument("--device", choices=["auto", "cpu", "cuda"])
    r.add_argument("--dtype", choices=["auto", "bf16", "fp32"], help="auto: bf16 autocast on CUDA, fp32 on CPU")
    r.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    r.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=None,
                   help="deterministic algorithms (default: on for CPU, off for CUDA)")
    r.add_argument("--threads", type=int, help="torch CPU threads")
    r.add_argument("--ckpt-every", type=int, help="checkpoint every N steps (default 0: at the end only)")
    r.add_argument("--keep-checkpoints", type=int, help="step checkpoints kept (default 2)")
    r.add_argument("--log-every", type=int, help="print a progress line every N steps (default 10)")
    r.add_argument("--peak-flops", type=float, help="peak FLOP/s of one device for MFU (known GPUs are detected; CPU has none)")
    t.set_defaults(func=cmd_train)

    e = subparsers.add_parser("export", help="export a checkpoint as a Hugging Face model directory (LlamaForCausalLM + tokenizer)")
    e.add_argument("--checkpoint", required=True, help="run directory or checkpoint directory")
    e.add_argument("--hf", required=True, help="output directory")
    e.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    e.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    e.set_defaults(func=cmd_export)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bsm")
    add_train_parsers(p.add_subparsers(dest="command", required=True))
    return p


def main(argv: list[str] | None = None) -> int:
    args, rest = build_parser().parse_known_args(argv)
    return args.func(args, rest)


if __name__ == "__main__":
    sys.exit(main())
