"""Training throughput of bsm_model.BSM against transformers' LlamaForCausalLM, same run.

Both models have the same dimensions and the same weights (ours copied into the HF model with
the export mapping; the first-step losses are printed and must agree), see the same real packed
rows and take full training steps: forward, loss, backward, gradient clipping, AdamW step.
Steps are interleaved (ours, HF, ours, HF, ...) over the same batches. The headline tokens/s is
all measured tokens over the summed step times after warmup: process CPU time on CPU (so other
processes on a shared machine do not count; one thread by default, which makes CPU time equal
wall time on an idle machine), wall time with CUDA synchronisation on GPU. Best and median wall
step times are printed too. Two attention modes, both computing the same function in both
models:
  docs    per-document attention, as `bsm train` trains by default: ours gets the rows'
          document layout (bsm_model.model.Documents), HF gets position_ids that restart at each
          document, from which transformers builds its packed-sequence (block-diagonal) mask
  causal  plain causal attention over whole rows for both

    python benchmarks/bench_train.py                                  # CPU: tiny config, fp32
    python benchmarks/bench_train.py --device cuda --config bsm-110m --batch-size 32 [--compile]

On CUDA: bf16 autocast, fused AdamW for both, SDPA (flash) attention for both, MFU from
bsm_model.metrics (6N + 12 L d T per token; 989 TFLOP/s for H100/H200 bf16 dense).
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bsm_model.data import TrainData, make_batch  # noqa: E402
from bsm_model.export import hf_config, hf_state_dict  # noqa: E402
from bsm_model.metrics import flops_per_token, mfu, peak_flops  # noqa: E402
from bsm_model.model import BSM, CONFIGS, IGNORE  # noqa: E402
from bsm_data.vocab import load_vocab  # noqa: E402


def real_rows(manifest: str | None, n: int, seed: int):
    """Real packed rows: the given manifest, or the bundled NC_005816 + NC_000932 GenBank files."""
    if manifest is None:
        from bsm_data.build import build_genbank_local

        tmp = tempfile.TemporaryDirectory(prefix="bench-train-")
        atexit.register(tmp.cleanup)
        manifest = tmp.name
        files = [str(ROOT / "data" / "genbank" / f) for f in ("NC_005816.gb", "NC_000932.gb")]
        build_genbank_local(files, manifest, seed=0, num_shards=1)
    data = TrainData(manifest, seed=seed, val_fraction=0.0)
    return data, [data.stream(i * n, n) for i in range(64)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--config", default=None, help="model config (default: tiny on CPU, bsm-110m on CUDA)")
    p.add_argument("--batch-size", type=int, default=None, help="rows of 1024 tokens per step (default 4 CPU, 32 CUDA)")
    p.add_argument("--steps", type=int, default=8, help="measured steps per model")
    p.add_argument("--warmup", type=int, default=3, help="unmeasured steps per model first")
    p.add_argument("--compile", action="store_true", help="torch.compile both models")
    p.add_argument("--manifest", help="shard directory (default: build the two-file GenBank subset)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1; 0: torch's default)")
    p.add_argument("--only", choices=["bsm", "hf"], help="run one model only")
    p.add_argument("--mode", choices=["docs", "causal"], default="docs", help="attention over packed rows (see above)")
    p.add_argument("--attn", default="auto", help="our per-document attention backend (bsm_model.model)")
    p.add_argument("--peak-flops", type=float, help="peak FLOP/s for MFU where the device is unknown")
    args = p.parse_args()
    print("$ python " + " ".join(shlex.quote(a) for a in sys.argv))
    if args.threads and not args.device == "cuda":
        torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available")
    config = args.config or ("bsm-110m" if cuda else "tiny")
    bs = args.batch_size or (32 if cuda else 4)
    device = torch.device(args.device)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    cfg = CONFIGS[config]
    data, batches = real_rows(args.manifest, bs, seed=0)
    T = data.seq_len

    def tensors(ids):
        tok, starts, n_tok = data.train.gather(ids)
        b = make_batch(tok, starts, n_tok, doc_mask=args.mode == "docs")
        labels = torch.full_like(b.targets, IGNORE)  # HF shifts labels itself
        labels[:, 1:] = b.targets[:, :-1]
        positions = b.docs.positions if b.docs is not None else None
        return b.to(device), labels.to(device), positions.to(device) if positions is not None else None

    torch.manual_seed(0)
    ours = BSM(cfg, attn_backend=args.attn).to(device)
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    hcfg = {k: v for k, v in hf_config(cfg, load_vocab()).items() if k not in ("architectures", "model_type", "dtype", "torch_dtype")}
    # "sdpa" is transformers' default for Llama; with position_ids that restart per document it
    # builds the block-diagonal causal mask itself (docs mode), and without them is_causal
    hf = LlamaForCausalLM(LlamaConfig(**hcfg, attn_implementation="sdpa")).to(device)
    hf.load_state_dict(hf_state_dict({k: v.detach().clone() for k, v in ours.state_dict().items()}, cfg), strict=True)
    hf.config.use_cache = False

    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()

    def make_step(model, kind):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True if cuda else None)
        fwd = model
        if args.compile:  # ours as `bsm train --compile` does it; HF as transformers users do
            if kind == "bsm":
                if args.attn == "auto" and not cuda:
                    model.attn_backend = "mask"  # as bsm train --compile on CPU: static shapes
                model.compile_blocks()
            else:
                fwd = torch.compile(model)

        def step(data):
            b, labels, positions = data
            with amp:
                if kind == "bsm":
                    _, loss = fwd(b.input_ids, b.targets, docs=b.docs)
                else:
                    loss = fwd(input_ids=b.input_ids, labels=labels, position_ids=positions, use_cache=False).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.detach()

        return step

    models = {"bsm": make_step(ours, "bsm"), "hf": make_step(hf, "hf")}
    if args.only:
        models = {args.only: models[args.only]}
    n_matmul = ours.num_params(matmul_only=True)
    ftok = flops_per_token(cfg, n_matmul, T)
    peak = peak_flops(device, args.peak_flops)
    print(f"device {device}{' ' + torch.cuda.get_device_name(device) if cuda else f', {torch.get_num_threads()} threads'}; "
          f"torch {torch.__version__}; config {config} ({ours.num_params() / 1e6:.2f}M params), batch {bs} x {T} tokens, "
          f"{'bf16 autocast' if cuda else 'fp32'}, compile {args.compile}, attention {args.mode}; warmup {args.warmup}, best of {args.steps}")
    print(f"hf: transformers {transformers.__version__} LlamaForCausalLM, attn_implementation {hf.config._attn_implementation}")
    n_multi = sum(len(data.train.gather(ids)[1][j]) > 1 for ids in batches[: args.warmup + args.steps] for j in range(len(ids)))
    print(f"data {data.manifest_dir}: {n_multi} of {(args.warmup + args.steps) * bs} rows used hold several documents")

    wall = {k: [] for k in models}
    cpu_time = {k: [] for k in models}
    first = {}
    for i in range(args.warmup + args.steps):
        b = tensors(batches[i % len(batches)])
        for name, step in models.items():
            if cuda:
                torch.cuda.synchronize()
            t, c = time.perf_counter(), time.process_time()
            loss = step(b)
            lv = loss.item()  # syncs
            dt, dc = time.perf_counter() - t, time.process_time() - c
            if i == 0:
                first[name] = lv
            if i >= args.warmup:
                wall[name].append(dt)
                cpu_time[name].append(dc)
    if len(first) == 2:
        print(f"first-step loss: bsm {first['bsm']:.6f}  hf {first['hf']:.6f}  (same weights, same rows)")
    clock = "wall" if cuda else "CPU"
    print(f"{'model':<8}{f'tokens/s ({clock})':>20}{'MFU':>8}{'best wall ms':>14}{'median wall ms':>16}")
    tps = {}
    for name in models:
        total = sum(wall[name]) if cuda else sum(cpu_time[name])
        tps[name] = args.steps * bs * T / total
        m = mfu(tps[name], ftok, peak)
        print(f"{name:<8}{tps[name]:>20,.0f}{'n/a' if m is None else f'{100 * m:.1f}%':>8}"
              f"{min(wall[name]) * 1000:>14.1f}{np.median(wall[name]) * 1000:>16.1f}")
    if len(tps) == 2:
        print(f"speed-up bsm / hf: {tps['bsm'] / tps['hf']:.2f}x (tokens/s); best wall step {min(wall['hf']) / min(wall['bsm']):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
