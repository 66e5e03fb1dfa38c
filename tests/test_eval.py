"""bsm eval: metrics against scikit-learn/SciPy, the Central Dogma construction (verified with
Biopython), ICL prompts, scoring invariants, baselines, the LucaOne loader and the CLI end to end
on every task with a small model (same code paths as the tiny config, fewer parameters)."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from Bio.Seq import Seq
from scipy import stats
from sklearn import metrics as skm

from bsm_data import central_dogma as cdm
from bsm_data.build import build_genbank_local
from bsm_data.vocab import decode_sample, load_vocab
from bsm_model import checkpoint as ckpt
from bsm_model.eval import baselines, cli, icl, metrics, model_io, tasks
from bsm_model.eval.lucaone import LucaOneFormatError, load_lucaone
from bsm_model.model import BSM, ModelConfig

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
SMALL = [str(DATA / "genbank" / f) for f in ("NC_005816.gb", "NC_000932.gb")]
MICRO = ModelConfig(n_layers=2, n_heads=2, dim=32, intermediate_size=64)


@pytest.fixture(scope="module")
def cd():
    return cdm.build(seed=0)


@pytest.fixture(scope="module")
def micro_ckpt(tmp_path_factory):
    run = tmp_path_factory.mktemp("micro")
    torch.manual_seed(0)
    model = BSM(MICRO)
    opt = torch.optim.AdamW(model.parameters())
    ckpt.save(run, step=0, model=model, optimizer=opt, param_names=[n for n, _ in model.named_parameters()],
              state={"model_config": MICRO.to_dict()})
    return run


@pytest.fixture(scope="module")
def lm(micro_ckpt):
    return model_io.load(str(micro_ckpt), "cpu")


# ----------------------------------------------------------------------------- metrics


def test_metrics_match_sklearn_and_scipy():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + y, 1)  # rounded: many ties
    pred = (s > 0.4).astype(int)
    assert metrics.accuracy(y, pred) == pytest.approx(skm.accuracy_score(y, pred))
    assert metrics.auroc(y, s) == pytest.approx(skm.roc_auc_score(y, s))
    assert metrics.mcc(y, pred) == pytest.approx(skm.matthews_corrcoef(y, pred))
    assert metrics.f1(y, pred) == pytest.approx(skm.f1_score(y, pred))
    x = rng.normal(size=200).round(1)
    z = x + rng.normal(size=200)
    assert metrics.spearman(x, z) == pytest.approx(stats.spearmanr(x, z).statistic)
    assert metrics.pearson(x, z) == pytest.approx(stats.pearsonr(x, z).statistic)
    m = rng.integers(0, 4, 100)
    mp = np.where(rng.random(100) < 0.6, m, rng.integers(0, 4, 100))
    rep = metrics.multiclass_report(m, mp)
    assert rep["accuracy"] == pytest.approx(skm.accuracy_score(m, mp))
    assert rep["macro_f1"] == pytest.approx(skm.f1_score(m, mp, average="macro"))
    # undefined cases are NaN, not exceptions
    assert math.isnan(metrics.auroc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert math.isnan(metrics.spearman([1, 1, 1, 1], [1, 2, 3, 4]))


def test_best_threshold_is_the_brute_force_optimum():
    rng = np.random.default_rng(1)
    for _ in range(20):
        y = rng.integers(0, 2, 40)
        s = np.round(rng.normal(size=40) + 0.8 * y, 1)
        t = metrics.best_threshold(y, s)
        cands = np.r_[np.unique(s), s.max() + 1]
        best = max(skm.accuracy_score(y, (s >= c).astype(int)) for c in cands)
        assert skm.accuracy_score(y, (s >= t).astype(int)) == pytest.approx(best)


# ----------------------------------------------------------------------------- Central Dogma


def _bio_translation(cds: str, gene) -> str:
    framed = cds[gene.codon_start - 1:]
    framed = framed[: len(framed) // 3 * 3]
    prot = str(Seq(framed).translate(table=gene.table))
    return prot[:-1] if prot.endswith("*") else prot


def test_central_dogma_counts_split_and_determinism(cd):
    st = cd.stats()
    f = st["filters"]
    skips = sum(v for k, v in f.items() if k.startswith(("skip_", "drop_")))
    assert f["cds"] == f["genes"] + skips  # every CDS is accounted for
    assert f["genes"] == len(cd.genes) > 600 and f["skip_longer_than_context"] > 0
    n = st["genes"]
    assert abs(n["train"] / sum(n.values()) - 4 / 32) < 0.02 and abs(n["valid"] / sum(n.values()) - 3 / 32) < 0.02
    for s in cdm.SPLITS:
        kinds = st["kinds"][s]
        assert kinds["positive"] == kinds["protein_substitution"] == sum(kinds[k] for k in cdm.DNA_KINDS) == n[s]
    # by gene: the items of a gene, and genes sharing a protein, never straddle splits
    split_of_protein = {}
    for it in cd.items:
        assert it.split == cd.split_of[it.gene_id]
        if it.kind == "positive":
            assert split_of_protein.setdefault(it.protein, it.split) == it.split
        assert len(it.dna) + len(it.protein) + cdm.PAIR_OVERHEAD <= cdm.MAX_TOKENS
    again = cdm.build(seed=0)
    assert [i.as_row() for i in again.items] == [i.as_row() for i in cd.items]
    other = cdm.build(seed=1)
    assert other.split_of != cd.split_of


def test_central_dogma_negatives_are_verified_with_biopython(cd):
    by_gene = {}
    for it in cd.items:
        by_gene.setdefault(it.gene_id, {})[it.kind if it.kind == "positive" or it.kind.startswith("dna") else "protein"] = it
    checked = {k: 0 for k in (*cdm.DNA_KINDS, "protein")}
    for gid, items in list(by_gene.items())[:250]:
        g = cd.genes[gid]
        pos = items["positive"]
        # the positive: the CDS spliced from the DNA span translates (Biopython) to the protein
        assert _bio_translation(cdm.splice(pos.dna, g.cds_map), g)[1:] == pos.protein[1:]
        neg = next(v for k, v in items.items() if k.startswith("dna"))
        assert neg.protein == pos.protein and neg.label == 0
        if neg.kind == "dna_substitution":
            diff = [i for i, (a, b) in enumerate(zip(pos.dna, neg.dna)) if a != b]
            assert len(neg.dna) == len(pos.dna) and 1 <= len(diff) <= 3 and set(diff) <= set(g.cds_map)
            mutated_cds = cdm.splice(neg.dna, g.cds_map)
            assert _bio_translation(mutated_cds, g) != pos.protein
        else:
            d = len(neg.dna) - len(pos.dna)
            assert d in ((1, 2) if neg.kind == "dna_insertion" else (-1, -2))
            # the change lies inside the coding region: flanks (and the 5'/3' ends) untouched
            prefix = next(i for i, (a, b) in enumerate(zip(pos.dna, neg.dna)) if a != b)
            suffix = next(i for i, (a, b) in enumerate(zip(pos.dna[::-1], neg.dna[::-1])) if a != b)
            assert g.cds_map[0] <= prefix and len(pos.dna) - suffix <= g.cds_map[-1] + 1
            # re-splice the CDS from the mutated DNA independently (shift the exon map at the edit)
            if d > 0:
                new_map = [q for q in g.cds_map if q < prefix] + list(range(prefix, prefix + d)) + [q + d for q in g.cds_map if q >= prefix]
            else:
                assert set(range(prefix, prefix - d)) <= set(g.cds_map)
                new_map = [q for q in g.cds_map if q < prefix] + [q + d for q in g.cds_map if q >= prefix - d]
            mutated_cds = cdm.splice(neg.dna, new_map)
            assert len(mutated_cds) == len(g.cds) + d
            assert _bio_translation(mutated_cds, g) != pos.protein
        checked[neg.kind] += 1
        pn = items["protein"]
        diff = [i for i, (a, b) in enumerate(zip(pos.protein, pn.protein)) if a != b]
        assert pn.dna == pos.dna and len(pn.protein) == len(pos.protein) and 1 <= len(diff) <= 3
        checked["protein"] += 1
    assert all(v > 20 for v in checked.values()), checked


def test_central_dogma_eval_items_register(cd, tmp_path):
    from bsm_data.evalsets import Registry, register_items

    items, skipped = cdm.eval_items(cd)
    test_genes = [g for g, s in cd.split_of.items() if s == "test"]
    assert len(items) == 2 * len(test_genes) and not skipped
    assert {(i.modality, i.role) for i in items} == {("dna", "a"), ("protein", "b")}
    assert {i.item_id.rsplit(":", 1)[0] for i in items} == set(test_genes)
    register_items(tmp_path, items, skipped)
    entry = next(e for e in Registry(tmp_path).entries if e["task"] == "central_dogma")
    assert entry["split"] == "test" and entry["items"] == len(items)


def test_icl_prompts_fit_and_share_demos(cd):
    pool = icl._demo_pool(cd)
    vocab = load_vocab()
    for gid in sorted(g for g, s in cd.split_of.items() if s == "test")[:40]:
        g = cd.genes[gid]
        budget = 1024 - (len(g.dna) + cdm.MAX_INSERT + len(g.protein) + cdm.PAIR_OVERHEAD)
        train_proteins = [p for _, _, p, _ in pool]
        for k in (1, 2, 4, 8):
            demos = icl.choose_demos(pool, gid, k, budget, seed=0)
            assert sum(len(d) + len(p) + 4 for d, p, _ in demos) <= budget and len(demos) <= k
            assert demos == icl.choose_demos(pool, gid, k, budget, seed=0)
            for d, p, full in demos:
                if full:
                    assert (d, p) in {(x[1], x[2]) for x in pool}
                else:  # an aligned window: w codons and the first w residues of a train protein
                    assert len(d) == 3 * len(p) and len(p) >= icl.MIN_CODONS and any(q.startswith(p) for q in train_proteins)
        items = [it for it in cd.items if it.gene_id == gid]
        for it in items:
            ids, (s, e) = icl.prompt(demos, it.dna, it.protein)
            assert len(ids) <= 1024
            assert bytes(vocab.letter_of_id[ids[s:e]]).decode() == it.protein and ids[e] == vocab.eos
            assert decode_sample(vocab, ids)[-2:] == [("dna", it.dna), ("protein", it.protein)]


# ----------------------------------------------------------------------------- model scoring


def test_hidden_states_and_padded_scoring_match_the_model(lm):
    model = lm.model
    ids = torch.randint(16, 20, (2, 50))
    with torch.no_grad():
        logits, _ = model(ids)
        again = model.lm_head(model_io.hidden_states(model, ids))
    assert torch.allclose(logits, again, atol=1e-5)
    docs = [model_io.encode([("dna", "ACGT" * n)]) for n in (3, 10, 25)]
    spans = [(2, len(d)) for d in docs]
    batched = model_io.token_logprobs(lm, docs, spans)
    for d, sp, got in zip(docs, spans, batched):
        alone = model_io.token_logprobs(lm, [d], [sp], max_tokens=1)[0]
        np.testing.assert_allclose(got, alone, atol=1e-5)


def test_truncation_shares_the_budget():
    segs, cut = model_io.truncate_segments([("rna", "A" * 5000), ("protein", "M" * 100)], 1024)
    assert cut and len(segs[1][1]) == 100 and len(model_io.encode(segs)) == 1024
    segs, cut = model_io.truncate_segments([("protein", "M" * 900), ("protein", "K" * 900)], 1024)
    assert [len(s) for _, s in segs] == [509, 510] or [len(s) for _, s in segs] == [510, 509]
    assert len(model_io.encode(segs)) == 1024
    assert model_io.truncate_segments([("dna", "ACGT")], 1024) == ([("dna", "ACGT")], False)


# ----------------------------------------------------------------------------- baselines


def test_kmer_features_count_like_a_naive_loop():
    seqs = ["ACGTTGCANACG", "GGGG", "AC"]
    X = baselines.kmer_features(seqs, "dna", (2, 3)).toarray()
    alphabet = "ACGT"
    for row, s in zip(X, seqs):
        for k, off in ((2, 0), (3, 16)):
            kmers = [s[i:i + k] for i in range(len(s) - k + 1) if "N" not in s[i:i + k]]
            for km in set(kmers):
                idx = off + sum(alphabet.index(c) * 4 ** (k - 1 - j) for j, c in enumerate(km))
                assert row[idx] == pytest.approx(kmers.count(km) / len(kmers))
            assert row[off: off + 4**k].sum() == pytest.approx(1.0 if kmers else 0.0)


def test_ngram_lm_is_normalised_and_respects_documents():
    rng = np.random.default_rng(0)
    tokens = rng.integers(16, 20, (4, 64)).astype(np.int64)
    starts = [np.array([0, 30]), np.array([0]), np.array([0, 10, 40]), np.array([0])]
    K, V = 4, 64
    ctx = baselines.NGramLM.contexts(tokens, starts, K, V)
    assert (ctx[0, 30] == V).all() and ctx[0, 31, 0] == tokens[0, 30] and (ctx[0, 31, 1:] == V).all()
    lm = baselines.NGramLM(V, K)
    lm.add(ctx.reshape(-1, K - 1), tokens.reshape(-1))
    lm.finish()
    for c in (ctx[1, 20], ctx[0, 30], np.array([19, 18, 17])):
        p = np.exp(lm.logprob(np.tile(c, (V, 1)), np.arange(V)))
        assert p.sum() == pytest.approx(1.0)


def test_zero_shot_baselines_on_real_gb1():
    sets = {d.name: d for d in tasks.load_dms("zeroshot_protein")}
    assert set(sets) == {"nisthal_data", "gb1_olson2014_doubles_first5000", "amyloid_data"}
    assert sets["amyloid_data"].skipped_stop > 0 and all("*" not in v for v in sets["amyloid_data"].variants)
    ds = sets["gb1_olson2014_doubles_first5000"]
    rho = metrics.spearman(baselines.blosum62_scores(ds.wild_type, ds.variants), ds.fitness)
    assert 0.1 < rho < 0.6  # BLOSUM62 carries real signal on GB1 binding fitness
    ds = sets["nisthal_data"]
    assert metrics.spearman(baselines.blosum62_scores(ds.wild_type, ds.variants), ds.fitness) > 0  # fitness = -ddG
    markov = baselines.wt_markov_scores(ds.wild_type, ds.variants)
    assert markov.shape == (len(ds.variants),) and np.isfinite(markov).all()


# ----------------------------------------------------------------------------- LucaOne


def _lucaone_rows(n=60):
    d = DATA / "eval" / "ncrpi_npinter_lncrna"
    rnas = tasks.read_fasta(d / "NPInter4158_lncRNA_sequence.fa")[:n]
    prots = tasks.read_fasta(d / "NPInter4158_protein_sequence.fa")
    rows = []
    for i, (rh, rs) in enumerate(rnas):
        ph, ps = prots[i % len(prots)]
        rows.append({"seq_id_a": rh.split()[0], "seq_id_b": ph.split()[0], "seq_type_a": "gene", "seq_type_b": "prot",
                     "seq_a": rs[:300], "seq_b": ps[:200], "label": i % 2})
    return rows


def _write_csv(path, rows):
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_lucaone_layout(tmp_path):
    rows = _lucaone_rows()
    root = tmp_path / "dataset" / "ncRPI" / "gene_protein" / "binary_class"
    _write_csv(root / "train" / "train.csv", rows[:40])
    _write_csv(root / "dev" / "dev.csv", rows[40:50])
    _write_csv(root / "test" / "test.csv", rows[50:])
    (root / "label.txt").write_text("label\n0\n1\n")
    t = load_lucaone(root, "binary_class")
    assert t.kind == "binary" and t.sizes() == {"train": 40, "valid": 10, "test": 10}
    ex = t.splits["train"][0]
    assert [m for m, _ in ex.segments] == ["dna", "protein"] and ex.segments[0][1] == rows[0]["seq_a"].upper()
    assert load_lucaone(root, "binary", gene_modality="rna").splits["test"][0].segments[0][0] == "rna"
    one = tmp_path / "one.csv"
    single = [{"seq_id": r["seq_id_b"] + str(i), "seq_type": "prot", "seq": r["seq_b"], "label": i % 3} for i, r in enumerate(rows)]
    _write_csv(one, single)
    t = load_lucaone(one, "multi_class")
    assert t.kind == "multiclass" and sum(t.sizes().values()) == 60 and t.classes == ["0", "1", "2"]
    with pytest.raises(LucaOneFormatError):
        load_lucaone(one, "multi_label")
    bad = tmp_path / "bad.csv"
    _write_csv(bad, [{"id": 1, "sequence": "ACGT"}])
    with pytest.raises(LucaOneFormatError):
        load_lucaone(bad, "binary")


def test_task_loaders_on_real_data():
    t = tasks.load_ncrpi()
    labels = np.concatenate([t.labels(s) for s in tasks.SPLITS])
    assert (labels == 1).sum() == 4158 and (labels == 0).sum() == 4158
    assert t.sizes()["test"] == pytest.approx(8316 * 0.2, abs=2)
    ids = [set(e.item_id for e in t.splits[s]) for s in tasks.SPLITS]
    assert not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    t = tasks.load_protstab()
    assert t.sizes() == {"train": 53614, "valid": 2512, "test": 12851}
    t = tasks.load_ncrnafam()
    assert len(t.classes) == 13 and t.sizes()["test"] == 2529
    capped = tasks.cap_task(t, 26, 0)
    assert capped.sizes()["test"] == 26 and len(set(capped.labels("test"))) == 13


# ----------------------------------------------------------------------------- CLI


def test_cli_end_to_end_every_task(micro_ckpt, tmp_path):
    shards = tmp_path / "shards"
    build_genbank_local(SMALL, str(shards), seed=0, num_shards=1)
    luca = tmp_path / "luca.csv"
    _write_csv(luca, _lucaone_rows(40))
    out = tmp_path / "eval"
    argv = ["eval", "--checkpoint", str(micro_ckpt), "--all", "--out", str(out), "--max-items", "6", "--device", "cpu",
            "--manifest", str(shards), "--ft-preset", "tiny", "--ft-max-steps", "1", "--icl-k", "0,2",
            "--task-file", str(luca), "--task-type", "binary", "--fail-fast"]
    assert cli.main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    rows = {(r["task"], r["setting"]): r for r in res["rows"]}
    for t in ("ncrpi", "ppi", "protstab", "ncrnafam", "central_dogma_sft", "lucaone:luca.csv"):
        r = rows[(t, "sft")]
        assert r["splits"]["test"] == r["n_items"] <= 6 and r["baseline"] is not None and r["score"] is not None
        assert res["tasks"][t]["model"]["steps"] == 1
    assert rows[("protstab", "sft")]["metric"] == "spearman"
    for k in (0, 2):
        assert rows[("central_dogma_icl", f"k={k}")]["n_items"] == 6
    for m in ("dna", "protein"):  # 8 rows of the two small records hold no RNA segment
        r = rows[("perplexity", m)]
        assert 1 < r["score"] < 200 and 1 < r["baseline"] < 64 and r["n_items"] > 100
    assert rows[("zeroshot_protein", "zero-shot")]["n_items"] == 18
    assert rows[("zeroshot_ncrna", "zero-shot")]["n_items"] == 12
    assert (out / "central_dogma_icl.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "results.md").read_text()
    assert "| central_dogma_icl | k=2 | accuracy |" in md and "central_dogma_icl.png" in md


def test_perplexity_matches_the_trainer_validation_loss(lm, tmp_path):
    from bsm_model.config import TrainConfig
    from bsm_model.data import TrainData
    from bsm_model.eval.perplexity import run_perplexity
    from bsm_model.train import Dist, evaluate

    shards = tmp_path / "s"
    build_genbank_local(SMALL[:1], str(shards), seed=0, num_shards=1)
    res = run_perplexity(lm, str(shards), max_items=4)
    cfg = TrainConfig(manifest=str(shards), out="", val_max_rows=4, batch_size=2)
    data = TrainData(str(shards), val_fraction=0.01, val_max_rows=4)
    ref = evaluate(lm.model, data, cfg, torch.device("cpu"), Dist(), torch.autocast("cpu", enabled=False))
    for m in ("dna", "rna", "protein"):
        if ref[f"tokens_{m}"]:
            assert res["modalities"][m]["tokens"] == ref[f"tokens_{m}"]
            assert res["modalities"][m]["ppl"] == pytest.approx(math.exp(ref[f"loss_{m}"]), rel=1e-4)


def test_cli_refuses_unknown_arguments_and_tasks(micro_ckpt, tmp_path):
    with pytest.raises(SystemExit):
        cli.main(["eval", "--checkpoint", str(micro_ckpt), "--task", "ppi", "--out", str(tmp_path), "--bogus"])
    with pytest.raises(SystemExit, match="unknown task"):
        cli.main(["eval", "--checkpoint", str(micro_ckpt), "--task", "nope", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="task-type"):
        cli.main(["eval", "--checkpoint", str(micro_ckpt), "--task-file", "x.csv", "--out", str(tmp_path)])


def test_eval_parser_sits_next_to_the_registry_commands(micro_ckpt, tmp_path):
    """One ``bsm`` parser holds ``eval`` (this suite) and ``registry``/``decontam`` (evalsets);
    ``func(args, rest)`` runs the suite."""
    import argparse

    from bsm_data.evalsets import add_registry_parsers

    parser = argparse.ArgumentParser(prog="bsm")
    sub = parser.add_subparsers(dest="command", required=True)
    cli.add_eval_parser(sub)
    add_registry_parsers(sub)
    args, rest = parser.parse_known_args(["eval", "--checkpoint", str(micro_ckpt), "--task", "zeroshot_ncrna",
                                          "--out", str(tmp_path), "--max-items", "5", "--device", "cpu"])
    assert args.func is cli.cmd_eval and args.func(args, rest) == 0
    assert json.loads((tmp_path / "results.json").read_text())["rows"][0]["n_items"] == 10
    assert parser.parse_args(["registry", "list", "--registry", "R"]).registry == "R"
