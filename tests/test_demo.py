"""README's main command: `bsm demo` runs the whole chain on the bundled real data (a short
training here; the default budget is timed by benchmarks/bench_demo.py)."""
import json

from bsm_data.accounting import Accounting
from bsm_data.rounds import mix_error
from bsm_data.shards import read_manifest, verify_file
from bsm_model.eval.cli import TASKS


def test_demo_builds_sources_registry_and_three_decontaminated_rounds(demo_run):
    out, r = demo_run
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "bsm demo: done" in r.stdout and "round-3" in r.stdout
    for name in ("sources/refseq", "sources/single", "sources/gene", "sources/web", "round-1", "round-2", "round-3"):
        m = read_manifest(str(out / name))
        Accounting.from_dict(m["accounting"]).check()
        for entry in m["shards"] + [e for es in m["files"].values() for e in es]:
            verify_file(str(out / name), entry)
    for n, sources in ((1, {"single"}), (2, {"single", "refseq", "gene"}), (3, {"refseq", "gene", "web"})):
        m = read_manifest(str(out / f"round-{n}"))
        assert set(m["mix"]) == sources and mix_error(m) < 0.01
        assert m["decontamination"]["samples_removed"] > 0 and (out / f"round-{n}" / "report" / "contamination.html").exists()
        assert m["validation"]


def test_demo_trains_three_rounds_in_sequence_then_evaluates_and_reports(demo_run):
    out, r = demo_run
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    previous = None
    for n, steps in ((1, 3), (2, 2), (3, 2)):
        run = json.loads((out / "runs" / f"round-{n}" / "run.json").read_text())
        cfg = run["train_config"]
        assert cfg["manifest"].endswith(f"round-{n}") and cfg["model"] == "tiny" and cfg["steps"] == steps
        assert cfg["init_from"] == (None if previous is None else str(previous / "checkpoint"))
        recs = [json.loads(x) for x in (out / "runs" / f"round-{n}" / "metrics.jsonl").read_text().splitlines()]
        assert [x["step"] for x in recs if x["kind"] == "train"] == list(range(1, steps + 1))
        val = [x for x in recs if x["kind"] == "val"][-1]
        assert all(val[f"loss_{m}"] > 0 for m in ("dna", "rna", "protein"))
        previous = out / "runs" / f"round-{n}"
    # the paper's schedules, scaled: round 1's peak is 50 x 2e-5, round 3 decays linearly from 50 x 1e-6
    cfgs = [json.loads((out / "runs" / f"round-{n}" / "run.json").read_text())["train_config"] for n in (1, 2, 3)]
    assert [c["lr"] for c in cfgs] == [1e-3, 5e-4, 5e-5] and cfgs[2]["decay"] == "linear"
    results = json.loads((out / "eval" / "results.json").read_text())
    assert {row["task"] for row in results["rows"]} >= set(TASKS)
    assert not [row for row in results["rows"] if "error" in row]
    assert results["model"]["checkpoint"].startswith(str(out / "runs" / "round-3"))
    assert (out / "hf" / "config.json").exists() and (out / "hf" / "tokenizer.json").exists()
    html = (out / "report.html").read_text()
    for section in ("mix", "lengths", "contamination", "training", "evaluation", "icl"):
        assert f'<section id="{section}">' in html
    assert "report: " in r.stdout and "central_dogma_icl k=4" in r.stdout
