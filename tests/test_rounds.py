"""Round builder: validation split, token-ratio mixing with upsampling, manifest records."""
from pathlib import Path

import pytest

from bsm_data.accounting import Accounting
from bsm_data.build import build_genbank_local
from bsm_data.query import connect
from bsm_data.rounds import draw, mix_error, plan_mix, read_source_samples
from bsm_data.rounds import build_round
from bsm_data.shards import read_manifest, read_shard

GENBANK = Path(__file__).resolve().parents[1] / "data" / "genbank"


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Two real source builds: a large one and a small one (the small one must be upsampled)."""
    root = tmp_path_factory.mktemp("sources")
    big = [str(GENBANK / f) for f in ("NZ_LAEX_mycoplasma_mycoides.gbff", "NC_000866_phageT4.gbff")]
    small = [str(GENBANK / f) for f in ("NC_005816.gb", "cor6_6.gb", "noref.gb")]
    build_genbank_local(big, str(root / "refseq"), seed=0, source="refseq")
    build_genbank_local(small, str(root / "gene"), seed=0, source="gene")
    return root


def test_plan_mix_splits_the_budget_by_ratio():
    assert plan_mix({"a": 100, "b": 900}, {"a": 1, "b": 1}) == {"a": 500, "b": 500}
    assert plan_mix({"a": 100, "b": 900}, {"a": 1, "b": 3}, total_tokens=400) == {"a": 100, "b": 300}
    with pytest.raises(ValueError, match="none"):
        plan_mix({"a": 0, "b": 9}, {"a": 1, "b": 1})


def test_draw_upsamples_with_unique_ids_and_hits_the_target(sources):
    _, samples = read_source_samples(str(sources / "gene"), Accounting())
    available = sum(s.n_tokens for s in samples)
    drawn = draw(samples, 3 * available + 12345, seed=0, source="gene")
    got = sum(s.n_tokens for s in drawn)
    assert 3 * available + 12345 <= got < 3 * available + 12345 + 1024
    assert len({s.sample_id for s in drawn}) == len(drawn)
    assert {s.sample_id.split("#")[0] for s in drawn} == {s.sample_id for s in samples}
    assert drawn == draw(samples, 3 * available + 12345, seed=0, source="gene")
    assert drawn != draw(samples, 3 * available + 12345, seed=1, source="gene")


def test_round_mix_hits_ratios_within_one_percent(sources, tmp_path):
    ratios = {"refseq": 1.0, "gene": 1.0}
    m = build_round(3, [str(sources / "refseq"), str(sources / "gene")], str(tmp_path), ratios=ratios, valid_fraction=0.05, num_shards=2)
    assert mix_error(m) < 0.01
    assert m["mix"]["gene"]["upsample"] > 5  # the small source was upsampled
    assert m["sources"]["gene"]["upsample"] == m["mix"]["gene"]["upsample"]
    assert m["sources"]["gene"]["tokens"] == m["mix"]["gene"]["tokens"]
    assert m["validation"] and m["files"]["valid_samples"]
    # validation groups never appear in training (split by gene, before upsampling)
    con = connect(str(tmp_path))
    leaked = con.execute("SELECT count(*) FROM samples s JOIN valid_samples v USING (group_id)").fetchone()[0]
    assert leaked == 0
    assert read_manifest(str(tmp_path))["round"] == 3
    for entry in m["shards"] + m["validation"]:
        read_shard(str(tmp_path), entry)


def test_round_is_deterministic_and_refuses_a_wrong_source_set(sources, tmp_path):
    dirs = [str(sources / "refseq"), str(sources / "gene")]
    a = build_round(2, dirs, str(tmp_path / "a"), ratios={"refseq": 2, "gene": 1})
    b = build_round(2, list(reversed(dirs)), str(tmp_path / "b"), ratios={"refseq": 2, "gene": 1})
    assert [s["sha256"] for s in a["shards"]] == [s["sha256"] for s in b["shards"]]
    with pytest.raises(ValueError, match="single"):
        build_round(2, dirs, str(tmp_path / "c"))  # the paper's round 2 needs single-modal data


def test_round_decontaminates_before_mixing_and_lists_the_report(sources, tmp_path):
    from bsm_data.evalsets import EvalItem, register_items

    _, samples = read_source_samples(str(sources / "gene"), Accounting())
    victim = next(s for s in samples if any(m == "protein" for m, _ in s.segments))
    protein = dict(victim.segments)["protein"]
    reg = tmp_path / "registry"
    register_items(reg, [EvalItem("mytask", "test", "item1", "seq", "protein", protein[:200], "mine.fasta")])
    out = tmp_path / "round"
    m = build_round(3, [str(sources / "refseq"), str(sources / "gene")], str(out), ratios={"refseq": 1, "gene": 1}, registry=str(reg))
    assert m["decontamination"]["samples_removed"] >= 1
    assert m["accounting"]["decontam"]["rejected"]["contaminated"] == m["decontamination"]["samples_removed"]
    con = connect(str(out))
    removed = {r[0] for r in con.execute("SELECT DISTINCT sample_id FROM contamination").fetchall()}
    assert victim.sample_id in removed
    kept = {r[0].split("#")[0] for r in con.execute("SELECT sample_id FROM samples").fetchall()}
    assert not kept & removed  # removed whole, before upsampling copies could carry it
    rejected = {r[0] for r in con.execute("SELECT item_id FROM rejects WHERE stage = 'decontam'").fetchall()}
    assert removed <= rejected
    assert (out / "report" / "contamination.html").exists() and m["files"]["contamination"]


def test_plan_mix_refuses_a_budget_that_leaves_a_source_empty():
    with pytest.raises(ValueError, match="no tokens"):
        plan_mix({"refseq": 500, "gene": 500}, {"refseq": 1, "gene": 1}, total_tokens=1)
    with pytest.raises(ValueError, match="> 0"):
        plan_mix({"refseq": 500, "gene": 500}, {"refseq": 1, "gene": 0})
    assert plan_mix({"refseq": 500, "gene": 500}, {"refseq": 1, "gene": 1}, total_tokens=2048) == {"refseq": 1024, "gene": 1024}
