"""``report.html``: one self-contained page for a whole run of the chain (what ``bsm demo``
writes, and ``bsm report DIR`` rewrites), read from the directory layout the demo uses:

    DIR/round-N/            round builds (manifest.json, shards, report/summary.json)
    DIR/runs/round-N/       training runs (metrics.jsonl, run.json)
    DIR/eval/               bsm eval output (results.json, central_dogma_icl.png)
    DIR/timings.json        optional: wall time per stage

Sections: data mix per round, length distributions per modality, contamination summary, loss
curves, the evaluation table with its baselines, the few-shot (ICL) curve. A missing part
leaves its section saying so rather than failing the page. Plots are PNGs inlined as data
URIs, so the file opens anywhere. A small inline script marks each section
``data-rendered="ok"`` once its images have decoded, so a headless browser can check the page
the way a reader sees it (tests/test_report.py).
"""
from __future__ import annotations

import io
import json
import math
import os
import re
from pathlib import Path

from bsm_data import htmlpage
from bsm_data.htmlpage import escape
from bsm_data.shards import MANIFEST, atomic_write, read_manifest

MODALITIES = ("dna", "rna", "protein")
COLORS = {"dna": "#c33", "rna": "#3a3", "protein": "#33c", "all": "black"}
SECTIONS = (("mix", "Data mix per round"), ("lengths", "Length distributions per modality"),
            ("contamination", "Contamination summary"), ("training", "Loss curves"),
            ("evaluation", "Evaluation"), ("icl", "Few-shot (ICL) curve"))

# Marks each section once every image in it has decoded with a non-zero size: the page's own
# check that it renders, which a headless browser can read back from the DOM.
_CHECK_SCRIPT = """<script>
window.addEventListener('load', function () {
  var ok = 0;
  document.querySelectorAll('section[id]').forEach(function (s) {
    var imgs = Array.prototype.slice.call(s.querySelectorAll('img'));
    var good = s.textContent.trim().length > 0 && imgs.every(function (i) { return i.complete && i.naturalWidth > 0; });
    s.setAttribute('data-rendered', good ? 'ok' : 'broken');
    if (good) ok += 1;
  });
  document.body.setAttribute('data-sections-ok', String(ok));
});
</script>"""


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    _plt().close(fig)
    return buf.getvalue()


def _round_dirs(root: Path) -> dict[int, Path]:
    found = {}
    for p in root.glob("round-*"):
        m = re.fullmatch(r"round-(\d+)", p.name)
        if m and (p / MANIFEST).exists():
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def _fmt(v, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


# ----------------------------------------------------------------------------- data mix

def mix_section(manifests: dict[int, dict]) -> str:
    if not manifests:
        return "<p>No round builds found.</p>"
    rows, shares = [], {}
    for n, m in manifests.items():
        mix = m.get("mix") or {}
        shares[n] = {src: v["achieved_ratio"] for src, v in mix.items()}
        for src, v in mix.items():
            rows.append([f"round {n}", src, v["available_tokens"], v["target_tokens"], v["tokens"], f"{v['target_ratio']:.3f}",
                         f"{v['achieved_ratio']:.3f}", f"{v['upsample']:.2f}x"])
    plt = _plt()
    sources = sorted({s for sh in shares.values() for s in sh})
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.55 * len(shares)), dpi=110)
    labels = [f"round {n}" for n in shares]
    left = [0.0] * len(shares)
    for i, src in enumerate(sources):
        vals = [shares[n].get(src, 0.0) for n in shares]
        ax.barh(labels, vals, left=left, color=f"C{i}", label=src)
        left = [a + b for a, b in zip(left, vals)]
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("share of the round's training tokens")
    ax.legend(fontsize=8, ncol=len(sources), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    totals = [[f"round {n}", m["totals"]["documents"], m["totals"]["tokens"], f"{m['totals']['padding_fraction']:.4f}",
               sum(e.get("tokens", 0) for e in m.get("validation", []))] for n, m in manifests.items()]
    return (htmlpage.png_figure(_png(fig), "data mix", "Achieved token share of each source per round (the paper: round 2 "
                                "single:RefSeq:Gene = 10:2:1, round 3 RefSeq:Gene:web = 1:1:10).")
            + htmlpage.table(["round", "source", "available tokens", "target tokens", "tokens", "target ratio", "achieved ratio", "upsample"],
                             rows, num={2, 3, 4, 5, 6, 7})
            + htmlpage.table(["round", "documents", "training tokens", "padding", "validation tokens"], totals, num={1, 2, 3, 4}))


# ----------------------------------------------------------------------------- lengths

def segment_lengths(round_dir: Path) -> dict[str, list[int]]:
    """Residues per segment of each distinct sample in a round (upsampled copies once)."""
    from bsm_data.query import connect

    con = connect(str(round_dir))
    # upsampled copies are the same sample with a "#r<copy>" suffix (bsm_data.rounds.draw)
    rows = con.execute("SELECT modality, length FROM (SELECT DISTINCT regexp_replace(sample_id, '#r[0-9]+$', '') AS id, position, "
                       "modality, length FROM segments)").fetchall()
    out: dict[str, list[int]] = {m: [] for m in MODALITIES}
    for modality, length in rows:
        out.setdefault(modality, []).append(int(length))
    return out


def lengths_section(round_dirs: dict[int, Path]) -> str:
    import numpy as np

    if not round_dirs:
        return "<p>No round builds found.</p>"
    per_round = {n: segment_lengths(d) for n, d in round_dirs.items()}
    plt = _plt()
    fig, axes = plt.subplots(1, len(MODALITIES), figsize=(11, 3.2), dpi=110)
    table = []
    for ax, modality in zip(axes, MODALITIES):
        vals = [v for r in per_round.values() for v in r.get(modality, [])]
        if not vals:
            ax.set_title(f"{modality}: none")
            continue
        bins = np.unique(np.geomspace(max(1, min(vals)), max(vals) + 1, 40).astype(int))
        for i, (n, r) in enumerate(per_round.items()):
            if r.get(modality):
                ax.hist(r[modality], bins=bins, histtype="step", lw=1.3, color=f"C{i}", label=f"round {n}")
        ax.set_xscale("log")
        ax.set_title(modality)
        ax.set_xlabel("residues per segment")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("segments")
    fig.tight_layout()
    for n, r in per_round.items():
        for modality in MODALITIES:
            v = np.asarray(r.get(modality, []))
            if len(v):
                table.append([f"round {n}", modality, len(v), int(v.sum()), int(np.median(v)), int(np.percentile(v, 90)), int(v.max())])
    return (htmlpage.png_figure(_png(fig), "length distributions",
                                "Segment lengths per modality (distinct samples; long genes are cut into aligned windows that fit 1024 tokens).")
            + htmlpage.table(["round", "modality", "segments", "residues", "median", "p90", "max"], table, num={2, 3, 4, 5, 6}))


# ----------------------------------------------------------------------------- contamination

def contamination_section(root: Path, manifests: dict[int, dict]) -> str:
    rounds, tasks = [], {}
    for n, m in manifests.items():
        d = m.get("decontamination")
        if not d:
            rounds.append([f"round {n}", "not decontaminated", "", "", ""])
            continue
        summary_path = root / f"round-{n}" / "report" / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        by_source = ", ".join(f"{k}={v}" for k, v in summary.get("removed_by_source", {}).items()) or "-"
        report = f"round-{n}/report/contamination.html"  # relative: the page sits in the same directory
        rounds.append([f"round {n}", d.get("samples_checked"), d.get("samples_removed"), by_source, htmlpage.link(report, report)])
        for t in summary.get("tasks", []):
            key = (t["task"], t["split"])
            tasks.setdefault(key, {"items": t["items"]})[n] = (t["items_hit"], t["samples_removed"])
    if not rounds:
        return "<p>No round builds found.</p>"
    head = ["task", "split", "items"] + [f"round {n}: items hit / samples removed" for n in manifests]
    body = [[task, split, v["items"], *(f"{v[n][0]} / {v[n][1]}" if n in v else "-" for n in manifests)]
            for (task, split), v in sorted(tasks.items())]
    return (htmlpage.table(["round", "samples checked", "samples removed", "removed by source", "full report"], rounds, num={1, 2})
            + "<p class=\"note\">Every training sample is checked against every registered evaluation item (k-mers on both "
              "strands, ungapped identity for short items); a matching sample is removed whole. The full reports list each "
              "match with its evidence; query them with <code>bsm query \"SELECT * FROM contamination\" --data DIR/round-N/report</code>.</p>"
            + (htmlpage.table(head, body, num=set(range(2, len(head)))) if body else "<p>No evaluation items hit.</p>"))


# ----------------------------------------------------------------------------- training

def _metrics(run_dir: Path) -> list[dict]:
    from .metrics import read_metrics

    p = run_dir / "metrics.jsonl"
    return read_metrics(p) if p.exists() else []


def loss_series(runs: dict[int, Path]) -> dict[int, dict]:
    """Per round: training tokens counted from the start of round 1 (``x``, rounds in sequence)
    with the training loss of each step, and the validation records placed at their step."""
    series, offset = {}, 0
    for n, d in runs.items():
        recs = _metrics(d)
        train = [r for r in recs if r.get("kind") == "train"]
        tokens_at = {r["step"]: r["tokens"] for r in train}
        series[n] = {
            "x": [offset + r["tokens"] for r in train], "loss": [r["loss"] for r in train],
            "val": [{**r, "x": offset + tokens_at.get(r["step"], 0)} for r in recs if r.get("kind") == "val"],
            "last": train[-1] if train else {},
            "step_time_s": sum(r.get("step_time_s", 0.0) for r in train),  # survives a resume, unlike elapsed_s
        }
        offset += train[-1]["tokens"] if train else 0
    return series


def training_section(runs: dict[int, Path]) -> str:
    series = loss_series({n: d for n, d in runs.items() if (d / "metrics.jsonl").exists()})
    if not series:
        return "<p>No training runs found.</p>"
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=110)
    table, labelled = [], set()
    for i, (n, s) in enumerate(series.items()):
        ax.plot([x / 1e6 for x in s["x"]], s["loss"], color=f"C{i}", lw=1, label=f"round {n} train")
        for r in s["val"]:
            for modality in MODALITIES:
                v = r.get(f"loss_{modality}")
                if v is not None and math.isfinite(v):
                    ax.plot(r["x"] / 1e6, v, "o", color=COLORS[modality], ms=5, label=None if modality in labelled else f"val {modality}")
                    labelled.add(modality)
        if s["x"]:
            ax.axvline(s["x"][-1] / 1e6, color="gray", lw=0.6, ls=":")
        last, last_val = s["last"], (s["val"][-1] if s["val"] else {})
        table.append([f"round {n}", last.get("step", 0), last.get("tokens", 0), _fmt(last.get("loss")),
                      *(_fmt(last_val.get(f"loss_{m}")) for m in ("all", *MODALITIES)), _fmt(s["step_time_s"], 1)])
    ax.set_xlabel("training tokens (millions, rounds in sequence)")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return (htmlpage.png_figure(_png(fig), "loss curves", "Training loss per step and validation loss per modality at the end of "
                                "each round (each round starts from the previous round's weights; dotted lines mark round ends).")
            + htmlpage.table(["round", "steps", "tokens", "final train loss", "val loss (all)", "val dna", "val rna", "val protein", "step time (s)"],
                             table, num=set(range(1, 9))))


# ----------------------------------------------------------------------------- evaluation

def evaluation_section(results: dict | None) -> str:
    if not results:
        return "<p>No evaluation results found.</p>"
    body = []
    for r in results.get("rows", []):
        if "error" in r:
            body.append([r["task"], r.get("setting", ""), "error", r["error"], "", "", "", ""])
            continue
        s, b = r.get("score"), r.get("baseline")
        lower_better = str(r.get("metric", "")).startswith("perplexity")
        better = "" if s is None or b is None else ("model" if (s < b if lower_better else s > b) else "baseline" if s != b else "tie")
        body.append([r["task"], r["setting"], r["metric"], _fmt(s), _fmt(b), r.get("baseline_name", ""), r.get("n_items", ""), better])
    m = results.get("model") or {}
    lead = (f"<p>Checkpoint <code>{escape(str(m.get('checkpoint')))}</code> (step {m.get('step')}, "
            f"{(m.get('params') or 0) / 1e6:.2f}M parameters). Each task is scored against a non-neural baseline on the same "
            "items (k-mer logistic regression or ridge, n-gram language model, Markov or BLOSUM62 scores).</p>")
    return lead + htmlpage.table(["task", "setting", "metric", "model", "baseline", "baseline method", "test items", "better"], body, num={3, 4, 6})


def icl_section(eval_dir: Path, results: dict | None) -> str:
    png = eval_dir / "central_dogma_icl.png"
    task = (results or {}).get("tasks", {}).get("central_dogma_icl")
    if not png.exists() or not task:
        return "<p>The Central Dogma few-shot task was not run.</p>"
    curve = task.get("curve", [])
    rows = [[c["k"], _fmt(c.get("accuracy")), _fmt(c.get("auroc")), _fmt(c.get("mean_k_eff"), 2)] for c in curve]
    return (htmlpage.png_figure(png.read_bytes(), "central dogma ICL curve", "; ".join(task.get("notes", [])))
            + htmlpage.table(["k (demonstrations)", "accuracy", "AUROC", "mean demonstrations that fit"], rows, num={0, 1, 2, 3}))


# ----------------------------------------------------------------------------- page

def render(root: str | os.PathLike, *, title: str = "BSM run report") -> str:
    root = Path(root)
    round_dirs = _round_dirs(root)
    manifests = {n: read_manifest(str(d)) for n, d in round_dirs.items()}
    runs = {n: root / "runs" / f"round-{n}" for n in round_dirs}
    eval_dir = root / "eval"
    results = json.loads((eval_dir / "results.json").read_text()) if (eval_dir / "results.json").exists() else None
    timings = json.loads((root / "timings.json").read_text()) if (root / "timings.json").exists() else None
    bodies = {
        "mix": mix_section(manifests),
        "lengths": lengths_section(round_dirs),
        "contamination": contamination_section(root, manifests),
        "training": training_section(runs),
        "evaluation": evaluation_section(results),
        "icl": icl_section(eval_dir, results),
    }
    nav = "".join(f'<a href="#{sid}">{escape(name)}</a>' for sid, name in SECTIONS)
    intro = f"<h1>{escape(title)}</h1><p class=\"note\">Directory <code>{escape(str(root.resolve()))}</code>.</p><nav>{nav}</nav>"
    if timings:
        intro += htmlpage.table(["stage", "wall time (s)"], [[k, f"{v:.1f}"] for k, v in timings.items()], num={1})
    sections = "".join(f'<section id="{sid}"><h2>{escape(name)}</h2>{bodies[sid]}</section>' for sid, name in SECTIONS)
    return htmlpage.page(title, intro + sections + _CHECK_SCRIPT)


def write_report(root: str | os.PathLike, out: str | os.PathLike | None = None, **kw) -> Path:
    path = Path(out) if out else Path(root) / "report.html"
    atomic_write(str(path), render(root, **kw).encode())
    return path
