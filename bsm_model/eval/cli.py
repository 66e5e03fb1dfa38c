"""``bsm eval``: run the evaluation suite on a checkpoint and write results.md / results.json.

    bsm eval --checkpoint runs/r2 --all --out eval/r2
    bsm eval --checkpoint runs/r2 --task central_dogma --task zeroshot_protein --out eval/r2 --max-items 200
    bsm eval --checkpoint runs/r2 --task-file LucaOneTasks/dataset/CentralDogma/gene_protein/binary_class \\
             --task-type binary --out eval/cd

``add_eval_parser(subparsers)`` adds the ``eval`` command (its ``func(args, rest)`` refuses
unknown arguments). The test-set registry and decontamination are ``bsm registry`` and
``bsm decontam`` (``bsm_data.evalsets.add_registry_parsers``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

TASKS = ("perplexity", "central_dogma_sft", "central_dogma_icl", "ncrpi", "ppi", "protstab", "ncrnafam",
         "zeroshot_ncrna", "zeroshot_protein")
ALIASES = {"central_dogma": ("central_dogma_sft", "central_dogma_icl"), "zeroshot": ("zeroshot_ncrna", "zeroshot_protein"),
           "all": TASKS}


def expand_tasks(names: list[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        for t in ALIASES.get(n, (n,)):
            if t not in TASKS:
                raise SystemExit(f"bsm eval: unknown task {n!r}; choose from {', '.join((*TASKS, *ALIASES))}")
            if t not in out:
                out.append(t)
    return out


class Runner:
    def __init__(self, args, lm):
        from .tasks import REPO_DATA

        self.args, self.lm = args, lm
        self.data = Path(args.data) if args.data else REPO_DATA
        self.rows: list[dict] = []
        self.tasks: dict[str, dict] = {}
        self.plots: list[str] = []
        self._cd = None
        self.failed = False

    def log(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def ft_config(self):
        from .finetune import config_from

        a = self.args
        return config_from(a.ft_preset, lr=a.ft_lr, batch_size=a.ft_batch_size, epochs=a.ft_epochs, pool=a.ft_pool,
                           head_lr=a.ft_head_lr, max_steps=a.ft_max_steps, seed=a.seed)

    def results(self) -> dict:
        import scipy
        import sklearn
        import torch

        return {"model": self.lm.describe() if self.lm else None, "options": {k: v for k, v in vars(self.args).items() if k not in ("func",) and not callable(v)},
                "versions": {"torch": torch.__version__, "scikit-learn": sklearn.__version__, "scipy": scipy.__version__},
                "rows": self.rows, "tasks": self.tasks, "plots": self.plots}

    def save(self) -> None:
        from . import report

        report.write(self.args.out, self.results())

    # --------------------------------------------------------------------- tasks

    def central_dogma(self):
        if self._cd is None:
            from .tasks import load_central_dogma

            self._cd = load_central_dogma(self.data, seed=self.args.seed, max_tokens=self.lm.max_len if self.lm else 1024)
        return self._cd

    def supervised(self, task, setting: str = "sft") -> None:
        from .baselines import kmer_baseline
        from .finetune import finetune
        from .tasks import cap_task

        t0 = time.perf_counter()
        task = cap_task(task, self.args.max_items, self.args.seed)
        sizes = task.sizes()
        self.log(f"{task.name}: {task.kind}, splits {sizes}")
        base = kmer_baseline(task)
        res = finetune(self.lm, task, self.ft_config(), log=self.log) if self.lm else {"score": None}
        self.rows.append(_row(task.name, setting, task.metric, res["score"], base["score"], base["model"], sizes["test"], sizes,
                              time.perf_counter() - t0, auroc=res.get("auroc"), baseline_auroc=base.get("auroc")))
        self.tasks[task.name] = {"kind": task.kind, "notes": task.notes, "source": task.source, "model": res, "baseline": base,
                                 "classes": task.classes}
        self.log(f"{task.name}: {task.metric} {res['score']} (baseline {base['score']:.4f})")

    def run_task(self, name: str) -> None:
        a = self.args
        if name == "perplexity":
            from .perplexity import run_perplexity

            manifest = a.manifest or (self.lm.train_manifest() if self.lm else None)
            if not manifest:
                raise SystemExit("bsm eval: perplexity needs --manifest (the checkpoint does not name its training manifest)")
            t0 = time.perf_counter()
            res = run_perplexity(self.lm, manifest, max_items=a.max_items, log=self.log)
            for m, rec in res["modalities"].items():
                if rec["tokens"]:
                    self.rows.append(_row("perplexity", m, "perplexity", rec.get("ppl"), rec["baseline_ppl"],
                                          "interpolated Witten-Bell n-gram (train rows)", rec["tokens"],
                                          {"valid": res["rows"]}, time.perf_counter() - t0, unit="tokens"))
            res["notes"] = [f"{res['rows']} rows ({res['row_source']}) of {manifest}; n_items = target tokens of the modality"]
            self.tasks["perplexity"] = res
        elif name == "central_dogma_sft":
            task, _ = self.central_dogma()
            self.supervised(task)
        elif name == "central_dogma_icl":
            self.icl()
        elif name in ("ncrpi", "ppi", "protstab", "ncrnafam"):
            from .tasks import SUPERVISED

            self.supervised(SUPERVISED[name](self.data, seed=a.seed))
        elif name in ("zeroshot_ncrna", "zeroshot_protein"):
            from .tasks import load_dms
            from .zeroshot import run_zeroshot

            t0 = time.perf_counter()
            res = run_zeroshot(self.lm, load_dms(name, self.data), max_items=a.max_items, seed=a.seed, log=self.log)
            base_name = res["sets"][0]["baseline_name"] if res["sets"] else ""
            self.rows.append(_row(name, "zero-shot", "spearman (mean over sets)", res["spearman"], res["baseline"], base_name,
                                  res["n"], {"test": res["n"]}, time.perf_counter() - t0))
            for s in res["sets"]:
                self.rows.append(_row(f"{name}/{s['set']}", "zero-shot", "spearman", s.get("spearman"), s["baseline"], s["baseline_name"],
                                      s["n"], {"test": s["n"]}, s["time_s"]))
            res["notes"] = ["score = mean log-likelihood per token of each variant read alone; Spearman vs measured fitness"]
            self.tasks[name] = res
        else:
            raise SystemExit(f"bsm eval: unknown task {name!r}")

    def icl(self) -> None:
        from . import report
        from .baselines import kmer_baseline
        from .icl import run_icl
        from .metrics import majority_accuracy
        from .tasks import cap_task

        t0 = time.perf_counter()
        task, cd = self.central_dogma()
        if self.lm is None:  # baselines only: the SFT row carries the k-mer baseline
            return
        res = run_icl(self.lm, cd, ks=self.args.icl_k, seed=self.args.seed, max_items=self.args.max_items, log=self.log)
        capped = cap_task(task, self.args.max_items, self.args.seed)
        base = (self.tasks.get("central_dogma_sft") or {}).get("baseline") or kmer_baseline(capped)
        sizes = {"train": len(cd.split("train")), "valid": res["n_valid"], "test": res["n_test"]}
        for rec in res["curve"]:
            self.rows.append(_row("central_dogma_icl", f"k={rec['k']}", "accuracy", rec["accuracy"], base["score"], base["model"],
                                  rec["n_test"], sizes, rec["time_s"], auroc=rec["auroc"], mean_k_eff=rec["mean_k_eff"]))
        sft = next((r["score"] for r in self.rows if r["task"] == "central_dogma_sft" and "score" in r), None)
        majority = majority_accuracy(capped.labels("train"), capped.labels("test"))
        png = report.plot_icl(self.args.out, res["curve"], sft=sft, baseline=base["score"], majority=majority)
        if png:
            self.plots.append(str(png))
        res["notes"] = ["threshold on the mean log-probability of the test protein chosen on the validation split per k; "
                        "demos are correct train pairs (cut to aligned coding windows when they do not fit)",
                        f"majority-class accuracy {majority:.4f}"]
        res["baseline"] = base
        res["stats"] = cd.stats()
        res["time_s"] = time.perf_counter() - t0
        self.tasks["central_dogma_icl"] = res

    def run_file(self, path: str) -> None:
        from .lucaone import load_lucaone

        task = load_lucaone(path, self.args.task_type, seed=self.args.seed, gene_modality=self.args.gene_modality)
        self.supervised(task)


def _row(*a, **kw) -> dict:
    from .report import row

    return row(*a, **kw)


def cmd_eval(args, rest: list[str]) -> int:
    if rest:
        raise SystemExit(f"bsm eval: unrecognized arguments: {' '.join(rest)}")
    if not args.checkpoint and not args.baselines_only:
        raise SystemExit("bsm eval: --checkpoint is required (or --baselines-only)")
    if not args.out:
        raise SystemExit("bsm eval: --out is required")
    names = expand_tasks(list(TASKS) if args.all else (args.task or []))
    if not names and not args.task_file:
        raise SystemExit("bsm eval: give --task NAME (repeatable), --all, or --task-file PATH")
    if args.task_file and not args.task_type:
        raise SystemExit("bsm eval: --task-file needs --task-type binary|multiclass|regression")
    from ..checkpoint import CheckpointError
    from .model_io import load

    lm = None
    if not args.baselines_only:
        try:
            lm = load(args.checkpoint, args.device)
        except CheckpointError as e:
            raise SystemExit(f"bsm eval: {e}") from None
    import torch

    torch.manual_seed(args.seed)
    runner = Runner(args, lm)
    what = f"{lm.path} ({lm.model.num_params() / 1e6:.2f}M parameters, {lm.device})" if lm else "baselines only"
    runner.log(f"bsm eval: {what}; tasks: {', '.join(names + (args.task_file or []))}")
    t0 = time.perf_counter()
    jobs = [(n, runner.run_task) for n in names] + [(p, runner.run_file) for p in (args.task_file or [])]
    for name, fn in jobs:
        try:
            fn(name)
        except SystemExit:
            raise
        except Exception as e:  # one failing task must not lose the others: recorded, exit status 1
            runner.failed = True
            runner.rows.append({"task": name, "setting": "", "error": f"{type(e).__name__}: {e}"})
            runner.log(f"{name}: FAILED {type(e).__name__}: {e}")
            if args.fail_fast:
                runner.save()
                raise
        runner.save()
    runner.save()
    out = Path(args.out)
    runner.log(f"done in {time.perf_counter() - t0:.1f}s: {out / 'results.md'}, {out / 'results.json'}")
    print((out / "results.md").read_text())
    return 1 if runner.failed else 0


def parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--icl-k takes comma-separated integers, not {text!r}") from None
    if any(k < 0 for k in ks):
        raise argparse.ArgumentTypeError("--icl-k values must be >= 0")
    return ks


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval", help="evaluate a checkpoint on the paper's tasks (results.md, results.json, plots)",
        description=__doc__.split("\n\n")[0] + f" Tasks: {', '.join(TASKS)}; aliases: central_dogma, zeroshot, all.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="run directory (RUN/checkpoint) or checkpoint directory")
    p.add_argument("--task", action="append", help="task to run (repeatable)")
    p.add_argument("--all", action="store_true", help="every built-in task")
    p.add_argument("--out", help="output directory")
    p.add_argument("--max-items", type=int, help="at most N items per split (stratified), N variants per DMS set, N validation rows")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--seed", type=int, default=0, help="splits, negatives, demos, subsets, head initialisation")
    p.add_argument("--data", help="data directory holding eval/, dms/, genbank/ (default: bundled data/)")
    p.add_argument("--manifest", help="perplexity: shard directory (default: the checkpoint's training manifest)")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failing task")
    p.add_argument("--baselines-only", action="store_true", help="only the non-neural baselines (no checkpoint needed)")
    f = p.add_argument_group("fine-tuning (SFT tasks)")
    f.add_argument("--ft-preset", choices=["paper", "tiny"], default="paper",
                   help="paper: lr 1e-6, batch 16, 3 epochs, last-token pooling (default, for real models); "
                        "tiny: body lr 1e-5, head lr 1e-2, mean pooling, 3 epochs (tiny CPU models)")
    f.add_argument("--ft-lr", type=float)
    f.add_argument("--ft-head-lr", type=float, help="learning rate of the new head (default: --ft-lr)")
    f.add_argument("--ft-batch-size", type=int)
    f.add_argument("--ft-epochs", type=int)
    f.add_argument("--ft-pool", choices=["last", "mean"], help="pooled vector for the head (default last: the <eos> state)")
    f.add_argument("--ft-max-steps", type=int, help="stop each fine-tuning after N optimizer steps")
    i = p.add_argument_group("few-shot")
    i.add_argument("--icl-k", type=parse_ks, default=(0, 1, 2, 4, 8), help="demonstration counts (default 0,1,2,4,8)")
    c = p.add_argument_group("LucaOne-format tasks")
    c.add_argument("--task-file", action="append", help="LucaOne task directory (train/ dev/ test/ CSVs) or one CSV (repeatable)")
    c.add_argument("--task-type", choices=["binary", "binary_class", "multiclass", "multi_class", "regression"])
    c.add_argument("--gene-modality", choices=["auto", "dna", "rna"], default="auto", help="how seq_type=gene is read (default auto: RNA when in U)")
    p.set_defaults(func=cmd_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bsm")
    add_eval_parser(parser.add_subparsers(dest="command", required=True))
    args, rest = parser.parse_known_args(argv)
    return args.func(args, rest)


if __name__ == "__main__":
    sys.exit(main())
