"""``bsm demo``: the whole chain on the bundled real data, each stage through the ``bsm`` command
a user would type, so the demo doubles as a worked example.

    sources   RefSeq pairs (Beam), single-modal corpora, NCBI Gene pairs, web documents (datatrove)
    registry  every bundled evaluation set (the decontamination targets)
    rounds    round 1 single-modal; round 2 single:RefSeq:Gene 10:2:1; round 3 RefSeq:Gene:web
              1:1:10; each decontaminated, with a validation split
    train     the tiny model through rounds 1-3, each round from the previous round's weights
    export    the final checkpoint as a Hugging Face model directory
    eval      the evaluation suite on the final checkpoint, each task against its baseline
    report    OUT/report.html (bsm_model.run_report)

Learning rates: the paper's round schedules (2e-5 -> 1e-5, 1e-5 -> 1e-7, 1e-6 -> 0) are for
110M-270M models trained on billions of tokens; a 0.9M-parameter model trained for a few
hundred steps learns nothing at those rates, so the demo multiplies each round's peak and final
rate by ``--lr-scale`` (default 50), keeping the paper's shape and the ratios between rounds.
A rerun with the same OUT rebuilds the data (byte-identical) and resumes finished training runs.
"""
from __future__ import annotations

import json
import os
import time

ROUND_SOURCES = {1: ["single"], 2: ["single", "refseq", "gene"], 3: ["refseq", "gene", "web"]}
DEFAULT_STEPS = "80,60,20"


def _steps(text: str) -> list[int]:
    try:
        steps = [int(x) for x in text.split(",")]
    except ValueError:
        raise SystemExit(f"bsm demo: --train-steps takes three comma-separated integers, not {text!r}") from None
    if len(steps) != 3 or min(steps) < 1:
        raise SystemExit(f"bsm demo: --train-steps needs three positive step counts (rounds 1, 2, 3), not {text!r}")
    return steps


def plan(args, beam_args: list[str]) -> list[tuple[str, str, list[str]]]:
    """(stage, title, bsm argv) for every step of the demo, in order."""
    out = args.output
    src = {name: os.path.join(out, "sources", name) for name in ("refseq", "single", "gene", "web")}
    registry = os.path.join(out, "registry")
    common = ["--seed", str(args.seed), "--num-shards", str(args.num_shards)]
    steps = [
        ("sources", "RefSeq pairs (Apache Beam, DirectRunner)",
         ["data", "refseq", "--output", src["refseq"], "--workers", str(args.workers), *common, *beam_args]),
        ("sources", "single-modal corpora", ["data", "single", "--engine", "local", "--output", src["single"], *common]),
        ("sources", "NCBI Gene related-sequence pairs", ["data", "gene", "--engine", "local", "--output", src["gene"], *common]),
        ("sources", "FineWeb-Edu-style interleaved web documents (datatrove)", ["data", "web", "--output", src["web"], *common]),
        ("registry", "evaluation registry (decontamination targets)", ["registry", "build", "--output", registry]),
    ]
    for n, names in ROUND_SOURCES.items():
        steps.append((f"round {n}", f"round {n}: decontaminate, split, mix, pack",
                      ["data", "build", "--round", str(n), *[src[x] for x in names], "--output", os.path.join(out, f"round-{n}"),
                       "--registry", registry, "--valid-fraction", "0.05", *common]))
    if args.data_only:
        return steps
    from bsm_model.config import ROUNDS

    previous = None
    for n, n_steps in zip(ROUND_SOURCES, _steps(args.train_steps)):
        run = os.path.join(out, "runs", f"round-{n}")
        preset = ROUNDS[n]
        argv = ["train", "--manifest", os.path.join(out, f"round-{n}"), "--out", run, "--config", "tiny", "--round", str(n),
                "--steps", str(n_steps), "--lr", f"{preset['lr'] * args.lr_scale:g}", "--min-lr", f"{preset['min_lr'] * args.lr_scale:g}",
                "--seed", str(args.seed), "--val-max-rows", str(args.val_rows), "--log-every", "10"]
        if args.threads:
            argv += ["--threads", str(args.threads)]
        if previous:
            argv += ["--init-from", os.path.join(previous, "checkpoint")]
        steps.append((f"train round {n}", f"train the tiny model, round {n}", argv))
        previous = run
    steps.append(("export", "Hugging Face export of the final checkpoint",
                  ["export", "--checkpoint", previous, "--hf", os.path.join(out, "hf"), "--force"]))
    steps.append(("eval", "evaluation suite (each task against a non-neural baseline)",
                  ["eval", "--checkpoint", previous, "--all", "--out", os.path.join(out, "eval"), "--max-items", str(args.eval_items),
                   "--ft-preset", "tiny", "--icl-k", "0,1,2,4", "--seed", str(args.seed)]))
    return steps


def run_demo(args, beam_args: list[str], bsm_main) -> int:
    out = args.output
    timings: dict[str, float] = {}
    failed = []
    start = time.perf_counter()
    for stage, title, argv in plan(args, beam_args):
        print(f"\n=== {title}: bsm {' '.join(argv)}\n", flush=True)
        t0 = time.perf_counter()
        code = bsm_main(argv)
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - t0
        if code:
            failed.append(f"{title} (exit {code})")
            if stage != "eval":  # a failed evaluation task is in the report; anything else stops the chain
                raise SystemExit(f"bsm demo: stage failed: {title}")
    report = None
    if not args.data_only:
        from bsm_model.run_report import write_report

        _write_timings(out, timings)
        t0 = time.perf_counter()
        report = write_report(out, title="bsm demo: the whole chain on bundled real data")
        timings["report"] = time.perf_counter() - t0
    print(f"\n=== bsm demo: done in {time.perf_counter() - start:.0f}s; outputs under {os.path.abspath(out)}\n")
    print(summary(out))
    print("\nwall time per stage: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    print(f"contamination reports: {os.path.join(os.path.abspath(out), 'round-N', 'report', 'contamination.html')}")
    print(f'query them: bsm query "SELECT task, count(*) FROM contamination GROUP BY ALL" --data {os.path.join(out, "round-2", "report")}')
    if report:
        print(f"report: {os.path.abspath(report)}")
    if failed:
        print("failed: " + "; ".join(failed))
        return 1
    return 0


def _write_timings(out: str, timings: dict[str, float]) -> None:
    from .shards import atomic_write

    atomic_write(os.path.join(out, "timings.json"), json.dumps({k: round(v, 2) for k, v in timings.items()}, indent=1).encode())


def summary(out: str) -> str:
    from .shards import read_manifest

    lines = [f"{'build':<16}{'documents':>11}{'tokens':>12}{'padding':>9}{'removed':>9}  mix (achieved token share)"]
    for name in [*(f"sources/{s}" for s in ("refseq", "single", "gene", "web")), *(f"round-{n}" for n in ROUND_SOURCES)]:
        m = read_manifest(os.path.join(out, name))
        t = m["totals"]
        removed = m.get("decontamination", {}).get("samples_removed", "")
        mix = ", ".join(f"{k} {v['achieved_ratio']:.3f}" for k, v in m.get("mix", {}).items())
        lines.append(f"{name.removeprefix('sources/'):<16}{t['documents']:>11}{t['tokens']:>12}{t['padding_fraction']:>9.4f}{removed!s:>9}  {mix}")
    evals = os.path.join(out, "eval", "results.json")
    if os.path.exists(evals):
        lines.append("")
        lines.append(f"{'evaluation':<34}{'model':>10}{'baseline':>10}  metric")
        for r in json.load(open(evals))["rows"]:
            if "error" in r:
                lines.append(f"{r['task']:<34}  error: {r['error']}")
            elif "/" not in r["task"]:
                name = f"{r['task']} {r['setting']}"
                lines.append(f"{name:<34}{_num(r['score']):>10}{_num(r['baseline']):>10}  {r['metric']}")
    return "\n".join(lines)


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def add_demo_parser(sub, bsm_main) -> None:
    demo = sub.add_parser("demo", help="the whole chain on the bundled real data: sources, rounds 1-3, training, evaluation, report.html",
                          description=__doc__.split("\n\n")[0])
    demo.add_argument("--output", default="out/demo")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--num-shards", type=int, default=2)
    demo.add_argument("--workers", type=int, default=1, help="Beam workers for the RefSeq pipeline")
    demo.add_argument("--data-only", action="store_true", help="stop after the three rounds are built")
    demo.add_argument("--train-steps", default=DEFAULT_STEPS, help=f"optimizer steps of rounds 1,2,3 (default {DEFAULT_STEPS}; 8 rows x 1024 tokens each)")
    demo.add_argument("--lr-scale", type=float, default=50.0, help="multiplies the paper's learning rates of each round (default 50, for the tiny model)")
    demo.add_argument("--val-rows", type=int, default=64, help="validation rows per round (default 64)")
    demo.add_argument("--eval-items", type=int, default=40, help="items per split and task in the evaluation (default 40)")
    demo.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    demo.set_defaults(func=lambda args, rest: run_demo(args, rest, bsm_main), beam_passthrough=True)

    rep = sub.add_parser("report", help="(re)write report.html for a directory laid out as bsm demo writes it",
                         description="Reads DIR/round-N (builds), DIR/runs/round-N (training runs), DIR/eval (bsm eval) and writes "
                                     "one self-contained HTML page.")
    rep.add_argument("dir", help="directory holding round-N/, runs/round-N/, eval/")
    rep.add_argument("--out", help="output file (default DIR/report.html)")
    rep.add_argument("--title", default="BSM run report")
    rep.set_defaults(func=cmd_report)


def cmd_report(args, _rest) -> int:
    from bsm_model.run_report import write_report

    print(write_report(args.dir, args.out, title=args.title))
    return 0
