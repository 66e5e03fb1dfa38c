"""Round builder: source datasets -> decontaminated, mixed, packed training rounds.

Paper §2.3: round 1 is single-modal data; round 2 mixes single:RefSeq:Gene = 10:2:1; round 3
mixes RefSeq:Gene:web = 1:1:10, upsampling the small, high-quality mixed-modal sources.

Steps, each counted in the round's accounting:

1. ``read``: the samples of every source build directory (its manifest is checked and every
   file's sha256 verified).
2. ``decontam``: whole samples that contain evaluation test items are removed (see
   ``bsm_data.decontam``); this runs before anything is split, mixed or packed.
3. ``split``: a held-out validation split per source, chosen by a seeded hash of the sample's
   ``group_id``, so every window of one gene lands on the same side.
4. ``mix``: each source's training samples are repeated or subsampled to hit its share of the
   round's token budget. Ratios are in tokens. Copies get distinct ids (``...#r2``) and are
   drawn in a seeded order; the last sample may overshoot a target by at most one document.
   The budget defaults to the tokens available (no source is favoured); ``total_tokens``
   fixes it. Achieved ratios and upsampling factors go in the manifest.
5. ``pack``: shared code, train and validation separately.
"""
from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import replace

import pyarrow.parquet as pq

from .accounting import Accounting
from .build import bucket_of, finalize, reject_key, write_bucket
from .pairing import gene_rng
from .records import Reject, Sample
from .shards import clear_for_run, read_manifest, verify_file

PAPER_MIXES: dict[int, dict[str, float]] = {
    1: {"single": 1.0},
    2: {"single": 10.0, "refseq": 2.0, "gene": 1.0},
    3: {"refseq": 1.0, "gene": 1.0, "web": 10.0},
}


def read_source_samples(build_dir: str, acct: Accounting) -> tuple[str, list[Sample]]:
    """The source name and samples of one source build (sha256-checked files only)."""
    manifest = read_manifest(build_dir)
    names = sorted(manifest["sources"])
    if len(names) != 1:
        raise ValueError(f"{build_dir}: a source build holds one source, this one holds {names}")
    stage = acct.stage("read")
    samples = []
    for entry in manifest["files"]["samples"]:
        table = pq.read_table(io.BytesIO(verify_file(build_dir, entry)))
        samples += [Sample.from_row(row) for row in table.to_pylist()]
    stage.take(len(samples))
    stage.emit(len(samples))
    return names[0], samples


def is_validation(seed: int, group_id: str, fraction: float) -> bool:
    return gene_rng(seed, "valid:" + group_id).random() < fraction


def split_validation(samples: list[Sample], *, seed: int, fraction: float, acct: Accounting) -> tuple[list[Sample], list[Sample]]:
    stage = acct.stage("split")
    train, valid = [], []
    for s in samples:
        stage.take()
        stage.emit()
        (valid if is_validation(seed, s.group_id, fraction) else train).append(s)
    stage.note("train", len(train))
    stage.note("valid", len(valid))
    return train, valid


def parse_ratio(text: str) -> tuple[str, float]:
    """``SOURCE=WEIGHT`` from the command line (an argparse type)."""
    import argparse

    name, sep, weight = text.partition("=")
    try:
        if not sep or not name or not float(weight) > 0:
            raise ValueError
        return name, float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--ratio takes SOURCE=WEIGHT with a weight > 0, not {text!r}") from None


def plan_mix(available: dict[str, int], ratios: dict[str, float], total_tokens: int | None = None) -> dict[str, int]:
    """Target tokens per source: ``total * ratio / sum(ratios)``; total defaults to what is available."""
    missing = [s for s in ratios if available.get(s, 0) == 0]
    if missing:
        raise ValueError(f"the mix needs tokens from {missing}, which have none (available: {available})")
    if any(r <= 0 for r in ratios.values()):
        raise ValueError(f"mix ratios must be > 0 (leave a source out instead): {ratios}")
    total = total_tokens if total_tokens is not None else sum(available[s] for s in ratios)
    weight = sum(ratios.values())
    targets = {s: round(total * r / weight) for s, r in ratios.items()}
    empty = [s for s, t in targets.items() if t < 1]
    if empty:
        raise ValueError(f"a budget of {total} tokens gives {empty} no tokens at ratios {ratios}; raise total_tokens")
    return targets


def draw(samples: list[Sample], target_tokens: int, *, seed: int, source: str) -> list[Sample]:
    """Whole passes over the source, then a seeded partial pass, until ``target_tokens`` is reached.

    Pass ``k`` > 0 renames each copy ``<sample_id>#r<k>`` so packed ids stay unique."""
    ordered = sorted(samples, key=lambda s: s.sample_id)
    out, tokens, k = [], 0, 0
    while tokens < target_tokens:
        order = ordered[:]
        gene_rng(seed, f"mix:{source}:{k}").shuffle(order)
        for s in order:
            if tokens >= target_tokens:
                break
            out.append(s if k == 0 else replace(s, sample_id=f"{s.sample_id}#r{k}"))
            tokens += s.n_tokens
        k += 1
    return out


def build_round(
    round_no: int,
    source_dirs: list[str],
    out_dir: str,
    *,
    ratios: dict[str, float] | None = None,
    total_tokens: int | None = None,
    seed: int = 0,
    seq_len: int = 1024,
    num_shards: int = 1,
    valid_fraction: float = 0.01,
    registry: str | None = None,
) -> dict:
    """Write one training round from source build directories (one source each).

    With ``registry`` (an evaluation registry directory, see ``bsm_data.evalsets``) every
    sample is checked against its test items first; contaminated samples are removed whole
    (stage ``decontam``) and the contamination report is written to ``<out_dir>/report/`` and
    listed in the manifest (``files["contamination"]``), so ``bsm query`` and ``bsm validate``
    see it. Without a registry the manifest says decontamination was skipped."""
    ratios = dict(ratios or PAPER_MIXES[round_no])
    clear_for_run(out_dir)
    acct = Accounting()
    decontaminate = None
    if registry is not None:
        from .decontam import ContaminationIndex, Decontaminator

        index = ContaminationIndex.from_registry(registry)
        decontaminate = Decontaminator(index)
    rejects: list[Reject] = []
    by_source: dict[str, list[Sample]] = {}
    sources: dict[str, str] = {}
    for build_dir in source_dirs:
        name, samples = read_source_samples(build_dir, acct)
        if name in by_source:
            raise ValueError(f"source {name!r} given twice: {sources[name]} and {build_dir}")
        sources[name] = build_dir
        if name not in ratios:
            raise ValueError(f"{build_dir} holds source {name!r}, which round {round_no}'s mix {ratios} does not use")
        if decontaminate is not None:
            kept = []
            for item in decontaminate(samples, acct):
                (kept if isinstance(item, Sample) else rejects).append(item)
            samples = kept
        by_source[name] = samples
    unknown = set(ratios) - set(by_source)
    if unknown:
        raise ValueError(f"round {round_no} mixes {sorted(ratios)}; no build directory given for {sorted(unknown)}")

    train: dict[str, list[Sample]] = {}
    valid: list[Sample] = []
    for name, samples in by_source.items():
        t, v = split_validation(samples, seed=seed, fraction=valid_fraction, acct=acct)
        train[name], valid = t, valid + v

    available = {name: sum(s.n_tokens for s in t) for name, t in train.items()}
    targets = plan_mix(available, ratios, total_tokens)
    mixed: list[Sample] = []
    mix = acct.stage("mix")
    report = {}
    for name in sorted(train):
        drawn = draw(train[name], targets[name], seed=seed, source=name)
        mix.take(len(train[name]))
        mix.emit(len(train[name]))
        mix.note(f"documents:{name}", len(drawn))
        mixed += drawn
        got = sum(s.n_tokens for s in drawn)
        report[name] = {"available_tokens": available[name], "target_tokens": targets[name], "tokens": got, "upsample": round(got / available[name], 6)}
    total = sum(r["tokens"] for r in report.values())
    weight = sum(ratios.values())
    for name, r in report.items():
        r["target_ratio"] = round(ratios[name] / weight, 6)
        r["achieved_ratio"] = round(r["tokens"] / total, 6)

    buckets: dict[tuple[str, int], list] = defaultdict(list)
    for s in mixed:
        buckets[("train", bucket_of(s.sample_id, num_shards))].append(s)
    for s in valid:
        buckets[("valid", bucket_of(s.sample_id, num_shards))].append(s)
    reject_buckets: dict[int, list] = defaultdict(list)
    for r in rejects:
        reject_buckets[bucket_of("|".join(reject_key(r)), num_shards)].append(r)
    results = [
        write_bucket(out_dir, b, buckets[(split, b)], reject_buckets[b] if split == "train" else [], seed=seed, seq_len=seq_len, split=split)
        for split in ("train", "valid")
        for b in range(num_shards)
    ]
    options = {
        "round": round_no,
        "sources": {k: sources[k] for k in sorted(sources)},
        "ratios": ratios,
        "total_tokens": total_tokens,
        "valid_fraction": valid_fraction,
        "num_shards": num_shards,
    }
    extra = {"round": round_no, "mix": report, "decontamination": {"skipped": True}}
    extra_files = {}
    if decontaminate is not None:
        from .decontam import summarize, write_report

        summary = summarize(index, decontaminate.matches, acct)
        extra_files["contamination"] = [write_report(out_dir, decontaminate.matches, summary)]
        extra["decontamination"] = {
            "registry": registry,
            "samples_checked": summary["samples_checked"],
            "samples_removed": summary["samples_removed"],
            "tasks": {t["task"] + "/" + t["split"]: {k: t[k] for k in ("items", "items_hit", "samples_removed")} for t in summary["tasks"]},
            "report": "report/contamination.html",
        }
    return finalize(
        out_dir, results, acct, pipeline=f"round-{round_no}", options={**options, "registry": registry}, seed=seed,
        seq_len=seq_len, upsample={k: v["upsample"] for k, v in report.items()}, extra=extra, extra_files=extra_files,
    )


def mix_error(manifest: dict) -> float:
    """Largest relative deviation of an achieved ratio from its target (0.01 = 1%)."""
    return max(abs(r["achieved_ratio"] - r["target_ratio"]) / r["target_ratio"] for r in manifest["mix"].values())

