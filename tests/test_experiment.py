"""bsm experiment mixed-vs-single end to end on real (small) source builds: equal token budgets,
the same initial weights per seed, one common validation set, reports whose verdict follows
from the numbers, reuse on rerun; and the aggregation over seeds on hand-made numbers."""
import hashlib
import json
import statistics
from pathlib import Path

import pytest

from bsm_data.cli import main as bsm
from bsm_data.evalsets import build_builtin_registry
from bsm_data.shards import read_manifest
from bsm_model import experiment as ex
from bsm_model import train

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = Path(__file__).resolve().parents[1] / "data"
STEPS, BATCH = 2, 2


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Real source builds, kept small: single-modal DNA, RNA and protein files, RefSeq pairs of
    two GenBank files, the bundled NCBI Gene pairs; a Central Dogma registry."""
    root = tmp_path_factory.mktemp("mvs")
    src = root / "sources"
    bsm(["data", "single", "--engine", "local", "--output", str(src / "single"),
         "--input", f"{DATA}/protein/globins45.fa:protein", "--input", f"{DATA}/ncrna/ls_orchid.fasta:dna",
         "--input", f"{DATA}/ncrna/srp-euk.sto:rna"])
    bsm(["data", "refseq", "--engine", "local", "--output", str(src / "refseq"),
         "--input", f"{DATA}/genbank/NC_005816.gb", "--input", f"{DATA}/genbank/NC_000932.gb"])
    bsm(["data", "gene", "--engine", "local", "--output", str(src / "gene")])
    build_builtin_registry(root / "registry", tasks=["central_dogma"])
    return root


def argv(root: Path, out: Path, *extra) -> list[str]:
    return ["experiment", "mixed-vs-single", "--sources", str(root / "sources"), "--registry", str(root / "registry"),
            "--out", str(out), "--steps", str(STEPS), "--batch-size", str(BATCH), "--val-rows", "4", "--icl-k", "0,2",
            "--max-items", "6", "--threads", "1", *extra]


def weights_sha(model) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def finished(sources, tmp_path_factory):
    """One experiment (3 seeds x 2 arms), recording each run's weights when its optimizer is built
    (right after the trainer builds the model, before any step)."""
    out = tmp_path_factory.mktemp("exp") / "mvs"
    inits = {}
    real = train.build_optimizer

    def spy(model, cfg, device):
        inits[(cfg.seed, Path(cfg.out).name)] = weights_sha(model)
        return real(model, cfg, device)

    mp = pytest.MonkeyPatch()
    mp.setattr(train, "build_optimizer", spy)
    try:
        assert bsm(argv(sources, out)) == 0
    finally:
        mp.undo()
    return out, inits


def test_arms_train_on_equal_tokens_from_the_same_initial_weights(finished):
    out, inits = finished
    res = json.loads((out / "experiment.json").read_text())
    assert res["seeds"] == [0, 1, 2] and len(res["runs"]) == 6
    assert {(r["seed"], r["arm"]) for r in res["runs"]} == {(s, a) for s in range(3) for a in ("single", "mixed")}
    budget = STEPS * BATCH * 1024
    assert res["tokens_per_run"] == budget
    for r in res["runs"]:
        assert r["steps"] == STEPS and r["tokens"] == budget and not r["reused"]
        recs = [json.loads(x) for x in (Path(r["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
        assert [x["tokens"] for x in recs if x["kind"] == "train"][-1] == budget
        cfg = json.loads((Path(r["run_dir"]) / "run.json").read_text())["train_config"]
        assert (cfg["seed"], cfg["lr"], cfg["steps"], cfg["batch_size"]) == (r["seed"], 1e-3, STEPS, BATCH)
    # same weights for both arms of a seed, other weights for other seeds
    assert set(inits) == {(s, a) for s in range(3) for a in ("single", "mixed")}
    for s in range(3):
        assert inits[(s, "single")] == inits[(s, "mixed")]
    assert len({inits[(s, "single")] for s in range(3)}) == 3
    # each arm's round: the budget (up to the last document drawn), in the arm's mix, decontaminated
    for arm, sources in (("single", {"single"}), ("mixed", {"single", "refseq", "gene"})):
        m = read_manifest(str(out / "data" / arm))
        assert set(m["mix"]) == sources
        assert budget <= sum(v["tokens"] for v in m["mix"].values()) < budget + 3 * 1024
        assert m["decontamination"]["registry"].endswith("registry")
    mixed = res["data"]["mixed"]["mix"]
    assert mixed["single"]["target_ratio"] == pytest.approx(10 / 13, abs=1e-6)
    assert mixed["refseq"]["target_ratio"] == pytest.approx(2 / 13, abs=1e-6)


def test_both_arms_are_scored_on_the_same_validation_rows(finished):
    out, _ = finished
    single = ex.validation_samples(str(out / "data" / "single"))
    mixed = ex.validation_samples(str(out / "data" / "mixed"))
    pairs = ex.validation_samples(str(out / "data" / "pairs"))
    assert set(single) == {"single"} and single["single"] == mixed["single"]
    assert {k: v for k, v in mixed.items() if k != "single"} == pairs
    res = json.loads((out / "experiment.json").read_text())
    assert res["validation_sets"]["common"]["documents"] == len(single["single"])
    assert res["validation_sets"]["pairs"]["documents"] == sum(map(len, pairs.values()))
    by = {(r["seed"], r["arm"]): r["eval"] for r in res["runs"]}
    for s in range(3):
        a, b = by[(s, "single")], by[(s, "mixed")]
        for vs in ("common", "pairs"):
            assert a["val"][vs]["rows"] == b["val"][vs]["rows"] > 0
            assert {m: a["val"][vs][m]["tokens"] for m in ex.VAL_KEYS} == {m: b["val"][vs][m]["tokens"] for m in ex.VAL_KEYS}
        assert [(r["k"], r["n_valid"], r["n_test"]) for r in a["icl"]] == [(r["k"], r["n_valid"], r["n_test"]) for r in b["icl"]]
    # the models differ (different data), so the losses do
    assert by[(0, "single")]["val"]["common"]["all"]["loss"] != by[(0, "mixed")]["val"]["common"]["all"]["loss"]


def test_reports_and_verdict_follow_from_the_numbers(finished):
    out, _ = finished
    res = json.loads((out / "experiment.json").read_text())
    md = (out / "experiment.md").read_text()
    assert (out / "experiment.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    by = {(r["seed"], r["arm"]): ex.run_metrics(r["eval"]) for r in res["runs"]}
    assert {"val:common:protein", "val:pairs:protein", "icl:k=0:accuracy", "icl:k=2:auroc"} <= set(res["aggregate"])
    for metric, a in res["aggregate"].items():
        diff = [by[(s, "mixed")][metric] - by[(s, "single")][metric] for s in range(3)]
        assert a["diff"]["values"] == pytest.approx(diff)
        assert a["diff"]["mean"] == pytest.approx(statistics.fmean(diff))
        assert a["diff"]["sd"] == pytest.approx(statistics.stdev(diff))
        sign = -1 if metric.startswith("val:") else 1
        n_better = sum(sign * d > 0 for d in diff)
        assert a["n_better"] == n_better
        verdict = "better" if n_better == 3 else "worse" if sum(sign * d < 0 for d in diff) == 3 else "inconsistent"
        assert res["verdicts"][metric] == verdict
        line = ex.describe(metric, a)
        assert f"in {n_better}/3 seeds" in line and line in md
        assert f"{a['diff']['mean']:+.4f}" in line
    assert res["headline"] in md and "**Verdict.**" in md
    for m in ex.MODALITIES:
        a = res["aggregate"].get(f"val:common:{m}")
        if a:
            assert f"{m} loss {a['diff']['mean']:+.3f} ({a['n_better']}/3)" in res["headline"]
    assert res["command"].startswith("bsm experiment mixed-vs-single --out ")
    assert "--ratio single=10 --ratio refseq=2 --ratio gene=1" in res["command"]


def test_rerun_reuses_builds_runs_and_evaluations(finished, sources, capsys):
    out, _ = finished
    before = json.loads((out / "experiment.json").read_text())
    weights = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/checkpoints/*/model.safetensors")}
    manifests = {p: p.stat().st_mtime_ns for p in out.glob("data/*/manifest.json")}
    assert len(weights) == 6 and len(manifests) == 3
    assert bsm(argv(sources, out)) == 0
    after = json.loads((out / "experiment.json").read_text())
    assert all(r["reused"] and r["eval"]["reused"] for r in after["runs"])
    assert after["aggregate"] == before["aggregate"] and after["headline"] == before["headline"]
    assert {p: p.stat().st_mtime_ns for p in weights} == weights
    assert {p: p.stat().st_mtime_ns for p in manifests} == manifests
    assert "reusing" in capsys.readouterr().err


def test_refuses_too_few_seeds_and_changed_settings(finished, sources):
    out, _ = finished
    with pytest.raises(SystemExit, match="at least 3"):
        bsm(argv(sources, out.parent / "other", "--seeds", "2"))
    with pytest.raises(SystemExit, match=r"other settings \(lr: 0.001 -> 0.002\)"):
        bsm(argv(sources, out, "--lr", "2e-3"))
    with pytest.raises(SystemExit, match="lacks source builds"):
        bsm(argv(sources, out.parent / "other", "--sources", str(out)))


def test_aggregate_on_hand_made_numbers():
    per_seed = {
        0: {"single": {"val:common:dna": 2.0, "icl:k=2:accuracy": 0.60, "val:pairs:rna": None},
            "mixed": {"val:common:dna": 1.9, "icl:k=2:accuracy": 0.60, "val:pairs:rna": 3.0}},
        1: {"single": {"val:common:dna": 2.2, "icl:k=2:accuracy": 0.70, "val:pairs:rna": 3.1},
            "mixed": {"val:common:dna": 2.0, "icl:k=2:accuracy": 0.65, "val:pairs:rna": 3.0}},
        2: {"single": {"val:common:dna": 2.1, "icl:k=2:accuracy": 0.50, "val:pairs:rna": 3.1},
            "mixed": {"val:common:dna": 1.8, "icl:k=2:accuracy": 0.60, "val:pairs:rna": 3.0}},
    }
    agg = ex.aggregate(per_seed)
    assert set(agg) == {"val:common:dna", "icl:k=2:accuracy"}  # a metric missing in one run is left out
    dna = agg["val:common:dna"]
    assert dna["diff"]["values"] == pytest.approx([-0.1, -0.2, -0.3])
    assert dna["diff"]["mean"] == pytest.approx(-0.2) and dna["diff"]["sd"] == pytest.approx(0.1)
    assert (dna["diff"]["min"], dna["diff"]["max"]) == (pytest.approx(-0.3), pytest.approx(-0.1))
    assert dna["single"]["mean"] == pytest.approx(2.1) and dna["mixed"]["sd"] == pytest.approx(0.1)
    assert (dna["better"], dna["n_better"], dna["n_worse"], dna["n_same"]) == ("lower", 3, 0, 0)
    assert ex.outcome(dna) == "better"
    acc = agg["icl:k=2:accuracy"]
    assert acc["diff"]["values"] == pytest.approx([0.0, -0.05, 0.1])
    assert acc["diff"]["mean"] == pytest.approx(0.05 / 3)
    assert acc["diff"]["sd"] == pytest.approx(statistics.stdev([0.0, -0.05, 0.1]))
    assert (acc["better"], acc["n_better"], acc["n_worse"], acc["n_same"]) == ("higher", 1, 1, 1)
    assert ex.outcome(acc) == "inconsistent"
    line = ex.describe("val:common:dna", dna)
    assert line == ("dna validation loss (common): mixed lower in 3/3 seeds, mean difference -0.2000 ± 0.1000 "
                    "(min -0.3000, max -0.1000) — consistent gain")
    assert "equal in 1" in ex.describe("icl:k=2:accuracy", acc)
    head = ex.headline(agg, ks=(2,))
    assert "mixed better in every seed on dna loss -0.200 (3/3)" in head
    assert "no consistent difference on few-shot accuracy k=2 +0.017 (1/3)" in head and "always-negative" not in head
    assert "k=2 +0.017 (1/3) [both arms at or below always-negative]" in ex.headline(agg, ks=(2,), floor=0.7)
    worse = ex.aggregate({s: {"single": {"val:common:rna": 1.0}, "mixed": {"val:common:rna": 1.0 + s + 1}} for s in range(3)})
    assert ex.outcome(worse["val:common:rna"]) == "worse"
