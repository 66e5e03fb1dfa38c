"""results.json, results.md and the plots of one ``bsm eval`` run.

results.json: ``{"format": "bsm-eval-results", "version": 1, "model": {...}, "rows": [...],
"tasks": {...}}``; one row per task (per k for few-shot, per modality for perplexity) with
task, setting, metric, score, baseline, baseline_name, n_items (test items scored), splits
(train/valid/test sizes), time_s; ``tasks`` keeps each task's full details (history, per-set
scores, notes). Both files are rewritten after every task, atomically, so an interrupted run
keeps what finished.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from bsm_data.shards import atomic_write

FORMAT, VERSION = "bsm-eval-results", 1


def _clean(x):
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and callable(x.item):
        return _clean(x.item())
    return x


def row(task: str, setting: str, metric: str, score, baseline, baseline_name: str, n_items: int, splits: dict, time_s: float, **extra) -> dict:
    return {"task": task, "setting": setting, "metric": metric, "score": score, "baseline": baseline,
            "baseline_name": baseline_name, "n_items": n_items, "splits": splits, "time_s": round(time_s, 2), **extra}


def _fmt(v, metric: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if metric.startswith("perplexity"):
        return f"{v:.3f}"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def markdown(results: dict) -> str:
    m = results.get("model") or {}
    lines = ["# bsm eval results", ""]
    if m:
        lines += [f"- checkpoint: `{m.get('checkpoint')}` (step {m.get('step')}, {m.get('params', 0) / 1e6:.2f}M parameters, "
                  f"device {m.get('device')})", f"- trained on: `{m.get('train_manifest')}`"]
    if results.get("options"):
        lines.append(f"- options: `{json.dumps(results['options'], sort_keys=True)}`")
    lines += ["", "| task | setting | metric | model | baseline | baseline method | test items | train/valid/test | time (s) |",
              "|---|---|---|---:|---:|---|---:|---|---:|"]
    for r in results["rows"]:
        sp = r.get("splits") or {}
        sizes = "/".join(str(sp.get(s, "-")) for s in ("train", "valid", "test"))
        if "error" in r:
            lines.append(f"| {r['task']} | {r.get('setting', '')} | error | {r['error']} | | | | | |")
            continue
        lines.append(f"| {r['task']} | {r['setting']} | {r['metric']} | {_fmt(r['score'], r['metric'])} | "
                     f"{_fmt(r['baseline'], r['metric'])} | {r['baseline_name']} | {r['n_items']} | {sizes} | {r['time_s']:.1f} |")
    lines.append("")
    for p in results.get("plots", []):
        lines += [f"![{Path(p).stem}]({Path(p).name})", ""]
    for name, t in results.get("tasks", {}).items():
        notes = t.get("notes") or []
        if notes:
            lines.append(f"**{name}**: " + "; ".join(notes))
            lines.append("")
    return "\n".join(lines) + "\n"


def write(out_dir: str | Path, results: dict) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = _clean({"format": FORMAT, "version": VERSION, **results})
    js, md = out / "results.json", out / "results.md"
    atomic_write(str(js), (json.dumps(results, indent=1) + "\n").encode())
    atomic_write(str(md), markdown(results).encode())
    return js, md


def plot_icl(out_dir: str | Path, curve: list[dict], *, sft: float | None = None, baseline: float | None = None,
             majority: float | None = None) -> Path | None:
    """Few-shot accuracy against k, with the SFT and baseline accuracies as reference lines."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ks = [c["k"] for c in curve]
    acc = [c["accuracy"] for c in curve]
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    ax.plot(range(len(ks)), acc, "o-", label="BSM few-shot (ICL)")
    for value, style, label in ((sft, "--", "BSM SFT"), (baseline, ":", "k-mer baseline"), (majority, "-.", "majority class")):
        if value is not None and math.isfinite(value):
            ax.axhline(value, linestyle=style, color="gray" if label != "BSM SFT" else "C1", label=label)
    shown = [v for v in (*acc, sft, baseline, majority) if v is not None and math.isfinite(v)]
    ax.set_ylim(max(0.0, min(shown) - 0.05) if shown else 0.0, 1.0)
    ax.set_xticks(range(len(ks)), [str(k) for k in ks])
    ax.set_xlabel("demonstrations k")
    ax.set_ylabel("test accuracy")
    ax.set_title("Central Dogma few-shot")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(out_dir) / "central_dogma_icl.png"
    fig.savefig(path)
    plt.close(fig)
    return path
