"""``bsm experiment mixed-vs-single``: does mixing RefSeq and Gene pairs into single-modal data
help a small model at an equal token budget? (issue 8; paper §2.3 and Figure 1.)

    bsm experiment mixed-vs-single --out runs/mvs --seeds 3 --steps 150
    bsm experiment mixed-vs-single --sources my/sources --out runs/mine --seeds 5 --steps 2000 --lr 3e-4

For every seed, two models with the same initial weights are trained on the same number of
tokens; they differ only in their training data:

  arm     training mix (token ratios)                 paper
  single  single-modal data only                      round 1's data
  mixed   single : RefSeq pairs : Gene pairs = 10:2:1 round 2's ratio (``--ratio`` overrides)

Design, and why:

- Data. Both arms are ``bsm_data.rounds.build_round`` outputs of the same source builds with
  the same data seed, validation fraction and decontamination registry. Decontamination
  matters here: the Central Dogma test genes are RefSeq genes, so without it the mixed arm
  would be trained on the test pairs it is then scored on. Each arm's round is built with
  ``total_tokens`` = the training budget (steps x batch x seq_len), so each model sees its
  round about once (up to the last packed row), in the exact mix, not a sample of a larger round.
- Same initial weights: the trainer seeds torch with the training seed right before building
  the model, so seed s gives both arms identical weights at step 0; the data order differs
  only because the data differ. Seeds 0 .. N-1 vary initialisation and order; the data seed
  (validation split, mix draw) stays fixed, so every seed is scored on the same rows.
- Validation loss on the *same* rows for both arms. The validation split is chosen per sample
  group by a seeded hash, so the single-modal source's held-out samples are the same in both
  builds; the single arm's validation shards (exactly those samples) are the common set, and
  the run checks that the mixed build holds the same single-modal validation samples. Loss
  per modality (dna, rna, protein: the modality of each target token) is
  ``bsm_model.eval.perplexity.model_nll``, the trainer's validation loss. A third build, the
  pair sources alone, gives the held-out RefSeq + Gene pairs (the mixed arm's pair validation
  samples) as a second set: how well each arm models cross-modal documents it never trained
  on. Documents are attended to on their own, so a document's loss does not depend on what it
  is packed with.
- Central Dogma few-shot: ``bsm_model.eval.icl.run_icl`` (threshold chosen on the validation
  split per k, test accuracy and AUROC), with the same items and demonstrations for every run
  (evaluation seed fixed); always-negative accuracy (2 of 3 items are negative) is the floor.
- Learning rate: the paper's (2e-5 peak) barely moves a tiny model in a few hundred CPU steps,
  so both arms use an explicit schedule: 1e-3 peak, linear warmup over 5 % of the steps,
  cosine decay to 1e-4 (the tiny model's training loss falls from 4.1 to about 1.5 in 120 steps
  of 8 rows with it).
- Spread: per seed, difference = mixed - single for every metric; reported with the mean, the
  sample standard deviation (n - 1), min and max over seeds, and in how many seeds the mixed arm
  is better. The verdict is computed from those counts: a difference is called consistent only
  when every seed agrees in sign. At least 3 seeds are required.
- Resumable: builds, runs and evaluations are keyed by what they depend on and reused; a run
  that stopped resumes from its checkpoint (``bsm_model.train``); more seeds can be added to a
  finished experiment. Changing the training settings under the same --out is refused.

Layout under --out: ``sources/`` (when built here), ``registry/`` (when built here),
``data/{single,mixed,pairs}/`` (round builds), ``runs/seed-S/{single,mixed}/`` (trainer runs,
each with ``experiment-eval.json``), ``experiment.json``, ``experiment.md``, ``experiment.png``.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bsm_data.shards import atomic_write

from .checkpoint import sha256_file

ARMS = ("single", "mixed")
MODALITIES = ("dna", "rna", "protein")
VAL_KEYS = (*MODALITIES, "all")
MIN_SEEDS = 3
SEQ_LEN = 1024  # rows of the round builds (bsm_data.rounds.build_round default), the tiny model's context
SOURCE_COMMANDS = {  # bsm data <name> builds a source from the bundled data
    "single": ["data", "single", "--engine", "local"],
    "refseq": ["data", "refseq", "--engine", "local"],
    "gene": ["data", "gene", "--engine", "local"],
}
VAL_SETS = {
    "common": "common single-modal validation rows (identical for both arms)",
    "pairs": "held-out RefSeq + Gene pair documents (the mixed arm's pair validation samples)",
}


def _paper_round2() -> dict[str, float]:
    from bsm_data.rounds import PAPER_MIXES

    return dict(PAPER_MIXES[2])


@dataclass
class ExperimentConfig:
    out: str
    sources: str | None = None  # directory holding single/ refseq/ gene/ source builds; None: build them under out
    registry: str | None = None  # decontamination registry; None: every built-in test set, built under out
    data: str | None = None  # data directory of the evaluation sets (default: bundled data/)
    seeds: int = 3
    steps: int = 150
    batch_size: int = 8
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int | None = None  # None: 5 % of the steps
    model: str = "tiny"
    mix: dict = field(default_factory=_paper_round2)  # the mixed arm's token ratios
    data_seed: int = 0
    valid_fraction: float = 0.05
    num_shards: int = 1
    val_rows: int = 256  # at most this many rows per validation set (a seeded subset, the same for every run)
    icl_k: tuple = (0, 2, 4)
    max_items: int | None = 100  # Central Dogma items per split
    eval_seed: int = 0
    threads: int = 0
    device: str = "auto"  # auto: CUDA (bf16 autocast) when available, else CPU (fp32); see resolved_device

    def check(self) -> None:
        if self.seeds < MIN_SEEDS:
            raise ValueError(f"--seeds must be at least {MIN_SEEDS}: the spread over seeds is part of the result")
        if "single" not in self.mix or len(self.mix) < 2:
            raise ValueError(f"the mixed arm needs single-modal data and at least one pair source, not {self.mix}")
        if any(w <= 0 for w in self.mix.values()):
            raise ValueError(f"mix weights must be positive: {self.mix}")
        for name in ("steps", "batch_size", "val_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 < self.valid_fraction < 1:
            raise ValueError("valid_fraction must be in (0, 1)")

    @property
    def warmup(self) -> int:
        return self.warmup_steps if self.warmup_steps is not None else max(1, round(0.05 * self.steps))

    @property
    def pair_sources(self) -> list[str]:
        return sorted(s for s in self.mix if s != "single")

    def arm_ratios(self, arm: str) -> dict[str, float]:
        return {"single": 1.0} if arm == "single" else {k: float(v) for k, v in self.mix.items()}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["icl_k"] = list(self.icl_k)
        d["warmup_steps"] = self.warmup
        return d

    def training_key(self) -> dict:
        """What the trained models depend on: changing any of it needs a new --out."""
        keys = ("sources", "registry", "steps", "batch_size", "lr", "min_lr", "model", "mix", "data_seed",
                "valid_fraction", "num_shards")
        return {**{k: getattr(self, k) for k in keys}, "warmup_steps": self.warmup, "device": resolved_device(self)}


def resolved_device(cfg: ExperimentConfig) -> str:
    """The device every run trains and is evaluated on: one for all arms and seeds, recorded in the
    keys, so a resumed experiment never mixes CPU fp32 and CUDA bf16 results."""
    if cfg.device != "auto":
        return cfg.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def log(msg: str) -> None:
    print(f"[experiment] {msg}", file=sys.stderr, flush=True)


def _write_json(path: Path, obj) -> None:
    atomic_write(str(path), (json.dumps(obj, indent=1, allow_nan=True) + "\n").encode())


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------- data


def prepare_sources(cfg: ExperimentConfig) -> dict[str, str]:
    """Source build directory per source name: under --sources, or built here from the bundled
    data with the ``bsm data`` commands (reused when their manifest exists)."""
    names = sorted(cfg.mix)
    if cfg.sources is not None:
        dirs = {n: os.path.join(cfg.sources, n) for n in names}
        missing = [d for d in dirs.values() if not os.path.isfile(os.path.join(d, "manifest.json"))]
        if missing:
            raise ValueError(f"--sources {cfg.sources} lacks source builds {missing} (build them with `bsm data {{single,refseq,gene}} --output DIR`)")
        return dirs
    unknown = [n for n in names if n not in SOURCE_COMMANDS]
    if unknown:
        raise ValueError(f"no bundled build for sources {unknown}; pass --sources DIR holding them")
    from bsm_data.cli import main as bsm_main

    dirs = {}
    for n in names:
        d = os.path.join(cfg.out, "sources", n)
        if not os.path.isfile(os.path.join(d, "manifest.json")):
            argv = [*SOURCE_COMMANDS[n], "--output", d, "--seed", str(cfg.data_seed), "--num-shards", str(cfg.num_shards)]
            log(f"building source {n}: bsm {' '.join(argv)}")
            with contextlib.redirect_stdout(sys.stderr):
                bsm_main(argv)
        dirs[n] = d
    return dirs


def prepare_registry(cfg: ExperimentConfig) -> str:
    if cfg.registry is not None:
        if not os.path.isfile(os.path.join(cfg.registry, "registry.json")):
            raise ValueError(f"--registry {cfg.registry} is not a registry (no registry.json; build one with `bsm registry build`)")
        return cfg.registry
    from bsm_data.evalsets import build_builtin_registry

    reg = os.path.join(cfg.out, "registry")
    if not os.path.isfile(os.path.join(reg, "registry.json")):
        log(f"building the decontamination registry (every built-in test set) in {reg}")
        build_builtin_registry(reg, data_dir=cfg.data)
    return reg


def build_plans(cfg: ExperimentConfig) -> dict[str, dict]:
    """Round-builder arguments of the three builds: the two arms and the pair-only set."""
    budget = cfg.steps * cfg.batch_size * SEQ_LEN
    plans = {arm: {"round": 1 if arm == "single" else 2, "ratios": cfg.arm_ratios(arm), "total_tokens": budget} for arm in ARMS}
    # Only its validation split is used; one row's worth per source keeps its training split tiny
    # while every source still gets a non-empty share of the mix.
    plans["pairs"] = {"round": 2, "ratios": {s: float(cfg.mix[s]) for s in cfg.pair_sources},
                      "total_tokens": len(cfg.pair_sources) * SEQ_LEN}
    return plans


def build_data(cfg: ExperimentConfig, sources: dict[str, str], registry: str) -> dict[str, dict]:
    """Build (or reuse) ``data/{single,mixed,pairs}``; returns per build its directory and manifest."""
    from bsm_data.rounds import build_round
    from bsm_data.shards import read_manifest

    reg_sha = sha256_file(os.path.join(registry, "registry.json"))
    out = {}
    for name, plan in build_plans(cfg).items():
        d = os.path.join(cfg.out, "data", name)
        names = sorted(plan["ratios"])
        key = {**plan, "seed": cfg.data_seed, "valid_fraction": cfg.valid_fraction, "num_shards": cfg.num_shards,
               "registry_sha256": reg_sha, "sources": {n: sha256_file(os.path.join(sources[n], "manifest.json")) for n in names}}
        marker = Path(cfg.out, "data", f"{name}.key.json")
        if _read_json(marker) == key and os.path.isfile(os.path.join(d, "manifest.json")):
            log(f"data {name}: reusing {d}")
        else:
            marker.unlink(missing_ok=True)
            t0 = time.perf_counter()
            log(f"data {name}: building {d} (ratios {plan['ratios']}, {plan['total_tokens']} tokens)")
            build_round(plan["round"], [sources[n] for n in names], d, ratios=plan["ratios"], total_tokens=plan["total_tokens"],
                        seed=cfg.data_seed, num_shards=cfg.num_shards, valid_fraction=cfg.valid_fraction, registry=registry)
            marker.parent.mkdir(parents=True, exist_ok=True)
            _write_json(marker, key)
            log(f"data {name}: built in {time.perf_counter() - t0:.1f}s")
        out[name] = {"dir": d, "manifest": read_manifest(d)}
    return out


def validation_samples(build_dir: str) -> dict[str, list[str]]:
    """Sorted sample ids of a round's validation split, per source (sha256-checked files)."""
    import pyarrow.parquet as pq

    from bsm_data.shards import read_manifest, verify_file

    by_source: dict[str, list[str]] = {}
    for entry in read_manifest(build_dir)["files"].get("valid_samples", []):
        t = pq.read_table(io.BytesIO(verify_file(build_dir, entry)), columns=["sample_id", "source"])
        for sid, src in zip(t.column("sample_id").to_pylist(), t.column("source").to_pylist()):
            by_source.setdefault(src, []).append(sid)
    return {k: sorted(v) for k, v in by_source.items()}


def _ids_digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def check_validation_sets(builds: dict[str, dict], pair_sources: list[str]) -> dict:
    """The common set (single arm's validation) must be the mixed arm's single-modal validation
    samples, and the pairs set its pair validation samples; raises otherwise."""
    v = {name: validation_samples(b["dir"]) for name, b in builds.items()}
    if set(v["single"]) != {"single"}:
        raise RuntimeError(f"single arm validation holds sources {sorted(v['single'])}")
    common = v["single"]["single"]
    if v["mixed"].get("single", []) != common:
        raise RuntimeError("the mixed arm's single-modal validation samples differ from the single arm's: "
                           "the arms were built with different sources, seeds, fractions or registries")
    pairs = sorted(i for s in pair_sources for i in v["pairs"].get(s, []))
    if sorted(i for s in pair_sources for i in v["mixed"].get(s, [])) != pairs:
        raise RuntimeError("the pair build's validation samples differ from the mixed arm's pair validation samples")
    if not common or not pairs:
        raise RuntimeError(f"empty validation set (common {len(common)}, pairs {len(pairs)} documents); raise --valid-fraction")
    return {
        "common": {"documents": len(common), "sample_ids_sha256": _ids_digest(common), "manifest": builds["single"]["dir"]},
        "pairs": {"documents": len(pairs), "sample_ids_sha256": _ids_digest(pairs), "manifest": builds["pairs"]["dir"],
                  "by_source": {s: len(v["pairs"].get(s, [])) for s in pair_sources}},
    }


# ----------------------------------------------------------------------------- training


def train_config(cfg: ExperimentConfig, seed: int, manifest: str, run_dir: str):
    from .config import TrainConfig

    return TrainConfig(
        manifest=manifest, out=run_dir, model=cfg.model, steps=cfg.steps, lr=cfg.lr, min_lr=cfg.min_lr, decay="cosine",
        warmup_steps=cfg.warmup, batch_size=cfg.batch_size, seed=seed, threads=cfg.threads, device=resolved_device(cfg),
        val_max_rows=0,  # validation is this experiment's own, on the common rows
        log_every=max(1, cfg.steps // 10),
    )


def train_run(cfg: ExperimentConfig, arm: str, seed: int, manifest: str, run_dir: str) -> dict:
    """Train (or resume, or reuse) one arm for one seed; returns what it trained on."""
    from . import checkpoint as ckpt
    from . import train
    from .metrics import read_metrics

    tc = train_config(cfg, seed, manifest, run_dir)
    done = ckpt.latest(run_dir)
    reused = done is not None and ckpt.read_state(done)["step"] == cfg.steps
    t0 = time.perf_counter()
    log(f"seed {seed} {arm}: {'reusing' if reused else 'training'} {run_dir}")
    train.run(tc, explicit={"model", "lr", "min_lr", "decay", "warmup_steps"})
    recs = [r for r in read_metrics(Path(run_dir) / "metrics.jsonl") if r.get("kind") == "train"]
    last = recs[-1]
    tail = [r["loss"] for r in recs[-max(1, len(recs) // 10):]]
    return {
        "run_dir": run_dir, "steps": last["step"], "tokens": last["tokens"],
        "target_tokens": int(sum(r["target_tokens"] for r in recs)),
        "final_train_loss": sum(tail) / len(tail), "train_s": sum(r["step_time_s"] for r in recs),
        "reused": reused, "wall_s": time.perf_counter() - t0,
    }


# ----------------------------------------------------------------------------- evaluation


def val_losses(lm, manifest: str, rows: int) -> dict:
    """Mean NLL per target modality (nats/token) on at most ``rows`` validation rows of a manifest
    (the trainer's seeded subset, so every model gets the same rows)."""
    from .data import MODALITY_NAMES, TrainData
    from .eval.perplexity import model_nll

    data = TrainData(manifest, val_max_rows=rows)
    sums, counts = model_nll(lm, data)
    out = {"rows": int(len(data.val_ids))}
    for i, m in enumerate(MODALITY_NAMES[:3]):
        out[m] = {"loss": float(sums[i] / counts[i]) if counts[i] else None, "tokens": int(counts[i])}
    out["all"] = {"loss": float(sums.sum() / counts.sum()) if counts.sum() else None, "tokens": int(counts.sum())}
    return out


class CentralDogma:
    """The Central Dogma task, built once and shared by every run."""

    def __init__(self, cfg: ExperimentConfig):
        self.cfg = cfg
        self._loaded = None

    def get(self, max_tokens: int):
        if self._loaded is None:
            from .eval.tasks import REPO_DATA, load_central_dogma

            self._loaded = load_central_dogma(Path(self.cfg.data) if self.cfg.data else REPO_DATA, seed=self.cfg.eval_seed,
                                              max_tokens=max_tokens)
        return self._loaded

    def majority(self, max_tokens: int) -> float:
        from .eval.metrics import majority_accuracy
        from .eval.tasks import cap_task

        task, _ = self.get(max_tokens)
        capped = cap_task(task, self.cfg.max_items, self.cfg.eval_seed)
        return float(majority_accuracy(capped.labels("train"), capped.labels("test")))


def eval_key(cfg: ExperimentConfig, run_dir: str, sets: dict[str, str]) -> dict:
    from . import checkpoint as ckpt

    return {
        "checkpoint_state_sha256": sha256_file(ckpt.resolve(run_dir) / "state.json"),
        "sets": {k: sha256_file(os.path.join(m, "manifest.json")) for k, m in sets.items()},
        "val_rows": cfg.val_rows, "icl_k": list(cfg.icl_k), "max_items": cfg.max_items, "eval_seed": cfg.eval_seed,
        "data": cfg.data, "device": resolved_device(cfg),
    }


def evaluate_run(cfg: ExperimentConfig, run_dir: str, sets: dict[str, str], cd: CentralDogma) -> dict:
    """Validation loss per set and modality, Central Dogma few-shot per k (cached in the run)."""
    import torch

    from .eval.icl import run_icl
    from .eval.model_io import load

    cache = Path(run_dir) / "experiment-eval.json"
    key = eval_key(cfg, run_dir, sets)
    saved = _read_json(cache)
    if saved and saved.get("key") == key:
        return {**saved["result"], "reused": True}
    t0 = time.perf_counter()
    before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        lm = load(run_dir, resolved_device(cfg))
        val = {}
        for name, manifest in sets.items():
            val[name] = val_losses(lm, manifest, cfg.val_rows)
            log(f"  val {name}: " + ", ".join(f"{m} {val[name][m]['loss']:.4f}" for m in VAL_KEYS if val[name][m]["loss"] is not None))
        _, cdset = cd.get(lm.max_len)
        icl = run_icl(lm, cdset, ks=cfg.icl_k, seed=cfg.eval_seed, max_items=cfg.max_items, log=log)
    finally:
        torch.set_num_threads(before)
    keep = ("k", "accuracy", "auroc", "valid_accuracy", "mean_k_eff", "n_valid", "n_test")
    result = {"val": val, "icl": [{k: rec.get(k) for k in keep} for rec in icl["curve"]],
              "icl_majority_accuracy": cd.majority(lm.max_len), "eval_s": time.perf_counter() - t0}
    _write_json(cache, {"key": key, "result": result})
    return {**result, "reused": False}


def run_metrics(ev: dict) -> dict[str, float | None]:
    """The compared numbers of one run, flat: ``val:SET:MODALITY`` and ``icl:k=K:METRIC``."""
    out = {}
    for s, res in ev["val"].items():
        for m in VAL_KEYS:
            out[f"val:{s}:{m}"] = res[m]["loss"]
    for rec in ev["icl"]:
        out[f"icl:k={rec['k']}:accuracy"] = rec["accuracy"]
        out[f"icl:k={rec['k']}:auroc"] = rec["auroc"]
    return out


def lower_is_better(metric: str) -> bool:
    return metric.startswith("val:")


# ----------------------------------------------------------------------------- aggregation


def _stats(xs: list[float]) -> dict:
    return {"values": xs, "mean": statistics.fmean(xs), "sd": statistics.stdev(xs) if len(xs) > 1 else None,
            "min": min(xs), "max": max(xs)}


def aggregate(per_seed: dict[int, dict[str, dict[str, float | None]]]) -> dict[str, dict]:
    """Per metric over seeds: each arm's mean and sd, the per-seed difference mixed - single
    (mean, sample sd, min, max) and in how many seeds mixed is better, worse or equal.

    ``per_seed[seed][arm][metric]``; a metric missing or None in any run is left out."""
    seeds = sorted(per_seed)
    metrics = [m for m in per_seed[seeds[0]]["single"]
               if all(per_seed[s][a].get(m) is not None and math.isfinite(per_seed[s][a][m]) for s in seeds for a in ARMS)]
    out = {}
    for m in metrics:
        single = [float(per_seed[s]["single"][m]) for s in seeds]
        mixed = [float(per_seed[s]["mixed"][m]) for s in seeds]
        diff = [b - a for a, b in zip(single, mixed)]
        sign = -1.0 if lower_is_better(m) else 1.0
        out[m] = {
            "better": "lower" if sign < 0 else "higher", "seeds": seeds, "n": len(seeds),
            "single": _stats(single), "mixed": _stats(mixed), "diff": _stats(diff),
            "n_better": sum(1 for d in diff if sign * d > 0), "n_worse": sum(1 for d in diff if sign * d < 0),
            "n_same": sum(1 for d in diff if d == 0),
        }
    return out


def outcome(agg: dict) -> str:
    """``better`` / ``worse`` when every seed agrees, else ``inconsistent``."""
    if agg["n_better"] == agg["n"]:
        return "better"
    if agg["n_worse"] == agg["n"]:
        return "worse"
    return "inconsistent"


def metric_label(metric: str) -> str:
    kind, a, b = metric.split(":")
    if kind == "val":
        return f"{b} validation loss ({a})"
    return f"Central Dogma few-shot {b} ({a})"


def describe(metric: str, agg: dict) -> str:
    d = agg["diff"]
    word = "lower" if agg["better"] == "lower" else "higher"
    sd = f" ± {d['sd']:.4f}" if d["sd"] is not None else ""
    verdict = {"better": "consistent gain", "worse": "consistent loss", "inconsistent": "no consistent difference"}[outcome(agg)]
    same = f", equal in {agg['n_same']}" if agg["n_same"] else ""
    return (f"{metric_label(metric)}: mixed {word} in {agg['n_better']}/{agg['n']} seeds{same}, "
            f"mean difference {d['mean']:+.4f}{sd} (min {d['min']:+.4f}, max {d['max']:+.4f}) — {verdict}")


def headline(agg: dict, ks, floor: float | None = None) -> str:
    """One line: the common-set loss per modality and few-shot accuracy per k, by outcome.
    An accuracy whose arms never beat ``floor`` (always-negative accuracy) in any seed is marked."""
    keys = [f"val:common:{m}" for m in MODALITIES] + [f"icl:k={k}:accuracy" for k in ks]
    short = {f"val:common:{m}": f"{m} loss" for m in MODALITIES} | {f"icl:k={k}:accuracy": f"few-shot accuracy k={k}" for k in ks}
    groups = {"better": [], "worse": [], "inconsistent": []}
    for k in keys:
        if k in agg:
            a = agg[k]
            at_floor = floor is not None and k.startswith("icl:") and max(a["single"]["max"], a["mixed"]["max"]) <= floor
            groups[outcome(a)].append(f"{short[k]} {a['diff']['mean']:+.3f} ({a['n_better']}/{a['n']})"
                                      + (" [both arms at or below always-negative]" if at_floor else ""))
    n = next(iter(agg.values()))["n"] if agg else 0
    parts = []
    if groups["better"]:
        parts.append("mixed better in every seed on " + ", ".join(groups["better"]))
    if groups["worse"]:
        parts.append("mixed worse in every seed on " + ", ".join(groups["worse"]))
    if groups["inconsistent"]:
        parts.append("no consistent difference on " + ", ".join(groups["inconsistent"]))
    return f"Over {n} seeds (mixed - single, seeds where mixed is better): " + "; ".join(parts) + "."


# ----------------------------------------------------------------------------- outputs


def command_line(cfg: ExperimentConfig) -> str:
    argv = ["bsm", "experiment", "mixed-vs-single", "--out", cfg.out]
    if cfg.sources:
        argv += ["--sources", cfg.sources]
    if cfg.registry:
        argv += ["--registry", cfg.registry]
    if cfg.data:
        argv += ["--data", cfg.data]
    argv += ["--seeds", str(cfg.seeds), "--steps", str(cfg.steps), "--batch-size", str(cfg.batch_size), "--lr", f"{cfg.lr:g}",
             "--min-lr", f"{cfg.min_lr:g}", "--warmup-steps", str(cfg.warmup), "--model", cfg.model]
    for s, w in cfg.mix.items():
        argv += ["--ratio", f"{s}={w:g}"]
    argv += ["--data-seed", str(cfg.data_seed), "--valid-fraction", f"{cfg.valid_fraction:g}", "--val-rows", str(cfg.val_rows),
             "--icl-k", ",".join(map(str, cfg.icl_k)), "--eval-seed", str(cfg.eval_seed)]
    argv += ["--max-items", str(cfg.max_items or 0), "--num-shards", str(cfg.num_shards)]
    if cfg.threads:
        argv += ["--threads", str(cfg.threads)]
    return shlex.join([*argv, "--device", cfg.device])


def _target_line(targets: dict | None) -> str:
    if not targets:
        return ""
    gap = (targets["mixed"] - targets["single"]) / targets["single"]
    return (f"Non-pad target tokens per run (mean over seeds): single {targets['single']:,}, mixed {targets['mixed']:,} "
            f"({100 * gap:+.2f}%).")


def _fmt(x, digits=4) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _pm(s: dict, digits=4, signed=False) -> str:
    m = f"{s['mean']:+.{digits}f}" if signed else f"{s['mean']:.{digits}f}"
    return m + (f" ± {s['sd']:.{digits}f}" if s["sd"] is not None else "")


def markdown(result: dict) -> str:
    cfg, agg = result["config"], result["aggregate"]
    lines = [
        "# Mixed vs single-modal training data (bsm experiment mixed-vs-single)",
        "",
        f"**Verdict.** {result['headline']}",
        "",
        f"Command: `{result['command']}`  ",
        f"Date: {result['date']}; machine: {result['machine']}; this invocation {result['wall_s']:.0f} s wall; "
        f"training + evaluation summed over runs {result['compute_s']:.0f} s (as they ran, reused ones included).",
        "",
        f"Two `{cfg['model']}` models per seed (seeds {', '.join(map(str, result['seeds']))}), the same initial weights, "
        f"{cfg['steps']} steps x {cfg['batch_size']} rows x 1024 tokens = {result['tokens_per_run']:,} row tokens each; "
        f"AdamW, lr {cfg['lr']:g} peak, {cfg['warmup_steps']} warmup steps, cosine to {cfg['min_lr']:g}. "
        f"Arm `single`: single-modal data only; arm `mixed`: " + ":".join(cfg["mix"]) + " = "
        + ":".join(f"{w:g}" for w in cfg["mix"].values()) + " by tokens. Both decontaminated against the same registry. "
        + _target_line(result.get("target_tokens")),
        "",
        "| arm | source | tokens in the round | achieved share |",
        "|---|---|---|---|",
    ]
    for arm in ARMS:
        for src, r in result["data"][arm]["mix"].items():
            lines.append(f"| {arm} | {src} | {r['tokens']:,} | {r['achieved_ratio']:.3f} |")
    lines += ["", "Validation sets (the same rows for every run):", ""]
    for name, v in result["validation_sets"].items():
        lines.append(f"- `{name}`: {VAL_SETS[name]}; {v['documents']} documents held out, "
                     f"{result['val_rows'][name]} rows scored (sample ids sha256 {v['sample_ids_sha256'][:12]}…)")
    lines.append(f"- Central Dogma few-shot: {result['icl_items']['n_valid']} validation / {result['icl_items']['n_test']} test items; "
                 f"always-negative accuracy {result['icl_majority_accuracy']:.4f}")
    lines += ["", "## Differences (mixed - single) over seeds", "",
              "| metric | better | single | mixed | difference (mean ± sd) | min | max | mixed better in |", "|---|---|---|---|---|---|---|---|"]
    for m, a in agg.items():
        lines.append(f"| {metric_label(m)} | {a['better']} | {_pm(a['single'])} | {_pm(a['mixed'])} | {_pm(a['diff'], signed=True)} | "
                     f"{a['diff']['min']:+.4f} | {a['diff']['max']:+.4f} | {a['n_better']}/{a['n']} |")
    n = len(result["seeds"])
    lines += ["", f"sd: sample standard deviation over seeds (n - 1). With no effect at all, all {n} seeds agree in sign "
              f"by chance with probability {2 / 2 ** n:.3g} (sign test, two-sided), so a consistent sign over {n} seeds is weak "
              "evidence on its own; read it together with the size of the difference against its sd.",
              "", "## Per metric", ""]
    lines += [f"- {describe(m, a)}" for m, a in agg.items()]
    ks = [rec["k"] for rec in result["runs"][0]["eval"]["icl"]] if result["runs"] else []
    head = ["seed", "arm", "final train loss"] + [f"{s} {m}" for s in VAL_SETS for m in VAL_KEYS] + [f"acc k={k}" for k in ks]
    lines += ["", "## Per seed", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["runs"]:
        cells = [str(r["seed"]), r["arm"], _fmt(r["final_train_loss"])]
        cells += [_fmt(r["eval"]["val"][s][m]["loss"]) for s in VAL_SETS for m in VAL_KEYS]
        cells += [_fmt(rec["accuracy"]) for rec in r["eval"]["icl"]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Final train loss: mean of the last 10 % of steps, each arm on its own data (not comparable across arms).",
              "", f"![validation loss and few-shot accuracy]({result['plot']})", ""]
    return "\n".join(lines)


def plot(result: dict, png_path: Path) -> Path:
    """Top row: validation loss per modality per arm for each set (mean ± sd over seeds, seeds as
    dots) and few-shot accuracy against k; bottom row: the per-seed differences mixed - single
    under each set, and few-shot AUROC against k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"single": "#c63", "mixed": "#36c"}
    runs, agg = result["runs"], result["aggregate"]

    def mean_sd(xs):
        return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)

    fig, axes = plt.subplots(2, len(VAL_SETS) + 1, figsize=(13, 8), dpi=110)
    for col, s in enumerate(VAL_SETS):
        ax = axes[0][col]
        for j, arm in enumerate(ARMS):
            for i, m in enumerate(VAL_KEYS):
                xs = [r["eval"]["val"][s][m]["loss"] for r in runs if r["arm"] == arm and r["eval"]["val"][s][m]["loss"] is not None]
                if not xs:
                    continue
                x = i + (j - 0.5) * 0.3
                mu, sd = mean_sd(xs)
                ax.errorbar([x], [mu], yerr=[sd], fmt="o", color=colors[arm], capsize=3, ms=5, label=arm)
                ax.plot([x] * len(xs), xs, ".", color=colors[arm], alpha=0.4, ms=4)
        ax.set_xticks(range(len(VAL_KEYS)), VAL_KEYS)
        ax.set_xlim(-0.6, len(VAL_KEYS) - 0.4)
        ax.set_ylabel("cross-entropy (nats/token)")
        ax.set_title(f"validation loss, {s} rows", fontsize=10)
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        uniq = dict(zip(labels, handles))
        ax.legend(uniq.values(), uniq.keys(), fontsize=8)
        ax = axes[1][col]
        for i, m in enumerate(VAL_KEYS):
            a = agg.get(f"val:{s}:{m}")
            if a is None:
                continue
            d = a["diff"]
            ax.errorbar([i], [d["mean"]], yerr=[d["sd"] or 0.0], fmt="s", color="black", capsize=3, ms=5)
            ax.plot([i] * len(d["values"]), d["values"], ".", color="#888", ms=5)
        ax.axhline(0, color="gray", lw=1)
        ax.set_xticks(range(len(VAL_KEYS)), VAL_KEYS)
        ax.set_xlim(-0.6, len(VAL_KEYS) - 0.4)
        ax.set_ylabel("mixed - single (nats/token)")
        ax.set_title(f"difference per seed, {s} rows (< 0: mixed better)", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    for row, metric in enumerate(("accuracy", "auroc")):
        ax = axes[row][-1]
        for j, arm in enumerate(ARMS):
            arm_runs = [r for r in runs if r["arm"] == arm]
            if not arm_runs:
                continue
            ks = [rec["k"] for rec in arm_runs[0]["eval"]["icl"]]
            vals = [mean_sd([r["eval"]["icl"][i][metric] for r in arm_runs]) for i in range(len(ks))]
            ax.errorbar([k + (j - 0.5) * 0.1 for k in ks], [v[0] for v in vals], yerr=[v[1] for v in vals],
                        fmt="o-", color=colors[arm], capsize=3, ms=4, lw=1.2, label=arm)
            ax.set_xticks(ks)
        floor = result["icl_majority_accuracy"] if metric == "accuracy" else 0.5
        ax.axhline(floor, color="gray", ls="--", lw=1, label="always negative" if metric == "accuracy" else "chance")
        ax.set_xlabel("demonstrations k")
        ax.set_ylabel(f"test {metric}")
        ax.set_title(f"Central Dogma few-shot {metric}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"mixed vs single-modal data: {result['config']['model']}, {result['tokens_per_run']:,} tokens per run, "
                 f"{len(result['seeds'])} seeds (mean ± sd)", fontsize=10)
    fig.tight_layout()
    tmp = png_path.with_name(f".tmp-{png_path.name}")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, png_path)
    return png_path


def machine(cfg: ExperimentConfig) -> str:
    device = resolved_device(cfg)
    if device == "cuda":
        import torch

        device = f"CUDA ({torch.cuda.get_device_name()}, bf16 autocast)"
    return f"{os.cpu_count()}-core {platform.machine()} {platform.system()}; runs on {device}"


# ----------------------------------------------------------------------------- the experiment


def check_out_dir(cfg: ExperimentConfig) -> None:
    """Refuse to mix runs of other training settings into one --out."""
    path = Path(cfg.out, "experiment-config.json")
    saved = _read_json(path)
    key = cfg.training_key()
    if saved is not None and saved != key:
        diff = ", ".join(f"{k}: {saved.get(k)!r} -> {key.get(k)!r}" for k in key if saved.get(k) != key.get(k))
        raise ValueError(f"{cfg.out} holds an experiment with other settings ({diff}); use a new --out")
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    _write_json(path, key)


def run_experiment(cfg: ExperimentConfig) -> dict:
    """Build, train, evaluate and report; returns what experiment.json holds."""
    import torch

    cfg.check()
    t_start = time.perf_counter()
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    check_out_dir(cfg)
    out = Path(cfg.out)
    sources = prepare_sources(cfg)
    registry = prepare_registry(cfg)
    builds = build_data(cfg, sources, registry)
    vsets = check_validation_sets(builds, cfg.pair_sources)
    log(f"validation: common {vsets['common']['documents']} documents, pairs {vsets['pairs']['documents']} documents; "
        "the mixed arm's single-modal validation samples are the single arm's")
    sets = {"common": builds["single"]["dir"], "pairs": builds["pairs"]["dir"]}
    cd = CentralDogma(cfg)
    runs, per_seed = [], {}
    for seed in range(cfg.seeds):
        for arm in ARMS:
            run_dir = str(out / "runs" / f"seed-{seed}" / arm)
            tr = train_run(cfg, arm, seed, builds[arm]["dir"], run_dir)
            ev = evaluate_run(cfg, run_dir, sets, cd)
            log(f"seed {seed} {arm}: " + ", ".join(f"{m} {ev['val']['common'][m]['loss']:.4f}" for m in MODALITIES
                                                  if ev["val"]["common"][m]["loss"] is not None)
                + "; few-shot accuracy " + ", ".join(f"k={r['k']} {r['accuracy']:.3f}" for r in ev["icl"]))
            runs.append({"seed": seed, "arm": arm, **tr, "eval": ev})
            per_seed.setdefault(seed, {})[arm] = run_metrics(ev)
    tokens = {r["tokens"] for r in runs}
    if len(tokens) != 1:
        raise RuntimeError(f"runs trained on different token counts: {sorted(tokens)}")
    agg = aggregate(per_seed)
    first = runs[0]["eval"]
    result = {
        "experiment": "mixed-vs-single",
        "command": command_line(cfg),
        "date": started,
        "machine": machine(cfg),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "config": cfg.to_dict(),
        "seeds": list(range(cfg.seeds)),
        "tokens_per_run": tokens.pop(),
        # rows are equal by construction; the real budget is the non-pad targets, which padding moves a little
        "target_tokens": {arm: round(statistics.mean(r["target_tokens"] for r in runs if r["arm"] == arm)) for arm in ARMS},
        "sources": sources,
        "registry": registry,
        "data": {name: {"dir": b["dir"], "manifest_sha256": sha256_file(os.path.join(b["dir"], "manifest.json")),
                        "mix": b["manifest"]["mix"], "decontamination": {k: b["manifest"]["decontamination"].get(k)
                                                                          for k in ("samples_checked", "samples_removed")}}
                 for name, b in builds.items()},
        "validation_sets": vsets,
        "val_rows": {s: first["val"][s]["rows"] for s in VAL_SETS},
        "icl_items": {"n_valid": first["icl"][0]["n_valid"], "n_test": first["icl"][0]["n_test"]} if first["icl"] else {},
        "icl_majority_accuracy": first["icl_majority_accuracy"],
        "runs": runs,
        "aggregate": agg,
        "headline": headline(agg, cfg.icl_k, first["icl_majority_accuracy"]),
        "verdicts": {m: outcome(a) for m, a in agg.items()},
        "plot": "experiment.png",
        "wall_s": time.perf_counter() - t_start,
        "compute_s": sum(r["train_s"] + r["eval"]["eval_s"] for r in runs),
    }
    plot(result, out / "experiment.png")
    _write_json(out / "experiment.json", result)
    atomic_write(str(out / "experiment.md"), markdown(result).encode())
    log(f"done in {result['wall_s']:.0f}s: {out / 'experiment.md'}, {out / 'experiment.json'}, {out / 'experiment.png'}")
    return result


# ----------------------------------------------------------------------------- CLI


def config_from_args(args) -> ExperimentConfig:
    d = ExperimentConfig(out=args.out)
    mix = dict(args.ratio) if args.ratio else d.mix
    return ExperimentConfig(
        out=args.out, sources=args.sources, registry=args.registry, data=args.data, seeds=args.seeds, steps=args.steps,
        batch_size=args.batch_size, lr=args.lr, min_lr=args.min_lr, warmup_steps=args.warmup_steps, model=args.model,
        mix=mix, data_seed=args.data_seed, valid_fraction=args.valid_fraction, num_shards=args.num_shards,
        val_rows=args.val_rows, icl_k=args.icl_k, max_items=args.max_items or None, eval_seed=args.eval_seed, threads=args.threads,
        device=args.device,
    )


def cmd_mixed_vs_single(args, rest: list[str]) -> int:
    if rest:
        raise SystemExit(f"bsm experiment mixed-vs-single: unrecognized arguments: {' '.join(rest)}")
    try:
        cfg = config_from_args(args)
        cfg.check()
        run_experiment(cfg)
    except ValueError as e:
        raise SystemExit(f"bsm experiment mixed-vs-single: {e}") from None
    print(Path(args.out, "experiment.md").read_text())
    return 0


def add_experiment_parser(subparsers) -> None:
    from bsm_data.rounds import parse_ratio

    from .eval.cli import parse_ks
    from .model import CONFIGS

    d = ExperimentConfig(out="")
    p = subparsers.add_parser("experiment", help="controlled training experiments")
    sub = p.add_subparsers(dest="experiment", required=True)
    m = sub.add_parser(
        "mixed-vs-single",
        help="train on single-modal data vs single + RefSeq + Gene pairs (10:2:1) at equal tokens; compare over seeds",
        description=__doc__.split("\n\n")[0] + " Writes experiment.json, experiment.md and experiment.png under --out; "
        "a rerun reuses finished builds, runs and evaluations.",
    )
    m.add_argument("--out", required=True, help="experiment directory")
    m.add_argument("--sources", help="directory holding the source builds single/ refseq/ gene/ (outputs of bsm data ...); "
                   "default: build them from the bundled data under OUT/sources")
    m.add_argument("--registry", help="decontamination registry (default: every built-in test set, built into OUT/registry)")
    m.add_argument("--data", help="data directory of the evaluation sets (default: bundled data/)")
    m.add_argument("--seeds", type=int, default=d.seeds, help=f"training seeds 0..N-1, at least {MIN_SEEDS} (default {d.seeds})")
    t = m.add_argument_group("training (identical for both arms)")
    t.add_argument("--steps", type=int, default=d.steps, help=f"optimizer steps per run (default {d.steps})")
    t.add_argument("--batch-size", type=int, default=d.batch_size, help=f"rows of 1024 tokens per step (default {d.batch_size})")
    t.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr:g}; the paper's 2e-5 barely moves a tiny model)")
    t.add_argument("--min-lr", type=float, default=d.min_lr, help=f"final learning rate of the cosine decay (default {d.min_lr:g})")
    t.add_argument("--warmup-steps", type=int, help="linear warmup steps (default 5%% of --steps)")
    t.add_argument("--model", choices=list(CONFIGS), default=d.model, help=f"model size (default {d.model})")
    t.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads (default: torch's)")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default=d.device,
                   help="where every run trains and is evaluated (default auto: CUDA with bf16 autocast when available)")
    b = m.add_argument_group("data")
    b.add_argument("--ratio", action="append", type=parse_ratio, metavar="SOURCE=WEIGHT",
                   help="the mixed arm's token ratios, repeatable (default the paper's round 2: single=10 refseq=2 gene=1)")
    b.add_argument("--data-seed", type=int, default=d.data_seed, help="validation split and mix draw (default 0)")
    b.add_argument("--valid-fraction", type=float, default=d.valid_fraction, help=f"held-out fraction per source, by group (default {d.valid_fraction:g})")
    b.add_argument("--num-shards", type=int, default=d.num_shards)
    e = m.add_argument_group("evaluation")
    e.add_argument("--val-rows", type=int, default=d.val_rows, help=f"validation rows scored per set (default {d.val_rows})")
    e.add_argument("--icl-k", type=parse_ks, default=d.icl_k, help="Central Dogma demonstration counts (default 0,2,4)")
    e.add_argument("--max-items", type=int, default=d.max_items, help=f"Central Dogma items per split, 0 = all (default {d.max_items})")
    e.add_argument("--eval-seed", type=int, default=d.eval_seed, help="Central Dogma split, negatives, demonstrations, subsets (default 0)")
    m.set_defaults(func=cmd_mixed_vs_single)
