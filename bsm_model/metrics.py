"""Throughput, MFU, the metrics JSONL and the loss plot.

MFU (model FLOPs utilisation) uses the standard formula of the PaLM paper (appendix B), as in
nanoGPT: training FLOPs per token = 6 N + 12 L d T, where N counts the parameters that take part
in matmuls (everything but the input embedding lookup; lm_head included), L layers, d the model
width and T the sequence length. The attention term counts the full T x T score matrix (no
discount for causal or per-document masking), which is the convention, so figures compare across
codebases. Peak FLOPs are dense bf16 tensor-core figures of one device.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

# Dense bf16 peak FLOP/s per device (vendor datasheets, no sparsity).
PEAK_FLOPS = {
    "H100": 989e12,  # SXM
    "H200": 989e12,
    "H800": 989e12,
    "GH200": 989e12,
    "A100": 312e12,
    "A800": 312e12,
    "L40S": 362e12,
    "A10G": 70e12,
    "L4": 121e12,
}


def peak_flops(device, override: float | None = None) -> float | None:
    """Peak FLOP/s of one device, or None when unknown (CPU: pass --peak-flops to get MFU)."""
    if override:
        return float(override)
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    if "H100" in name and "PCIe" in name:
        return 756e12
    for key in sorted(PEAK_FLOPS, key=len, reverse=True):
        if key in name:
            return PEAK_FLOPS[key]
    return None


def flops_per_token(cfg, n_matmul_params: int, seq_len: int) -> float:
    return 6.0 * n_matmul_params + 12.0 * cfg.n_layers * cfg.dim * seq_len


def mfu(tokens_per_s: float, flops_token: float, peak: float | None, n_devices: int = 1) -> float | None:
    if not peak:
        return None
    return tokens_per_s * flops_token / (peak * n_devices)


def fmt_si(x: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.2f}{unit}"
    return f"{x:.1f}"


def log_line(rec: dict, total_steps: int) -> str:
    m = rec.get("mfu")
    return (
        f"step {rec['step']:>6}/{total_steps} | loss {rec['loss']:.4f} | lr {rec['lr']:.3e} | "
        f"{fmt_si(rec['tokens_per_s'])} tok/s | MFU {'n/a' if m is None else f'{100 * m:.1f}%'} | "
        f"grad {rec['grad_norm']:.3f} | {rec['step_time_s'] * 1000:.0f} ms/step"
    )


class MetricsLog:
    """Append-only JSONL, one object per line: {"kind": "train"|"val", "step": ..., ...}."""

    def __init__(self, path: str | os.PathLike, *, keep_through_step: int | None = None, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if keep_through_step is not None and self.path.exists():
            # Resuming: drop what was logged after the checkpoint (those steps run again).
            kept = [line for line in self.path.read_text().splitlines() if _step_of(line) is not None and _step_of(line) <= keep_through_step]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(line + "\n" for line in kept))
            os.replace(tmp, self.path)
        elif keep_through_step is None and self.path.exists():
            self.path.unlink()
        self._f = open(self.path, "a", buffering=1)

    def write(self, rec: dict) -> None:
        if self.enabled:
            self._f.write(json.dumps(rec, allow_nan=True) + "\n")

    def close(self) -> None:
        if self.enabled:
            self._f.close()


def _step_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def read_metrics(path: str | os.PathLike) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_curves(metrics_path: str | os.PathLike, png_path: str | os.PathLike) -> Path:
    """Training loss (raw and smoothed) and validation loss per modality against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = read_metrics(metrics_path)
    train = [r for r in recs if r.get("kind") == "train"]
    val = [r for r in recs if r.get("kind") == "val"]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    if train:
        steps = [r["step"] for r in train]
        losses = [r["loss"] for r in train]
        ax.plot(steps, losses, color="#9ab", lw=0.8, label="train")
        w = max(1, len(losses) // 50)
        if w > 1:
            sm = [sum(losses[max(0, i - w + 1) : i + 1]) / len(losses[max(0, i - w + 1) : i + 1]) for i in range(len(losses))]
            ax.plot(steps, sm, color="#246", lw=1.4, label=f"train (mean of {w})")
    colors = {"all": "black", "dna": "#c33", "rna": "#3a3", "protein": "#33c"}
    for key, color in colors.items():
        pts = [(r["step"], r[f"loss_{key}"]) for r in val if r.get(f"loss_{key}") is not None and math.isfinite(r[f"loss_{key}"])]
        if pts:
            ax.plot(*zip(*pts), "o-" if len(pts) > 1 else "o", color=color, ms=4, lw=1, label=f"val {key}")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png_path = Path(png_path)
    tmp = png_path.with_name(f".tmp-{png_path.name}")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, png_path)
    return png_path
